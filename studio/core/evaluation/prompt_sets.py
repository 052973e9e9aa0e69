"""Evaluation-only prompt sets in the project: ``project.prompt_sets`` (CONTRACT SKELETON: helper A fills it)."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from studio.core.changes import ChangeFeed
from studio.core.evaluation.model import EvalPrompt, PromptSet


class PromptSetRepository:
    def __init__(self, conn: sqlite3.Connection, root: Path, changes: ChangeFeed | None = None):
        self.conn = conn
        self.root = Path(root)
        self._changes = changes or ChangeFeed()

    def create(self, name: str, prompts: Sequence[EvalPrompt], *, source: str = "", meta: dict | None = None) -> PromptSet:
        raise NotImplementedError

    def import_file(self, path: Path | str, name: str | None = None) -> PromptSet:
        raise NotImplementedError

    def from_validation_split(self, snapshot: int | str, *, name: str | None = None, seed: int = 42,
                              validation_fraction: float = 0.05, max_validation_samples: int = 1000) -> PromptSet:
        raise NotImplementedError

    def list(self) -> list[PromptSet]:
        raise NotImplementedError

    def get(self, key: int | str) -> PromptSet:
        raise NotImplementedError

    def prompts(self, key: int | str, *, include_released: bool = False) -> list[EvalPrompt]:
        raise NotImplementedError

    def prompts_by_id(self, prompt_ids: Iterable[int]) -> dict[int, EvalPrompt]:
        raise NotImplementedError

    def release(self, prompt_ids: Iterable[int], to: str) -> int:
        raise NotImplementedError

    def active_prompts(self) -> list[EvalPrompt]:
        raise NotImplementedError

    def rename(self, key: int | str, name: str) -> None:
        raise NotImplementedError

    def delete(self, key: int | str) -> None:
        raise NotImplementedError
