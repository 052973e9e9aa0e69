"""Evaluation-only prompt sets in the project: ``project.prompt_sets``.

A set is imported from a file (``prompt_files``) or taken from a snapshot's validation split.
Its prompts are evaluation only: :mod:`studio.core.evaluation.guard` reads the active ones and
Generate and Train refuse them. A prompt leaves its set only by :meth:`PromptSetRepository.release`
(the loop back into seeds: it is training data from then on). The set's ``content_hash`` covers
its active prompts in order, so an evaluation records exactly what it was run on. Every write
commits at once (all or nothing) and publishes PROMPT_SETS.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from studio.core.changes import PROMPT_SETS, ChangeFeed
from studio.core.db import transaction
from studio.core.evaluation.model import EvalPrompt, EvaluationError, PromptSet, as_json
from studio.core.evaluation.prompt_files import dedupe, read_prompt_file
from studio.core.training.settings import TrainSettings

VALIDATION_SPLIT = "validation_split"  # meta["kind"] of a set taken from a snapshot
_DEFAULTS = TrainSettings()  # a validation split's defaults are the training job's


def content_hash(prompts: Iterable[EvalPrompt]) -> str:
    """sha256 over the prompts' hashes in order: the identity of what an evaluation asks."""
    digest = hashlib.sha256()
    for prompt in prompts:
        digest.update(prompt.hash.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


class PromptSetRepository:
    def __init__(self, conn: sqlite3.Connection, root: Path, changes: ChangeFeed | None = None):
        self.conn = conn
        self.root = Path(root)
        self._changes = changes or ChangeFeed()

    # -- making sets --------------------------------------------------------------------------
    def create(self, name: str, prompts: Sequence[EvalPrompt], *, source: str = "",
               meta: dict | None = None) -> PromptSet:
        """Store a new set; repeated prompts collapse to the first (``meta["duplicates_dropped"]`` adds them)."""
        name = name.strip()
        if not name:
            raise EvaluationError("A prompt set needs a name.")
        if name.isdigit():
            raise EvaluationError(f"{name!r}: a prompt set's name cannot be a number (numbers are set ids).")
        unique, dropped = dedupe(list(prompts))
        if not unique:
            raise EvaluationError(f"The prompt set {name!r} would have no prompts.")
        empty = next((n for n, p in enumerate(unique, 1) if not p.instruction.strip()), None)
        if empty is not None:
            raise EvaluationError(f"Prompt {empty} of {name!r} has no instruction.")
        meta = dict(meta or {})
        meta["duplicates_dropped"] = int(meta.get("duplicates_dropped", 0)) + dropped
        with transaction(self.conn):
            if self._find(name) is not None:
                raise EvaluationError(f"A prompt set named {name!r} already exists; choose another name.")
            cursor = self.conn.execute(
                "INSERT INTO eval_prompt_sets (name, source, content_hash, meta, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, source, content_hash(unique), as_json(meta), time.time()))
            set_id = cursor.lastrowid
            self.conn.executemany(
                "INSERT INTO eval_prompts (set_id, position, ext_id, instruction, input, reference, category,"
                " messages, prompt_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(set_id, position, p.ext_id, p.instruction, p.input, p.reference, p.category,
                  as_json(p.messages) if p.messages else None, p.hash) for position, p in enumerate(unique)])
        self._changes.publish(PROMPT_SETS)
        return self.get(set_id)

    def import_file(self, path: Path | str, name: str | None = None) -> PromptSet:
        """A set from a file (self-instruct JSONL, Alpaca JSON, JSONL of prompt or messages).

        A malformed record is an EvaluationError naming the file and line, and nothing is stored.
        """
        path = Path(path).expanduser()
        parsed = read_prompt_file(path)
        meta = {"format": parsed.format, "file": path.name, "duplicates_dropped": parsed.duplicates_dropped}
        return self.create(name or path.stem, parsed.prompts, source=str(path.resolve()), meta=meta)

    def from_validation_split(self, snapshot: int | str, *, name: str | None = None,
                              seed: int = _DEFAULTS.seed,
                              validation_fraction: float = _DEFAULTS.validation_fraction,
                              max_validation_samples: int = _DEFAULTS.max_validation_samples) -> PromptSet:
        """The records a training run with these split settings holds out of ``snapshot``, as a set.

        Exactly the training job's split (:func:`studio.core.training.split.split_records`), so a
        run on this snapshot with the same settings trains on none of them and is not refused;
        any other split would train on some, and is. A held-out record whose prompt the training
        part also holds (a duplicate in the snapshot) is left out: the run learns it anyway
        (``meta["also_in_training"]`` counts them). Defaults are the training job's.
        """
        from studio.core.evaluation.guard import record_hash
        from studio.core.snapshots import SnapshotRepository
        from studio.core.training.split import split_records

        settings = _split_settings(seed, validation_fraction, max_validation_samples)
        snap = SnapshotRepository(self.conn, self.root).get(snapshot)
        items = SnapshotRepository(self.conn, self.root).items(snap.id)
        train, held = split_records(items, settings)
        trained = {record_hash(item.instruction, item.input) for item in train}
        kept = [item for item in held if record_hash(item.instruction, item.input) not in trained]
        also_in_training, held = len(held) - len(kept), kept
        if not held and also_in_training:
            raise EvaluationError(f"Every held-out sample of snapshot {snap.name!r} is also in its training part "
                                  "(duplicates): remove the duplicates in Curate and freeze a new snapshot.")
        if not held:
            raise EvaluationError(
                f"A validation fraction of {validation_fraction:g} holds out none of the {len(items):,} samples of "
                f"snapshot {snap.name!r}; raise it (or use a snapshot of 10 samples or more).")
        prompts = [EvalPrompt(item.instruction, item.input, item.output,
                              ext_id=None if item.sample_id is None else f"sample:{item.sample_id}") for item in held]
        meta = {"kind": VALIDATION_SPLIT, "snapshot_id": snap.id, "snapshot_name": snap.name,
                "snapshot_hash": snap.content_hash, "seed": settings.seed,
                "validation_fraction": settings.validation_fraction,
                "max_validation_samples": settings.max_validation_samples, "also_in_training": also_in_training}
        return self.create(name or f"{snap.name}-validation", prompts, source=f"snapshot:{snap.id}", meta=meta)

    # -- reading ------------------------------------------------------------------------------
    def list(self) -> list[PromptSet]:
        """Every set, oldest first, with counts and categories of its active prompts."""
        rows = self.conn.execute(f"{_SET_SELECT} GROUP BY s.id ORDER BY s.id").fetchall()
        return [_row_to_set(r) for r in rows]

    def get(self, key: int | str) -> PromptSet:
        """A set by id or by name."""
        set_id = self._find(key)
        if set_id is None:
            known = ", ".join(s.name for s in self.list()) or "none yet"
            raise EvaluationError(f"No prompt set {key!r} (sets: {known}); `distill-studio eval prompts import FILE` "
                                  "makes one.")
        return _row_to_set(self.conn.execute(f"{_SET_SELECT} WHERE s.id = ? GROUP BY s.id", (set_id,)).fetchone())

    def prompts(self, key: int | str, *, include_released: bool = False) -> list[EvalPrompt]:
        """The set's prompts in position order (active ones unless ``include_released``)."""
        set_id = self.get(key).id
        released = "" if include_released else " AND released_at IS NULL"
        rows = self.conn.execute(f"SELECT * FROM eval_prompts WHERE set_id = ?{released} ORDER BY position", (set_id,))
        return [_row_to_prompt(r) for r in rows]

    def prompts_by_id(self, prompt_ids: Iterable[int]) -> dict[int, EvalPrompt]:
        """id -> prompt for the ids that exist (released ones included: old evaluations still show them)."""
        ids = sorted({int(i) for i in prompt_ids})
        found: dict[int, EvalPrompt] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"SELECT * FROM eval_prompts WHERE id IN ({marks})", chunk):
                found[row["id"]] = _row_to_prompt(row)
        return found

    def active_prompts(self) -> list[EvalPrompt]:
        """Every active prompt of every set: what the wall keeps out of generation and training."""
        rows = self.conn.execute("SELECT * FROM eval_prompts WHERE released_at IS NULL ORDER BY set_id, position")
        return [_row_to_prompt(r) for r in rows]

    # -- changing ------------------------------------------------------------------------------
    def release(self, prompt_ids: Iterable[int], to: str) -> int:
        """Take prompts out of their sets (they became seed tasks: training data from now on).

        Returns how many were released (already released ones are left as they were); each
        touched set's ``content_hash`` is recomputed over its remaining active prompts.
        """
        ids = sorted({int(i) for i in prompt_ids})
        if not ids:
            return 0
        released = 0
        with transaction(self.conn):
            sets: set[int] = set()
            now = time.time()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                where = f"id IN ({marks}) AND released_at IS NULL"
                sets.update(r[0] for r in self.conn.execute(f"SELECT DISTINCT set_id FROM eval_prompts WHERE {where}",
                                                            chunk))
                released += self.conn.execute(f"UPDATE eval_prompts SET released_at = ?, released_to = ? WHERE {where}",
                                              (now, to, *chunk)).rowcount
            for set_id in sets:
                self._rehash(set_id)
        if released:
            self._changes.publish(PROMPT_SETS)
        return released

    def rename(self, key: int | str, name: str) -> None:
        set_id = self.get(key).id
        name = name.strip()
        if not name or name.isdigit():
            raise EvaluationError("A prompt set needs a name that is not a number.")
        with transaction(self.conn):
            other = self._find(name)
            if other is not None and other != set_id:
                raise EvaluationError(f"A prompt set named {name!r} already exists; choose another name.")
            self.conn.execute("UPDATE eval_prompt_sets SET name = ? WHERE id = ?", (name, set_id))
        self._changes.publish(PROMPT_SETS)

    def delete(self, key: int | str) -> None:
        """The set and its prompts; evaluations run on it keep their records (their set becomes none)."""
        set_id = self.get(key).id
        with transaction(self.conn):
            self.conn.execute("DELETE FROM eval_prompt_sets WHERE id = ?", (set_id,))
        self._changes.publish(PROMPT_SETS)

    # -- helpers ---------------------------------------------------------------------------------
    def _find(self, key: int | str) -> int | None:
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            row = self.conn.execute("SELECT id FROM eval_prompt_sets WHERE id = ?", (int(key),)).fetchone()
        else:
            row = self.conn.execute("SELECT id FROM eval_prompt_sets WHERE name = ?", (str(key).strip(),)).fetchone()
        return None if row is None else row[0]

    def _rehash(self, set_id: int) -> None:
        rows = self.conn.execute("SELECT * FROM eval_prompts WHERE set_id = ? AND released_at IS NULL"
                                 " ORDER BY position", (set_id,))
        self.conn.execute("UPDATE eval_prompt_sets SET content_hash = ? WHERE id = ?",
                          (content_hash(_row_to_prompt(r) for r in rows), set_id))


def _split_settings(seed: int, validation_fraction: float, max_validation_samples: int) -> TrainSettings:
    """The split settings checked as the training settings check them (a fraction the job refuses is refused)."""
    from studio.core.training.settings import SettingsError

    settings = TrainSettings()
    settings.seed, settings.validation_fraction = int(seed), float(validation_fraction)
    settings.max_validation_samples = int(max_validation_samples)
    try:
        settings.validate()
    except SettingsError as exc:
        raise EvaluationError(str(exc)) from None
    return settings


_SET_SELECT = (
    "SELECT s.*, count(p.id) FILTER (WHERE p.released_at IS NULL) AS active,"
    " count(p.id) FILTER (WHERE p.released_at IS NOT NULL) AS released,"
    " json_group_array(DISTINCT CASE WHEN p.released_at IS NULL AND p.category != '' THEN p.category END)"
    " AS categories"
    " FROM eval_prompt_sets s LEFT JOIN eval_prompts p ON p.set_id = s.id")


def _row_to_set(row: sqlite3.Row) -> PromptSet:
    categories = tuple(sorted(c for c in json.loads(row["categories"]) if c))
    return PromptSet(id=row["id"], name=row["name"], source=row["source"], content_hash=row["content_hash"],
                     meta=json.loads(row["meta"]), created_at=row["created_at"], prompt_count=row["active"],
                     released_count=row["released"], categories=categories)


def _row_to_prompt(row: sqlite3.Row) -> EvalPrompt:
    return EvalPrompt(instruction=row["instruction"], input=row["input"], reference=row["reference"],
                      category=row["category"], messages=json.loads(row["messages"]) if row["messages"] else None,
                      ext_id=row["ext_id"], id=row["id"], set_id=row["set_id"], position=row["position"],
                      released_to=row["released_to"])
