"""The panel contract, and the panels as registry entries.

Every hook a panel may implement is declared on :class:`Panel` with a do-nothing default, so
the window calls them all without probing. Panels are ``PANELS`` registry entries (built-ins
in ``studio/core/builtins.py``, plugins' in their manifests): the window lists them at once and
imports and builds each on first visit. Panels never do network, model or large-disk work on
the GUI thread: they hand it to ``self.jobs``.

A plugin's panel is built and called through the registry boundary (``PANELS.guard``): if its
module does not import or its ``__init__`` raises, the page is a :class:`PluginErrorPanel`
naming the plugin and the error, and the rest of the window keeps working.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QUndoStack
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from studio.core import registry
from studio.core.errors import StudioError
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


class PluginErrorPanel(Panel):
    """The page of a plugin panel that could not be built: which plugin, and its error (selectable)."""

    def __init__(self, spec: PanelSpec, error: str, parent: QWidget | None = None, *,
                 jobs: JobRunner | None = None, messages: MessageArea | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        self.title = spec.title
        self.spec = spec
        self.error = error
        heading = QLabel(f"The panel \u201c{spec.title}\u201d of the plugin \u201c{spec.source}\u201d could not be opened.")
        heading.setProperty("role", "heading")
        heading.setWordWrap(True)
        hint = QLabel("The rest of Distill Studio works as usual. Update or disable the plugin in Help \u25b8 Plugins; "
                      "the error below names what failed.")
        hint.setWordWrap(True)
        hint.setProperty("role", "muted")
        self.error_view = QPlainTextEdit(error, objectName="PluginPanelError")
        self.error_view.setReadOnly(True)
        self.error_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                                | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.plugins_button = QPushButton("Open Help \u25b8 Plugins\u2026")
        self.plugins_button.clicked.connect(self._on_plugins_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.plugins_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 24, 24, 24)
        layout.addWidget(heading)
        layout.addWidget(hint)
        layout.addWidget(self.error_view)
        layout.addLayout(buttons)
        layout.addStretch(1)
        lines = max(4, min(12, error.count("\n") + 3))
        self.error_view.setFixedHeight(lines * self.error_view.fontMetrics().lineSpacing() + 16)

    def _on_plugins_clicked(self) -> None:
        show = getattr(self.window(), "show_plugins", None)
        if show is not None:
            show(self.spec.source)


@dataclass(frozen=True)
class PanelSpec:
    """A panel as the window sees it before it is built."""

    key: str
    title: str
    icon: str
    factory: str  # "module:Class"
    source: str = registry.BUILT_IN  # "built-in" or the contributing plugin's name

    @property
    def built_in(self) -> bool:
        return self.source == registry.BUILT_IN

    def create(self, jobs: JobRunner | None = None, messages: MessageArea | None = None) -> Panel:
        """The panel, imported and built through the registry boundary.

        A plugin panel that fails (its import, its ``__init__``, or a class that is no Panel) gives a
        :class:`PluginErrorPanel` instead, so one plugin can never keep the window from working.
        Built-in panels' errors are ours and propagate.
        """
        if self.built_in:
            return registry.PANELS.load(self.key)(jobs=jobs, messages=messages)
        try:
            with registry.PANELS.guard(self.key, "building its panel"):
                cls = registry.PANELS.load(self.key)
                if not (isinstance(cls, type) and issubclass(cls, Panel)):
                    # a TypeError, not plain words: the plugin's bug, recorded by the guard for Help ▸ Plugins
                    raise TypeError(f"{self.factory} is not a studio.ui.panels.Panel subclass")
                return cls(jobs=jobs, messages=messages)
        except StudioError as exc:
            return PluginErrorPanel(self, str(exc), jobs=jobs, messages=messages)

    def call(self, panel: Panel, hook: str, *args: Any, default: Any = None,
             on_error: Callable[[str], None] | None = None) -> Any:
        """``panel.<hook>(*args)``; for a plugin's panel, through the boundary: its exception is
        recorded, handed to ``on_error`` (the window's message area) and ``default`` returned."""
        if self.built_in or isinstance(panel, PluginErrorPanel):
            return getattr(panel, hook)(*args)
        try:
            with registry.PANELS.guard(self.key, f"running its panel's {hook}()"):
                return getattr(panel, hook)(*args)
        except StudioError as exc:
            if on_error is not None:
                on_error(str(exc))
            return default


def panel_specs() -> list[PanelSpec]:
    """The built-in panels in their order, then the plugins' (a plugin never pushes a built-in page down)."""
    entries = sorted(registry.PANELS, key=lambda e: not e.built_in)  # stable: registration order otherwise
    return [PanelSpec(e.key, e.label, str(e.meta.get("icon", "app.svg")), e.target, e.source) for e in entries]
