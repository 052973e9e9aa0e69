"""Seed edits on the shared undo path, with keystrokes in one field merged into one step.

Every seed change is a core record (:mod:`studio.core.seed_changes`) on the same
:class:`ChangeCommand` as Curate's. Only typing needs more: without merging, each keystroke
would be its own undo step, so this subclass adds Qt's merge hooks and nothing else — applying,
notifying and refreshing stay the shared command's.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from studio.core.seed_changes import SeedEdit
from studio.ui.change_command import ChangeCommand
from studio.ui.project_context import ProjectContext

EDIT_COMMAND_ID = 7001
MERGE_WINDOW_S = 2.0  # keystrokes in one field with gaps below this undo as one step


class SeedEditCommand(ChangeCommand):
    """A :class:`SeedEdit` that absorbs the next edit of the same seed and field, if it comes soon."""

    def __init__(self, context: ProjectContext, change: SeedEdit, on_applied: Callable[[], None] | None = None):
        super().__init__(context, change, on_applied)
        self._stamp = time.monotonic()

    def id(self) -> int:  # noqa: A003 - Qt's name
        return EDIT_COMMAND_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, SeedEditCommand) or other._stamp - self._stamp > MERGE_WINDOW_S:
            return False
        if not self.change.absorb(other.change):
            return False
        self._stamp = other._stamp
        return True
