"""The plain data of an evaluation: prompt sets, systems, settings, judge, outcomes (no I/O).

Every other evaluation module speaks these types: the prompt-set store and the training/generation
wall (``prompt_sets``, ``guard``), the engine that fetches answers and verdicts (``engine``), the
human votes (``votes``), the statistics (``stats``), the loop back into seeds and Curate (``lost``).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from studio.core.errors import StudioError
from studio.core.llm.endpoint import EndpointConfig
from studio.core.llm.keys import DEFAULT_KEY_ENV
from studio.core.llm.pricing import DEFAULT_PRICES


class EvaluationError(StudioError):
    """An evaluation, prompt set or system spec that cannot be used as asked; the message says why."""


# -- prompts ---------------------------------------------------------------------------------------
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """What "the same prompt" means: case and runs of whitespace do not count."""
    return _SPACE.sub(" ", text).strip().casefold()


def prompt_hash(instruction: str, input: str = "", messages: list[dict] | None = None) -> str:
    """The identity of a prompt for a set's duplicates and the answer cache: its exact text.

    A chat prompt (``messages``) is identified by its messages; an Alpaca prompt by its
    instruction and input. Only leading and trailing whitespace is dropped: case and inner
    spacing can change the task ("Convert to title case: the cat" vs "...: The Cat", Python
    code indented differently), so such prompts are two prompts with two answers. The wall
    against training on evaluation prompts has its own, looser identity
    (:func:`studio.core.evaluation.guard.record_hash`).
    """
    if messages:
        body = json.dumps([[m.get("role", ""), str(m.get("content", "")).strip()] for m in messages])
    else:
        body = json.dumps([instruction.strip(), input.strip()])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt of a set. ``messages`` is set for chat prompts (then it is what a system is sent)."""

    instruction: str
    input: str = ""
    reference: str = ""
    category: str = ""
    messages: list[dict] | None = None
    ext_id: str | None = None
    id: int | None = None
    set_id: int | None = None
    position: int = 0
    released_to: str | None = None

    @property
    def hash(self) -> str:
        return prompt_hash(self.instruction, self.input, self.messages)

    @property
    def active(self) -> bool:
        """Still part of its set (not sent to the seeds)."""
        return self.released_to is None


@dataclass(frozen=True)
class PromptSet:
    id: int
    name: str
    source: str
    content_hash: str
    meta: dict
    created_at: float
    prompt_count: int  # active prompts
    released_count: int = 0
    categories: tuple[str, ...] = ()


# -- systems ---------------------------------------------------------------------------------------
ENDPOINT, RUN, BASE = "endpoint", "run", "base"
SystemKind = Literal["endpoint", "run", "base"]


@dataclass(frozen=True)
class SystemSpec:
    """A model that answers prompts: an OpenAI-compatible endpoint, or the studio's base / a trained run.

    The CLI's text forms: ``URL#MODEL``, ``run:RUN`` (id or name) and ``base``. ``key`` is
    the cache identity, set when an evaluation is created (``systems.resolve_system``): for an
    endpoint its URL and model, for a run its id and adapter fingerprint, so a retrained run's
    answers are never taken from the cache of the old adapter.
    """

    kind: str
    label: str = ""
    base_url: str = ""
    model: str = ""
    api_key_env: str = DEFAULT_KEY_ENV
    run: str = ""
    key: str = ""

    @classmethod
    def parse(cls, text: str) -> SystemSpec:
        text = text.strip()
        if text == BASE:
            return cls(BASE, label=BASE)
        if text.startswith("run:"):
            run = text[4:].strip()
            if not run:
                raise EvaluationError(f"{text!r}: say which run, e.g. run:3 or run:my-run.")
            return cls(RUN, label=f"run:{run}", run=run)
        url, sep, model = text.rpartition("#")
        if sep and url.startswith(("http://", "https://")) and model.strip():
            return cls(ENDPOINT, label=model.strip(), base_url=url.rstrip("/"), model=model.strip())
        raise EvaluationError(f"{text!r} is not a system: use URL#MODEL (e.g. https://api.openai.com/v1#gpt-4o-mini), "
                              "run:RUN (a trained run's id or name) or base.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SystemSpec:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def endpoint(self) -> EndpointConfig:
        """The endpoint of an ``endpoint`` system (studio models get theirs from the running server)."""
        return EndpointConfig(base_url=self.base_url, model=self.model, api_key_env=self.api_key_env)


# -- settings --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnswerSettings:
    """How every system is asked. Part of the answer cache key: change one and answers are fetched anew."""

    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    system_prompt: str = ""

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EvalSettings:
    answers: AnswerSettings = field(default_factory=AnswerSettings)
    concurrency: int = 32
    max_attempts: int = 6
    budget_usd: float | None = None  # hard cap over answers and judgments together
    seed: int = 0  # the left/right order of the blind comparison
    prices: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["prices"] = {k: list(v) for k, v in self.prices.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EvalSettings:
        known = {k: data[k] for k in ("concurrency", "max_attempts", "budget_usd", "seed") if k in data}
        answers = AnswerSettings(**data.get("answers", {}))
        prices = {k: tuple(v) for k, v in data.get("prices", DEFAULT_PRICES).items()}
        return cls(answers=answers, prices=prices, **known)  # type: ignore[arg-type]


# -- the judge ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JudgeSpec:
    """An LLM judge: its endpoint, the pairwise template and how its verdict is read.

    The template's placeholders are ``{instruction}``, ``{input}``, ``{answer_a}`` and
    ``{answer_b}`` (``str.format``); the verdict markers default to MT-Bench's.
    """

    endpoint: dict  # EndpointConfig.to_dict() (no key)
    template: str
    marker_a: str = "[[A]]"
    marker_b: str = "[[B]]"
    marker_tie: str = "[[C]]"
    temperature: float = 0.0
    max_tokens: int = 1024
    label: str = ""
    kind: str = "pairwise"  # a registry.JUDGES key; evaluations stored before judges were a choice read as pairwise

    def endpoint_config(self) -> EndpointConfig:
        return EndpointConfig.from_dict(self.endpoint)

    def key(self) -> str:
        """The judgment cache identity: same kind, endpoint, model, template and markers = same judge.

        The pairwise kind stays out of the hash, so the verdicts cached before judges were a choice still count.
        """
        data = {k: v for k, v in asdict(self).items() if k != "label" and not (k == "kind" and v == "pairwise")}
        data["endpoint"] = {k: self.endpoint.get(k) for k in ("base_url", "model")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> JudgeSpec:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# -- an evaluation -----------------------------------------------------------------------------------
CREATED, ANSWERING, JUDGING, DONE, STOPPED, FAILED = "created", "answering", "judging", "done", "stopped", "failed"


@dataclass(frozen=True)
class Evaluation:
    """What was compared, on which prompts, with which judge and settings: enough to repeat it."""

    id: int
    name: str
    set_id: int | None
    set_hash: str
    prompt_ids: list[int]
    systems: list[SystemSpec]
    judge: JudgeSpec | None
    settings: EvalSettings
    status: str
    error: str
    cost: float
    created_at: float
    updated_at: float
    finished_at: float | None = None

    def pairs(self) -> list[tuple[int, int]]:
        """Every pair of systems (by index), first with second, ... : two systems make one pair."""
        n = len(self.systems)
        return [(i, j) for i in range(n) for j in range(i + 1, n)]

    @property
    def label(self) -> str:
        return self.name or f"evaluation {self.id}"


@dataclass(frozen=True)
class StoredAnswer:
    id: int
    system_key: str
    prompt_hash: str
    settings_hash: str
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float | None
    attempts: int


FIRST, SECOND, TIE, UNREADABLE = "first", "second", "tie", "unreadable"


@dataclass(frozen=True)
class StoredJudgment:
    id: int
    judge_key: str
    first_answer: int
    second_answer: int
    verdict: str  # first | second | tie | unreadable (the raw output had no marker)
    raw: str
    cost: float


# -- outcomes: what the statistics read --------------------------------------------------------------
A_WINS, B_WINS = "a", "b"


@dataclass(frozen=True)
class Outcome:
    """One prompt, one pair of systems (``system_a`` < ``system_b``, indexes into the evaluation's systems).

    ``winner`` is ``a``, ``b`` or ``tie``. For the judge: ``ab`` is its verdict with A shown
    first and ``ba`` with B shown first, both already mapped to systems (``a``/``b``/``tie``,
    None when not judged or unreadable); a verdict counts only when both agree, otherwise
    ``winner`` is ``tie`` and ``inconsistent`` is set. For a human vote, ``ab``/``ba`` are
    None and ``both_bad`` marks a tie where neither answer was good.
    """

    prompt_id: int
    system_a: int
    system_b: int
    winner: str
    len_a: int  # characters of each answer
    len_b: int
    category: str = ""
    inconsistent: bool = False
    ab: str | None = None
    ba: str | None = None
    both_bad: bool = False


def judge_outcome(prompt_id: int, system_a: int, system_b: int, ab: str | None, ba: str | None,
                  len_a: int, len_b: int, category: str = "") -> Outcome:
    """Combine the two orders: a verdict counts only when both agree; anything else is an inconsistent tie."""
    if ab is not None and ab == ba:
        return Outcome(prompt_id, system_a, system_b, ab, len_a, len_b, category, False, ab, ba)
    inconsistent = ab is not None and ba is not None
    return Outcome(prompt_id, system_a, system_b, "tie", len_a, len_b, category, inconsistent, ab, ba)


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
