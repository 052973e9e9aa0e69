"""The blind side-by-side comparison: two answers, Left and Right, no names, one key per vote.

Which system is on which side was drawn once and recorded (``project.votes``); the view only
ever sees sides, so nothing on the voting page can give a system away (no names, no lengths,
no model ids). Every vote is one small committed write on the GUI thread, as a Seeds edit is:
closing or killing the app loses nothing, and reopening goes on at the first pending vote.
Building the queue reads every prompt and answer, so it runs on the job runner. When the last
vote is in, the Reveal page says which side was which system for every vote.

Keys: 1 or ← left better, 2 or → right better, 3 or T tie, 4 or B both bad, S or Space skip,
Ctrl+Z undo the last vote (also one decided before a restart).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QKeyEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView, QFrame, QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea, QSizePolicy,
    QSplitter, QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from studio.core.errors import StudioError
from studio.core.evaluation.model import ANSWERING, JUDGING, Evaluation
from studio.core.evaluation.votes import BlindPair, Vote
from studio.core.wording import count_noun
from studio.ui.jobs import JobRunner
from studio.ui.project_context import ProjectContext

# What each key does: (verdict or side, caption on its button, the keys shown on it).
ACTIONS = (
    ("left", "Left is better", "1  ←"),
    ("tie", "Tie", "3  T"),
    ("both_bad", "Both bad", "4  B"),
    ("right", "Right is better", "2  →"),
    ("skip", "Skip", "S  Space"),
)
KEYS = {
    Qt.Key.Key_1: "left", Qt.Key.Key_Left: "left", Qt.Key.Key_2: "right", Qt.Key.Key_Right: "right",
    Qt.Key.Key_3: "tie", Qt.Key.Key_T: "tie", Qt.Key.Key_4: "both_bad", Qt.Key.Key_B: "both_bad",
    Qt.Key.Key_S: "skip", Qt.Key.Key_Space: "skip",
}
SAID = {"left": "left is better", "right": "right is better", "tie": "a tie", "both_bad": "both bad", "skip": "skipped"}
VERDICT_WORDS = {"tie": "Tie", "both_bad": "Both bad", "skip": "Skipped"}
PREVIEW_CHARS = 90
PROMPT_MAX_HEIGHT = 120  # px of instruction or input before it scrolls

_STYLE = """
QFrame#CompareCard { border: 1px solid palette(mid); border-radius: 6px; background: palette(base); }
QLabel#SideCaption { font-size: 14px; font-weight: 600; }
QLabel#Keycap { border: 1px solid palette(mid); border-bottom-width: 2px; border-radius: 4px; padding: 0 5px;
    font-family: monospace; font-size: 11px; background: palette(alternate-base); }
QFrame#PromptCard { border: 1px solid palette(mid); border-radius: 6px; background: palette(alternate-base); }
QLabel#PromptCaption { font-size: 10px; font-weight: 600; letter-spacing: 1px; color: palette(placeholder-text); }
QLabel#InstructionText { font-size: 14px; font-weight: 600; }
QLabel#InputText { font-family: monospace; }
QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }
QPlainTextEdit#AnswerText { border: none; background: transparent; }
QPushButton#VoteButton { padding: 6px 12px; min-height: 34px; }
"""


def _keycap(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("Keycap")
    label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return label


def _wrapping_label(name: str) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)  # a prompt is text, never markup
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    return label


def _scrolled(widget: QWidget) -> QScrollArea:
    """A long instruction or input scrolls inside its box instead of pushing the answers away."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
    return area


def _read_only_text(name: str) -> QPlainTextEdit:
    edit = QPlainTextEdit()
    edit.setObjectName(name)
    edit.setReadOnly(True)
    edit.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with the view; the wheel still scrolls
    edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
    return edit


class _Card(QFrame):
    """A captioned, bordered box of read-only text."""

    def __init__(self, caption: str, keys: str = "", name: str = "AnswerText"):
        super().__init__()
        self.setObjectName("CompareCard")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        head = QHBoxLayout()
        self.caption = QLabel(caption)
        self.caption.setObjectName("SideCaption")
        head.addWidget(self.caption)
        head.addStretch(1)
        if keys:
            head.addWidget(_keycap(keys))
        layout.addLayout(head)
        self.text = _read_only_text(name)
        layout.addWidget(self.text, 1)


QUEUE_REFRESH_MS = 1000


class BlindCompareView(QWidget):
    """Vote on an evaluation's answers, blind; emits ``voted(evaluation_id)`` after each vote and
    ``finished(evaluation_id)`` when the last one is in."""

    voted = Signal(int)
    finished = Signal(int)

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.context: ProjectContext | None = None
        self.evaluation: Evaluation | None = None
        self.current: Vote | None = None
        self._connections: list = []
        # A run publishes EVALUATIONS for every answer: the queue (every prompt and answer read, a write
        # transaction) is rebuilt at most once a QUEUE_REFRESH_MS, only while shown, only when its own
        # evaluation moved on (running, or updated since the last build).
        self._queue_stale = False
        self._queue_updated_at: float | None = None
        self._queue_timer = QTimer(self, singleShot=True, interval=QUEUE_REFRESH_MS)
        self._queue_timer.timeout.connect(self._refresh_queue)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setStyleSheet(_STYLE)

        self.stack = QStackedWidget()
        self.empty_page = QLabel("Choose an evaluation to compare its answers blind.")
        self.empty_page.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_page.setWordWrap(True)
        self.empty_page.setProperty("role", "muted")
        self.stack.addWidget(self.empty_page)
        self.stack.addWidget(self._build_compare_page())
        self.stack.addWidget(self._build_reveal_page())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

    # -- building ------------------------------------------------------------------------------
    def _build_compare_page(self) -> QWidget:
        page = QWidget()
        self.compare_page = page
        layout = QVBoxLayout(page)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(10)
        head = QHBoxLayout()
        titles = QVBoxLayout()
        heading = QLabel("Blind comparison")
        heading.setProperty("role", "heading")
        hint = QLabel("Which answer is better? The systems stay hidden until every vote is in.")
        hint.setProperty("role", "muted")
        titles.addWidget(heading)
        titles.addWidget(hint)
        head.addLayout(titles, 1)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.progress.setFixedWidth(220)
        self.progress.setAccessibleName("Votes decided")
        head.addWidget(self.progress, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addLayout(head)

        self.prompt_card = QFrame()
        self.prompt_card.setObjectName("PromptCard")
        card = QVBoxLayout(self.prompt_card)
        card.setContentsMargins(14, 10, 14, 10)
        card.setSpacing(4)
        caption = QLabel("INSTRUCTION")
        caption.setObjectName("PromptCaption")
        self.instruction_text = _wrapping_label("InstructionText")
        self.input_label = QLabel("INPUT")
        self.input_label.setObjectName("PromptCaption")
        self.input_text = _wrapping_label("InputText")
        self.instruction_area = _scrolled(self.instruction_text)
        self.input_area = _scrolled(self.input_text)
        for widget in (caption, self.instruction_area, self.input_label, self.input_area):
            card.addWidget(widget)
        self.prompt_card.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        layout.addWidget(self.prompt_card)

        self.left_card = _Card("Left", "1  ←")
        self.right_card = _Card("Right", "2  →")
        for card in (self.left_card, self.right_card):
            font = card.text.font()
            font.setPointSizeF(font.pointSizeF() + 1)
            card.text.setFont(font)
        answers = QSplitter(Qt.Orientation.Horizontal)
        answers.setChildrenCollapsible(False)
        answers.addWidget(self.left_card)
        answers.addWidget(self.right_card)
        layout.addWidget(answers, 1)

        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        self.buttons: dict[str, QPushButton] = {}
        for action, caption, keys in ACTIONS:
            button = QPushButton()
            button.setObjectName("VoteButton")
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space skips; it must never "click" a focused button
            row = QHBoxLayout(button)
            row.setContentsMargins(10, 0, 10, 0)
            row.setSpacing(8)
            text = QLabel(caption)
            text.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            row.addStretch(1)
            row.addWidget(_keycap(keys), 0, Qt.AlignmentFlag.AlignVCenter)
            row.addWidget(text, 0, Qt.AlignmentFlag.AlignVCenter)
            row.addStretch(1)
            button.setMinimumWidth(text.sizeHint().width() + 90)
            button.setAccessibleName(caption)
            button.clicked.connect(lambda _=False, a=action: self.vote(a))
            self.buttons[action] = button
            buttons.addWidget(button, 2 if action in ("left", "right") else 1)
        layout.addLayout(buttons)

        foot = QHBoxLayout()
        self.status = QLabel("")
        self.status.setProperty("role", "muted")
        foot.addWidget(self.status, 1)
        self.undo_button = QPushButton("Undo last vote")
        self.undo_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.undo_button.setToolTip(f"Take the last vote back ({QKeySequence(QKeySequence.StandardKey.Undo).toString(QKeySequence.SequenceFormat.NativeText)})")
        self.undo_button.clicked.connect(self.undo_last)
        foot.addWidget(_keycap("Ctrl+Z"))
        foot.addWidget(self.undo_button)
        layout.addLayout(foot)
        return page

    def _build_reveal_page(self) -> QWidget:
        page = QWidget()
        self.reveal_page = page
        layout = QVBoxLayout(page)
        layout.setContentsMargins(12, 12, 12, 12)
        heading = QLabel("Comparison finished: the systems revealed")
        heading.setProperty("role", "heading")
        layout.addWidget(heading)
        self.reveal_summary = QLabel("")
        self.reveal_summary.setWordWrap(True)
        self.reveal_summary.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.reveal_summary)
        self.reveal_table = QTableWidget(0, 5)
        self.reveal_table.setHorizontalHeaderLabels(["Prompt", "Left was", "Right was", "Your vote", "Winner"])
        self.reveal_table.verticalHeader().setVisible(False)
        self.reveal_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.reveal_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.reveal_table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.reveal_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # Endpoint labels ("student-run-3 @ 127.0.0.1:40787") sized to contents left the prompt two words
        # wide, wrapped: one line each, the system columns capped (the full text is the cell's tooltip).
        header.setMaximumSectionSize(170)
        self.reveal_table.setWordWrap(False)
        self.reveal_table.setTextElideMode(Qt.TextElideMode.ElideRight)  # a prompt and a model id read from the start
        for column in range(1, 5):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.reveal_table, 1)
        foot = QHBoxLayout()
        note = QLabel("Ctrl+Z takes the last vote back and returns to the blind view.")
        note.setProperty("role", "muted")
        foot.addWidget(note, 1)
        back = QPushButton("Undo last vote")
        back.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        back.clicked.connect(self.undo_last)
        foot.addWidget(back)
        layout.addLayout(foot)
        return page

    # -- the evaluation shown ------------------------------------------------------------------------
    def set_evaluation(self, context: ProjectContext | None, evaluation_id: int | None) -> None:
        """Show ``evaluation_id``'s comparison; the queue is (re)built on the job runner first."""
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections.clear()
        self._queue_timer.stop()
        self._queue_stale = False
        self.context, self.evaluation, self.current = context, None, None
        if context is None or evaluation_id is None:
            self._show_empty("Choose an evaluation to compare its answers blind.")
            return
        for signal, slot in ((context.comparisons_changed, self._on_comparisons_changed),
                             (context.evaluations_changed, self._on_evaluations_changed)):
            signal.connect(slot)
            self._connections.append((signal, slot))
        try:
            self.evaluation = context.project.evaluations.get(evaluation_id)
        except StudioError as exc:
            self._show_empty(str(exc))
            return
        self._show_empty("Reading the answers…")
        self._build_queue()

    def _build_queue(self) -> None:
        if self.context is None or self.evaluation is None:
            return
        evaluation_id = self.evaluation.id
        self._queue_stale = False
        self._queue_updated_at = self.evaluation.updated_at

        def build(project) -> int:
            return project.votes.ensure_queue(project.evaluations.get(evaluation_id))

        self.jobs.submit("Preparing the blind comparison", build, project=self.context, key="compare-queue",
                         quiet=True, on_done=lambda _: self._on_queue_ready(evaluation_id),
                         on_error=self._report)

    def _on_queue_ready(self, evaluation_id: int) -> None:
        if not self._live() or self.evaluation.id != evaluation_id:
            return  # another evaluation was chosen meanwhile
        if self.current is not None and self.current.pending:
            self._show_progress()  # more answers arrived while voting: keep the vote on screen
            return
        self._advance()

    @property
    def _votes(self):
        return self.context.project.votes

    def _advance(self, vote: Vote | None = None) -> None:
        """Show ``vote``, else the first pending one, else the Reveal page (or why there is nothing)."""
        if self.context is None or self.evaluation is None:
            return
        vote = vote or self._votes.next_pending(self.evaluation.id)
        if vote is None:
            total = self._votes.progress(self.evaluation.id)[1]
            self.current = None
            if total == 0:
                self._show_empty(f"{self.evaluation.label} has no pair of answers yet: run it first "
                                 "(the answers are fetched by Start in the New evaluation page).")
            else:
                self._show_reveal()
            return
        try:
            shown = self._votes.blind_pair(self.evaluation, vote)
        except StudioError as exc:
            self._show_empty(str(exc))
            return
        self.current = vote
        self._show_pair(shown)
        self._show_progress()
        self.stack.setCurrentWidget(self.compare_page)
        self.setFocus(Qt.FocusReason.OtherFocusReason)

    def _show_pair(self, shown: BlindPair) -> None:
        self.instruction_text.setText(shown.instruction or _chat_text(shown.messages))
        self.input_label.setVisible(bool(shown.input))
        self.input_area.setVisible(bool(shown.input))
        self.input_text.setText(shown.input)
        self._fit_prompt()
        for card, text in ((self.left_card, shown.left), (self.right_card, shown.right)):
            card.text.setPlainText(text if text.strip() else "(an empty answer)")
            card.text.verticalScrollBar().setValue(0)

    def _fit_prompt(self) -> None:
        """Each prompt box as tall as its text, up to a cap (then it scrolls): the answers keep the room."""
        for area, label in ((self.instruction_area, self.instruction_text), (self.input_area, self.input_text)):
            width = max(area.viewport().width(), self.width() - 60, 200)
            area.setFixedHeight(min(PROMPT_MAX_HEIGHT, label.heightForWidth(width) + 2))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_prompt()

    def _show_progress(self) -> None:
        decided, total = self._votes.progress(self.evaluation.id)
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(decided)
        self.progress.setFormat(f"{decided} / {total}")

    def _show_empty(self, text: str) -> None:
        self.current = None
        self.empty_page.setText(text)
        self.stack.setCurrentWidget(self.empty_page)

    def _show_reveal(self) -> None:
        evaluation = self.evaluation
        votes = self._votes.votes(evaluation.id)
        prompts = self._votes.prompt_texts([v.prompt_id for v in votes])
        labels = [s.label or s.key or f"system {i}" for i, s in enumerate(evaluation.systems)]
        self.reveal_table.setRowCount(len(votes))
        tally: dict[str, int] = {}
        for row, vote in enumerate(votes):
            winner = ""
            if vote.verdict in ("a", "b"):
                winner = labels[vote.system_a if vote.verdict == "a" else vote.system_b]
                tally[winner] = tally.get(winner, 0) + 1
                side = "Left" if (vote.verdict == "a") == vote.left_is_a else "Right"
                said = f"{side} is better"
            else:
                said = VERDICT_WORDS.get(vote.verdict or "", "")
                tally[said] = tally.get(said, 0) + 1
            preview = " ".join(prompts.get(vote.prompt_id, "").split())
            preview = preview if len(preview) <= PREVIEW_CHARS else preview[:PREVIEW_CHARS - 1] + "…"
            cells = (preview, labels[vote.left_system], labels[vote.right_system], said, winner or "—")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column == 4 and winner:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                self.reveal_table.setItem(row, column, item)
        wins = [f"{label}: {count_noun(tally.get(label, 0), 'win')}" for label in labels]
        other = [f"{count_noun(tally[w], w.lower() if w != 'Tie' else 'tie')}" for w in ("Tie", "Both bad", "Skipped")
                 if tally.get(w)]
        self.reveal_summary.setText(f"{count_noun(len(votes), 'vote')} on {evaluation.label}. "
                                    + " · ".join(wins + other) + ".")
        self.progress.setValue(self.progress.maximum())
        self.stack.setCurrentWidget(self.reveal_page)

    # -- voting ------------------------------------------------------------------------------------
    def vote(self, action: str) -> None:
        """Record ``action`` (left/right/tie/both_bad/skip) for the vote on screen and move on."""
        if self.current is None or self.context is None or self.evaluation is None:
            return
        vote = self.current
        try:
            self._votes.cast(vote.id, vote.verdict_for_side(action))
        except StudioError as exc:
            self._report(str(exc))
            return
        decided, total = self._votes.progress(self.evaluation.id)
        self.status.setText(f"Saved: vote {decided} of {total}, {SAID[action]}.")
        self._advance()
        self.voted.emit(self.evaluation.id)
        if self._votes.finished(self.evaluation.id):
            self.finished.emit(self.evaluation.id)

    def undo_last(self) -> None:
        """Take back the most recent vote (this session's or an earlier one) and show it again."""
        if self.context is None or self.evaluation is None:
            return
        last = self._votes.last_decided(self.evaluation.id)
        if last is None:
            self.status.setText("No vote to take back.")
            return
        vote = self._votes.undo(last.id)
        self._advance(vote)
        self.status.setText("Took the last vote back: vote again.")
        self.voted.emit(self.evaluation.id)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo_last()
            return
        action = KEYS.get(Qt.Key(event.key()))
        if action is not None and not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            if self.stack.currentWidget() is self.compare_page:
                self.vote(action)
            return
        super().keyPressEvent(event)

    # -- live ----------------------------------------------------------------------------------------
    def _live(self) -> bool:
        """An evaluation is shown and its project is still open (a coalesced signal can outlive it)."""
        return self.context is not None and self.evaluation is not None and self.context.project.conn is not None

    def _on_comparisons_changed(self) -> None:
        """Votes changed elsewhere (another view, a script): follow if the vote on screen was decided."""
        if not self._live():
            return
        if self.current is not None:
            fresh = self._votes.get(self.current.id)
            if fresh.pending:
                self._show_progress()
                return
        if self.stack.currentWidget() is not self.empty_page or self.current is not None:
            self._advance()

    def _on_evaluations_changed(self) -> None:
        """New answers may have arrived (the engine is running): add their votes to the queue, throttled."""
        if not self._live():
            return
        self._queue_stale = True
        if self._shown() and not self._queue_timer.isActive():
            self._queue_timer.start()

    def _shown(self) -> bool:
        """On screen, or would be once its window is (a hidden tab page is not)."""
        window = self.window()
        if window.isVisible():
            return self.isVisible()
        return not self.isHidden() if window is self else self.isVisibleTo(window)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._queue_stale and not self._queue_timer.isActive():
            self._queue_timer.start()

    def _refresh_queue(self) -> None:
        if not self._live() or not self._queue_stale or not self._shown():
            return
        if self.jobs.is_busy("compare-queue"):
            self._queue_timer.start()  # after the build in progress
            return
        try:
            fresh = self.context.project.evaluations.get(self.evaluation.id)
        except StudioError:
            return
        if fresh.status not in (ANSWERING, JUDGING) and fresh.updated_at == self._queue_updated_at:
            self._queue_stale = False  # another evaluation's answers: nothing new for this queue
            return
        self.evaluation = fresh
        self._build_queue()

    def _report(self, text: str) -> None:
        if self.context is not None:
            self.context.report_problem(f"Blind comparison: {text}")
        self._show_empty(text)


def _chat_text(messages: list[dict] | None) -> str:
    if not messages:
        return ""
    return "\n\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)
