"""Seed tasks: the hand-written examples a generation run starts from."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from studio.core.changes import SEEDS, ChangeFeed
from studio.core.db import transaction


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


def _instances_json(seed: SeedTask) -> str:
    return json.dumps([{"input": i.input, "output": i.output} for i in seed.instances], ensure_ascii=False)


class SeedRepository:
    """Seed tasks in the project database; every method commits before it returns."""

    def __init__(self, conn: sqlite3.Connection, changes: ChangeFeed | None = None):
        self._conn = conn
        self._changes = changes or ChangeFeed()

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

    def add(self, seed: SeedTask, position: float | None = None) -> int:
        """Insert ``seed``; keeps ``seed.id`` when set (undoing a delete restores the same id)."""
        with transaction(self._conn):
            seed_id = self._insert(seed, self.next_position() if position is None else position)
        self._changes.publish(SEEDS)
        return seed_id

    def add_many(self, seeds: Iterable[SeedTask]) -> list[int]:
        """Insert all or none."""
        with transaction(self._conn):
            position = self.next_position()
            ids = []
            for offset, seed in enumerate(seeds):
                ids.append(self._insert(seed, position + offset))
        self._changes.publish(SEEDS)
        return ids

    def _insert(self, seed: SeedTask, position: float) -> int:
        now = time.time()
        cursor = self._conn.execute(
            "INSERT INTO seed_tasks (id, ext_id, name, instruction, instances, is_classification,"
            " tags, position, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                seed.id, seed.ext_id, seed.name, seed.instruction, _instances_json(seed),
                int(seed.is_classification), json.dumps(seed.tags, ensure_ascii=False), position, now, now,
            ),
        )
        seed.id = cursor.lastrowid
        return seed.id

    def update(self, seed: SeedTask) -> None:
        if seed.id is None:
            raise ValueError("update() needs a seed that has been added")
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE seed_tasks SET ext_id=?, name=?, instruction=?, instances=?, is_classification=?,"
                " tags=?, updated_at=? WHERE id=?",
                (
                    seed.ext_id, seed.name, seed.instruction, _instances_json(seed), int(seed.is_classification),
                    json.dumps(seed.tags, ensure_ascii=False), time.time(), seed.id,
                ),
            )
        self._changes.publish(SEEDS)

    def delete(self, seed_id: int) -> None:
        with transaction(self._conn):
            self._conn.execute("DELETE FROM seed_tasks WHERE id = ?", (seed_id,))
        self._changes.publish(SEEDS)
