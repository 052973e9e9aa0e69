"""Seed edits as change records: committed at once, replayable either way by any undo stack.

The same protocol as curation's ``RowChange``/``Deletion`` — ``description``, ``kinds`` and
``apply(conn, *, undo=False)`` — so the UI's one ``ChangeCommand`` (or a script) undoes a
seed edit exactly as it undoes a curation change. Records hold whole database rows, not
``SeedTask`` objects: putting a row back restores its id, position and timestamps exactly.
``apply`` never publishes: whoever replays a change tells the feed (the command does).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from studio.core.changes import SEEDS
from studio.core.db import transaction
from studio.core.errors import StudioError

# Every column of seed_tasks, in the order rows are kept; ``id`` first.
SEED_COLUMNS = (
    "id", "ext_id", "name", "instruction", "instances", "is_classification", "tags",
    "position", "created_at", "updated_at",
)
# What an edit may change (with ``updated_at``); id, position and created_at stay.
CONTENT_COLUMNS = ("ext_id", "name", "instruction", "instances", "is_classification", "tags")
STRUCTURE_FIELD = "structure"  # instances added/removed, the classification flag: never merged


class SeedChangeError(StudioError):
    """A change cannot be replayed because the seeds changed since (elsewhere)."""


@dataclass
class SeedRows:
    """Whole seed rows that one side of the change has and the other lacks.

    ``added`` True: the change inserted them (an add, a duplicate, an import), so undo
    removes them and redo puts back the same ids. False: the change removed them (a delete),
    so undo puts them back with their ids and positions.
    """

    description: str
    rows: list[tuple]  # SEED_COLUMNS order
    added: bool
    kinds: ClassVar[frozenset[str]] = frozenset({SEEDS})

    @property
    def ids(self) -> list[int]:
        return [row[0] for row in self.rows]

    def apply(self, conn: sqlite3.Connection, *, undo: bool = False) -> None:
        with transaction(conn):
            if self.added != undo:
                _insert_rows(conn, self.rows)
            else:  # rows already gone (removed elsewhere) are where this change wants them
                conn.executemany("DELETE FROM seed_tasks WHERE id = ?", [(i,) for i in self.ids])

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class SeedEdit:
    """New content for one seed, with the content it replaced.

    ``field`` names what the user changed ("name", "instruction", "instance0.output",
    "structure"...) so that keystrokes in one field can become one undo step (:meth:`absorb`).
    """

    description: str
    seed_id: int
    field: str
    before: tuple  # CONTENT_COLUMNS + updated_at
    after: tuple
    kinds: ClassVar[frozenset[str]] = frozenset({SEEDS})

    @property
    def ids(self) -> list[int]:
        return [self.seed_id]

    def apply(self, conn: sqlite3.Connection, *, undo: bool = False) -> None:
        values = self.before if undo else self.after
        sets = ", ".join(f"{column} = ?" for column in (*CONTENT_COLUMNS, "updated_at"))
        with transaction(conn):
            cursor = conn.execute(f"UPDATE seed_tasks SET {sets} WHERE id = ?", (*values, self.seed_id))
            if cursor.rowcount != 1:
                raise SeedChangeError(f"Seed task #{self.seed_id} was deleted since; cannot {'undo' if undo else 'redo'} "
                                      f"“{self.description}”.")

    def can_absorb(self, later: SeedEdit) -> bool:
        """Whether ``later`` continues this edit: the same seed and field (never structure)."""
        return later.seed_id == self.seed_id and later.field == self.field and self.field != STRUCTURE_FIELD

    def absorb(self, later: SeedEdit) -> bool:
        """Become one step with ``later``: keep this ``before``, take its ``after``."""
        if not self.can_absorb(later):
            return False
        self.after = later.after
        return True

    def __len__(self) -> int:
        return 1


SeedChange = SeedRows | SeedEdit


def select_rows(conn: sqlite3.Connection, ids: Sequence[int]) -> list[tuple]:
    """Whole rows by id (SEED_COLUMNS order), in the order of ``ids``; missing ids are left out."""
    found: dict[int, tuple] = {}
    for start in range(0, len(ids), 900):  # below SQLite's parameter limit
        chunk = list(ids[start:start + 900])
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT {', '.join(SEED_COLUMNS)} FROM seed_tasks WHERE id IN ({marks})", chunk):
            found[row[0]] = tuple(row)
    return [found[i] for i in ids if i in found]


def _insert_rows(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    taken = [row[0] for row in select_rows(conn, [row[0] for row in rows])]
    if taken:
        raise SeedChangeError(f"Seed task #{taken[0]} exists again (added elsewhere since); nothing was changed.")
    marks = ",".join("?" * len(SEED_COLUMNS))
    conn.executemany(f"INSERT INTO seed_tasks ({', '.join(SEED_COLUMNS)}) VALUES ({marks})", rows)
