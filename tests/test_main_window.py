"""The window: status-bar counts and every panel follow changes from any writer; errors in one place."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QApplication

from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.ui.main_window import MainWindow
from tests.window_support import open_window


def test_import_samples_updates_the_status_bar_counts(qtbot, tmp_path: Path) -> None:
    window = open_window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: "0 samples" in window.counts_label.text(), timeout=5000)
    data = tmp_path / "three.json"
    data.write_text(json.dumps([{"instruction": f"Say {n}.", "input": "", "output": str(n)} for n in range(3)]))
    window.import_samples_from(data)
    qtbot.waitUntil(lambda: "3 samples (0 accepted, 3 pending" in window.counts_label.text(), timeout=5000)
    window.close()


def test_a_write_from_any_panel_or_worker_updates_the_counts(qtbot, tmp_path: Path) -> None:
    window = open_window(qtbot, tmp_path)
    project = window.project
    sample_id = project.samples.add(Sample("Count me.", output="ok"))
    qtbot.waitUntil(lambda: "1 sample (0 accepted, 1 pending" in window.counts_label.text(), timeout=5000)
    with project.worker() as handle:  # as a job on a worker thread would
        handle.curation.set_status([sample_id], Status.ACCEPTED)
    qtbot.waitUntil(lambda: "1 sample (1 accepted, 0 pending" in window.counts_label.text(), timeout=5000)
    window.close()


def test_a_failed_job_shows_in_the_message_area_and_a_success_clears_it(qtbot, tmp_path: Path) -> None:
    window = open_window(qtbot, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"instruction": "fine", "output": "x"},\n {"output": "no instruction"}]')
    window.import_samples_from(bad)
    qtbot.waitUntil(window.messages.is_shown, timeout=5000)
    assert "bad.json, line 2" in window.messages.message() and "instruction" in window.messages.message()
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"instruction": "Fine now.", "output": "x"}]))
    window.import_samples_from(good)
    qtbot.waitUntil(lambda: not window.messages.is_shown(), timeout=5000)
    window.close()


def test_the_about_box_names_only_panels_that_exist(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda _parent, _title, text: shown.append(text))
    window = open_window(qtbot, tmp_path)
    window.show_about()
    assert "Seeds, Generate, Curate, Train, Chat, Evaluate" in shown[0] and "not in this version" not in shown[0]
    window.close()


def test_the_window_reopens_a_project_it_closed(qtbot, tmp_path: Path) -> None:
    window = open_window(qtbot, tmp_path)
    window.close_project()
    assert window.context is None
    assert window.open_project(tmp_path / "p")
    assert isinstance(window.project, Project)
    window.close()


def test_an_undo_that_no_longer_applies_says_so_and_leaves_the_stack(qtbot, tmp_path: Path) -> None:
    from studio.ui.change_command import ChangeCommand

    window = open_window(qtbot, tmp_path)
    project = window.project
    first = project.samples.add(Sample("First text.", output="same"))
    second = project.samples.add(Sample("Second text.", output="same"))
    edit = project.curation.edit_text(second, "Second, edited.", "", "same")
    stack = window.panels[0].undo_stack()
    stack.push(ChangeCommand(window.context, edit))
    project.curation.edit_text(first, "Second text.", "", "same")  # the old text is now taken by another
    stack.undo()
    assert "Could not undo" in window.messages.message() and "identical" in window.messages.message()
    assert stack.count() == 0
    assert project.samples.get(second).instruction == "Second, edited."
    window.close()


def test_a_long_message_is_cut_to_the_strip_and_kept_whole_for_the_tooltip(qtbot, tmp_path: Path) -> None:
    window = open_window(qtbot, tmp_path)
    window.resize(900, 600)
    height = window.messages.height()
    long_text = "The teacher refused the request: " + "very long detail " * 40
    window.messages.show_error(long_text)
    qtbot.waitUntil(lambda: window.messages.text.elided_text().endswith("…"), timeout=2000)
    assert window.messages.message() == long_text and window.messages.text.toolTip() == long_text
    assert window.messages.height() == height  # nothing below it moved
    window.messages.clear()
    assert window.messages.height() == height and not window.messages.is_shown()
    window.close()


def _activate(qtbot, window: MainWindow) -> None:
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)


def test_redo_keys_are_each_bound_once_and_ctrl_shift_z_redoes(qtbot, tmp_path: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = open_window(qtbot, tmp_path)
    _activate(qtbot, window)
    redo = next(a for a in window.menuBar().actions()[1].menu().actions() if a.text() == "&Redo" or "Redo" in a.text())
    keys = [k.toString() for k in redo.shortcuts()]
    assert len(keys) == len(set(keys)) and "Ctrl+Shift+Z" in keys
    seeds = window.panel("seeds")
    before = window.project.seeds.count()
    seeds.add_seed()
    qtbot.waitUntil(lambda: window.project.seeds.count() == before + 1, timeout=5000)
    window.nav.setFocus()
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.project.seeds.count() == before, timeout=5000)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.project.seeds.count() == before + 1, timeout=5000)
    window.close()


def test_panel_shortcuts_work_with_the_focus_in_the_sidebar_and_only_for_the_shown_panel(qtbot, tmp_path: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = open_window(qtbot, tmp_path)
    _activate(qtbot, window)
    window.nav.setFocus()
    before = window.project.seeds.count()
    QTest.keyClick(window.nav, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.project.seeds.count() == before + 1, timeout=5000)
    QTest.keyClick(window.nav, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.panel("seeds").search_edit
    window.nav.setCurrentRow(2)  # Curate: its Ctrl+F, not the hidden Seeds panel's
    curate = window.panel("curate")
    window.nav.setFocus()
    QTest.keyClick(window.nav, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is curate.search
    visible_menus = [a.text() for a in window.menuBar().actions() if a.isVisible()]
    assert "&Curate" in visible_menus and "&Seeds" not in visible_menus
    window.close()


def test_at_the_minimum_size_the_status_bar_fits_a_running_job_and_the_counts(qtbot, tmp_path: Path) -> None:
    import threading

    window = open_window(qtbot, tmp_path)
    window.resize(window.minimumSize())
    qtbot.waitUntil(lambda: "samples" in window.counts_label.text(), timeout=5000)
    gate = threading.Event()
    job = window.jobs.submit("Generating samples (run #12): 1,234 of 2,000 kept · $0.42 and more words", gate.wait, 5)
    qtbot.waitUntil(window.job_status.isVisible, timeout=5000)
    qtbot.wait(50)
    bar = window.statusBar()
    used = sum(w.sizeHint().width() for w in (window.job_status, window.counts_label))
    assert used < bar.width()  # nothing overlaps: the counts' short form and the cut job title fit
    assert "✓" in window.counts_label.text() and "accepted" in window.counts_label.toolTip()
    assert window.job_status.label.elided_text().endswith("…")
    gate.set()
    qtbot.waitUntil(lambda: job.state == "done", timeout=5000)


# -- imports: progress, cancel, duplicates; seed imports skip identical tasks ------------------
def write_alpaca(path: Path, count: int, start: int = 0) -> Path:
    path.write_text(json.dumps([{"instruction": f"Task {n}.", "input": "", "output": str(n)}
                                for n in range(start, start + count)]))
    return path


def test_an_import_cancelled_inside_its_insert_commits_nothing(tmp_path: Path) -> None:
    from studio.core.jobs import Progress
    from studio.ui.main_window import _import_samples_job

    path = write_alpaca(tmp_path / "many.json", 12_000)
    with Project.open(tmp_path / "p", create=True) as project:
        steps = _import_samples_job(project, path, Status.PENDING.value)
        phases = []
        for value in steps:
            assert isinstance(value, Progress)
            phases.append(value.message)
            if value.message == "Adding samples":
                break  # rows of the first batch are inserted, not committed
        steps.close()  # what the runner does on Cancel
        assert project.samples.count() == 0
        assert {"Reading many.json", "Checking samples", "Adding samples"} <= set(phases)
        assert not project.conn.in_transaction


def test_an_import_can_be_cancelled_and_a_finished_one_counts_duplicates(qtbot, tmp_path: Path, monkeypatch) -> None:
    import threading

    from studio.core import formats
    from studio.core.jobs import Progress

    window = open_window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: "0 samples" in window.counts_label.text(), timeout=5000)
    path = write_alpaca(tmp_path / "many.json", 3000)
    reached, gate = threading.Event(), threading.Event()
    real_steps = formats.read_samples_steps

    def held_steps(*args, **kwargs):  # after reading, waits until the test has pressed Cancel
        records = yield from real_steps(*args, **kwargs)
        reached.set()
        gate.wait(5)
        yield Progress(len(records), len(records), "read")
        return records

    monkeypatch.setattr(formats, "read_samples_steps", held_steps)
    job = window.import_samples_from(path)
    assert job.cancellable
    qtbot.waitUntil(reached.is_set, timeout=5000)
    job.cancel()
    gate.set()
    assert job.state == "cancelled"
    qtbot.wait(300)  # the worker winds down
    with Project.open(tmp_path / "p", exclusive=False) as project:
        assert project.samples.count() == 0
    assert not window.messages.is_shown()
    assert "Imported" not in window.statusBar().currentMessage()

    monkeypatch.setattr(formats, "read_samples_steps", real_steps)
    write_alpaca(tmp_path / "first.json", 10)
    window.import_samples_from(tmp_path / "first.json")
    qtbot.waitUntil(lambda: "10 samples" in window.counts_label.text(), timeout=5000)
    window.import_samples_from(write_alpaca(tmp_path / "overlap.json", 10, start=5))
    qtbot.waitUntil(lambda: "15 samples" in window.counts_label.text(), timeout=5000)
    qtbot.waitUntil(lambda: window.statusBar().currentMessage()
                    == "Imported 5 samples from overlap.json, 5 exact duplicates skipped", timeout=5000)
    window.close()


def test_importing_a_seed_file_again_adds_nothing_and_says_so(qtbot, tmp_path: Path) -> None:
    window = open_window(qtbot, tmp_path)
    before = window.project.seeds.count()
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(
        '{"id": "t%d", "name": "task_%d", "instruction": "Imported task %d.", '
        '"instances": [{"input": "", "output": "ok"}]}\n' % (n, n, n) for n in range(3)
    ))
    window.import_seeds_from(path)
    qtbot.waitUntil(lambda: window.project.seeds.count() == before + 3, timeout=5000)
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == "Imported 3 seed tasks from seeds.jsonl",
                    timeout=5000)
    undo_steps = window.panel("seeds").undo_stack().count()
    window.import_seeds_from(path)
    qtbot.waitUntil(lambda: window.statusBar().currentMessage()
                    == "Imported 0 seed tasks from seeds.jsonl; 3 identical ones were already there", timeout=5000)
    assert window.project.seeds.count() == before + 3
    assert window.panel("seeds").undo_stack().count() == undo_steps  # nothing added: no empty undo step
    window.close()
