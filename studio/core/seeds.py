"""Seed tasks: the hand-written examples a generation run starts from.

Every user action on seeds (add, edit, duplicate, delete, import) is a repository method that
commits, publishes SEEDS and returns the :mod:`~studio.core.seed_changes` record of what it did,
so the panel, the CLI and scripts share one write path and any of them can undo it.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from studio.core.changes import ChangeFeed
from studio.core.db import transaction
from studio.core.errors import StudioError
from studio.core.seed_changes import CONTENT_COLUMNS, STRUCTURE_FIELD, SeedEdit, SeedRows, select_rows


@dataclass
class Instance:
    input: str = ""
    output: str = ""


@dataclass
class SeedTask:
    instruction: str = ""
    instances: list[Instance] = field(default_factory=lambda: [Instance()])
    name: str = ""
    is_classification: bool = False
    tags: list[str] = field(default_factory=list)
    ext_id: str | None = None
    id: int | None = None

    def problems(self) -> list[str]:
        """What stops this seed from being a usable example; empty when it is fine."""
        found = []
        if not self.instruction.strip():
            found.append("The instruction is empty.")
        if not self.instances:
            found.append("The task needs at least one instance.")
        for number, instance in enumerate(self.instances, start=1):
            if not instance.output.strip():
                found.append(f"Instance {number} has no output.")
        return found

    def copy(self) -> SeedTask:
        return replace(self, instances=[replace(i) for i in self.instances], tags=list(self.tags))


def _row_to_seed(row: sqlite3.Row) -> SeedTask:
    return SeedTask(
        id=row["id"],
        ext_id=row["ext_id"],
        name=row["name"],
        instruction=row["instruction"],
        instances=[Instance(**item) for item in json.loads(row["instances"])],
        is_classification=bool(row["is_classification"]),
        tags=json.loads(row["tags"]),
    )


def _identity(instruction: str, instances: Iterable[tuple[str, str]] | list[dict]) -> tuple:
    pairs = [(i["input"], i["output"]) if isinstance(i, dict) else i for i in instances]
    return instruction.strip(), tuple((input.strip(), output.strip()) for input, output in pairs)


def task_identity(seed: SeedTask) -> tuple:
    """What makes two seed tasks the same task: instruction and instances, stripped.

    The name, tags and classification flag are left out: the name and tags only label a task,
    and a renamed copy still puts the same example in front of the teacher twice.
    """
    return _identity(seed.instruction, [(i.input, i.output) for i in seed.instances])


def _instances_json(seed: SeedTask) -> str:
    return json.dumps([{"input": i.input, "output": i.output} for i in seed.instances], ensure_ascii=False)


def _content(seed: SeedTask) -> tuple:
    """The seed's values for CONTENT_COLUMNS."""
    return (seed.ext_id, seed.name, seed.instruction, _instances_json(seed), int(seed.is_classification),
            json.dumps(seed.tags, ensure_ascii=False))


class UnknownSeedError(StudioError):
    """An id names no seed task in this project."""

    def __init__(self, ids: Sequence[int]):
        self.ids = list(ids)
        listed = ", ".join(f"#{i}" for i in self.ids)
        super().__init__(f"No seed task {listed} in this project." if len(self.ids) == 1
                         else f"No seed tasks {listed} in this project.")


AnyChange = TypeVar("AnyChange", SeedRows, SeedEdit)

EDIT_LABELS = {"name": "Edit name", "instruction": "Edit instruction", "tags": "Edit tags"}


def _plural(count: int, verb: str) -> str:
    return f"{verb} seed task" if count == 1 else f"{verb} {count} seed tasks"


def _as_ids(seed_ids: int | Iterable[int]) -> list[int]:
    return [seed_ids] if isinstance(seed_ids, int) else list(dict.fromkeys(seed_ids))


class SeedRepository:
    """Seed tasks in the project database; every method commits before it returns.

    The user actions (:meth:`create`, :meth:`edit`, :meth:`duplicate`, :meth:`delete`,
    :meth:`import_many`) return the change they committed; :meth:`add`, :meth:`add_many`
    and :meth:`update` are the same writes for callers that want only ids.
    """

    def __init__(self, conn: sqlite3.Connection, changes: ChangeFeed | None = None):
        self._conn = conn
        self._changes = changes or ChangeFeed()

    # -- reading -------------------------------------------------------------------------------
    def list(self, search: str = "") -> list[SeedTask]:
        sql = "SELECT * FROM seed_tasks"
        params: tuple = ()
        if search:
            pattern = f"%{search}%"
            sql += " WHERE name LIKE ? OR instruction LIKE ? OR instances LIKE ? OR tags LIKE ?"
            params = (pattern,) * 4
        rows = self._conn.execute(sql + " ORDER BY position, id", params).fetchall()
        return [_row_to_seed(row) for row in rows]

    def get(self, seed_id: int) -> SeedTask | None:
        row = self._conn.execute("SELECT * FROM seed_tasks WHERE id = ?", (seed_id,)).fetchone()
        return _row_to_seed(row) if row else None

    def require(self, seed_id: int) -> SeedTask:
        """The seed, or :class:`UnknownSeedError` (what a command line says for a wrong id)."""
        seed = self.get(seed_id)
        if seed is None:
            raise UnknownSeedError([seed_id])
        return seed

    def count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM seed_tasks").fetchone()[0]

    def position_of(self, seed_id: int) -> float | None:
        row = self._conn.execute("SELECT position FROM seed_tasks WHERE id = ?", (seed_id,)).fetchone()
        return row[0] if row else None

    def position_after(self, seed_id: int) -> float:
        """A display position between this seed and the next one (where a duplicate goes)."""
        here = self.position_of(seed_id)
        following = self._conn.execute(
            "SELECT MIN(position) FROM seed_tasks WHERE position > ?", (here,)
        ).fetchone()[0]
        return (here + (following if following is not None else here + 2)) / 2

    def next_position(self) -> float:
        return self._conn.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM seed_tasks").fetchone()[0]

    # -- user actions: each commits, publishes and returns its change ----------------------------
    def create(self, seed: SeedTask | None = None, *, position: float | None = None) -> SeedRows:
        """Add one seed (an empty one by default) at ``position`` or at the end.

        Gives ``seed`` its id; keeps ``seed.id`` when set.
        """
        return self._published(self._insert_all("New seed task", [seed or SeedTask()], [position]))

    def import_many(self, seeds: Iterable[SeedTask], *, description: str | None = None,
                    skip_identical: bool = False) -> SeedRows:
        """Append all seeds or none, as one change (one undo step for a whole file).

        ``skip_identical`` (what a file import wants): leave out each seed whose task is already in
        the project (:func:`task_identity`), so importing a file again adds nothing; the change
        holds only the seeds added, and ``len(seeds) - len(change)`` were skipped.
        """
        seeds = list(seeds)
        with transaction(self._conn):  # the check and the insert see the same seeds
            if skip_identical:
                existing = {
                    _identity(instruction, json.loads(instances))
                    for instruction, instances in self._conn.execute("SELECT instruction, instances FROM seed_tasks")
                }
                seeds = [seed for seed in seeds if task_identity(seed) not in existing]
            description = description or _plural(len(seeds), "Import")
            change = self._insert_all(description, seeds, [None] * len(seeds))
        return self._published(change)

    def duplicate(self, seed_ids: int | Iterable[int]) -> SeedRows:
        """Copy seeds, each copy right after its original; a named seed's copy is ``name_copy``."""
        ids = _as_ids(seed_ids)
        with transaction(self._conn):
            originals = self._require_all(ids)
            positions = [self.position_after(seed.id) for seed in originals]
            copies = []
            for seed in originals:
                copy = seed.copy()
                copy.id, copy.ext_id = None, None
                copy.name = f"{seed.name}_copy" if seed.name else ""
                copies.append(copy)
            change = self._insert_all(_plural(len(copies), "Duplicate"), copies, positions)
        return self._published(change)

    def edit(self, seed: SeedTask, *, field: str = STRUCTURE_FIELD) -> SeedEdit:
        """Store the seed's new content; ``field`` says what changed, so keystrokes can merge."""
        if seed.id is None:
            raise ValueError("edit() needs a seed that has been added")
        with transaction(self._conn):
            columns = ", ".join((*CONTENT_COLUMNS, "updated_at"))
            row = self._conn.execute(f"SELECT {columns} FROM seed_tasks WHERE id = ?", (seed.id,)).fetchone()
            if row is None:
                raise UnknownSeedError([seed.id])
            change = SeedEdit(EDIT_LABELS.get(field, "Edit seed task"), seed.id, field, tuple(row),
                              (*_content(seed), time.time()))
            change.apply(self._conn)
        return self._published(change)

    def delete(self, seed_ids: int | Iterable[int]) -> SeedRows:
        """Delete seeds (all named ids must exist); undo puts them back with ids and positions."""
        ids = _as_ids(seed_ids)
        with transaction(self._conn):
            self._require_all(ids)
            change = SeedRows(_plural(len(ids), "Delete"), select_rows(self._conn, ids), added=False)
            change.apply(self._conn)
        return self._published(change)

    # -- the same writes, for callers that want ids ------------------------------------------
    def add(self, seed: SeedTask, position: float | None = None) -> int:
        """Insert ``seed`` and return its id; keeps ``seed.id`` when set."""
        return self.create(seed, position=position).ids[0]

    def add_many(self, seeds: Iterable[SeedTask]) -> list[int]:
        """Insert all or none; the ids in order."""
        return self.import_many(seeds).ids

    def update(self, seed: SeedTask) -> SeedEdit:
        """:meth:`edit` under its older name."""
        return self.edit(seed)

    # -- helpers ---------------------------------------------------------------------------------
    def _require_all(self, ids: list[int]) -> list[SeedTask]:
        seeds = [self.get(i) for i in ids]
        missing = [i for i, seed in zip(ids, seeds) if seed is None]
        if missing:
            raise UnknownSeedError(missing)
        return seeds

    def _insert_all(self, description: str, seeds: list[SeedTask], positions: list[float | None]) -> SeedRows:
        with transaction(self._conn):
            end = self.next_position()
            ids = []
            for seed, position in zip(seeds, positions):
                if position is None:
                    position, end = end, end + 1
                ids.append(self._insert(seed, position))
            return SeedRows(description, select_rows(self._conn, ids), added=True)

    def _published(self, change: AnyChange) -> AnyChange:
        """Tell the feed, after the commit, unless the change is empty (an empty file)."""
        if len(change):
            self._changes.publish(*change.kinds)
        return change

    def _insert(self, seed: SeedTask, position: float) -> int:
        now = time.time()
        cursor = self._conn.execute(
            "INSERT INTO seed_tasks (id, ext_id, name, instruction, instances, is_classification,"
            " tags, position, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (seed.id, *_content(seed), position, now, now),
        )
        seed.id = cursor.lastrowid
        return seed.id
