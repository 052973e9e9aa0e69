"""Generation runs, their requests and rejected candidates in the project database.

The crash-safety contract lives here: a request row is committed (pending, with the exact
prompt) before it is sent, and :meth:`GenerationRepository.complete_request` writes the request's
kept samples, its rejected candidates, its ``done`` mark and the run counters in ONE
transaction. Whatever instant a run dies at, a request is either wholly done (never sent
again) or not done at all (sent again on resume, nothing of it stored).

The store is the generation tables' repository: the engine and the Generate panel run no SQL
of their own. Every commit that changes what a view shows is published on the change feed
(``generation_runs``; ``samples`` when samples were stored) after it commits.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from studio.core.changes import GENERATION_RUNS, SAMPLES, ChangeFeed
from studio.core.db import transaction
from studio.core.generation.prompts import Example, SeedExample
from studio.core.samples import INSERT_SQL, Origin, Sample, Status, row_values


def request_key(run_id: int, index: int, stage: str = "generate") -> str:
    """Deterministic per (run, stage, index): the same request keeps its key across resumes."""
    return f"r{run_id}-{stage}-{index:06d}"


@dataclass(frozen=True)
class Rejected:
    instruction: str
    input: str
    output: str
    reason: str
    detail: str = ""
    nearest_instruction: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class RequestRow:
    key: str
    index: int
    stage: str
    prompt: str
    seed_ids: list[int]
    attempts: int
    status: str
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ChildRequest:
    """A later-stage request born from a finished one (self-instruct); stored in the same transaction."""

    stage: str
    index: int
    prompt: str
    payload: dict


@dataclass(frozen=True)
class Completion:
    """What one finished request produced; kept samples and rejects are committed with it."""

    response: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    attempts: int
    kept: Sequence[Sample]
    rejected: Sequence[Rejected]
    children: Sequence[ChildRequest] = ()


class GenerationRepository:
    def __init__(self, conn: sqlite3.Connection, changes: ChangeFeed | None = None):
        self.conn = conn
        self._changes = changes or ChangeFeed()

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, *, name: str, mode: str, teacher_model: str, base_url: str, config: dict,
                   prompt_template: str) -> int:
        now = time.time()
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO generation_runs (name, mode, teacher_model, base_url, config, prompt_template,"
                " status, created_at, updated_at) VALUES (?,?,?,?,?,?,'created',?,?)",
                (name, mode, teacher_model, base_url, json.dumps(config), prompt_template, now, now),
            )
        self._changes.publish(GENERATION_RUNS)
        return cursor.lastrowid

    def run(self, run_id: int) -> dict | None:
        row = self.conn.execute("SELECT * FROM generation_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        data = dict(row)
        data["config"] = json.loads(data["config"])
        return data

    def latest_run_id(self) -> int | None:
        row = self.conn.execute("SELECT MAX(id) FROM generation_runs").fetchone()
        return row[0]

    def latest_unfinished_run(self) -> dict | None:
        """The newest run, when it stopped or failed before its end (what "Resume run" continues)."""
        run_id = self.latest_run_id()
        run = self.run(run_id) if run_id is not None else None
        return run if run is not None and run["status"] in ("created", "running", "stopped", "failed", "detached") else None

    def discard_run(self, run_id: int) -> bool:
        """Remove a run that produced nothing (a failed start); False, and nothing removed, if it has any result."""
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT requests, kept, rejected FROM generation_runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or any(row):
                return False
            if self.conn.execute("SELECT 1 FROM samples WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
                return False
            self.conn.execute("DELETE FROM generation_runs WHERE id = ?", (run_id,))  # requests cascade
        self._changes.publish(GENERATION_RUNS)
        return True

    def set_status(self, run_id: int, status: str, *, finished: bool = False) -> None:
        now = time.time()
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE generation_runs SET status = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                (status, now, now if finished else None, run_id),
            )
        self._changes.publish(GENERATION_RUNS)

    def set_backend_status(self, run_id: int, text: str, state: dict | None = None) -> None:
        """A backend's state (a batch's status, counts, saving), kept so a run that is not running shows it."""
        with transaction(self.conn):
            self.conn.execute("UPDATE generation_runs SET backend_status = ? WHERE id = ?",
                              (json.dumps({"text": text, "state": state or {}}), run_id))
        self._changes.publish(GENERATION_RUNS)

    def backend_status(self, run_id: int) -> dict | None:
        """``{"text": ..., "state": {...}}`` as the backend last reported it; None for a live run."""
        row = self.conn.execute("SELECT backend_status FROM generation_runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row is not None and row[0] else None

    def runs_to_pick_up(self) -> list[int]:
        """Runs whose work is still at a provider (a batch): detached at close, or left running by a killed app.

        Newest first. A run counts when its backend is not ``live``, its status is ``detached`` or
        ``running`` and it has a provider job that is not collected yet.
        """
        from studio.core.generation.backend_jobs import CLOSED_STATES

        closed = ",".join("?" * len(CLOSED_STATES))
        rows = self.conn.execute(
            "SELECT r.id FROM generation_runs r WHERE r.status IN ('detached', 'running')"
            " AND COALESCE(json_extract(r.config, '$.backend'), 'live') != 'live'"
            f" AND EXISTS (SELECT 1 FROM backend_jobs j WHERE j.run_id = r.id AND j.status NOT IN ({closed}))"
            " ORDER BY r.id DESC", tuple(CLOSED_STATES))
        return [r[0] for r in rows]

    def has_open_backend_work(self, run_id: int) -> bool:
        """True while a provider still holds requests of this run (an uncollected batch)."""
        from studio.core.generation.backend_jobs import BackendJobs

        return BackendJobs(self.conn).has_open_jobs(run_id)

    def update_config(self, run_id: int, config: dict) -> None:
        """Replace a run's stored settings (a resumed run's backend options)."""
        with transaction(self.conn):
            self.conn.execute("UPDATE generation_runs SET config = ?, updated_at = ? WHERE id = ?",
                              (json.dumps(config), time.time(), run_id))
        self._changes.publish(GENERATION_RUNS)

    # -- requests ------------------------------------------------------------------------------
    def unfinished_requests(self, run_id: int) -> list[RequestRow]:
        """Pending and failed requests of every stage, later stages first (finish started work first)."""
        rows = self.conn.execute(
            "SELECT * FROM generation_requests WHERE run_id = ? AND status != 'done' ORDER BY id DESC", (run_id,),
        )
        return [_request(r) for r in rows]

    def next_index(self, run_id: int, stage: str = "generate") -> int:
        row = self.conn.execute(
            "SELECT COALESCE(MAX(request_index) + 1, 0) FROM generation_requests WHERE run_id = ? AND stage = ?",
            (run_id, stage),
        ).fetchone()
        return row[0]

    def add_request(self, run_id: int, index: int, prompt: str, seed_ids: Sequence[int],
                    stage: str = "generate", payload: dict | None = None) -> RequestRow:
        with transaction(self.conn):
            return self._insert_request(run_id, index, prompt, seed_ids, stage, payload or {})

    def _insert_request(self, run_id: int, index: int, prompt: str, seed_ids: Sequence[int], stage: str,
                        payload: dict) -> RequestRow:
        key = request_key(run_id, index, stage)
        self.conn.execute(
            "INSERT INTO generation_requests (run_id, request_key, request_index, stage, prompt, seed_ids, payload,"
            " created_at) VALUES (?,?,?,?,?,?,?,?)",
            (run_id, key, index, stage, prompt, json.dumps(list(seed_ids)), json.dumps(payload), time.time()),
        )
        return RequestRow(key, index, stage, prompt, list(seed_ids), 0, "pending", payload)

    def note_attempt(self, key: str, attempts: int, error: str | None) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE generation_requests SET attempts = ?, error = ? WHERE request_key = ?", (attempts, error, key),
            )

    def mark_failed(self, key: str, attempts: int, error: str) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE generation_requests SET status = 'failed', attempts = ?, error = ?, finished_at = ?"
                " WHERE request_key = ?", (attempts, error, time.time(), key),
            )
        self._changes.publish(GENERATION_RUNS)

    def complete_request(self, run_id: int, key: str, done: Completion) -> tuple[list[int], list[RequestRow]]:
        """Commit the request's outcome atomically; returns the ids of the samples stored and the child requests."""
        now = time.time()
        ids: list[int] = []
        with transaction(self.conn):
            children = [self._insert_request(run_id, c.index, c.prompt, [], c.stage, c.payload) for c in done.children]
            if done.kept:
                # One executemany, then the new ids by rowid range: we hold the write lock, so every
                # row above the old maximum is ours. Exact copies of existing samples are skipped.
                last = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM samples").fetchone()[0]
                self.conn.executemany(INSERT_SQL, [row_values(sample, now) for sample in done.kept])
                by_hash = {sample.content_hash: sample for sample in done.kept}
                for sample_id, digest in self.conn.execute(
                        "SELECT id, content_hash FROM samples WHERE id > ? ORDER BY id", (last,)):
                    by_hash[digest].id = sample_id
                    ids.append(sample_id)
            self.conn.executemany(
                "INSERT INTO rejected_candidates (run_id, request_key, instruction, input, output, reason, detail,"
                " nearest_instruction, score, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(run_id, key, r.instruction, r.input, r.output, r.reason, r.detail, r.nearest_instruction, r.score, now)
                 for r in done.rejected],
            )
            self.conn.execute(
                "UPDATE generation_requests SET status = 'done', response = ?, finish_reason = ?, prompt_tokens = ?,"
                " completion_tokens = ?, cost = ?, attempts = ?, kept = ?, rejected = ?, error = NULL, finished_at = ?"
                " WHERE request_key = ?",
                (done.response, done.finish_reason, done.prompt_tokens, done.completion_tokens, done.cost,
                 done.attempts, len(ids), len(done.rejected), now, key),
            )
            self.conn.execute(
                "UPDATE generation_runs SET requests = requests + 1, kept = kept + ?, rejected = rejected + ?,"
                " prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?, cost = cost + ?,"
                " updated_at = ? WHERE id = ?",
                (len(ids), len(done.rejected), done.prompt_tokens, done.completion_tokens, done.cost, now, run_id),
            )
        self._changes.publish((SAMPLES, GENERATION_RUNS) if ids else GENERATION_RUNS)
        return ids, children

    # -- reading back --------------------------------------------------------------------------
    def counters(self, run_id: int) -> dict:
        run = self.run(run_id) or {}
        failed = self.conn.execute(
            "SELECT COUNT(*) FROM generation_requests WHERE run_id = ? AND status = 'failed'", (run_id,),
        ).fetchone()[0]
        return {
            "requests": run.get("requests", 0), "failed_requests": failed, "kept": run.get("kept", 0),
            "rejected": run.get("rejected", 0), "prompt_tokens": run.get("prompt_tokens", 0),
            "completion_tokens": run.get("completion_tokens", 0), "cost": run.get("cost", 0.0),
            "rejected_by_reason": self.rejected_counts(run_id),
        }

    def rejected_counts(self, run_id: int) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT reason, COUNT(*) FROM rejected_candidates WHERE run_id = ? GROUP BY reason", (run_id,),
        )
        return {reason: count for reason, count in rows}

    def rejected(self, run_id: int, reason: str | None = None, limit: int = 500) -> list[dict]:
        sql, params = "SELECT * FROM rejected_candidates WHERE run_id = ?", [run_id]
        if reason:
            sql += " AND reason = ?"
            params.append(reason)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))]

    def restore(self, rejected_id: int) -> int | None:
        """Turn a rejected candidate into a pending sample (the user overrules the filter)."""
        row = self.conn.execute("SELECT * FROM rejected_candidates WHERE id = ?", (rejected_id,)).fetchone()
        if row is None or row["restored"]:
            return row["sample_id"] if row else None
        run = self.run(row["run_id"]) or {}
        request = self.conn.execute(
            "SELECT seed_ids, payload FROM generation_requests WHERE request_key = ?", (row["request_key"],),
        ).fetchone()
        seed_ids = (json.loads(request[0]) or json.loads(request[1]).get("origin_seed_ids", [])) if request else []
        sample = Sample(
            row["instruction"], row["input"], row["output"], status=Status.PENDING, origin=Origin.GENERATED,
            run_id=row["run_id"], seed_ids=seed_ids, teacher_model=run.get("teacher_model"),
            filter_verdicts={"restored_from": row["reason"]}, source=row["request_key"],
        )
        with transaction(self.conn):
            cursor = self.conn.execute(INSERT_SQL, row_values(sample, time.time()))
            sample_id = cursor.lastrowid if cursor.rowcount else None
            self.conn.execute(
                "UPDATE rejected_candidates SET restored = 1, sample_id = ? WHERE id = ?", (sample_id, rejected_id),
            )
        self._changes.publish(SAMPLES, GENERATION_RUNS)
        return sample_id

    # -- what the engine shows the teacher and primes its filter with ------------------------------
    def seed_examples(self, limit: int | None = None) -> list[SeedExample]:
        """The project's seed tasks in their order, each with its first instance."""
        sql = "SELECT id, instruction, instances, is_classification FROM seed_tasks ORDER BY position, id"
        rows = self.conn.execute(sql + (" LIMIT ?" if limit is not None else ""), (() if limit is None else (limit,)))
        examples = []
        for row in rows:
            instances = json.loads(row["instances"])
            first = instances[0] if instances else {}
            examples.append(SeedExample(row["instruction"], first.get("input") or "", first.get("output") or "",
                                        row["id"], bool(row["is_classification"])))
        return examples

    def all_instructions(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT instruction FROM samples")]

    def accepted_examples(self, limit: int = 50) -> list[Example]:
        rows = self.conn.execute(
            "SELECT instruction, input, output FROM samples WHERE status = 'accepted' ORDER BY random() LIMIT ?",
            (limit,))
        return [Example(r[0], r[1], r[2]) for r in rows]

    def run_instructions(self, run_id: int, count: int) -> list[str]:
        """A few instructions this run already kept, at random (self-instruct shows them to the teacher)."""
        rows = self.conn.execute(
            "SELECT instruction FROM samples WHERE run_id = ? ORDER BY random() LIMIT ?", (run_id, count))
        return [r[0] for r in rows]

    def seed_yield(self, run_id: int) -> dict[int, tuple[int, int]]:
        """Per seed id: (finished requests whose prompt showed it, samples of this run made from those prompts)."""
        shown = dict(self.conn.execute(
            "SELECT CAST(j.value AS INTEGER), COUNT(*) FROM generation_requests r, json_each(r.seed_ids) j"
            " WHERE r.run_id = ? AND r.status = 'done' GROUP BY j.value", (run_id,),
        ).fetchall())
        kept = dict(self.conn.execute(
            "SELECT CAST(j.value AS INTEGER), COUNT(*) FROM samples s, json_each(s.seed_ids) j"
            " WHERE s.run_id = ? GROUP BY j.value", (run_id,),
        ).fetchall())
        return {seed: (count, kept.get(seed, 0)) for seed, count in shown.items()}


def _request(row: sqlite3.Row) -> RequestRow:
    return RequestRow(row["request_key"], row["request_index"], row["stage"], row["prompt"],
                      json.loads(row["seed_ids"]), row["attempts"], row["status"], json.loads(row["payload"]))
