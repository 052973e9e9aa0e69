"""The Curate panel, driven like a reviewer: keys, bulk actions, undo, edits, duplicates, charts."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from curate_data import fill
from studio.core.curation import SampleQuery
from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.ui.project_context import ProjectContext
from studio.ui.curate_panel import CuratePanel


@pytest.fixture
def panel(qtbot, project: Project):
    fill(project, 200)
    widget = CuratePanel()
    qtbot.addWidget(widget)
    # A parent, as the window gives it: a job's thread holds the context while it runs, and a
    # parentless QObject whose last reference drops on that thread is destroyed there, leaving
    # its QTimer registered with the GUI thread (a segfault at the next timer tick).
    widget.set_context(ProjectContext(project, widget))
    widget.resize(1200, 700)
    widget.show()
    yield widget
    widget.shutdown()
    widget.set_context(None)


def status_of(project: Project, sample_id: int) -> str:
    return project.samples.get(sample_id).status.value


def test_keyboard_review_changes_status_and_persists(qtbot, panel: CuratePanel, project: Project, tmp_path) -> None:
    panel.set_filters(SampleQuery(statuses=("pending",)))
    pending = panel.model.rowCount()
    first, second, third = (panel.model.sample_id(r) for r in range(3))
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_A)  # accept: leaves the pending view, next slides up
    assert status_of(project, first) == "accepted" and panel.model.rowCount() == pending - 1
    assert panel._current_id == second
    qtbot.keyClick(panel.table, Qt.Key.Key_S)  # skip
    assert panel._current_id == third
    qtbot.keyClick(panel.table, Qt.Key.Key_R)
    qtbot.keyClick(panel.table, Qt.Key.Key_K)  # back to the skipped one
    assert panel._current_id == second
    qtbot.keyClick(panel.table, Qt.Key.Key_4)
    assert project.samples.get(second).rating == 4
    assert status_of(project, third) == "rejected"
    panel.undo_stack().undo()  # undo the rating (Ctrl+Z in the window: test_main_window.py)
    assert project.samples.get(second).rating != 4
    panel.undo_stack().redo()
    assert project.samples.get(second).rating == 4
    root = project.root
    panel.set_context(None)
    project.close()
    with Project.open(root) as reopened:
        assert status_of(reopened, first) == "accepted" and status_of(reopened, third) == "rejected"


def test_bulk_action_on_the_filter_result_then_undo(panel: CuratePanel, project: Project) -> None:
    panel.search.setText("zebra")
    panel.apply_filters()
    query = SampleQuery(search="zebra")
    ids = project.curation.ids(query)
    before = {i: status_of(project, i) for i in ids}
    panel.scope.setCurrentIndex(panel.scope.findData("all"))
    panel.bulk_status(Status.REJECTED)
    assert {status_of(project, i) for i in ids} == {"rejected"}
    panel.undo_stack().undo()
    assert {i: status_of(project, i) for i in ids} == before
    panel.undo_stack().redo()
    assert {status_of(project, i) for i in ids} == {"rejected"}

    panel.scope.setCurrentIndex(panel.scope.findData("selection"))
    panel._select_row(0)
    doomed = panel.model.sample_id(0)
    panel.bulk_delete()
    assert project.samples.get(doomed) is None
    panel.undo_stack().undo()
    assert project.samples.get(doomed) is not None
    panel.bulk_tag("checked")
    assert project.curation.count(SampleQuery(tag="checked")) == 1


def test_an_edit_in_the_detail_pane_survives_reopening(qtbot, panel: CuratePanel, project: Project) -> None:
    sample_id = panel.model.sample_id(0)
    panel.instruction_edit.setPlainText("A freshly edited instruction.")
    panel.note_edit.setText("fixed typo")
    panel.tags_edit.setText("edited, style")
    panel.save_detail()
    assert panel.detail_message.text() == "Saved."
    assert panel.model.data(panel.model.index(0, 1)) == "A freshly edited instruction."
    other = project.samples.get(panel.model.sample_id(1))
    panel._select_row(1)
    panel.instruction_edit.setPlainText("A freshly edited instruction.")
    panel.output_edit.setPlainText(project.samples.get(sample_id).output)
    panel.input_edit.setPlainText(project.samples.get(sample_id).input)
    panel.save_detail()
    assert "identical to sample" in panel.detail_message.text()
    assert project.samples.get(other.id).instruction == other.instruction
    root = project.root
    panel.set_context(None)
    project.close()
    with Project.open(root) as reopened:
        sample = reopened.samples.get(sample_id)
        assert (sample.instruction, sample.note, sample.tags) == ("A freshly edited instruction.", "fixed typo", ["edited", "style"])


def test_duplicates_found_in_a_job_and_resolved_in_one_action(qtbot, tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as project:
        project.samples.add_many([Sample("Name three primary colours.", "", "a"), Sample("Name three primary colours!", "", "b"),
                                  Sample("Name three primary colours", "", "c"), Sample("Translate hello.", "", "d")])
        panel = CuratePanel()
        qtbot.addWidget(panel)
        panel.show()
        panel.set_context(ProjectContext(project, panel))
        panel.tabs.setCurrentWidget(panel.duplicates)
        assert "No search yet" in panel.duplicates.status.text()  # before the first search: what to do
        panel.duplicates.find_button.click()  # clusters in a job on the runner
        qtbot.waitUntil(lambda: panel.duplicates.clusters.count() == 1, timeout=10_000)
        assert panel.duplicates.clusters.item(0).text().startswith("3 samples")
        assert panel.duplicates.status.text() == "1 cluster, 3 samples."
        keep_buttons = [b for b in panel.duplicates.members.findChildren(type(panel.duplicates.find_button))
                        if b.text().startswith("Keep")]
        keep_buttons[1].click()
        assert [status_of(project, i) for i in (1, 2, 3, 4)] == ["rejected", "accepted", "rejected", "pending"]
        panel.undo_stack().undo()
        assert {status_of(project, i) for i in (1, 2, 3)} == {"pending"}
        panel.set_filters(SampleQuery(duplicates=True))
        assert panel.model.rowCount() == 3
        panel.set_filters(SampleQuery(search="translate"))
        panel.tabs.setCurrentWidget(panel.duplicates)
        panel.duplicates.find_button.click()
        qtbot.waitUntil(lambda: "No near-duplicates in the current filter" in panel.duplicates.status.text(), timeout=10_000)
        assert panel.duplicates.clusters.count() == 0
        panel.shutdown()


def test_charts_count_in_a_worker_and_a_bar_click_filters(qtbot, panel: CuratePanel, project: Project) -> None:
    panel.tabs.setCurrentWidget(panel.shape)  # counts in a worker thread
    qtbot.waitUntil(lambda: "samples in the current filter" in panel.shape.status.text(), timeout=10_000)
    panel.shape.filter_requested.emit("status", "accepted")
    assert panel.tabs.currentIndex() == 0
    assert panel.model.rowCount() == project.curation.count(SampleQuery(statuses=("accepted",)))
    panel.shape.filter_requested.emit("output_words", (5, 9))
    expected = project.curation.count(SampleQuery(statuses=("accepted",), output_words=(5, 9)))
    assert panel.model.rowCount() == expected
    panel.shape.verbs_button.click()  # spaCy is not installed here: a message, not a crash
    qtbot.waitUntil(lambda: "Parsing" not in panel.shape.verbs_view.text(), timeout=20_000)
    assert "spaCy" in panel.shape.verbs_view.text() or "<b>" in panel.shape.verbs_view.text()


def test_saved_view_and_snapshot_dialog(qtbot, panel: CuratePanel, project: Project, monkeypatch) -> None:
    panel.set_filters(SampleQuery(statuses=("accepted",), tag="math"))
    monkeypatch.setattr("studio.ui.curate_panel.QInputDialog.getText", lambda *a, **k: ("math ok", True))
    panel._on_save_view_clicked()
    assert "math ok" in project.curation.views()
    qtbot.waitUntil(lambda: panel.views.findText("math ok") >= 0, timeout=5000)  # the list follows views_changed
    panel.set_filters(SampleQuery())
    panel.views.setCurrentText("math ok")
    panel._on_views_activated(0)
    assert panel.model.rowCount() == project.curation.count(SampleQuery(statuses=("accepted",), tag="math"))

    from studio.ui.snapshot_dialog import SnapshotDialog

    dialog = SnapshotDialog(panel.context, panel.jobs, panel.current_query())
    qtbot.addWidget(dialog)
    assert dialog.hint.isVisibleTo(dialog) and "No snapshots yet" in dialog.hint.text()
    dialog.create_snapshot("maths", use_filter=True)  # freezing runs in a worker
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=10_000)  # via snapshots_changed
    assert not dialog.hint.isVisibleTo(dialog) and dialog.message.text().startswith("Froze ")
    dialog.create_snapshot("all accepted", use_filter=False)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2, timeout=10_000)
    dialog.create_snapshot("maths", use_filter=False)  # a taken name: the worker's error is shown
    qtbot.waitUntil(lambda: "already exists" in dialog.message.text(),
                    timeout=10_000)
    assert dialog.table.rowCount() == 2
    dialog._on_diff_clicked()
    qtbot.waitUntil(lambda: "added" in dialog.diff_view.toPlainText(), timeout=10_000)
    target = project.root / "exports" / "maths.json"
    dialog.export_to(1, target, "alpaca", 0.0)
    qtbot.waitUntil(lambda: dialog.message.text().startswith("Exported"), timeout=10_000)
    assert target.is_file()


def test_a_saved_view_brings_its_sort_order(panel: CuratePanel, project: Project) -> None:
    panel.set_filters(SampleQuery(statuses=("accepted",), sort="output_words", descending=True))
    expected = project.curation.ids(SampleQuery(statuses=("accepted",), sort="output_words", descending=True))
    assert [panel.model.sample_id(r) for r in range(5)] == expected[:5]
    assert panel.table.horizontalHeader().sortIndicatorSection() == 5


# -- big actions: confirmed, off the GUI thread, undoable after a restart ------------------------
def _answer(monkeypatch, answers: list, asked: list) -> None:
    from PySide6.QtWidgets import QMessageBox

    def question(_parent, _title, text, *args, **kwargs):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)


def test_bulk_delete_is_confirmed_off_the_gui_thread_and_survives_a_restart(qtbot, tmp_path: Path, monkeypatch) -> None:
    import threading

    from PySide6.QtGui import QUndoGroup
    from PySide6.QtWidgets import QMessageBox

    import studio.ui.curate_panel as curate_panel
    from studio.ui.trash_dialog import TrashDialog

    threads: list[str] = []
    real_delete_job = curate_panel._delete_job
    monkeypatch.setattr(curate_panel, "_delete_job",
                        lambda *a: (threads.append(threading.current_thread().name), real_delete_job(*a))[1])
    asked: list[str] = []
    _answer(monkeypatch, [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes], asked)
    root = tmp_path / "p"
    with Project.create(root) as project:
        fill(project, 700)  # above BIG_CHANGE: a job
        panel = CuratePanel()
        qtbot.addWidget(panel)
        panel.show()
        group = QUndoGroup(panel)  # the window's Edit ▸ Undo/Redo follow the group's active stack
        group.addStack(panel.undo_stack())
        group.setActiveStack(panel.undo_stack())
        context = ProjectContext(project, panel)
        panel.set_context(context)
        panel.scope.setCurrentIndex(panel.scope.findData("all"))
        panel.bulk_delete()  # cancelled at the question: nothing happens
        assert asked == ["Delete 700 samples? They go to the Trash (Curate ▸ Trash…) and can be restored."]
        assert project.samples.count() == 700 and not panel.busy
        panel.bulk_delete()
        assert panel.busy and not panel.table.isEnabled() and panel.busy_label.isVisibleTo(panel)
        assert not any(b.isEnabled() for b in panel._write_widgets)  # no GUI write waits on the lock meanwhile
        assert group.activeStack() is None  # nor an undo from Edit ▸ Undo
        qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
        assert group.activeStack() is panel.undo_stack() and all(b.isEnabled() for b in panel._write_widgets)
        assert threads and threads[0] != threading.main_thread().name
        assert project.samples.count() == 0 and panel.undo_stack().count() == 1
        qtbot.waitUntil(lambda: panel.model.rowCount() == 0, timeout=5000)  # refreshed from samples_changed
        assert panel.empty_hint.isVisibleTo(panel) and "700 samples in the Trash" in panel.empty_hint.text()
        panel.undo_stack().undo()  # a big undo is a job too
        assert panel.busy
        qtbot.waitUntil(lambda: not panel.busy and panel.model.rowCount() == 700, timeout=10_000)
        assert project.samples.count() == 700 and not panel.empty_hint.isVisibleTo(panel)
        panel.undo_stack().redo()
        qtbot.waitUntil(lambda: not panel.busy and project.samples.count() == 0, timeout=10_000)
        panel.set_context(None)
        context.close()
    with Project.open(root) as project:  # the app was closed: the delete can still be undone
        panel = CuratePanel()
        qtbot.addWidget(panel)
        panel.show()
        context = ProjectContext(project, panel)
        panel.set_context(context)
        assert "Trash…" in [a.text() for a in panel.menu_actions()]
        dialog = panel.open_trash()
        assert isinstance(dialog, TrashDialog) and len(dialog.batches) == 1
        assert dialog.table.item(0, 2).text() == "700" and dialog.table.item(0, 3).text() == "delete 700 samples"
        dialog.restore_selected()
        qtbot.waitUntil(lambda: panel.model.rowCount() == 700, timeout=10_000)
        qtbot.waitUntil(lambda: dialog.hint.isVisibleTo(dialog), timeout=5000)  # follows trash_changed
        assert "The Trash is empty" in dialog.hint.text() and dialog.message.text() == "Restored 700 samples."
        panel.set_context(None)
        context.close()


def test_a_few_rows_delete_at_once_without_asking_and_big_selections_resolve_in_the_job(
    qtbot, panel: CuratePanel, project: Project, monkeypatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    asked: list[str] = []
    _answer(monkeypatch, [QMessageBox.StandardButton.Yes], asked)
    panel.table.selectRow(0)
    first = panel.model.sample_id(0)
    panel.bulk_delete()  # one row: no question, no job
    assert asked == [] and project.samples.get(first) is None and not panel.busy
    ids = project.curation.ids(SampleQuery())[:12]
    panel.table.clearSelection()
    for row in range(12):
        panel.table.selectionModel().select(panel.model.index(row, 0),
                                            panel.table.selectionModel().SelectionFlag.Select
                                            | panel.table.selectionModel().SelectionFlag.Rows)
    assert panel.target_ids() == ids
    panel.bulk_delete()
    assert asked == ["Delete 12 samples? They go to the Trash (Curate ▸ Trash…) and can be restored."]
    assert all(project.samples.get(i) is None for i in ids)
    from studio.ui.curate_panel import _RowsOf

    big = _RowsOf(SampleQuery(), [(0, 2), (5, 5)])
    assert big(project) == [project.curation.ids(SampleQuery())[r] for r in (0, 1, 2, 5)]


def test_shutdown_returns_at_once_and_cancels_the_running_write(qtbot, tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as project:
        fill(project, 700)
        panel = CuratePanel()
        qtbot.addWidget(panel)
        panel.set_context(ProjectContext(project, panel))
        panel.scope.setCurrentIndex(panel.scope.findData("all"))
        panel.bulk_status(Status.ACCEPTED)
        job = panel._write_job
        assert job is not None and job.running
        panel.shutdown()
        assert job.state == "cancelled" and not panel.busy and panel.undo_stack().count() == 0
        panel.set_context(None)


def test_no_match_hint_and_plural_counts(panel: CuratePanel) -> None:
    panel.search.setText("nosuchwordanywhere")
    panel.apply_filters()
    assert panel.count_label.text() == "0 samples"
    assert panel.empty_hint.isVisibleTo(panel) and panel.empty_hint.text().startswith("No sample matches")
    panel.set_filters(SampleQuery(search="task17"))
    assert panel.count_label.text() == "1 sample" and not panel.empty_hint.isVisibleTo(panel)


# -- in the window ---------------------------------------------------------------------------------
def _window(qtbot, tmp_path: Path):
    from PySide6.QtCore import QSettings

    from studio.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "w", create_if_missing=True)
    window.show()
    keys = [spec.key for spec in window.specs]
    window.nav.setCurrentRow(keys.index("curate"))
    return window, window.panel("curate")


def test_import_refreshes_curate_and_a_curate_accept_refreshes_the_status_bar(qtbot, tmp_path: Path) -> None:
    import json

    window, panel = _window(qtbot, tmp_path)
    assert panel.model.rowCount() == 0 and "No samples yet" in panel.empty_hint.text()
    data = tmp_path / "three.json"
    data.write_text(json.dumps([{"instruction": f"Say {n}.", "input": "", "output": str(n)} for n in range(3)]))
    window.import_samples_from(data)  # File ▸ Import Samples: the table follows samples_changed alone
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=10_000)
    assert panel.count_label.text() == "3 samples" and not panel.empty_hint.isVisibleTo(panel)
    qtbot.waitUntil(lambda: "3 samples (0 accepted, 3 pending" in window.counts_label.text(), timeout=10_000)
    panel.table.setFocus()
    panel._select_row(0)
    qtbot.keyClick(panel.table, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: "3 samples (1 accepted, 2 pending" in window.counts_label.text(), timeout=10_000)
    assert [a.text() for a in panel.menu_actions()] == ["Find", "Trash…", "Find Duplicates", "Snapshots…"]
    window.close()


def test_undoing_a_big_delete_whose_batch_was_emptied_says_so_and_drops_the_step(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    _answer(monkeypatch, [QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.Yes], [])
    with Project.create(tmp_path / "p") as project:
        fill(project, 600)
        panel = CuratePanel()
        qtbot.addWidget(panel)
        context = ProjectContext(project, panel)
        panel.set_context(context)
        panel.scope.setCurrentIndex(panel.scope.findData("all"))
        panel.bulk_delete()
        qtbot.waitUntil(lambda: not panel.busy and panel.undo_stack().count() == 1, timeout=10_000)
        dialog = panel.open_trash()
        dialog.empty(None)  # confirmed: gone for good
        qtbot.waitUntil(lambda: not panel.busy and project.trash.batches() == [], timeout=10_000)
        with qtbot.waitSignal(context.problem, timeout=10_000) as problem:
            panel.undo_stack().undo()
        assert problem.args[0].startswith("Could not undo “delete 600 samples”: No trash batch")
        qtbot.waitUntil(lambda: not panel.busy, timeout=5000)
        assert project.samples.count() == 0 and panel.undo_stack().command(0).isObsolete()
        panel.set_context(None)


def test_writes_from_elsewhere_keep_the_reviewers_place_and_a_hidden_panel_catches_up(qtbot, panel, project) -> None:
    from studio.core.samples import Sample

    panel._select_row(3)
    shown = panel._current_id
    panel.output_edit.setPlainText("an edit in progress")
    before = panel.model.rowCount()
    with project.worker() as handle:  # a generation run commits a sample
        handle.samples.add(Sample("A freshly generated instruction here.", output="new"))
    qtbot.waitUntil(lambda: panel.model.rowCount() == before + 1, timeout=5000)
    assert panel._current_id == shown and panel.table.currentIndex().row() == 3
    assert panel.output_edit.toPlainText() == "an edit in progress"  # not overwritten by the refresh
    panel.hide()
    with project.worker() as handle:
        handle.samples.add(Sample("Another generated instruction here.", output="new"))
    qtbot.wait(700)
    assert panel.model.rowCount() == before + 1  # hidden: no work on the GUI thread
    panel.show()
    qtbot.waitUntil(lambda: panel.model.rowCount() == before + 2, timeout=5000)


def test_a_small_delete_says_where_the_samples_went(qtbot, panel) -> None:
    said: list[str] = []
    panel.status_message.connect(said.append)
    panel._select_row(0)
    panel.bulk_delete()
    assert said == ["Moved 1 sample to the Trash: Ctrl+Z undoes, Curate ▸ Trash… restores."]


def _cut_widgets(panel) -> list[str]:
    """Visible labels, buttons and boxes of ``panel`` narrower than they need, or past its right edge."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLabel, QLineEdit

    from studio.ui.elided_label import ElidedLabel

    cut = []
    kinds = (QLabel, QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit)
    for widget in (w for kind in kinds for w in panel.findChildren(kind)):
        if not widget.isVisible() or widget.window() is not panel.window() or isinstance(widget, ElidedLabel):
            continue
        if isinstance(widget, QLabel):
            if not widget.text() or widget.wordWrap():
                continue
            need = widget.sizeHint().width()
        else:
            need = max(widget.minimumSizeHint().width(), widget.minimumWidth())
        right = widget.mapTo(panel, QPoint(widget.width(), 0)).x()
        if widget.width() < need or right > panel.width():
            cut.append(f"{type(widget).__name__} {getattr(widget, 'text', lambda: '')()!r}: {widget.width()} < {need}"
                       f" or right {right} > {panel.width()}")
    return cut


@pytest.mark.parametrize("size", [(1280, 800), (720, 480)])
def test_nothing_in_curate_is_clipped_at_the_minimum_window_size(qtbot, tmp_path: Path, size) -> None:
    from PySide6.QtCore import QSettings

    from studio.ui.curate_panel import KEYS_TIP, ROW_HEIGHT
    from studio.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p", create_if_missing=True)
    fill(window.project, 50)
    window.show()
    window.nav.setCurrentRow([s.key for s in window.specs].index("curate"))
    window.resize(*size)
    panel = window.panel("curate")
    qtbot.waitUntil(lambda: panel.isVisible() and window.width() == size[0], timeout=5_000)
    qtbot.wait(50)
    assert _cut_widgets(panel) == []
    assert panel.table.viewport().height() >= 5 * ROW_HEIGHT  # the table keeps room for rows
    assert panel.keys_hint.toolTip() == KEYS_TIP  # elided or not, every key is a hover away
    assert panel.filters_box.isVisible() == (size == (1280, 800))  # short: the filter rows start folded
    panel.filters_button.click()  # the user's choice wins over the automatic folding
    qtbot.wait(20)
    assert panel.filters_box.isVisible() == (size != (1280, 800))
    assert _cut_widgets(panel) == []
    window.close()


def test_the_charts_follow_a_theme_change_while_the_app_runs(qtbot) -> None:
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QApplication

    from studio.ui import theme
    from studio.ui.data_shape_widget import DataShapeWidget

    app = QApplication.instance()
    before = (app.palette(), app.styleSheet(), app.style().name())
    theme.apply_theme(app, "light")
    try:
        widget = DataShapeWidget()
        qtbot.addWidget(widget)
        widget.show()
        chart = widget.charts["status"]
        assert chart.backgroundBrush().color() == QColor(theme.colors("light")["base"])
        theme.apply_theme(app, "dark")
        qtbot.waitUntil(lambda: chart.backgroundBrush().color() == QColor(theme.colors("dark")["base"]), timeout=2_000)
        dark_text = QColor(theme.colors("dark")["text"])
        for plot in (*widget.charts.values(), widget.verbs_chart):
            assert plot.backgroundBrush().color() == QColor(theme.colors("dark")["base"])
            assert plot.getPlotItem().getAxis("bottom").textPen().color() == dark_text
    finally:
        app.setPalette(before[0])
        app.setStyleSheet(before[1])


def test_dialog_dates_stay_on_one_line(qtbot, panel: CuratePanel, project: Project) -> None:
    panel._select_row(0)
    panel.bulk_delete()
    qtbot.waitUntil(lambda: not panel.busy and project.trash.batches() != [], timeout=5_000)
    trash = panel.open_trash()
    qtbot.waitUntil(lambda: trash.table.rowCount() == 1, timeout=5_000)
    when = trash.table.item(0, 1)
    assert not trash.table.wordWrap()
    assert trash.table.columnWidth(1) >= trash.table.fontMetrics().horizontalAdvance(when.text())
    trash.close()
    snapshots = panel.open_snapshots()
    project.snapshots.create("first")
    snapshots.reload()
    assert not snapshots.table.wordWrap() and snapshots.table.rowCount() == 1
    created = snapshots.table.item(0, 4)
    assert snapshots.table.columnWidth(4) >= snapshots.table.fontMetrics().horizontalAdvance(created.text())
    snapshots.close()


def test_duplicates_says_what_to_do_when_there_are_no_samples(qtbot, project: Project) -> None:
    from studio.ui.duplicates_widget import NO_SAMPLES, NONE_FOUND, DuplicatesWidget

    widget = DuplicatesWidget()
    qtbot.addWidget(widget)
    widget.set_curation(project.curation)
    widget.search_finished()
    assert widget.status.text() == NO_SAMPLES and "threshold" not in NO_SAMPLES
    fill(project, 5)
    widget.show_clusters()
    assert widget.status.text() == NONE_FOUND


def test_the_filters_button_counts_the_filters_in_force(qtbot, panel: CuratePanel) -> None:
    panel.set_filters_shown(False)  # folded away: the button is all the user sees of them
    assert panel.filters_button.text() == "Filters"
    panel.set_filters(SampleQuery(statuses=("accepted",), instruction_words=(3, None)))
    assert panel.filters_button.text() == "Filters (2)"
    panel.set_filters(SampleQuery(search="word"))
    assert panel.filters_button.text() == "Filters"
