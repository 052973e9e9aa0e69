"""The project context: every writer's change reaches the views, coalesced, on the GUI thread."""
from __future__ import annotations

import threading

import pytest

from studio.core import changes
from studio.core.project import Project
from studio.core.samples import Sample
from studio.core.seeds import Instance, SeedTask
from studio.ui.project_context import ProjectContext


def test_a_burst_of_writes_from_another_thread_is_one_signal(qtbot, project: Project) -> None:
    context = ProjectContext(project)
    received: list[frozenset] = []
    context.changed.connect(received.append)
    samples_signals: list[int] = []
    context.samples_changed.connect(lambda: samples_signals.append(1))

    def writer() -> None:
        with project.worker() as handle:
            for n in range(50):
                handle.samples.add(Sample(f"instruction {n}", output="o"))
            handle.seeds.add(SeedTask("a seed", [Instance("", "out")]))

    thread = threading.Thread(target=writer)
    with qtbot.waitSignal(context.changed, timeout=5000):
        thread.start()
        thread.join()
    qtbot.wait(100)
    assert samples_signals == [1]
    assert received == [frozenset({changes.SAMPLES, changes.SEEDS})]
    context.close()


def test_after_close_no_signal_arrives(qtbot, project: Project) -> None:
    context = ProjectContext(project)
    received: list = []
    context.changed.connect(received.append)
    context.close()
    project.samples.add(Sample("late", output="o"))
    qtbot.wait(100)
    assert received == []


def test_unknown_kinds_are_refused(project: Project) -> None:
    with pytest.raises(ValueError, match="unknown change kinds"):
        project.changes.publish("sample")  # a typo must not silently notify nobody


def test_worker_handles_share_the_feed_but_not_the_connection(project: Project) -> None:
    seen: list = []
    project.changes.subscribe(seen.append)
    with project.worker() as handle:
        assert handle.conn is not project.conn and handle.changes is project.changes
        handle.samples.add(Sample("via worker", output="o"))
    assert seen == [frozenset({changes.SAMPLES})]
    assert project.samples.count() == 1
