"""Crash safety of the openai-batch plugin with a real CLI child process: kill -9 never pays twice.

The fake Batch API runs in this process; ``distill-studio generate --backend openai-batch`` runs
as a child that is killed with SIGKILL (by the test once the batch id is committed, or by the
plugin's crash hook right after an upload or a batch create, before the id's commit); then
``generate --resume`` must pick the same batch up: one upload, one batch, no duplicate samples.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_batch_api import FakeBatchAPI, add_seed_tasks  # noqa: E402

from studio.core.project import Project  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def api():
    with FakeBatchAPI() as server:
        yield server


@pytest.fixture
def root(project: Project) -> Path:
    add_seed_tasks(project)
    project.close()  # the child takes the project lock
    return project.root


def _env(api: FakeBatchAPI, **extra: str) -> dict[str, str]:
    paths = [str(REPO), str(REPO / "plugins" / "openai-batch"), str(REPO / "plugins" / "vllm-serve")]
    return {**os.environ, "FAKE_KEY": api.api_key, "PYTHONPATH": os.pathsep.join(paths), **extra}


def _generate(root: Path, api: FakeBatchAPI) -> list[str]:
    return [sys.executable, "-m", "studio", "generate", "--project", str(root), "--base-url", api.base_url,
            "--model", "fake-teacher", "--target", "20", "--backend", "openai-batch",
            "--backend-option", "poll_s=0.02", "--backend-option", "collect_s=0.05", "--api-key-env", "FAKE_KEY"]


def _resume(root: Path, api: FakeBatchAPI) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", "generate", "--project", str(root), "--resume",
                           "--api-key-env", "FAKE_KEY"], cwd=REPO, env=_env(api), capture_output=True, text=True,
                          timeout=120)


def _one(reader: sqlite3.Connection, sql: str):
    try:
        return reader.execute(sql).fetchone()
    except sqlite3.OperationalError:  # the child is migrating or writing
        return None


def _assert_collected_once(root: Path, api: FakeBatchAPI, resumed: subprocess.CompletedProcess) -> None:
    assert resumed.returncode == 0, resumed.stderr
    assert api.uploads == 1 and api.batches_created == 1 and api.live_calls == 0
    assert all(count == 1 for count in api.batch_runs_by_key.values())
    reader = sqlite3.connect(root / "project.sqlite")
    try:
        samples = reader.execute("SELECT instruction FROM samples").fetchall()
        kept = reader.execute("SELECT kept, status FROM generation_runs").fetchone()
        assert len(samples) == kept[0] >= 20 and len({s[0] for s in samples}) == len(samples)  # no duplicates
        assert kept[1] == "done"
        jobs = reader.execute("SELECT job_id, status FROM backend_jobs").fetchall()
        assert jobs == [(next(iter(api.batches)), "collected")]
    finally:
        reader.close()


def test_kill_9_mid_batch_then_resume_collects_the_same_batch(root: Path, api: FakeBatchAPI) -> None:
    api.hold.set()  # the batch stays in validating until the child is dead
    child = subprocess.Popen(_generate(root, api), cwd=REPO, env=_env(api), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    reader = sqlite3.connect(root / "project.sqlite", timeout=10)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            row = _one(reader, "SELECT job_id FROM backend_jobs WHERE job_id IS NOT NULL")
            if row or child.poll() is not None:
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    assert api.uploads == 1 and api.batches_created == 1
    status = reader.execute("SELECT status FROM generation_runs").fetchone()[0]
    reader.close()
    assert status == "running"  # killed: the app will offer to pick it up
    with Project.open(root) as project:
        assert project.generation.runs_to_pick_up() == [1]
    api.hold.clear()
    resumed = _resume(root, api)
    assert "Batch 1 of 1 at OpenAI" in resumed.stderr
    _assert_collected_once(root, api, resumed)


@pytest.mark.parametrize("step", ["upload", "create"])
def test_a_kill_before_an_ids_commit_finds_the_job_at_the_provider(root: Path, api: FakeBatchAPI, step: str) -> None:
    crashed = subprocess.run(_generate(root, api) + ["--quiet"], cwd=REPO,
                             env=_env(api, DISTILL_OPENAI_BATCH_CRASH_AFTER=step), capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()
    reader = sqlite3.connect(root / "project.sqlite")
    file_id, job_id = reader.execute("SELECT file_id, job_id FROM backend_jobs").fetchone()
    reader.close()
    assert job_id is None and (file_id is None) == (step == "upload")  # the id the crash lost
    assert api.uploads == 1 and api.batches_created == (step == "create")
    resumed = _resume(root, api)
    _assert_collected_once(root, api, resumed)  # found by its file name or its metadata: no second upload


def test_ctrl_c_leaves_the_batch_at_the_provider_and_says_how_to_collect_it(root: Path, api: FakeBatchAPI,
                                                                             default_sigint) -> None:
    api.hold.set()
    child = subprocess.Popen(_generate(root, api), cwd=REPO, env=_env(api), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    reader = sqlite3.connect(root / "project.sqlite", timeout=10)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if _one(reader, "SELECT job_id FROM backend_jobs WHERE job_id IS NOT NULL"):
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        reader.close()
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "Traceback" not in err and "still at the provider (openai-batch)" in err
    assert "generate --resume --run 1" in err and api.cancels == 0
    assert "Batch 1 of 1 at OpenAI: validating" in err  # the batch's state, as the progress shows it
    api.hold.clear()
    _assert_collected_once(root, api, _resume(root, api))
