"""The panel registry: the main window shows one page per entry, in this order.

A panel is a QWidget with a ``title``, an ``icon`` file name (in resources/icons), and:
    set_project(project: Project | None)  -- the open project changed (None: closed)
    undo_stack() -> QUndoStack | None      -- joins the window's Edit > Undo / Redo
    shutdown()                             -- stop workers before the window closes
Panels never do network, model or large-disk work on the GUI thread.
Only panels that work are listed; later features add theirs here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QWidget

from studio.core.project import Project


class Panel(QWidget):
    """Base class with the do-nothing defaults of the panel contract."""

    title = "Panel"
    icon = "app.svg"

    def set_project(self, project: Project | None) -> None:
        self.project = project

    def undo_stack(self) -> QUndoStack | None:
        return None

    def shutdown(self) -> None:
        pass


@dataclass(frozen=True)
class PanelSpec:
    key: str
    factory: Callable[[], Panel]


def panel_specs() -> list[PanelSpec]:
    # Imported here so that importing the registry stays cheap.
    from studio.ui.generate_panel import GeneratePanel
    from studio.ui.curate_panel import CuratePanel
    from studio.ui.seeds_panel import SeedsPanel

    return [
        PanelSpec("seeds", SeedsPanel),
        PanelSpec("generate", GeneratePanel),
        PanelSpec("curate", CuratePanel),
    ]
