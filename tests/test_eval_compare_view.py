"""The blind compare view (real Qt, real SQLite): keys vote at once, names stay hidden, sides map right, it resumes."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QWidget,
)

from studio.core.evaluation.model import EvalPrompt
from studio.core.project import Project
from studio.ui.eval_compare_view import BlindCompareView
from studio.ui.jobs import JobRunner
from studio.ui.project_context import ProjectContext
from tests.eval_votes_support import SYSTEMS, make_evaluation

N = 6
PROMPTS = [EvalPrompt(f"Describe colour number {i}.", f"colour {i}" if i % 2 else "") for i in range(N)]
ANSWERS = [[f"Answer {i} by the first system." for i in range(N)],
           [f"Answer {i} by the second system, which is longer." for i in range(N)]]
SECRETS = [s for system in SYSTEMS for s in (system.label, system.model, system.key)]


@pytest.fixture
def evaluation(project):
    return make_evaluation(project, PROMPTS, ANSWERS)


def make_view(qtbot, project, evaluation) -> BlindCompareView:
    host = QWidget()
    qtbot.addWidget(host)
    context = ProjectContext(project, host)
    view = BlindCompareView(JobRunner(host), host)
    view.keep_alive = host  # the test holds the view; the view holds its window
    view.resize(1000, 700)
    host.show()
    view.set_evaluation(context, evaluation.id)
    qtbot.waitUntil(lambda: view.current is not None or view.stack.currentWidget() is view.reveal_page,
                    timeout=5_000)
    return view


def shown_text(view: BlindCompareView) -> str:
    """Everything the user can read on the page shown: texts, tooltips, accessible names, the title."""
    page = view.stack.currentWidget()
    parts = [view.window().windowTitle()]
    for widget in [page, *page.findChildren(QWidget)]:
        parts += [widget.toolTip(), widget.accessibleName(), widget.statusTip(), widget.whatsThis()]
        if isinstance(widget, (QLabel, QAbstractButton)):
            parts.append(widget.text())
        if isinstance(widget, QPlainTextEdit):
            parts.append(widget.toPlainText())
        if isinstance(widget, QProgressBar):
            parts.append(widget.text())
    return "\n".join(parts)


def answer_of(text: str) -> int:
    """Which system wrote an answer shown (the fixtures' answers say it)."""
    return 0 if "first system" in text else 1


def test_a_key_vote_is_in_the_database_at_once(qtbot, project, evaluation):
    view = make_view(qtbot, project, evaluation)
    vote = view.current
    with qtbot.waitSignal(view.voted) as voted:
        qtbot.keyClick(view, Qt.Key.Key_1)
    assert voted.args == [evaluation.id]
    with Project.open(project.root, exclusive=False) as other:  # another connection: committed, not pending
        assert other.votes.get(vote.id).verdict == vote.verdict_for_side("left")
        assert other.votes.progress(evaluation.id) == (1, N)
    assert view.current.id != vote.id
    assert view.progress.text() == f"1 / {N}"


def test_left_and_right_keys_map_to_the_system_on_that_side(qtbot, project, evaluation):
    view = make_view(qtbot, project, evaluation)
    expected = {}
    for number in range(N):
        vote = view.current
        left, right = view.left_card.text.toPlainText(), view.right_card.text.toPlainText()
        assert answer_of(left) == vote.left_system and answer_of(right) == vote.right_system
        side_key = Qt.Key.Key_Left if number % 2 else Qt.Key.Key_2  # ← and 2: left, right
        expected[vote.prompt_id] = answer_of(left) if number % 2 else answer_of(right)
        qtbot.keyClick(view, side_key)
    winners = {o.prompt_id: (o.system_a if o.winner == "a" else o.system_b) for o in project.votes.outcomes(evaluation)}
    assert winners == expected
    sides = {v.left_is_a for v in project.votes.votes(evaluation.id)}
    assert sides == {True, False}  # both orders were shown, so the mapping was really tested


def test_names_hidden_until_the_end_then_revealed(qtbot, project, evaluation):
    view = make_view(qtbot, project, evaluation)
    keys = [Qt.Key.Key_3, Qt.Key.Key_T, Qt.Key.Key_4, Qt.Key.Key_B, Qt.Key.Key_S, Qt.Key.Key_Space]
    for key in keys[:-1]:
        text = shown_text(view)
        assert not [secret for secret in SECRETS if secret in text]
        qtbot.keyClick(view, key)
    assert not [secret for secret in SECRETS if secret in shown_text(view)]
    with qtbot.waitSignal(view.finished) as finished:
        qtbot.keyClick(view, keys[-1])
    assert finished.args == [evaluation.id]
    assert view.stack.currentWidget() is view.reveal_page
    verdicts = sorted(v.verdict for v in project.votes.votes(evaluation.id))
    assert verdicts == sorted(["tie", "tie", "both_bad", "both_bad", "skip", "skip"])
    table = view.reveal_table
    assert table.rowCount() == N
    for row, vote in enumerate(project.votes.votes(evaluation.id)):
        assert table.item(row, 1).text() == SYSTEMS[vote.left_system].label
        assert table.item(row, 2).text() == SYSTEMS[vote.right_system].label
    assert "student-7b" in view.reveal_summary.text()


def test_undo_takes_the_last_vote_back_and_shows_it(qtbot, project, evaluation):
    view = make_view(qtbot, project, evaluation)
    first = view.current
    qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.current.id == first.id and project.votes.get(first.id).pending
    assert view.progress.text() == f"0 / {N}"
    for _ in range(N):
        qtbot.keyClick(view, Qt.Key.Key_1)
    assert view.stack.currentWidget() is view.reveal_page
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # from the Reveal page, back to voting
    assert view.stack.currentWidget() is view.compare_page and view.current.pending


def test_resumes_at_the_first_pending_vote_in_a_new_view(qtbot, project, evaluation):
    view = make_view(qtbot, project, evaluation)
    qtbot.keyClick(view, Qt.Key.Key_1)
    qtbot.keyClick(view, Qt.Key.Key_2)
    waiting = view.current
    view.window().close()
    view.deleteLater()
    again = make_view(qtbot, project, evaluation)
    assert again.current.id == waiting.id
    assert again.progress.text() == f"2 / {N}"
    # the sides are the recorded ones, not drawn again
    assert answer_of(again.left_card.text.toPlainText()) == waiting.left_system


def test_no_answers_yet_says_so(qtbot, project):
    evaluation = make_evaluation(project, PROMPTS[:2], [[None, None], [None, None]])
    host = QWidget()
    qtbot.addWidget(host)
    view = BlindCompareView(JobRunner(host), host)
    view.set_evaluation(ProjectContext(project, host), evaluation.id)
    qtbot.waitUntil(lambda: "no pair of answers yet" in view.empty_page.text(), timeout=5_000)
    view.set_evaluation(None, None)
    assert view.stack.currentWidget() is view.empty_page


def test_the_reveal_keeps_room_for_the_prompt_when_system_labels_are_long(qtbot, project):
    """Endpoint labels sized to contents pushed the Winner column out of sight; now they are capped."""
    from dataclasses import replace

    from tests.eval_votes_support import SYSTEMS as BASE

    systems = tuple(replace(s, label=f"{s.label} @ 127.0.0.1:40787 (a long endpoint label)") for s in BASE)
    evaluation = make_evaluation(project, PROMPTS, ANSWERS, systems)
    view = make_view(qtbot, project, evaluation)
    for _ in range(N):
        qtbot.keyClick(view, Qt.Key.Key_1)
    qtbot.waitUntil(lambda: view.stack.currentWidget() is view.reveal_page, timeout=5_000)
    table = view.reveal_table
    widths = [table.columnWidth(column) for column in range(table.columnCount())]
    assert sum(widths) <= table.viewport().width() + 2, widths  # no sideways scrolling to see the winner
    assert widths[0] >= 0.3 * table.viewport().width(), widths
    assert table.item(0, 1).toolTip() == table.item(0, 1).text()  # the full label on hover


def test_the_queue_is_rebuilt_only_when_shown_throttled_and_for_its_own_evaluation(qtbot, project, evaluation,
                                                                                     monkeypatch):
    view = make_view(qtbot, project, evaluation)
    builds: list[int] = []
    real = type(project.votes).ensure_queue

    def counting(votes, chosen):
        builds.append(chosen.id)
        return real(votes, chosen)

    monkeypatch.setattr(type(project.votes), "ensure_queue", counting)
    for _ in range(5):  # another evaluation's run: its answers publish EVALUATIONS, this one did not change
        view.context.evaluations_changed.emit()
    qtbot.wait(1300)
    assert builds == []
    project.evaluations.set_status(evaluation.id, "answering")  # this one is running now
    view.hide()
    for _ in range(5):
        view.context.evaluations_changed.emit()
    qtbot.wait(1300)
    assert builds == []  # hidden: nothing read
    view.show()
    qtbot.waitUntil(lambda: builds == [evaluation.id], timeout=5_000)
    for _ in range(5):  # a burst: one build
        view.context.evaluations_changed.emit()
    qtbot.wait(1300)
    assert builds == [evaluation.id, evaluation.id]
