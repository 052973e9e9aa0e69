"""The job runner: work off the GUI thread, progress, cancel with rollback, latest wins, one error path."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from studio.core.db import transaction
from studio.core.jobs import Progress, run_to_end
from studio.core.project import Project
from studio.ui.jobs import JobRunner
from studio.ui.project_context import ProjectContext


def counting(n: int):
    for i in range(n):
        yield Progress(i + 1, n, f"step {i + 1}")
    return n * 10


def test_run_to_end_drives_a_generator_and_passes_plain_values_through() -> None:
    seen: list[Progress] = []
    assert run_to_end(counting(3), on_progress=seen.append) == 30
    assert [p.done for p in seen] == [1, 2, 3] and seen[-1].fraction == 1.0
    assert run_to_end(7) == 7


def test_a_job_runs_off_the_gui_thread_with_its_own_project_handle(qtbot, project: Project) -> None:
    runner = JobRunner()
    context = ProjectContext(project)
    gui_thread = threading.get_ident()
    seen = {}

    def work(handle: Project, text: str) -> int:
        seen["thread"] = threading.get_ident()
        seen["same_connection"] = handle.conn is project.conn
        from studio.core.samples import Sample

        return handle.samples.add(Sample(text, output="o"))

    with qtbot.waitSignal(context.samples_changed, timeout=5000):  # a worker's write reaches the views
        job = runner.submit("Adding", work, "from a worker", project=context)
    qtbot.waitUntil(lambda: job.state == "done", timeout=5000)
    assert seen["thread"] != gui_thread and seen["same_connection"] is False
    assert project.samples.count() == 1
    context.close()


def test_cancel_closes_the_generator_so_its_transaction_rolls_back(qtbot, project: Project) -> None:
    runner = JobRunner()
    context = ProjectContext(project)
    started = threading.Event()
    results: list = []

    def slow_insert(handle: Project):
        with transaction(handle.conn):
            handle.conn.execute(
                "INSERT INTO samples (instruction, created_at, updated_at, content_hash) VALUES ('x', 0, 0, 'h')")
            started.set()
            for i in range(10_000):
                time.sleep(0.005)
                yield Progress(i, 10_000)
        return "finished"

    job = runner.submit("Slow", slow_insert, project=context, on_done=results.append)
    assert started.wait(5)
    job.cancel()
    qtbot.waitUntil(lambda: not runner.active_jobs(), timeout=5000)
    time.sleep(0.1)  # the worker sees the flag at its next yield and rolls back
    qtbot.waitUntil(lambda: project.samples.count() == 0, timeout=5000)
    assert results == [] and job.state == "cancelled"
    context.close()


def test_latest_wins_drops_the_older_result(qtbot) -> None:
    runner = JobRunner()
    results: list = []
    gate = threading.Event()

    def slow(value: str) -> str:
        gate.wait(5)
        return value

    first = runner.submit("Compute", slow, "old", key="k", on_done=results.append)
    second = runner.submit("Compute", lambda: "new", key="k", on_done=results.append)
    qtbot.waitUntil(lambda: second.state == "done", timeout=5000)
    gate.set()
    time.sleep(0.05)
    qtbot.wait(50)
    assert results == ["new"] and first.state == "cancelled"


def test_errors_without_a_handler_reach_one_signal_in_plain_words(qtbot, tmp_path) -> None:
    runner = JobRunner()

    def fail() -> None:
        open(tmp_path / "missing" / "file.txt")  # noqa: SIM115

    with qtbot.waitSignal(runner.job_failed, timeout=5000) as blocker:
        runner.submit("Reading", fail)
    title, message = blocker.args
    assert title == "Reading" and "missing" in message and "No such file" in message


def test_progress_reaches_the_gui_thread(qtbot) -> None:
    runner = JobRunner()
    seen: list[Progress] = []

    def steps():
        for i in range(5):
            time.sleep(0.06)  # above the progress throttle
            yield Progress(i + 1, 5)
        return "ok"

    job = runner.submit("Steps", steps, on_progress=seen.append)
    qtbot.waitUntil(lambda: job.state == "done", timeout=5000)
    assert seen and seen[-1].done == 5 and job.progress.done == 5


CHILD = """
import os, sys, time
print("started", flush=True)
while not os.path.exists(os.environ["STUDIO_STOP_FILE"]):
    time.sleep(0.02)
print("stopping on the flag", flush=True)
"""

STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("started", flush=True)
while True:
    time.sleep(0.05)
"""


def test_a_child_process_streams_lines_and_stops_on_its_flag(qtbot) -> None:
    runner = JobRunner()
    lines: list[str] = []
    results: list = []
    job = runner.start_process("Child", [sys.executable, "-c", CHILD], on_line=lines.append, on_exit=results.append)
    qtbot.waitUntil(lambda: lines == ["started"], timeout=10_000)
    job.stop()
    qtbot.waitUntil(lambda: bool(results), timeout=10_000)
    assert lines == ["started", "stopping on the flag"]
    assert results[0].exit_code == 0 and results[0].stopped and not results[0].crashed


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be ignored there")
def test_a_child_that_ignores_the_flag_and_terminate_is_killed_after_the_timeout(qtbot) -> None:
    runner = JobRunner()
    lines: list[str] = []
    results: list = []
    job = runner.start_process("Stubborn", [sys.executable, "-c", STUBBORN], on_line=lines.append,
                               on_exit=results.append, stop_timeout_s=0.6)
    qtbot.waitUntil(lambda: lines == ["started"], timeout=10_000)
    job.stop()
    assert job.running  # stop() returned at once; the kill comes later
    qtbot.waitUntil(lambda: bool(results), timeout=10_000)
    assert results[0].crashed and results[0].stopped


def test_a_parentless_context_dropped_while_a_job_runs_is_not_destroyed_on_the_worker(qtbot, project: Project) -> None:
    """The worker thread holds the core project only, so the context dies on the GUI thread."""
    import gc
    import weakref

    runner = JobRunner()
    gate = threading.Event()
    context = ProjectContext(project)
    alive = weakref.ref(context)
    job = runner.submit("Wait", lambda handle: gate.wait(5), project=context)
    context.close()  # as the window does; the feed lets go of it
    del context
    gc.collect()
    assert alive() is None  # the job's thread does not hold it
    gate.set()
    qtbot.waitUntil(lambda: job.state == "done", timeout=5000)
    from studio.core.samples import Sample

    assert project.samples.add(Sample("after the context", output="o"))  # the feed no longer calls it


def test_reported_progress_is_never_dropped_so_the_last_one_shows(qtbot) -> None:
    runner = JobRunner()

    def work(report) -> str:
        for done in range(1, 6):
            report(Progress(done, 5))  # faster than any throttle
        time.sleep(0.2)  # the run goes on: what shows now must be the latest
        return "ok"

    job = runner.submit("Reporting", work, report=True)
    qtbot.waitUntil(lambda: job.progress is not None and job.progress.done == 5, timeout=5000)
    assert job.running or job.state == "done"
