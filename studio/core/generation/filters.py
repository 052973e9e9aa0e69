"""Quality filters for generated tasks, each with a reason code the user can browse and undo.

Defaults follow Stanford Alpaca's ``generate_instruction.py``: an instruction is kept when
3 < words <= 150 (so at least 4 words), it contains no blacklisted word (whole-word,
case-insensitive), it does not start with "Write a program", its first character is neither
punctuation nor non-ASCII, and its ROUGE-L against the seeds and every kept instruction is at
most 0.7. We add ``empty_output`` (Alpaca only dropped malformed blocks).

Each check is a ``SAMPLE_FILTERS`` registry entry (``studio.core.builtins``), run in registry
order; a plugin adds one with one entry. The checks that consult the near-duplicate index
(meta ``indexes=True``) run after every other one, so the index only sees survivors and only
grows with kept tasks. A check whose entry has meta ``wall=True`` is also given the project's
evaluation wall (``studio.core.evaluation.guard.EvalWall``): ``eval_prompt`` rejects a generated
task that is, or is near, an evaluation-only prompt, so the evaluation never grades a copy.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from studio.core.blacklist import DEFAULT_BLACKLIST
from studio.core.errors import StudioError
from studio.core.generation.prompts import Candidate

NEAR_DUPLICATE, BLACKLIST, TOO_SHORT, TOO_LONG = "near_duplicate", "blacklist", "too_short", "too_long"
BAD_START, PROGRAM_TASK, EMPTY_OUTPUT = "bad_start", "program_task", "empty_output"
PARSE_ERROR, TRUNCATED = "parse_error", "truncated"  # recorded by the modes, not by a filter
EVAL_PROMPT = "eval_prompt"  # the task is (or is near) an evaluation-only prompt
BAD_INSTANCE = "bad_instance"  # self-instruct: output repeats the input, or the same input twice
OVER_TARGET = "over_target"  # a good sample that arrived after the run reached its target (restorable)
MODE_REASONS = (PARSE_ERROR, TRUNCATED, BAD_INSTANCE, OVER_TARGET)


_MODE_REASON_LABELS = {PARSE_ERROR: "unreadable", TRUNCATED: "cut off", BAD_INSTANCE: "bad instance",
                       OVER_TARGET: "past the target"}


def reason_label(code: str) -> str:
    """Words for a reason code (a filter's title, lower-cased; the modes' own), for counters and summaries."""
    from studio.core.registry import SAMPLE_FILTERS

    for entry in SAMPLE_FILTERS:
        if entry.meta.get("reason", entry.key) == code:
            return entry.label.lower()
    return _MODE_REASON_LABELS.get(code, code.replace("_", " "))


def describe_reasons(counts: dict[str, int]) -> str:
    """"near duplicate 3, too short 99" — the largest first; "none" when empty."""
    parts = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{reason_label(code)} {count:,}" for code, count in parts) or "none"


def reasons() -> list[str]:
    """Every reason code a rejected candidate can carry: the registered filters', then the modes'."""
    from studio.core.registry import SAMPLE_FILTERS

    codes = [entry.meta.get("reason", entry.key) for entry in SAMPLE_FILTERS]
    return codes + [r for r in MODE_REASONS if r not in codes]


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


class CandidateCheck(Protocol):
    """One registered check: built once per run from the settings; None means "passes"."""

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None: ...


CheckFactory = Callable[[FilterSettings, DuplicateIndex], CandidateCheck]


class EmptyOutput:
    def __init__(self, settings: FilterSettings, index: DuplicateIndex):
        self.enabled = settings.require_output

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None:
        if need_output and self.enabled and not c.output.strip():
            return FilterVerdict(EMPTY_OUTPUT)
        return None


class TooShort:
    def __init__(self, settings: FilterSettings, index: DuplicateIndex):
        self.min_words = settings.min_words

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None:
        count = len(c.instruction.split())
        return FilterVerdict(TOO_SHORT, f"{count} words") if count < self.min_words else None


class TooLong:
    def __init__(self, settings: FilterSettings, index: DuplicateIndex):
        self.max_words = settings.max_words

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None:
        count = len(c.instruction.split())
        return FilterVerdict(TOO_LONG, f"{count} words") if count > self.max_words else None


class BadStart:
    def __init__(self, settings: FilterSettings, index: DuplicateIndex):
        pass

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None:
        first = c.instruction.lstrip()[:1]
        if not first:
            return FilterVerdict(TOO_SHORT, "0 words")
        if first in string.punctuation or not first.isascii():
            return FilterVerdict(BAD_START, f"starts with {first!r}")
        return None


class ProgramTask:
    def __init__(self, settings: FilterSettings, index: DuplicateIndex):
        self.prefixes = tuple(p.lower() for p in settings.program_prefixes)

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None:
        if self.prefixes and c.instruction.lower().startswith(self.prefixes):
            return FilterVerdict(PROGRAM_TASK)
        return None


class Blacklisted:
    def __init__(self, settings: FilterSettings, index: DuplicateIndex):
        words = sorted(settings.blacklist, key=len, reverse=True)
        self.pattern = (re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
                        if words else None)

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None:
        hit = self.pattern.search(c.instruction) if self.pattern is not None else None
        return FilterVerdict(BLACKLIST, hit.group(1).lower()) if hit else None


class EvalPromptCheck:
    """Rejects a task whose instruction (and input) is an evaluation prompt, or near one by ROUGE-L.

    Built with the wall the engine loaded at the start of the run; without one (a filter used
    outside a run, or a project with no prompt set) it passes everything.
    """

    def __init__(self, settings: FilterSettings, index: DuplicateIndex, wall: Any = None):
        self.wall = wall if wall else None

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict | None:
        if self.wall is None:
            return None
        found = self.wall.check(c.instruction, c.input)
        if found is None:
            return None
        prompt, score = found
        detail = f"set {self.wall.set_name(prompt)}" + ("" if score >= 1.0 else f", ROUGE-L {score:.2f}")
        return FilterVerdict(EVAL_PROMPT, detail, prompt.instruction, float(score))


class NearDuplicate:
    """ROUGE-L against seeds and kept instructions; a survivor joins the index at once."""

    def __init__(self, settings: FilterSettings, index: DuplicateIndex):
        self.index = index

    def __call__(self, c: Candidate, *, key: Any, need_output: bool) -> FilterVerdict:
        found = self.index.check_and_add(c.instruction, key)
        if found.is_duplicate:
            return FilterVerdict(NEAR_DUPLICATE, "", found.text, float(found.score))
        # Kept: the verdict still carries the nearest instruction and its score, for the sample's record.
        return FilterVerdict(None, "", found.text, float(found.score) if found.score is not None else None)


class CandidateFilter:
    """Runs the registered checks in order; the near-duplicate index is injected so the real one drops in.

    ``wall`` is the project's evaluation wall (``EvalWall``) for the checks that ask for it
    (meta ``wall=True``); without one they pass every candidate.
    """

    def __init__(self, settings: FilterSettings, index_factory: IndexFactory = default_index_factory, *,
                 wall: Any = None):
        from studio.core.registry import SAMPLE_FILTERS

        self.settings = settings
        self.index = index_factory(settings.rouge_threshold)
        entries = sorted(SAMPLE_FILTERS.entries(), key=lambda e: bool(e.meta.get("indexes")))  # stable: order kept

        def build(key: str, wants_wall: bool) -> CandidateCheck:
            factory = SAMPLE_FILTERS.load(key)
            with SAMPLE_FILTERS.guard(key, "being set up for a run"):
                return factory(settings, self.index, wall=wall) if wants_wall else factory(settings, self.index)

        self.checks: list[tuple[str, CandidateCheck]] = []
        self.skipped: list[str] = []  # plugin filters that could not be built: one message each (recorded)
        for entry in entries:
            try:
                self.checks.append((entry.key, build(entry.key, bool(entry.meta.get("wall")))))
            except StudioError as exc:  # RegistryError (import) or PluginError (constructor), both recorded
                if entry.built_in:
                    raise
                from studio.core.plugins.boundary import record_failure

                record_failure(entry, str(exc))
                self.skipped.append(f"The sample filter {entry.key!r} of the plugin {entry.source!r} is skipped: {exc}")
        self._wall_keys = {entry.key for entry in entries if entry.meta.get("wall")}
        # A plugin check that raises while judging fails the run with a PluginError naming the plugin:
        # the candidate is neither kept nor rejected, so a resumed run (plugin fixed or disabled) judges it again.
        self._guarded = {entry.key for entry in entries if not entry.built_in}

    def wall_check(self, c: Candidate) -> FilterVerdict | None:
        """Only the evaluation-wall checks (``wall=True``), for a task whose instruction passed the
        filter before its input existed (self-instruct's instance stage): None when it passes."""
        for name, check in self.checks:
            if name in self._wall_keys and (verdict := self._run(name, check, c, None, False)) is not None \
                    and not verdict.kept:
                return verdict
        return None

    def _run(self, name: str, check: CandidateCheck, c: Candidate, key: Any, need_output: bool) -> FilterVerdict | None:
        if name not in self._guarded:
            return check(c, key=key, need_output=need_output)
        from studio.core.registry import SAMPLE_FILTERS

        with SAMPLE_FILTERS.guard(name, "judging a candidate"):
            return check(c, key=key, need_output=need_output)

    def prime(self, instructions: Iterable[str]) -> None:
        """Seed instructions and kept ones from earlier (or resumed) runs."""
        for text in instructions:
            if text.strip():
                self.index.add(text)

    def check(self, c: Candidate, key: Any = None, *, need_output: bool = True) -> FilterVerdict:
        """Decide on one candidate; a kept one joins the index at once, so later ones compare against it."""
        kept = FilterVerdict(None)
        for name, check in self.checks:
            verdict = self._run(name, check, c, key, need_output)
            if verdict is None:
                continue
            if not verdict.kept:
                return verdict
            kept = verdict  # a passing verdict with details (the nearest instruction and its score)
        return kept
