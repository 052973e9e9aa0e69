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
from fake_batch_api import FakeBatchAPI, LineFault  # noqa: E402

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
    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(6)])
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
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert "at batch prices" in started.estimate
    stored = seeded.generation.backend_status(result.run_id)
    assert stored["state"]["open_jobs"] == 0 and not seeded.generation.runs_to_pick_up()
