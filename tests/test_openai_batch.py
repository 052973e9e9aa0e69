"""The openai-batch plugin against a loopback fake of the Files and Batch APIs (real openai client, real HTTP).

Runs complete at half the live price, follow-up batches carry self-instruct's later stages,
failed and expired lines are retried as a batch or live, refused lines fail their request,
and a whole failed batch stops the run with the provider's message.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_batch_api import FakeBatchAPI, LineFault, add_seed_tasks  # noqa: E402

from studio.core.generation import events as ev  # noqa: E402
from studio.core.generation.backend_jobs import BackendJobs  # noqa: E402
from studio.core.generation.config import RunConfig  # noqa: E402
from studio.core.generation.engine import GenerationEngine, create_run  # noqa: E402
from studio.core.llm import EndpointConfig  # noqa: E402
from studio.core.llm.pricing import request_cost  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.seeds import Instance, SeedTask  # noqa: E402

PRICES = {"fake-teacher": (1.0, 2.0)}
FAST = {"poll_s": 0.02, "collect_s": 0.05}


@pytest.fixture(autouse=True)
def plugins():
    from studio.core.plugins.discovery import load_plugins

    load_plugins()


@pytest.fixture
def api():
    with FakeBatchAPI() as server:
        yield server


@pytest.fixture
def seeded(project: Project) -> Project:
    add_seed_tasks(project)
    return project


def batch_config(api: FakeBatchAPI, **overrides) -> RunConfig:
    options = {**FAST, **overrides.pop("options", {})}
    config = RunConfig(teacher=EndpointConfig(base_url=api.base_url, model="fake-teacher", timeout_s=5),
                       backend="openai-batch", backend_options=options, prices=dict(PRICES), target=60,
                       backoff_base_s=0.01, backoff_max_s=0.02)
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def run(project: Project, api: FakeBatchAPI, config: RunConfig, events: list | None = None):
    run_id = create_run(project.generation, config)
    engine = GenerationEngine(project, run_id, on_event=(events.append if events is not None else None),
                              api_key=api.api_key)
    return engine.run_blocking()


def requests_of(project: Project, run_id: int) -> list[dict]:
    return [dict(r) for r in project.conn.execute(
        "SELECT request_key, status, prompt_tokens, completion_tokens, cost, attempts, error FROM generation_requests"
        " WHERE run_id = ? ORDER BY request_key", (run_id,))]


def test_a_batch_run_completes_at_half_the_live_price(seeded: Project, api: FakeBatchAPI) -> None:
    events: list = []
    result = run(seeded, api, batch_config(api), events)
    assert result.reason == "target" and result.counters.kept == 60
    assert api.uploads == api.batches_created >= 1 and api.live_calls == 0
    rows = requests_of(seeded, result.run_id)
    assert rows and all(r["status"] == "done" for r in rows)
    assert all(api.batch_runs_by_key[r["request_key"]] == 1 for r in rows)  # each line ran once
    for r in rows:  # the same usage at live prices costs twice as much
        assert r["cost"] == pytest.approx(request_cost(PRICES, "fake-teacher", r["prompt_tokens"],
                                                       r["completion_tokens"]) / 2)
    assert result.counters.cost == pytest.approx(sum(r["cost"] for r in rows))
    assert seeded.conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?", (result.run_id,)).fetchone()[0] == 60
    # The uploaded file is the batch JSONL the contract names, one line per request.
    upload = next(f for f in api.files.values() if f["purpose"] == "batch")
    first = json.loads(upload["_content"].decode().splitlines()[0])
    assert first["method"] == "POST" and first["url"] == "/v1/chat/completions"
    assert first["custom_id"] == rows[0]["request_key"] and first["body"]["model"] == "fake-teacher"
    assert {"messages", "temperature", "top_p", "max_tokens"} <= set(first["body"])
    jobs = BackendJobs(seeded.conn).jobs(result.run_id)
    assert upload["filename"] == f"{jobs[0].local_key}.jsonl"
    batch = api.batches[jobs[0].job_id]
    assert batch["metadata"]["distill_job"] == jobs[0].local_key and batch["completion_window"] == "24h"
    assert all(j.status == "collected" and j.file_id and j.output_file_id for j in jobs)
    statuses = [e for e in events if isinstance(e, ev.BackendStatus)]
    assert {"validating", "in_progress", "finalizing", "completed"} <= {e.state["status"] for e in statuses}
    assert statuses[-1].text.startswith(f"Batch {len(jobs)} of {len(jobs)} at OpenAI")
    assert statuses[-1].state["saving_usd"] == pytest.approx(result.counters.cost)  # half price: saved as much
    # Before its answers are back, a batch says what it should save (not "$0.00"); once collected, what it did.
    waiting = [e for e in statuses if e.state["status"] in ("validating", "in_progress")]
    assert waiting and all("expected saving ≈ $" in e.text and e.state["expected_saving_usd"] > 0 for e in waiting)
    assert "expected" not in statuses[-1].text and "· saving $" in statuses[-1].text
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert "at batch prices" in started.estimate
    stored = seeded.generation.backend_status(result.run_id)
    assert stored["state"]["open_jobs"] == 0 and not seeded.generation.runs_to_pick_up()


def _stages_by_job(project: Project, run_id: int) -> list[set[str]]:
    jobs = BackendJobs(project.conn)
    stage = dict(project.conn.execute("SELECT request_key, stage FROM generation_requests WHERE run_id = ?", (run_id,)))
    return [{stage[k] for k in jobs.request_keys(job.id)} for job in jobs.jobs(run_id)]


def test_self_instruct_goes_through_its_stages_in_follow_up_batches(seeded: Project, api: FakeBatchAPI) -> None:
    seeded.seeds.add(SeedTask("Classify the sentiment of the review as positive or negative.",
                              [Instance("Great food.", "positive")], is_classification=True))
    config = batch_config(api, mode="self-instruct", target=12, num_tasks=6)
    result = run(seeded, api, config)
    assert result.reason == "target" and result.counters.kept == 12
    stages = _stages_by_job(seeded, result.run_id)
    assert stages[0] == {"instructions"} and len(stages) >= 3  # the first batch, then two follow-ups at least
    assert any("classify" in s for s in stages[1:]) and any("instances" in s for s in stages[2:])
    assert api.uploads == api.batches_created == len(stages) and api.live_calls == 0
    assert all(count == 1 for count in api.batch_runs_by_key.values())


@pytest.mark.parametrize("retry", ["batch", "live"])
def test_failed_lines_are_retried_as_a_follow_up_batch_or_live(seeded: Project, api: FakeBatchAPI, retry: str) -> None:
    events: list = []
    api.line_faults = {"r1-generate-000000": LineFault(500, "server_error"),
                       "r1-generate-000001": LineFault(429, "rate_limit_exceeded")}
    result = run(seeded, api, batch_config(api, options={"retry_failed": retry}), events)
    assert result.reason == "target"
    rows = {r["request_key"]: r for r in requests_of(seeded, result.run_id)}
    for key in api.line_faults:
        assert rows[key]["status"] == "done" and rows[key]["attempts"] == 2
    live_cost = request_cost(PRICES, "fake-teacher", rows["r1-generate-000000"]["prompt_tokens"],
                             rows["r1-generate-000000"]["completion_tokens"])
    if retry == "batch":
        assert api.live_calls == 0 and api.batches_created == 2
        assert _stages_by_job(seeded, result.run_id)[1] == {"generate"}
        assert BackendJobs(seeded.conn).request_keys(BackendJobs(seeded.conn).jobs(result.run_id)[1].id) == sorted(
            api.line_faults)
        assert rows["r1-generate-000000"]["cost"] == pytest.approx(live_cost / 2)
    else:
        assert api.batches_created == 1 and dict(api.live_by_key) == {k: 1 for k in api.line_faults}
        assert rows["r1-generate-000000"]["cost"] == pytest.approx(live_cost)  # live retries pay the live price
    retried = [e for e in events if isinstance(e, ev.RetryScheduled)]
    assert {e.request_key for e in retried} == set(api.line_faults)
    assert all(count == 1 for key, count in api.batch_runs_by_key.items() if key not in api.line_faults)


@pytest.mark.parametrize("retry", ["batch", "live"])
def test_lines_an_expired_batch_never_ran_are_retried(seeded: Project, api: FakeBatchAPI, retry: str) -> None:
    api.expire = {1: 1}  # the first batch runs one line, then its 24 h window ends
    result = run(seeded, api, batch_config(api, options={"retry_failed": retry}))
    assert result.reason == "target" and result.counters.kept == 60
    jobs = BackendJobs(seeded.conn).jobs(result.run_id)
    first = BackendJobs(seeded.conn).request_states(jobs[0].id)
    answered = [k for k, (state, _) in first.items() if state == "answered"]
    expired = sorted(k for k, (state, _) in first.items() if state == "failed")
    assert len(answered) == 1 and expired and all("batch_expired" in first[k][1] for k in expired)
    rows = {r["request_key"]: r for r in requests_of(seeded, result.run_id)}
    assert all(rows[k]["status"] == "done" for k in expired + answered)
    assert api.batch_runs_by_key[answered[0]] == 1  # the line that ran is never sent again
    if retry == "batch":
        assert api.live_calls == 0 and BackendJobs(seeded.conn).request_keys(jobs[1].id)[:len(expired)] == expired
    else:
        assert dict(api.live_by_key) == {k: 1 for k in expired} and len(jobs) == 1


def test_a_line_the_provider_refuses_fails_its_request_and_the_run_goes_on(seeded: Project, api: FakeBatchAPI) -> None:
    events: list = []
    api.line_faults = {"r1-generate-000001": LineFault(400, "invalid_request", times=99)}
    result = run(seeded, api, batch_config(api), events)
    assert result.reason == "target" and result.counters.kept == 60
    rows = {r["request_key"]: r for r in requests_of(seeded, result.run_id)}
    refused = rows["r1-generate-000001"]
    assert refused["status"] == "failed" and "400" in refused["error"] and refused["attempts"] == 1
    assert api.batch_runs_by_key["r1-generate-000001"] == 1  # never retried: no retry fixes a refused request
    assert [e.request_key for e in events if isinstance(e, ev.RequestFailed)] == ["r1-generate-000001"]


def test_a_batch_that_fails_as_a_whole_stops_the_run_with_the_providers_message(
        seeded: Project, api: FakeBatchAPI) -> None:
    api.fail_batches = {1}
    events: list = []
    result = run(seeded, api, batch_config(api), events)
    assert result.reason == "error" and "invalid_json_line" in result.message and "not parseable" in result.message
    assert any(isinstance(e, ev.TeacherError) for e in events)
    assert api.batches_created == 1 and api.live_calls == 0
    # Nothing was answered or paid for: like a live run refused before any answer, it leaves no row.
    assert result.discarded and seeded.generation.run(result.run_id) is None


def test_the_budget_reserves_at_batch_prices(seeded: Project, api: FakeBatchAPI) -> None:
    from studio.core.generation.engine import sample_prompt_chars

    config = batch_config(api, target=10**6, max_tokens=500)
    worst_live = config.worst_case_cost(sample_prompt_chars(config, seeded.generation.seed_examples()) // 3)
    config.budget_usd = worst_live * 3.2  # 3 requests at a time at live prices; 6 at batch prices
    result = run(seeded, api, config)
    assert result.reason == "budget" and result.counters.cost <= config.budget_usd
    first = next(f for f in api.files.values() if f["purpose"] == "batch")
    assert len(first["_content"].decode().splitlines()) == 6


def test_live_retries_reserve_the_live_worst_case_within_the_budget(seeded: Project, api: FakeBatchAPI) -> None:
    from studio.core.generation.engine import sample_prompt_chars

    config = batch_config(api, target=10**6, max_tokens=500, options={"retry_failed": "live"})
    worst_live = config.worst_case_cost(sample_prompt_chars(config, seeded.generation.seed_examples()) // 3)
    config.budget_usd = worst_live * 3.2  # 6 lines in flight at batch prices: no room left for a live worst case
    api.line_faults = {f"r1-generate-{i:06d}": LineFault(500, "server_error") for i in range(6)}
    result = run(seeded, api, config)
    assert result.reason == "budget" and result.counters.cost <= config.budget_usd
    # The whole first batch failed: a live retry of any line could cost twice what it reserved, so every
    # line goes into the follow-up batch, at the price reserved for it.
    assert api.live_calls == 0
    second = BackendJobs(seeded.conn).jobs(result.run_id)[1]
    assert set(BackendJobs(seeded.conn).request_keys(second.id)) == set(api.line_faults)


@pytest.mark.parametrize("kind", ["upload", "create", "retrieve"])
def test_a_provider_blip_neither_fails_the_batch_nor_pays_twice(seeded: Project, api: FakeBatchAPI, kind: str) -> None:
    # More blips than the openai client's own retries: the batch waits hours, a blip must not end it.
    api.flaky[kind] = 4
    events: list = []
    result = run(seeded, api, batch_config(api), events)
    assert result.reason == "target" and result.counters.kept == 60 and api.flaky[kind] < 4
    assert not [e for e in events if isinstance(e, ev.RequestFailed)]
    waiting = [e for e in events if isinstance(e, ev.BackendStatus) and e.state["problem"]]
    assert waiting and "Trying again in" in waiting[0].text and "500" in waiting[0].state["problem"]
    jobs = BackendJobs(seeded.conn).jobs(result.run_id)
    # A create or upload whose answer was lost is found at the provider, never made again.
    assert api.uploads == api.batches_created == len(jobs)
    assert all(count == 1 for count in api.batch_runs_by_key.values()) and api.live_calls == 0


def test_a_wave_too_large_for_one_file_goes_into_several_batches(seeded: Project, api: FakeBatchAPI,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from distill_openai_batch import backend

    monkeypatch.setattr(backend, "MAX_FILE_BYTES", 4000, raising=False)  # for 200 MB: a line or two a file
    result = run(seeded, api, batch_config(api))
    assert result.reason == "target" and result.counters.kept == 60
    uploads = [f["_content"] for f in api.files.values() if f["purpose"] == "batch"]
    assert len(uploads) >= 2 and all(len(content) <= 4000 for content in uploads)
    assert api.uploads == api.batches_created and all(count == 1 for count in api.batch_runs_by_key.values())


def test_a_job_that_cannot_be_stored_fails_the_run_instead_of_hanging_it(
        seeded: Project, api: FakeBatchAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3
    import threading

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(BackendJobs, "create_job", locked)
    run_id = create_run(seeded.generation, batch_config(api))
    results: list = []
    thread = threading.Thread(target=lambda: results.append(
        GenerationEngine(seeded, run_id, api_key=api.api_key).run_blocking()), daemon=True)
    thread.start()
    thread.join(30)
    (result,) = results
    assert result.reason == "error" and "openai-batch" in result.message and "database is locked" in result.message
    assert api.uploads == 0


def test_the_manifest_names_the_provider_the_panel_shows() -> None:
    from studio.core.registry import GENERATION_BACKENDS
    from studio.ui.generate_panel import provider_name

    assert GENERATION_BACKENDS.get("openai-batch").meta["provider"] == "OpenAI"
    assert provider_name("openai-batch") == "OpenAI"


def _start_held(project: Project, api: FakeBatchAPI, config: RunConfig):
    import threading
    import time

    api.hold.set()  # batches stay where they are until the test lets them go
    run_id = create_run(project.generation, config)
    engine = GenerationEngine(project, run_id, api_key=api.api_key)
    results: list = []
    thread = threading.Thread(target=lambda: results.append(engine.run_blocking()), daemon=True)
    thread.start()
    jobs = BackendJobs(project.conn)
    deadline = time.monotonic() + 30
    while not any(j.job_id for j in jobs.jobs(run_id)):
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    return engine, thread, results


def test_closing_the_app_detaches_the_run_and_a_resume_collects_the_same_batch(
        seeded: Project, api: FakeBatchAPI) -> None:
    engine, thread, results = _start_held(seeded, api, batch_config(api))
    engine.stop(detach=True)
    thread.join(30)
    assert results[0].reason == "stopped" and seeded.generation.run(engine.run_id)["status"] == "detached"
    assert seeded.generation.runs_to_pick_up() == [engine.run_id]
    assert api.cancels == 0  # the batch is left running at the provider
    api.hold.clear()
    again = GenerationEngine(seeded, engine.run_id, api_key=api.api_key).run_blocking()
    assert again.reason == "target" and again.counters.kept == 60
    first = BackendJobs(seeded.conn).jobs(engine.run_id)[0]
    assert api.batches[first.job_id]["status"] == "completed" and first.status == "collected"
    assert all(count == 1 for count in api.batch_runs_by_key.values()) and api.uploads == api.batches_created
    assert not seeded.generation.runs_to_pick_up()


def test_a_resume_collects_every_request_a_batch_holds_even_past_the_target(
        seeded: Project, api: FakeBatchAPI) -> None:
    engine, thread, results = _start_held(seeded, api, batch_config(api))
    engine.stop(detach=True)
    thread.join(30)
    jobs = BackendJobs(seeded.conn)
    held = [key for job in jobs.jobs(engine.run_id) for key in jobs.request_keys(job.id)]
    assert len(held) >= 2
    run = seeded.generation.run(engine.run_id)
    seeded.generation.update_config(engine.run_id, {**run["config"], "target": 1})  # one answer reaches it
    api.hold.clear()
    again = GenerationEngine(seeded, engine.run_id, api_key=api.api_key).run_blocking()
    assert again.reason == "target" and again.counters.kept == 1
    # Every line the provider ran is paid for: its answer is stored (past the target: restorable rejects).
    rows = {r["request_key"]: r for r in requests_of(seeded, engine.run_id)}
    assert all(rows[key]["status"] == "done" for key in held)
    assert not jobs.has_open_jobs(engine.run_id)
    over = seeded.conn.execute("SELECT COUNT(*) FROM rejected_candidates WHERE run_id = ? AND reason = 'over_target'",
                               (engine.run_id,)).fetchone()[0]
    assert over > 0


def test_stop_with_cancel_work_cancels_the_batch_and_a_resume_sends_its_unrun_lines_again(
        seeded: Project, api: FakeBatchAPI) -> None:
    engine, thread, results = _start_held(seeded, api, batch_config(api))
    engine.stop(cancel_work=True)
    thread.join(30)
    first = BackendJobs(seeded.conn).jobs(engine.run_id)[0]
    assert api.cancels == 1 and first.status == "cancelling"
    assert seeded.generation.run(engine.run_id)["status"] == "stopped" and not seeded.generation.runs_to_pick_up()
    api.hold.clear()
    again = GenerationEngine(seeded, engine.run_id, api_key=api.api_key).run_blocking()
    assert again.reason == "target"
    jobs = BackendJobs(seeded.conn).jobs(engine.run_id)
    assert api.batches[first.job_id]["status"] == "cancelled" and len(jobs) >= 2
    states = BackendJobs(seeded.conn).request_states(first.id)
    assert states and all(state == "failed" and "batch_cancelled" in error for state, error in states.values())
    assert set(BackendJobs(seeded.conn).request_keys(jobs[1].id)) >= set(states)  # sent again in a new batch
    assert all(count == 1 for count in api.batch_runs_by_key.values())  # the cancelled batch ran none of them


def test_cli_backend_options_are_typed_by_the_entrys_declared_options() -> None:
    from studio.core.errors import StudioError
    from studio.core.generation.cli_support import parse_backend_options

    assert parse_backend_options("openai-batch", ["batch_size=100", "poll_s=0.5", "retry_failed=live"]) == {
        "batch_size": 100, "poll_s": 0.5, "retry_failed": "live"}
    for bad, words in (("batch_size=many", "must be a whole number"), ("batch_size=60000", "at most 50000"),
                       ("retry_failed=never", "choose one of batch, live"), ("colour=red", "no option 'colour'"),
                       ("poll_s", "write KEY=VALUE")):
        with pytest.raises(StudioError, match=words):
            parse_backend_options("openai-batch", [bad])
