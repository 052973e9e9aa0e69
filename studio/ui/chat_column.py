"""One column of the Chat panel: a model picker, its settings, and the transcript of its answers.

Rendering is built so a 10k-token answer never janks the window. An answer is a stack of
Markdown *segments* (auto-height ``QTextBrowser``\\ s without scroll bars): completed blocks
(split at blank lines outside code fences) are frozen into a segment once they reach
:data:`SEGMENT_CHARS`, and only the last, live segment is re-rendered while tokens stream in.
So a re-render costs the size of one segment, not of the whole answer, and the panel's tick
(≤ 30 a second) re-renders only columns that received text. The column's scroll area follows
the bottom while text arrives unless the user scrolled up.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QIcon,
    QPainter,
    QPalette,
    QPixmap,
    QTextBlockFormat,
    QTextCursor,
    QTextFormat,
    QTextOption,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.elided_label import ElidedLabel

SEGMENT_CHARS = 1500  # completed Markdown blocks are frozen into a segment of about this size
FOLLOW_SLACK_PX = 24  # "at the bottom" within this many pixels: the scroll keeps following


# -- Markdown helpers (pure) ----------------------------------------------------------------------
def completed_prefix(text: str) -> int:
    """Where the last complete Markdown block ends: after the last blank line outside a code fence.

    Everything before that point can be rendered once and never again; the rest may still change
    (a paragraph being written, an open code fence, a list growing).
    """
    cut = 0
    in_fence = False
    pos = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        pos += len(line)
        if not in_fence and not stripped and line.endswith("\n"):
            cut = pos
    return cut


def style_code_blocks(browser: QTextBrowser) -> None:
    """Give fenced code a monospace font and a tinted background (the importer sets neither colour nor font reliably)."""
    document = browser.document()
    palette = browser.palette()
    base = palette.color(QPalette.ColorRole.Base)
    tint = QColor(palette.color(QPalette.ColorRole.AlternateBase))
    if tint == base:
        tint = base.darker(106) if base.lightness() > 128 else base.lighter(130)
    mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    block = document.begin()
    cursor = QTextCursor(document)
    cursor.beginEditBlock()  # one relayout for all of it, not one per code block
    while block.isValid():
        fmt = block.blockFormat()
        if fmt.hasProperty(QTextFormat.Property.BlockCodeFence) or fmt.nonBreakableLines():
            cursor.setPosition(block.position())
            cursor.setPosition(block.position() + max(0, block.length() - 1), QTextCursor.MoveMode.KeepAnchor)
            styled = QTextBlockFormat()
            styled.setBackground(tint)
            styled.setLeftMargin(6)
            styled.setNonBreakableLines(False)  # wrapped, not cut off at the column's edge
            cursor.mergeBlockFormat(styled)
            char = cursor.charFormat()
            char.setFontFamilies([mono.family()])
            char.setFontFixedPitch(True)
            cursor.mergeCharFormat(char)
        block = block.next()
    cursor.endEditBlock()


class MarkdownSegment(QTextBrowser):
    """A read-only Markdown view as tall as its text (no scroll bar of its own)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setOpenExternalLinks(True)
        # Transparent through the palette, not a style sheet: a style sheet per segment costs a parse
        # and a polish each time one is made (one per answer and per frozen segment).
        self.viewport().setAutoFillBackground(False)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Base, QColor(0, 0, 0, 0))
        self.setPalette(palette)
        self.document().setDocumentMargin(2)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)  # long code lines wrap
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.text = ""
        self.setFixedHeight(8)

    def set_markdown(self, text: str) -> None:
        """Render ``text`` (code blocks tinted and wrapped: a walk over the blocks, only when there is a fence)."""
        if text == self.text:
            return
        self.text = text
        # No size signal per step (each would be a Python slot call, and under a busy GIL each such
        # call waits): the height is fitted once at the end.
        layout = self.document().documentLayout()
        layout.blockSignals(True)
        try:
            self.setMarkdown(text)
            if "```" in text or "~~~" in text:
                style_code_blocks(self)
        finally:
            layout.blockSignals(False)
        self._fit()

    def _fit(self, *_args: object) -> None:
        height = int(self.document().size().height() + 0.999) + 2
        if height != self.height():
            self.setFixedHeight(max(8, height))

    def wheelEvent(self, event) -> None:
        event.ignore()


class AnswerView(QWidget):
    """One column's answer to one turn: Markdown segments, then stats and actions once it ended."""

    action = Signal(str)  # "copy" | "seed" | "sample" | "show-seed" | "show-sample"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.text = ""
        self._frozen = 0  # characters of ``text`` already in frozen segments
        self._dirty = False
        self.render_count = 0  # re-renders of the live segment (tests: throttling)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self._segments = QVBoxLayout()
        self._segments.setContentsMargins(0, 0, 0, 0)
        self._segments.setSpacing(0)
        layout.addLayout(self._segments)
        self.live = self._new_segment()
        self.waiting = QLabel("…waiting for the first token")
        self.waiting.setProperty("role", "muted")
        layout.addWidget(self.waiting)
        self.error = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setProperty("role", "error")
        self.error.hide()
        layout.addWidget(self.error)
        self.stats = QLabel(wordWrap=True)
        self.stats.setProperty("role", "muted")
        self.stats.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stats.hide()
        layout.addWidget(self.stats)
        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.setSpacing(2)
        self.buttons: dict[str, QToolButton] = {}
        for key, text, tip in (("copy", "Copy", "Copy this answer's text"),
                               ("seed", "Use as seed", "Add a seed task: this turn's prompt, this answer as its output"),
                               ("sample", "To Curate", "Add a pending sample to Curate: this prompt and answer")):
            button = QToolButton(text=text, toolTip=tip, autoRaise=True)
            button.clicked.connect(lambda _=False, k=key: self.action.emit(k))
            button.hide()
            footer.addWidget(button)
            self.buttons[key] = button
        self.links: dict[str, QToolButton] = {}  # to the seed task / sample made from this answer
        for key, tip in (("show-seed", "Show the seed task made from this answer on the Seeds page"),
                         ("show-sample", "Show the sample made from this answer in Curate")):
            button = QToolButton(toolTip=tip, autoRaise=True)
            button.setProperty("role", "link")
            button.clicked.connect(lambda _=False, k=key: self.action.emit(k))
            button.hide()
            footer.addWidget(button)
            self.links[key] = button
        footer.addStretch(1)
        layout.addLayout(footer)

    def _new_segment(self) -> MarkdownSegment:
        segment = MarkdownSegment(self)
        self._segments.addWidget(segment)
        return segment

    # -- streaming (GUI thread) -------------------------------------------------------------------
    def append(self, delta: str) -> None:
        if delta:
            if not self.text:
                self.waiting.hide()
            self.text += delta
            self._dirty = True

    def render(self) -> bool:
        """Re-render what changed since the last call (cost: one segment); True if anything was drawn."""
        if not self._dirty:
            return False
        self._dirty = False
        live_text = self.text[self._frozen:]
        cut = completed_prefix(live_text)
        if cut >= SEGMENT_CHARS:
            self.live.set_markdown(live_text[:cut].rstrip("\n"))
            self._frozen += cut
            self.live = self._new_segment()
            live_text = live_text[cut:]
        self.live.set_markdown(live_text)
        self.render_count += 1
        return True

    def segments(self) -> int:
        return self._segments.count()

    def finish(self, *, error: str = "", stats: str = "", actions: bool = True) -> None:
        self.render()
        self.waiting.hide()
        if error:
            self.error.setText(error)
            self.error.show()
        self.stats.setText(stats)
        self.stats.setVisible(bool(stats))
        for key, button in self.buttons.items():
            button.setVisible(actions and bool(self.text) and (key == "copy" or not error))

    def show_made(self, seed_id: int | None = None, sample_id: int | None = None) -> None:
        """Links to the seed task / Curate sample made from this answer ("Seed #12 ›")."""
        for key, made, noun in (("show-seed", seed_id, "Seed"), ("show-sample", sample_id, "Sample")):
            if made is not None:
                self.links[key].setText(f"{noun} #{made} ›")
                self.links[key].show()

    def set_answer(self, text: str, *, error: str = "", stats: str = "") -> None:
        """A stored answer, drawn at once (opening a conversation)."""
        self.append(text)
        self.finish(error=error, stats=stats)


class UserView(QLabel):
    """The prompt of one turn, as the user wrote it (Alpaca: instruction, then input)."""

    def __init__(self, user: str, input_text: str = "", parent: QWidget | None = None):
        text = user if not input_text else f"{user}\n\nInput: {input_text}"
        super().__init__(text, parent, wordWrap=True,
                         textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setObjectName("ChatUser")
        self.setMargin(6)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)


class ColumnSettings(QWidget):
    """System prompt, temperature, top-p and max tokens (one per column, or one shared)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, title: str = ""):
        super().__init__(parent)
        self.system = QPlainTextEdit(placeholderText="System prompt (optional)", toolTip="Sent first, as the system message")
        self.system.setTabChangesFocus(True)
        line = self.system.fontMetrics().lineSpacing()
        self.system.setFixedHeight(int(line * 2.6) + 10)
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.1, value=0.7, decimals=2,
                                          toolTip="Sampling temperature (0 = greedy)")
        self.top_p = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, value=1.0, decimals=2,
                                    toolTip="Nucleus sampling: keep the smallest set of tokens with this probability")
        self.max_tokens = QSpinBox(minimum=1, maximum=32768, value=512, singleStep=64,
                                   toolTip="The longest answer, in tokens")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for label, widget in (("Temp", self.temperature), ("Top-p", self.top_p), ("Max tokens", self.max_tokens)):
            caption = QLabel(label)
            caption.setProperty("role", "muted")
            caption.setBuddy(widget)
            row.addWidget(caption)
            row.addWidget(widget)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        if title:
            heading = QLabel(title)
            heading.setProperty("role", "muted")
            layout.addWidget(heading)
        layout.addWidget(self.system)
        layout.addLayout(row)
        self.system.textChanged.connect(self.changed)
        for spin in (self.temperature, self.top_p, self.max_tokens):
            spin.valueChanged.connect(self.changed)

    def values(self) -> dict:
        return {"system": self.system.toPlainText().strip(), "temperature": self.temperature.value(),
                "top_p": self.top_p.value(), "max_tokens": self.max_tokens.value()}

    def set_values(self, *, system: str = "", temperature: float = 0.7, top_p: float = 1.0,
                   max_tokens: int = 512) -> None:
        blockers = [w.blockSignals(True) for w in (self.system, self.temperature, self.top_p, self.max_tokens)]
        try:
            self.system.setPlainText(system)
            self.temperature.setValue(temperature)
            self.top_p.setValue(top_p)
            self.max_tokens.setValue(max_tokens)
        finally:
            for widget, was in zip((self.system, self.temperature, self.top_p, self.max_tokens), blockers):
                widget.blockSignals(was)


class ChatColumn(QFrame):
    """A model picker, its settings, a notice line and the transcript (one ``AnswerView`` per turn)."""

    source_changed = Signal()
    remove_requested = Signal()
    export_requested = Signal()
    start_server_requested = Signal()
    answer_action = Signal(int, str)  # turn index, "copy" | "seed" | "sample" | "show-seed" | "show-sample"

    def __init__(self, index: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ChatColumn")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # The prompt of each turn as a tinted box, in the theme's colours.
        self.setStyleSheet("QLabel#ChatUser { background: palette(alternate-base); border: 1px solid palette(mid);"
                           " border-radius: 6px; }")
        self.index = index
        self._sources: list = []
        self._answers: dict[int, AnswerView] = {}
        self._follow = True
        self._started_at: float | None = None
        self._first_at: float | None = None
        self._deltas = 0

        self.picker = ElidingComboBox()
        self.picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.picker.setMinimumContentsLength(6)  # a narrow column still shows a model's name, cut with "…"
        self.picker.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.picker.currentIndexChanged.connect(self._on_picker_changed)
        self.settings_button = QToolButton(text="⚙", checkable=True, autoRaise=True,
                                           toolTip="This column's system prompt, temperature, top-p and max tokens")
        self.export_button = QToolButton(text="⤓", autoRaise=True,
                                         toolTip="Export this run… (the adapter, a merged model or GGUF)")
        self.export_button.clicked.connect(self.export_requested)
        self.close_button = QToolButton(text="✕", autoRaise=True, toolTip="Remove this column")
        self.close_button.clicked.connect(self.remove_requested)
        side = self.picker.sizeHint().height()
        for button in (self.settings_button, self.export_button, self.close_button):
            button.setFixedSize(side, side)  # square icons: the picker keeps the width for the model's name
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.setSpacing(2)
        header.addWidget(self.picker, 1)
        header.addWidget(self.settings_button)
        header.addWidget(self.export_button)
        header.addWidget(self.close_button)

        self.settings = ColumnSettings(self)
        self.settings.hide()
        self.settings_button.toggled.connect(self.settings.setVisible)

        self.notice = ElidedLabel("")  # one short line; the whole text is its tooltip
        self.notice.setProperty("role", "muted")
        self.notice.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.notice_button = QPushButton("Start server")
        self.notice_button.clicked.connect(self.start_server_requested)
        notice_row = QHBoxLayout()
        notice_row.setContentsMargins(0, 0, 0, 0)
        notice_row.addWidget(self.notice, 1)
        notice_row.addWidget(self.notice_button)
        self.notice_box = QWidget()
        self.notice_box.setLayout(notice_row)
        self.notice_box.hide()

        self.transcript = QWidget()
        self.transcript.setObjectName("ChatTranscript")
        self._turns = QVBoxLayout(self.transcript)
        self._turns.setContentsMargins(6, 6, 6, 6)
        self._turns.setSpacing(8)
        self.hint = QLabel("Pick a model above, write a prompt below:\nCtrl+Return sends it to every column.",
                           alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.hint.setProperty("role", "muted")
        self._turns.addWidget(self.hint)
        self._turns.addStretch(1)
        self.scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.transcript)
        bar = self.scroll.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)

        # Live numbers while an answer streams; once it ends its stats are under the answer, not here twice.
        self.live_stats = ElidedLabel("")
        self.live_stats.setProperty("role", "muted")
        self.live_stats.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.live_stats.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.settings)
        layout.addWidget(self.notice_box)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.live_stats)
        self._update_export()

    # -- the model --------------------------------------------------------------------------------
    def set_sources(self, sources: Sequence, keep: object | None = None, *, forget: bool = False,
                    default: object | None = None) -> None:
        """Fill the picker; keep the current choice (or ``keep``), shown even when no longer offered,
        unless ``forget`` (the project closed); with no choice yet, ``default`` (else the column's n-th model)."""
        wanted = None if forget else keep if keep is not None else self.source()
        self._sources = list(sources)
        if wanted is not None and not any(s.same_model(wanted) for s in self._sources):
            self._sources.append(wanted)  # a stored conversation's model that is gone: still shown, marked
        self.picker.blockSignals(True)
        try:
            self.picker.clear()
            if not self._sources:
                self.picker.addItem("No models yet: start the server, train a run, or run Generate")
                self.picker.setEnabled(False)
            else:
                self.picker.setEnabled(True)
                palette = self.picker.palette()
                for row, source in enumerate(self._sources):
                    self.picker.addItem(kind_icon(getattr(source, "kind", ""), palette), _short_label(source))
                    self.picker.setItemData(row, _source_label(source), Qt.ItemDataRole.ToolTipRole)
                target = wanted if wanted is not None else default
                chosen = next((n for n, s in enumerate(self._sources) if target is not None
                               and s.same_model(target)), min(self.index, len(self._sources) - 1))
                self.picker.setCurrentIndex(chosen)
        finally:
            self.picker.blockSignals(False)
        self._update_export()
        self.source_changed.emit()

    def source(self):
        if not self._sources:
            return None
        row = self.picker.currentIndex()
        return self._sources[row] if 0 <= row < len(self._sources) else None

    def _on_picker_changed(self, _row: int) -> None:
        self._update_export()
        self.source_changed.emit()

    def _update_export(self) -> None:
        source = self.source()
        self.export_button.setVisible(source is not None and getattr(source, "kind", "") == "run")
        self.update_tip()

    def update_tip(self) -> None:
        """The picker's tooltip: the whole model name (the picker may show it cut), then its shortcut."""
        source = self.source()
        n = self.index + 1
        tip = f"The model of column {n} (Alt+{n}): a teacher endpoint, the base model or a trained run"
        self.picker.setToolTip(f"{_source_label(source)}\n{tip}" if source is not None else tip)

    def show_notice(self, text: str, button: str = "", tip: str = "") -> None:
        self.notice.setText(text)
        self.notice.setToolTip(tip or text)
        self.notice_button.setVisible(bool(button))
        if button:
            self.notice_button.setText(button)
        self.notice_box.setVisible(bool(text))

    # -- the transcript ----------------------------------------------------------------------------
    def clear(self) -> None:
        for view in self._answers.values():
            view.deleteLater()
        self._answers.clear()
        while self._turns.count() > 2:
            item = self._turns.takeAt(1)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.hint.show()
        self.live_stats.setText("")
        self.live_stats.hide()
        self._follow = True

    def add_turn(self, turn: int, user: str, input_text: str = "") -> AnswerView:
        self.hint.hide()
        position = self._turns.count() - 1  # before the stretch
        self._turns.insertWidget(position, UserView(user, input_text))
        view = AnswerView()
        view.action.connect(lambda key, t=turn: self.answer_action.emit(t, key))
        self._turns.insertWidget(position + 1, view)
        self._answers[turn] = view
        return view

    def answer_view(self, turn: int) -> AnswerView | None:
        return self._answers.get(turn)

    def start_stream(self) -> None:
        self._started_at = time.monotonic()
        self._first_at = None
        self._deltas = 0
        self._follow = True
        self.live_stats.setText("waiting for the first token…")
        self.live_stats.setToolTip("")
        self.live_stats.show()

    def append(self, turn: int, delta: str, deltas: int, first_at: float | None) -> None:
        view = self._answers.get(turn)
        if view is None:
            return
        view.append(delta)
        self._deltas += deltas
        if first_at is not None and self._first_at is None:
            self._first_at = first_at

    def render(self, turn: int) -> bool:
        view = self._answers.get(turn)
        drawn = view.render() if view is not None else False
        if drawn and self._started_at is not None:
            now = time.monotonic()
            first = self._first_at
            if first is not None:
                rate = self._deltas / (now - first) if now - first > 0.05 else 0.0
                self.live_stats.setText(f"TTFT {first - self._started_at:.2f} s · {rate:.1f} tok/s · "
                                        f"{self._deltas} tokens so far")
        return drawn

    def finish(self, turn: int, *, error: str, stats: str) -> None:
        view = self._answers.get(turn)
        if view is not None:
            view.finish(error=error, stats=stats)
        self.live_stats.setText("")
        self.live_stats.hide()
        self._started_at = None

    # -- scrolling: follow the bottom unless the user scrolled up --------------------------------------
    def _on_scrolled(self, value: int) -> None:
        bar = self.scroll.verticalScrollBar()
        self._follow = value >= bar.maximum() - FOLLOW_SLACK_PX

    def _on_range_changed(self, _low: int, high: int) -> None:
        if self._follow:
            self.scroll.verticalScrollBar().setValue(high)

    @property
    def following(self) -> bool:
        return self._follow


class ElidingComboBox(QComboBox):
    """A combo box whose current text is cut with "…" to its width (a plain one clips it mid-letter)."""

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                            QStyle.SubControl.SC_ComboBoxEditField, self)
        room = field.width() - (option.iconSize.width() + 4 if not option.currentIcon.isNull() else 0)
        option.currentText = self.fontMetrics().elidedText(option.currentText, Qt.TextElideMode.ElideRight,
                                                           max(0, room))
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


KIND_PREFIX = {"endpoint": "Teacher", "base": "Base", "run": "Student"}


KIND_LETTER = {"endpoint": "T", "base": "B", "run": "S"}
_ICONS: dict[tuple[str, str], QIcon] = {}


def _source_label(source: object) -> str:
    """The full name: 'Student · alpaca-r16 (#1)' (the picker's tooltip)."""
    kind = getattr(source, "kind", "")
    label = getattr(source, "label", "") or getattr(source, "model", "")
    prefix = KIND_PREFIX.get(kind, kind.capitalize())
    return label if label.lower().startswith(prefix.lower()) else f"{prefix} · {label}"


def _short_label(source: object) -> str:
    """What the picker shows: the model's own name; its kind is the item's icon."""
    return getattr(source, "label", "") or getattr(source, "model", "")


def kind_icon(kind: str, palette: QPalette) -> QIcon:
    """A small round badge with the kind's letter (T teacher, B base, S student), in the theme's colours."""
    letter = KIND_LETTER.get(kind, (kind[:1] or "?").upper())
    fill = palette.color(QPalette.ColorRole.Highlight if kind == "run" else QPalette.ColorRole.Mid)
    key = (letter, fill.name())
    if key not in _ICONS:
        pixmap = QPixmap(32, 32)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawEllipse(QRectF(1, 1, 30, 30))
        font = painter.font()
        font.setBold(True)
        font.setPixelSize(19)
        painter.setFont(font)
        painter.setPen(QColor("white") if fill.lightness() < 170 else QColor("black"))
        painter.drawText(QRectF(0, 0, 32, 32), Qt.AlignmentFlag.AlignCenter, letter)
        painter.end()
        _ICONS[key] = QIcon(pixmap)
    return _ICONS[key]


def format_stats(answer: object) -> str:
    """'TTFT 0.21 s · 45.3 tok/s · 312 tokens · stop' from an Answer's numbers."""
    parts = []
    ttft = getattr(answer, "ttft_s", None)
    rate = getattr(answer, "tokens_per_s", None)
    if ttft is not None:
        parts.append(f"TTFT {ttft:.2f} s")
    if rate is not None:
        parts.append(f"{rate:.1f} tok/s")
    tokens = getattr(answer, "tokens", 0)
    if tokens:
        parts.append(f"{tokens} tokens")
    reason = getattr(answer, "finish_reason", None)
    if reason and reason not in ("stop", "error"):  # an error shows once, with its text
        parts.append({"length": "cut at max tokens", "cancelled": "stopped", "stopped": "stopped"}.get(reason, reason))
    return " · ".join(parts)
