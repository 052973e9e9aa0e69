"""Generation modes: how a run turns prompts into requests and answers into samples.

A mode is pure bookkeeping over text: it builds prompts and judges answers, and never touches
the network or the database. The engine sends, commits, retries and counts for every mode.
A mode may answer a request with child requests (the next self-instruct stage); the engine
stores them in the same transaction that marks their parent done.

Judging an answer is a generator that yields after each candidate it filters and returns the
:class:`Outcome`: the engine resumes it between other work, so one 20-task answer (several ms
of ROUGE-L) never holds up sending the next requests.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from studio.core.generation.config import RunConfig
from studio.core.generation.filters import CandidateFilter
from studio.core.generation.prompts import Example, SeedExample, build_prompt, parse_tasks, pick_examples
from studio.core.generation.repository import ChildRequest, Rejected, RequestRow
from studio.core.samples import Origin, Sample, Status


@dataclass
class ModeContext:
    run_id: int
    config: RunConfig
    seeds: Sequence[SeedExample]
    filter: CandidateFilter
    accepted: Callable[[], list[Example]]  # accepted samples, for mixing into prompts
    generated_instructions: Callable[[int], list[str]]  # a few instructions this run already kept


@dataclass
class Outcome:
    kept: list[Sample] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    children: list[ChildRequest] = field(default_factory=list)


# Yields None after each filtered candidate; returns the request's outcome.
JudgeSteps = Generator[None, None, Outcome]


class Mode(Protocol):
    root_stage: str

    def new_prompt(self, rng: random.Random, index: int) -> tuple[str, list[int], dict]: ...
    def max_tokens(self, stage: str) -> int: ...
    def expected_kept(self, stage: str, payload: dict) -> float | None:
        """What a request of ``stage`` should add to the kept count, counting the later stages it
        starts (None: the engine uses the rate it observes). Keeps staged runs near their target."""
    def handle(self, request: RequestRow, text: str, finish_reason: str | None) -> JudgeSteps: ...


def make_sample(ctx: ModeContext, instruction: str, input: str, output: str, seed_ids: list[int], key: str,
                verdicts: dict) -> Sample:
    return Sample(instruction, input, output, status=Status.PENDING, origin=Origin.GENERATED, run_id=ctx.run_id,
                  seed_ids=list(seed_ids), teacher_model=ctx.config.teacher.model, source=key,
                  filter_verdicts=verdicts)


class AlpacaMode:
    """One request = k examples in, a numbered batch of complete tasks out (Stanford Alpaca)."""

    root_stage = "generate"

    def __init__(self, ctx: ModeContext):
        self.ctx = ctx

    def new_prompt(self, rng: random.Random, index: int) -> tuple[str, list[int], dict]:
        config = self.ctx.config
        accepted = self.ctx.accepted() if config.accepted_share > 0 else []
        examples = pick_examples(rng, self.ctx.seeds, accepted, config.k_examples, config.accepted_share)
        prompt = build_prompt(config.template, examples, config.num_tasks)
        return prompt, [e.seed_id for e in examples if e.seed_id is not None], {}

    def max_tokens(self, stage: str) -> int:
        return self.ctx.config.max_tokens

    def expected_kept(self, stage: str, payload: dict) -> float | None:
        return None  # one stage: the observed keep rate is the best guess

    def handle(self, request: RequestRow, text: str, finish_reason: str | None) -> JudgeSteps:
        outcome = Outcome()
        parsed = parse_tasks(text, finish_reason)
        for candidate in parsed.candidates:
            yield
            verdict = self.ctx.filter.check(candidate, request.key)
            if verdict.kept:
                outcome.kept.append(make_sample(
                    self.ctx, candidate.instruction, candidate.input, candidate.output, request.seed_ids, request.key,
                    {"rouge_l_max": verdict.score}))
            else:
                outcome.rejected.append(Rejected(candidate.instruction, candidate.input, candidate.output,
                                                 verdict.reason, verdict.detail, verdict.nearest_instruction,
                                                 verdict.score))
        for failure in parsed.failures:
            outcome.rejected.append(Rejected("", "", failure.raw, failure.reason, failure.detail))
        return outcome


def make_mode(ctx: ModeContext) -> Mode:
    """The registered mode named by ``config.mode`` (``GENERATION_MODES``), built for this run.

    A plugin's mode comes wrapped in :class:`GuardedMode`, so an exception in its code fails the
    run with a :class:`~studio.core.plugins.boundary.PluginError` naming the plugin.
    """
    from studio.core.registry import GENERATION_MODES

    key = ctx.config.mode
    factory = GENERATION_MODES.load(key)
    if GENERATION_MODES.get(key).built_in:
        return factory(ctx)
    with GENERATION_MODES.guard(key, "starting a run"):
        return GuardedMode(factory(ctx), key)


class GuardedMode:
    """A plugin's mode with every call through the registry boundary (built-in modes are used as they are).

    Built by :func:`make_mode` inside its guard, which also covers reading ``root_stage`` here.
    """

    def __init__(self, mode: Mode, key: str):
        from studio.core.registry import GENERATION_MODES

        self._mode, self._key, self._registry = mode, key, GENERATION_MODES
        self.root_stage = mode.root_stage

    def new_prompt(self, rng: random.Random, index: int) -> tuple[str, list[int], dict]:
        with self._registry.guard(self._key, "building a prompt"):
            return self._mode.new_prompt(rng, index)

    def max_tokens(self, stage: str) -> int:
        with self._registry.guard(self._key, "choosing max_tokens"):
            return self._mode.max_tokens(stage)

    def expected_kept(self, stage: str, payload: dict) -> float | None:
        with self._registry.guard(self._key, "estimating a request's yield"):
            return self._mode.expected_kept(stage, payload)

    def handle(self, request: RequestRow, text: str, finish_reason: str | None) -> JudgeSteps:
        with self._registry.guard(self._key, f"reading the answer to request {request.key}"):
            return (yield from self._mode.handle(request, text, finish_reason))
