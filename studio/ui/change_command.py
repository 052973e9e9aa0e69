"""A committed core change on the Qt undo stack — the one undo path for every panel.

Core changes (Curate's row changes and deletions, seed edits) are committed the moment the
user makes them; pushing the command must not apply them a second time, so the first ``redo``
(which ``QUndoStack.push`` calls) does nothing. Undo and redo apply the change through the
project's connection and then tell the project context what kinds of thing changed, so every
view refreshes the same way as after the original edit.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Protocol

from PySide6.QtGui import QUndoCommand

from studio.core.errors import StudioError
from studio.ui.project_context import ProjectContext


class CoreChange(Protocol):
    description: str
    kinds: frozenset[str]

    def apply(self, conn, *, undo: bool = False) -> None: ...


class ChangeCommand(QUndoCommand):
    def __init__(self, context: ProjectContext, change: CoreChange, on_applied: Callable[[], None] | None = None):
        super().__init__(change.description)
        self._context = context
        self.change = change
        self._on_applied = on_applied
        self._done = True  # already committed by the caller

    def redo(self) -> None:
        if self._done:
            self._done = False
            return
        self._apply(undo=False)

    def undo(self) -> None:
        self._apply(undo=True)

    def _apply(self, *, undo: bool) -> None:
        try:
            self.change.apply(self._context.project.conn, undo=undo)
        except (StudioError, sqlite3.Error) as exc:
            # The data moved on since (the seed was deleted elsewhere, the text now clashes):
            # say so, change nothing, and drop the step rather than pretend it was undone.
            verb = "undo" if undo else "redo"
            self._context.report_problem(f"Could not {verb} “{self.change.description}”: {exc}")
            self.setObsolete(True)
            return
        self._context.notify(*self.change.kinds)
        if self._on_applied is not None:
            self._on_applied()
