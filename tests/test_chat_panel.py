"""The Chat panel against a scripted loopback server, through the real openai client and real SQLite."""
from __future__ import annotations

import socket

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

pytest.importorskip("pytestqt")

from studio.core.project import Project
from studio.ui.chat_column import SEGMENT_CHARS, AnswerView, completed_prefix
from studio.ui.chat_panel import ChatPanel
from studio.ui.project_context import ProjectContext
from tests.fake_chat_server import FakeChatServer, Script
from tests.serve_support import base_folder, fake_program, trained_run

ANSWERS = {
    "model-a": "Alpha answers: **bold** words and `code`.\n\n```python\nprint('a')\n```\n\nThe end of alpha.",
    "model-b": "Beta says hello in a few more words than alpha does, to take a little longer.",
    "model-c": "Gamma: a list\n\n- one\n- two\n- three\n\nand done.",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake():
    scripts = {model: Script(text, chunk_chars=3, delay_s=0.005, hold_after=3) for model, text in ANSWERS.items()}
    with FakeChatServer(scripts) as server:
        yield server


def _teacher(project: Project, base_url: str, model: str) -> None:
    project.generation.create_run(name=f"gen {model}", mode="alpaca", teacher_model=model, base_url=base_url,
                                  config={}, prompt_template="")


@pytest.fixture
def context(project: Project, fake: FakeChatServer) -> ProjectContext:
    for model in ("model-c", "model-b", "model-a"):  # newest first in the pickers: a, b, c
        _teacher(project, fake.base_url, model)
    ctx = ProjectContext(project)
    yield ctx
    ctx.close()


@pytest.fixture
def make_panel(qtbot, context: ProjectContext):
    """Panels shown on the project; at teardown each is shut down and its jobs drained before it is deleted."""
    made: list[ChatPanel] = []

    def make(columns: int = 3, on: ProjectContext | None = None, sources: int = 3,
             before=None) -> ChatPanel:
        panel = ChatPanel()
        made.append(panel)
        if before is not None:
            before(panel)
        panel.resize(1200, 700)
        panel.show()  # the shortcuts are the window's while the panel is shown
        qtbot.waitExposed(panel)
        panel.set_context(on or context)
        qtbot.waitUntil(lambda: len(panel.sources) >= sources, timeout=10_000)
        while len(panel.columns) < columns:
            panel.add_column()
        return panel

    yield make
    for panel in made:
        panel.shutdown()
        qtbot.waitUntil(lambda p=panel: not p.jobs.active_jobs(), timeout=20_000)
        panel.close()
        panel.deleteLater()


@pytest.fixture
def panel(make_panel) -> ChatPanel:
    return make_panel()


def _pick(panel: ChatPanel, column: int, model: str) -> None:
    col = panel.columns[column]
    row = next(n for n, s in enumerate(col._sources) if s.model == model)
    col.picker.setCurrentIndex(row)


def _models(panel: ChatPanel) -> list[str]:
    return [column.source().model for column in panel.columns]


def _texts(panel: ChatPanel, turn: int = 0) -> list[str]:
    return [column.answer_view(turn).text for column in panel.columns]


def _send(qtbot, panel: ChatPanel, text: str) -> None:
    panel.prompt.text.setPlainText(text)
    panel.prompt.text.setFocus()
    qtbot.keyClick(panel.prompt.text, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def test_three_columns_stream_side_by_side_and_show_their_speed(qtbot, panel: ChatPanel, fake: FakeChatServer) -> None:
    assert _models(panel) == ["model-a", "model-b", "model-c"]  # one model per column by default
    assert all(not column.hint.isHidden() for column in panel.columns)  # the empty state says what to do
    assert "Ctrl+Return" in panel.prompt.send_button.toolTip() and "Esc" in panel.prompt.stop_button.toolTip()
    fake.gate.clear()  # every stream holds after three deltas
    _send(qtbot, panel, "Say something.")
    assert panel.is_streaming() and panel.prompt.stop_button.isEnabled() and not panel.prompt.send_button.isEnabled()
    # Text grows in all three columns before any of them has finished.
    qtbot.waitUntil(lambda: all(_texts(panel)), timeout=10_000)
    assert len(panel.streams) == 3 and fake.completed == 0
    assert all("tok/s" in column.live_stats.text() and "TTFT" in column.live_stats.text() for column in panel.columns)
    fake.gate.set()
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    assert _texts(panel) == [ANSWERS["model-a"], ANSWERS["model-b"], ANSWERS["model-c"]]
    for n, column in enumerate(panel.columns):
        answer = panel.conversation.turns[0].answers[n]
        assert answer.finish_reason == "stop" and answer.ttft_s is not None and answer.tokens_per_s
        stats = column.answer_view(0).stats.text()
        assert "TTFT" in stats and "tok/s" in stats and "tokens" in stats
        assert column.live_stats.isHidden()  # the live line was for streaming: the stats are said once, under it
    assert panel.prompt.text.toPlainText() == "" and panel.prompt.send_button.isEnabled()
    # Markdown rendered: bold is bold, the fenced code is monospace.
    document = panel.columns[0].answer_view(0).live.document()
    assert "**" not in document.toPlainText() and "print('a')" in document.toPlainText()
    code = next(b for b in _blocks(document) if "print('a')" in b.text())
    assert code.charFormat().fontFixedPitch() or code.begin().fragment().charFormat().fontFixedPitch()


def _blocks(document):
    block = document.begin()
    while block.isValid():
        yield block
        block = block.next()


def test_escape_stops_every_stream_and_no_more_text_arrives(qtbot, panel: ChatPanel, fake: FakeChatServer) -> None:
    fake.gate.clear()
    _send(qtbot, panel, "Go on and on.")
    qtbot.waitUntil(lambda: all(_texts(panel)), timeout=10_000)
    qtbot.keyClick(panel.prompt.text, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    stopped = _texts(panel)
    assert all(stopped) and all(len(t) < len(ANSWERS[m]) for t, m in zip(stopped, ANSWERS))
    assert [a.finish_reason for a in panel.conversation.turns[0].answers] == ["cancelled"] * 3
    qtbot.waitUntil(lambda: not any(job.title.startswith("Chat:") for job in panel.jobs.active_jobs()),
                    timeout=10_000)  # the worker thread ends too
    fake.gate.set()  # the server would go on: the closed connections refuse it
    qtbot.waitUntil(lambda: fake.disconnects == 3, timeout=10_000)
    panel._on_tick()
    assert _texts(panel) == stopped and fake.completed == 0


def test_a_conversation_is_saved_and_reopens_with_its_turns(qtbot, make_panel, project: Project,
                                                            fake: FakeChatServer) -> None:
    panel = make_panel()
    _send(qtbot, panel, "First question, which becomes the title")
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    qtbot.waitUntil(lambda: panel.conversation_list.count() == 1 and not panel._saving, timeout=10_000)
    _send(qtbot, panel, "Second question")
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    qtbot.waitUntil(lambda: not panel._saving and project.conversations.list()[0].turns == 2, timeout=10_000)
    [summary] = project.conversations.list()
    assert summary.title == "First question, which becomes the title"
    panel.shutdown()

    again = make_panel()  # as after a restart
    qtbot.waitUntil(lambda: again.conversation_list.count() == 1, timeout=10_000)
    assert again.conversation_list.item(0).text() == summary.title
    again.conversation_list.setCurrentRow(0)
    again._on_conversation_activated(again.conversation_list.item(0))
    qtbot.waitUntil(lambda: again.conversation.id == summary.id, timeout=10_000)
    assert len(again.columns) == 3 and _models(again) == ["model-a", "model-b", "model-c"]
    assert _texts(again, 0) == list(ANSWERS.values()) and _texts(again, 1) == list(ANSWERS.values())
    assert again.conversation_title.text() == summary.title
    # Rename and delete from the list (the list follows the change feed).
    item = again.conversation_list.item(0)
    item.setText("Renamed chat")
    qtbot.waitUntil(lambda: project.conversations.list()[0].title == "Renamed chat", timeout=10_000)
    again.conversation_list.setCurrentRow(0)
    original = QMessageBox.question
    QMessageBox.question = staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes)
    try:
        again.delete_selected()
    finally:
        QMessageBox.question = original
    qtbot.waitUntil(lambda: again.conversation_list.count() == 0 and not again.list_hint.isHidden(), timeout=10_000)
    assert project.conversations.count() == 0 and again.conversation.turns == []


def test_multi_turn_sends_each_column_its_own_history(qtbot, panel: ChatPanel, fake: FakeChatServer) -> None:
    panel.same_settings.setChecked(True)
    panel.shared_settings.system.setPlainText("You are terse.")
    panel.shared_settings.temperature.setValue(0.25)
    _send(qtbot, panel, "Turn one")
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    _send(qtbot, panel, "Turn two")
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    for model, text in ANSWERS.items():
        first, second = fake.requests_for(model)
        assert second["messages"] == [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Turn one"},
            {"role": "assistant", "content": text},  # this column's own answer, not another's
            {"role": "user", "content": "Turn two"},
        ]
        assert first["temperature"] == second["temperature"] == 0.25 and second["stream"] is True


def test_per_column_settings_and_the_alpaca_form(qtbot, panel: ChatPanel, fake: FakeChatServer) -> None:
    panel.columns[1].settings_button.setChecked(True)
    assert not panel.columns[1].settings.isHidden()
    panel.columns[1].settings.max_tokens.setValue(5)  # cut short: "length"
    panel.columns[2].settings.top_p.setValue(0.5)
    panel.prompt.alpaca_mode.setChecked(True)
    panel.prompt.instruction.setPlainText("Summarise the text.")
    panel.prompt.input.setPlainText("A long text.")
    panel.send()
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    a, b, c = (fake.requests_for(m)[-1] for m in ("model-a", "model-b", "model-c"))
    assert b["max_tokens"] == 5 and a["max_tokens"] == 512 and c["top_p"] == 0.5 and a["top_p"] == 1.0
    user = a["messages"][-1]["content"]  # a teacher gets the form combined into one message
    assert "Summarise the text." in user and "A long text." in user
    assert panel.conversation.mode == "alpaca" and panel.conversation.turns[0].input == "A long text."
    assert panel.conversation.turns[0].answers[1].finish_reason == "length"
    assert "max tokens" in panel.columns[1].answer_view(0).stats.text()


def test_an_endpoint_that_is_a_studio_server_gets_the_alpaca_input_as_its_own_field(
        qtbot, panel: ChatPanel, fake: FakeChatServer) -> None:
    """A teacher-style endpoint column whose URL is a studio server (another machine's, say): found by asking
    its /health on the worker, it is sent the input the way training rendered it, not folded into the text."""
    fake.health = {"status": "ready", "base_id": "tiny"}
    panel.prompt.alpaca_mode.setChecked(True)
    panel.prompt.instruction.setPlainText("Summarise the text.")
    panel.prompt.input.setPlainText("A long text.")
    panel.send()
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    last = fake.requests_for("model-a")[-1]["messages"][-1]
    assert last == {"role": "user", "content": "Summarise the text.", "input": "A long text."}


def test_use_as_seed_and_send_to_curate_make_rows(qtbot, panel: ChatPanel, project: Project) -> None:
    seeds_before = project.seeds.count()
    _send(qtbot, panel, "Write a haiku about rivers.")
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    view = panel.columns[1].answer_view(0)
    assert all(not button.isHidden() for button in view.buttons.values())
    view.buttons["seed"].click()
    qtbot.waitUntil(lambda: project.seeds.count() == seeds_before + 1, timeout=10_000)
    qtbot.waitUntil(lambda: panel.messages.is_shown(), timeout=10_000)
    assert "seed task" in panel.messages.message() and panel.messages.level == "info"
    view.buttons["sample"].click()
    qtbot.waitUntil(lambda: "Curate" in panel.messages.message(), timeout=10_000)
    rows = project.conn.execute("SELECT instruction, output, status, origin FROM samples").fetchall()
    assert [tuple(r) for r in rows] == [("Write a haiku about rivers.", ANSWERS["model-b"], "pending", "manual")]
    answer = panel.conversation.turns[0].answers[1]
    assert answer.seed_id is not None and answer.sample_id is not None
    view.buttons["copy"].click()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == ANSWERS["model-b"]


def test_an_unreachable_endpoint_fails_in_its_column_while_the_others_finish(qtbot, make_panel, project: Project,
                                                                            fake: FakeChatServer) -> None:
    _teacher(project, f"http://127.0.0.1:{_free_port()}/v1", "model-gone")
    panel = make_panel()
    qtbot.waitUntil(lambda: any(s.model == "model-gone" for s in panel.sources), timeout=10_000)
    _pick(panel, 0, "model-a")
    _pick(panel, 1, "model-gone")
    _pick(panel, 2, "model-c")
    _send(qtbot, panel, "Anyone there?")
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=20_000)
    view = panel.columns[1].answer_view(0)
    assert not view.error.isHidden() and "127.0.0.1" in view.error.text()
    assert panel.conversation.turns[0].answers[1].error
    assert _texts(panel)[0] == ANSWERS["model-a"] and _texts(panel)[2] == ANSWERS["model-c"]


def test_columns_add_and_remove_and_shortcuts_focus_their_pickers(qtbot, panel: ChatPanel) -> None:
    assert panel.add_column() is None and not panel.add_column_action.isEnabled()  # three at most
    qtbot.keyClick(panel, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)
    assert panel.columns[1].picker.hasFocus()
    qtbot.keyClick(panel, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert panel.prompt.text.hasFocus()
    panel.columns[1].close_button.click()
    assert len(panel.columns) == 2 and _models(panel) == ["model-a", "model-c"]
    assert panel.add_column_action.isEnabled()


def test_a_long_answer_renders_in_segments_throttled_and_follows_the_bottom(qtbot, make_panel,
                                                                            project: Project) -> None:
    paragraph = "A sentence of a long answer that goes on for a while, with **bold** text. " * 4
    long_text = "\n\n".join(f"{paragraph} ({n})" for n in range(80)) + "\n\n```\ncode block\n```\n"
    with FakeChatServer({"fast": Script(long_text, chunk_chars=2, delay_s=0.0)}) as fast:
        _teacher(project, fast.base_url, "fast")
        panel = make_panel(columns=1)
        qtbot.waitUntil(lambda: any(s.model == "fast" for s in panel.sources), timeout=10_000)
        _pick(panel, 0, "fast")
        panel.columns[0].settings.max_tokens.setValue(20_000)
        _send(qtbot, panel, "Write a lot.")
        qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=60_000)
        view = panel.columns[0].answer_view(0)
        assert view.text == long_text
        deltas = len(long_text) // 2
        assert view.render_count < deltas / 10  # re-rendered per tick, never per token
        assert view.segments() > 3  # frozen segments: each re-render costs one segment, not the whole answer
        shown = "".join(view._segments.itemAt(i).widget().document().toPlainText() for i in range(view.segments()))
        assert "(0)" in shown and "(79)" in shown and "code block" in shown
        bar = panel.columns[0].scroll.verticalScrollBar()
        qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), timeout=5_000)
        bar.setValue(0)  # the user scrolls up: the view stays there while text keeps coming
        assert not panel.columns[0].following
        view.append("\n\nmore text")
        view.render()
        qtbot.wait(50)
        assert bar.value() == 0


def test_completed_prefix_splits_at_blank_lines_outside_code_fences() -> None:
    assert completed_prefix("one\n\ntwo") == len("one\n\n")
    assert completed_prefix("no blank line yet") == 0
    fenced = "intro\n\n```\na\n\nb\n"
    assert completed_prefix(fenced) == len("intro\n\n")  # the blank line inside the open fence does not count
    closed = fenced + "```\n\nafter"
    assert completed_prefix(closed) == len(closed) - len("after")


def test_answer_view_freezes_segments(qtbot) -> None:
    view = AnswerView()
    qtbot.addWidget(view)
    block = "word " * 100 + "\n\n"
    for _ in range(SEGMENT_CHARS // len(block) + 3):
        view.append(block)
    view.append("tail being written")
    view.render()
    assert view.segments() == 2 and view.live.text == "tail being written"


# -- with the local server (tests/fake_studio_server.py as the child the server control starts) -----
def _serve_with_fake(panel: ChatPanel) -> None:
    control = panel.server_control
    control.command_prefix = fake_program("--delay-ms", "2")
    control.port = 0
    control.device = "cpu"


def test_a_run_column_offers_to_start_the_server_then_chats_with_it(qtbot, make_panel, project: Project,
                                                                   tmp_path) -> None:
    base = base_folder(tmp_path)
    trained_run(project, base, name="first")
    served = ProjectContext(project)
    try:
        panel = make_panel(columns=2, on=served, sources=5, before=_serve_with_fake)
        assert [s.kind for s in panel.sources] == ["endpoint"] * 3 + ["base", "run"]  # teachers, base, runs
        _pick(panel, 0, "tiny-base")
        _pick(panel, 1, "first")
        run_column = panel.columns[1]
        assert not run_column.notice_box.isHidden() and "stopped" in run_column.notice.text()
        assert run_column.notice_button.isVisibleTo(run_column) and not run_column.export_button.isHidden()
        assert panel.columns[0].export_button.isHidden()  # export is for runs
        run_column.notice_button.click()
        qtbot.waitUntil(lambda: panel.server_info is not None, timeout=30_000)
        qtbot.waitUntil(lambda: run_column.notice_box.isHidden(), timeout=10_000)
        _send(qtbot, panel, "Hi there")
        qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=20_000)
        assert _texts(panel) == ["Hello from tiny-base: you said Hi there.", "Hello from first: you said Hi there."]
        # A run trained after the server started is loaded into it when a column picks it.
        trained_run(project, base, name="later")
        qtbot.waitUntil(lambda: any(s.model == "later" for s in panel.sources), timeout=10_000)
        _pick(panel, 1, "later")
        qtbot.waitUntil(lambda: "later" in panel.server_control.loaded_adapters(), timeout=30_000)
        qtbot.waitUntil(lambda: run_column.notice_box.isHidden(), timeout=10_000)
        _send(qtbot, panel, "And now?")
        qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=20_000)
        assert _texts(panel, 1)[1] == "Hello from later: you said And now?."
        panel.server_control.stop()
        qtbot.waitUntil(lambda: panel.server_info is None, timeout=20_000)
        qtbot.waitUntil(lambda: not run_column.notice_box.isHidden(), timeout=10_000)
    finally:
        served.close()


def test_a_run_the_server_cannot_load_says_why_in_its_column(qtbot, make_panel, project: Project, tmp_path,
                                                              monkeypatch) -> None:
    """A run on another base model: the restart is declined, and the column says so instead of "Loading…"."""
    trained_run(project, base_folder(tmp_path), name="first")
    served = ProjectContext(project)
    try:
        panel = make_panel(columns=1, on=served, sources=5, before=_serve_with_fake)
        panel.server_control.start()
        qtbot.waitUntil(lambda: panel.server_info is not None, timeout=30_000)
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
        trained_run(project, base_folder(tmp_path, "other-base"), name="elsewhere")
        qtbot.waitUntil(lambda: any(s.model == "elsewhere" for s in panel.sources), timeout=10_000)
        _pick(panel, 0, "elsewhere")
        column = panel.columns[0]
        qtbot.waitUntil(lambda: "not served" in column.notice.text(), timeout=20_000)
        assert "another base model" in column.notice.text() and "Loading" not in column.notice.text()
        panel.server_control.stop()
        qtbot.waitUntil(lambda: panel.server_info is None, timeout=20_000)
    finally:
        served.close()


def test_ctrl_n_starts_a_new_conversation_keeping_the_models(qtbot, panel: ChatPanel) -> None:
    _send(qtbot, panel, "Something to start with")
    qtbot.waitUntil(lambda: not panel.is_streaming() and panel.conversation.id is not None, timeout=10_000)
    qtbot.keyClick(panel.prompt.text, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert panel.conversation.id is None and panel.conversation.turns == []
    assert _models(panel) == ["model-a", "model-b", "model-c"]
    assert all(not column.hint.isHidden() for column in panel.columns)
    assert panel.conversation_title.text() == "New conversation" and panel.prompt.text.hasFocus()


def test_export_opens_the_export_dialog_for_the_run(qtbot, make_panel, project: Project, tmp_path,
                                                   monkeypatch) -> None:
    import sys
    import types

    opened: list = []

    class ExportDialog:  # B's dialog's constructor, as the contract names it
        def __init__(self, context, jobs, run_id, parent=None):
            opened.append((context, jobs, run_id, parent))

        def setAttribute(self, *_args) -> None:
            pass

        def open(self) -> None:
            opened.append("open")

    monkeypatch.setitem(sys.modules, "studio.ui.export_dialog", types.SimpleNamespace(ExportDialog=ExportDialog))
    run = trained_run(project, base_folder(tmp_path), name="first")
    panel = make_panel(columns=1, sources=5)
    _pick(panel, 0, "first")
    panel.columns[0].export_button.click()
    assert opened == [(panel.context, panel.jobs, run.id, panel), "open"]


def test_without_a_project_nothing_can_be_sent(qtbot, panel: ChatPanel) -> None:
    panel.set_context(None)
    assert not panel.prompt.send_button.isEnabled() and panel.server_control.context is None
    assert all(not column.picker.isEnabled() for column in panel.columns)
    panel.prompt.text.setPlainText("Hello?")
    panel.send()
    assert not panel.is_streaming() and panel.conversation.turns == []


# -- the QA pass: keyboard, defaults, stats, links, the failed start -------------------------------------
def _conversation(project: Project, title: str, sources: list | None = None) -> int:
    from studio.core.chat.conversations import ColumnSpec, Conversation

    columns = [ColumnSpec(source=s) for s in (sources or [])]
    return project.conversations.create(Conversation(id=None, title=title, mode="chat", columns=columns)).id


def test_arrow_keys_enable_rename_and_delete_and_del_deletes(qtbot, make_panel, project: Project,
                                                            monkeypatch) -> None:
    for title in ("Older chat", "Newer chat"):
        _conversation(project, title)
    panel = make_panel(columns=1)
    qtbot.waitUntil(lambda: panel.conversation_list.count() == 2, timeout=10_000)
    listing = panel.conversation_list
    panel.activateWindow()
    listing.setFocus()  # the list makes its first row current by itself: no click
    qtbot.keyClick(listing, Qt.Key.Key_Down)  # and the arrow keys move it
    assert listing.currentItem() is not None
    assert panel.delete_action.isEnabled() and panel.rename_action.isEnabled()
    qtbot.keyClick(listing, Qt.Key.Key_F2)
    assert listing.state() == listing.State.EditingState  # F2 renames in place
    qtbot.keyClick(listing.focusWidget() or listing, Qt.Key.Key_Escape)
    listing.setFocus()
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes))
    gone = listing.currentItem().text()
    qtbot.keyClick(listing, Qt.Key.Key_Delete)
    assert asked and gone in asked[0]  # Del asks first
    qtbot.waitUntil(lambda: project.conversations.count() == 1, timeout=10_000)
    assert [s.title for s in project.conversations.list()] != [gone]


def test_identical_titles_show_their_time_and_a_rename_keeps_the_title_alone(qtbot, make_panel,
                                                                            project: Project) -> None:
    from PySide6.QtWidgets import QStyleOptionViewItem


    for title in ("Same title", "Same title", "Unique"):
        _conversation(project, title)
    panel = make_panel(columns=1)
    qtbot.waitUntil(lambda: panel.conversation_list.count() == 3, timeout=10_000)
    listing = panel.conversation_list
    shown = {}
    for row in range(3):
        index = listing.model().index(row, 0)
        option = QStyleOptionViewItem()
        listing.itemDelegate().initStyleOption(option, index)
        shown.setdefault(index.data(), []).append(option.text)
    assert shown["Unique"] == ["Unique"]
    assert all(text.startswith("Same title · ") and ":" in text for text in shown["Same title"])
    item = listing.item(0) if listing.item(0).text() == "Same title" else listing.item(1)
    assert item.text() == "Same title"  # what an edit starts from: the title, not the time


def test_fresh_columns_skip_a_dead_loopback_teacher_and_reuse_the_last_conversation(qtbot, make_panel,
                                                                                    project: Project,
                                                                                    fake: FakeChatServer) -> None:
    _teacher(project, f"http://127.0.0.1:{_free_port()}/v1", "model-gone")  # the newest, and nobody listens
    panel = make_panel(sources=4)
    assert "model-gone" not in _models(panel)[:3] and _models(panel) == ["model-a", "model-b", "model-c"]
    assert any(s.model == "model-gone" for s in panel.columns[0]._sources)  # still offered
    from studio.core.chat.sources import ModelSource

    chosen = [next(s for s in panel.sources if s.model == m) for m in ("model-c", "model-a")]
    _conversation(project, "Last time", [ModelSource.from_dict(s.to_dict()) for s in chosen])
    again = make_panel(columns=2, sources=4)
    assert _models(again) == ["model-c", "model-a"]


def test_an_error_is_said_once_and_the_live_line_does_not_repeat_the_stats(qtbot, make_panel, project: Project,
                                                                           fake: FakeChatServer) -> None:
    _teacher(project, f"http://127.0.0.1:{_free_port()}/v1", "model-gone")
    panel = make_panel(columns=2, sources=4)
    _pick(panel, 0, "model-a")
    _pick(panel, 1, "model-gone")
    _send(qtbot, panel, "Anyone there?")
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=20_000)
    failed = panel.columns[1]
    view = failed.answer_view(0)
    assert not view.error.isHidden() and "127.0.0.1" in view.error.text()
    assert "error" not in view.stats.text().split(" · ")
    assert failed.live_stats.isHidden() and panel.columns[0].live_stats.isHidden()
    assert not panel.columns[0].answer_view(0).stats.isHidden()


def test_alt_digits_put_the_focus_on_that_columns_picker(qtbot, panel: ChatPanel) -> None:
    from PySide6.QtWidgets import QApplication

    panel.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is panel, timeout=5_000)
    panel.prompt.text.setFocus()
    for n in (3, 1, 2):
        qtbot.keyClick(QApplication.focusWidget() or panel, getattr(Qt.Key, f"Key_{n}"),
                       Qt.KeyboardModifier.AltModifier)
        QApplication.processEvents()
        assert QApplication.focusWidget() is panel.columns[n - 1].picker


def test_the_header_fits_a_narrow_column_with_the_name_in_the_tooltip(qtbot, make_panel, project: Project,
                                                                     tmp_path) -> None:
    base = base_folder(tmp_path)
    trained_run(project, base, name="runA-with-a-long-name")
    served = ProjectContext(project)
    try:
        panel = make_panel(columns=3, on=served, sources=5)
        panel.resize(850, 600)  # the Chat page of a 1024 × 640 window
        _pick(panel, 1, "runA-with-a-long-name")
        column = panel.columns[1]
        qtbot.waitUntil(lambda: not column.notice_box.isHidden(), timeout=5_000)
        assert column.picker.currentText() == column.source().label  # no "Student · " in the box itself
        assert column.picker.toolTip().startswith("Student · runA-with-a-long-name")
        assert not column.picker.itemIcon(column.picker.currentIndex()).isNull()  # the kind is an icon
        assert column.export_button.text() == "⤓" and "Export this run" in column.export_button.toolTip()
        header_width = column.picker.minimumSizeHint().width() + sum(
            b.sizeHint().width() for b in (column.settings_button, column.export_button, column.close_button))
        assert header_width < column.width()
        line = column.notice.fontMetrics().lineSpacing()
        assert column.notice.height() < 2 * line  # one line, with its button
        assert "stopped" in column.notice.toolTip() and column.notice_button.text() == "Start server"
    finally:
        served.close()


def test_seed_and_curate_links_lead_to_the_new_rows(qtbot, tmp_path) -> None:
    from PySide6.QtCore import QSettings

    from studio.core.samples import Sample, Status
    from studio.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p", create_if_missing=True)
    window.show()
    project = window.project
    ids = [project.samples.add(Sample(f"Instruction {i}.", "", f"Out {i}.", status=Status.PENDING)) for i in range(4)]
    seed = project.seeds.list()[3].id
    window.nav.setCurrentRow([spec.key for spec in window.specs].index("chat"))
    chat = window.panel("chat")
    chat.show_sample(ids[1])
    curate = window.panel("curate")
    assert window.stack.currentWidget() is curate
    assert curate.model.sample_id(curate.table.currentIndex().row()) == ids[1]
    chat.show_seed(seed)
    seeds = window.panel("seeds")
    assert window.stack.currentWidget() is seeds and seeds.current_seed_id() == seed
    window.close()


def test_a_server_that_fails_to_start_is_said_in_the_column_not_starting_forever(qtbot, make_panel,
                                                                                project: Project, tmp_path) -> None:
    base = base_folder(tmp_path)
    trained_run(project, base, name="first")
    served = ProjectContext(project)

    def failing(panel: ChatPanel) -> None:
        _serve_with_fake(panel)
        panel.server_control.command_prefix = fake_program("--fail", "CUDA out of memory", "--startup-delay-ms", "300")

    try:
        panel = make_panel(columns=2, on=served, sources=5, before=failing)
        _pick(panel, 0, "tiny-base")
        _pick(panel, 1, "first")
        panel.columns[1].notice_button.click()
        assert all("Starting" in column.notice.text() for column in panel.columns)
        qtbot.waitUntil(lambda: "did not start" in panel.columns[1].notice.text(), timeout=20_000)
        assert all(column.notice.text() == "The server did not start — see the server row"
                   for column in panel.columns)
        assert panel.columns[1].notice_button.text() == "Retry" and panel.server_info is None
    finally:
        served.close()


def test_a_made_seed_and_sample_get_links_under_the_answer(qtbot, panel: ChatPanel, project: Project) -> None:
    _send(qtbot, panel, "Write a haiku about rivers.")
    qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=10_000)
    view = panel.columns[0].answer_view(0)
    assert all(link.isHidden() for link in view.links.values())
    view.buttons["seed"].click()
    qtbot.waitUntil(lambda: not view.links["show-seed"].isHidden(), timeout=10_000)
    view.buttons["sample"].click()
    qtbot.waitUntil(lambda: not view.links["show-sample"].isHidden(), timeout=10_000)
    answer = panel.conversation.turns[0].answers[0]
    assert view.links["show-seed"].text() == f"Seed #{answer.seed_id} ›"
    assert view.links["show-sample"].text() == f"Sample #{answer.sample_id} ›"
    shown = []
    panel.show_sample = shown.append
    view.links["show-sample"].click()
    assert shown == [answer.sample_id]
