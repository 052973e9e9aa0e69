"""The main window and its Seeds panel (offscreen): edit, persist, undo, redo, keyboard use,
lazy panels, and the window's Ctrl+Z reaching whichever panel is shown; then the panel alone on
a project context: the shared undo command, and the list following writes made anywhere."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from studio.core.project import Project
from studio.core.seeds import Instance, SeedTask
from studio.ui.change_command import ChangeCommand
from studio.ui.main_window import MainWindow
from studio.ui.project_context import ProjectContext
from studio.ui.seeds_panel import EMPTY_PROJECT_HINT, SeedsPanel


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: shown.append(f"{title}: {text}"))
    return shown


@pytest.fixture
def make_window(qtbot, tmp_path: Path, warnings):
    """Factory for hidden-then-shown main windows on temporary settings; closed at teardown."""
    windows: list[MainWindow] = []

    def make(project_dir: Path | None = None) -> MainWindow:
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings)
        qtbot.addWidget(window)
        window.show()
        window.activateWindow()  # window shortcuts (Ctrl+Z, Ctrl+N ...) need the active window
        qtbot.waitUntil(window.isActiveWindow)
        window.open_initial_project(project_dir or tmp_path / "project")
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def db_seed(root: Path, seed_id: int):
    with Project.open(root, exclusive=False) as project:
        return project.seeds.get(seed_id)


def test_window_opens_the_project_with_default_seeds(make_window, tmp_path: Path, qtbot) -> None:
    window = make_window()
    panel = window.panels[0]
    assert window.windowTitle() == "project — Distill Studio"
    assert panel.model.rowCount() >= 40
    assert panel.editor.isEnabled() and panel.editor.instruction_edit.toPlainText()
    qtbot.waitUntil(lambda: "seed tasks" in window.counts_label.text(), timeout=5000)  # counted in a worker
    assert "seed tasks" in window.counts_label.text()


def test_edit_is_persisted_at_once_and_undo_redo_walk_it(make_window, tmp_path: Path, qtbot) -> None:
    window = make_window()
    panel = window.panels[0]
    seed_id = panel.current_seed_id()
    original = db_seed(tmp_path / "project", seed_id).instruction
    panel.editor.instruction_edit.setFocus()
    panel.editor.instruction_edit.moveCursor(panel.editor.instruction_edit.textCursor().MoveOperation.End)
    qtbot.keyClicks(panel.editor.instruction_edit, " Be brief.")
    assert db_seed(tmp_path / "project", seed_id).instruction == original + " Be brief."
    assert panel.undo_stack().count() == 1  # keystrokes in one field merge into one step

    qtbot.keyClick(panel.editor.instruction_edit, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert db_seed(tmp_path / "project", seed_id).instruction == original
    assert panel.editor.instruction_edit.toPlainText() == original

    qtbot.keyClick(panel.editor.instruction_edit, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert db_seed(tmp_path / "project", seed_id).instruction == original + " Be brief."
    assert panel.editor.instruction_edit.toPlainText() == original + " Be brief."


def test_fields_instances_flag_and_tags_persist(make_window, tmp_path: Path, qtbot) -> None:
    window = make_window()
    panel = window.panels[0]
    seed_id = panel.current_seed_id()
    before_instances = len(db_seed(tmp_path / "project", seed_id).instances)
    panel.add_instance_action.trigger()
    card = panel.editor._cards[-1]
    qtbot.keyClicks(card.input_edit, "new input")
    qtbot.keyClicks(card.output_edit, "new output")
    panel.editor.classification_box.click()
    panel.editor.tags_edit.setFocus()
    panel.editor.tags_edit.selectAll()
    qtbot.keyClicks(panel.editor.tags_edit, "alpha, beta")
    stored = db_seed(tmp_path / "project", seed_id)
    assert len(stored.instances) == before_instances + 1
    assert (stored.instances[-1].input, stored.instances[-1].output) == ("new input", "new output")
    assert stored.tags == ["alpha", "beta"]
    while panel.undo_stack().canUndo():
        panel.undo_stack().undo()
    assert len(db_seed(tmp_path / "project", seed_id).instances) == before_instances


def test_validation_is_shown_inline(make_window, qtbot) -> None:
    panel = make_window().panels[0]
    panel.editor.instruction_edit.setPlainText("")
    assert panel.editor.problems_label.isVisible()
    assert "instruction is empty" in panel.editor.problems_label.text()
    assert panel.editor.instruction_edit.property("invalid") is True
    panel.editor._cards[0].output_edit.setPlainText("")
    assert "Instance 1 has no output" in panel.editor.problems_label.text()
    panel.editor.instruction_edit.setPlainText("Fixed")
    assert panel.editor.instruction_edit.property("invalid") is False


def test_add_duplicate_delete_with_keyboard_and_undo(make_window, tmp_path: Path, qtbot) -> None:
    window = make_window()
    panel = window.panels[0]
    count = panel.model.rowCount()
    panel.list_view.setFocus()
    qtbot.keyClick(panel.list_view, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert panel.model.rowCount() == count + 1
    new_id = panel.current_seed_id()
    assert db_seed(tmp_path / "project", new_id) is not None
    assert "instruction is empty" in panel.editor.problems_label.text()

    panel.select_seed(panel.model.seed_at(0).id)
    first = panel.model.seed_at(0)
    panel.list_view.setFocus()
    qtbot.keyClick(panel.list_view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert panel.model.seed_at(1).instruction == first.instruction  # the copy sits right after
    assert panel.model.rowCount() == count + 2

    panel.select_seed(first.id)
    panel.list_view.setFocus()
    qtbot.keyClick(panel.list_view, Qt.Key.Key_Delete)
    assert db_seed(tmp_path / "project", first.id) is None
    panel.undo_stack().undo()
    restored = db_seed(tmp_path / "project", first.id)
    assert restored == first and panel.model.seed_at(0).id == first.id
    panel.undo_stack().redo()
    assert db_seed(tmp_path / "project", first.id) is None


def test_file_import_is_one_step_of_the_windows_undo(make_window, tmp_path: Path, qtbot) -> None:
    window = make_window()
    panel = window.panels[0]
    count = panel.model.rowCount()
    path = tmp_path / "two.jsonl"
    path.write_text("".join(
        '{"id": "t%d", "instruction": "Imported task %d.", "instances": [{"input": "", "output": "ok"}]}\n' % (n, n)
        for n in range(2)
    ))
    window.import_seeds_from(path)  # File ▸ Import Seed Tasks without the dialog
    qtbot.waitUntil(lambda: panel.model.rowCount() == count + 2, timeout=5000)
    assert panel.editor.instruction_edit.toPlainText() == "Imported task 0."
    assert window.statusBar().currentMessage() == "Imported 2 seed tasks from two.jsonl"
    panel.list_view.setFocus()
    qtbot.keyClick(panel.list_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.model.rowCount() == count


def test_search_filters_the_list(make_window, qtbot) -> None:
    panel = make_window().panels[0]
    total = panel.model.rowCount()
    panel.find_action.trigger()
    qtbot.keyClicks(panel.search_edit, "zzz-no-such-seed")
    qtbot.waitUntil(lambda: panel.model.rowCount() == 0)
    assert "0 of" in panel.count_label.text()
    qtbot.keyClick(panel.search_edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: panel.model.rowCount() == total)


def test_edits_survive_closing_and_reopening(make_window, tmp_path: Path) -> None:
    window = make_window()
    panel = window.panels[0]
    seed_id = panel.current_seed_id()
    panel.editor.name_edit.setText("renamed_task")
    panel.editor.name_edit.textEdited.emit("renamed_task")
    window.close()
    reopened = make_window()
    assert reopened.panels[0].model.seed_at(reopened.panels[0].model.row_of(seed_id)).name == "renamed_task"


def test_second_instance_on_the_same_project_gets_a_clear_message(make_window, tmp_path: Path, warnings) -> None:
    first = make_window()
    second = make_window()
    assert first.project is not None
    assert second.project is None
    assert len(warnings) == 1 and "already open in another Distill Studio process" in warnings[0]
    assert second.stack.currentWidget() is second.no_project_label


def test_geometry_is_remembered(make_window, qtbot) -> None:
    window = make_window()
    window.resize(760, 530)  # the offscreen screen is 800x600: stay inside it
    window.close()
    again = make_window()
    assert (again.width(), again.height()) == (760, 530)


def test_theme_switch_changes_the_palette(make_window) -> None:
    from PySide6.QtWidgets import QApplication

    window = make_window()
    window.set_theme("dark")
    dark = QApplication.instance().palette().window().color().lightness()
    window.set_theme("light")
    light = QApplication.instance().palette().window().color().lightness()
    assert dark < 80 < light
    assert window.settings.value("theme") == "light"


def test_panels_other_than_seeds_are_built_on_first_visit(make_window, qtbot) -> None:
    window = make_window()
    assert [p is not None for p in window.panels] == [True] + [False] * (len(window.panels) - 1)
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    curate = window.panels[2]
    assert curate is not None and window.stack.currentWidget() is curate
    assert curate.project is window.project  # the open project was handed over
    assert window.undo_group.activeStack() is curate.undo_stack()


def test_window_undo_reaches_the_curate_panel(make_window, qtbot, tmp_path: Path) -> None:
    from curate_data import fill

    window = make_window()
    fill(window.project, 30)
    window.nav.setCurrentRow(2)
    curate = window.panels[2]
    curate.table.setFocus()
    curate.table.selectRow(0)
    sample_id = curate.model.sample_id(0)
    qtbot.keyClick(curate.table, Qt.Key.Key_R)  # reject
    assert window.project.samples.get(sample_id).status.value == "rejected"
    qtbot.keyClick(curate.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.project.samples.get(sample_id).status.value != "rejected"
    qtbot.keyClick(curate.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.project.samples.get(sample_id).status.value == "rejected"


# -- the panel alone, on a project context: the shared undo command and refreshes from any writer --


def task(text: str, output: str = "ok") -> SeedTask:
    return SeedTask(instruction=text, instances=[Instance("", output)])


@pytest.fixture
def context(project: Project):
    ctx = ProjectContext(project)
    yield ctx
    ctx.close()


@pytest.fixture
def panel(qtbot, context: ProjectContext) -> SeedsPanel:
    context.project.seeds.add_many([task("Alpha task."), task("Beta task."), task("Gamma task.")])
    widget = SeedsPanel()
    qtbot.addWidget(widget)
    widget.set_context(context)
    widget.show()
    return widget


def shown(panel: SeedsPanel) -> list[str]:
    return [panel.model.seed_at(row).instruction for row in range(panel.model.rowCount())]


def test_undo_and_redo_go_through_the_shared_change_command(panel: SeedsPanel, context: ProjectContext, qtbot) -> None:
    project = context.project
    ids = [s.id for s in project.seeds.list()]
    panel.select_seed(ids[1])
    panel.delete_selected()
    assert shown(panel) == ["Alpha task.", "Gamma task."] and panel.current_seed_id() == ids[2]
    panel.add_seed()
    new_id = panel.current_seed_id()
    assert all(type(panel.undo_stack().command(i)) is ChangeCommand for i in range(2))
    assert [panel.undo_stack().text(i) for i in range(2)] == ["Delete seed task", "New seed task"]

    with qtbot.waitSignal(context.seeds_changed):  # an undo tells every view, not only this panel
        panel.undo_stack().undo()
    assert project.seeds.get(new_id) is None
    panel.undo_stack().undo()
    assert shown(panel) == ["Alpha task.", "Beta task.", "Gamma task."]
    assert panel.current_seed_id() == ids[1] and panel.editor.instruction_edit.toPlainText() == "Beta task."
    panel.undo_stack().redo()
    panel.undo_stack().redo()
    assert [s.id for s in project.seeds.list()] == [ids[0], ids[2], new_id]  # redo restores the same id


def test_typing_merges_into_one_step_and_a_refresh_never_rewrites_it(panel: SeedsPanel, context: ProjectContext, qtbot) -> None:
    seed_id = panel.current_seed_id()
    tags = panel.editor.tags_edit
    tags.setFocus()
    qtbot.keyClicks(tags, "alpha, ")
    with qtbot.waitSignal(context.seeds_changed):  # the list refreshes while the user pauses
        context.flush()
    assert tags.text() == "alpha, "  # the stored tags are ["alpha"]; the field keeps what was typed
    qtbot.keyClicks(tags, "beta")
    assert context.project.seeds.get(seed_id).tags == ["alpha", "beta"]
    assert panel.undo_stack().count() == 1 and panel.undo_stack().text(0) == "Edit tags"
    panel.undo_stack().undo()
    assert context.project.seeds.get(seed_id).tags == [] and tags.text() == ""


def test_the_list_follows_writes_made_elsewhere(panel: SeedsPanel, context: ProjectContext, qtbot) -> None:
    project = context.project
    with qtbot.waitSignal(context.seeds_changed):
        added = project.seeds.create(task("Delta task, from a script."))
    assert shown(panel)[-1] == "Delta task, from a script."
    current = panel.current_seed_id()
    assert current == project.seeds.list()[0].id

    def delete_on_a_worker_thread() -> None:
        with project.worker() as handle:
            handle.seeds.delete(current)

    worker = threading.Thread(target=delete_on_a_worker_thread)
    with qtbot.waitSignal(context.seeds_changed):
        worker.start()
        worker.join()
    assert "Alpha task." not in shown(panel)
    assert panel.current_seed_id() == project.seeds.list()[0].id  # the neighbour is shown instead
    assert panel.editor.instruction_edit.toPlainText() == "Beta task."

    edited = project.seeds.require(added.ids[0])
    edited.instruction = "Delta, renamed elsewhere."
    with qtbot.waitSignal(context.seeds_changed):
        project.seeds.edit(edited)
    assert shown(panel)[-1] == "Delta, renamed elsewhere."


def test_an_edit_that_leaves_the_search_keeps_the_seed_in_view(panel: SeedsPanel, context: ProjectContext, qtbot) -> None:
    panel.search_edit.setText("Beta")
    qtbot.waitUntil(lambda: shown(panel) == ["Beta task."])
    panel.select_seed(panel.model.seed_at(0).id)
    beta = panel.current_seed_id()
    panel.editor.instruction_edit.selectAll()
    with qtbot.waitSignal(context.seeds_changed):
        qtbot.keyClicks(panel.editor.instruction_edit, "Second")
    assert panel.current_seed_id() == beta and panel.editor.instruction_edit.toPlainText() == "Second"
    assert shown(panel) == ["Second"]
    panel.search_edit.setText("Gamma")  # a new search is a new list
    qtbot.waitUntil(lambda: shown(panel) == ["Gamma task."])


def test_import_is_one_undoable_step(panel: SeedsPanel, context: ProjectContext, qtbot) -> None:
    job = panel.import_seeds([task(f"Imported {n}.") for n in range(5)], "five.jsonl")
    with qtbot.waitSignal(job.succeeded, timeout=5000):
        pass
    assert len(shown(panel)) == 8 and panel.editor.instruction_edit.toPlainText() == "Imported 0."
    imported = [s.id for s in context.project.seeds.list()][3:]
    assert panel.undo_stack().text(panel.undo_stack().count() - 1) == "Import 5 seed tasks"
    panel.undo_stack().undo()
    assert len(shown(panel)) == 3
    panel.undo_stack().redo()
    assert [s.id for s in context.project.seeds.list()][3:] == imported


def test_empty_states_say_what_to_do(qtbot, tmp_path: Path) -> None:
    with Project.create(tmp_path / "empty") as project:
        ctx = ProjectContext(project)
        widget = SeedsPanel()
        qtbot.addWidget(widget)
        widget.set_context(ctx)
        widget.show()
        assert widget.list_stack.currentWidget() is widget.empty_label
        assert widget.empty_label.text() == EMPTY_PROJECT_HINT and "Ctrl+N" in EMPTY_PROJECT_HINT
        widget.add_seed()
        assert widget.list_stack.currentWidget() is widget.list_view
        widget.search_edit.setText("no such words")
        qtbot.waitUntil(lambda: widget.list_stack.currentWidget() is widget.empty_label)
        assert "No seed task matches “no such words”" in widget.empty_label.text()
        widget.set_context(None)
        ctx.close()


def test_an_unnamed_seed_counts_its_instances_in_proper_english() -> None:
    from studio.ui.seeds_panel import SeedListModel

    model = SeedListModel()
    model.set_seeds([SeedTask("Say hi.", [Instance("", "hi")]), SeedTask("Say hi twice.", [Instance(), Instance()])])
    assert model.data(model.index(0)).endswith("\n1 instance")
    assert model.data(model.index(1)).endswith("\n2 instances")


@pytest.mark.parametrize("size", [(1280, 800), (720, 480)])
def test_the_seed_editor_stays_usable_at_the_minimum_window_size(make_window, qtbot, size) -> None:
    from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit, QScrollArea

    window = make_window()
    window.resize(*size)
    panel = window.panels[0]
    qtbot.waitUntil(lambda: window.width() == size[0] and panel.model.rowCount() > 0, timeout=5_000)
    qtbot.wait(50)
    scroll = panel.editor.findChild(QScrollArea)
    assert not scroll.horizontalScrollBar().isVisible()  # it never scrolls sideways
    assert scroll.widget().width() <= scroll.viewport().width()
    assert panel.editor.width() >= 240  # wider than the list's minimum: a usable form, not a sliver
    assert panel.editor.instruction_edit.width() >= 200
    for label in panel.findChildren(QLabel):
        if label.isVisible() and label.text() and not label.wordWrap():
            assert label.width() >= label.sizeHint().width(), (size, label.text(), label.width())
    for widget in [*panel.findChildren(QAbstractButton), *panel.findChildren(QLineEdit)]:
        if widget.isVisible():
            assert widget.width() >= widget.minimumSizeHint().width(), (size, type(widget).__name__)
