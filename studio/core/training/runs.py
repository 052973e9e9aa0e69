"""Training runs in the project store: the row that links a snapshot to a run folder.

A run is a row in ``training_runs`` plus a folder ``runs/<id>/`` holding what the job reads
(``config.json``) and writes (``events.jsonl``, ``adapter/``, ``checkpoints/`` …). The job is a
child process that knows nothing of the database; the row learns what happened from the
events file, tailed from a saved byte offset (:meth:`TrainingRunRepository.sync`), so a run
started from the CLI, the panel or a rented GPU box (``train import-run``) reads the same way
and a million-event run is never re-read whole. No torch, no Qt: the GUI process uses it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.changes import TRAINING_RUNS, ChangeFeed
from studio.core.db import transaction
from studio.core.errors import StudioError
from studio.core.snapshots import SnapshotRepository
from studio.core.training import events as ev
from studio.core.training.run_config import RunConfig, RunFolder
from studio.core.training.settings import TrainSettings

RUN_STATUSES = ("created", "running", "stopped", "done", "failed")
CREATED, RUNNING, STOPPED, DONE, FAILED = RUN_STATUSES
FINISHED_STATUSES = (STOPPED, DONE, FAILED)
RUNS_DIR = "runs"
_STATUS_OF_FINAL = {ev.STOPPED: STOPPED, ev.DONE: DONE, ev.ERROR: FAILED}


class TrainingRunError(StudioError):
    """A training run is unknown, or cannot be changed the way asked."""


@dataclass(frozen=True)
class TrainingRun(RunFolder):
    id: int
    name: str
    snapshot_id: int | None
    snapshot_name: str
    base_model: str
    settings: TrainSettings
    status: str
    run_dir: Path                  # absolute
    created_at: float
    updated_at: float
    finished_at: float | None
    error: str                     # the last error message ("" if none)
    last_step: int
    max_steps: int | None

    def __hash__(self) -> int:  # settings are mutable; a run is one row
        return hash((self.id, self.updated_at))

    @property
    def folder(self) -> Path:
        return self.run_dir

    @property
    def has_adapter(self) -> bool:
        """A usable adapter is there (what peft's ``from_pretrained`` needs first)."""
        return (self.adapter_dir / "adapter_config.json").is_file()

    @property
    def label(self) -> str:
        return f"#{self.id} {self.name}" if self.name else f"#{self.id}"

    def read_config(self) -> RunConfig:
        return RunConfig.read(self.config_path)


class TrainingRunRepository:
    """The training runs of one project (``root`` is the project folder). One per connection."""

    def __init__(self, conn: sqlite3.Connection, root: Path, changes: ChangeFeed | None = None):
        self.conn = conn
        self.root = Path(root)
        self._changes = changes or ChangeFeed()

    # -- creating -------------------------------------------------------------------------
    def create(self, *, snapshot: int | str, base_model: str, settings: TrainSettings,
               name: str = "") -> TrainingRun:
        """A new run: its row and ``runs/<id>/config.json``, ready for ``python -m studio.train``.

        The config names the snapshot's own frozen JSONL file and content hash, so what the
        model is trained on never changes after the row is written. A snapshot whose training
        split holds an evaluation-only prompt is refused (``studio.core.evaluation.guard``).
        """
        snap = SnapshotRepository(self.conn, self.root).get(snapshot)
        settings.validate()
        from studio.core.registry import TRAINERS

        TRAINERS.get(settings.trainer)  # an unknown trainer (a plugin not installed) is refused before a run exists
        base_model = _resolve_base_model(base_model)
        name = name.strip()
        data_path = (self.root / snap.path).resolve()
        if not data_path.is_file():
            raise TrainingRunError(f"{data_path}: the file of snapshot {snap.name!r} is missing; "
                                   "create the snapshot again")
        if snap.sample_count == 0 or not _has_a_line(data_path):
            raise TrainingRunError(f"snapshot {snap.name!r} has no samples; choose a snapshot with samples")
        _refuse_eval_prompts(self.conn, snap.id, snap.name, settings)
        _check_local_model(base_model)
        now = time.time()
        with transaction(self.conn):
            if name:
                self._check_name(name)
            run_id = self.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM training_runs").fetchone()[0]
            if not name:
                name = self._default_name(run_id)
            relative = f"{RUNS_DIR}/{run_id}"
            run_dir = self.root / relative
            config = RunConfig(
                run_id=run_id, run_name=name, run_dir=str(run_dir), base_model=base_model,
                data_path=str(data_path), snapshot_hash=snap.content_hash, snapshot_name=snap.name,
                settings=settings,
            )
            self.conn.execute(
                "INSERT INTO training_runs (id, name, snapshot_id, base_model, config, status, run_dir,"
                " created_at, updated_at, max_steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, snap.id, base_model, _config_json(config), CREATED, relative, now, now,
                 settings.max_steps if settings.max_steps > 0 else None),
            )
            # Written inside the transaction: a failed write leaves no row behind.
            if run_dir.exists():  # left by a run whose row was lost: never mix two runs' files
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            config.write()
        self._changes.publish(TRAINING_RUNS)
        return self.get(run_id)

    def insert_imported(self, config: RunConfig, *, snapshot_id: int | None, status: str,
                        created_at: float) -> TrainingRun:
        """The row of a run trained elsewhere, its folder already copied to ``runs/<id>/``.

        Called by :func:`studio.core.training.launch.import_run` with ``config.run_id`` set to
        :meth:`next_id`; the events file is then read by :meth:`sync` like a local run's.
        """
        name = config.run_name.strip()
        with transaction(self.conn):
            if not name or name.isdigit():
                name = self._default_name(int(config.run_id))
            elif self._name_taken(name):  # the run it was exported from, most often
                name = self._default_name(int(config.run_id), prefix=f"{name}-imported-")
            config.run_name = name
            config.write()
            self.conn.execute(
                "INSERT INTO training_runs (id, name, snapshot_id, base_model, config, status, run_dir,"
                " created_at, updated_at, max_steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (int(config.run_id), name, snapshot_id, config.base_model, _config_json(config), status,
                 f"{RUNS_DIR}/{config.run_id}", created_at, time.time(),
                 config.settings.max_steps if config.settings.max_steps > 0 else None),
            )
        self._changes.publish(TRAINING_RUNS)
        return self.get(int(config.run_id))

    def next_id(self) -> int:
        return self.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM training_runs").fetchone()[0]

    # -- reading --------------------------------------------------------------------------
    def list(self) -> list[TrainingRun]:
        """Every run, newest first."""
        return [self._row_to_run(r) for r in self.conn.execute(f"{_SELECT} ORDER BY r.id DESC")]

    def get(self, key: int | str) -> TrainingRun:
        """A run by id or by name."""
        row = None
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            row = self.conn.execute(f"{_SELECT} WHERE r.id = ?", (int(key),)).fetchone()
        if row is None and isinstance(key, str) and key.strip():
            row = self.conn.execute(f"{_SELECT} WHERE r.name = ?", (key.strip(),)).fetchone()
        if row is None:
            raise TrainingRunError(f"no training run {key!r}; `distill-studio train list` shows them")
        return self._row_to_run(row)

    def events_offset(self, key: int | str) -> int:
        """How far the events file has been read into the store (a tail may resume there)."""
        run = self.get(key)
        return self.conn.execute("SELECT events_offset FROM training_runs WHERE id = ?", (run.id,)).fetchone()[0]

    def for_snapshot(self, snapshot_id: int) -> list[TrainingRun]:
        """The runs trained on one snapshot (lineage: snapshot → run)."""
        rows = self.conn.execute(f"{_SELECT} WHERE r.snapshot_id = ? ORDER BY r.id DESC", (snapshot_id,))
        return [self._row_to_run(r) for r in rows]

    def lineage(self, key: int | str) -> dict[str, Any]:
        """Where the run's data came from: seed tasks → generation runs → samples → snapshot → run.

        Counted over the snapshot's items whose sample is still in the project (a deleted
        sample keeps its frozen copy in the snapshot but no origin); ``missing`` says how many.
        """
        run = self.get(key)
        found: dict[str, Any] = {
            "run": {"id": run.id, "name": run.name, "status": run.status, "base_model": run.base_model},
            "snapshot": None, "origins": {}, "generation_runs": [], "seed_tasks": 0, "missing": 0,
        }
        if run.snapshot_id is None:
            return found
        snap = SnapshotRepository(self.conn, self.root).get(run.snapshot_id)
        found["snapshot"] = {"id": snap.id, "name": snap.name, "content_hash": snap.content_hash,
                             "sample_count": snap.sample_count, "created_at": snap.created_at}
        items = ("FROM snapshot_items i JOIN samples s ON s.id = i.sample_id WHERE i.snapshot_id = ?")
        found["origins"] = dict(self.conn.execute(
            f"SELECT s.origin, COUNT(*) {items} GROUP BY s.origin ORDER BY s.origin", (snap.id,)).fetchall())
        found["generation_runs"] = [
            {"id": run_id, "teacher_model": teacher, "samples": count}
            for run_id, teacher, count in self.conn.execute(
                f"SELECT s.run_id, g.teacher_model, COUNT(*) {items.replace('WHERE', 'LEFT JOIN generation_runs g ON g.id = s.run_id WHERE')}"
                " AND s.run_id IS NOT NULL GROUP BY s.run_id ORDER BY s.run_id", (snap.id,))
        ]
        found["seed_tasks"] = self.conn.execute(
            "SELECT COUNT(DISTINCT j.value) FROM snapshot_items i JOIN samples s ON s.id = i.sample_id,"
            " json_each(s.seed_ids) j WHERE i.snapshot_id = ?", (snap.id,)).fetchone()[0]
        present = sum(found["origins"].values())
        found["missing"] = snap.sample_count - present
        return found

    # -- changing -------------------------------------------------------------------------
    def rename(self, key: int | str, name: str) -> None:
        run = self.get(key)
        name = name.strip()
        if not name:
            raise TrainingRunError("a training run needs a name")
        with transaction(self.conn):
            if name != run.name:
                self._check_name(name)
            config = self._config(run)
            config.run_name = name
            self.conn.execute("UPDATE training_runs SET name = ?, config = ?, updated_at = ? WHERE id = ?",
                              (name, _config_json(config), time.time(), run.id))
            if run.config_path.is_file():
                config.write()
        self._changes.publish(TRAINING_RUNS)

    def prepare_resume(self, key: int | str) -> TrainingRun:
        """Make the run's config continue from its newest checkpoint, and clear a stale Stop.

        The job itself finds the checkpoint and keeps the step numbers; here the config gets
        ``resume: true`` and the stop file (left by the Stop that ended the run) goes away, or
        the resumed job would stop again at its first step.
        """
        from studio.core.training.launch import live_pid

        run = self.get(key)
        if live_pid(run) is not None:
            raise TrainingRunError(f"training run {run.label} is still running; stop it first")
        if run.status == "done":
            raise TrainingRunError(f"training run {run.label} is done; nothing to resume "
                                   "(start a new run to train more)")
        if not run.config_path.is_file():
            raise TrainingRunError(f"{run.config_path}: the run's config is missing; it cannot be resumed")
        self.refuse_eval_prompts(run)
        config = run.read_config()
        config.resume = True
        config.write()
        run.stop_path.unlink(missing_ok=True)
        with transaction(self.conn):
            self.conn.execute("UPDATE training_runs SET config = ?, updated_at = ? WHERE id = ?",
                              (_config_json(config), time.time(), run.id))
        self._changes.publish(TRAINING_RUNS)
        return self.get(run.id)

    def refuse_eval_prompts(self, key: int | str | TrainingRun) -> TrainingRun:
        """Refuse a stored run whose training split holds an evaluation-only prompt *now*.

        ``create`` checks once, but a prompt set imported after the run was created must stop it
        too: resuming it (``prepare_resume``) or exporting it to another machine
        (``train export-job``) would train on the set. A run without a local snapshot (imported
        with its own copy of the data) is not checked here.
        """
        run = key if isinstance(key, TrainingRun) else self.get(key)
        if run.snapshot_id is not None:
            _refuse_eval_prompts(self.conn, run.snapshot_id, run.snapshot_name, run.settings)
        return run

    def record_events(self, key: int | str, events: list[dict[str, Any]]) -> TrainingRun:
        """Fold events (in the order the job wrote them) into the row's status, step and error.

        ``config``/``progress``/… mean the job runs; ``stopped``/``done``/``error`` end it.
        A non-final event older than the run's end (the same stream fed twice, once from
        stdout and once from the file) does not reopen a finished run; a newer one (a
        resumed job) does.
        """
        run = self.get(key)
        state = _RowState(run.status, run.last_step, run.max_steps, run.error, run.finished_at)
        for event in events:
            state.apply(event)
        if state.unchanged_from(run):
            return run
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE training_runs SET status = ?, last_step = ?, max_steps = ?, error = ?, finished_at = ?,"
                " updated_at = ? WHERE id = ?",
                (state.status, state.last_step, state.max_steps, state.error, state.finished_at,
                 time.time(), run.id),
            )
        self._changes.publish(TRAINING_RUNS)
        return self.get(run.id)

    def sync(self, key: int | str) -> TrainingRun:
        """Read what the job appended to ``events.jsonl`` since the last sync and record it.

        A run still marked running whose job is gone without a final event (killed, the
        machine rebooted) is marked failed, saying that Resume continues from its checkpoint.
        """
        from studio.core.training.launch import live_pid

        run = self.get(key)
        had_pid = run.pid_path.is_file()
        alive = live_pid(run) is not None        # asked before reading: a dead job wrote all it will
        offset = self.events_offset(run.id)
        try:
            if run.events_path.stat().st_size < offset:
                offset = 0  # the file was replaced (copied over, truncated): read it again from the start
        except FileNotFoundError:
            pass
        tail = ev.EventTail(run.events_path, offset)
        updated = run
        while batch := tail.read_new():
            updated = self.record_events(run.id, batch)
        if tail.offset != self.events_offset(run.id):
            with transaction(self.conn):
                self.conn.execute("UPDATE training_runs SET events_offset = ? WHERE id = ?", (tail.offset, run.id))
        if updated.status == RUNNING and had_pid and not alive:
            updated = self.record_events(run.id, [{
                "type": ev.ERROR, "time": time.time(), "kind": "lost",
                "message": "the training process ended without a final event (killed, or the machine restarted)",
                "hint": "Resume continues from the last checkpoint",
            }])
        return updated

    def delete(self, key: int | str) -> None:
        """The row, its per-sample losses and its folder; a job still running is refused."""
        from studio.core.training.launch import live_pid

        run = self.get(key)
        if live_pid(run) is not None:
            raise TrainingRunError(f"training run {run.label} is still running; stop it before deleting it")
        doomed = run.run_dir.with_name(f".deleting-{run.run_dir.name}-{os.getpid()}")
        with transaction(self.conn):
            self.conn.execute("DELETE FROM training_runs WHERE id = ?", (run.id,))
            if run.run_dir.exists():  # moved aside first: a failed delete keeps row and folder
                run.run_dir.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        self._changes.publish(TRAINING_RUNS)

    # -- hardest samples ------------------------------------------------------------------
    def import_hardest(self, key: int | str) -> int:
        """``runs/<id>/hardest.jsonl`` (per-sample losses under the adapter) into the store.

        Replaces the run's earlier scores; lines without a sample id (an item whose sample
        was gone when the snapshot was frozen) cannot be shown in Curate and are skipped.
        Returns how many samples were scored.
        """
        run = self.get(key)
        scores = _read_hardest(run.hardest_path)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        with transaction(self.conn):
            self.conn.execute("DELETE FROM training_sample_losses WHERE run_id = ?", (run.id,))
            for start in range(0, len(ranked), 1000):
                self.conn.executemany(
                    "INSERT INTO training_sample_losses (run_id, sample_id, loss, rank) VALUES (?, ?, ?, ?)",
                    [(run.id, sample_id, loss, rank)
                     for rank, (sample_id, loss) in enumerate(ranked[start:start + 1000], start + 1)],
                )
        self._changes.publish(TRAINING_RUNS)
        return len(ranked)

    def hardest(self, key: int | str, top: int | None = None) -> list[tuple[int, float]]:
        """``(sample_id, loss)`` of the run's scored samples, worst first."""
        run = self.get(key)
        limit = -1 if top is None else max(0, int(top))
        rows = self.conn.execute(
            "SELECT sample_id, loss FROM training_sample_losses WHERE run_id = ? ORDER BY rank LIMIT ?",
            (run.id, limit),
        )
        return [(sample_id, loss) for sample_id, loss in rows]

    # -- helpers --------------------------------------------------------------------------
    def _row_to_run(self, row: sqlite3.Row) -> TrainingRun:
        data = json.loads(row["config"] or "{}")
        try:
            settings = TrainSettings.from_dict(data.get("settings") or {})
        except StudioError:  # a config from a newer version: show the run with plain defaults
            settings = TrainSettings()
        return TrainingRun(
            id=row["id"], name=row["name"], snapshot_id=row["snapshot_id"],
            snapshot_name=row["snapshot_name"] or data.get("snapshot_name", ""), base_model=row["base_model"],
            settings=settings, status=row["status"], run_dir=(self.root / row["run_dir"]).resolve(),
            created_at=row["created_at"], updated_at=row["updated_at"], finished_at=row["finished_at"],
            error=row["error"], last_step=row["last_step"], max_steps=row["max_steps"],
        )

    def _config(self, run: TrainingRun) -> RunConfig:
        if run.config_path.is_file():
            return run.read_config()
        row = self.conn.execute("SELECT config FROM training_runs WHERE id = ?", (run.id,)).fetchone()
        return RunConfig.from_dict(json.loads(row[0]))

    def _name_taken(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM training_runs WHERE name = ?", (name,)).fetchone() is not None

    def _check_name(self, name: str) -> None:
        if name.isdigit():
            raise TrainingRunError(f"a run name cannot be a number ({name!r} would read as a run id)")
        if self._name_taken(name):
            raise TrainingRunError(f"a training run named {name!r} already exists; choose another name")

    def _default_name(self, run_id: int, prefix: str = "run-") -> str:
        name, n = f"{prefix}{run_id}", 1
        while self._name_taken(name):
            n += 1
            name = f"{prefix}{run_id}-{n}"
        return name


_SELECT = ("SELECT r.*, s.name AS snapshot_name FROM training_runs r"
           " LEFT JOIN snapshots s ON s.id = r.snapshot_id")


def _config_json(config: RunConfig) -> str:
    data = config.to_dict()
    data.pop("help", None)  # the help text lives in the file, not in every row
    return json.dumps(data, ensure_ascii=False)


def _resolve_base_model(base_model: str) -> str:
    """A local folder as an absolute path (the job may run elsewhere); anything else a hub id."""
    base_model = base_model.strip()
    if not base_model:
        raise TrainingRunError("a training run needs a base model: a local folder or a Hugging Face hub id")
    path = Path(base_model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise TrainingRunError(f"{path}: the base model must be a folder (with config.json), not a file")
        return str(path.resolve())
    if path.is_absolute() or base_model.startswith((".", "~")) or base_model.count("/") > 1:
        raise TrainingRunError(f"{path}: no such model folder; give a local folder or a hub id like org/name")
    return base_model


def _refuse_eval_prompts(conn: sqlite3.Connection, snapshot_id: int, snapshot_name: str,
                         settings: TrainSettings) -> None:
    """A run never trains on an evaluation-only prompt; held-out ones (its validation split) are fine."""
    from studio.core.evaluation.guard import EvalWall, refusal, snapshot_report

    wall = EvalWall.load(conn)
    if not wall:
        return
    report, items = snapshot_report(conn, snapshot_id, settings, near=False, wall=wall)
    if report.exact:
        raise TrainingRunError(refusal(wall, report, items, snapshot_name))


def _has_a_line(path: Path) -> bool:
    """The file holds at least one non-blank line (reads only up to it)."""
    with open(path, "rb") as handle:
        return any(line.strip() for line in handle)


def _check_local_model(base_model: str) -> None:
    """What the job would fail on at once, refused before a run exists (no failed run piles up).

    A local folder must be a model folder with a readable ``config.json``; a hub id is left to
    the job (it may be downloaded or cached).
    """
    from studio.core.training.base_models import BaseModelError, inspect_local

    if not Path(base_model).is_dir():
        return
    try:
        inspect_local(base_model)
    except BaseModelError as exc:
        raise TrainingRunError(f"{exc}; choose a folder with config.json, weights and tokenizer files") from None


def _read_hardest(path: Path) -> dict[int, float]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TrainingRunError(f"{path}: no per-sample losses yet; run `distill-studio train hardest RUN`") from None
    except OSError as exc:
        raise TrainingRunError(f"{path}: cannot read the per-sample losses ({exc.strerror or exc})") from None
    scores: dict[int, float] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            sample_id, loss = record.get("sample_id"), float(record["loss"])
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            raise TrainingRunError(f"{path}, line {number}: not a {{sample_id, loss}} record") from None
        if isinstance(sample_id, int) and not isinstance(sample_id, bool) and math.isfinite(loss):
            scores[sample_id] = loss
    return scores


@dataclass
class _RowState:
    """What a run's row says, updated event by event."""

    status: str
    last_step: int
    max_steps: int | None
    error: str
    finished_at: float | None

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        at = _number(event.get("time")) or time.time()
        step = event.get("step")
        if kind in _STATUS_OF_FINAL:
            self.status = _STATUS_OF_FINAL[kind]
            self.finished_at = at
            if kind == ev.ERROR:
                message = str(event.get("message") or "the training job failed")
                hint = str(event.get("hint") or "")
                self.error = f"{message} — {hint}" if hint else message
            else:
                self.error = ""
            self._step(step)
            return
        if kind not in ev.EVENT_TYPES or kind == ev.HARDEST:
            return  # a later scoring of a finished run changes nothing here
        if self.status in FINISHED_STATUSES and self.finished_at is not None and at <= self.finished_at:
            return  # an event of the job that already ended, seen again
        if self.status != RUNNING:
            self.status, self.finished_at, self.error = RUNNING, None, ""
        if kind == ev.PROGRESS and isinstance(event.get("max_steps"), int) and event["max_steps"] > 0:
            self.max_steps = event["max_steps"]
        self._step(step)

    def _step(self, step: Any) -> None:
        if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
            self.last_step = step

    def unchanged_from(self, run: TrainingRun) -> bool:
        return (self.status, self.last_step, self.max_steps, self.error, self.finished_at) == (
            run.status, run.last_step, run.max_steps, run.error, run.finished_at)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


__all__ = ["RUN_STATUSES", "TrainingRun", "TrainingRunError", "TrainingRunRepository"]
