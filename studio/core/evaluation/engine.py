"""The evaluation engine: every system answers every prompt, then the judge compares each pair in both orders.

One asyncio loop (on whatever thread calls :meth:`EvalEngine.run_blocking`: the GUI's job
runner or the CLI) keeps ``settings.concurrency`` requests in flight over all systems
together, through the shared :class:`~studio.core.llm.LLMClient` (retries, backoff,
Retry-After, plain errors). Each answer and each verdict is committed the moment it lands,
into the caches of :mod:`studio.core.evaluation.store`: an answer is found again by (system,
prompt, answer settings), a verdict by (judge, first answer, second answer), so a rerun, a
stopped run started again or a second evaluation with the same systems pays for nothing
twice. The engine reaches the project through a :meth:`Project.worker` handle of its own,
so its commits are published on the project's change feed like any other write.

Launch rules, as in Generate's engine:

* at most ``concurrency`` requests in flight;
* no request starts whose worst case (its prompt plus a full ``max_tokens`` answer), added to
  what was spent and the worst case of those in flight, could take spend over the budget:
  the cap is hard; the run stops (status ``stopped``) with a message saying what is left;
* no retry fixes a bad key, an empty account or an unknown model, and before any answer a
  refused connection is a wrong URL or a server that is down: such an error fails the run at
  once with the system's name and the error in plain words. Any other error after the
  client's retries leaves that prompt out (counted in ``errors``); a system all of whose
  requests fail fails the run.

A prompt is sent as its chat ``messages`` when it has them; an Alpaca prompt as one user turn
(:func:`studio.core.chat.session.user_turn`, which hands the studio server the input as its own
field); either after ``settings.answers.system_prompt`` as a system message when there is one
(a chat prompt with a system message of its own keeps just that).
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from studio.core.errors import StudioError
from studio.core.evaluation.judge import JUDGE_ROLE, PAIRWISE_JUDGE, check_template, judge_instruction, load_judge
from studio.core.evaluation.model import (
    ANSWERING,
    BASE,
    DONE,
    FAILED,
    FIRST,
    JUDGING,
    RUN,
    SECOND,
    STOPPED,
    TIE,
    EvalPrompt,
    Evaluation,
    JudgeSpec,
    Outcome,
    StoredAnswer,
    StoredJudgment,
    SystemSpec,
    judge_outcome,
)
from studio.core.evaluation.store import EvaluationRepository
from studio.core.llm.client import Completion, LLMClient, RetryNotice
from studio.core.llm.errors import BAD_REQUEST, NETWORK, LLMError
from studio.core.llm.pricing import PriceTable, request_cost
from studio.core.wording import count_noun

if TYPE_CHECKING:
    from studio.core.project import Project

ClientFactory = Callable[[SystemSpec], "tuple[LLMClient, str]"]  # (client, the model id to send)
ProgressSink = Callable[["EvalProgress"], None]
CHARS_PER_TOKEN = 4  # the estimate's and the budget's rough conversion
TYPICAL_ANSWER_TOKENS = 300  # what the estimate assumes an answer costs (the budget assumes max_tokens)
TYPICAL_VERDICT_TOKENS = 150


@dataclass(frozen=True)
class EvalProgress:
    """Where a run is. ``done`` counts the phase's work finished, cached work included (``cached`` of it);
    ``errors`` and ``cost`` (USD) count the whole run; ``message`` says what just happened (a retry...)."""

    phase: str  # answering | judging, then the final status (done | stopped | failed)
    done: int
    total: int
    cached: int
    errors: int
    cost: float
    message: str = ""


@dataclass(frozen=True)
class EvalRunResult:
    """What one run did: new ``answers`` and ``judgments`` fetched, those found in the cache, failures, spend."""

    evaluation_id: int
    status: str  # done | stopped | failed
    answers: int
    judgments: int
    cached_answers: int
    cached_judgments: int
    errors: int
    cost: float
    message: str = ""
    answer_s: float = 0.0  # wall time of each phase (the benchmark reads them)
    judge_s: float = 0.0


@dataclass
class _Task:
    """One request to make: a system's answer, or one order of one pair for the judge (with both answers)."""

    prompt: EvalPrompt
    messages: list[dict]
    worst_case: float
    system: int = 0  # the answering system, or the system shown first
    second: int = 0  # the system shown second (judgments)
    first_answer: StoredAnswer | None = None
    second_answer: StoredAnswer | None = None


class EvalEngine:
    """Runs (or continues) one stored evaluation: answers, then verdicts; safe to :meth:`stop` from any thread.

    ``clients`` makes each system's client (called only for systems with answers still to
    fetch, on the engine's thread); ``judge_client`` reaches the judge (default: a client on the
    judge spec's endpoint, its key from the keyring or environment). The engine sets each
    client's ``max_attempts`` from the evaluation's settings and closes the clients at the end.
    ``on_progress`` is called on the engine's thread (a GUI marshals it to its own).
    """

    def __init__(self, project_root_or_project: Project | Path | str, evaluation_id: int, *,
                 clients: ClientFactory, judge_client: LLMClient | None = None,
                 on_progress: ProgressSink | None = None):
        self._project = project_root_or_project
        self.evaluation_id = int(evaluation_id)
        self._clients = clients
        self._judge_client = judge_client
        self._on_progress = on_progress
        self._stop_requested = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt: asyncio.Event | None = None

    # -- control (any thread) ------------------------------------------------------------------
    def stop(self) -> None:
        """End the run soon: nothing more is sent, the requests in flight finish and are stored; everything stays."""
        self._stop_requested.set()
        loop, halt = self._loop, self._halt
        if loop is not None and halt is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(halt.set)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def run_blocking(self) -> EvalRunResult:
        """Run on the calling thread with a fresh event loop (CLI, GUI worker thread)."""
        return asyncio.run(self.run())

    # -- the run ----------------------------------------------------------------------------------
    async def run(self) -> EvalRunResult:
        self._loop = asyncio.get_running_loop()
        self._halt = asyncio.Event()
        if self._stop_requested.is_set():
            self._halt.set()
        with _WorkerHandle(self._project) as handle:
            self._handle = handle
            self._store: EvaluationRepository = handle.evaluations
            return await self._run()

    async def _run(self) -> EvalRunResult:
        evaluation = self._store.get(self.evaluation_id)
        self._evaluation = evaluation
        self._settings = evaluation.settings
        self._spent = 0.0  # this run's spend; the budget also counts what earlier runs of it spent
        self._budget_base = evaluation.cost
        self._errors = 0
        self._fatal = ""
        self._counts = {"answers": 0, "judgments": 0, "cached_answers": 0, "cached_judgments": 0}
        self._timings = {"answer_s": 0.0, "judge_s": 0.0}
        self._opened: list[LLMClient] = []
        self._changed = asyncio.Event()
        self._phase, self._total, self._cached = ANSWERING, 0, 0
        self._budget_hit = False
        self._halt_reason = ""
        self._last_error = ""
        self._judge_failed = ""
        try:
            try:
                status, message = await self._phases(evaluation)
            finally:
                for client in self._opened:
                    await client.aclose()
        except (KeyboardInterrupt, asyncio.CancelledError):
            # A second Ctrl+C quits at once: what arrived is stored, so the run is stopped, not failed.
            self._store.set_status(self.evaluation_id, STOPPED, "Interrupted; the answers and verdicts so far are kept.")
            raise
        except BaseException as exc:
            # A bug must not leave the evaluation "answering" forever; it still propagates.
            self._store.set_status(self.evaluation_id, FAILED, f"Internal error: {type(exc).__name__}: {exc}")
            raise
        self._store.set_status(self.evaluation_id, status, message, finished=status == DONE)
        self._emit(status, message=message)
        c = self._counts
        return EvalRunResult(self.evaluation_id, status, c["answers"], c["judgments"], c["cached_answers"],
                             c["cached_judgments"], self._errors, self._spent, message, **self._timings)

    async def _phases(self, evaluation: Evaluation) -> tuple[str, str]:
        prompts = evaluation_prompts(self._handle, evaluation)
        if not prompts:
            return FAILED, "The evaluation's prompts are gone (was its prompt set deleted?)."
        if evaluation.judge is not None:
            try:
                load_judge(evaluation.judge.kind)  # an unknown or broken plugin judge fails before any answer
                if evaluation.judge.kind == PAIRWISE_JUDGE.key:  # a plugin judge reads its own template
                    check_template(evaluation.judge.template)
            except StudioError as exc:
                return FAILED, str(exc)
        self._store.set_status(self.evaluation_id, ANSWERING)
        started = time.monotonic()
        answers, failed = await self._answer_phase(evaluation, prompts)
        self._timings["answer_s"] = time.monotonic() - started
        if self._fatal:
            return FAILED, self._fatal
        if failed:
            return FAILED, failed
        if self._halt_reason:
            return STOPPED, self._halt_reason
        if evaluation.judge is not None:
            self._store.set_status(self.evaluation_id, JUDGING)
            started = time.monotonic()
            await self._judge_phase(evaluation, evaluation.judge, prompts, answers)
            self._timings["judge_s"] = time.monotonic() - started
            if self._fatal:
                return FAILED, self._fatal
            if self._halt_reason:
                return STOPPED, self._halt_reason
            if self._judge_failed:
                return FAILED, self._judge_failed
        if self._errors:
            return DONE, (f"{self._errors} request(s) failed after retries (last: {self._last_error}); those prompts "
                          "are left out. Run the evaluation again to retry them: nothing else is asked twice.")
        return DONE, ""

    # -- answers ------------------------------------------------------------------------------------
    async def _answer_phase(self, evaluation: Evaluation,
                            prompts: list[EvalPrompt]) -> tuple[dict[tuple[int, int], StoredAnswer], str]:
        """Every (prompt, system) answer, cached or fetched; and the message if a system failed whole."""
        settings = evaluation.settings.answers
        settings_hash = settings.hash()
        answers: dict[tuple[int, int], StoredAnswer] = {}
        for index, system in enumerate(evaluation.systems):
            cached = self._store.cached_answers(system.key, (p.hash for p in prompts), settings_hash)
            for prompt in prompts:
                if prompt.hash in cached:
                    answers[(prompt.id, index)] = cached[prompt.hash]
        tasks: list[_Task] = []
        running = running_backend(self._handle)
        own_server = running == "studio"
        for prompt in prompts:  # prompt by prompt, so a stopped run has whole pairs to judge
            for index, system in enumerate(evaluation.systems):
                if (prompt.id, index) not in answers:
                    messages = prompt_messages(prompt, settings.system_prompt, system, studio_backend=own_server)
                    tasks.append(_Task(prompt, messages, 0.0, index))
        self._counts["cached_answers"] = len(answers)
        clients: dict[int, tuple[LLMClient, str]] = {}
        for index in sorted({t.system for t in tasks}):  # a system with every answer cached needs no client
            mismatch = _backend_mismatch(evaluation.systems[index], running)
            if mismatch:
                self._fatal = f"{_who(evaluation, index)}: {mismatch}"
                return answers, ""
            try:
                client, model = self._clients(evaluation.systems[index])
            except StudioError as exc:
                self._fatal = f"{_who(evaluation, index)}: {exc}"
                return answers, ""
            client.retry = dataclasses.replace(client.retry, max_attempts=evaluation.settings.max_attempts)
            clients[index] = (client, model)
            self._opened.append(client)
        prices = evaluation.settings.prices
        for task in tasks:
            model = clients[task.system][1]
            task.worst_case = request_cost(prices, model, _tokens(task.messages), settings.max_tokens)
        sent = {index: 0 for index in clients}
        failures: dict[int, LLMError] = {}
        failed_by_system = {index: 0 for index in clients}

        async def send(task: _Task) -> None:
            client, model = clients[task.system]
            system = evaluation.systems[task.system]
            try:
                done = await client.complete(task.messages, model=model, temperature=settings.temperature,
                                             top_p=settings.top_p, max_tokens=settings.max_tokens,
                                             on_retry=self._retry_note(_who(evaluation, task.system)))
            except LLMError as error:
                sent[task.system] += 1
                if self._is_fatal(error, client):
                    self._fail(f"{_who(evaluation, task.system)}: {error.message}")
                    return
                failed_by_system[task.system] += 1
                failures[task.system] = error
                self._note_error(f"{_who(evaluation, task.system)}: {error.message}")
                return
            sent[task.system] += 1
            cost = _cost(prices, model, done)
            # No await from here to the commit: a Stop cannot lose a paid answer.
            answer = self._store.store_answer(system.key, task.prompt.hash, settings_hash, done.text,
                                              finish_reason=done.finish_reason, usage=done.usage, cost=cost,
                                              latency_s=done.latency_s, attempts=done.attempts)
            self._paid(cost)
            answers[(task.prompt.id, task.system)] = answer
            self._counts["answers"] += 1

        self._begin(ANSWERING, len(prompts) * len(evaluation.systems), len(answers))
        await self._pump(tasks, send)
        for index, error in failures.items():
            if sent[index] and failed_by_system[index] == sent[index] and not any(
                    (p.id, index) in answers for p in prompts):
                return answers, f"{_who(evaluation, index)} answered none of its requests: {error.message}"
        return answers, ""

    # -- verdicts -------------------------------------------------------------------------------------
    async def _judge_phase(self, evaluation: Evaluation, spec: JudgeSpec, prompts: list[EvalPrompt],
                           answers: dict[tuple[int, int], StoredAnswer]) -> None:
        judge_key = spec.key()
        judge = load_judge(spec.kind)  # checked in _phases; a plugin's comes wrapped in the registry boundary
        cached = self._store.judgments_for(judge_key, (a.id for a in answers.values()), readable=True)
        tasks: list[_Task] = []
        total = 0
        for prompt in prompts:
            for a, b in evaluation.pairs():
                answer_a, answer_b = answers.get((prompt.id, a)), answers.get((prompt.id, b))
                if answer_a is None or answer_b is None:
                    continue  # a failed answer: the pair is left out for this prompt
                for first, second, x, y in ((a, b, answer_a, answer_b), (b, a, answer_b, answer_a)):
                    total += 1
                    if (x.id, y.id) in cached:
                        self._counts["cached_judgments"] += 1
                        continue
                    try:
                        messages = judge.messages(spec, prompt, x.text, y.text)
                    except StudioError as exc:  # a plugin judge's bug: one message naming the plugin
                        self._fatal = str(exc)
                        return
                    tasks.append(_Task(prompt, messages, 0.0, first, second, x, y))
        client = None
        if tasks:
            client = self._judge_client
            if client is None:
                try:
                    client = LLMClient(spec.endpoint_config(), prices=evaluation.settings.prices, role=JUDGE_ROLE)
                except StudioError as exc:
                    self._fatal = f"The judge: {exc}"
                    return
            client.retry = dataclasses.replace(client.retry, max_attempts=evaluation.settings.max_attempts)
            self._opened.append(client)
        model = client.endpoint.model if client is not None else spec.endpoint.get("model", "")
        prices = evaluation.settings.prices
        for task in tasks:
            task.worst_case = request_cost(prices, model, _tokens(task.messages), spec.max_tokens)
        failures: list[LLMError] = []

        async def send(task: _Task) -> None:
            assert client is not None and task.first_answer is not None and task.second_answer is not None
            try:
                done = await client.complete(task.messages, temperature=spec.temperature, max_tokens=spec.max_tokens,
                                             on_retry=self._retry_note("The judge"))
            except LLMError as error:
                if self._is_fatal(error, client):
                    self._fail(f"The judge ({spec.label or model}): {error.message}")
                else:
                    failures.append(error)
                    self._note_error(f"The judge: {error.message}")
                return
            cost = _cost(prices, model, done)
            try:
                verdict = judge.verdict(spec, done.text)
            except StudioError as exc:
                self._fail(str(exc))
                return
            self._store.store_judgment(judge_key, task.first_answer.id, task.second_answer.id, verdict, done.text,
                                       usage=done.usage, cost=cost, latency_s=done.latency_s)
            self._paid(cost)
            self._counts["judgments"] += 1

        self._begin(JUDGING, total, self._counts["cached_judgments"])
        await self._pump(tasks, send)
        if failures and len(failures) == len(tasks):
            self._judge_failed = f"The judge gave none of its verdicts: {failures[-1].message}"

    # -- the launch loop ------------------------------------------------------------------------------
    async def _pump(self, tasks: Sequence[_Task], send: Callable[[_Task], Awaitable[None]]) -> None:
        """Send ``tasks`` with at most ``concurrency`` in flight, within the budget, until done, Stop or a fatal error."""
        settings = self._settings
        queue = deque(tasks)
        reserved: dict[int, float] = {}
        assert self._halt is not None
        halt = self._halt

        async def worker() -> None:
            while queue and not halt.is_set() and not self._budget_hit:
                task = queue[0]
                budget = settings.budget_usd
                if budget is not None and \
                        self._budget_base + self._spent + sum(reserved.values()) + task.worst_case > budget:
                    if reserved:  # what is in flight may cost less than its worst case: wait and see
                        await self._wait_change()
                        continue
                    # Nothing in flight and the next request could still break the cap: end the phase.
                    # (Requests in flight were not cancelled: they are within the budget and paid for.)
                    self._budget_hit = True
                    self._halt_reason = (
                        f"Stopped at the budget of {usd(budget)} (spent ${self._budget_base + self._spent:.4f} in all); "
                        f"{count_noun(len(queue), 'verdict' if self._phase == JUDGING else 'answer')} still to "
                        "fetch. Raise "
                        "the budget and run again: nothing done so far is paid twice.")
                    self._pulse()
                    return
                queue.popleft()
                reserved[id(task)] = task.worst_case
                try:
                    await send(task)
                finally:
                    reserved.pop(id(task), None)
                    self._step()

        if not queue:
            return
        workers = asyncio.gather(*(worker() for _ in range(max(1, min(settings.concurrency, len(queue))))))
        halted = asyncio.ensure_future(halt.wait())
        await asyncio.wait([workers, halted], return_when=asyncio.FIRST_COMPLETED)
        if not workers.done() and self._fatal:
            workers.cancel()  # a fatal error: what is in flight cannot succeed either (a bad key, a server down)
        # On a plain Stop the workers take no new task (halt is set) but the requests in flight are
        # paid for already: let them land and be stored, so Continue does not pay for them again.
        halted.cancel()
        (ended,) = await asyncio.gather(workers, return_exceptions=True)
        if isinstance(ended, BaseException) and not isinstance(ended, asyncio.CancelledError):
            raise ended  # a bug in a worker must not pass for a stopped run
        if halt.is_set() and not self._fatal and not self._halt_reason and self._stop_requested.is_set():
            self._halt_reason = "Stopped; every answer and verdict received so far is kept. Continue it to go on (nothing is asked twice)."

    async def _wait_change(self) -> None:
        await self._changed.wait()

    def _step(self) -> None:
        """A request ended: tell the caller, wake workers waiting on the budget."""
        self._emit(self._phase)
        self._pulse()

    def _pulse(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _begin(self, phase: str, total: int, cached: int) -> None:
        self._phase, self._total, self._cached = phase, total, cached
        self._emit(phase)

    def _done(self) -> int:
        """The phase's finished work: cached, plus fetched in this run."""
        fetched = self._counts["judgments"] if self._phase == JUDGING else self._counts["answers"]
        return self._cached + fetched

    def _paid(self, cost: float) -> None:
        self._spent += cost
        self._store.add_cost(self.evaluation_id, cost)

    def _is_fatal(self, error: LLMError, client: LLMClient) -> bool:
        return error.fatal or (error.kind in (NETWORK, BAD_REQUEST) and client.answers == 0)

    def _fail(self, message: str) -> None:
        self._fatal = self._fatal or message
        assert self._halt is not None
        self._halt.set()

    def _note_error(self, message: str) -> None:
        self._errors += 1
        self._last_error = message
        self._emit(self._phase, message=message)

    def _retry_note(self, who: str) -> Callable[[RetryNotice], None]:
        def note(notice: RetryNotice) -> None:
            self._emit(self._phase, message=f"{who}: retrying in {notice.delay_s:.0f} s ({notice.error.message})")
        return note

    def _emit(self, phase: str, *, message: str = "") -> None:
        if self._on_progress is not None:
            self._on_progress(EvalProgress(phase, self._done(), self._total, self._cached, self._errors, self._spent,
                                           message))


# -- what a system is sent -----------------------------------------------------------------------------
def prompt_messages(prompt: EvalPrompt, system_prompt: str, system: SystemSpec, *,
                    studio_backend: bool = True) -> list[dict]:
    """A chat prompt's own messages; an Alpaca prompt as one user turn; either after the settings'
    system prompt when there is one (a chat prompt with a system message of its own keeps that one).

    The system prompt is part of the answer cache key (``AnswerSettings.hash``), so it must be
    what was sent. The studio's own server takes the Alpaca input as its ``input`` extension
    (rendered into the run's Input section, as in training); a plugin's server such as vLLM
    (``studio_backend=False``) and endpoints get it in the text.
    """
    system_message = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    if prompt.messages:
        messages = [dict(m) for m in prompt.messages]
        if any(m.get("role") == "system" for m in messages):
            return messages
        return system_message + messages
    from studio.core.chat.session import user_turn

    messages = system_message
    studio_server = studio_backend and system.kind in (RUN, BASE)
    messages.append(user_turn(prompt.instruction, prompt.input, studio_server=studio_server))
    return messages


def _backend_mismatch(system: SystemSpec, running: str) -> str:
    """Why a run/base system cannot be answered by the running serving backend (its key), or "".

    Its cache key says which backend it was resolved for (``:KEY``, see
    :func:`studio.core.evaluation.systems.resolve_system`); another is sent the input
    differently, so its answers must not be cached under that key.
    """
    from studio.core.evaluation.systems import served_backend
    from studio.core.serving.backends import STUDIO, backend_title

    wanted = served_backend(system)
    if system.kind not in (RUN, BASE) or wanted == running:
        return ""

    def name(key: str) -> str:
        return "the studio's own" if key == STUDIO else backend_title(key)

    return (f"this evaluation was made for {name(wanted)} server and the running server is {name(running)}: "
            f"answers of the two are not the same (the input is sent differently). Start {name(wanted)} server, "
            "or create a new evaluation for this one.")


def running_backend(project: Project) -> str:
    """The serving backend of the project's running server: ``studio`` (also when none runs) or a plugin's key."""
    from studio.core.serving.backends import STUDIO
    from studio.core.serving.server_info import info_path, read_info

    server = read_info(info_path(project.root))
    return STUDIO if server is None else server.backend


def _tokens(messages: Iterable[dict]) -> int:
    return math.ceil(sum(len(str(m.get("content", ""))) + len(str(m.get("input", ""))) for m in messages)
                     / CHARS_PER_TOKEN)


def _cost(prices: PriceTable, model: str, done: Completion) -> float:
    """USD from the evaluation's price table; a model it does not list costs what the client's own table says."""
    if model in prices:
        return request_cost(prices, model, done.usage.prompt_tokens, done.usage.completion_tokens)
    return done.cost


def _who(evaluation: Evaluation, index: int) -> str:
    system = evaluation.systems[index]
    return f"System {chr(ord('A') + index)} ({system.label or system.key})"


class _WorkerHandle:
    """``with``: a project handle for this thread (a Project's worker(), or a lock-free one on a root path)."""

    def __init__(self, project: Project | Path | str):
        self._given = project
        self._handle: Project | None = None

    def __enter__(self) -> Project:
        from studio.core import db
        from studio.core.project import DB_NAME, Project

        if isinstance(self._given, Project):
            self._handle = self._given.worker()
        else:  # the caller holds the project (lock) elsewhere: a plain connection of our own
            root = Path(self._given).expanduser().resolve()
            self._handle = Project(root, db.connect(root / DB_NAME), None)
        return self._handle

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()


# -- reading an evaluation back -----------------------------------------------------------------------
def evaluation_prompts(project: Project, evaluation: Evaluation) -> list[EvalPrompt]:
    """The evaluation's prompts in its order (released ones included; prompts deleted since are left out)."""
    found = project.prompt_sets.prompts_by_id(evaluation.prompt_ids)
    return [found[i] for i in evaluation.prompt_ids if i in found]


def _answers(project: Project, evaluation: Evaluation,
             prompts: Sequence[EvalPrompt]) -> dict[tuple[int, int], StoredAnswer]:
    settings_hash = evaluation.settings.answers.hash()
    answers: dict[tuple[int, int], StoredAnswer] = {}
    for index, system in enumerate(evaluation.systems):
        cached = project.evaluations.cached_answers(system.key, (p.hash for p in prompts), settings_hash)
        for prompt in prompts:
            if prompt.hash in cached:
                answers[(prompt.id, index)] = cached[prompt.hash]  # type: ignore[index]
    return answers


def answer_for(project: Project, evaluation: Evaluation, prompt: EvalPrompt | int,
               system_index: int) -> StoredAnswer | None:
    """The cached answer of system ``system_index`` to ``prompt`` (an EvalPrompt or its id), if any."""
    if not isinstance(prompt, EvalPrompt):
        found = project.prompt_sets.prompts_by_id([int(prompt)]).get(int(prompt))
        if found is None:
            return None
        prompt = found
    system = evaluation.systems[system_index]
    return project.evaluations.cached_answer(system.key, prompt.hash, evaluation.settings.answers.hash())


_SHOWN_FIRST = {FIRST: "a", SECOND: "b", TIE: "tie"}  # a verdict with A shown first, as a system
_SHOWN_SECOND = {FIRST: "b", SECOND: "a", TIE: "tie"}  # with B shown first


def outcomes(project: Project, evaluation: Evaluation) -> list[Outcome]:
    """The judge's outcome for every prompt and pair judged in both orders, in prompt order, pair by pair.

    A pair whose answers are missing, or that was judged in one order only (a stopped run), is
    left out rather than counted as a tie; an unreadable verdict counts as no verdict (a tie,
    not inconsistent). No judge: no outcomes.
    """
    if evaluation.judge is None:
        return []
    return [judge_outcome(prompt.id, a, b, _SHOWN_FIRST.get(ab.verdict), _SHOWN_SECOND.get(ba.verdict),
                          len(answer_a.text), len(answer_b.text), prompt.category)
            for prompt, a, b, answer_a, answer_b, ab, ba in answered_pairs(project, evaluation)
            if ab is not None and ba is not None]


def answered_pairs(project: Project, evaluation: Evaluation) -> Iterator[
        tuple[EvalPrompt, int, int, StoredAnswer, StoredAnswer, StoredJudgment | None, StoredJudgment | None]]:
    """Every prompt and pair of systems with both answers, in prompt order, with the judge's verdict
    in each order (A shown first, then B shown first; None when not judged or there is no judge)."""
    prompts = evaluation_prompts(project, evaluation)
    answers = _answers(project, evaluation, prompts)
    judged: dict[tuple[int, int], StoredJudgment] = {}
    if evaluation.judge is not None:
        judged = project.evaluations.judgments_for(evaluation.judge.key(), (a.id for a in answers.values()))
    for prompt in prompts:
        for a, b in evaluation.pairs():
            answer_a, answer_b = answers.get((prompt.id, a)), answers.get((prompt.id, b))
            if answer_a is not None and answer_b is not None:
                yield (prompt, a, b, answer_a, answer_b, judged.get((answer_a.id, answer_b.id)),
                       judged.get((answer_b.id, answer_a.id)))


def prompt_rows(project: Project, evaluation: Evaluation, outcomes: Sequence[Outcome],
                human: Sequence[Outcome] | None = None) -> list[dict]:
    """One row per prompt and pair with both answers (export, the panel's table), in prompt order.

    Keys: prompt_id, ext_id, category, instruction, input, system_a, system_b (indexes), label_a,
    label_b, answer_a, answer_b, len_a, len_b, ab, ba (the judge's verdict in each order, as a
    system: a / b / tie, None when not judged or unreadable), winner (a / b / tie, None when
    not judged in both orders), inconsistent, human (a / b / tie / both_bad, None without a vote),
    tokens_a/b, finish_a/b (``length`` = cut off at max tokens, which a judge may hold against
    it), latency_s_a/b, cost_a/b (what each answer took), judge_raw_ab, judge_raw_ba (the
    judge's whole reply in each order, "" when not judged: an export must show why a verdict
    was read as it was, or why none could be read).
    """
    judge = {(o.prompt_id, o.system_a, o.system_b): o for o in outcomes}
    votes = {(o.prompt_id, o.system_a, o.system_b): o for o in human or ()}
    labels = [s.label or s.key for s in evaluation.systems]
    rows: list[dict] = []
    for prompt, a, b, answer_a, answer_b, ab, ba in answered_pairs(project, evaluation):
        outcome, vote = judge.get((prompt.id, a, b)), votes.get((prompt.id, a, b))
        rows.append({
            "prompt_id": prompt.id, "ext_id": prompt.ext_id, "category": prompt.category,
            "instruction": judge_instruction(prompt), "input": prompt.input,
            "system_a": a, "system_b": b, "label_a": labels[a], "label_b": labels[b],
            "answer_a": answer_a.text, "answer_b": answer_b.text,
            "len_a": len(answer_a.text), "len_b": len(answer_b.text),
            "ab": outcome.ab if outcome else None, "ba": outcome.ba if outcome else None,
            "winner": outcome.winner if outcome else None,
            "inconsistent": bool(outcome and outcome.inconsistent),
            "human": None if vote is None else ("both_bad" if vote.both_bad else vote.winner),
            **{f"{field}_{side}": getattr(answer, attr)
               for side, answer in (("a", answer_a), ("b", answer_b))
               for field, attr in (("tokens", "completion_tokens"), ("finish", "finish_reason"),
                                   ("latency_s", "latency_s"), ("cost", "cost"))},
            "judge_raw_ab": _raw(ab),
            "judge_raw_ba": _raw(ba),
        })
    return rows


def usd(value: float) -> str:
    """Dollars with cents, and with four decimals under a cent: a $0.001 budget is not "$0.00"."""
    return f"${value:,.2f}" if value == 0 or abs(value) >= 0.01 else f"${value:.4f}"


def _raw(judgment: StoredJudgment | None) -> str:
    return "" if judgment is None else judgment.raw


# -- the estimate shown before a run -------------------------------------------------------------------
@dataclass(frozen=True)
class EvalEstimate:
    """Requests still to make (cached work costs nothing), their tokens and USD: typical, and the worst case."""

    answer_requests: int
    judge_requests: int
    cached_answers: int
    cached_judgments: int
    prompt_tokens: int
    completion_tokens: int
    usd: float
    usd_max: float  # every answer and verdict at its full max_tokens: what the budget cap assumes

    @property
    def requests(self) -> int:
        return self.answer_requests + self.judge_requests

    def describe(self) -> str:
        cached = f"; {self.cached_answers} answers and {self.cached_judgments} verdicts cached" \
            if self.cached_answers or self.cached_judgments else ""
        return (f"{self.answer_requests} answers and {self.judge_requests} verdicts to fetch, about "
                f"{self.prompt_tokens + self.completion_tokens:,} tokens, ~{usd(self.usd)} "
                f"(at most {usd(self.usd_max)}){cached}")


def estimate(project: Project, evaluation: Evaluation, *, judge_prompt_tokens: int | None = None) -> EvalEstimate:
    """What running ``evaluation`` now should cost: ~4 characters a token, answers of ~300 tokens (at most
    ``max_tokens``), verdicts of ~150; endpoint systems are priced by their model in ``settings.prices``
    (the studio's own models cost nothing). Reads the database: call it off the GUI thread."""
    settings = evaluation.settings
    prices = settings.prices
    max_tokens = settings.answers.max_tokens
    typical = min(max_tokens, TYPICAL_ANSWER_TOKENS)
    prompts = evaluation_prompts(project, evaluation)
    answers = _answers(project, evaluation, prompts)
    prompt_tokens = completion_tokens = answer_requests = judge_requests = cached_judgments = 0
    usd = usd_max = 0.0
    for index, system in enumerate(evaluation.systems):
        model = system.model if system.kind not in (RUN, BASE) else ""
        for prompt in prompts:
            if (prompt.id, index) in answers:
                continue
            tokens = _tokens(prompt_messages(prompt, settings.answers.system_prompt, system))
            answer_requests += 1
            prompt_tokens += tokens
            completion_tokens += typical
            usd += request_cost(prices, model, tokens, typical)
            usd_max += request_cost(prices, model, tokens, max_tokens)
    spec = evaluation.judge
    if spec is not None:
        judged = project.evaluations.judgments_for(spec.key(), (a.id for a in answers.values()), readable=True)
        model = str(spec.endpoint.get("model", ""))
        verdict_typical = min(spec.max_tokens, TYPICAL_VERDICT_TOKENS)
        template_tokens = math.ceil(len(spec.template) / CHARS_PER_TOKEN)
        for prompt in prompts:
            asked = math.ceil((len(judge_instruction(prompt)) + len(prompt.input)) / CHARS_PER_TOKEN)
            for a, b in evaluation.pairs():
                answer_a, answer_b = answers.get((prompt.id, a)), answers.get((prompt.id, b))
                for first, second in ((answer_a, answer_b), (answer_b, answer_a)):
                    if first is not None and second is not None and (first.id, second.id) in judged:
                        cached_judgments += 1
                        continue
                    known = [math.ceil(len(x.text) / CHARS_PER_TOKEN) for x in (first, second) if x is not None]
                    typical_in = template_tokens + asked + sum(known) + typical * (2 - len(known))
                    worst_in = template_tokens + asked + sum(known) + max_tokens * (2 - len(known))
                    if judge_prompt_tokens is not None:
                        typical_in = worst_in = judge_prompt_tokens
                    judge_requests += 1
                    prompt_tokens += typical_in
                    completion_tokens += verdict_typical
                    usd += request_cost(prices, model, typical_in, verdict_typical)
                    usd_max += request_cost(prices, model, worst_in, spec.max_tokens)
    return EvalEstimate(answer_requests, judge_requests, len(answers), cached_judgments, prompt_tokens,
                        completion_tokens, usd, usd_max)
