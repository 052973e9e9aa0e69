"""A sample filter as a plugin would contribute it (used by tests/test_generation.py)."""
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
