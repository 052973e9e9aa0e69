"""The Chat page: up to three models side by side, one prompt to all, answers streaming in columns.

A column picks any model the project knows (:func:`studio.core.chat.sources.list_sources`:
the teachers of its generation runs, the base model, every trained run) and streams its answer
on a job of its own (:class:`~studio.ui.chat_worker.ColumnStream`); one 30 Hz tick takes what
arrived and re-renders only the columns that got text, so tokens never cost a repaint each.
Stop (Esc) ends every stream. Conversations are saved in the project as they go (after each
prompt and each answer) and listed on the left; every read and write is a job. The local model
server is the embedded :class:`~studio.ui.server_control.ServerControl`: picking the base or a
run while it is stopped offers to start it, and a run it does not serve yet is loaded into it.
"""
from __future__ import annotations

import copy
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QStyledItemDelegate,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.chat.conversations import (
    Answer,
    ColumnSpec,
    Conversation,
    Turn,
    default_title,
)
from studio.core.chat.session import answer_to_sample, answer_to_seed, messages_for
from studio.core.chat.sources import (
    ENDPOINT,
    ChatSourceError,
    is_studio_server,
    list_sources,
    served_model_id,
)
from studio.core.project import Project
from studio.ui.chat_column import ChatColumn, ColumnSettings, format_stats
from studio.ui.chat_worker import ColumnStream, start_streams
from studio.ui.jobs import JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.panels import Panel
from studio.ui.project_context import ProjectContext

MAX_COLUMNS = 3
TICK_MS = 33  # at most ~30 re-renders a second per column, however fast tokens arrive
NEW_TITLE = "New conversation"
CHAT, ALPACA = "chat", "alpaca"
STUDIO_KINDS = ("base", "run")  # served by the studio's own server


def _shortcut_text(key: str) -> str:
    return QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)


# -- work for jobs (worker threads, own project handles) -------------------------------------------
@dataclass
class SourceList:
    """What the pickers offer, which loopback teachers no longer answer, and the last conversation's models."""

    sources: list
    dead: set = field(default_factory=set)  # base URLs of loopback endpoints nobody listens on
    last_columns: list = field(default_factory=list)  # ModelSource per column of the newest conversation


def _loopback_dead(base_url: str, timeout_s: float = 0.2) -> bool:
    """True when ``base_url`` is on this machine and nothing listens on its port (an old fake or local server)."""
    parts = urlsplit(base_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return False
    except OSError:
        return True


def read_sources(project: Project, server: object) -> SourceList:
    sources = list_sources(project, server)
    dead = {s.base_url for s in sources if s.kind not in STUDIO_KINDS and s.base_url and _loopback_dead(s.base_url)}
    last: list = []
    summaries = project.conversations.list()
    if summaries:
        try:
            last = [spec.source for spec in project.conversations.get(summaries[0].id).columns if spec is not None]
        except Exception:  # noqa: BLE001 - an unreadable old conversation only loses its defaults
            last = []
    return SourceList(sources, dead, last)


def warm_up() -> None:
    import openai  # noqa: F401

    import studio.core.chat.session  # noqa: F401
    import studio.core.llm.client  # noqa: F401


def read_conversations(project: Project) -> list:
    return project.conversations.list()


def read_conversation(project: Project, conversation_id: int) -> Conversation:
    return project.conversations.get(conversation_id)


def save_conversation(project: Project, conversation: Conversation) -> int:
    """Create (first save) or update; returns the id."""
    if conversation.id is None:
        return project.conversations.create(conversation).id
    project.conversations.save(conversation)
    return conversation.id


def rename_conversation(project: Project, conversation_id: int, title: str) -> None:
    project.conversations.rename(conversation_id, title)


def delete_conversation(project: Project, conversation_id: int) -> None:
    project.conversations.delete(conversation_id)


WHEN_ROLE = Qt.ItemDataRole.UserRole + 1  # " · 13:42" after a title that several conversations share


class ConversationDelegate(QStyledItemDelegate):
    """Draws a conversation's time after its title when the title is not unique (editing shows the title alone)."""

    def initStyleOption(self, option, index) -> None:  # noqa: N802 - Qt's name
        super().initStyleOption(option, index)
        when = index.data(WHEN_ROLE)
        if when:
            option.text = f"{option.text} · {when}"


def when_text(timestamp: float, now: float | None = None) -> str:
    """'13:42' today, '28 Nov 13:42' another day."""
    moment, today = time.localtime(timestamp), time.localtime(now if now is not None else time.time())
    same_day = (moment.tm_year, moment.tm_yday) == (today.tm_year, today.tm_yday)
    return time.strftime("%H:%M" if same_day else "%d %b %H:%M", moment)


class PromptBox(QWidget):
    """Free chat or the Alpaca form (instruction + optional input)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.chat_mode = QRadioButton("Chat", checked=True, toolTip="Free multi-turn chat")
        self.alpaca_mode = QRadioButton("Alpaca form", toolTip="An instruction and an optional input, as in training")
        self.modes = QButtonGroup(self)
        self.modes.addButton(self.chat_mode)
        self.modes.addButton(self.alpaca_mode)
        send_key, stop_key = _shortcut_text("Ctrl+Return"), _shortcut_text("Esc")
        self.text = QPlainTextEdit(placeholderText=f"Message every column…  ({send_key} sends, Esc stops)")
        self.instruction = QPlainTextEdit(placeholderText="Instruction")
        self.input = QPlainTextEdit(placeholderText="Input (optional)")
        for edit in (self.text, self.instruction, self.input):
            edit.setTabChangesFocus(True)
            edit.setToolTip(f"{send_key} sends to every column, Esc stops, {_shortcut_text('Ctrl+L')} comes back here")
        line = self.text.fontMetrics().lineSpacing()
        self.text.setFixedHeight(line * 4 + 12)
        for edit in (self.instruction, self.input):
            edit.setFixedHeight(line * 4 + 12)
        alpaca = QWidget()
        row = QHBoxLayout(alpaca)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.instruction, 3)
        row.addWidget(self.input, 2)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.text)
        self.stack.addWidget(alpaca)
        self.stack.setFixedHeight(line * 4 + 12)
        self.send_button = QPushButton("Send", toolTip=f"Send to every column ({send_key})")
        self.send_button.setDefault(True)
        self.stop_button = QPushButton("Stop", toolTip=f"Stop every answer ({stop_key})")
        mode_row = QHBoxLayout()
        mode_row.setContentsMargins(0, 0, 0, 0)
        mode_row.addWidget(self.chat_mode)
        mode_row.addWidget(self.alpaca_mode)
        mode_row.addStretch(1)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.stack, 1)
        body.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(mode_row)
        layout.addLayout(body)
        self.alpaca_mode.toggled.connect(lambda on: self.stack.setCurrentIndex(1 if on else 0))

    @property
    def mode(self) -> str:
        return ALPACA if self.alpaca_mode.isChecked() else CHAT

    def set_mode(self, mode: str) -> None:
        (self.alpaca_mode if mode == ALPACA else self.chat_mode).setChecked(True)

    def prompt(self) -> tuple[str, str]:
        if self.mode == ALPACA:
            return self.instruction.toPlainText().strip(), self.input.toPlainText().strip()
        return self.text.toPlainText().strip(), ""

    def clear(self) -> None:
        for edit in (self.text, self.instruction, self.input):
            edit.clear()

    def focus(self) -> None:
        (self.instruction if self.mode == ALPACA else self.text).setFocus()


class ChatPanel(Panel):
    title = "Chat"
    icon = "chat.svg"

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        self.conversation = self._new_conversation()
        self.columns: list[ChatColumn] = []
        self.streams: dict[int, ColumnStream] = {}  # column index -> its running stream
        self.sources: list = []
        self._dead: set = set()  # loopback teacher endpoints that did not answer
        self._last_columns: list = []  # the newest saved conversation's models (a fresh panel's defaults)
        self.server_info = None
        self.server_control = None
        self._ensured: set[tuple[int, int]] = set()  # (server pid, run id) already asked to load
        self._summaries: list = []
        self._saving = False
        self._save_again = False
        self._loading_list = False
        self.client_factory = None  # tests may inject (source, server) -> (client, model)
        self._build()
        self._build_server_control()
        self._server_phase = ""  # "starting" after a column's Start, "failed" when that start did not work
        self._start_watch = QTimer(self, interval=250)
        self._start_watch.timeout.connect(self._watch_start)
        self._tick = QTimer(self, interval=TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        self.add_column()
        self._update_controls()

    # -- layout --------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.server_slot = QVBoxLayout()
        self.server_slot.setContentsMargins(0, 0, 0, 0)

        self.add_column_button = QToolButton()
        self.same_settings = QCheckBox("Same settings for all columns",
                                       toolTip="One system prompt, temperature, top-p and max tokens for every column")
        self.shared_settings = ColumnSettings(title="Settings for every column")
        self.shared_settings.hide()
        self.same_settings.toggled.connect(self._on_same_settings_toggled)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        self.conversation_title = QLabel(NEW_TITLE)
        self.conversation_title.setProperty("role", "heading")
        bar.addWidget(self.conversation_title, 1)
        bar.addWidget(self.same_settings)
        bar.addWidget(self.add_column_button)

        self.columns_splitter = QSplitter(Qt.Orientation.Horizontal, childrenCollapsible=False)
        self.columns_splitter.setHandleWidth(6)
        self.prompt = PromptBox()
        self.prompt.send_button.clicked.connect(self.send)
        self.prompt.stop_button.clicked.connect(self.stop_all)

        main = QWidget()
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(4, 0, 0, 0)
        main_layout.setSpacing(6)
        main_layout.addLayout(bar)
        main_layout.addWidget(self.shared_settings)
        main_layout.addWidget(self.columns_splitter, 1)
        main_layout.addWidget(self.prompt)

        # The conversations on the left.
        self.conversation_list = QListWidget()
        self.conversation_list.setObjectName("ChatConversations")
        self.conversation_list.itemActivated.connect(self._on_conversation_activated)
        self.conversation_list.itemClicked.connect(self._on_conversation_activated)
        self.conversation_list.itemChanged.connect(self._on_conversation_renamed)
        # Arrow keys move the current row without a click: Rename/Delete (F2/Del) follow it.
        self.conversation_list.currentRowChanged.connect(lambda _row: self._update_controls())
        self.conversation_list.itemSelectionChanged.connect(self._update_controls)
        self.conversation_list.setEditTriggers(QListWidget.EditTrigger.EditKeyPressed)
        self.conversation_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conversation_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.conversation_list.setItemDelegate(ConversationDelegate(self.conversation_list))
        self.list_hint = QLabel("No saved conversations yet.\nEach chat is saved here as you go;\n"
                                f"{_shortcut_text('Ctrl+N')} starts a new one.",
                                alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.list_hint.setProperty("role", "muted")
        self.list_stack = QStackedWidget()
        self.list_stack.addWidget(self.list_hint)
        self.list_stack.addWidget(self.conversation_list)
        self.new_action = self._action("New", "Ctrl+N", self.new_conversation, "Start a new conversation")
        self.rename_action = self._action("Rename", "F2", self.rename_selected, "Rename the selected conversation")
        self.delete_action = self._action("Delete", QKeySequence.StandardKey.Delete, self.delete_selected,
                                          "Delete the selected conversation")
        self.send_action = self._action("Send", "Ctrl+Return", self.send, "Send the prompt to every column")
        self.send_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.stop_action = self._action("Stop", "Esc", self.stop_all, "Stop every answer")
        self.focus_action = self._action("Focus prompt", "Ctrl+L", self.prompt.focus, "Put the cursor in the prompt")
        self.column_actions = []
        for n in range(MAX_COLUMNS):
            self.column_actions.append(self._action(f"Model of column {n + 1}", f"Alt+{n + 1}",
                                                    lambda _=False, i=n: self.focus_picker(i),
                                                    f"Pick the model of column {n + 1}"))
        self.add_column_action = self._action("Add column", "Ctrl+T", self.add_column,
                                              f"Add a column, up to {MAX_COLUMNS}")
        self.add_column_button.setDefaultAction(self.add_column_action)
        for action in (self.new_action, self.send_action, self.stop_action, self.focus_action, self.add_column_action,
                       *self.column_actions):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(action)
        for action in (self.rename_action, self.delete_action):  # only while the list has the focus
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            self.conversation_list.addAction(action)
        list_buttons = QHBoxLayout()
        list_buttons.setContentsMargins(0, 0, 0, 0)
        for action in (self.new_action, self.rename_action, self.delete_action):
            button = QToolButton()
            button.setDefaultAction(action)
            list_buttons.addWidget(button)
        list_buttons.addStretch(1)
        heading = QLabel("Conversations")
        heading.setProperty("role", "heading")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 4, 0)
        left_layout.addWidget(heading)
        left_layout.addWidget(self.list_stack, 1)
        left_layout.addLayout(list_buttons)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, childrenCollapsible=False)
        self.splitter.addWidget(left)
        self.splitter.addWidget(main)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([210, 1000])
        left.setMinimumWidth(left.minimumSizeHint().width())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 6)  # the window's message strip is right above: no band between
        layout.setSpacing(4)
        layout.addLayout(self.server_slot, 0)  # the whole width: the server's URL, memory and adapters fit
        layout.addWidget(self.splitter, 1)

    def _action(self, text: str, shortcut, slot, tip: str) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})")
        action.triggered.connect(slot)
        return action

    def menu_actions(self) -> list[QAction]:
        return [self.new_action, self.send_action, self.stop_action, self.focus_action, self.add_column_action]

    # -- panel contract ------------------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        if self.context is not None:
            for signal, slot in self._subscriptions():
                try:
                    signal.disconnect(slot)
                except (RuntimeError, TypeError):
                    pass
        self.stop_all()
        super().set_context(context)
        self.server_info = None
        self._server_phase = ""
        self._start_watch.stop()
        if self.server_control is not None:
            self.server_control.set_context(context)
            self.server_info = self.server_control.info()
        self.conversation = self._new_conversation()
        self._show_conversation()
        if context is None:
            self.sources = []
            for column in self.columns:
                column.set_sources([], forget=True)
            self._fill_list([])
            self._update_controls()
            return
        for signal, slot in self._subscriptions():
            signal.connect(slot)
        # The streaming stack (openai, httpx) is imported now, in the background, not when the first
        # prompt is sent: its first answer's time to first token is then the model's.
        self.jobs.submit("Preparing chat", warm_up, key="chat-warm-up", quiet=True, on_error=lambda _message: None)
        self.refresh_sources()
        self.refresh_list()
        self._update_controls()

    def _subscriptions(self) -> list:
        context = self.context
        return [(context.training_runs_changed, self.refresh_sources),
                (context.generation_runs_changed, self.refresh_sources),
                (context.conversations_changed, self.refresh_list)]

    def _build_server_control(self) -> None:
        """The embedded server control (one for the panel's life; it follows the project itself)."""
        try:
            from studio.ui.server_control import ServerControl
        except ImportError:  # the server control is not in this checkout
            return
        self.server_control = ServerControl(None, self.jobs, self, horizontal=True)
        self.server_control.state_changed.connect(self._on_server_state)
        self.server_control.adapter_result.connect(self._on_adapter_result)
        self.server_control.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.server_slot.addWidget(self.server_control)

    def shutdown(self) -> None:
        self.stop_all()
        self._tick.stop()
        if self.server_control is not None:
            self.server_control.shutdown()

    # -- columns -------------------------------------------------------------------------------------
    def add_column(self) -> ChatColumn | None:
        """A new column (at most three); earlier turns show that it was not there."""
        if len(self.columns) >= MAX_COLUMNS or self.is_streaming():
            return None
        column = self._make_column()
        for turn in self.conversation.turns:
            turn.answers.append(Answer(error="(this column was added later)"))
        if self.conversation.turns:
            self._render_column(len(self.columns) - 1)
        self._sync_specs()
        self._update_controls()
        return column

    def _make_column(self) -> ChatColumn:
        column = ChatColumn(len(self.columns))
        column.source_changed.connect(lambda c=column: self._on_column_source_changed(c))
        column.remove_requested.connect(lambda c=column: self.remove_column(self.columns.index(c)))
        column.export_requested.connect(lambda c=column: self._export_column(c))
        column.start_server_requested.connect(lambda c=column: self._start_server_for(c))
        column.answer_action.connect(lambda turn, key, c=column: self._on_answer_action(self.columns.index(c), turn,
                                                                                          key))
        column.settings_button.setVisible(not self.same_settings.isChecked())
        if self.columns:
            column.settings.set_values(**self.columns[0].settings.values())
        self.columns.append(column)
        self.columns_splitter.addWidget(column)
        column.set_sources(self.sources, default=self._default_source(len(self.columns) - 1))
        self.columns_splitter.setSizes([1000] * len(self.columns))
        return column

    def _sync_specs(self) -> None:
        """The conversation's column specs from the columns (a column without a model keeps its old one)."""
        conv = self.conversation
        old = list(conv.columns)
        conv.columns = [self._spec_of(column) or (old[n] if n < len(old) else None)
                        for n, column in enumerate(self.columns)]

    def remove_column(self, index: int) -> None:
        if len(self.columns) <= 1 or self.is_streaming() or not 0 <= index < len(self.columns):
            return
        column = self.columns.pop(index)
        column.hide()
        column.setParent(None)
        column.deleteLater()
        for n, other in enumerate(self.columns):
            other.index = n
            other.update_tip()
        for turn in self.conversation.turns:
            if index < len(turn.answers):
                turn.answers.pop(index)
        if index < len(self.conversation.columns):
            self.conversation.columns.pop(index)
        self._sync_specs()
        self._update_controls()
        self._save()

    def focus_picker(self, index: int) -> None:
        if 0 <= index < len(self.columns):
            self.columns[index].picker.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _on_same_settings_toggled(self, shared: bool) -> None:
        if shared and self.columns:
            self.shared_settings.set_values(**self.columns[0].settings.values())
        self.shared_settings.setVisible(shared)
        for column in self.columns:
            column.settings_button.setVisible(not shared)
            if shared:
                column.settings_button.setChecked(False)

    def _spec_of(self, column: ChatColumn) -> ColumnSpec | None:
        source = column.source()
        values = (self.shared_settings if self.same_settings.isChecked() else column.settings).values()
        if source is None:
            return None
        return ColumnSpec(source=source, **values)

    # -- sources and the server ------------------------------------------------------------------------
    def refresh_sources(self) -> None:
        if self.context is None:
            return
        self.jobs.submit("Reading chat models", read_sources, self.server_info, key="chat-sources",
                         project=self.context, quiet=True, on_done=self._on_sources,
                         on_error=lambda message: self.messages.show_error(f"Could not list the models: {message}"))

    def _on_sources(self, found: SourceList) -> None:
        self.sources = list(found.sources)
        self._dead = set(found.dead)
        self._last_columns = list(found.last_columns)
        for n, column in enumerate(self.columns):
            column.set_sources(self.sources, default=self._default_source(n))
        self._update_controls()

    def _default_source(self, index: int):
        """A fresh column's model: the newest conversation's model of that column; else, with the server
        running, the base then the newest runs; else the teachers that answer, then base and runs. A teacher
        whose loopback endpoint no longer answers (an old generation run's local server) comes last."""
        offered = [s for s in self._last_columns if any(s.same_model(o) for o in self.sources)]
        if index < len(offered):
            return next(o for o in self.sources if offered[index].same_model(o))
        studio = [s for s in self.sources if s.kind == "base"] + [s for s in self.sources if s.kind == "run"]
        teachers = [s for s in self.sources if s.kind not in STUDIO_KINDS]
        live = [s for s in teachers if s.base_url not in self._dead]
        dead = [s for s in teachers if s.base_url in self._dead]
        ordered = studio + live + dead if self.server_info is not None else live + studio + dead
        return ordered[index] if 0 <= index < len(ordered) else None

    def _on_server_state(self, info: object) -> None:
        self.server_info = info
        if info is not None:
            self._server_phase = ""
            self._start_watch.stop()
        self.refresh_sources()
        for column in self.columns:
            self._check_server_for(column)

    def _on_column_source_changed(self, column: ChatColumn) -> None:
        self._check_server_for(column)
        if column in self.columns and not self.is_streaming():
            self._sync_specs()

    def _on_adapter_result(self, run_id: int, why: str) -> None:
        """After ensure_adapter: the run's columns leave "Loading…" — served, or told why not (and may ask again)."""
        for column in self.columns:
            source = column.source()
            if source is None or source.kind != "run" or source.run_id != run_id:
                continue
            if why:
                column.show_notice(f"{source.label} is not served: {why}")
            else:
                self._check_server_for(column)
        if why:
            self._ensured = {key for key in self._ensured if key[1] != run_id}

    def _check_server_for(self, column: ChatColumn) -> None:
        """Base or run picked: offer to start the server, or load the run into it."""
        source = column.source()
        if source is None or source.kind not in STUDIO_KINDS:
            column.show_notice("")
            return
        info = self.server_info
        if info is None:
            can_start = self.server_control is not None
            if self._server_phase == "starting":
                column.show_notice("Starting the server…", tip="Its state is in the server row above.")
            elif self._server_phase == "failed":
                column.show_notice("The server did not start — see the server row", "Retry" if can_start else "",
                                   tip="Why it failed is in the server row above.")
            else:
                column.show_notice("Server stopped", "Start server" if can_start else "",
                                   tip="The local server is stopped: it serves the base model and your runs.")
            return
        if source.kind == "run" and source.run_id is not None:
            try:
                served_model_id(source, info)
            except ChatSourceError:
                if self.server_control is not None:
                    column.show_notice(f"Loading {source.label} into the server…")
                    if (info.pid, source.run_id) not in self._ensured:  # asked once per server and run
                        self._ensured.add((info.pid, source.run_id))
                        self.server_control.ensure_adapter(source.run_id)
                else:
                    column.show_notice(f"The server does not serve {source.label}: restart it.")
                return
        column.show_notice("")

    def _start_server_for(self, column: ChatColumn) -> None:
        if self.server_control is None:
            return
        self.server_control.start()
        self._server_phase = "starting"
        self._start_watch.start()
        for each in self.columns:
            self._check_server_for(each)

    def _watch_start(self) -> None:
        """While the server starts: a start that fails (or is refused) says so in the columns, not "Starting…".

        ``state_changed`` is only sent for a server that became ready or went away, so the state is read here.
        """
        control = self.server_control
        state = getattr(control, "state", "")
        if control is None or state in ("checking", "starting"):
            return
        self._start_watch.stop()
        if self.server_info is None and control.info() is None:
            self._server_phase = "failed"
        else:
            self._server_phase = ""
        for column in self.columns:
            self._check_server_for(column)

    def _export_column(self, column: ChatColumn) -> None:
        source = column.source()
        if source is None or source.kind != "run" or source.run_id is None or self.context is None:
            return
        try:
            from studio.ui.export_dialog import ExportDialog
        except ImportError:
            self.messages.show_message("Export is not available in this build.", "warning")
            return
        dialog = ExportDialog(self.context, self.jobs, source.run_id, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    # -- sending and streaming ---------------------------------------------------------------------------
    def is_streaming(self) -> bool:
        return bool(self.streams)

    def send(self) -> None:
        """Send the prompt to every column that has a model."""
        if self.project is None or self.is_streaming():
            return
        user, input_text = self.prompt.prompt()
        if not user:
            self.messages.show_message("Write a prompt first" + (" (the instruction)." if self.prompt.mode == ALPACA
                                                                 else "."), "info")
            self.prompt.focus()
            return
        specs = [self._spec_of(column) for column in self.columns]
        missing = [str(n + 1) for n, spec in enumerate(specs) if spec is None]
        if missing:
            self.messages.show_error(f"Column {', '.join(missing)} has no model: pick one at its top (Alt+{missing[0]})"
                                     " or remove the column.")
            return
        self.messages.clear()
        conv = self.conversation
        conv.mode = self.prompt.mode
        conv.columns = list(specs)
        if not conv.turns and (not conv.title or conv.title == NEW_TITLE):
            conv.title = default_title(user)
            self.conversation_title.setText(conv.title)
        conv.turns.append(Turn(user=user, input=input_text, answers=[Answer() for _ in self.columns]))
        turn = len(conv.turns) - 1
        for n, column in enumerate(self.columns):
            column.add_turn(turn, user, input_text)
            spec = specs[n]
            studio = is_studio_server(spec.source, self.server_info)
            # An endpoint that may be a studio server elsewhere: the worker asks it, and sends the Alpaca
            # input as its own field if so (folded into the text otherwise).
            maybe_studio = not studio and spec.source.kind == ENDPOINT and any(t.input for t in conv.turns)
            stream = ColumnStream(n, turn, spec.source, self.server_info,
                                  messages_for(conv, n, studio_server=studio), spec,
                                  client_factory=self.client_factory, parent=self,
                                  studio_messages=messages_for(conv, n, studio_server=True) if maybe_studio else None)
            stream.finished.connect(lambda answer, s=stream: self._on_stream_finished(s, answer))
            self.streams[n] = stream
            column.start_stream()
        start_streams(self.jobs, list(self.streams.values()),
                      title="Chat: " + ", ".join(spec.source.label for spec in specs))
        self.prompt.clear()
        self._tick.start()
        self._update_controls()
        self._save()

    def stop_all(self) -> None:
        """Esc: every stream ends; what arrived is kept."""
        for stream in list(self.streams.values()):
            stream.stop()

    def _on_tick(self) -> None:
        for n, stream in list(self.streams.items()):
            text, count = stream.take()
            column = self.columns[n]
            if text:
                column.append(stream.turn, text, count, stream.first_delta_at)
            column.render(stream.turn)
        if not self.streams:
            self._tick.stop()

    def _on_stream_finished(self, stream: ColumnStream, answer: Answer) -> None:
        n, turn = stream.column, stream.turn
        if self.streams.get(n) is not stream:
            return
        text, count = stream.take()
        column = self.columns[n]
        if text:
            column.append(turn, text, count, stream.first_delta_at)
        view = column.answer_view(turn)
        if view is not None and answer.text and view.text != answer.text:
            # The answer's own text is the truth (a server's last delta may come with the end).
            view.text = ""
            view.append(answer.text)
        del self.streams[n]
        stream.deleteLater()
        if turn < len(self.conversation.turns) and n < len(self.conversation.turns[turn].answers):
            self.conversation.turns[turn].answers[n] = answer
        column.finish(turn, error=answer.error, stats=format_stats(answer))
        if not self.streams:
            self._tick.stop()
            self._update_controls()
        self._save()

    # -- answers: copy, seed, sample ---------------------------------------------------------------------
    def _on_answer_action(self, column: int, turn: int, key: str) -> None:
        if key == "copy":
            self.copy_answer(turn, column)
        elif key == "seed":
            self.use_as_seed(turn, column)
        elif key == "sample":
            self.send_to_curate(turn, column)
        elif key in ("show-seed", "show-sample"):
            answer = self._answer(turn, column)
            if answer is not None:
                if key == "show-seed" and answer.seed_id is not None:
                    self.show_seed(answer.seed_id)
                elif key == "show-sample" and answer.sample_id is not None:
                    self.show_sample(answer.sample_id)

    def show_seed(self, seed_id: int) -> None:
        """The Seeds page, with this seed task selected."""
        seeds = self.open_panel("seeds")
        if seeds is not None and hasattr(seeds, "select_seed"):
            seeds.reload(seed_id)
            seeds.select_seed(seed_id)

    def show_sample(self, sample_id: int) -> None:
        """Curate, newest first, with this sample selected."""
        curate = self.open_panel("curate")
        if curate is not None and hasattr(curate, "select_sample"):
            curate.select_sample(sample_id)

    def _answer(self, turn: int, column: int) -> Answer | None:
        turns = self.conversation.turns
        if 0 <= turn < len(turns) and 0 <= column < len(turns[turn].answers):
            return turns[turn].answers[column]
        return None

    def copy_answer(self, turn: int, column: int) -> None:
        answer = self._answer(turn, column)
        if answer is not None and answer.text:
            QGuiApplication.clipboard().setText(answer.text)
            self.status_message.emit("Answer copied.")

    def use_as_seed(self, turn: int, column: int) -> None:
        self._answer_to("seed", turn, column)

    def send_to_curate(self, turn: int, column: int) -> None:
        self._answer_to("sample", turn, column)

    def _answer_to(self, kind: str, turn: int, column: int) -> None:
        answer = self._answer(turn, column)
        if self.context is None or answer is None or not answer.text:
            return
        snapshot = copy.deepcopy(self.conversation)
        fn = answer_to_seed if kind == "seed" else answer_to_sample
        title = "Adding a seed task" if kind == "seed" else "Sending a sample to Curate"
        self.jobs.submit(title, fn, snapshot, turn, column, project=self.context, quiet=True,
                         on_done=lambda new_id: self._on_answer_added(kind, turn, column, new_id),
                         on_error=lambda message: self.messages.show_error(f"{title} failed: {message}"))

    def _on_answer_added(self, kind: str, turn: int, column: int, new_id: int) -> None:
        answer = self._answer(turn, column)
        if answer is not None:
            if kind == "seed":
                answer.seed_id = new_id
            else:
                answer.sample_id = new_id
            self._save()
        text = (f"Added seed task #{new_id} from this answer (tag from-chat): “Seed #{new_id} ›” under it shows it."
                if kind == "seed" else
                f"Sent sample #{new_id} to Curate as pending (tag from-chat): “Sample #{new_id} ›” under it shows it.")
        self.messages.show_message(text, "info")
        if 0 <= column < len(self.columns):
            view = self.columns[column].answer_view(turn)
            if view is not None:
                view.show_made(**({"seed_id": new_id} if kind == "seed" else {"sample_id": new_id}))

    # -- conversations: list, new, open, rename, delete ----------------------------------------------------
    @staticmethod
    def _new_conversation() -> Conversation:
        return Conversation(id=None, title=NEW_TITLE, mode=CHAT, columns=[], turns=[])

    def new_conversation(self) -> None:
        self.stop_all()
        if self.is_streaming():
            # Streams end within moments; their answers still belong to the old conversation.
            QTimer.singleShot(100, self.new_conversation)
            return
        self.conversation = self._new_conversation()
        self._sync_specs()
        self._show_conversation()
        self.conversation_list.clearSelection()
        self.prompt.focus()

    def refresh_list(self) -> None:
        if self.context is not None:
            self.jobs.submit("Reading conversations", read_conversations, key="chat-list", project=self.context,
                             quiet=True, on_done=self._fill_list,
                             on_error=lambda message: self.messages.show_error(f"Could not read conversations: "
                                                                               f"{message}"))

    def _fill_list(self, summaries: list) -> None:
        self._summaries = list(summaries)
        self._loading_list = True
        try:
            self.conversation_list.clear()
            titles = [summary.title or NEW_TITLE for summary in self._summaries]
            for summary, title in zip(self._summaries, titles):
                item = QListWidgetItem(title)
                item.setData(Qt.ItemDataRole.UserRole, summary.id)
                when = when_text(summary.updated_at) if summary.updated_at else ""
                if titles.count(title) > 1:
                    item.setData(WHEN_ROLE, when)
                item.setToolTip(f"{summary.title}\n{summary.turns} turn(s) · {summary.mode}"
                                + (f" · saved {when}" if when else ""))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.conversation_list.addItem(item)
                if summary.id == self.conversation.id:
                    item.setSelected(True)
                    self.conversation_list.setCurrentItem(item)
        finally:
            self._loading_list = False
        self.list_stack.setCurrentIndex(1 if self._summaries else 0)
        self._update_controls()

    def _on_conversation_activated(self, item: QListWidgetItem) -> None:
        conversation_id = item.data(Qt.ItemDataRole.UserRole)
        if conversation_id is not None and conversation_id != self.conversation.id:
            self.open_conversation(conversation_id)

    def open_conversation(self, conversation_id: int) -> None:
        if self.context is None:
            return
        self.stop_all()
        self.jobs.submit("Opening a conversation", read_conversation, conversation_id, key="chat-open",
                         project=self.context, quiet=True, on_done=self._on_conversation_read,
                         on_error=lambda message: self.messages.show_error(f"Could not open the conversation: "
                                                                           f"{message}"))

    def _on_conversation_read(self, conversation: Conversation) -> None:
        if self.is_streaming():
            QTimer.singleShot(100, lambda c=conversation: self._on_conversation_read(c))
            return
        self.conversation = conversation
        self._show_conversation()

    def _show_conversation(self) -> None:
        """Draw ``self.conversation``: its columns' models and settings, then every turn."""
        conv = self.conversation
        self.conversation_title.setText(conv.title or NEW_TITLE)
        self.prompt.set_mode(conv.mode)
        wanted = max(1, min(MAX_COLUMNS, len(conv.columns)))
        specs = list(conv.columns)
        while len(self.columns) > wanted:
            column = self.columns.pop()
            column.setParent(None)
            column.deleteLater()
        while len(self.columns) < wanted:
            self._make_column()
        for n, column in enumerate(self.columns):
            spec = specs[n] if n < len(specs) else None
            column.clear()
            if spec is not None:
                column.settings.set_values(system=spec.system, temperature=spec.temperature, top_p=spec.top_p,
                                           max_tokens=spec.max_tokens)
                column.set_sources(self.sources, keep=spec.source)
            self._render_column(n)
        if specs and specs[0] is not None and self.same_settings.isChecked():
            first = specs[0]
            self.shared_settings.set_values(system=first.system, temperature=first.temperature, top_p=first.top_p,
                                            max_tokens=first.max_tokens)
        self._sync_specs()
        for item in self.conversation_list.findItems("*", Qt.MatchFlag.MatchWildcard):
            item.setSelected(item.data(Qt.ItemDataRole.UserRole) == conv.id and conv.id is not None)
        self._update_controls()

    def _render_column(self, n: int) -> None:
        column = self.columns[n]
        column.clear()
        for t, turn in enumerate(self.conversation.turns):
            view = column.add_turn(t, turn.user, turn.input)
            answer = turn.answers[n] if n < len(turn.answers) else Answer()
            view.set_answer(answer.text, error=answer.error, stats=format_stats(answer))
            view.show_made(seed_id=answer.seed_id, sample_id=answer.sample_id)

    def rename_selected(self) -> None:
        item = self.conversation_list.currentItem()
        if item is not None:
            self.conversation_list.editItem(item)

    def _on_conversation_renamed(self, item: QListWidgetItem) -> None:
        if self._loading_list or self.context is None:
            return
        conversation_id = item.data(Qt.ItemDataRole.UserRole)
        title = " ".join(item.text().split())
        if not title:
            self.refresh_list()
            return
        if conversation_id == self.conversation.id:
            self.conversation.title = title
            self.conversation_title.setText(title)
        self.jobs.submit("Renaming a conversation", rename_conversation, conversation_id, title, project=self.context,
                         quiet=True, on_error=lambda message: self.messages.show_error(f"Could not rename: {message}"))

    def delete_selected(self) -> None:
        item = self.conversation_list.currentItem()
        if item is None or self.context is None:
            return
        conversation_id = item.data(Qt.ItemDataRole.UserRole)
        answer = QMessageBox.question(self, "Delete conversation",
                                      f"Delete the conversation “{item.text()}”? This cannot be undone.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        if conversation_id == self.conversation.id:
            self.stop_all()
            self.conversation = self._new_conversation()
            self._sync_specs()
            self._show_conversation()
        self.jobs.submit("Deleting a conversation", delete_conversation, conversation_id, project=self.context,
                         quiet=True, on_error=lambda message: self.messages.show_error(f"Could not delete: {message}"))

    # -- saving: one write in flight, the latest state wins ------------------------------------------------
    def _save(self) -> None:
        if self.context is None or not self.conversation.turns:
            return
        if self._saving:
            self._save_again = True
            return
        conv = self.conversation
        if any(spec is None for spec in conv.columns):
            return  # a column without a model yet: saved with the next prompt
        snapshot = copy.deepcopy(conv)
        self._saving = True
        self.jobs.submit("Saving the conversation", save_conversation, snapshot, project=self.context, quiet=True,
                         on_done=lambda new_id, c=conv: self._on_saved(c, new_id), on_error=self._on_save_failed)

    def _on_saved(self, conversation: Conversation, new_id: int) -> None:
        self._saving = False
        if conversation.id is None:
            conversation.id = new_id
        if self._save_again:
            self._save_again = False
            if conversation is self.conversation:
                self._save()

    def _on_save_failed(self, message: str) -> None:
        self._saving = False
        self._save_again = False
        self.messages.show_error(f"The conversation could not be saved: {message}")

    # -- state -----------------------------------------------------------------------------------------------
    def _update_controls(self) -> None:
        streaming = self.is_streaming()
        has_project = self.project is not None
        self.prompt.send_button.setEnabled(has_project and not streaming)
        # Ctrl+Return stays the panel's while answers stream (send() ignores it) instead of reaching the
        # prompt as a new line; Esc is only taken while there is something to stop (a list rename keeps it).
        self.send_action.setEnabled(has_project)
        self.stop_action.setEnabled(streaming)
        self.prompt.stop_button.setEnabled(streaming)
        self.add_column_action.setEnabled(len(self.columns) < MAX_COLUMNS and not streaming)
        for column in self.columns:
            column.close_button.setVisible(len(self.columns) > 1)
            column.close_button.setEnabled(not streaming)
            column.picker.setEnabled(bool(column._sources) and not streaming)
        selected = self.conversation_list.currentItem() is not None
        self.rename_action.setEnabled(selected)
        self.delete_action.setEnabled(selected)
