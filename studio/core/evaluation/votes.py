"""Blind human votes of an evaluation: ``project.votes``.

One row per prompt and pair of systems that both answered (``eval_votes``). Its left/right
order is drawn once, from a generator seeded by the evaluation's seed, id, prompt and pair, and
recorded, so the same comparison always shows the same way and the reveal can say which side
was which. Every vote commits the moment it is cast and publishes COMPARISONS: closing or
killing the app loses nothing, and a reopened comparison goes on at the first pending vote.
Verdicts are about systems, not sides: ``a`` / ``b`` (the pair's first / second system),
``tie``, ``both_bad`` (a tie where neither answer was good) and ``skip`` (left out of results).
"""
from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from studio.core.changes import COMPARISONS, ChangeFeed
from studio.core.db import transaction
from studio.core.evaluation.model import Evaluation, EvaluationError, Outcome, StoredAnswer
from studio.core.evaluation.store import EvaluationRepository

VERDICTS = ("a", "b", "tie", "both_bad", "skip")
SKIP, BOTH_BAD = "skip", "both_bad"


@dataclass(frozen=True)
class Vote:
    id: int
    evaluation_id: int
    prompt_id: int
    system_a: int
    system_b: int
    left_is_a: bool
    verdict: str | None
    decided_at: float | None = None

    @property
    def pending(self) -> bool:
        return self.verdict is None

    @property
    def left_system(self) -> int:
        """The index of the system shown on the left."""
        return self.system_a if self.left_is_a else self.system_b

    @property
    def right_system(self) -> int:
        return self.system_b if self.left_is_a else self.system_a

    def verdict_for_side(self, side: str) -> str:
        """``left``/``right`` (what the user pressed) as ``a``/``b``; other verdicts pass through."""
        if side == "left":
            return "a" if self.left_is_a else "b"
        if side == "right":
            return "b" if self.left_is_a else "a"
        return side


@dataclass(frozen=True)
class BlindPair:
    """What the blind view shows for one vote: the prompt and the two answers by side, no names."""

    vote: Vote
    instruction: str
    input: str
    messages: list[dict] | None
    left: str
    right: str


def left_is_a(evaluation: Evaluation, prompt_id: int, pair: tuple[int, int]) -> bool:
    """The recorded left/right draw: the same evaluation, prompt and pair always give the same side."""
    return random.Random(f"{evaluation.settings.seed}:{evaluation.id}:{prompt_id}:{pair}").random() < 0.5


def _queue_order(evaluation_id: int, seed: int, vote: Vote) -> str:
    """A stable shuffle: prompts come in no meaningful order, the same one every session."""
    text = f"{seed}:{evaluation_id}:{vote.prompt_id}:{vote.system_a}:{vote.system_b}"
    return hashlib.sha256(text.encode()).hexdigest()


class VoteRepository:
    def __init__(self, conn: sqlite3.Connection, changes: ChangeFeed | None = None):
        self.conn = conn
        self._changes = changes or ChangeFeed()

    # -- the queue ---------------------------------------------------------------------------
    def ensure_queue(self, evaluation: Evaluation) -> int:
        """One pending vote per prompt and pair whose two answers exist; returns how many votes there are.

        Idempotent: existing votes (and their recorded sides) are kept, so it can run again
        whenever more answers arrive.
        """
        answered = self._answered(evaluation)
        rows = []
        for prompt_id in evaluation.prompt_ids:
            for pair in evaluation.pairs():
                if (prompt_id, pair[0]) in answered and (prompt_id, pair[1]) in answered:
                    rows.append((evaluation.id, prompt_id, pair[0], pair[1], int(left_is_a(evaluation, prompt_id, pair))))
        with transaction(self.conn):
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO eval_votes (evaluation_id, prompt_id, system_a, system_b, left_is_a)"
                " VALUES (?, ?, ?, ?, ?)", rows)
            added = self.conn.total_changes - before
        if added:
            self._changes.publish(COMPARISONS)
        return self.conn.execute("SELECT COUNT(*) FROM eval_votes WHERE evaluation_id = ?",
                                 (evaluation.id,)).fetchone()[0]

    def votes(self, evaluation_id: int) -> list[Vote]:
        """Every vote of an evaluation in queue order (the stable shuffle)."""
        row = self.conn.execute("SELECT settings FROM evaluations WHERE id = ?", (int(evaluation_id),)).fetchone()
        seed = 0
        if row is not None:
            seed = int(json.loads(row["settings"]).get("seed", 0))
        rows = self.conn.execute("SELECT * FROM eval_votes WHERE evaluation_id = ?", (int(evaluation_id),))
        found = [_row_to_vote(r) for r in rows]
        return sorted(found, key=lambda v: _queue_order(evaluation_id, seed, v))

    def next_pending(self, evaluation_id: int) -> Vote | None:
        """The first undecided vote in queue order; None when every vote is decided (or there are none)."""
        return next((v for v in self.votes(evaluation_id) if v.pending), None)

    def get(self, vote_id: int) -> Vote:
        row = self.conn.execute("SELECT * FROM eval_votes WHERE id = ?", (int(vote_id),)).fetchone()
        if row is None:
            raise EvaluationError(f"No vote {vote_id} (was its evaluation deleted?).")
        return _row_to_vote(row)

    def last_decided(self, evaluation_id: int) -> Vote | None:
        """The vote decided most recently: what Ctrl+Z takes back, in this session or after a restart."""
        row = self.conn.execute(
            "SELECT * FROM eval_votes WHERE evaluation_id = ? AND verdict IS NOT NULL"
            " ORDER BY decided_at DESC, id DESC LIMIT 1", (int(evaluation_id),)).fetchone()
        return _row_to_vote(row) if row is not None else None

    # -- voting ----------------------------------------------------------------------------------
    def cast(self, vote_id: int, verdict: str) -> Vote:
        """Record a verdict about systems (a/b/tie/both_bad/skip) and commit at once.

        The caller maps the side the user chose with :meth:`Vote.verdict_for_side`.
        """
        if verdict not in VERDICTS:
            raise EvaluationError(f"{verdict!r} is not a vote; use one of {', '.join(VERDICTS)}.")
        return self._set(vote_id, verdict, time.time())

    def undo(self, vote_id: int) -> Vote:
        """Put a vote back to pending."""
        return self._set(vote_id, None, None)

    def _set(self, vote_id: int, verdict: str | None, decided_at: float | None) -> Vote:
        with transaction(self.conn):
            changed = self.conn.execute("UPDATE eval_votes SET verdict = ?, decided_at = ? WHERE id = ?",
                                        (verdict, decided_at, int(vote_id))).rowcount
        if not changed:
            raise EvaluationError(f"No vote {vote_id} (was its evaluation deleted?).")
        self._changes.publish(COMPARISONS)
        return self.get(vote_id)

    # -- reading results -------------------------------------------------------------------------
    def progress(self, evaluation_id: int) -> tuple[int, int]:
        """(decided, total); a skip counts as decided."""
        decided, total = self.conn.execute(
            "SELECT COUNT(verdict), COUNT(*) FROM eval_votes WHERE evaluation_id = ?", (int(evaluation_id),)).fetchone()
        return decided, total

    def finished(self, evaluation_id: int) -> bool:
        decided, total = self.progress(evaluation_id)
        return total > 0 and decided == total

    def outcomes(self, evaluation: Evaluation) -> list[Outcome]:
        """The decided votes as outcomes: skips left out, ``both_bad`` a tie flagged as such.

        Lengths are the characters of each system's answer, as for the judge's outcomes.
        """
        votes = [v for v in self.votes(evaluation.id) if v.verdict is not None and v.verdict != SKIP]
        prompts = self._prompt_rows({v.prompt_id for v in votes})
        answers = self._answers(evaluation, prompts)
        found = []
        for vote in votes:
            prompt = prompts.get(vote.prompt_id)
            text_a = answers.get((vote.prompt_id, vote.system_a))
            text_b = answers.get((vote.prompt_id, vote.system_b))
            both_bad = vote.verdict == BOTH_BAD
            found.append(Outcome(
                vote.prompt_id, vote.system_a, vote.system_b, "tie" if both_bad else vote.verdict,
                len(text_a.text) if text_a else 0, len(text_b.text) if text_b else 0,
                prompt["category"] if prompt else "", both_bad=both_bad))
        return found

    def blind_pair(self, evaluation: Evaluation, vote: Vote) -> BlindPair:
        """The prompt and both answers of a vote, by side (the view never sees a system name)."""
        prompt = self._prompt_rows({vote.prompt_id}).get(vote.prompt_id)
        if prompt is None:
            raise EvaluationError(f"Prompt {vote.prompt_id} of {evaluation.label} is gone (was its set deleted?).")
        answers = self._answers(evaluation, {vote.prompt_id: prompt})
        left = answers.get((vote.prompt_id, vote.left_system))
        right = answers.get((vote.prompt_id, vote.right_system))
        messages = json.loads(prompt["messages"]) if prompt["messages"] else None
        return BlindPair(vote, prompt["instruction"], prompt["input"], messages,
                         left.text if left else "", right.text if right else "")

    def prompt_texts(self, prompt_ids: Sequence[int]) -> dict[int, str]:
        """prompt id -> its instruction (the Reveal page's first column)."""
        return {i: row["instruction"] for i, row in self._prompt_rows(set(prompt_ids)).items()}

    # -- helpers -------------------------------------------------------------------------------
    def _prompt_rows(self, prompt_ids: Sequence[int] | set[int]) -> dict[int, sqlite3.Row]:
        ids = sorted(int(i) for i in prompt_ids)
        found: dict[int, sqlite3.Row] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.conn.execute(
                "SELECT id, instruction, input, messages, category, prompt_hash FROM eval_prompts"
                f" WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            found.update({r["id"]: r for r in rows})
        return found

    def _answers(self, evaluation: Evaluation, prompts: dict[int, sqlite3.Row]) -> dict[tuple[int, int], StoredAnswer]:
        """(prompt id, system index) -> the cached answer under the evaluation's answer settings."""
        store = EvaluationRepository(self.conn)
        settings_hash = evaluation.settings.answers.hash()
        by_hash: dict[str, list[int]] = {}
        for prompt_id, row in prompts.items():
            by_hash.setdefault(row["prompt_hash"], []).append(prompt_id)
        found: dict[tuple[int, int], StoredAnswer] = {}
        for index, system in enumerate(evaluation.systems):
            for digest, answer in store.cached_answers(system.key, by_hash, settings_hash).items():
                for prompt_id in by_hash[digest]:
                    found[(prompt_id, index)] = answer
        return found

    def _answered(self, evaluation: Evaluation) -> set[tuple[int, int]]:
        prompts = self._prompt_rows(set(evaluation.prompt_ids))
        return set(self._answers(evaluation, prompts))


def _row_to_vote(row: sqlite3.Row) -> Vote:
    return Vote(row["id"], row["evaluation_id"], row["prompt_id"], row["system_a"], row["system_b"],
                bool(row["left_is_a"]), row["verdict"], row["decided_at"])
