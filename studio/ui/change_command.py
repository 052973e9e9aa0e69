"""A core curation change on the Qt undo stack.

Changes are committed the moment the user makes them; pushing the command must not apply
it a second time, so the first ``redo`` (which ``QUndoStack.push`` calls) does nothing.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from studio.core.curation import Change


class ChangeCommand(QUndoCommand):
    def __init__(self, conn: sqlite3.Connection, change: Change, on_applied: Callable[[], None]):
        super().__init__(change.description)
        self._conn = conn
        self._change = change
        self._on_applied = on_applied
        self._done = True  # already committed by the caller

    def redo(self) -> None:
        if self._done:
            self._done = False
            return
        self._change.apply(self._conn)
        self._on_applied()

    def undo(self) -> None:
        self._change.apply(self._conn, undo=True)
        self._on_applied()
