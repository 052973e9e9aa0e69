"""The panel contract, and the panels as registry entries.

Every hook a panel may implement is declared on :class:`Panel` with a do-nothing default, so
the window calls them all without probing. Panels are ``PANELS`` registry entries (built-ins
in ``studio/core/builtins.py``, plugins' in their manifests): the window lists them at once and
imports and builds each on first visit. Panels never do network, model or large-disk work on
the GUI thread: they hand it to ``self.jobs``.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QUndoStack
from PySide6.QtWidgets import QWidget

from studio.core import registry
from studio.core.project import Project
from studio.ui.jobs import JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.project_context import ProjectContext


class Panel(QWidget):
    """Base class with the defaults of the panel contract."""

    title = "Panel"
    icon = "app.svg"
    status_message = Signal(str)  # a short notice for the window's status bar

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None):
        super().__init__(parent)
        # The window passes its runner and its one message area; a panel built alone (tests)
        # gets its own (the area then sits outside any layout: its state is still readable).
        self.jobs = jobs if jobs is not None else JobRunner(self)
        self.messages = messages if messages is not None else MessageArea()
        self.context: ProjectContext | None = None
        self.project: Project | None = None

    def set_context(self, context: ProjectContext | None) -> None:
        """The open project changed (None: closed). Subscribe to ``context``'s signals here."""
        self.context = context
        self.project = context.project if context is not None else None

    def undo_stack(self) -> QUndoStack | None:
        """A stack that joins the window's Edit ▸ Undo / Redo while this panel is shown."""
        return None

    def menu_actions(self) -> list[QAction]:
        """Actions for a menu named after the panel (empty: no menu)."""
        return []

    def shutdown(self) -> None:
        """The window is closing: cancel work and return at once (never wait for a thread)."""

    def open_panel(self, key: str) -> Panel | None:
        """Switch the main window to panel ``key`` and return it (None outside a window, or no such panel)."""
        show = getattr(self.window(), "show_panel", None)
        if show is None:
            return None
        try:
            return show(key)
        except ValueError:  # not registered (a plugin's panel that is off)
            return None


@dataclass(frozen=True)
class PanelSpec:
    """A panel as the window sees it before it is built."""

    key: str
    title: str
    icon: str
    factory: str  # "module:Class"

    def create(self, jobs: JobRunner | None = None, messages: MessageArea | None = None) -> Panel:
        cls = registry.PANELS.load(self.key)
        return cls(jobs=jobs, messages=messages)


def panel_specs() -> list[PanelSpec]:
    return [PanelSpec(e.key, e.label, str(e.meta.get("icon", "app.svg")), e.target) for e in registry.PANELS]
