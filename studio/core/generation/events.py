"""What the engine tells its listener (CLI progress bar, GUI panel). Plain dataclasses, no Qt.

Events are delivered on the engine's thread; a GUI marshals them to its own thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Counters:
    run_id: int
    target: int
    budget_usd: float | None
    in_flight: int = 0
    requests_done: int = 0
    requests_failed: int = 0
    kept: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    elapsed_s: float = 0.0
    kept_this_session: int = 0
    paused: bool = False

    @property
    def cost_per_kept(self) -> float | None:
        return self.cost / self.kept if self.kept else None

    @property
    def samples_per_min(self) -> float:
        return 60.0 * self.kept_this_session / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.kept_this_session / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return max(0.0, self.target - self.kept) / rate if rate > 0 else None

    def copy(self) -> Counters:
        return Counters(**{**self.__dict__, "rejected_by_reason": dict(self.rejected_by_reason)})


@dataclass(frozen=True)
class Event:
    run_id: int


@dataclass(frozen=True)
class RunStarted(Event):
    resumed: bool
    key_source: str
    estimate: str


@dataclass(frozen=True)
class SampleKept(Event):
    sample_id: int
    instruction: str
    input: str
    output: str
    seed_ids: tuple[int, ...]


@dataclass(frozen=True)
class CandidateRejected(Event):
    reason: str
    instruction: str
    detail: str
    nearest_instruction: str | None
    score: float | None


@dataclass(frozen=True)
class RetryScheduled(Event):
    request_key: str
    attempt: int
    delay_s: float
    kind: str
    message: str


@dataclass(frozen=True)
class RequestFailed(Event):
    request_key: str
    message: str


@dataclass(frozen=True)
class TeacherError(Event):
    """Fatal for the run (bad key, no quota, unknown model): the GUI shows a banner."""

    kind: str
    message: str


@dataclass(frozen=True)
class Notice(Event):
    """A warning the run goes on despite (a plugin's sample filter that could not be built is skipped):
    the CLI prints it, the Generate panel shows it."""

    text: str


@dataclass(frozen=True)
class Progress(Event):
    counters: Counters


@dataclass(frozen=True)
class RunFinished(Event):
    reason: str  # target | budget | max_requests | stopped | error
    counters: Counters
    message: str = ""
    discarded: bool = False  # a new run that failed before any answer: its row was removed


@dataclass(frozen=True)
class BackendStatus(Event):
    """A backend's state in words and numbers (a batch's status, counts, saving); shown and stored on the run.

    ``text`` is one line for the panel and the CLI; ``state`` is JSON-safe detail (a batch
    backend: its jobs with status and counts, ``open`` while the provider holds requests,
    ``saving_usd`` against live calls).
    """

    text: str
    state: dict = field(default_factory=dict)
