"""The engine's generation-backend hook: price factor, batch width, status reports, detach, the plugin boundary.

An in-process backend registered as a plugin's (source "test-plugin") stands in for a batch
backend: it holds every request until the test releases it, reports a status, and says it has
work open at its "provider" while it holds any.
"""
from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher, respond  # noqa: E402

from studio.core.generation import events as ev  # noqa: E402
from studio.core.generation.backend_jobs import BackendJobs  # noqa: E402
from studio.core.generation.backends import BackendContext  # noqa: E402
from studio.core.generation.config import RunConfig  # noqa: E402
from studio.core.generation.engine import GenerationEngine, create_run, run_estimate, sample_prompt_chars  # noqa: E402
from studio.core.llm import EndpointConfig  # noqa: E402
from studio.core.llm.client import Completion  # noqa: E402
from studio.core.llm.pricing import Usage, usage_cost  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.registry import GENERATION_BACKENDS  # noqa: E402
from studio.core.seeds import Instance, SeedTask  # noqa: E402

WORDS = FakeTeacher()  # only its deterministic answer generator (never started)


class HeldSender:
    def __init__(self, backend: HeldBackend, context: BackendContext):
        self.backend, self.context = backend, context
        self.answers = 0
        self.held = 0
        self.max_in_flight = backend.width
        self.cancelled = False

    async def send(self, request, *, prior_attempts: int, on_retry, timeout_s: float,
                   params: Mapping[str, Any]) -> Completion:
        if self.backend.explode:
            raise ZeroDivisionError("the plugin divided by zero")
        self.held += 1
        self.backend.peak = max(self.backend.peak, self.held)
        self.context.report(ev.BackendStatus(self.context.run_id, f"holding {self.held}", {"held": self.held}))
        try:
            while not self.backend.release.is_set():
                await asyncio.sleep(0.01)
        finally:
            self.held -= 1
        self.answers += 1
        usage = Usage(1000, 2000)
        cost = usage_cost(self.context.config.prices, self.context.config.teacher.model, usage) * self.backend.price_factor
        return Completion(respond(WORDS, request.key, request.prompt), "stop", usage, cost, 0.0, prior_attempts + 1)

    def open_work(self) -> bool:
        return self.held > 0 or self.backend.keep_open

    async def cancel_open_work(self) -> None:
        if self.backend.cancel_fails:
            raise ZeroDivisionError("the plugin could not cancel")
        self.cancelled = True
        self.backend.cancelled = True

    async def aclose(self) -> None:
        pass


class HeldBackend:
    key = "held"
    max_in_flight = None

    def __init__(self) -> None:
        self.price_factor = 0.5
        self.width = 7
        self.release = threading.Event()
        self.explode = False
        self.keep_open = False
        self.cancelled = False
        self.cancel_fails = False
        self.peak = 0

    def open(self, context: BackendContext) -> HeldSender:
        self.sender = HeldSender(self, context)
        return self.sender


HELD = HeldBackend()


@pytest.fixture
def held():
    global HELD
    HELD = HeldBackend()
    GENERATION_BACKENDS.register("held", f"{__name__}:HELD", title="Held (test)", source="test-plugin", replace=True,
                                 options=[{"key": "size", "type": "int", "default": 3}])
    yield HELD
    GENERATION_BACKENDS.unregister("held")


@pytest.fixture
def seeded(project: Project) -> Project:
    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(6)])
    return project


def _config(**overrides) -> RunConfig:
    config = RunConfig(teacher=EndpointConfig(base_url="http://127.0.0.1:9/v1", model="fake-teacher"),
                       prices={"fake-teacher": (1.0, 2.0)}, backend="held", target=30, concurrency=2)
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def _start(project: Project, config: RunConfig, events: list) -> tuple[GenerationEngine, threading.Thread, list]:
    run_id = create_run(project.generation, config)
    engine = GenerationEngine(project, run_id, on_event=events.append, api_key="sk-none")
    results: list = []
    thread = threading.Thread(target=lambda: results.append(engine.run_blocking()), daemon=True)
    thread.start()
    return engine, thread, results


def _wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_backend_run_uses_its_width_prices_and_reports_status(seeded: Project, held: HeldBackend) -> None:
    events: list = []
    config = _config(target=10**6, max_requests=7, budget_usd=None)
    engine, thread, results = _start(seeded, config, events)
    _wait_for(lambda: held.peak == 7)  # the sender's width, not the run's concurrency of 2
    held.release.set()
    thread.join(30)
    (result,) = results
    assert result.reason == "max_requests" and result.counters.requests_done == 7
    live_cost = 7 * (1000 * 1.0 + 2000 * 2.0) / 1_000_000
    assert result.counters.cost == pytest.approx(live_cost / 2)
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert "at batch prices" in started.estimate
    statuses = [e for e in events if isinstance(e, ev.BackendStatus)]
    assert statuses and statuses[0].text == "holding 1"
    stored = seeded.generation.backend_status(result.run_id)
    assert stored is not None and stored["text"].startswith("holding") and "held" in stored["state"]
    assert seeded.generation.run(result.run_id)["status"] == "done"


def test_estimate_and_budget_reservations_are_at_the_backends_prices(seeded: Project, held: HeldBackend) -> None:
    seeds = seeded.generation.seed_examples()
    live = run_estimate(_config(backend="live"), seeds)
    batch = run_estimate(_config(), seeds)
    assert batch.usd == pytest.approx(live.usd / 2) and batch.requests == live.requests
    # A budget that holds 2 worst-case requests at live prices holds 4 at half the price.
    config = _config(target=10**6)
    worst_live = config.worst_case_cost(sample_prompt_chars(config, seeds) // 3)
    config.budget_usd = worst_live / 2 * 4.5
    engine, thread, results = _start(seeded, config, [])
    _wait_for(lambda: held.peak >= 4)
    time.sleep(0.2)  # nothing more starts: a fifth reservation would pass the budget
    assert held.peak == 4
    engine.stop()
    thread.join(30)


def test_stop_with_detach_leaves_a_detached_run_that_is_picked_up(seeded: Project, held: HeldBackend) -> None:
    events: list = []
    engine, thread, results = _start(seeded, _config(), events)
    _wait_for(lambda: held.peak >= 2)
    run_id = engine.run_id
    # The backend's jobs table says what is open at the provider.
    jobs = BackendJobs(seeded.conn)
    job = jobs.create_job(run_id, "held", f"run{run_id}-a", ["k1", "k2"])
    held.keep_open = True  # its "batch" stays at the provider after the workers are cancelled
    engine.stop(detach=True)
    thread.join(30)
    assert results[0].reason == "stopped"
    store = seeded.generation
    assert store.run(run_id)["status"] == "detached"
    assert store.runs_to_pick_up() == [run_id]
    jobs.set_status(job.id, "collected")
    assert store.runs_to_pick_up() == []


def test_stop_without_detach_is_stopped_and_cancel_work_reaches_the_sender(seeded: Project, held: HeldBackend) -> None:
    engine, thread, results = _start(seeded, _config(), [])
    _wait_for(lambda: held.peak >= 2)
    engine.stop(cancel_work=True)
    thread.join(30)
    assert seeded.generation.run(engine.run_id)["status"] == "stopped" and held.cancelled


def test_a_plugin_backend_that_raises_fails_the_run_naming_the_plugin(seeded: Project, held: HeldBackend) -> None:
    from studio.core.plugins.boundary import failures

    held.explode = True
    events: list = []
    engine, thread, results = _start(seeded, _config(), events)
    thread.join(30)
    (result,) = results
    assert result.reason == "error" and "test-plugin" in result.message and "ZeroDivisionError" in result.message
    assert any("divided by zero" in text for text in failures("test-plugin"))


def test_live_runs_send_through_the_live_backend_unchanged(seeded: Project) -> None:
    with FakeTeacher(max_lifetime_s=60) as teacher:
        config = RunConfig(teacher=EndpointConfig(base_url=teacher.base_url, model="fake-teacher", timeout_s=5),
                           target=40, concurrency=4, prices={"fake-teacher": (1.0, 2.0)})
        events: list = []
        run_id = create_run(seeded.generation, config)
        result = GenerationEngine(seeded, run_id, on_event=events.append, api_key=teacher.api_key).run_blocking()
    assert result.reason == "target" and result.counters.kept == 40
    assert not any(isinstance(e, ev.BackendStatus) for e in events)
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert "batch" not in started.estimate
    assert seeded.generation.backend_status(run_id) is None and seeded.generation.runs_to_pick_up() == []


def test_the_estimate_at_batch_prices_reads_as_the_panel_and_cli_show_it() -> None:
    from studio.core.generation.config import CostEstimate
    from studio.core.generation.engine import describe_estimate

    estimate = CostEstimate(40, 1000, 2000, 0.25, 0.5)
    assert describe_estimate(estimate, 1.0) == estimate.describe()
    assert describe_estimate(estimate, 0.5) == ("about 40 requests, 3,000 tokens, ≈ $0.25 at batch prices "
                                                "($0.25 less than live calls), assuming 50% of tasks are kept")


def test_a_backend_context_never_shows_the_api_key(project: Project) -> None:
    from studio.core.generation.backends import BackendContext

    config = RunConfig()
    config.teacher.api_key = "sk-secret-123"
    context = BackendContext(project, project.conn, 1, config, "sk-secret-123", {}, lambda status: None)
    assert "sk-secret" not in repr(context) and "sk-secret" not in str(context)


def test_a_backend_that_fails_to_cancel_still_ends_the_run_stopped_and_named(seeded: Project,
                                                                              held: HeldBackend) -> None:
    from studio.core.plugins.boundary import failures

    held.cancel_fails = held.keep_open = True
    events: list = []
    engine, thread, results = _start(seeded, _config(), events)
    _wait_for(lambda: held.peak >= 1)
    engine.stop(cancel_work=True)
    thread.join(30)
    (result,) = results  # a result, not an exception out of the run's thread
    assert result.reason == "stopped" and "test-plugin" in result.message and "not cancelled" in result.message
    assert seeded.generation.run(result.run_id)["status"] == "stopped"
    assert any("could not cancel" in m for m in failures("test-plugin"))
