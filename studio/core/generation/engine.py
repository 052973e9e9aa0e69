"""The generation engine: many teacher requests in flight, each result committed as it lands.

One asyncio loop (on whatever thread calls :meth:`GenerationEngine.run`) talks to the teacher
over its own SQLite connection, which writes request rows. A worker hands each answer to one
judge coroutine and sends its next request at once; the judge parses and filters one
candidate per loop iteration, so no two answers interleave inside the near-duplicate index,
and hands the judged answer to a :class:`~studio.core.generation.writer.StoreWriter` thread
(its own connection) that commits answers in the order they were judged. Sending never
queues behind filtering or committing, which cost ~5 ms an answer: with 32 answers landing
together, judging and committing them before resending cost a fifth of the throughput. Control
(:meth:`pause`, :meth:`resume`, :meth:`stop`) is safe from any thread. The engine reaches the
project only through :meth:`Project.worker` handles (one for the loop, one for the writer), so
every commit it makes is published on the project's change feed (``samples``,
``generation_runs``) like any other write. Requests are sent through the run's generation
backend (:mod:`studio.core.generation.backends`): ``live`` calls the shared
:class:`~studio.core.llm.LLMClient` (retries, backoff, Retry-After, plain errors) at once; a
batch backend (a plugin) gathers the requests in flight into one provider job. Every price is
the backend's (``price_factor``). Launch rules:

* at most ``concurrency`` requests in flight (a batch backend asks for its batch size);
* no new request once kept + the expected yield of the work under way (requests in flight,
  answers being judged, later stages they will create; the mode says what a staged request
  should yield) reaches the target, so a run stops close to its target instead of
  overshooting by a whole wave, or, in self-instruct, by a whole chain;
* never more kept samples than the target: good samples that land after it was reached are
  stored as ``over_target`` rejects (paid for, so restorable, never silently dropped);
* no new request whose worst case (full ``max_tokens`` answer) could push spend, including
  the worst case of those in flight, over the budget: the cap is hard.
"""
from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.core.errors import StudioError
from studio.core.evaluation.guard import EvalWall
from studio.core.generation import events as ev
from studio.core.generation.backends import (
    REQUEST_KEY_HEADER,
    Backend,
    BackendContext,
    Sender,
    backend_options,
    teacher_client,
)
from studio.core.generation.config import ConfigError, CostEstimate, RunConfig, estimate_cost, usd
from studio.core.generation.filters import OVER_TARGET, CandidateFilter, IndexFactory, default_index_factory
from studio.core.generation.modes import ModeContext, Outcome, make_mode
from studio.core.generation.prompts import Example, SeedExample, build_prompt, default_template
from studio.core.generation.repository import Completion, GenerationRepository, Rejected, RequestRow
from studio.core.generation.writer import StoreWriter
from studio.core.llm.client import LLMClient, RetryNotice
from studio.core.llm.errors import BAD_REQUEST, MODEL, NETWORK, OTHER, LLMError
from studio.core.llm.keys import resolve_key
from studio.core.llm.models import check_connection

if TYPE_CHECKING:
    from studio.core.project import Project

EventSink = Callable[[ev.Event], None]
ClientFactory = Callable[[RunConfig, "str | None"], LLMClient]
__all__ = ["GenerationEngine", "REQUEST_KEY_HEADER", "RunResult", "create_run", "load_backend", "prepare_run",
           "run_estimate", "teacher_client"]
BATCH_PRICES = "at batch prices"


def load_backend(config: RunConfig) -> Backend:
    """The run's backend object (imports a plugin backend's code: call off the GUI thread)."""
    from studio.core.registry import GENERATION_BACKENDS

    with GENERATION_BACKENDS.guard(config.backend, "loading the generation backend"):
        return GENERATION_BACKENDS.load(config.backend)


def scaled_estimate(estimate: CostEstimate, price_factor: float) -> CostEstimate:
    """The estimate at the backend's prices (the Batch API: half)."""
    if price_factor == 1.0:
        return estimate
    from dataclasses import replace

    return replace(estimate, usd=estimate.usd * price_factor)


def describe_estimate(estimate: CostEstimate, price_factor: float) -> str:
    """The estimate in words; at a backend's (batch) prices it says so and what live calls would cost more.

    The panel shows these very words before a run and the run announces them (``RunStarted``).
    """
    if price_factor == 1.0:
        return estimate.describe()
    live = estimate.usd / price_factor if price_factor else 0.0
    return (f"about {estimate.requests} requests, {estimate.prompt_tokens + estimate.completion_tokens:,} tokens, "
            f"≈ {usd(estimate.usd)} {BATCH_PRICES} ({usd(live - estimate.usd)} less than live calls), "
            f"assuming {estimate.assumed_keep_rate:.0%} of tasks are kept")


def create_run(store: GenerationRepository, config: RunConfig, name: str = "") -> int:
    """Store a new run with its full config (key-free) and the exact template it will use."""
    if not config.template:
        config.template = default_template(config.mode)
    return store.create_run(
        name=name or f"{config.mode} x{config.target}", mode=config.mode, teacher_model=config.teacher.model,
        base_url=config.teacher.base_url, config=config.to_dict(), prompt_template=config.template,
    )


def sample_prompt_chars(config: RunConfig, seeds: Sequence[Example]) -> int:
    """Length of a typical first prompt: the run's template filled with the first k seeds."""
    template = config.template or default_template(config.mode)
    return len(build_prompt(template, list(seeds)[: config.k_examples], config.num_tasks))


def run_estimate(config: RunConfig, seeds: Sequence[Example], price_factor: float | None = None) -> CostEstimate:
    """The estimate the engine announces when a run starts; the panel shows this same one beforehand.

    At the backend's prices: ``price_factor`` if given, else the run's backend is loaded to read it
    (a plugin backend's import: call off the GUI thread).
    """
    factor = load_backend(config).price_factor if price_factor is None else price_factor
    return scaled_estimate(estimate_cost(config, sample_prompt_chars(config, seeds)), factor)


def prepare_run(project: Project, config: RunConfig, *, api_key: str | None = None, check_teacher: bool = True,
                name: str = "") -> int:
    """Check everything a start can check, then store the run; a failed start stores nothing.

    Raises :class:`~studio.core.generation.config.ConfigError` (a setting that cannot work, no
    seed tasks) or :class:`~studio.core.llm.LLMError` (bad key, no quota, unreachable teacher,
    found by listing the teacher's models). Blocking: call off the GUI thread.
    """
    from studio.core.registry import GENERATION_MODES

    config.validate()
    GENERATION_MODES.load(config.mode)  # a plugin mode that cannot be imported fails here, before a row exists
    store = project.generation
    if not store.seed_examples(limit=1):
        raise ConfigError("The project has no seed tasks to show the teacher: add some on the Seeds page.")
    _refuse_eval_seeds(project)
    if check_teacher:
        endpoint = config.teacher
        if api_key is not None:
            endpoint = type(endpoint).from_dict(endpoint.to_dict())
            endpoint.api_key = api_key
        report = check_connection(endpoint, timeout_s=min(10.0, endpoint.timeout_s))
        # A server without a model list (404 on /models) may still answer chat requests, and some
        # local servers answer for any model name (llama.cpp lists a file path): let the first
        # request decide. A run refused before any answer removes its own row (GenerationEngine).
        if not report.ok and report.error is not None and report.error.status_code != 404 \
                and report.error.kind != MODEL:
            raise report.error
    return create_run(store, config, name)


def _refuse_eval_seeds(project: Project) -> None:
    """Seed tasks that are evaluation-only prompts are never shown to the teacher: refuse to start."""
    wall = EvalWall.load(project.conn)
    if not wall:
        return
    hits = [(seed, found) for seed in project.generation.seed_examples()
            if (found := wall.shown(seed.instruction, seed.input)) is not None]
    if not hits:
        return
    named = "; ".join(f"seed {seed.seed_id}: {wall.describe(found)}" for seed, found in hits[:3])
    more = f" and {len(hits) - 3:,} more" if len(hits) > 3 else ""
    raise ConfigError(
        f"{len(hits):,} seed task{'s are' if len(hits) != 1 else ' is'} an evaluation-only prompt ({named}{more}): "
        "the teacher would learn the test. Remove them on the Seeds page (or `distill-studio seeds delete ID`), "
        "or delete the prompt set on the Evaluate page.")


@dataclass(frozen=True)
class RunResult:
    run_id: int
    reason: str
    counters: ev.Counters
    message: str = ""
    discarded: bool = False  # the run failed before any answer and its fresh row was removed


class GenerationEngine:
    """Runs (or resumes) one stored generation run until target, budget, max requests or Stop."""

    def __init__(
        self,
        project: Project,
        run_id: int,
        *,
        on_event: EventSink | None = None,
        api_key: str | None = None,
        key_source: str | None = None,
        index_factory: IndexFactory = default_index_factory,
        client_factory: ClientFactory = teacher_client,
    ):
        self._project = project
        self.run_id = run_id
        self._emit_to = on_event
        self._api_key = api_key
        self._key_source = key_source  # where the caller found the key, said to the user
        self._index_factory = index_factory
        self._client_factory = client_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = threading.Event()
        self._paused = threading.Event()
        self._detach = False  # stop(detach=True): the app is closing; work left at the provider is "detached"
        self._cancel_work = False  # stop(cancel_work=True): cancel what the provider still holds

    # -- control (any thread) ------------------------------------------------------------------
    def pause(self) -> None:
        self._paused.set()
        self._poke()

    def resume(self) -> None:
        self._paused.clear()
        self._poke()

    def stop(self, detach: bool = False, cancel_work: bool = False) -> None:
        """Stop sending; requests in flight stay pending (resumed later).

        ``detach``: the app is closing: a run whose backend still holds work at a provider (a batch)
        ends ``detached``, and the Generate panel picks it up when the project opens again.
        ``cancel_work``: ask the backend to cancel that work (``Sender.cancel_open_work``); what it
        already answered is collected on resume.
        """
        self._detach = self._detach or detach
        self._cancel_work = self._cancel_work or cancel_work
        self._stop_requested.set()
        self._poke()

    def _poke(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._on_control)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def _on_control(self) -> None:
        if self._stop_requested.is_set():
            self._halt.set()
        if not hasattr(self, "_started"):  # still setting up: the workers read the flags when they start
            return
        self._counters.paused = self._paused.is_set()
        self._pulse()
        self._emit_progress()  # the GUI shows "paused" at once, even with nothing in flight

    def run_blocking(self) -> RunResult:
        """Run on the calling thread with a fresh event loop (CLI, GUI worker thread)."""
        return asyncio.run(self.run())

    # -- the run ----------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        self._loop = asyncio.get_running_loop()
        self._waiting: collections.deque[asyncio.Future] = collections.deque()  # workers told to wait
        self._halt = asyncio.Event()  # Stop, or a fatal teacher error
        if self._stop_requested.is_set():
            self._halt.set()
        with self._project.worker() as handle:
            return await self._run(handle.generation)

    async def _run(self, store: GenerationRepository) -> RunResult:
        run = store.run(self.run_id)
        if run is None:
            raise ValueError(f"no generation run {self.run_id}")
        config = RunConfig.from_dict(run["config"])
        config.template = run["prompt_template"] or config.template or default_template(config.mode)
        config.teacher.api_key = self._api_key
        self._config, self._store = config, store  # the loop's connection: reads, request rows, run status
        backlog = store.unfinished_requests(self.run_id)
        resumed = run["requests"] > 0 or bool(backlog)
        self._counters = c = ev.Counters(self.run_id, config.target, config.budget_usd)
        stored = store.counters(self.run_id)
        c.requests_done, c.requests_failed, c.kept, c.rejected = (
            stored["requests"], stored["failed_requests"], stored["kept"], stored["rejected"])
        c.rejected_by_reason = stored["rejected_by_reason"]
        c.prompt_tokens, c.completion_tokens, c.cost = stored["prompt_tokens"], stored["completion_tokens"], stored["cost"]
        c.requests_failed = 0  # failed requests are retried on resume; count only this session's failures

        # The evaluation wall, as it is now: eval prompts are never examples, and copies are rejected.
        wall = EvalWall.load(store.conn)
        every_seed = store.seed_examples()
        seeds = [e for e in every_seed if wall.shown(e.instruction, e.input) is None]
        if wall and backlog:
            backlog = _without_eval_prompts(backlog, wall, every_seed, store.run_instructions(self.run_id, -1))
        if not seeds:
            self._discard_if_fresh(store, resumed)
            return self._finish("error", "Every seed task is an evaluation-only prompt: add others on the Seeds page."
                                if every_seed else "The project has no seed tasks to show the teacher.")
        candidate_filter = CandidateFilter(config.filters, self._index_factory, wall=wall)
        candidate_filter.prime(e.instruction for e in seeds)
        candidate_filter.prime(store.all_instructions())
        candidate_filter.prime(_instructions_in_progress(backlog))

        def accepted_examples(limit: int = 50) -> list[Example]:
            examples = store.accepted_examples(limit)
            return [e for e in examples if wall.shown(e.instruction, e.input) is None] if wall else examples

        def generated_instructions(count: int) -> list[str]:
            # Kept by this run before a prompt set named them: never shown to the teacher again.
            shown = store.run_instructions(self.run_id, count)
            return [text for text in shown if wall.exact(text) is None] if wall else shown

        self._mode = make_mode(ModeContext(self.run_id, config, seeds, candidate_filter, accepted_examples,
                                           generated_instructions))

        try:
            backend = load_backend(config)
        except Exception as error:  # noqa: BLE001 - a plugin backend that cannot load fails the run, plainly
            store.set_status(self.run_id, "failed")
            return self._finish("error", str(error))
        self._backend = backend
        key_source = self._key_source or resolve_key(config.teacher).describe()
        prompt_chars = sample_prompt_chars(config, seeds)
        factor = backend.price_factor
        estimate = scaled_estimate(estimate_cost(config, prompt_chars), factor)
        self._worst_live = config.worst_case_cost(prompt_chars // 3)  # one request's full answer at live prices
        self._worst_case = self._worst_live * factor
        self._promised = c.kept  # kept samples committed or on their way to the writer
        store.set_status(self.run_id, "running")
        self._emit(ev.RunStarted(self.run_id, resumed, key_source, describe_estimate(estimate, factor)))
        if candidate_filter.skipped:  # after RunStarted, which clears the panel's messages
            self._emit(ev.Notice(self.run_id, " ".join(candidate_filter.skipped)))

        self._fatal: ev.TeacherError | None = None
        self._started = time.monotonic()
        self._session_requests = 0
        self._writer = StoreWriter(self._project)
        reason: str | None = None  # stays None when the launch loop raises
        open_work = False
        note = ""  # a backend's failure after the run's end (cancel, close): said with the result
        live: list[LLMClient] = []

        def live_client() -> LLMClient:
            if not live:
                live.append(self._client_factory(config, self._api_key))
            return live[0]

        try:
            try:
                context = BackendContext(self._project, store.conn, self.run_id, config, self._api_key,
                                         backend_options(config.backend, config.backend_options), self._report,
                                         live_client, self._reserve)
                try:
                    with self._guard("opening the generation backend"):
                        self._sender: Sender = backend.open(context)
                except StudioError as error:  # a plugin backend that cannot start: the run fails, plainly
                    reason = "error"
                    self._fatal = ev.TeacherError(self.run_id, OTHER, str(error))
                    self._emit(self._fatal)
                    store.set_status(self.run_id, "failed")
                    return self._finish(reason, str(error))
                try:
                    reason = await self._launch_loop(backlog)
                    if self._cancel_work and reason == "stopped" and hasattr(self._sender, "cancel_open_work"):
                        try:
                            with self._guard("cancelling the work at the provider"):
                                await self._sender.cancel_open_work()
                        except StudioError as error:  # the run stopped all the same: say the work is still there
                            note = f"The work at the provider was not cancelled (resume the run to collect it): {error}"
                    try:
                        with self._guard("checking for work left at the provider"):
                            open_work = self._sender.open_work()
                    except StudioError as error:  # unknown: assume the provider still holds some (picked up later)
                        open_work, note = True, str(error)
                finally:
                    try:
                        with self._guard("closing the generation backend"):
                            await self._sender.aclose()
                    except StudioError as error:  # the run's outcome stands; the plugin's failure is recorded
                        note = note or str(error)
            finally:
                if live:
                    await live[0].aclose()
        finally:
            self._writer.close()  # every answer handed over is committed before the run's status is
            if reason is None:  # not left "running"; resuming picks up where it broke
                store.set_status(self.run_id, "failed")
        message = self._fatal.message if self._fatal else note
        if reason == "error" and self._sender.answers == 0 and not open_work \
                and self._discard_if_fresh(store, resumed):
            return self._finish(reason, message, discarded=True)
        status = {"target": "done", "budget": "done", "max_requests": "done", "stopped": "stopped"}.get(reason, "failed")
        if status == "stopped" and self._detach and open_work:
            status = "detached"  # the app closed with a batch at the provider: picked up when it opens again
        store.set_status(self.run_id, status, finished=status == "done")
        return self._finish(reason, message)

    def _guard(self, action: str):
        """The registry boundary around a call into the run's backend (a plugin's bug names the plugin)."""
        from studio.core.registry import GENERATION_BACKENDS

        return GENERATION_BACKENDS.guard(self._config.backend, action)

    def _report(self, status: ev.BackendStatus) -> None:
        """A backend's state: stored on the run (shown for a run that is not running) and emitted."""
        self._store.set_backend_status(self.run_id, status.text, status.state)
        self._emit(status)

    def _reserve(self, key: str, price_factor: float) -> bool:
        """Raise request ``key``'s worst-case reservation to ``price_factor``'s prices, if the budget has room.

        A batch line retried live pays the live price; reserved at the batch price, a wave of such
        retries could spend past the hard budget cap.
        """
        held = self._reserved.get(key, 0.0)
        worst = self._worst_live * price_factor
        if worst <= held:
            return True
        budget = self._config.budget_usd
        if budget is not None and self._counters.cost + sum(self._reserved.values()) - held + worst > budget:
            return False
        self._reserved[key] = worst
        return True

    def _discard_if_fresh(self, store: GenerationRepository, resumed: bool) -> bool:
        """A new run that failed before any answer (bad key, server down) leaves no row behind."""
        return not resumed and store.discard_run(self.run_id)

    def _finish(self, reason: str, message: str = "", *, discarded: bool = False) -> RunResult:
        counters = self._counters.copy() if hasattr(self, "_counters") else ev.Counters(self.run_id, 0, None)
        self._emit(ev.RunFinished(self.run_id, reason, counters, message, discarded))
        return RunResult(self.run_id, reason, counters, message, discarded)

    async def _launch_loop(self, backlog: list[RequestRow]) -> str:
        """``concurrency`` workers, each sending one request at a time; returns why the run ended."""
        self._paid = self._held_by_provider(backlog)  # sent first and whatever the rules say: already paid
        paid = {r.key for r in self._paid}
        self._backlog = [r for r in backlog if r.key not in paid]
        self._reserved: dict[str, float] = {}
        self._end_reason = ""
        self._answers: asyncio.Queue[_Answer | None] = asyncio.Queue()
        self._commits: asyncio.Queue[_Commit | None] = asyncio.Queue()
        self._judging = 0  # answers received, not yet filtered, committed and counted
        # What the work under way should still bring, by request key: sent and not yet judged, or
        # judged and not yet stored (the later stages it starts). One running total, read per step.
        self._expected_by_key: dict[str, float] = {}
        self._expected_total = 0.0
        judge, record = asyncio.ensure_future(self._judge()), asyncio.ensure_future(self._record())
        width = getattr(self._sender, "max_in_flight", None) or self._backend.max_in_flight or self._config.concurrency
        workers = asyncio.gather(*(self._worker() for _ in range(width)))
        halt = asyncio.ensure_future(self._halt.wait())
        await asyncio.wait([workers, halt, judge, record], return_when=asyncio.FIRST_COMPLETED)
        if not workers.done():  # Stop, a fatal teacher error or a failed commit: unfinished requests stay pending
            workers.cancel()
        halt.cancel()
        (ended,) = await asyncio.gather(workers, return_exceptions=True)
        # Every answer already received is paid for: judge and commit it before the run ends.
        self._answers.put_nowait(None)
        try:
            await judge  # re-raises whatever broke the judge
        finally:
            self._commits.put_nowait(None)
            await record  # re-raises a failed commit
        if isinstance(ended, BaseException) and not isinstance(ended, asyncio.CancelledError):
            raise ended  # a bug in a worker must not pass for a stopped run
        self._counters.in_flight = 0
        self._emit_progress()
        if self._fatal is not None:
            return "error"
        if self._stop_requested.is_set():
            return "stopped"
        return self._end_reason or "stopped"

    def _held_by_provider(self, backlog: list[RequestRow]) -> list[RequestRow]:
        """The stored requests a provider job holds (``Sender.holds``): paid, so never left uncollected."""
        holds = getattr(self._sender, "holds", None)
        if holds is None:
            return []
        try:
            with self._guard("asking which requests the provider holds"):
                return [r for r in backlog if holds(r.key)]
        except StudioError:  # recorded; they stay in the backlog, and send() still waits for their job
            return []

    async def _worker(self) -> None:
        while True:
            step = self._next_step()
            if step == "go":
                if self._paid:
                    request = self._paid.pop(0)
                else:
                    request = self._backlog.pop(0) if self._backlog else self._new_request()
                self._expect(request.key, self._expected_kept(request.stage, request.payload))
                self._reserved[request.key] = self._worst_case
                self._counters.in_flight += 1
                self._pulse()  # the next waiting worker checks whether it may start one too
                try:
                    answer = await self._send(request)
                    if answer is not None:  # no await before the queue holds it: cancelling cannot lose it
                        self._count_spend(answer)
                        self._judging += 1
                        self._answers.put_nowait(answer)
                    else:
                        self._expect(request.key, 0.0)
                finally:
                    self._counters.in_flight -= 1
                    self._reserved.pop(request.key, None)
                    self._emit_progress()
                    self._pulse()
            elif step == "wait":
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.append(waiter)
                await waiter
            else:
                self._end_reason = self._end_reason or step
                self._pulse()  # let waiting workers see the end too
                return

    def _next_step(self) -> str:
        """'go', 'wait', or the reason the run is over. Called between awaits, so it sees a stable state."""
        config, c = self._config, self._counters
        if self._end_reason:
            return self._end_reason
        if self._halt.is_set():  # Stop or a fatal teacher error: send nothing more, even before the cancel lands
            return "halted"
        if self._paid:  # a provider holds them (a batch): paid already, so collected whatever the rules below say
            return "go"
        if c.kept >= config.target:
            return "target"
        in_flight = c.in_flight + self._judging  # both may still add kept samples and requests
        if self._promised >= config.target:  # enough is on its way to the writer: wait for it to land
            return "wait" if in_flight else "target"
        if config.max_requests is not None and self._session_requests + in_flight >= config.max_requests:
            return "max_requests" if in_flight == 0 else "wait"
        if config.budget_usd is not None and c.cost + sum(self._reserved.values()) + self._worst_case > config.budget_usd:
            return "budget" if in_flight == 0 else "wait"
        if self._paused.is_set():
            return "wait"
        if in_flight and self._outlook() >= config.target:
            return "wait"
        return "go"

    def _outlook(self) -> float:
        """Kept samples committed or on their way, plus what the work under way should still yield."""
        return self._promised + self._expected_total

    def _expect(self, key: str, kept: float) -> None:
        """Set what request ``key`` should still bring (0: nothing more)."""
        self._expected_total += kept - self._expected_by_key.pop(key, 0.0)
        if kept:
            self._expected_by_key[key] = kept

    def _expected_kept(self, stage: str, payload: dict) -> float:
        """What one request should add to the kept count: the mode's guess for staged requests, else the observed rate."""
        value = self._mode.expected_kept(stage, payload)
        return self._expected_yield() if value is None else value

    def _pulse(self) -> None:
        """The state changed (a request ended, pause, resume): wake the longest-waiting worker.

        Every worker would reach the same verdict (``_next_step`` reads only the run's state), so
        one checks: it waits again, or starts a request and wakes the next (a chain, one wake per
        start), or sees the end and wakes the next. Waking all of them on every change cost
        width x answers wake-ups: a million for a 1,000-request batch.
        """
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _expected_yield(self) -> float:
        done = self._session_requests
        if done == 0:
            return self._config.num_tasks * 0.75
        return max(0.5, self._counters.kept_this_session / done)

    def _new_request(self) -> RequestRow:
        """A new root-stage request, committed (pending) before it may be sent."""
        stage = self._mode.root_stage
        index = self._store.next_index(self.run_id, stage)
        rng = random.Random(f"{self._config.random_seed}:{self.run_id}:{index}")
        prompt, seed_ids, payload = self._mode.new_prompt(rng, index)
        return self._store.add_request(self.run_id, index, prompt, seed_ids, stage, payload)

    async def _judge(self) -> None:
        """Filter answers in arrival order, one candidate per loop iteration, and hand them to the writer."""
        while True:
            answer = await self._answers.get()
            if answer is None:
                return
            steps = self._mode.handle(answer.request, answer.text, answer.finish_reason)
            while True:  # sends and reads run between candidates
                try:
                    next(steps)
                except StopIteration as done:
                    outcome: Outcome = done.value
                    break
                await asyncio.sleep(0)
            self._hold_to_target(outcome)
            key = answer.request.key
            # Its own yield is now in _promised; until stored, it stands for the later stages it starts.
            self._expect(key, sum(self._expected_kept(ch.stage, ch.payload) for ch in outcome.children))
            self._commits.put_nowait(self._submit_commit(answer, outcome))

    def _hold_to_target(self, outcome: Outcome) -> None:
        """Keep no more than the target; what lands after it is stored as restorable ``over_target`` rejects."""
        room = max(0, self._config.target - self._promised)
        if len(outcome.kept) > room:
            extra, outcome.kept = outcome.kept[room:], outcome.kept[:room]
            outcome.rejected.extend(Rejected(s.instruction, s.input, s.output, OVER_TARGET,
                                             f"the target of {self._config.target} was reached") for s in extra)
        if room == 0:
            outcome.children = []  # nothing more is needed: no later stages for work past the target
        self._promised += len(outcome.kept)

    async def _record(self) -> None:
        """Count each committed answer, in commit order, until the None sentinel."""
        while True:
            commit = await self._commits.get()
            if commit is None:
                return
            try:
                ids, children = await asyncio.wrap_future(commit.future)
                self._count_commit(commit, ids, children)
            finally:
                self._judging -= 1
            self._pulse()
            self._emit_progress()

    async def _send(self, request: RequestRow) -> _Answer | None:
        """The teacher's answer, after the backend's retries; None when the request failed or the run halted."""
        config = self._config

        def on_retry(notice: RetryNotice) -> None:
            self._store.note_attempt(request.key, notice.attempt, notice.error.message)
            self._emit(ev.RetryScheduled(self.run_id, request.key, notice.attempt, notice.delay_s, notice.error.kind,
                                         notice.error.message))

        params = {"temperature": config.temperature, "top_p": config.top_p,
                  "max_tokens": self._mode.max_tokens(request.stage)}
        try:
            done = await self._sender.send(request, prior_attempts=request.attempts, on_retry=on_retry,
                                           timeout_s=config.request_timeout_s, params=params)
        except LLMError as error:
            # No retry fixes a bad key, an empty account or an unknown model; before any answer, a
            # refused connection is a wrong URL or a server that is down, and a rejected request a
            # setting the teacher cannot take (max_tokens too large...): stop the run and say so,
            # instead of failing every request of it one by one.
            if error.fatal or (error.kind in (NETWORK, BAD_REQUEST) and self._sender.answers == 0):
                self._halt_on(request, error)
                return None
            self._store.mark_failed(request.key, error.attempts, error.message)
            self._counters.requests_failed += 1
            self._session_requests += 1
            self._emit(ev.RequestFailed(self.run_id, request.key, error.message))
            return None
        except Exception as exc:  # noqa: BLE001 - the registry boundary: a plugin backend's bug stops the run, named
            self._halt_on(request, self._backend_failure(exc))
            return None
        return _Answer(request, done.attempts, done.text, done.finish_reason, done.usage.prompt_tokens,
                       done.usage.completion_tokens, done.cost)

    def _halt_on(self, request: RequestRow, error: LLMError) -> None:
        self._store.note_attempt(request.key, error.attempts, error.message)
        if self._fatal is None:
            self._fatal = ev.TeacherError(self.run_id, error.kind, error.message)
            self._emit(self._fatal)
        self._halt.set()

    def _backend_failure(self, exc: Exception) -> LLMError:
        """A plugin backend's exception as an error that names the plugin (recorded for Help > Plugins)."""
        from studio.core.plugins.boundary import describe, record_failure
        from studio.core.registry import GENERATION_BACKENDS

        entry = GENERATION_BACKENDS.get(self._config.backend)
        if entry.built_in:
            raise exc  # ours: a bug must not pass for a teacher's error
        message = describe(entry, exc, "sending a request")
        record_failure(entry, message)
        return LLMError(OTHER, message)

    def _count_spend(self, answer: _Answer) -> None:
        """Tokens and cost count the moment an answer lands: the budget rule must not wait for the judge."""
        c = self._counters
        c.prompt_tokens += answer.prompt_tokens
        c.completion_tokens += answer.completion_tokens
        c.cost += answer.cost

    def _submit_commit(self, answer: _Answer, outcome: Outcome) -> _Commit:
        """Queue one judged answer's transaction on the writer thread."""
        for sample in outcome.kept:  # each kept sample carries its share of the request's tokens and cost
            sample.prompt_tokens = answer.prompt_tokens // len(outcome.kept)
            sample.completion_tokens = answer.completion_tokens // len(outcome.kept)
            sample.cost = answer.cost / len(outcome.kept)
        completion = Completion(answer.text, answer.finish_reason, answer.prompt_tokens, answer.completion_tokens,
                                answer.cost, answer.attempts, outcome.kept, outcome.rejected, outcome.children)
        key = answer.request.key
        future = self._writer.submit(lambda store: store.complete_request(self.run_id, key, completion))
        return _Commit(key, outcome, future)

    def _count_commit(self, commit: _Commit, ids: list[int], children: list[RequestRow]) -> None:
        c = self._counters
        kept, rejected = commit.outcome.kept, commit.outcome.rejected
        self._backlog[:0] = children  # finish started work before starting new work
        self._expect(commit.key, 0.0)  # its children are in the backlog, which is sent before any new request

        self._session_requests += 1
        self._promised -= len(kept) - len(ids)  # exact copies of stored samples were skipped
        c.requests_done += 1
        c.kept += len(ids)
        c.kept_this_session += len(ids)
        c.rejected += len(rejected)
        for r in rejected:
            c.rejected_by_reason[r.reason] = c.rejected_by_reason.get(r.reason, 0) + 1
        for sample in kept:
            if sample.id is not None:
                self._emit(ev.SampleKept(self.run_id, sample.id, sample.instruction, sample.input, sample.output,
                                         tuple(sample.seed_ids)))
        for r in rejected:
            self._emit(ev.CandidateRejected(self.run_id, r.reason, r.instruction, r.detail, r.nearest_instruction, r.score))

    # -- events ---------------------------------------------------------------------------------
    def _emit_progress(self) -> None:
        self._counters.elapsed_s = time.monotonic() - self._started
        self._emit(ev.Progress(self.run_id, self._counters.copy()))

    def _emit(self, event: ev.Event) -> None:
        if self._emit_to is not None:
            self._emit_to(event)


@dataclass(frozen=True)
class _Commit:
    """A judged answer whose transaction the writer runs; the future gives (sample ids, child requests)."""

    key: str
    outcome: Outcome
    future: Future


@dataclass(frozen=True)
class _Answer:
    """A teacher's answer to one request, read once, waiting for the judge."""

    request: RequestRow
    attempts: int
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float


def _without_eval_prompts(backlog: list[RequestRow], wall: EvalWall, seeds: Sequence[SeedExample],
                          instructions: Sequence[str]) -> list[RequestRow]:
    """The stored requests a resumed run may still send: none whose prompt shows an evaluation prompt.

    A request stored before a prompt set was imported (or a seed edited into one) holds its prompt
    text as built then: the seeds it shows (``seed_ids``, or found in the text: self-instruct's
    classify and instance prompts show seeds too), the run's own kept instructions and accepted
    samples (an eval prompt's instruction found in the text, words in order) and the tasks it
    asks about (``payload``). Such a
    request stays pending in the store but is not sent; the run makes fresh ones instead.
    """
    from studio.core.evaluation.guard import wall_words

    hit = [s for s in seeds if wall.shown(s.instruction, s.input)]
    walled_seeds = {s.seed_id for s in hit if s.seed_id is not None}
    texts = [*(s.instruction for s in hit), *(t for t in instructions if wall.exact(t)),
             *(p.instruction for p in wall.prompts)]  # the prompts themselves: accepted examples show them too
    walled_texts = list(dict.fromkeys(words for text in texts if (words := wall_words(text))))

    def shows_one(request: RequestRow) -> bool:
        if walled_seeds.intersection(request.seed_ids):
            return True
        tasks = [*request.payload.get("instructions", []), request.payload.get("instruction") or ""]
        if any(task and wall.check(task) is not None for task in tasks):
            return True
        text = f" {wall_words(request.prompt)} "
        return any(f" {words} " in text for words in walled_texts)

    return [request for request in backlog if not shows_one(request)]


def _instructions_in_progress(requests: list[RequestRow]) -> Iterator[str]:
    """Instructions a resumed self-instruct chain kept but has not turned into samples yet.

    Without them the near-duplicate filter would let the next batches repeat them.
    """
    for request in requests:
        yield from request.payload.get("instructions", [])  # waiting to be classified
        if request.payload.get("instruction"):  # waiting for its instances
            yield request.payload["instruction"]
