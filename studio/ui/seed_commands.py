"""Undoable seed edits. Each command writes to the project the moment it is done or undone."""
from __future__ import annotations

import time
from typing import Protocol

from PySide6.QtGui import QUndoCommand

from studio.core.seeds import SeedTask

EDIT_COMMAND_ID = 7001
MERGE_WINDOW_S = 2.0  # keystrokes in one field within this gap undo as one step


class SeedSink(Protocol):
    """What the commands need from the panel: persist and show."""

    def store_seed(self, seed: SeedTask, *, refresh_editor: bool) -> None: ...
    def insert_seeds(self, seeds: list[tuple[SeedTask, float | None]]) -> None: ...
    def remove_seeds(self, seed_ids: list[int]) -> None: ...


class EditSeedCommand(QUndoCommand):
    """Replace one seed's state; consecutive edits of the same field merge into one step."""

    def __init__(self, sink: SeedSink, before: SeedTask, after: SeedTask, field: str, label: str):
        super().__init__(label)
        self._sink, self._before, self._after, self._field = sink, before.copy(), after.copy(), field
        self._first_redo = True
        self._stamp = time.monotonic()

    def id(self) -> int:  # noqa: A003 - Qt's name
        return EDIT_COMMAND_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, EditSeedCommand):
            return False
        same_place = other._before.id == self._before.id and other._field == self._field and self._field != "structure"
        if not same_place or other._stamp - self._stamp > MERGE_WINDOW_S:
            return False
        self._after, self._stamp = other._after, other._stamp
        return True

    def redo(self) -> None:
        # The first redo happens as the user types: the editor already shows the text.
        self._sink.store_seed(self._after.copy(), refresh_editor=not self._first_redo)
        self._first_redo = False

    def undo(self) -> None:
        self._sink.store_seed(self._before.copy(), refresh_editor=True)


class _SeedSetCommand(QUndoCommand):
    """A set of whole seeds with their display positions (None: append at the end)."""

    def __init__(self, sink: SeedSink, seeds: list[SeedTask], positions: list[float | None], label: str):
        super().__init__(label)
        self._sink = sink
        self._seeds = [s.copy() for s in seeds]
        self._positions = positions


class AddSeedsCommand(_SeedSetCommand):
    """Add seeds (new, duplicated or imported); undo removes them again."""

    def redo(self) -> None:
        pairs = list(zip([s.copy() for s in self._seeds], self._positions))
        self._sink.insert_seeds(pairs)
        # Remember the ids the store gave, so redo after undo restores the very same rows.
        for kept, (inserted, _) in zip(self._seeds, pairs):
            kept.id = inserted.id

    def undo(self) -> None:
        self._sink.remove_seeds([s.id for s in self._seeds if s.id is not None])


class DeleteSeedsCommand(_SeedSetCommand):
    """Delete seeds; undo puts them back with the same ids and positions."""

    def redo(self) -> None:
        self._sink.remove_seeds([s.id for s in self._seeds if s.id is not None])

    def undo(self) -> None:
        self._sink.insert_seeds(list(zip([s.copy() for s in self._seeds], self._positions)))
