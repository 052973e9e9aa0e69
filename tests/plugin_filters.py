"""A sample filter as a plugin would contribute it, and an index that finds no duplicates (filter tests)."""
from __future__ import annotations

from typing import Any

from studio.core.generation.filters import FilterSettings, FilterVerdict
from studio.core.generation.prompts import Candidate


class NoQuestions:
    """Rejects instructions that end with a question mark."""

    def __init__(self, settings: FilterSettings, index: object):
        pass

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None:
        return FilterVerdict("question", "ends with ?") if c.instruction.rstrip().endswith("?") else None


class NoIndex:
    """A near-duplicate index that never finds one: a filter test sees only the checks it is about."""

    def add(self, text, key=None) -> None:
        pass

    def check_and_add(self, text, key=None):
        from types import SimpleNamespace

        return SimpleNamespace(is_duplicate=False, text=None, score=None)

    def __len__(self) -> int:
        return 0
