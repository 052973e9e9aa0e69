"""The Evaluate panel end to end: prompt sets, a run against loopback fake systems and judge, results, votes, seeds.

Real Qt (pytest-qt), real SQLite, real HTTP through the real ``openai`` client to loopback fakes
(tests/fake_eval_endpoints.py); the panel's work runs on its job runner as in the app.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

pytest.importorskip("pytestqt")
sys.path.insert(0, str(Path(__file__).parent))

from studio.core.evaluation.model import DONE, STOPPED, EvalPrompt, EvaluationError
from studio.core.project import Project
from studio.ui import eval_work
from studio.ui.evaluate_panel import (
    COMPARE,
    NEW,
    RESULTS,
    SETS,
    EvaluatePanel,
    evaluation_text,
)
from studio.ui.project_context import ProjectContext

KEY_ENV = "STUDIO_TEST_EVAL_KEY"
WAIT_MS = 30_000


@pytest.fixture
def context(project: Project):
    ctx = ProjectContext(project)
    yield ctx
    ctx.close()


@pytest.fixture
def panel(qtbot, context: ProjectContext):
    widget = EvaluatePanel()
    qtbot.addWidget(widget)
    widget.resize(1280, 760)
    widget.new_page.server_control = None  # no local server in these tests: endpoints only
    widget.set_context(context)
    yield widget
    widget.shutdown()


class Answers:
    """What the panel's dialogs answer in a test."""

    def __init__(self, dialogs, **answers):
        self.calls: list[tuple] = []
        for name, value in answers.items():
            setattr(dialogs, name, self._answer(name, value))

    def _answer(self, name, value):
        def answer(*args):
            self.calls.append((name, *args))
            return value
        return answer


def write_prompts(path: Path, count: int, *, categories=("writing", "coding")) -> Path:
    lines = [json.dumps({"instruction": f"Write a short note about topic number {n}.",
                         "instances": [{"input": "" if n % 2 else f"Context {n}.", "output": f"Reference {n}."}],
                         "motivation_app": categories[n % len(categories)], "id": f"user_oriented_task_{n}"})
             for n in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def import_set(qtbot, panel: EvaluatePanel, path: Path) -> None:
    page = panel.sets_page
    Answers(page.dialogs, open_file=str(path))
    panel.show_page(SETS)
    page.import_action.trigger()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1 and page.preview.rowCount() > 0, timeout=WAIT_MS)


@pytest.fixture
def fake():
    from fake_eval_endpoints import API_KEY, MARKER, FakeEvalServer, echo_answer

    def marked(prompt: str) -> str:
        return f"A careful answer {MARKER} to: {prompt}"

    server = FakeEvalServer(answerers={"student": echo_answer, "teacher": marked},
                            judges={"judge-marker": "marker", "judge-first": "first"})
    with server:
        server.key = API_KEY
        yield server


def point_at(panel: EvaluatePanel, fake, judge: str | None, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, fake.key)
    page = panel.new_page
    page.pickers[0].choose(other=(fake.base_url, "student", KEY_ENV))
    page.pickers[1].choose(other=(fake.base_url, "teacher", KEY_ENV))
    if judge is None:
        page.judge.choose_none()
    else:
        page.judge.choose_other(fake.base_url, judge, KEY_ENV)
    page.concurrency.setValue(4)


def run_to_end(qtbot, panel: EvaluatePanel) -> None:
    page = panel.new_page
    page.start_action.trigger()
    qtbot.waitUntil(lambda: page.job is not None or panel.messages.is_shown(), timeout=WAIT_MS)
    assert not panel.messages.is_shown(), panel.messages.message()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)


# -- the pages and their keys ----------------------------------------------------------------------------
def test_every_action_has_a_key_and_the_pages_switch_by_key(panel: EvaluatePanel) -> None:
    actions = [*panel.page_actions, panel.new_action, panel.like_action, panel.continue_action, panel.rename_action, panel.delete_action,
               panel.sets_page.import_action, panel.sets_page.split_action, panel.sets_page.rename_action,
               panel.sets_page.delete_action, panel.sets_page.evaluate_action, panel.new_page.start_action,
               panel.new_page.stop_action, panel.new_page.add_system_action, panel.results_page.export_action,
               panel.results_page.seeds_action, panel.results_page.nearest_action, panel.results_page.refresh_action]
    for action in actions:
        assert not action.shortcut().isEmpty(), action.text()
        assert action.shortcut().toString(QKeySequence.SequenceFormat.NativeText) in action.toolTip()
    for index in (RESULTS, COMPARE, NEW, SETS):
        panel.page_actions[index].trigger()
        assert panel.tabs.currentIndex() == index
    assert panel.list_view.hint_shown() and "No evaluations yet" in panel.list_view.hint.text()


def test_the_panel_claims_the_import_key_from_the_window_menu(qtbot, panel: EvaluatePanel, tmp_path) -> None:
    """File ▸ Import Seed Tasks is Ctrl+I too: with the focus in Prompt sets, Ctrl+I imports a prompt set."""
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    asked = Answers(panel.sets_page.dialogs, open_file="")
    panel.show_page(SETS)
    event = QKeyEvent(QKeyEvent.Type.ShortcutOverride, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    QApplication.sendEvent(panel.sets_page.table, event)
    assert event.isAccepted() and asked.calls and asked.calls[0][0] == "open_file"


def test_start_says_what_is_missing(qtbot, panel: EvaluatePanel) -> None:
    panel.show_page(NEW)
    panel.new_page.start_action.trigger()
    assert panel.messages.is_shown() and "No prompt set" in panel.messages.message()
    assert panel.new_page.job is None


# -- prompt sets -------------------------------------------------------------------------------------
def test_prompt_sets_import_preview_rename_and_delete(qtbot, panel: EvaluatePanel, project: Project, tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "user_oriented.jsonl", 6))
    page = panel.sets_page
    assert page.table.item(0, 1).text() == "6" and "writing" in page.table.item(0, 3).text()
    assert "evaluation only" in panel.messages.message()
    assert page.preview.rowCount() == 6 and "topic number 0" in page.preview.item(0, 2).text()
    page.preview.selectRow(1)
    assert "Reference 1." in page.detail.toPlainText()
    # The New evaluation page offers the set.
    assert panel.new_page.prompt_set.count() == 1 and "6 prompts" in panel.new_page.prompt_set.itemText(0)

    Answers(page.dialogs, text="self-instruct 252")
    page.rename_action.trigger()
    qtbot.waitUntil(lambda: page.table.item(0, 0).text() == "self-instruct 252", timeout=WAIT_MS)
    assert project.prompt_sets.list()[0].name == "self-instruct 252"

    asked = Answers(page.dialogs, confirm=False)
    page.delete_action.trigger()
    assert asked.calls and project.prompt_sets.list()
    Answers(page.dialogs, confirm=True)
    page.delete_action.trigger()
    qtbot.waitUntil(lambda: page.table.rowCount() == 0, timeout=WAIT_MS)
    assert page.sets_view.hint_shown() and not project.prompt_sets.list()


def test_a_malformed_prompt_file_is_one_clear_message(qtbot, panel: EvaluatePanel, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "fine"}\n{not json\n', encoding="utf-8")
    Answers(panel.sets_page.dialogs, open_file=str(bad))
    panel.sets_page.import_action.trigger()
    qtbot.waitUntil(panel.messages.is_shown, timeout=WAIT_MS)
    assert "bad.jsonl" in panel.messages.message() and panel.messages.level == "error"
    assert panel.sets_page.table.rowCount() == 0


# -- a run against loopback fakes ----------------------------------------------------------------------
def test_a_run_with_a_marker_judge_shows_the_marked_system_winning(qtbot, panel: EvaluatePanel, project: Project,
                                                                   fake, monkeypatch, tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 6))
    point_at(panel, fake, "judge-marker", monkeypatch)
    page = panel.new_page
    qtbot.waitUntil(lambda: "answers and" in page.estimate_label.text(), timeout=WAIT_MS)
    assert "12 answers and 12 verdicts to fetch" in page.estimate_label.text()
    run_to_end(qtbot, panel)
    assert "Finished" in page.phase_label.text(), page.phase_label.text()
    evaluation = project.evaluations.latest()
    assert evaluation is not None and evaluation.status == DONE
    assert fake.requests_by_model["student"] == 6 and fake.requests_by_model["judge-marker"] == 12
    qtbot.waitUntil(lambda: panel.selected_id() == evaluation.id and "done" in panel.list.currentItem().data(Qt.ItemDataRole.UserRole + 1),
                    timeout=WAIT_MS)

    panel.show_page(RESULTS)
    results = panel.results_page
    qtbot.waitUntil(lambda: results.data is not None and results.data.judge is not None, timeout=WAIT_MS)
    pair = results.data.judge.pairs[0]
    assert (pair.n, pair.wins_a, pair.wins_b, pair.inconsistent) == (6, 0, 6, 0)
    assert results.table.rowCount() == 6 and results.table.item(0, 6).text() == "B"
    assert "certified good" in results.answer_b.toPlainText() and "[[B]]" in results.raw_judge.toPlainText() or \
        "B shown first" in results.raw_judge.toPlainText()
    assert "student" in results.meta.text() and "set hash" in results.meta.text()
    assert results.data.lost == 6 and results.seeds_action.isEnabled()

    # Export: CSV and JSON, with the result's identity.
    out = tmp_path / "result.json"
    Answers(results.dialogs, save_file=str(out))
    results.export_action.trigger()
    qtbot.waitUntil(out.exists, timeout=WAIT_MS)
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert "sk-fake" not in out.read_text(encoding="utf-8")
    assert json.dumps(exported).count("judge-marker") >= 1
    csv_out = tmp_path / "result.csv"
    Answers(results.dialogs, save_file=str(csv_out))
    results.export_action.trigger()
    qtbot.waitUntil(csv_out.exists, timeout=WAIT_MS)

    # The same systems, judge and settings again (Ctrl+D from a fresh form): a new evaluation that asks for nothing.
    before = fake.total_requests
    page.judge.choose_none()
    page.max_tokens.setValue(99)
    panel.like_action.trigger()
    assert panel.tabs.currentIndex() == NEW and page.max_tokens.value() == 512
    assert page.judge.other.config()[1] == "judge-marker"
    qtbot.waitUntil(lambda: "0 answers and 0 verdicts" in page.estimate_label.text(), timeout=WAIT_MS)
    run_to_end(qtbot, panel)
    assert fake.total_requests == before and "0 new answers (+12 cached)" in page.counters_label.text()
    qtbot.waitUntil(lambda: panel.list.count() == 2, timeout=WAIT_MS)
    panel.select_evaluation(evaluation.id)
    panel.show_page(RESULTS)
    qtbot.waitUntil(lambda: results.data is not None and results.data.evaluation.id == evaluation.id, timeout=WAIT_MS)

    # Lost prompts -> seeds: the confirmation says the prompts leave the set; seeds carry their origin.
    seeds_before = project.seeds.count()
    asked = Answers(results.dialogs, confirm=True)
    results.seeds_action.trigger()
    qtbot.waitUntil(lambda: project.seeds.count() == seeds_before + 6, timeout=WAIT_MS)
    assert "leave the evaluation-only set" in asked.calls[0][2]
    from studio.core.evaluation.lost import seed_origin

    new = [s for s in project.seeds.list() if f"eval-{evaluation.id}" in (s.tags or [])]
    assert len(new) == 6 and all("certified good" in s.instances[0].output for s in new)
    assert seed_origin(project.conn, new[0].id)["evaluation_id"] == evaluation.id
    assert project.prompt_sets.list()[0].prompt_count == 0  # they left the set
    # Sent once: the page stops offering the same prompts again (a second click added nothing yet said "6").
    qtbot.waitUntil(lambda: results.data.lost_sent == 6, timeout=WAIT_MS)
    assert not results.seeds_action.isEnabled() and "(0)" in results.seeds_action.text()
    assert "seed tasks already" in results.seeds_action.toolTip()
    with pytest.raises(EvaluationError, match="seed tasks already"):
        eval_work.lost_to_seeds(project, evaluation.id)


def test_a_judge_that_always_picks_the_first_position_gives_no_wins(qtbot, panel: EvaluatePanel, fake,
                                                                    monkeypatch, tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 4))
    point_at(panel, fake, "judge-first", monkeypatch)
    run_to_end(qtbot, panel)
    panel.show_page(RESULTS)
    results = panel.results_page
    qtbot.waitUntil(lambda: results.data is not None and results.data.judge is not None, timeout=WAIT_MS)
    pair = results.data.judge.pairs[0]
    assert (pair.wins_a, pair.wins_b, pair.inconsistent) == (0, 0, 4)
    assert pair.position_consistency == 0.0
    results.filter.setCurrentIndex(results.filter.findData("inconsistent"))
    assert results.table.rowCount() == 4 and results.table.item(0, 6).text() == "inconsistent"
    assert not results.seeds_action.isEnabled()  # the student lost nothing


def test_stop_keeps_the_answers_and_continue_asks_only_for_the_rest(qtbot, panel: EvaluatePanel, project: Project,
                                                                    fake, monkeypatch, tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 8))
    point_at(panel, fake, None, monkeypatch)
    fake.latency_s = 0.3
    page = panel.new_page
    page.concurrency.setValue(2)
    page.start_action.trigger()
    qtbot.waitUntil(lambda: fake.total_requests >= 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.selected_id() is not None, timeout=WAIT_MS)
    assert not panel.continue_action.isEnabled()  # one run at a time: Continue would do nothing now
    page.stop_action.trigger()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)
    evaluation = project.evaluations.latest()
    assert evaluation.status == STOPPED and "Stopped" in page.phase_label.text()
    assert page.phase_label.text().count("Stopped") == 1, page.phase_label.text()  # it said "Stopped. Stopped; …"
    assert fake.total_requests < 16
    fake.latency_s = 0.0
    qtbot.waitUntil(lambda: panel.selected_id() == evaluation.id and panel.continue_action.isEnabled(),
                    timeout=WAIT_MS)
    panel.continue_action.trigger()
    qtbot.waitUntil(lambda: page.job is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)
    assert project.evaluations.get(evaluation.id).status == DONE
    assert project.conn.execute("SELECT count(*) FROM eval_answers").fetchone()[0] == 16
    # What was stored before Stop was not asked again: at most the 2 requests in flight at Stop are paid twice.
    assert fake.total_requests <= 16 + 2


# -- blind human votes -----------------------------------------------------------------------------------
def test_votes_in_compare_persist_and_stay_blind_until_the_end(qtbot, panel: EvaluatePanel, project: Project,
                                                               fake, monkeypatch, tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 3))
    point_at(panel, fake, None, monkeypatch)
    run_to_end(qtbot, panel)
    evaluation = project.evaluations.latest()
    qtbot.waitUntil(lambda: panel.selected_id() == evaluation.id, timeout=WAIT_MS)
    panel.show_page(COMPARE)
    view = panel.compare_view
    qtbot.waitUntil(lambda: project.votes.progress(evaluation.id)[1] == 3, timeout=WAIT_MS)
    assert "student" not in _visible_text(view) and "teacher" not in _visible_text(view)
    for _ in range(3):
        decided = project.votes.progress(evaluation.id)[0]
        # The queue is in the database before the view shows its first vote: a key before that is ignored.
        qtbot.waitUntil(lambda: view.current is not None and view.current.pending, timeout=WAIT_MS)
        qtbot.keyClick(view, Qt.Key.Key_3)  # tie
        qtbot.waitUntil(lambda d=decided: project.votes.progress(evaluation.id)[0] == d + 1, timeout=WAIT_MS)
    assert project.votes.finished(evaluation.id)
    qtbot.waitUntil(lambda: "student" in _visible_text(view), timeout=WAIT_MS)  # the reveal names them
    panel.show_page(RESULTS)
    results = panel.results_page
    qtbot.waitUntil(lambda: results.data is not None and results.data.human is not None, timeout=WAIT_MS)
    assert results.data.human.pairs[0].ties == 3 and results.view.result is results.data.human  # votes only
    qtbot.waitUntil(lambda: "votes 3/3" in panel.list.currentItem().data(Qt.ItemDataRole.UserRole + 1),
                    timeout=WAIT_MS)


def _visible_text(widget) -> str:
    from PySide6.QtWidgets import (
        QAbstractButton,
        QLabel,
        QPlainTextEdit,
        QTextEdit,
        QWidget,
    )

    parts = []
    for child in widget.findChildren(QWidget):
        if not child.isVisibleTo(widget) or not isinstance(child, (QLabel, QPlainTextEdit, QTextEdit, QAbstractButton)):
            continue
        parts.append(child.toPlainText() if hasattr(child, "toPlainText") else child.text())
    return "\n".join(parts)


# -- small pieces --------------------------------------------------------------------------------------
def test_the_list_says_what_each_evaluation_is(project: Project) -> None:
    from studio.core.evaluation.model import EvalSettings, SystemSpec

    with project.conn:
        set_id = project.conn.execute("INSERT INTO eval_prompt_sets (name, content_hash, created_at)"
                                      " VALUES ('s', 'h', 0)").lastrowid
        prompt_id = project.conn.execute("INSERT INTO eval_prompts (set_id, position, instruction, prompt_hash)"
                                         " VALUES (?, 0, 'x', ?)", (set_id, EvalPrompt("x").hash)).lastrowid
    systems = [SystemSpec("endpoint", label=m, base_url="http://127.0.0.1:9/v1", model=m, key=m)
               for m in ("student", "teacher")]
    evaluation = project.evaluations.create(set_id=set_id, set_hash="h", prompt_ids=[prompt_id], systems=systems,
                                            judge=None, settings=EvalSettings(), name="")
    first, second = evaluation_text(eval_work.EvaluationRow(evaluation, 0, 0))
    assert first == f"#{evaluation.id} student vs teacher" and "1 prompt" in second and "no judge" in second


def test_a_run_handle_stops_an_engine_that_arrives_later() -> None:
    class Engine:
        stopped = False

        def stop(self) -> None:
            self.stopped = True

    handle = eval_work.RunHandle()
    handle.stop()
    engine = Engine()
    handle.attach(engine)
    assert engine.stopped


def test_the_same_system_twice_is_refused(qtbot, panel: EvaluatePanel, tmp_path, fake, monkeypatch) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 2))
    point_at(panel, fake, None, monkeypatch)
    panel.new_page.pickers[1].choose(other=(fake.base_url, "student", KEY_ENV))
    panel.new_page.start_action.trigger()
    qtbot.waitUntil(panel.messages.is_shown, timeout=WAIT_MS)
    assert "same model" in panel.messages.message()
    with pytest.raises(EvaluationError):
        panel.new_page.pickers[0].choose(other=("not a url", "m", ""))
        panel.new_page.pickers[0].spec()


def test_nearest_training_samples_open_in_curate(qtbot, tmp_path, fake, monkeypatch) -> None:
    """In the window: the lost prompts' nearest accepted samples (ROUGE-L) become Curate's filter."""
    from PySide6.QtCore import QSettings

    from studio.core.samples import Sample, Status
    from studio.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p", create_if_missing=True)
    window.show()
    project = window.project
    for n in range(4):
        project.samples.add(Sample(f"Write a short note about topic number {n} for a friend.", "", f"Note {n}.",
                                   status=Status.ACCEPTED))
    panel = window.show_panel("evaluate")
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 4))
    point_at(panel, fake, "judge-marker", monkeypatch)
    run_to_end(qtbot, panel)
    panel.show_page(RESULTS)
    results = panel.results_page
    qtbot.waitUntil(lambda: results.data is not None and results.nearest_action.isEnabled(), timeout=WAIT_MS)
    results.nearest_action.trigger()
    curate = window.panel("curate")
    qtbot.waitUntil(lambda: window.stack.currentWidget() is curate, timeout=WAIT_MS)
    evaluation = project.evaluations.latest()
    assert curate.nearest_button.isVisible() and f"#{evaluation.id}" in curate.nearest_button.text()
    stored = project.conn.execute("SELECT count(*) FROM eval_nearest WHERE evaluation_id = ?",
                                  (evaluation.id,)).fetchone()[0]
    assert stored >= 4
    # A run elsewhere publishes EVALUATIONS for every answer: Curate's table is reset only when these rows change.
    resets: list[int] = []
    curate.model.modelReset.connect(lambda: resets.append(1))
    qtbot.waitUntil(lambda: not curate.jobs.is_busy("curate-nearest"), timeout=WAIT_MS)
    for _ in range(5):
        curate.context.evaluations_changed.emit()
    qtbot.waitUntil(lambda: not curate.jobs.is_busy("curate-nearest"), timeout=WAIT_MS)
    qtbot.wait(50)
    assert resets == []
    with project.conn:
        project.conn.execute("DELETE FROM eval_nearest WHERE evaluation_id = ? AND sample_id = "
                             "(SELECT min(sample_id) FROM eval_nearest WHERE evaluation_id = ?)",
                             (evaluation.id, evaluation.id))
    curate.context.evaluations_changed.emit()
    qtbot.waitUntil(lambda: len(resets) == 1, timeout=WAIT_MS)
    window.close()


def test_a_trained_run_and_the_base_start_the_local_server_then_answer(qtbot, project: Project, context, tmp_path,
                                                                        monkeypatch) -> None:
    """Start with studio models and no server: the page starts it (the test's stand-in) and then runs."""
    from serve_support import base_folder, fake_program, trained_run

    trained_run(project, base_folder(tmp_path), name="first")
    widget = EvaluatePanel()
    qtbot.addWidget(widget)
    control = widget.new_page.server_control
    control.command_prefix, control.port, control.device = fake_program("--delay-ms", "1"), 0, "cpu"
    widget.set_context(context)
    try:
        import_set(qtbot, widget, write_prompts(tmp_path / "p.jsonl", 3))
        page = widget.new_page
        qtbot.waitUntil(lambda: {s.kind for s in page.sources} >= {"base", "run"}, timeout=WAIT_MS)
        page.pickers[0].choose(next(s for s in page.sources if s.kind == "run"))
        page.pickers[1].choose(next(s for s in page.sources if s.kind == "base"))
        page.judge.choose_none()
        page.start_action.trigger()
        assert "Starting the local server" in page.phase_label.text() and page.stop_action.isEnabled()
        qtbot.waitUntil(lambda: page.job is not None, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)
        assert "Finished" in page.phase_label.text(), (page.phase_label.text(), widget.messages.message())
        evaluation = project.evaluations.latest()
        texts = {row[0] for row in project.conn.execute("SELECT text FROM eval_answers")}
        assert evaluation.status == DONE and len(texts) == 6
        assert any(t.startswith("Hello from first") for t in texts) and any("tiny-base" in t for t in texts)
    finally:
        control.stop()
        qtbot.waitUntil(lambda: control.info() is None and control.state == "stopped", timeout=WAIT_MS)
        widget.shutdown()


def test_a_system_that_is_down_and_a_broken_template_are_said_plainly(qtbot, panel: EvaluatePanel, project: Project,
                                                                      fake, monkeypatch, tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 2))
    point_at(panel, fake, "judge-marker", monkeypatch)
    page = panel.new_page
    page.judge.template.setPlainText("Which is better, {answer_a} or {answer_b}?")
    page.start_action.trigger()
    assert "{instruction}" in panel.messages.message() and page.job is None
    page.judge.reset_template()
    page.attempts.setValue(1)  # a 500 is not retried: the test need not wait for the backoff
    fake.failing.add("teacher")
    page.start_action.trigger()
    qtbot.waitUntil(lambda: page.job is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)
    assert project.evaluations.latest().status == "failed"
    assert panel.messages.level == "error" and "teacher" in panel.messages.message()
    assert "Failed" in page.phase_label.text()


def test_a_snapshots_validation_split_becomes_a_prompt_set(qtbot, panel: EvaluatePanel, project: Project) -> None:
    from PySide6.QtWidgets import QDialog

    from studio.core.samples import Sample, Status

    for n in range(40):
        project.samples.add(Sample(f"Explain idea number {n} in plain words.", "", f"Idea {n}.",
                                   status=Status.ACCEPTED))
    snapshot = project.snapshots.create("v1")
    offered: list = []

    class Split:
        def __init__(self, snapshots, _parent):
            offered.extend(snapshots)

        def deleteLater(self):
            offered.append("deleted")

        def exec(self):
            return QDialog.DialogCode.Accepted

        def values(self):
            return snapshot.id, "held out", 42, 0.1, 1000

    page = panel.sets_page
    page.split_dialog = Split
    page.split_action.trigger()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=WAIT_MS)
    assert offered == [(snapshot.id, "v1", 40), "deleted"]  # the parented dialog does not pile up
    made = project.prompt_sets.get("held out")
    assert 1 <= made.prompt_count <= 40 and page.table.item(0, 0).text() == "held out"


def test_starting_a_run_scrolls_its_progress_into_view(qtbot, panel: EvaluatePanel, fake, monkeypatch,
                                                       tmp_path) -> None:
    """With three systems and a judge the Run box sits below the fold at 1280 x 800: Start must bring it up."""
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 4))
    point_at(panel, fake, "judge-marker", monkeypatch)
    page = panel.new_page
    page.add_system_action.trigger()
    page.pickers[2].choose(other=(fake.base_url, "teacher", KEY_ENV))
    panel.resize(1280, 640)
    panel.show()
    panel.show_page(NEW)
    from PySide6.QtWidgets import QScrollArea
    page.findChild(QScrollArea).verticalScrollBar().setValue(0)
    qtbot.waitUntil(lambda: page.progress.visibleRegion().isEmpty(), timeout=WAIT_MS)  # below the fold
    fake.latency_s = 0.2
    page.start_action.trigger()
    qtbot.waitUntil(lambda: not page.progress.visibleRegion().isEmpty(), timeout=WAIT_MS)
    fake.latency_s = 0.0
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)


def test_the_empty_list_says_the_next_step(qtbot, panel: EvaluatePanel, tmp_path) -> None:
    """Before a set: import one; after: set an evaluation up (it kept saying "Import a prompt set")."""
    assert "Import a prompt set" in panel.list_view.hint.text()
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 2))
    qtbot.waitUntil(lambda: "Import" not in panel.list_view.hint.text(), timeout=WAIT_MS)
    assert "New evaluation (Ctrl+N)" in panel.list_view.hint.text()


# -- refreshes, selection and project switches ------------------------------------------------------------
def stored_evaluation(project: Project, name: str = "") -> int:
    """An evaluation with one prompt and no judge, stored directly (no run)."""
    from studio.core.evaluation.model import EvalSettings, SystemSpec

    with project.conn:
        set_id = project.conn.execute("INSERT INTO eval_prompt_sets (name, content_hash, created_at)"
                                      " VALUES (?, 'h', 0)", (f"set {name}",)).lastrowid
        prompt_id = project.conn.execute("INSERT INTO eval_prompts (set_id, position, instruction, prompt_hash)"
                                         " VALUES (?, 0, 'x', ?)", (set_id, EvalPrompt("x").hash)).lastrowid
    systems = [SystemSpec("endpoint", label=m, base_url="http://127.0.0.1:9/v1", model=m, key=m)
               for m in ("student", "teacher")]
    return project.evaluations.create(set_id=set_id, set_hash="h", prompt_ids=[prompt_id], systems=systems,
                                      judge=None, settings=EvalSettings(), name=name).id


def test_list_refreshes_do_not_restart_the_results_read(qtbot, panel: EvaluatePanel, project: Project,
                                                        monkeypatch) -> None:
    import threading

    evaluation_id = stored_evaluation(project)
    panel.refresh_list()
    qtbot.waitUntil(lambda: panel.selected_id() == evaluation_id, timeout=WAIT_MS)
    real, calls, gate = eval_work.read_results, [], threading.Event()

    def slow_read(project, evaluation_id, **kwargs):
        calls.append(evaluation_id)
        gate.wait(10)
        return real(project, evaluation_id, **kwargs)

    monkeypatch.setattr(eval_work, "read_results", slow_read)
    panel.show_page(RESULTS)
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=WAIT_MS)
    for _ in range(5):  # a run's list refreshes: the same evaluation stays selected
        panel._fill(list(panel.rows))
    panel.results_page.refresh()  # the results timer while the read computes: one more read, after it
    panel.results_page.refresh()
    gate.set()
    qtbot.waitUntil(lambda: panel.results_page.data is not None and not panel.results_page.is_reading(),
                    timeout=WAIT_MS)
    qtbot.wait(50)
    assert calls == [evaluation_id, evaluation_id]


def test_a_run_of_the_previous_project_does_not_reach_the_next(qtbot, panel: EvaluatePanel, fake, monkeypatch,
                                                                tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 6))
    point_at(panel, fake, None, monkeypatch)
    fake.latency_s = 0.3
    page = panel.new_page
    page.concurrency.setValue(1)
    finished: list[int] = []
    page.run_finished.connect(finished.append)
    page.start_action.trigger()
    qtbot.waitUntil(lambda: page.job is not None and fake.total_requests >= 1, timeout=WAIT_MS)
    old_job = page.job
    with Project.create(tmp_path / "other") as other:
        other_context = ProjectContext(other)
        try:
            panel.set_context(other_context)
            assert not page.is_busy() and page.start_action.isEnabled()  # Start is not a silent no-op
            qtbot.waitUntil(lambda: not old_job.running, timeout=WAIT_MS)
            qtbot.wait(100)
            assert finished == [] and page.evaluation_id is None and panel.selected_id() is None
        finally:
            panel.set_context(None)
            other_context.close()


def test_alt_keys_follow_the_pickers_after_a_removal(panel: EvaluatePanel) -> None:
    page = panel.new_page
    third, fourth = page.add_system(), page.add_system()
    assert third is not None and fourth is not None
    removed = third.focus_action
    page.remove_system(third)
    keys = [p.focus_action.shortcut().toString() for p in page.pickers]
    assert keys == ["Alt+1", "Alt+2", "Alt+3"]
    assert removed not in page.actions() and fourth.focus_action.text() == "System C"


def test_compare_follows_a_reused_id_and_a_project_switch(qtbot, panel: EvaluatePanel, project: Project,
                                                          tmp_path) -> None:
    first = stored_evaluation(project, name="first")
    panel.refresh_list()
    qtbot.waitUntil(lambda: panel.selected_id() == first, timeout=WAIT_MS)
    panel.show_page(COMPARE)
    assert panel.compare_view.evaluation.name == "first"
    project.evaluations.delete(first)
    second = stored_evaluation(project, name="second")
    assert second == first  # no AUTOINCREMENT: the id comes back
    panel.refresh_list()
    qtbot.waitUntil(lambda: panel.compare_view.evaluation is not None
                    and panel.compare_view.evaluation.name == "second", timeout=WAIT_MS)
    with Project.create(tmp_path / "other") as other:
        assert stored_evaluation(other, name="elsewhere") == first
        other_context = ProjectContext(other)
        try:
            panel.set_context(other_context)
            qtbot.waitUntil(lambda: panel.compare_view.evaluation is not None
                            and panel.compare_view.evaluation.name == "elsewhere", timeout=WAIT_MS)
        finally:
            panel.set_context(None)
            other_context.close()


def test_the_end_of_a_run_leaves_another_selected_evaluation_alone(qtbot, panel: EvaluatePanel, project: Project,
                                                                    fake, monkeypatch, tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 3))
    other = stored_evaluation(project, name="voting here")
    point_at(panel, fake, None, monkeypatch)
    fake.latency_s = 0.2
    page = panel.new_page
    page.concurrency.setValue(1)
    page.start_action.trigger()
    qtbot.waitUntil(lambda: page.evaluation_id is not None and panel.selected_id() == page.evaluation_id,
                    timeout=WAIT_MS)
    panel.select_evaluation(other)
    assert panel.selected_id() == other
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)
    qtbot.wait(LIST_WAIT_MS)
    assert panel.selected_id() == other


LIST_WAIT_MS = 600  # past the list's refresh after a run ends


def results_row(prompt_id: int, a: int, b: int, winner: str | None, human: str | None) -> dict:
    return {"prompt_id": prompt_id, "system_a": a, "system_b": b, "winner": winner, "human": human,
            "instruction": f"prompt {prompt_id}", "answer_a": f"answer {prompt_id} of {a}"}


def show_rows(panel: EvaluatePanel, project: Project, evaluation_id: int, rows: list[dict],
              lost_ids: set[int]) -> None:
    page = panel.results_page
    page.evaluation_id = evaluation_id
    page._show(eval_work.ResultsData(project.evaluations.get(evaluation_id), rows=[dict(r) for r in rows],
                                     lost_ids=frozenset(lost_ids)))


def test_the_lost_filter_lists_the_prompts_counted_as_lost(panel: EvaluatePanel, project: Project) -> None:
    from studio.ui.eval_results_page import LOST

    evaluation_id = stored_evaluation(project)
    rows = [results_row(1, 0, 1, "a", "b"),  # the judge says A, the human B: lost (the vote wins)
            results_row(2, 0, 1, "b", "a"),  # the judge says B, the human A: not lost
            results_row(3, 1, 2, "b", None),  # a pair without A
            results_row(3, 0, 1, "b", None)]
    show_rows(panel, project, evaluation_id, rows, {1, 3})
    page = panel.results_page
    page.filter.setCurrentIndex(page.filter.findData(LOST))
    shown = [(r["prompt_id"], r["system_a"], r["system_b"]) for r in page._shown_rows]
    assert shown == [(1, 0, 1), (3, 0, 1)]


def test_a_results_refresh_keeps_the_selected_prompt(panel: EvaluatePanel, project: Project) -> None:
    evaluation_id = stored_evaluation(project)
    rows = [results_row(n, 0, 1, "a", None) for n in range(1, 4)]
    show_rows(panel, project, evaluation_id, rows, set())
    page = panel.results_page
    page.table.selectRow(2)
    rows[2]["answer_a"] = "a longer answer that arrived meanwhile"
    show_rows(panel, project, evaluation_id, rows, set())
    assert page.table.currentRow() == 2 and page.answer_a.toPlainText() == rows[2]["answer_a"]


def test_the_preview_follows_prompts_sent_to_the_seeds(qtbot, panel: EvaluatePanel, project: Project,
                                                      tmp_path) -> None:
    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 4))
    page = panel.sets_page
    assert "sent to the seeds" not in page.preview.item(0, 2).text()
    prompt_set = project.prompt_sets.list()[0]
    first = project.prompt_sets.prompts(prompt_set.id)[0]
    project.prompt_sets.release([first.id], "seed 1")  # publishes the change: the list refreshes
    qtbot.waitUntil(lambda: "sent to the seeds" in page.preview.item(0, 2).text(), timeout=WAIT_MS)


def test_a_continue_waiting_for_the_server_blocks_delete_and_its_failure_frees_the_actions(
        qtbot, panel: EvaluatePanel, project: Project) -> None:
    evaluation_id = stored_evaluation(project)
    project.evaluations.set_status(evaluation_id, STOPPED)
    panel.refresh_list()
    qtbot.waitUntil(lambda: panel.selected_id() == evaluation_id and panel.continue_action.isEnabled(),
                    timeout=WAIT_MS)
    page = panel.new_page
    page._queued, page._waiting_adapters = (None, evaluation_id, []), {7}  # waiting for run 7's adapter
    page._set_running(False)
    assert not panel.continue_action.isEnabled()
    asked = Answers(panel.dialogs, confirm=True)
    panel.delete_selected()
    assert not asked.calls and "is running" in panel.messages.message()
    page._on_adapter_result(7, "no such run")  # the server cannot serve it: the Continue is dropped
    assert panel.continue_action.isEnabled() and not page.is_busy()


def test_duplicate_keeps_its_systems_when_the_models_arrive_late_and_says_which_cannot_be_picked(
        qtbot, panel: EvaluatePanel, project: Project) -> None:
    from studio.core.chat.sources import ModelSource
    from studio.core.evaluation.model import EvalSettings, SystemSpec

    page = panel.new_page
    qtbot.waitUntil(lambda: page._sources_read, timeout=WAIT_MS)
    evaluation_id = stored_evaluation(project)
    evaluation = project.evaluations.get(evaluation_id)
    page._sources_read = False  # Duplicate before the models are read
    page.load_from(evaluation)
    teacher = ModelSource("endpoint", "listed", base_url="http://127.0.0.1:9/v1", model="listed")
    page._on_sources([teacher])  # the late list: its defaults must not replace Duplicate's picks
    assert [p.spec().model for p in page.pickers] == ["student", "teacher"]
    assert not panel.messages.is_shown()

    run = SystemSpec("run", label="gone", run="99", key="run:99:abc")
    lost = project.evaluations.create(set_id=evaluation.set_id, set_hash="h", prompt_ids=evaluation.prompt_ids,
                                      systems=[evaluation.systems[0], run], judge=None, settings=EvalSettings(),
                                      name="")
    page.load_from(lost)
    assert panel.messages.is_shown() and "system B (gone)" in panel.messages.message()


def test_the_panel_exports_the_file_the_cli_exports(qtbot, panel: EvaluatePanel, project: Project, fake,
                                                    monkeypatch, tmp_path) -> None:
    from studio.cli import main

    import_set(qtbot, panel, write_prompts(tmp_path / "p.jsonl", 3))
    point_at(panel, fake, "judge-marker", monkeypatch)
    run_to_end(qtbot, panel)
    evaluation = project.evaluations.latest()
    written = eval_work.export_results(project, evaluation.id, str(tmp_path / "panel.json"))
    assert main(["eval", "export", str(evaluation.id), str(tmp_path / "cli.json"),
                 "--project", str(project.root)]) == 0
    panel_file, cli_file = (json.loads(Path(p).read_text(encoding="utf-8"))
                            for p in (written, tmp_path / "cli.json"))
    assert panel_file["meta"] == cli_file["meta"] and panel_file["prompts"] == cli_file["prompts"]
