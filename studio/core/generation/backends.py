"""Generation backends: how a run's teacher requests are sent (``GENERATION_BACKENDS``).

The engine builds requests, judges answers and commits samples the same way for every
backend; only sending differs. ``live`` sends each request at once through the shared
:class:`~studio.core.llm.LLMClient`. A batch backend (the ``openai-batch`` plugin) collects
the requests the engine has in flight into one provider job, waits for it (hours, across
restarts) and answers each request from the job's output; the engine's launch rules still
decide how many requests exist, so a batch holds exactly the run's next wave.

CONTRACT (issue 12):

* A backend is registered as an instance with ``key``, ``price_factor`` (multiplies every
  price: estimates, worst-case budget reservations, the cost the sender reports; OpenAI's
  Batch API is 0.5), ``max_in_flight`` (None: the run's ``concurrency``; a batch backend asks
  for its batch size) and ``open(context) -> Sender``. A sender may carry its own
  ``max_in_flight``, which wins: a batch size is a per-run option, known only once opened.
* ``Sender.send(request, ...)`` returns a :class:`~studio.core.llm.client.Completion` whose
  ``cost`` is already at the backend's prices, or raises :class:`~studio.core.llm.LLMError`
  (``fatal`` stops the run, otherwise the request is marked failed). It is called on the
  engine's loop thread, many at once; ``request.key`` is unique and stable across resumes.
* A sender that keeps work at the provider commits what it needs to find it again (in the
  ``backend_jobs`` tables, :mod:`studio.core.generation.backend_jobs`) before it returns
  control, so that a resumed run's ``send`` of a request already held by a provider job waits
  for that job instead of sending it again.
* ``context.report(BackendStatus)`` shows the backend's state: the engine emits it as an
  event (panel, CLI) and stores it on the run (``generation_runs.backend_status``), so the
  panel shows it for a run that is not running too.
* ``Sender.open_work()`` -> True while the provider still holds requests of this run (a batch
  in flight): a run stopped for the app's close with open work is ``detached``, and the
  Generate panel resumes such runs when the project opens again.
* A request sent at other prices than ``price_factor`` (a batch line retried as a live call)
  first asks ``context.reserve(key, price_factor)``: the budget cap stays hard only if its
  worst case is reserved at the price it will pay.
* ``Sender.holds(request_key) -> bool`` (optional): True when a provider job already holds the
  request (it ran or will run: paid). A resumed run sends such requests before anything else
  and whatever its target, budget or max_requests say, so no paid answer is left uncollected.
* ``async Sender.cancel_open_work()`` (optional): cancel what the provider still holds
  (``engine.stop(cancel_work=True)``); what it answered before is collected on resume.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from studio.core.generation.events import BackendStatus
from studio.core.llm.client import Completion, LLMClient, RetryCallback, RetryPolicy

if TYPE_CHECKING:
    from studio.core.generation.config import RunConfig
    from studio.core.generation.repository import RequestRow
    from studio.core.project import Project

REQUEST_KEY_HEADER = "X-Distill-Request-Key"


@dataclass
class BackendContext:
    """What a backend may use for one run (on the engine's loop thread)."""

    project: Project
    conn: sqlite3.Connection         # the engine loop's connection: the backend's own rows, same thread as send()
    run_id: int
    config: RunConfig
    api_key: str | None = field(repr=False)  # never in a repr (a log line, a traceback's locals)
    options: Mapping[str, Any]       # config.backend_options, defaults filled from the entry's "options" meta
    report: Callable[[BackendStatus], None]
    live_client: Callable[[], LLMClient] = field(repr=False, default=None)  # type: ignore[assignment]
    # ``live_client()``: the run's live LLMClient (retries, prices) for a backend that retries lines live.
    reserve: Callable[[str, float], bool] = field(repr=False, default=lambda key, price_factor: True)
    # ``reserve(request_key, price_factor)``: before a request in flight is sent at other prices than
    # the backend's (a batch line retried live), raise its worst-case budget reservation to those
    # prices. False: the run's budget has no room for it, so send it at the prices already reserved.


class Sender(Protocol):
    answers: int  # successful answers so far (the engine's "no answer yet" checks read it)
    # Optional: ``max_in_flight: int`` (wins over the backend's), ``holds(key)``, ``async cancel_open_work()``.

    async def send(self, request: RequestRow, *, prior_attempts: int, on_retry: RetryCallback,
                   timeout_s: float, params: Mapping[str, Any]) -> Completion: ...

    def open_work(self) -> bool: ...

    async def aclose(self) -> None: ...


class Backend(Protocol):
    key: str
    price_factor: float
    max_in_flight: int | None

    def open(self, context: BackendContext) -> Sender: ...


def teacher_client(config: RunConfig, api_key: str | None) -> LLMClient:
    """The run's live client: its retry settings and price table; the key resolved now if none is given."""
    retry = RetryPolicy(max_attempts=config.max_attempts, backoff_base_s=config.backoff_base_s,
                        backoff_max_s=config.backoff_max_s)
    return LLMClient(config.teacher, api_key=api_key, retry=retry, prices=config.prices)


class LiveSender:
    """Each request sent at once through the shared client (retries, backoff, Retry-After)."""

    def __init__(self, client: LLMClient):
        self.client = client

    @property
    def answers(self) -> int:
        return self.client.answers

    async def send(self, request: RequestRow, *, prior_attempts: int, on_retry: RetryCallback,
                   timeout_s: float, params: Mapping[str, Any]) -> Completion:
        return await self.client.complete(request.prompt, headers={REQUEST_KEY_HEADER: request.key},
                                          timeout_s=timeout_s, prior_attempts=prior_attempts, on_retry=on_retry,
                                          **params)

    def open_work(self) -> bool:
        return False

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass(frozen=True)
class LiveBackend:
    key: str = "live"
    price_factor: float = 1.0
    max_in_flight: int | None = None

    def open(self, context: BackendContext) -> LiveSender:
        return LiveSender(context.live_client())


LIVE_BACKEND = LiveBackend()


def backend_options(key: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``given`` over the defaults the entry declares in its ``options`` meta (plain data, no import)."""
    from studio.core.registry import GENERATION_BACKENDS

    options = {o["key"]: o.get("default") for o in GENERATION_BACKENDS.get(key).meta.get("options", ())}
    options.update(given or {})
    return options
