"""The panel registry: the main window shows one page per entry, in this order.

A panel is a QWidget with a ``title``, an ``icon`` file name (in resources/icons), and:
    set_project(project: Project | None)  -- the open project changed (None: closed)
    undo_stack() -> QUndoStack | None      -- joins the window's Edit > Undo / Redo
    shutdown()                             -- stop workers before the window closes
Panels never do network, model or large-disk work on the GUI thread.
Only panels that work are listed; later features add theirs here.
"""
from __future__ import annotations

import importlib
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
    """A panel as data: the window lists it at once, imports and builds it on first visit."""

    key: str
    title: str
    icon: str
    factory: str  # "module:Class"

    def create(self) -> Panel:
        module_name, _, class_name = self.factory.partition(":")
        return getattr(importlib.import_module(module_name), class_name)()


PANELS = (
    PanelSpec("seeds", "Seeds", "seeds.svg", "studio.ui.seeds_panel:SeedsPanel"),
    PanelSpec("generate", "Generate", "generate.svg", "studio.ui.generate_panel:GeneratePanel"),
    PanelSpec("curate", "Curate", "curate.svg", "studio.ui.curate_panel:CuratePanel"),
)


def panel_specs() -> list[PanelSpec]:
    return list(PANELS)
