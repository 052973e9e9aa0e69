"""The Evaluate panel's New evaluation page: prompt set, systems, judge, settings, estimate, Start / Stop.

Systems are picked from Chat's list (:func:`studio.core.chat.sources.list_sources`: the
teachers of the generation runs, the base model, every trained run) or typed as any
OpenAI-compatible endpoint. The base and trained runs are answered by the studio's local
server: the page embeds a :class:`~studio.ui.server_control.ServerControl`, starts the server
when Start needs it and loads a run's adapter that it does not serve yet, then runs the
evaluation. The estimate (cached work is free) and the run are jobs; the engine's progress is
only collected in the slot and drawn by a 10 Hz timer, so 64 answers a second never flood the
GUI thread. Stop (Esc) asks the engine to wind down: every answer and verdict so far is kept.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.chat.sources import BASE, ENDPOINT, RUN, ModelSource, endpoint_label
from studio.core.evaluation.judge import (
    DEFAULT_TEMPLATE,
    PAIRWISE_JUDGE,
    check_template,
    default_judge_spec,
)
from studio.core.evaluation.model import (
    AnswerSettings,
    EvalSettings,
    EvaluationError,
    JudgeSpec,
    PromptSet,
    SystemSpec,
)
from studio.core.evaluation.systems import from_source, to_source
from studio.core.llm.endpoint import EndpointConfig
from studio.core.llm.keys import DEFAULT_KEY_ENV
from studio.core.registry import JUDGES  # data only: a plugin judge's code is imported when it judges
from studio.core.wording import count_noun
from studio.ui import eval_work as work
from studio.ui.eval_widgets import heading, key_text, make_action, muted
from studio.ui.jobs import Job, JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.project_context import ProjectContext

MAX_SYSTEMS = 6
OTHER = "__other__"
NO_JUDGE = "__none__"
ESTIMATE_DELAY_MS = 400  # after the last change of a setting
REDRAW_MS = 100
SERVER_WATCH_MS = 500
LETTERS = "ABCDEFGH"


class EndpointFields(QWidget):
    """URL, model and key variable of an endpoint typed in by hand (the key itself never: keyring or variable)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.url = QLineEdit(placeholderText="http://127.0.0.1:8000/v1", toolTip="Any OpenAI-compatible base URL")
        self.model = QLineEdit(placeholderText="model id")
        self.key_env = QLineEdit(DEFAULT_KEY_ENV, toolTip="The environment variable with its key, when the OS "
                                                          "keyring has none for this URL (local servers need none)")
        for edit in (self.url, self.model, self.key_env):
            edit.setMinimumWidth(60)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.url, 3)
        layout.addWidget(self.model, 2)
        layout.addWidget(self.key_env, 2)
        for edit in (self.url, self.model, self.key_env):
            edit.textChanged.connect(self.changed)

    def config(self) -> tuple[str, str, str]:
        return self.url.text().strip().rstrip("/"), self.model.text().strip(), self.key_env.text().strip()


class SystemPicker(QWidget):
    """One system: Chat's models, or Other endpoint…; a remove button from the third on."""

    changed = Signal()
    remove_requested = Signal(object)

    def __init__(self, index: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.letter = QLabel()
        self.letter.setMinimumWidth(24)
        font = self.letter.font()
        font.setBold(True)
        self.letter.setFont(font)
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(14)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.currentIndexChanged.connect(self._on_choice)
        self.other = EndpointFields()
        self.other.changed.connect(self.changed)
        self.other.hide()
        self.remove_button = QToolButton(text="✕", autoRaise=True, toolTip="Remove this system")
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.letter)
        top.addWidget(self.combo, 1)
        top.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        other_row = QHBoxLayout()
        other_row.setContentsMargins(30, 0, 0, 0)
        other_row.addWidget(self.other)
        layout.addLayout(other_row)
        self.set_index(index)
        self.set_sources([])

    def set_index(self, index: int) -> None:
        self.index = index
        self.letter.setText(LETTERS[index])
        self.combo.setToolTip(f"System {LETTERS[index]} (Alt+{index + 1}): a teacher endpoint, the base model, a "
                              "trained run, or any endpoint" + (" — A is the student whose lost prompts go back to "
                                                                 "the seeds" if index == 0 else ""))
        self.remove_button.setVisible(index >= 2)

    def set_sources(self, sources: list[ModelSource], preferred: ModelSource | None = None) -> None:
        current = preferred or self.source()
        self.combo.blockSignals(True)
        self.combo.clear()
        for source in sources:
            where = {ENDPOINT: "endpoint", BASE: "local server", RUN: "trained run · local server"}[source.kind]
            self.combo.addItem(f"{source.label}  —  {where}", source)
        self.combo.addItem("Other endpoint…", OTHER)
        index = -1
        if current is not None:
            index = next((i for i, s in enumerate(sources) if s.same_model(current)), -1)
        if index < 0 and self._other_chosen:
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(max(0, index))
        self.combo.blockSignals(False)
        self._on_choice()

    @property
    def _other_chosen(self) -> bool:
        return not self.other.isHidden()

    def choose(self, source: ModelSource | None = None, *, other: tuple[str, str, str] | None = None) -> None:
        """Pick a listed model, or Other endpoint with (URL, model, key variable)."""
        if other is not None:
            self.combo.setCurrentIndex(self.combo.count() - 1)
            self.other.url.setText(other[0])
            self.other.model.setText(other[1])
            self.other.key_env.setText(other[2] or DEFAULT_KEY_ENV)
            return
        for i in range(self.combo.count()):
            data = self.combo.itemData(i)
            if isinstance(data, ModelSource) and source is not None and data.same_model(source):
                self.combo.setCurrentIndex(i)
                return

    def source(self) -> ModelSource | None:
        data = self.combo.currentData()
        return data if isinstance(data, ModelSource) else None

    def spec(self) -> SystemSpec:
        """The system picked; EvaluationError naming what is missing."""
        source = self.source()
        if source is not None:
            return from_source(source)
        url, model, key_env = self.other.config()
        if not url.startswith(("http://", "https://")) or not model:
            raise EvaluationError(f"System {LETTERS[self.index]}: type the endpoint's URL (http://…/v1) and model, "
                                  "or pick a listed model.")
        return SystemSpec(ENDPOINT, label=model, base_url=url, model=model, api_key_env=key_env or DEFAULT_KEY_ENV)

    def local(self) -> bool:
        source = self.source()
        return source is not None and source.local

    def _on_choice(self) -> None:
        self.other.setVisible(self.combo.currentData() == OTHER)
        self.changed.emit()


class JudgeBox(QGroupBox):
    """No judge (human votes only) or an endpoint, its editable pairwise template and verdict markers."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Judge", parent)
        self.combo = QComboBox(toolTip="The LLM that judges every pair in both orders; or none, and vote yourself "
                                       "on the Compare page")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(14)
        self.combo.currentIndexChanged.connect(self._on_choice)
        self.other = EndpointFields()
        self.other.changed.connect(self.changed)
        self.kind = QComboBox(toolTip="How the judge decides: the built-in pairwise judge or one a plugin adds")
        for entry in JUDGES:
            self.kind.addItem(entry.label, entry.key)
            self.kind.setItemData(self.kind.count() - 1, entry.help or entry.label, Qt.ItemDataRole.ToolTipRole)
        self.kind.currentIndexChanged.connect(self.changed)
        self.kind_row = QWidget()
        kind_layout = QHBoxLayout(self.kind_row)
        kind_layout.setContentsMargins(0, 0, 0, 0)
        kind_layout.addWidget(QLabel("Kind"))
        kind_layout.addWidget(self.kind, 1)
        self.kind_row.setVisible(self.kind.count() > 1)  # only the built-in judge: nothing to choose
        self.template = QPlainTextEdit()
        self.template.setTabChangesFocus(True)
        self.template.setToolTip("The pairwise prompt: {instruction}, {input}, {answer_a} and {answer_b} are filled "
                                 "in; the verdict is the last marker in the judge's answer")
        self.template.setMinimumHeight(self.fontMetrics().lineSpacing() * 7)
        self.template.setMinimumWidth(200)
        self.template.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.template.textChanged.connect(self.changed)
        self.reset_button = QPushButton("Reset to default", clicked=self.reset_template,
                                        toolTip="The default template: it tells the judge to ignore order and length")
        self.marker_a = QLineEdit("[[A]]")
        self.marker_b = QLineEdit("[[B]]")
        self.marker_tie = QLineEdit("[[C]]")
        markers = QHBoxLayout()
        markers.setContentsMargins(0, 0, 0, 0)
        for text, edit in (("first", self.marker_a), ("second", self.marker_b), ("tie", self.marker_tie)):
            edit.setMaximumWidth(80)
            edit.textChanged.connect(self.changed)
            markers.addWidget(QLabel(text))
            markers.addWidget(edit)
        markers.addStretch(1)
        markers.addWidget(self.reset_button)
        for edit in (self.marker_a, self.marker_b, self.marker_tie):
            edit.setMaximumWidth(56)
        self.details = QWidget()
        dl = QVBoxLayout(self.details)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.other)
        dl.addWidget(self.kind_row)
        dl.addWidget(self.template, 1)
        dl.addLayout(markers)
        dl.addWidget(muted("Every pair is judged in both orders; a verdict counts only when both agree "
                           "(otherwise it is an inconsistent tie)."))
        self.none_hint = muted("Without a judge, the answers are compared by you: blind, on the Compare page "
                               "(Ctrl+3). A judge can be added later by a new evaluation: the answers are cached.")
        self.filler = QWidget()
        self.filler.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.addWidget(self.combo)
        layout.addWidget(self.none_hint)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.filler, 1)
        self._template_loaded = False
        self.set_sources([])

    def set_sources(self, sources: list[ModelSource]) -> None:
        current = self.combo.currentData()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem("No judge — human votes only", NO_JUDGE)
        for source in sources:
            if source.kind == ENDPOINT:
                self.combo.addItem(f"{source.label}  —  endpoint", source)
        self.combo.addItem("Other endpoint…", OTHER)
        index = 0
        if isinstance(current, ModelSource):
            index = next((i for i in range(self.combo.count()) if isinstance(self.combo.itemData(i), ModelSource)
                          and self.combo.itemData(i).same_model(current)), 0)
        elif current == OTHER:
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)
        self._on_choice()

    def choose_other(self, url: str, model: str, key_env: str = DEFAULT_KEY_ENV) -> None:
        self.combo.setCurrentIndex(self.combo.count() - 1)
        self.other.url.setText(url)
        self.other.model.setText(model)
        self.other.key_env.setText(key_env)

    def choose_none(self) -> None:
        self.combo.setCurrentIndex(0)

    def choose_kind(self, key: str) -> None:
        """Select judge kind ``key``; one no longer registered (its plugin gone) is shown as it is, and
        starting with it says which plugin is missing."""
        index = self.kind.findData(key)
        if index < 0:
            self.kind.addItem(f"{key} (not installed)", key)
            index = self.kind.count() - 1
            self.kind_row.setVisible(True)
        self.kind.setCurrentIndex(index)

    def reset_template(self) -> None:
        self.template.setPlainText(DEFAULT_TEMPLATE)
        for edit, marker in ((self.marker_a, "[[A]]"), (self.marker_b, "[[B]]"), (self.marker_tie, "[[C]]")):
            edit.setText(marker)

    def spec(self) -> JudgeSpec | None:
        data = self.combo.currentData()
        if data == NO_JUDGE:
            return None
        if isinstance(data, ModelSource):
            endpoint = EndpointConfig(base_url=data.base_url, model=data.model,
                                      api_key_env=data.api_key_env or DEFAULT_KEY_ENV)
        else:
            url, model, key_env = self.other.config()
            if not url.startswith(("http://", "https://")) or not model:
                raise EvaluationError("Judge: type the endpoint's URL (http://…/v1) and model, pick a listed one, "
                                      "or choose No judge.")
            endpoint = EndpointConfig(base_url=url, model=model, api_key_env=key_env or DEFAULT_KEY_ENV)
        template = self.template.toPlainText()
        kind = self.kind.currentData() or PAIRWISE_JUDGE.key
        if kind == PAIRWISE_JUDGE.key:  # a plugin judge reads the template its own way
            check_template(template)
        markers = [m.text().strip() for m in (self.marker_a, self.marker_b, self.marker_tie)]
        if not all(markers) or len(set(markers)) < 3:
            raise EvaluationError("Judge: the three verdict markers must be different and not empty "
                                  "(the defaults are [[A]], [[B]], [[C]]).")
        return replace(default_judge_spec(endpoint), endpoint=endpoint.to_dict(), template=template,
                       marker_a=markers[0], marker_b=markers[1], marker_tie=markers[2],
                       label=endpoint_label(endpoint.base_url, endpoint.model), kind=kind)

    def _on_choice(self) -> None:
        data = self.combo.currentData()
        self.details.setVisible(data != NO_JUDGE)
        self.none_hint.setVisible(data == NO_JUDGE)
        self.filler.setVisible(data == NO_JUDGE)
        self.other.setVisible(data == OTHER)
        if data != NO_JUDGE and not self._template_loaded:
            self._template_loaded = True
            if not self.template.toPlainText().strip():
                self.reset_template()
        self.changed.emit()


class NewEvaluationPage(QWidget):
    """Set up and run an evaluation. ``run_started(id)`` once it exists, ``run_finished(id)`` at its end."""

    run_started = Signal(int)
    run_finished = Signal(int)
    busy_changed = Signal(bool)  # running or queued for the server, or neither (the list's actions follow)

    def __init__(self, jobs: JobRunner, messages: MessageArea, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs, self.messages = jobs, messages
        self.context: ProjectContext | None = None
        # Tests inject how systems and the judge are reached (None: systems.client_factory, the judge's endpoint).
        self.client_factory = None
        self.judge_client_factory = None
        self.server_control = None
        self.server_info = None
        self.sources: list[ModelSource] = []
        self.pickers: list[SystemPicker] = []
        self.job: Job | None = None
        self.handle: work.RunHandle | None = None
        self.evaluation_id: int | None = None  # the one running (or last run) here
        self._queued: tuple | None = None  # (draft, evaluation_id) waiting for the server or an adapter
        self._waiting_adapters: set[int] = set()
        self._progress: object | None = None
        self._pending_set: int | None = None
        self._launch_token = 0  # which launch the run callbacks belong to (a project switch drops the old one's)
        self._sources_read = False  # the project's models were read once (the pickers' defaults are set)
        self._requested_specs: list[SystemSpec] | None = None  # Duplicate's systems, waiting for the models
        self._build()
        self._estimate_timer = QTimer(self, singleShot=True, interval=ESTIMATE_DELAY_MS)
        self._estimate_timer.timeout.connect(self._estimate)
        self._redraw_timer = QTimer(self, interval=REDRAW_MS)
        self._redraw_timer.timeout.connect(self._redraw)
        self._server_watch = QTimer(self, interval=SERVER_WATCH_MS)
        self._server_watch.timeout.connect(self._watch_server)
        self._set_running(False)

    # -- layout ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.server_slot = QVBoxLayout()
        self.server_slot.setContentsMargins(0, 0, 0, 0)
        self._build_server_control()

        what = QGroupBox("What to compare")
        form = QFormLayout(what)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        self.name = QLineEdit(placeholderText="optional, e.g. run-3 vs teacher on self-instruct")
        self.prompt_set = QComboBox(toolTip="The evaluation-only prompts every system answers (Prompt sets page)")
        self.prompt_set.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.prompt_set.setMinimumContentsLength(14)
        self.prompt_set.currentIndexChanged.connect(self._schedule_estimate)
        form.addRow("Name", self.name)
        form.addRow("Prompt set", self.prompt_set)
        self.systems_box = QVBoxLayout()
        self.systems_box.setSpacing(6)
        systems = QWidget()
        systems.setLayout(self.systems_box)
        form.addRow("Systems", systems)
        self.add_system_action = make_action(self, "Add system", "Ctrl+T", self.add_system,
                                             f"Compare one more system (up to {MAX_SYSTEMS}); every pair is compared")
        add_button = QToolButton()
        add_button.setDefaultAction(self.add_system_action)
        add_row = QHBoxLayout()
        add_row.setContentsMargins(30, 0, 0, 0)
        add_row.addWidget(add_button)
        add_row.addStretch(1)
        form.addRow("", add_row)
        student = muted("A is the student: the prompts it loses can become seed tasks (Results page).")
        student.setContentsMargins(30, 0, 0, 0)
        form.addRow("", student)
        for _ in range(2):
            self.add_system()

        settings = QGroupBox("Answers")
        grid = QGridLayout(settings)
        self.max_tokens = QSpinBox(minimum=1, maximum=32768, value=512, toolTip="The longest answer a system may give")
        self.temperature = QDoubleSpinBox(minimum=0, maximum=2, singleStep=0.1, value=0.0,
                                          toolTip="0 makes answers repeatable (and cacheable)")
        self.concurrency = QSpinBox(minimum=1, maximum=512, value=32, toolTip="Requests in flight, over every system "
                                                                              "and the judge together")
        self.budget = QDoubleSpinBox(minimum=0, maximum=100_000, decimals=2, prefix="$ ", specialValueText="no cap",
                                     toolTip="No request starts whose worst case could take the spend over this")
        self.attempts = QSpinBox(minimum=1, maximum=20, value=EvalSettings().max_attempts,
                                 toolTip="Tries per request: a 429 or 5xx is retried with backoff this many times "
                                         "in all before the prompt is counted as an error")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0,
                             toolTip="Draws the left/right order of the blind comparison (recorded with each vote)")
        self.system_prompt = QLineEdit(placeholderText="none", toolTip="A system message sent with every prompt")
        for row, (label, widget) in enumerate((("Max tokens", self.max_tokens), ("Temperature", self.temperature),
                                               ("Concurrency", self.concurrency), ("Budget", self.budget),
                                               ("Attempts", self.attempts), ("Blind order seed", self.seed))):
            grid.addWidget(QLabel(label), row // 2, (row % 2) * 2)
            grid.addWidget(widget, row // 2, (row % 2) * 2 + 1)
        grid.addWidget(QLabel("System prompt"), 3, 0)
        grid.addWidget(self.system_prompt, 3, 1, 1, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        for spin in (self.max_tokens, self.concurrency):
            spin.valueChanged.connect(self._schedule_estimate)
        for spin in (self.temperature, self.budget):
            spin.valueChanged.connect(self._schedule_estimate)
        self.system_prompt.textChanged.connect(self._schedule_estimate)

        self.judge = JudgeBox()
        self.judge.changed.connect(self._schedule_estimate)

        self.estimate_label = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.estimate_label.setToolTip("Requests still to make and what they cost at the price table's rates; "
                                       "answers and verdicts already cached cost nothing")
        self.start_action = make_action(self, "Start", "Ctrl+Return", self.start,
                                        "Create the evaluation and run it: answers, then verdicts")
        self.stop_action = make_action(self, "Stop", "Esc", self.stop, "Stop; every answer and verdict so far is kept")
        self.start_button = QPushButton("Start evaluation", clicked=self.start,
                                        toolTip=self.start_action.toolTip())
        self.start_button.setDefault(True)
        self.stop_button = QPushButton("Stop", clicked=self.stop, toolTip=self.stop_action.toolTip())
        self.progress = QProgressBar(format=f"Not started: Start ({key_text('Ctrl+Return')})")
        self.progress.setValue(0)
        self.phase_label = QLabel(wordWrap=True)
        self.counters_label = muted("")
        self.counters_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        run = QGroupBox("Run")
        rl = QVBoxLayout(run)
        est = QHBoxLayout()
        est_title = QLabel("Estimate:")
        est.addWidget(est_title, 0, Qt.AlignmentFlag.AlignTop)
        est.addWidget(self.estimate_label, 1)
        rl.addLayout(est)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        rl.addLayout(buttons)
        rl.addWidget(self.progress)
        rl.addWidget(self.phase_label)
        rl.addWidget(self.counters_label)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(what)
        ll.addWidget(settings)
        ll.addWidget(run)
        ll.addStretch(1)
        columns = QHBoxLayout()
        columns.setContentsMargins(0, 0, 0, 0)
        columns.addWidget(left, 5)
        columns.addWidget(self.judge, 4)
        body = QWidget()
        bl = QVBoxLayout(body)
        bl.setContentsMargins(0, 0, 4, 0)
        bl.addWidget(heading("New evaluation"))
        bl.addWidget(muted("Every system answers every prompt (answers are cached per system, prompt and settings: a "
                           "rerun or another judge pays nothing twice); then the judge compares every pair in both "
                           "orders. Without a judge, vote yourself on the Compare page."))
        bl.addLayout(columns, 1)
        self.scroll = scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.server_slot)
        layout.addWidget(scroll, 1)

    def _build_server_control(self) -> None:
        try:
            from studio.ui.server_control import ServerControl
        except ImportError:  # the server control is not in this checkout
            return
        self.server_control = ServerControl(None, self.jobs, self, horizontal=True)
        self.server_control.setToolTip("The studio's local server answers for the base model and trained runs")
        self.server_control.state_changed.connect(self._on_server_state)
        self.server_control.adapter_result.connect(self._on_adapter_result)
        self.server_control.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.server_slot.addWidget(self.server_control)

    # -- systems -----------------------------------------------------------------------------------------
    def add_system(self) -> SystemPicker | None:
        if len(self.pickers) >= MAX_SYSTEMS:
            return None
        picker = SystemPicker(len(self.pickers))
        picker.changed.connect(self._schedule_estimate)
        picker.remove_requested.connect(self.remove_system)
        picker.set_sources(self.sources, self._default_source(len(self.pickers)))
        self.pickers.append(picker)
        self.systems_box.addWidget(picker)
        action = make_action(self, f"System {LETTERS[picker.index]}", f"Alt+{picker.index + 1}",
                             lambda p=picker: p.combo.setFocus(Qt.FocusReason.ShortcutFocusReason),
                             f"Pick system {LETTERS[picker.index]}")
        picker.focus_action = action  # type: ignore[attr-defined]
        self.add_system_action.setEnabled(len(self.pickers) < MAX_SYSTEMS)
        self._schedule_estimate()
        return picker

    def remove_system(self, picker: SystemPicker) -> None:
        if len(self.pickers) <= 2 or picker not in self.pickers:
            return
        self.pickers.remove(picker)
        self.removeAction(picker.focus_action)  # type: ignore[attr-defined]
        picker.focus_action.deleteLater()  # type: ignore[attr-defined]
        picker.setParent(None)
        picker.deleteLater()
        for index, each in enumerate(self.pickers):
            each.set_index(index)
            self._bind_focus_key(each)
        self.add_system_action.setEnabled(True)
        self._schedule_estimate()

    def _bind_focus_key(self, picker: SystemPicker) -> None:
        """Alt+N follows the picker's letter once one above it is removed (else two Alt+3 and a dead Alt+4)."""
        action: QAction = picker.focus_action  # type: ignore[attr-defined]
        letter = LETTERS[picker.index]
        action.setText(f"System {letter}")
        action.setShortcut(QKeySequence(f"Alt+{picker.index + 1}"))
        action.setToolTip(f"Pick system {letter} ({key_text(f'Alt+{picker.index + 1}')})")

    def _default_source(self, index: int) -> ModelSource | None:
        """A: the newest trained run (the student); B: the newest teacher; then whatever is left."""
        runs = [s for s in self.sources if s.kind == RUN]
        teachers = [s for s in self.sources if s.kind == ENDPOINT]
        taken = [p.source() for p in self.pickers]
        order = runs + teachers + [s for s in self.sources if s.kind == BASE] if index == 0 else \
            teachers + [s for s in self.sources if s.kind == BASE] + runs
        for source in order:
            if not any(t is not None and t.same_model(source) for t in taken):
                return source
        return None

    # -- the project -------------------------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        if self.context is not None:
            for signal in (self.context.training_runs_changed, self.context.generation_runs_changed):
                signal.disconnect(self.refresh_sources)
        self.stop()
        # The old project's run stops on its own; its callbacks must not reach this project (the token), and
        # Start must not wait for it (is_busy).
        self._launch_token += 1
        self.job, self.handle, self._queued, self._pending_set = None, None, None, None
        self._waiting_adapters.clear()
        self._redraw_timer.stop()
        self.evaluation_id = None
        self.context = context
        self.server_info = None
        if self.server_control is not None:
            self.server_control.set_context(context)
            self.server_info = self.server_control.info()
        self.sources = []
        self._sources_read, self._requested_specs = False, None
        self.prompt_set.clear()
        if context is not None:
            for signal in (context.training_runs_changed, context.generation_runs_changed):
                signal.connect(self.refresh_sources)
            self.refresh_sources()
        self._set_running(False)

    def refresh_sources(self) -> None:
        if self.context is not None:
            self.jobs.submit("Reading the models to compare", work.read_sources, self.server_info,
                             key="eval-sources", project=self.context, quiet=True, on_done=self._on_sources,
                             on_error=lambda message: self.messages.show_error(message))

    def _on_sources(self, sources: list[ModelSource]) -> None:
        first = not self._sources_read
        self._sources_read = True
        self.sources = list(sources)
        for index, picker in enumerate(self.pickers):
            picker.set_sources(self.sources, self._default_source(index) if first else None)
        self.judge.set_sources(self.sources)
        self._apply_requested()  # a Duplicate made before the list came: its picks, not the defaults
        self._schedule_estimate()

    def set_prompt_sets(self, sets: list[PromptSet]) -> None:
        current = self._pending_set if self._pending_set is not None else self.prompt_set.currentData()
        self.prompt_set.blockSignals(True)
        self.prompt_set.clear()
        for prompt_set in sets:
            self.prompt_set.addItem(f"{prompt_set.name}  ({count_noun(prompt_set.prompt_count, 'prompt')})",
                                    prompt_set.id)
        index = self.prompt_set.findData(current) if current is not None else -1
        self.prompt_set.setCurrentIndex(index if index >= 0 else (0 if sets else -1))
        if index >= 0:
            self._pending_set = None
        self.prompt_set.blockSignals(False)
        self._schedule_estimate()

    def choose_set(self, set_id: int) -> None:
        index = self.prompt_set.findData(set_id)
        if index >= 0:
            self.prompt_set.setCurrentIndex(index)
        else:
            self._pending_set = set_id

    def load_from(self, evaluation: object) -> None:
        """Fill the form with ``evaluation``'s set, systems, judge and settings (a rerun, or another judge:
        whatever is cached is not paid for again)."""
        ev = evaluation  # an Evaluation
        if ev.set_id is not None:  # type: ignore[attr-defined]
            self.choose_set(ev.set_id)  # type: ignore[attr-defined]
        systems = list(ev.systems)  # type: ignore[attr-defined]
        while len(self.pickers) < min(len(systems), MAX_SYSTEMS):
            self.add_system()
        while len(self.pickers) > max(2, len(systems)):
            self.remove_system(self.pickers[-1])
        self._requested_specs = systems[:MAX_SYSTEMS]
        self._apply_requested()
        judge = ev.judge  # type: ignore[attr-defined]
        if judge is None:
            self.judge.choose_none()
        else:
            endpoint = judge.endpoint
            self.judge.choose_other(str(endpoint.get("base_url", "")), str(endpoint.get("model", "")),
                                    str(endpoint.get("api_key_env") or DEFAULT_KEY_ENV))
            self.judge.template.setPlainText(judge.template)
            self.judge.choose_kind(judge.kind)
            for edit, marker in ((self.judge.marker_a, judge.marker_a), (self.judge.marker_b, judge.marker_b),
                                 (self.judge.marker_tie, judge.marker_tie)):
                edit.setText(marker)
        settings = ev.settings  # type: ignore[attr-defined]
        self.max_tokens.setValue(settings.answers.max_tokens)
        self.temperature.setValue(settings.answers.temperature)
        self.system_prompt.setText(settings.answers.system_prompt)
        self.concurrency.setValue(settings.concurrency)
        self.attempts.setValue(settings.max_attempts)
        self.budget.setValue(settings.budget_usd or 0.0)
        self.seed.setValue(settings.seed)
        self.name.setText("")
        self._schedule_estimate()

    def _apply_requested(self) -> None:
        """Pick the systems Duplicate asked for. Until the models are read (a job) a run or the base cannot be
        picked: they are picked when the list arrives; one that is not in it is said plainly."""
        specs = self._requested_specs
        if specs is None:
            return
        missing = []
        for picker, spec in zip(self.pickers, specs, strict=False):
            listed = next((s for s in self.sources if _same_system(s, spec)), None)
            if listed is not None:
                picker.choose(listed)
            elif spec.kind == ENDPOINT:
                picker.choose(other=(spec.base_url, spec.model, spec.api_key_env))
            elif self._sources_read:
                missing.append(f"system {LETTERS[picker.index]} ({spec.label or spec.kind})")
        if not self._sources_read:
            return  # applied again when the models are read
        self._requested_specs = None
        if missing:
            self.messages.show_error(f"Duplicate could not pick {', '.join(missing)}: it is not among the models "
                                     "here (a deleted run, or no base model set): pick another on New evaluation.")

    def shutdown(self) -> None:
        self.stop()
        if self.server_control is not None:
            self.server_control.shutdown()

    # -- the draft ---------------------------------------------------------------------------------------
    def draft(self) -> work.Draft:
        """What the form asks for; EvaluationError naming the first thing missing."""
        set_id = self.prompt_set.currentData()
        if set_id is None:
            raise EvaluationError("No prompt set: import one on the Prompt sets page (Ctrl+1, then Ctrl+I).")
        systems = [picker.spec() for picker in self.pickers]
        answers = AnswerSettings(max_tokens=self.max_tokens.value(), temperature=round(self.temperature.value(), 3),
                                 system_prompt=self.system_prompt.text().strip())
        settings = EvalSettings(answers=answers, concurrency=self.concurrency.value(),
                                max_attempts=self.attempts.value(), budget_usd=self.budget.value() or None,
                                seed=self.seed.value())
        return work.Draft(self.name.text().strip(), int(set_id), systems, self.judge.spec(), settings)

    def _schedule_estimate(self) -> None:
        if self.context is not None and not self.is_running():
            self._estimate_timer.start()

    def _estimate(self) -> None:
        if self.context is None:
            self.estimate_label.setText("Open a project to see the estimate.")
            return
        try:
            draft = self.draft()
        except EvaluationError as exc:
            self.estimate_label.setText(str(exc))
            return
        self.estimate_label.setText("estimating…")
        self.jobs.submit("Estimating the evaluation's cost", work.estimate_draft, draft, self.server_info,
                         key="eval-estimate",
                         project=self.context, quiet=True, on_done=self.estimate_label.setText,
                         on_error=lambda message: self.estimate_label.setText(f"No estimate: {message}"))

    # -- running -----------------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.job is not None and self.job.running

    def is_busy(self) -> bool:
        """Running, or waiting for the server / an adapter before it runs."""
        return self.is_running() or self._queued is not None

    def busy_with(self, evaluation_id: int) -> bool:
        """Whether ``evaluation_id`` is running here, or queued to continue once the server is ready."""
        queued = self._queued[1] if self._queued is not None else None
        return (self.is_running() and self.evaluation_id == evaluation_id) or queued == evaluation_id

    def start(self) -> None:
        """Start a new evaluation from the form."""
        if self.context is None or self.is_busy():
            return
        try:
            draft = self.draft()
        except EvaluationError as exc:
            self.messages.show_error(str(exc))
            return
        local = [p.source() for p in self.pickers if p.local()]
        self._prepare(draft, None, [s for s in local if s is not None])

    def continue_evaluation(self, evaluation: object) -> None:
        """Run a stopped or failed evaluation again: only what is missing is asked for."""
        if self.context is None or self.is_busy():
            return
        local = [to_source(spec) for spec in evaluation.systems if spec.kind in (RUN, BASE)]  # type: ignore
        self._prepare(None, evaluation.id, local)  # type: ignore[attr-defined]

    def _prepare(self, draft: work.Draft | None, evaluation_id: int | None, local: list[ModelSource]) -> None:
        """Base or runs need the local server, serving each run: start it / load adapters first."""
        self._queued = (draft, evaluation_id, local)
        if not local:
            self._launch()
            return
        self._set_running(False)
        info = self.server_control.info() if self.server_control is not None else None
        if info is None:
            if self.server_control is None:
                self._queued = None
                self._set_running(False)  # Continue / Duplicate come back
                self.messages.show_error("The base model and trained runs are answered by the studio's local server, "
                                         "which is not running: start it (`distill-studio serve`) and Start again.")
                return
            self.phase_label.setText("Starting the local server for the base model and trained runs…")
            self.server_control.start()
            self._server_watch.start()
            return
        self.server_info = info
        missing = {s.run_id for s in local if s.kind == RUN and s.run_id is not None
                   and not _serves(info, s.run_id)}
        if missing:
            self._waiting_adapters = set(missing)
            self.phase_label.setText(f"Loading {count_noun(len(missing), 'trained run')} into the local server…")
            for run_id in sorted(missing):
                self.server_control.ensure_adapter(run_id)
            return
        self._launch()

    def _watch_server(self) -> None:
        control = self.server_control
        if control is None or self._queued is None:
            self._server_watch.stop()
            return
        if control.info() is not None:
            self._server_watch.stop()
            self._on_server_state(control.info())
        elif control.state in ("failed", "stopped"):
            self._server_watch.stop()
            self._queued = None
            self.phase_label.setText("Not started: the local server did not start (see the server row above).")
            self.messages.show_error("The local server did not start, so the base model and trained runs cannot "
                                     "answer: see the server row at the top of this page.")
            self._set_running(False)

    def _on_server_state(self, info: object) -> None:
        self.server_info = info
        self.refresh_sources()  # the base's id comes from the running server
        if self._queued is not None and info is not None and not self._waiting_adapters and not self.is_running():
            draft, evaluation_id, local = self._queued
            self._prepare(draft, evaluation_id, local)

    def _on_adapter_result(self, run_id: int, why: str) -> None:
        if run_id not in self._waiting_adapters:
            return
        if why:
            self._waiting_adapters.clear()
            self._queued = None
            self.phase_label.setText("Not started.")
            self.messages.show_error(f"Run {run_id} cannot be served by the local server: {why}.")
            self._set_running(False)
            return
        self._waiting_adapters.discard(run_id)
        if not self._waiting_adapters and self._queued is not None:
            self.server_info = self.server_control.info() if self.server_control is not None else self.server_info
            self._launch()

    def _launch(self) -> None:
        assert self._queued is not None and self.context is not None
        draft, evaluation_id, _local = self._queued
        self._queued = None
        self.handle = work.RunHandle()
        self._progress = None
        self.evaluation_id = evaluation_id
        self.messages.clear()
        self.progress.setRange(0, 0)
        self.progress.setFormat("starting…")
        self.phase_label.setText("Creating the evaluation…" if draft is not None else f"Continuing evaluation "
                                                                                      f"{evaluation_id}…")
        self.counters_label.setText("")
        kwargs = {}
        if self.client_factory is not None:
            kwargs["client_factory"] = self.client_factory
        if self.judge_client_factory is not None:
            kwargs["judge_client_factory"] = self.judge_client_factory
        handle = self.handle
        self._launch_token += 1
        token = self._launch_token

        def current(slot: Callable[[object], None]) -> Callable[[object], None]:
            return lambda value: slot(value) if token == self._launch_token else None

        self.job = self.jobs.submit("Evaluating", work.run_evaluation, draft, evaluation_id, self.server_info, handle,
                                    key="eval-run", project=self.context, report=True, on_cancel=handle.stop,
                                    on_yield=current(self._on_report), on_done=current(self._on_run_done),
                                    on_error=current(self._on_run_failed), **kwargs)
        self._set_running(True)
        self._redraw_timer.start()
        self.show_run_box()

    def show_run_box(self) -> None:
        """Scroll the Run box into view: at 1280 x 800 with three systems it sits below the fold, and a run
        whose progress and phase cannot be seen looks like nothing happened."""
        self.scroll.ensureWidgetVisible(self.counters_label, 0, 8)
        self.scroll.ensureWidgetVisible(self.start_button, 0, 8)

    def stop(self) -> None:
        if self._queued is not None:
            self._queued = None
            self._waiting_adapters.clear()
            self._server_watch.stop()
            self.phase_label.setText("Not started.")
            self._set_running(False)
        if self.handle is not None and self.is_running():
            self.handle.stop()
            self.phase_label.setText("Stopping: requests in flight finish, everything so far is kept…")

    def _on_report(self, value: object) -> None:
        if isinstance(value, work.Created):
            self.evaluation_id = value.evaluation_id
            self.run_started.emit(value.evaluation_id)
        else:
            self._progress = value  # drawn by the timer

    def _redraw(self) -> None:
        progress = self._progress
        if progress is None:
            return
        done, total = int(getattr(progress, "done", 0)), int(getattr(progress, "total", 0) or 0)
        phase = str(getattr(progress, "phase", ""))
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self.progress.setFormat(f"{phase.capitalize() or 'Working'}: %v / %m")
        message = str(getattr(progress, "message", "") or "")
        what = {"answering": "Answering: every system answers every prompt",
                "judging": "Judging: every pair of answers, in both orders"}.get(phase, phase.capitalize())
        self.phase_label.setText(what + (f" — {message}" if message else ""))
        self.counters_label.setText(
            f"done {done:,} of {total:,} · from the cache {int(getattr(progress, 'cached', 0)):,} · "
            f"errors {int(getattr(progress, 'errors', 0)):,} · cost ${float(getattr(progress, 'cost', 0.0)):.4f}")

    def _on_run_done(self, result: object) -> None:
        self._redraw()
        self._end_run()
        status = str(getattr(result, "status", ""))
        message = str(getattr(result, "message", "") or "")
        answers, cached_a = int(getattr(result, "answers", 0)), int(getattr(result, "cached_answers", 0))
        verdicts, cached_j = int(getattr(result, "judgments", 0)), int(getattr(result, "cached_judgments", 0))
        errors, cost = int(getattr(result, "errors", 0)), float(getattr(result, "cost", 0.0))
        summary = (f"{count_noun(answers, 'new answer')} (+{cached_a:,} cached) · "
                   f"{count_noun(verdicts, 'new verdict')} (+{cached_j:,} cached) · "
                   f"{count_noun(errors, 'error')} · ${cost:.4f}")
        title = {"done": "Finished", "stopped": "Stopped", "failed": "Failed"}.get(status, status.capitalize())
        # The engine's message may start with the same word ("Stopped; every answer…"): say it once.
        said = message.lower().startswith(title.lower())
        self.phase_label.setText(message if said else f"{title}." + (f" {message}" if message else ""))
        self.counters_label.setText(summary)
        if status == "done":
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            self.progress.setFormat("Finished: see Results (Ctrl+4)")
        else:
            self.progress.setFormat(f"{title}: Continue (Ctrl+Shift+Return) asks only for what is missing")
        if status == "failed":
            self.messages.show_error(message or "The evaluation failed.")
        elif status == "stopped" and message:
            self.messages.show_message(message, "warning")
        if self.evaluation_id is not None:
            self.run_finished.emit(self.evaluation_id)

    def _on_run_failed(self, message: str) -> None:
        self._end_run()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Not finished")
        self.phase_label.setText("Not finished: nothing stored so far is lost.")
        self.messages.show_error(message)
        if self.evaluation_id is not None:
            self.run_finished.emit(self.evaluation_id)

    def _end_run(self) -> None:
        self._redraw_timer.stop()
        self.job = None
        self.handle = None
        self._set_running(False)
        # The outcome's words are set after this and may add lines: scroll once the layout has followed.
        QTimer.singleShot(50, self, self.show_run_box)  # dropped if the page goes
        self._schedule_estimate()  # what is cached now costs nothing next time

    def _set_running(self, running: bool) -> None:
        busy = running or self._queued is not None
        has_project = self.context is not None
        self.start_action.setEnabled(has_project and not busy)
        self.start_button.setEnabled(has_project and not busy)
        self.stop_action.setEnabled(busy)
        self.stop_button.setEnabled(busy)
        self.add_system_action.setEnabled(not busy and len(self.pickers) < MAX_SYSTEMS)
        self.busy_changed.emit(busy)


def _same_system(source: ModelSource, spec: SystemSpec) -> bool:
    """Whether a picker's model is the system an evaluation compared (a run by its id: its label may change)."""
    target = to_source(spec)
    if source.kind != target.kind:
        return False
    if target.kind == ENDPOINT:
        return source.base_url.rstrip("/") == target.base_url.rstrip("/") and source.model == target.model
    if target.kind == RUN:
        return source.run_id is not None and source.run_id == target.run_id
    return True


def _serves(info: object, run_id: int) -> bool:
    catalog = getattr(info, "catalog", None)
    return catalog is not None and any(m.run_id == run_id for m in catalog.models)
