"""Blind human votes of an evaluation: ``project.votes`` (CONTRACT SKELETON: helper D fills it)."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from studio.core.changes import ChangeFeed
from studio.core.evaluation.model import Evaluation, Outcome


@dataclass(frozen=True)
class Vote:
    id: int
    evaluation_id: int
    prompt_id: int
    system_a: int
    system_b: int
    left_is_a: bool
    verdict: str | None


class VoteRepository:
    def __init__(self, conn: sqlite3.Connection, changes: ChangeFeed | None = None):
        self.conn = conn
        self._changes = changes or ChangeFeed()

    def ensure_queue(self, evaluation: Evaluation) -> int:
        raise NotImplementedError

    def next_pending(self, evaluation_id: int) -> Vote | None:
        raise NotImplementedError

    def cast(self, vote_id: int, verdict: str) -> Vote:
        raise NotImplementedError

    def progress(self, evaluation_id: int) -> tuple[int, int]:
        raise NotImplementedError

    def outcomes(self, evaluation: Evaluation) -> list[Outcome]:
        raise NotImplementedError
