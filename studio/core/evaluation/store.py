"""Evaluations and their caches in the project database: ``project.evaluations``.

An evaluation row records what was compared (systems with their cache keys, the prompt ids,
the prompt set's hash, the judge, the settings). Answers and judgments are caches shared by
every evaluation: an answer is found by (system key, prompt hash, settings hash), a judgment
by (judge key, first answer, second answer), so a rerun or a second judge pays nothing twice.
Every write commits at once and publishes EVALUATIONS.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence

from studio.core.changes import EVALUATIONS, ChangeFeed
from studio.core.db import transaction
from studio.core.evaluation.model import (
    CREATED,
    UNREADABLE,
    EvalSettings,
    Evaluation,
    EvaluationError,
    JudgeSpec,
    StoredAnswer,
    StoredJudgment,
    SystemSpec,
    as_json,
)
from studio.core.llm.pricing import Usage


class EvaluationRepository:
    def __init__(self, conn: sqlite3.Connection, changes: ChangeFeed | None = None):
        self.conn = conn
        self._changes = changes or ChangeFeed()

    # -- evaluations -------------------------------------------------------------------------
    def create(self, *, set_id: int | None, set_hash: str, prompt_ids: Sequence[int], systems: Sequence[SystemSpec],
               judge: JudgeSpec | None, settings: EvalSettings, name: str = "") -> Evaluation:
        """Store a new evaluation; systems must already carry their cache ``key``."""
        if len(systems) < 2:
            raise EvaluationError("An evaluation compares at least two systems.")
        missing = [s.label or s.kind for s in systems if not s.key]
        if missing:
            raise EvaluationError(f"Systems without a cache key (resolve them first): {', '.join(missing)}.")
        if not prompt_ids:
            raise EvaluationError("The evaluation has no prompts (is the prompt set empty?).")
        now = time.time()
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO evaluations (name, set_id, set_hash, prompt_ids, systems, judge, settings, status,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, set_id, set_hash, json.dumps(list(prompt_ids)), as_json([s.to_dict() for s in systems]),
                 as_json(judge.to_dict()) if judge is not None else None, as_json(settings.to_dict()), CREATED,
                 now, now))
        self._changes.publish(EVALUATIONS)
        return self.get(cursor.lastrowid)

    def get(self, evaluation_id: int) -> Evaluation:
        row = self.conn.execute("SELECT * FROM evaluations WHERE id = ?", (int(evaluation_id),)).fetchone()
        if row is None:
            raise EvaluationError(f"No evaluation {evaluation_id}; `distill-studio eval results` lists them.")
        return _row_to_evaluation(row)

    def list(self) -> list[Evaluation]:
        rows = self.conn.execute("SELECT * FROM evaluations ORDER BY id DESC").fetchall()
        return [_row_to_evaluation(r) for r in rows]

    def latest(self) -> Evaluation | None:
        row = self.conn.execute("SELECT * FROM evaluations ORDER BY id DESC LIMIT 1").fetchone()
        return _row_to_evaluation(row) if row is not None else None

    def rename(self, evaluation_id: int, name: str) -> None:
        self._update(evaluation_id, name=name.strip())

    def set_status(self, evaluation_id: int, status: str, error: str = "", *, finished: bool = False) -> None:
        fields: dict = {"status": status, "error": error}
        if finished:
            fields["finished_at"] = time.time()
        self._update(evaluation_id, **fields)

    def add_cost(self, evaluation_id: int, usd: float) -> None:
        if usd:
            with transaction(self.conn):
                self.conn.execute("UPDATE evaluations SET cost = cost + ?, updated_at = ? WHERE id = ?",
                                  (usd, time.time(), int(evaluation_id)))
            self._changes.publish(EVALUATIONS)

    def delete(self, evaluation_id: int) -> None:
        """The evaluation and its votes; the answer and judgment caches stay for other evaluations."""
        with transaction(self.conn):
            self.conn.execute("DELETE FROM evaluations WHERE id = ?", (int(evaluation_id),))
        self._changes.publish(EVALUATIONS)

    def _update(self, evaluation_id: int, **fields: object) -> None:
        sets = ", ".join(f"{name} = ?" for name in fields)
        with transaction(self.conn):
            changed = self.conn.execute(f"UPDATE evaluations SET {sets}, updated_at = ? WHERE id = ?",
                                        (*fields.values(), time.time(), int(evaluation_id))).rowcount
        if not changed:
            raise EvaluationError(f"No evaluation {evaluation_id}.")
        self._changes.publish(EVALUATIONS)

    # -- the answer cache ----------------------------------------------------------------------
    def cached_answer(self, system_key: str, prompt_hash: str, settings_hash: str) -> StoredAnswer | None:
        row = self.conn.execute(
            "SELECT * FROM eval_answers WHERE system_key = ? AND prompt_hash = ? AND settings_hash = ?",
            (system_key, prompt_hash, settings_hash)).fetchone()
        return _row_to_answer(row) if row is not None else None

    def cached_answers(self, system_key: str, prompt_hashes: Iterable[str], settings_hash: str) -> dict[str, StoredAnswer]:
        """prompt hash -> answer, for the hashes already answered (one query per 500)."""
        found: dict[str, StoredAnswer] = {}
        hashes = list(prompt_hashes)
        for start in range(0, len(hashes), 500):
            chunk = hashes[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT * FROM eval_answers WHERE system_key = ? AND settings_hash = ? AND prompt_hash IN ({marks})",
                (system_key, settings_hash, *chunk)).fetchall()
            found.update({r["prompt_hash"]: _row_to_answer(r) for r in rows})
        return found

    def store_answer(self, system_key: str, prompt_hash: str, settings_hash: str, text: str, *,
                     finish_reason: str | None, usage: Usage, cost: float, latency_s: float | None,
                     attempts: int, publish: bool = True) -> StoredAnswer:
        """Commit one answer at once (an existing one for the same key wins: the cache never changes)."""
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO eval_answers (system_key, prompt_hash, settings_hash, text, finish_reason,"
                " prompt_tokens, completion_tokens, cost, latency_s, attempts, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (system_key, prompt_hash, settings_hash, text, finish_reason, usage.prompt_tokens,
                 usage.completion_tokens, cost, latency_s, attempts, time.time()))
        if publish:
            self._changes.publish(EVALUATIONS)
        answer = self.cached_answer(system_key, prompt_hash, settings_hash)
        assert answer is not None
        return answer

    def answer(self, answer_id: int) -> StoredAnswer | None:
        row = self.conn.execute("SELECT * FROM eval_answers WHERE id = ?", (int(answer_id),)).fetchone()
        return _row_to_answer(row) if row is not None else None

    # -- the judgment cache ----------------------------------------------------------------------
    def cached_judgment(self, judge_key: str, first_answer: int, second_answer: int) -> StoredJudgment | None:
        row = self.conn.execute(
            "SELECT * FROM eval_judgments WHERE judge_key = ? AND first_answer = ? AND second_answer = ?",
            (judge_key, int(first_answer), int(second_answer))).fetchone()
        return _row_to_judgment(row) if row is not None else None

    def judgments_for(self, judge_key: str, answer_ids: Iterable[int], *,
                      readable: bool = False) -> dict[tuple[int, int], StoredJudgment]:
        """(first, second) -> judgment for every cached judgment whose first answer is one of ``answer_ids``.

        ``readable``: leave out the unreadable ones (no marker, e.g. cut off at max_tokens): they
        are no verdict to reuse, so a rerun asks again (and :meth:`store_judgment` replaces them).
        """
        ids = sorted(set(int(i) for i in answer_ids))
        found: dict[tuple[int, int], StoredJudgment] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT * FROM eval_judgments WHERE judge_key = ? AND first_answer IN ({marks})",
                (judge_key, *chunk)).fetchall()
            found.update({(r["first_answer"], r["second_answer"]): _row_to_judgment(r) for r in rows
                          if not (readable and r["verdict"] == UNREADABLE)})
        return found

    def store_judgment(self, judge_key: str, first_answer: int, second_answer: int, verdict: str, raw: str, *,
                       usage: Usage, cost: float, latency_s: float | None, publish: bool = True) -> StoredJudgment:
        """Commit one verdict at once. A stored readable verdict wins (the cache never changes); a
        stored unreadable one is replaced, its row's cost adding up what both requests cost."""
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO eval_judgments (judge_key, first_answer, second_answer, verdict, raw,"
                " prompt_tokens, completion_tokens, cost, latency_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (judge_key, first_answer, second_answer) DO UPDATE SET verdict = excluded.verdict,"
                " raw = excluded.raw, prompt_tokens = excluded.prompt_tokens,"
                " completion_tokens = excluded.completion_tokens, cost = eval_judgments.cost + excluded.cost,"
                " latency_s = excluded.latency_s, created_at = excluded.created_at"
                f" WHERE eval_judgments.verdict = '{UNREADABLE}'",
                (judge_key, int(first_answer), int(second_answer), verdict, raw, usage.prompt_tokens,
                 usage.completion_tokens, cost, latency_s, time.time()))
        if publish:
            self._changes.publish(EVALUATIONS)
        judgment = self.cached_judgment(judge_key, first_answer, second_answer)
        assert judgment is not None
        return judgment


def _row_to_evaluation(row: sqlite3.Row) -> Evaluation:
    judge = json.loads(row["judge"]) if row["judge"] else None
    return Evaluation(
        id=row["id"], name=row["name"], set_id=row["set_id"], set_hash=row["set_hash"],
        prompt_ids=json.loads(row["prompt_ids"]), systems=[SystemSpec.from_dict(s) for s in json.loads(row["systems"])],
        judge=JudgeSpec.from_dict(judge) if judge else None, settings=EvalSettings.from_dict(json.loads(row["settings"])),
        status=row["status"], error=row["error"], cost=row["cost"], created_at=row["created_at"],
        updated_at=row["updated_at"], finished_at=row["finished_at"],
    )


def _row_to_answer(row: sqlite3.Row) -> StoredAnswer:
    return StoredAnswer(row["id"], row["system_key"], row["prompt_hash"], row["settings_hash"], row["text"],
                        row["finish_reason"], row["prompt_tokens"], row["completion_tokens"], row["cost"],
                        row["latency_s"], row["attempts"])


def _row_to_judgment(row: sqlite3.Row) -> StoredJudgment:
    return StoredJudgment(row["id"], row["judge_key"], row["first_answer"], row["second_answer"], row["verdict"],
                          row["raw"], row["cost"])
