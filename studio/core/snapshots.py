"""Snapshots: named, frozen, content-hashed datasets that training runs point at.

Rows are copied into ``snapshot_items`` (schema triggers refuse updates) and written to
``snapshots/<id>.jsonl``, so later edits to samples never change what a model was trained
on. The hash covers the records' text in order and nothing else: the same data frozen
twice, at any time, under any name, has the same hash.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.changes import SNAPSHOTS, ChangeFeed
from studio.core.curation import SampleQuery, fetch_steps, where_sql
from studio.core.db import transaction
from studio.core.errors import StudioError
from studio.core.formats import Record, atomic_write_lines
from studio.core.jobs import Progress, Steps, run_to_end

SNAPSHOT_DIR = "snapshots"


class SnapshotError(StudioError):
    """A snapshot could not be made or found."""


@dataclass(frozen=True)
class Snapshot:
    id: int
    name: str
    created_at: float
    content_hash: str
    sample_count: int
    filter: dict
    path: str
    note: str = ""


@dataclass(frozen=True)
class Item:
    sample_id: int | None
    instruction: str
    input: str
    output: str

    @property
    def record(self) -> Record:
        return Record(self.instruction, self.input, self.output)


@dataclass
class SnapshotDiff:
    added: list[Item] = field(default_factory=list)     # in the second only
    removed: list[Item] = field(default_factory=list)   # in the first only
    changed: list[tuple[Item, Item]] = field(default_factory=list)  # same sample, other text
    unchanged: int = 0


def hash_items(items: list[Item]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.instruction, item.input, item.output], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _item_json(item: Item) -> str:
    return json.dumps(
        {"sample_id": item.sample_id, "instruction": item.instruction, "input": item.input, "output": item.output},
        ensure_ascii=False,
    )


def _row_to_snapshot(row: sqlite3.Row) -> Snapshot:
    return Snapshot(
        id=row["id"], name=row["name"], created_at=row["created_at"], content_hash=row["content_hash"],
        sample_count=row["sample_count"], filter=json.loads(row["filter"]), path=row["path"], note=row["note"],
    )


class SnapshotRepository:
    """Snapshots of one project (``root`` is the project folder, for the JSONL copies)."""

    def __init__(self, conn: sqlite3.Connection, root: Path, changes: ChangeFeed | None = None):
        self.conn = conn
        self.root = Path(root)
        self._changes = changes or ChangeFeed()

    def create(self, name: str, query: SampleQuery | None = None, note: str = "") -> Snapshot:
        """Freeze the samples ``query`` selects (default: every accepted one), in id order."""
        return run_to_end(self.create_steps(name, query, note))

    def create_steps(self, name: str, query: SampleQuery | None = None, note: str = "") -> Steps[Snapshot]:
        """:meth:`create` as a step generator for the job runner (cancelling rolls it back)."""
        name = name.strip()
        if not name:
            raise SnapshotError("A snapshot needs a name.")
        if query is None:
            query = SampleQuery(statuses=("accepted",))
        query = SampleQuery(**{**query.__dict__, "sort": "id", "descending": False})
        where, params = where_sql(self.conn, query)
        with transaction(self.conn):
            if self.conn.execute("SELECT 1 FROM snapshots WHERE name = ?", (name,)).fetchone():
                raise SnapshotError(f"A snapshot named {name!r} already exists; snapshots are never overwritten.")
            cursor = self.conn.execute(
                f"SELECT id, instruction, input, output FROM samples WHERE {where} ORDER BY samples.id", params
            )
            rows = yield from fetch_steps(cursor)
            if not rows:
                raise SnapshotError("Nothing to freeze: no sample matches (by default a snapshot holds accepted samples).")
            items = [Item(r[0], r[1], r[2], r[3]) for r in rows]
            yield Progress(1, 3, f"Freezing {len(items):,} samples")
            # The write lock is held (BEGIN IMMEDIATE), so the next id is ours; the row is
            # written complete at once, because the schema refuses later changes to it.
            snapshot_id = self.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM snapshots").fetchone()[0]
            relative = f"{SNAPSHOT_DIR}/{snapshot_id}.jsonl"
            self.conn.execute(
                "INSERT INTO snapshots (id, name, created_at, content_hash, sample_count, filter, path, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (snapshot_id, name, time.time(), hash_items(items), len(items), query.to_json(), relative, note),
            )
            # A thousand rows per executemany: one call over 17K rows keeps the GIL ~50 ms.
            for start in range(0, len(items), 1000):
                self.conn.executemany(
                    "INSERT INTO snapshot_items (snapshot_id, position, sample_id, instruction, input, output)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(snapshot_id, n, i.sample_id, i.instruction, i.input, i.output)
                     for n, i in enumerate(items[start:start + 1000], start)],
                )
                yield Progress(1, 3, f"Freezing {len(items):,} samples")
            yield Progress(2, 3, "Writing the snapshot file")
            # Written inside the transaction: a failed write rolls the database back too.
            (self.root / SNAPSHOT_DIR).mkdir(exist_ok=True)
            atomic_write_lines(self.root / relative, (_item_json(i) for i in items))
        self._changes.publish(SNAPSHOTS)
        return self.get(snapshot_id)

    def list(self) -> list[Snapshot]:
        return [_row_to_snapshot(r) for r in self.conn.execute("SELECT * FROM snapshots ORDER BY id")]

    def get(self, key: int | str) -> Snapshot:
        """A snapshot by id or by name."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            row = self.conn.execute("SELECT * FROM snapshots WHERE id = ? OR name = ?", (int(key), str(key))).fetchone()
        else:
            row = self.conn.execute("SELECT * FROM snapshots WHERE name = ?", (key,)).fetchone()
        if row is None:
            raise SnapshotError(f"No snapshot {key!r}. `distill-studio snapshot list` shows them.")
        return _row_to_snapshot(row)

    def items(self, key: int | str) -> list[Item]:
        snapshot = self.get(key)
        rows = self.conn.execute(
            "SELECT sample_id, instruction, input, output FROM snapshot_items WHERE snapshot_id = ? ORDER BY position",
            (snapshot.id,),
        )
        return [Item(*row) for row in rows]

    def records(self, key: int | str) -> list[Record]:
        return [item.record for item in self.items(key)]

    def export_steps(self, key: int | str, path: Path, fmt: str, *, val_fraction: float = 0.0,
                     seed: int = 0) -> Steps[dict]:
        """Write a snapshot as a training dataset; returns the files written per split."""
        from studio.core import exports  # pulls in datasets/pyarrow only for those formats

        records = self.records(key)
        yield Progress(1, 2, f"Writing {len(records):,} samples")
        return exports.export(path, records, fmt, val_fraction=val_fraction, seed=seed)

    def diff(self, first: int | str, second: int | str) -> SnapshotDiff:
        """What changed from ``first`` to ``second``, matching items by sample id."""
        old = {item.sample_id: item for item in self.items(first)}
        new = {item.sample_id: item for item in self.items(second)}
        result = SnapshotDiff()
        for sample_id, item in new.items():
            before = old.get(sample_id)
            if before is None:
                result.added.append(item)
            elif before.record != item.record:
                result.changed.append((before, item))
            else:
                result.unchanged += 1
        result.removed = [item for sample_id, item in old.items() if sample_id not in new]
        return result
