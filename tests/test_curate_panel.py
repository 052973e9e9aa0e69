"""The Curate panel, driven like a reviewer: keys, bulk actions, undo, edits, duplicates, charts."""
from __future__ import annotations

import sys
import types
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
    widget.set_context(ProjectContext(project))
    widget.resize(1200, 700)
    widget.show()
    yield widget
    widget.shutdown()


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


def test_duplicates_found_in_a_worker_and_resolved_in_one_action(qtbot, tmp_path: Path, monkeypatch) -> None:
    try:
        import studio.core.dedup  # noqa: F401
    except ImportError:  # until the dedup branch lands: exact-instruction clusters stand in
        module = types.ModuleType("studio.core.dedup")

        def cluster(texts: list[str], threshold: float = 0.7) -> list[list[int]]:
            groups: dict[str, list[int]] = {}
            for n, text in enumerate(texts):
                groups.setdefault(text.rstrip(".!"), []).append(n)
            return list(groups.values())

        module.cluster = cluster
        monkeypatch.setitem(sys.modules, "studio.core.dedup", module)
    with Project.create(tmp_path / "p") as project:
        project.samples.add_many([Sample("Name three primary colours.", "", "a"), Sample("Name three primary colours!", "", "b"),
                                  Sample("Name three primary colours", "", "c"), Sample("Translate hello.", "", "d")])
        panel = CuratePanel()
        qtbot.addWidget(panel)
        panel.set_context(ProjectContext(project))
        panel.tabs.setCurrentWidget(panel.duplicates)
        panel.duplicates.find()  # clusters in a worker thread
        qtbot.waitUntil(lambda: panel.duplicates.clusters.count() == 1, timeout=10_000)
        assert panel.duplicates.clusters.item(0).text().startswith("3 samples")
        keep_buttons = [b for b in panel.duplicates.members.findChildren(type(panel.duplicates.find_button))
                        if b.text().startswith("Keep")]
        keep_buttons[1].click()
        assert [status_of(project, i) for i in (1, 2, 3, 4)] == ["rejected", "accepted", "rejected", "pending"]
        panel.undo_stack().undo()
        assert {status_of(project, i) for i in (1, 2, 3)} == {"pending"}
        panel.set_filters(SampleQuery(duplicates=True))
        assert panel.model.rowCount() == 3
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
    panel.set_filters(SampleQuery())
    panel.views.setCurrentText("math ok")
    panel._on_views_activated(0)
    assert panel.model.rowCount() == project.curation.count(SampleQuery(statuses=("accepted",), tag="math"))

    from studio.ui.snapshot_dialog import SnapshotDialog

    dialog = SnapshotDialog(project, panel.current_query())
    qtbot.addWidget(dialog)
    dialog.create_snapshot("maths", use_filter=True)  # freezing runs in a worker
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=10_000)
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
