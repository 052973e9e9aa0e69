"""Quality filters for generated tasks, each with a reason code the user can browse and undo.

Defaults follow Stanford Alpaca's ``generate_instruction.py``: an instruction is kept when
3 < words <= 150 (so at least 4 words), it contains no blacklisted word (whole-word,
case-insensitive), it does not start with "Write a program", its first character is neither
punctuation nor non-ASCII, and its ROUGE-L against the seeds and every kept instruction is at
most 0.7. We add ``empty_output`` (Alpaca only dropped malformed blocks). Cheap checks run
first, so the near-duplicate index only sees survivors and only grows with kept tasks.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from studio.core.generation.prompts import Candidate

NEAR_DUPLICATE, BLACKLIST, TOO_SHORT, TOO_LONG = "near_duplicate", "blacklist", "too_short", "too_long"
BAD_START, PROGRAM_TASK, EMPTY_OUTPUT = "bad_start", "program_task", "empty_output"
PARSE_ERROR, TRUNCATED = "parse_error", "truncated"  # recorded by the modes, not by a filter
BAD_INSTANCE = "bad_instance"  # self-instruct: output repeats the input, or the same input twice
REASONS = (NEAR_DUPLICATE, BLACKLIST, TOO_SHORT, TOO_LONG, BAD_START, PROGRAM_TASK, EMPTY_OUTPUT, PARSE_ERROR,
           TRUNCATED, BAD_INSTANCE)

DEFAULT_BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)


class DuplicateIndex(Protocol):
    """What the filter needs from ``studio.core.dedup.NearDuplicateIndex``."""

    def add(self, text: str, key: Any = None) -> None: ...
    def check(self, text: str) -> Any: ...
    def check_and_add(self, text: str, key: Any = None) -> Any: ...
    def __len__(self) -> int: ...


IndexFactory = Callable[[float], DuplicateIndex]


def default_index_factory(threshold: float) -> DuplicateIndex:
    """The ROUGE-L index whose decisions equal rouge_score's (``studio.core.dedup``)."""
    from studio.core.dedup import NearDuplicateIndex

    return NearDuplicateIndex(threshold=threshold)


@dataclass
class FilterSettings:
    """Editable filter settings; ``help`` metadata feeds tooltips and the saved run config."""

    rouge_threshold: float = field(default=0.7, metadata={"help": "Reject when ROUGE-L against any seed or kept instruction is above this (Alpaca: 0.7)."})
    min_words: int = field(default=4, metadata={"help": "Fewest words an instruction may have (Alpaca keeps more than 3)."})
    max_words: int = field(default=150, metadata={"help": "Most words an instruction may have (Alpaca: 150)."})
    blacklist: list[str] = field(default_factory=lambda: list(DEFAULT_BLACKLIST), metadata={"help": "Whole words or phrases a text-only model cannot act on."})
    program_prefixes: list[str] = field(default_factory=lambda: ["Write a program"], metadata={"help": "Instructions starting with these are dropped (the teacher over-produces them)."})
    require_output: bool = field(default=True, metadata={"help": "Reject tasks whose output is empty."})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FilterSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class FilterVerdict:
    reason: str | None  # None: keep
    detail: str = ""
    nearest_instruction: str | None = None
    score: float | None = None

    @property
    def kept(self) -> bool:
        return self.reason is None


class CandidateFilter:
    """Runs the checks in order; the near-duplicate index is injected so the real one drops in."""

    def __init__(self, settings: FilterSettings, index_factory: IndexFactory = default_index_factory):
        self.settings = settings
        self.index = index_factory(settings.rouge_threshold)
        words = sorted(settings.blacklist, key=len, reverse=True)
        self._blacklist = (
            re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE) if words else None
        )
        self._prefixes = tuple(p.lower() for p in settings.program_prefixes)

    def prime(self, instructions: Iterable[str]) -> None:
        """Seed instructions and kept ones from earlier (or resumed) runs."""
        for text in instructions:
            if text.strip():
                self.index.add(text)

    def static_check(self, c: Candidate, *, need_output: bool = True) -> FilterVerdict:
        """Every check except the near-duplicate one."""
        s = self.settings
        if need_output and s.require_output and not c.output.strip():
            return FilterVerdict(EMPTY_OUTPUT)
        count = len(c.instruction.split())
        if count < s.min_words:
            return FilterVerdict(TOO_SHORT, f"{count} words")
        if count > s.max_words:
            return FilterVerdict(TOO_LONG, f"{count} words")
        first = c.instruction[0]
        if first in string.punctuation or not first.isascii():
            return FilterVerdict(BAD_START, f"starts with {first!r}")
        if self._prefixes and c.instruction.lower().startswith(self._prefixes):
            return FilterVerdict(PROGRAM_TASK)
        if self._blacklist is not None:
            hit = self._blacklist.search(c.instruction)
            if hit:
                return FilterVerdict(BLACKLIST, hit.group(1).lower())
        return FilterVerdict(None)

    def check(self, c: Candidate, key: Any = None, *, need_output: bool = True) -> FilterVerdict:
        """Decide on one candidate; a kept one joins the index at once, so later ones compare against it."""
        verdict = self.static_check(c, need_output=need_output)
        if not verdict.kept:
            return verdict
        found = self.index.check_and_add(c.instruction, key)
        if found.is_duplicate:
            return FilterVerdict(NEAR_DUPLICATE, "", found.text, float(found.score))
        return FilterVerdict(None, "", found.text, float(found.score) if found.score is not None else None)
