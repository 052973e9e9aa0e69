"""The Generate page: pick a teacher, set the run, watch samples and cost arrive.

Teacher traffic never touches the GUI thread: the connection test, model listing, key saving
and every read of the generation tables are ``self.jobs`` jobs; so is a run (a
:class:`GenerationWorker`, shown in the status bar, stopped by its Cancel too). Engine events are only collected in the slot; a 10 Hz timer
redraws, so a fast teacher never floods the GUI thread. Slots gather parameters and call core.
Problems show in the window's one :class:`MessageArea` (``self.messages``), cleared when the next action succeeds.

*Send requests* picks a generation backend (``GENERATION_BACKENDS``): its settings are drawn
from the entry's plain-data ``options`` (no plugin import to show them); only choosing a
plugin's backend loads it, on a job, for its price factor (the estimate at batch prices). A
batch backend's state shows in a box of its own; a run whose batch is still at the provider
is stopped ``detach``-ed when the window closes and picked up when the project opens again.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
    QMessageBox, QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSpinBox, QSplitter, QTableWidget,
    QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from studio.core.generation import events as ev
from studio.core.generation.config import ConfigError, RunConfig
from studio.core.generation.engine import RunResult, describe_estimate, run_estimate
from studio.core.generation.filters import default_index_factory, describe_reasons, reasons
from studio.core.generation.prompts import SeedExample
from studio.core.llm.endpoint import EndpointConfig, preset
from studio.core.llm.keys import DEFAULT_KEY_ENV, store_key
from studio.core.llm.models import ConnectionReport, check_connection
from studio.core.project import Project
from studio.core.registry import ENDPOINT_KINDS, GENERATION_BACKENDS, GENERATION_MODES, RegistryError
from studio.ui.app_settings import settings as app_settings
from studio.ui.backend_options import BackendOptionsForm
from studio.ui.backend_status import BackendStatusBox, holds_work
from studio.ui.generate_worker import GenerationWorker
from studio.ui.hinted_view import HintedView
from studio.ui.jobs import JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.panels import Panel
from studio.ui.project_context import ProjectContext

FEED_LIMIT = 200
TABLE_REFRESH_MS = 1500  # a run changes its tables many times a second: redraw the visible one at this pace
SETTINGS_SHARE = 0.36  # of the panel's width, when there is room
MAX_EXAMPLES = 10  # the most examples a prompt may show (the spin box's maximum)
HELP = {f.name: f.metadata.get("help", "") for f in fields(RunConfig)}


# -- reads for jobs (worker thread, on a project handle) ------------------------------------------
def read_seeds(project: Project) -> tuple[int, list[SeedExample]]:
    return project.seeds.count(), project.generation.seed_examples(limit=MAX_EXAMPLES)


def read_resumable(project: Project) -> dict | None:
    """The newest run a user would continue: stopped, failed, or detached with its batch at the provider."""
    return project.generation.latest_unfinished_run()


def read_backend_status(project: Project, run_id: int) -> tuple[str, dict, str] | None:
    """A run's stored backend status (text, state) and its backend key; None for a run without one."""
    stored = project.generation.backend_status(run_id)
    run = project.generation.run(run_id) if stored else None
    if not stored or run is None:
        return None
    return str(stored.get("text", "")), dict(stored.get("state") or {}), str(run["config"].get("backend", "live"))


def read_run_to_pick_up(project: Project) -> tuple[int, str] | None:
    """The newest run whose batch is still at the provider (the app closed or was killed), with its backend."""
    runs = project.generation.runs_to_pick_up()  # newest first
    if not runs:
        return None
    run_id = runs[0]
    run = project.generation.run(run_id)
    return run_id, str((run or {}).get("config", {}).get("backend", "live"))


def read_price_factor(key: str) -> float:
    """The backend's price factor: loading a plugin's backend imports its code, so this runs on a job."""
    with GENERATION_BACKENDS.guard(key, "reading its price factor"):
        return float(GENERATION_BACKENDS.load(key).price_factor)


def provider_name(key: str) -> str:
    """Who holds a backend's batches, for messages ("OpenAI"): the entry's ``provider`` meta, else its title
    without a trailing parenthesis ("OpenAI Batch API (half price, within 24 h)" → "OpenAI Batch API")."""
    if key not in GENERATION_BACKENDS:
        return key
    entry = GENERATION_BACKENDS.get(key)
    return str(entry.meta.get("provider") or re.sub(r"\s*\(.*\)$", "", entry.label))


def read_rejected(project: Project, run_id: int, reason: str | None) -> list[dict]:
    return project.generation.rejected(run_id, reason)


def read_seed_yield(project: Project, run_id: int) -> list[tuple[str, int, int]]:
    yields = project.generation.seed_yield(run_id)
    rows = []
    for seed_id, (shown, kept) in sorted(yields.items()):
        seed = project.seeds.get(seed_id)
        rows.append(((seed.name or seed.instruction[:60]) if seed else f"#{seed_id} (deleted)", shown, kept))
    return rows


def restore_rejected(project: Project, rejected_id: int) -> int | None:
    return project.generation.restore(rejected_id)


class GeneratePanel(Panel):
    title = "Generate"
    icon = "generate.svg"

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None, settings: QSettings | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        self.index_factory = default_index_factory  # tests inject a stand-in
        self.settings = settings if settings is not None else app_settings()
        self._price_factors: dict[str, float] = {"live": 1.0}  # read once per backend, on a job
        self._backend_open = False  # the running backend's provider holds requests of the run (its last status)
        self._run_backend = "live"  # the backend of the run being shown
        self._pick_up_note = ""  # "Picking up run N's batch…" while a run resumed on open runs
        self._restoring = False  # filling the widgets from remembered values: do not write them back
        self._worker: GenerationWorker | None = None
        self._run_id: int | None = None  # the run the tables show
        self._resumable: dict | None = None  # the newest stopped or failed run
        self._seeds: list[SeedExample] | None = None  # None: not read yet
        self._seed_count = 0
        self._pending: list[ev.Event] = []
        self._counters: ev.Counters | None = None
        self._splitter_sized = False
        self._build()
        self._redraw_timer = QTimer(self, interval=100)
        self._redraw_timer.timeout.connect(self._redraw)
        self._table_timer = QTimer(self, singleShot=True, interval=TABLE_REFRESH_MS)
        self._table_timer.timeout.connect(self._refresh_visible_table)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self._on_start_clicked)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self._on_stop_clicked)
        self._set_running(False)

    # -- layout -------------------------------------------------------------------------------------
    def _build(self) -> None:

        teacher = QGroupBox("Teacher")
        form = QFormLayout(teacher)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.preset = QComboBox(toolTip="Known kinds of OpenAI-compatible endpoints; picking one fills the URL and model.")
        for key, label in ENDPOINT_KINDS.choices():
            self.preset.addItem(label, key)
        self.preset.currentIndexChanged.connect(self._on_preset_changed)
        self.base_url = QLineEdit()
        self.model = QComboBox(editable=True)
        self.key_env = QLineEdit(DEFAULT_KEY_ENV, toolTip="Environment variable read when the OS keyring has no key.")
        self.api_key = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="from keyring or environment",
                                 toolTip="Kept in memory only; 'Save key' puts it in the OS keyring, never in the project.")
        self.save_key = QPushButton("Save key", clicked=self._on_save_key_clicked,
                                    toolTip="Store the key in the OS keyring for this base URL.")
        self.test_button = QPushButton("Test connection", clicked=self._on_test_clicked,
                                       toolTip="List the teacher's models and check the key (fills the model list).")
        self.connection_status = QLabel(wordWrap=True)
        self.connection_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        key_row = QHBoxLayout()
        key_row.addWidget(self.api_key, 1)
        key_row.addWidget(self.save_key)
        form.addRow("Preset", self.preset)
        form.addRow("Base URL", self.base_url)
        form.addRow("Model", self.model)
        form.addRow("API key", key_row)
        form.addRow("Key variable", self.key_env)
        form.addRow(self.test_button)
        form.addRow(self.connection_status)

        params = QGroupBox("Run")
        pform = QFormLayout(params)
        pform.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.mode = QComboBox(toolTip=HELP["mode"])
        for key, label in GENERATION_MODES.choices():
            self.mode.addItem(label, key)
            self.mode.setItemData(self.mode.count() - 1, GENERATION_MODES.get(key).help, Qt.ItemDataRole.ToolTipRole)
        # A long plugin title must not widen the settings column: the combo elides, its tooltip has it all.
        self.backend = QComboBox(toolTip=HELP["backend"], minimumContentsLength=14,
                                 sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        for entry in GENERATION_BACKENDS.entries():
            self.backend.addItem(entry.label, entry.key)
            self.backend.setItemData(self.backend.count() - 1, entry.help or entry.label, Qt.ItemDataRole.ToolTipRole)
        self.target = self._spin(1, 1_000_000, 1000, "target")
        self.concurrency = self._spin(1, 512, 8, "concurrency")
        self.num_tasks = self._spin(1, 50, 20, "num_tasks")
        self.k_examples = self._spin(1, MAX_EXAMPLES, 3, "k_examples")
        self.budget = QDoubleSpinBox(minimum=0, maximum=100_000, decimals=2, prefix="$ ", specialValueText="no cap",
                                     toolTip=HELP["budget_usd"])
        self.temperature = QDoubleSpinBox(minimum=0, maximum=2, singleStep=0.1, value=1.0, toolTip=HELP["temperature"])
        self.seed_count_label = QLabel()
        self.estimate_label = QLabel(wordWrap=True, toolTip="The estimate the run itself will announce: the prompt"
                                     " is built from your seed tasks, tokens are ~4 characters.")
        for label, widget in (("Mode", self.mode), ("Send re&quests", self.backend)):
            pform.addRow(label, widget)
        self.backend_options = BackendOptionsForm(pform, pform.rowCount(), self)  # its rows follow the combo
        for label, widget in (("Target samples", self.target), ("Concurrency", self.concurrency),
                              ("Tasks per request", self.num_tasks), ("Examples per prompt", self.k_examples),
                              ("Budget", self.budget), ("Temperature", self.temperature),
                              ("Seed tasks", self.seed_count_label)):
            pform.addRow(label, widget)
        pform.addRow("Cost estimate", self.estimate_label)
        self._show_backend_options()
        self.backend.currentIndexChanged.connect(self._on_backend_changed)
        self.backend_options.changed.connect(self._remember_backend)
        self._on_preset_changed()
        for spin in (self.target, self.num_tasks, self.k_examples, self.concurrency):
            spin.valueChanged.connect(self._update_estimate)
        self.mode.currentIndexChanged.connect(self._update_estimate)
        self.model.currentTextChanged.connect(self._update_estimate)

        self.start_button = QPushButton("Start new run", clicked=self._on_start_clicked,
                                        toolTip="Check the teacher, then start a new run (Ctrl+Return)")
        self.pause_button = QPushButton("Pause", checkable=True, toggled=self._on_pause_toggled,
                                        toolTip="Send no new requests; those in flight finish")
        self.stop_button = QPushButton("Stop", clicked=self._on_stop_clicked, toolTip="Stop; finished work is kept (Esc)")
        self.resume_button = QPushButton(clicked=self._on_resume_clicked)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        settings = QWidget()
        llayout = QVBoxLayout(settings)
        llayout.setContentsMargins(0, 0, 4, 0)
        for widget in (teacher, params):
            llayout.addWidget(widget)
        llayout.addStretch(1)
        # The settings scroll (never sideways) instead of squeezing: at the window's minimum size
        # no label is cut, whatever the font.
        self.settings_scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.settings_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_scroll.setWidget(settings)
        self.settings_scroll.setMinimumWidth(settings.minimumSizeHint().width()
                                             + self.settings_scroll.verticalScrollBar().sizeHint().width())

        self.backend_box = BackendStatusBox()
        self.progress = QProgressBar(format="No run yet: Start new run (Ctrl+Return)")
        self.eta = QLabel(wordWrap=True)
        self.counters_label = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.counters_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.feed = QListWidget()
        self.feed_view = HintedView(self.feed, "New samples appear here as the teacher's answers pass the filters.\n"
                                               "Start a run to see them.")
        self.reason_filter = QComboBox(toolTip="Show the candidates one filter rejected")
        self.reason_filter.addItem("all reasons", "")
        for reason in reasons():
            self.reason_filter.addItem(reason, reason)
        self.reason_filter.currentIndexChanged.connect(self._refresh_rejected)
        self.rejected_table = QTableWidget(0, 4, selectionBehavior=QTableWidget.SelectionBehavior.SelectRows)
        self.rejected_table.setHorizontalHeaderLabels(["Reason", "Instruction", "Nearest", "Score"])
        self.rejected_table.horizontalHeader().setStretchLastSection(True)
        self.rejected_view = HintedView(self.rejected_table, "Candidates the filters rejected in this run appear here,"
                                                             " with the reason; restore any you want to keep.")
        self.restore_button = QPushButton("Restore as pending sample", clicked=self._on_restore_clicked)
        rejected = QWidget()
        rlayout = QVBoxLayout(rejected)
        rlayout.addWidget(self.reason_filter)
        rlayout.addWidget(self.rejected_view)
        rlayout.addWidget(self.restore_button)
        self.seed_table = QTableWidget(0, 4)
        self.seed_table.setHorizontalHeaderLabels(["Seed", "Shown", "Kept", "Kept per request"])
        self.seed_table.horizontalHeader().setStretchLastSection(True)
        self.seed_view = HintedView(self.seed_table, "How often each seed task was shown to the teacher, and how many"
                                                     " kept samples its prompts gave, appear here once a run has"
                                                     " finished requests.")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.feed_view, "New samples")
        self.tabs.addTab(rejected, "Rejected")
        self.tabs.addTab(self.seed_view, "Per seed")
        self.tabs.currentChanged.connect(self._refresh_visible_table)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(4, 0, 0, 0)
        for widget in (self.progress, self.eta, self.counters_label, self.backend_box):
            rl.addWidget(widget)
        rl.addWidget(self.tabs, 1)
        # Start / Pause / Stop under the scrolled settings, never scrolled away (a backend's options
        # add rows: at 1280x800 they pushed the buttons below the fold).
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.settings_scroll, 1)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.resume_button)  # "Collect it with the button below" must be in view
        # Its text names the run and provider: shrink with the pane (the tooltip says it all) rather than widen it.
        self.resume_button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.splitter = QSplitter(childrenCollapsible=False)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter, 1)
        self._update_estimate()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._splitter_sized:  # first show: the settings get a third of the width, never less than they need
            self._splitter_sized = True
            total = self.splitter.width()
            left = max(self.settings_scroll.minimumWidth(), int(total * SETTINGS_SHARE))
            self.splitter.setSizes([left, max(1, total - left)])

    def _spin(self, low: int, high: int, value: int, name: str) -> QSpinBox:
        return QSpinBox(minimum=low, maximum=high, value=value, toolTip=HELP[name])

    # -- panel contract -----------------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        if self.context is not None:
            for signal, slot in self._subscriptions():
                signal.disconnect(slot)
        self._stop_worker(detach=True)  # another project: a batch in flight stays at the provider, picked up later
        super().set_context(context)
        self._run_id = None
        self._backend_open = False
        self.backend_box.clear()
        self._resumable = None
        self._seeds = None
        self._counters = None
        self.feed.clear()
        self.feed_view.show_hint(True)
        self.rejected_table.setRowCount(0)
        self.rejected_view.show_hint(True)
        self.seed_table.setRowCount(0)
        self.seed_view.show_hint(True)
        self.messages.clear()
        if context is not None:
            for signal, slot in self._subscriptions():
                signal.connect(slot)
            self._restore_backend()
            self._read_seeds()
            self._read_resumable()
            self._read_pick_up()
        self._update_estimate()
        self._set_running(False)

    def _subscriptions(self) -> list:
        assert self.context is not None
        return [(self.context.seeds_changed, self._read_seeds),
                (self.context.generation_runs_changed, self._on_runs_changed)]

    def shutdown(self) -> None:
        """Ask a run to stop and return at once: the engine commits what it has on its own thread.

        A batch at the provider is left there (``detach``): the next open of the project picks it up.
        """
        self._stop_worker(detach=True)
        self._redraw_timer.stop()
        self._table_timer.stop()

    def _stop_worker(self, *, detach: bool = False) -> None:
        if self._worker is not None:
            self._worker.stop(detach=detach)
            for signal in (self._worker.event, self._worker.finished, self._worker.crashed,
                           self._worker.start_failed, self._worker.created):
                signal.disconnect()
            self._worker = None

    # -- building a run -----------------------------------------------------------------------------
    def teacher_config(self) -> EndpointConfig:
        return EndpointConfig(base_url=self.base_url.text().strip(), model=self.model.currentText().strip(),
                              api_key_env=self.key_env.text().strip() or DEFAULT_KEY_ENV,
                              api_key=self.api_key.text() or None)

    def run_config(self) -> RunConfig:
        config = RunConfig(mode=self.mode.currentData() or "alpaca", target=self.target.value(),
                           concurrency=self.concurrency.value(), num_tasks=self.num_tasks.value(),
                           k_examples=self.k_examples.value(), temperature=self.temperature.value(),
                           budget_usd=self.budget.value() or None)
        config.teacher = self.teacher_config()
        config.backend = self.backend.currentData() or "live"
        config.backend_options = self.backend_options.values()
        return config

    def _launch(self, *, config: RunConfig | None = None, run_id: int | None = None, backend: str = "live") -> None:
        assert self.project is not None
        self._run_backend = backend
        self._pick_up_note = ""
        self._pending.clear()
        self._counters = None
        self._backend_open = False
        self.backend_box.clear()
        self.progress.setValue(0)  # nothing of the run shown before stays on screen
        # Not "No run yet" while a batch waits hours for its first answers: the run's own target (a resumed
        # run's comes with its first progress).
        self.progress.setMaximum(max(1, config.target) if config is not None else 1)
        self.progress.setFormat("%v / %m kept" if config is not None else f"Resuming run #{run_id}…")
        self.counters_label.setText("")
        self.feed.clear()
        self.feed_view.show_hint(True)
        self.eta.setText("Checking the teacher…" if config is not None else f"Resuming run #{run_id}…")
        worker = GenerationWorker(self.project, jobs=self.jobs, config=config, run_id=run_id,
                                  api_key=self.api_key.text() or None, index_factory=self.index_factory, parent=self)
        worker.created.connect(self._on_run_created)
        worker.event.connect(self._on_worker_event)
        worker.start_failed.connect(self._on_start_failed)
        worker.finished.connect(self._on_worker_finished)
        worker.crashed.connect(self._on_worker_crashed)
        self._worker = worker
        if run_id is not None:
            self._run_id = run_id
        self._set_running(True)
        self._redraw_timer.start()
        worker.start()

    def _set_running(self, running: bool) -> None:
        has_project = self.project is not None
        self.start_button.setEnabled(has_project and not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.setChecked(False)
        run = self._resumable
        # Only shown when there is something to pick up, and never during a run: one control per action.
        self.resume_button.setVisible(has_project and not running and run is not None)
        if run is not None and run["status"] == "detached":
            provider = provider_name(run["config"].get("backend", "live"))
            self.resume_button.setText(f"Collect run #{run['id']}'s batch at {provider} ({run['kept']} kept so far)")
            self.resume_button.setToolTip(
                f"Continue run #{run['id']}: wait for its batch at {provider} and take the answers; nothing in it"
                " is sent or paid for again.")
        elif run is not None:
            self.resume_button.setText(f"Resume run #{run['id']} ({run['status']}, {run['kept']} kept)")
            self.resume_button.setToolTip(
                f"Continue run #{run['id']} where it ended, with its saved settings: unfinished requests first,"
                " nothing already answered is paid for again.")

    def is_running(self) -> bool:
        return self._worker is not None and self._worker.is_running()

    # -- reads (jobs) ---------------------------------------------------------------------------------
    def _read_seeds(self) -> None:
        if self.context is not None:
            self.jobs.submit("Reading seed tasks", read_seeds, key="generate-seeds", project=self.context,
                             on_done=self._on_seeds_read, quiet=True)

    def _on_seeds_read(self, result: tuple[int, list[SeedExample]]) -> None:
        self._seed_count, self._seeds = result
        self._update_estimate()

    def _read_resumable(self) -> None:
        if self.context is not None:
            self.jobs.submit("Reading generation runs", read_resumable, key="generate-runs", project=self.context,
                             on_done=self._on_resumable_read, quiet=True)

    def _on_resumable_read(self, run: dict | None) -> None:
        self._resumable = run
        if self._run_id is None and run is not None:
            self._run_id = run["id"]  # the tables show the run a user would resume
            self._refresh_visible_table()
        if run is not None and run["status"] == "detached" and run["id"] == self._run_id and not self.is_running():
            provider = provider_name(run["config"].get("backend", "live"))
            self.eta.setText(f"Stopped: the batch stays at {provider}. Collect it with the button below; opening"
                             " the project again also picks it up.")
        self._read_backend_status()
        self._set_running(self.is_running())

    def _on_runs_changed(self) -> None:
        if not self._table_timer.isActive():
            self._table_timer.start()

    def _refresh_visible_table(self) -> None:
        index = self.tabs.currentIndex()
        if index == 1:
            self._refresh_rejected()
        elif index == 2:
            self._refresh_seed_table()

    def _refresh_rejected(self) -> None:
        if self.context is None or self._run_id is None:
            return
        self.jobs.submit("Reading rejected candidates", read_rejected, self._run_id,
                         self.reason_filter.currentData() or None, key="generate-rejected", project=self.context,
                         on_done=self._fill_rejected, quiet=True)

    def _fill_rejected(self, rows: list[dict]) -> None:
        self.rejected_table.setRowCount(len(rows))
        for n, row in enumerate(rows):
            reason = QTableWidgetItem(row["reason"] + (" (restored)" if row["restored"] else ""))
            reason.setData(Qt.ItemDataRole.UserRole, row["id"])
            score = f"{row['score']:.2f}" if row["score"] is not None else ""
            text = row["instruction"] or row["detail"]
            for col, item in enumerate((reason, QTableWidgetItem(text), QTableWidgetItem(row["nearest_instruction"] or ""),
                                        QTableWidgetItem(score))):
                self.rejected_table.setItem(n, col, item)
        self.rejected_view.show_hint(not rows)

    def _refresh_seed_table(self) -> None:
        if self.context is None or self._run_id is None:
            return
        self.jobs.submit("Reading seed yield", read_seed_yield, self._run_id, key="generate-seed-yield",
                         project=self.context, on_done=self._fill_seed_table, quiet=True)

    def _fill_seed_table(self, rows: list[tuple[str, int, int]]) -> None:
        self.seed_table.setRowCount(len(rows))
        for n, (name, shown, kept) in enumerate(rows):
            for col, text in enumerate((name, str(shown), str(kept), f"{kept / shown:.1f}" if shown else "")):
                self.seed_table.setItem(n, col, QTableWidgetItem(text))
        self.seed_view.show_hint(not rows)

    # -- slots ------------------------------------------------------------------------------------
    def _on_preset_changed(self) -> None:
        key = self.preset.currentData()
        if key is None:
            return
        try:
            chosen = preset(key)
        except RegistryError as exc:  # a plugin's broken preset: say so, keep the rest working
            self.messages.show_error(str(exc))
            return
        self.base_url.setText(chosen.base_url)
        self.model.setCurrentText(chosen.model)

    def _on_test_clicked(self) -> None:
        self.test_button.setEnabled(False)
        self.connection_status.setText("Testing…")
        self.jobs.submit("Testing the teacher connection", check_connection, self.teacher_config(),
                         key="generate-connection", on_done=self._on_tested, on_error=self._on_test_error)

    def _on_tested(self, report: ConnectionReport) -> None:
        self.test_button.setEnabled(True)
        self.connection_status.setText(report.message)
        if report.ok:
            self.messages.clear()
        else:
            self.messages.show_error(report.message)
        if report.models:
            current = self.model.currentText()
            self.model.clear()
            self.model.addItems(report.models)
            self.model.setCurrentText(current)

    def _on_test_error(self, message: str) -> None:
        self.test_button.setEnabled(True)
        self.connection_status.setText("")
        self.messages.show_error(f"The connection test failed: {message}")

    def _on_save_key_clicked(self) -> None:
        # A desktop keyring may wait on an unlock prompt: never on the GUI thread.
        self.save_key.setEnabled(False)
        self.connection_status.setText("Saving the key in the OS keyring…")
        self.jobs.submit("Saving the API key", store_key, self.base_url.text().strip(), self.api_key.text(),
                         key="generate-save-key", on_done=self._on_key_saved, on_error=self._on_key_not_saved)

    def _on_key_saved(self, problem: str | None) -> None:
        self.save_key.setEnabled(True)
        self.connection_status.setText(problem or "Key saved in the OS keyring.")
        if problem:
            self.messages.show_message(problem, "warning")
        else:
            self.messages.clear()

    def _on_key_not_saved(self, message: str) -> None:
        self.save_key.setEnabled(True)
        self.connection_status.setText("")
        self.messages.show_error(f"Could not save the key: {message}")

    def _on_start_clicked(self) -> None:
        if self.project is None or self.is_running():
            return
        config = self.run_config()
        try:
            config.validate()  # plain arithmetic: a setting that cannot work is said at once
        except ConfigError as exc:
            self.messages.show_error(str(exc))
            return
        self._launch(config=config, backend=config.backend)

    def _on_resume_clicked(self) -> None:
        if self.project is not None and self._resumable is not None and not self.is_running():
            self._launch(run_id=self._resumable["id"], backend=self._resumable["config"].get("backend", "live"))

    def _on_pause_toggled(self, paused: bool) -> None:
        if self._worker is not None:
            self._worker.pause(paused)
        self.pause_button.setText("Continue" if paused else "Pause")
        self.pause_button.setToolTip("Send requests again" if paused else "Send no new requests; those in flight finish")

    def _on_stop_clicked(self) -> None:
        if self._worker is None:
            return
        if not self._backend_open:
            self._worker.stop()  # the worker thread winds down; finished arrives by signal
            return
        choice = self.ask_how_to_stop(provider_name(self._run_backend))
        if choice == "keep":
            self._worker.stop(detach=True)
        elif choice == "cancel":
            self._worker.stop(cancel_work=True)

    def ask_how_to_stop(self, provider: str) -> str | None:
        """Stop with a batch at the provider: "keep" it running (collect later), "cancel" it, or None (go on)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Stop the run",
                          f"The run has a batch in flight at {provider}. Requests already in it are paid for when "
                          "it finishes, whether or not the run is there to collect them.", parent=self)
        keep = box.addButton(f"&Keep the batch running at {provider} (collect it later)",
                             QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton("&Cancel the batch", QMessageBox.ButtonRole.DestructiveRole)
        go_on = box.addButton("&Don't stop", QMessageBox.ButtonRole.RejectRole)
        keep.setToolTip("The run ends here; Resume (or the next start of the app) collects the batch's answers.")
        cancel.setToolTip(f"Ask {provider} to cancel the batch: the requests it has not run yet are not paid for.")
        box.setDefaultButton(keep)
        box.setEscapeButton(go_on)
        box.exec()
        clicked = box.clickedButton()
        return "keep" if clicked is keep else "cancel" if clicked is cancel else None

    def _update_estimate(self) -> None:
        if self._seeds is None:
            self.seed_count_label.setText("—" if self.project is None else "reading…")
            self.estimate_label.setText("Open a project to see the estimate." if self.project is None else "…")
            return
        self.seed_count_label.setText(f"{self._seed_count} in this project")
        if not self._seeds:
            self.estimate_label.setText("No seed tasks yet: add some on the Seeds page.")
            return
        config = self.run_config()
        factor = self._price_factors.get(config.backend)
        if factor is None:  # a plugin's backend being loaded (a job): its prices follow
            live = run_estimate(config, self._seeds, price_factor=1.0)
            self.estimate_label.setText(f"{live.describe()} — reading the backend's prices…")
        else:  # the very words the run will announce (RunStarted), never an import on this thread
            self.estimate_label.setText(describe_estimate(run_estimate(config, self._seeds, price_factor=factor),
                                                          factor))

    # -- the backend ("Send requests") ------------------------------------------------------------
    def _on_backend_changed(self) -> None:
        self._show_backend_options()
        self._remember_backend()
        self._read_price_factor()
        self._update_estimate()

    def _show_backend_options(self, values: Mapping[str, Any] | None = None) -> None:
        """The chosen backend's settings from its entry's plain-data ``options`` (no import)."""
        key = self.backend.currentData() or "live"
        entry = GENERATION_BACKENDS.get(key)
        self.backend.setToolTip(f"{HELP['backend']}\n\n{entry.label}: {entry.help}" if entry.help else HELP["backend"])
        options = entry.meta.get("options", ())
        self._restoring = True
        try:
            self.backend_options.set_options(options, values if values is not None else self._remembered_options(key))
        finally:
            self._restoring = False

    def _read_price_factor(self) -> None:
        key = self.backend.currentData() or "live"
        if key in self._price_factors:
            return
        self.jobs.submit(f"Loading the generation backend {key!r}", read_price_factor, key,
                         key="generate-backend", quiet=True,
                         on_done=lambda factor, key=key: self._on_price_factor(key, factor),
                         on_error=lambda message, key=key: self._on_backend_failed(key, message))

    def _on_price_factor(self, key: str, factor: float) -> None:
        self._price_factors[key] = factor
        self._update_estimate()

    def _on_backend_failed(self, key: str, message: str) -> None:
        self.messages.show_error(message)  # names the plugin; the run would be refused the same way
        self.estimate_label.setText(f"The backend {key!r} could not be loaded: see the message above.")

    def _settings_group(self) -> str:
        """This project's group in the app's settings: the Generate panel's choices are per project."""
        root = str(self.context.root) if self.context is not None else ""
        return "generate-" + hashlib.sha1(root.encode()).hexdigest()[:16]

    def _remembered_options(self, key: str) -> dict:
        if self.context is None:
            return {}
        raw = self.settings.value(f"{self._settings_group()}/options-{key}", "")
        try:
            values = json.loads(raw) if raw else {}
        except (TypeError, ValueError):
            return {}
        return values if isinstance(values, dict) else {}

    def _remember_backend(self) -> None:
        if self.context is None or self._restoring:
            return
        key = self.backend.currentData() or "live"
        group = self._settings_group()
        self.settings.setValue(f"{group}/backend", key)
        self.settings.setValue(f"{group}/options-{key}", json.dumps(self.backend_options.values()))
        self._update_estimate()

    def _restore_backend(self) -> None:
        """The backend (and its options) this project used last; a backend no longer installed falls back to live."""
        key = self.settings.value(f"{self._settings_group()}/backend", "live")
        self.backend.blockSignals(True)
        self.backend.setCurrentIndex(max(0, self.backend.findData(key)))
        self.backend.blockSignals(False)
        self._show_backend_options()
        self._read_price_factor()

    def _show_backend_status(self, text: str, state: Mapping[str, Any]) -> None:
        key = self._run_backend
        title = GENERATION_BACKENDS.get(key).label if key in GENERATION_BACKENDS else key
        self.backend_box.show_status(text, state, title=title)

    def _read_backend_status(self) -> None:
        """The shown run's stored backend status (a past run's batch; a live run has none)."""
        if self.context is not None and self._run_id is not None and not self.is_running():
            self.jobs.submit("Reading the run's backend status", read_backend_status, self._run_id,
                             key="generate-backend-status", project=self.context, quiet=True,
                             on_done=self._on_backend_status_read)

    def _on_backend_status_read(self, stored: tuple[str, dict, str] | None) -> None:
        if self.is_running():
            return  # the run's own events draw the box now
        if stored is None:
            self.backend_box.clear()
            return
        text, state, self._run_backend = stored
        self._show_backend_status(text, state)

    def _read_pick_up(self) -> None:
        if self.context is not None:
            self.jobs.submit("Looking for batches to collect", read_run_to_pick_up, key="generate-pick-up",
                             project=self.context, quiet=True, on_done=self._on_pick_up_read)

    def _on_pick_up_read(self, found: tuple[int, str] | None) -> None:
        """A run whose batch is still at the provider: resume it now (its answers are already paid for)."""
        if found is None or self.project is None or self.is_running():
            return
        run_id, backend = found
        self._launch(run_id=run_id, backend=backend)
        self._pick_up_note = f"Picking up run {run_id}'s batch at {provider_name(backend)}."
        self.messages.show_message(self._pick_up_note, "info")

    def _on_worker_event(self, event: ev.Event) -> None:
        self._pending.append(event)  # drawn by the timer

    def _on_run_created(self, run_id: int) -> None:
        self._run_id = run_id
        self.rejected_table.setRowCount(0)
        self.rejected_view.show_hint(True)
        self.seed_table.setRowCount(0)
        self.seed_view.show_hint(True)

    def _on_start_failed(self, message: str) -> None:
        self._end_run()
        self.eta.setText("Not started: nothing was stored.")
        self.messages.show_error(message)

    def _on_worker_finished(self, result: RunResult) -> None:
        self._end_run()
        if result.discarded:
            self._run_id = None
            reason = (result.message or "the teacher did not answer").rstrip(".")
            self.eta.setText(f"Not started: {reason}. Nothing was stored.")
            if not self.messages.is_shown():
                self.messages.show_error(result.message or "The run failed before any answer.")
        else:
            text = {"target": "target reached", "budget": "budget reached", "max_requests": "request limit reached",
                    "stopped": "stopped", "error": "stopped by an error"}.get(result.reason, result.reason)
            self.eta.setText(f"Finished: {text}." + (f" {result.message}" if result.message else ""))
            if self._pick_up_note and self.messages.message() == self._pick_up_note:  # not "Picking up" once done
                self.messages.show_message(f"{self._pick_up_note.replace('Picking up', 'Picked up', 1)[:-1]}: {text}.",
                                           "info")
        self._pick_up_note = ""
        self._read_resumable()
        self._refresh_visible_table()

    def _on_worker_crashed(self, message: str) -> None:
        self._end_run()
        self.messages.show_error(f"The run stopped unexpectedly: {message}")
        self._read_resumable()

    def _end_run(self) -> None:
        self._redraw()
        self._redraw_timer.stop()
        self._worker = None
        self._set_running(False)
        self._update_estimate()  # the form's again: a resumed or picked-up run's own estimate is stale now

    def _on_restore_clicked(self) -> None:
        row = self.rejected_table.currentRow()
        item = self.rejected_table.item(row, 0) if row >= 0 else None
        if item is None or self.context is None:
            return
        self.jobs.submit("Restoring a rejected candidate", restore_rejected, item.data(Qt.ItemDataRole.UserRole),
                         project=self.context, on_done=lambda _id: self._refresh_rejected())

    # -- drawing ------------------------------------------------------------------------------------
    def _redraw(self) -> None:
        events, self._pending = self._pending, []
        new_samples: list[str] = []
        for event in events:
            if isinstance(event, (ev.Progress, ev.RunFinished)):
                self._counters = event.counters
            elif isinstance(event, ev.SampleKept):
                new_samples.append(event.instruction)
            elif isinstance(event, ev.TeacherError):
                self.messages.show_error(event.message)
            elif isinstance(event, ev.Notice):
                self.messages.show_message(event.text, "warning")
            elif isinstance(event, ev.BackendStatus):
                self._backend_open = holds_work(event.state)
                self._show_backend_status(event.text, event.state)
                if self._counters is None and self.is_running():  # nothing answered yet: say what it waits for
                    self.eta.setText(f"Waiting for the batch at {provider_name(self._run_backend)}: the answers"
                                     " arrive when it completes.")
            elif isinstance(event, ev.RunStarted):
                self.messages.clear()  # the teacher answered the pre-check: whatever went wrong before is over
                if self._pick_up_note:  # ... but a run resumed unasked keeps saying why it runs
                    self.messages.show_message(self._pick_up_note, "info")
                # One estimate, in the Run box: the run's own, now that it has announced it.
                self.connection_status.setText(f"{event.key_source}.")
                self.estimate_label.setText(event.estimate)
        if new_samples:
            self._add_to_feed(new_samples)
        c = self._counters
        if c is None:
            return
        self.progress.setFormat("%v / %m kept")
        self.progress.setMaximum(max(1, c.target))
        self.progress.setValue(min(c.kept, c.target))
        if self.is_running():
            eta = f"ETA {c.eta_s:.0f} s" if c.eta_s is not None else "ETA --"
            self.eta.setText(f"{eta} · {c.samples_per_min:.0f} samples/min" + (" · paused" if c.paused else ""))
        by_reason = describe_reasons(c.rejected_by_reason)
        per_kept = f"${c.cost_per_kept:.4f}" if c.cost_per_kept is not None else "--"
        self.counters_label.setText(
            f"In flight {c.in_flight} · requests {c.requests_done} (+{c.requests_failed} failed) · kept {c.kept} · "
            f"rejected {c.rejected} ({by_reason}) · tokens {c.prompt_tokens:,} in / {c.completion_tokens:,} out · "
            f"cost ${c.cost:.4f} · per kept sample {per_kept}")

    def _add_to_feed(self, instructions: list[str]) -> None:
        """Newest first; samples of one instruction (self-instruct's instances) share one line."""
        lines: list[list] = []  # [instruction, count], oldest first
        for text in instructions[-FEED_LIMIT * 4:]:
            if lines and lines[-1][0] == text:
                lines[-1][1] += 1
            else:
                lines.append([text, 1])
        top = self.feed.item(0)
        if top is not None and lines and top.data(Qt.ItemDataRole.UserRole) == lines[0][0]:
            lines[0][1] += top.data(Qt.ItemDataRole.UserRole + 1)
            self.feed.takeItem(0)
        for text, count in lines:
            self.feed.insertItem(0, text if count == 1 else f"{text}  ·  {count} examples")
            item = self.feed.item(0)
            item.setData(Qt.ItemDataRole.UserRole, text)
            item.setData(Qt.ItemDataRole.UserRole + 1, count)
        while self.feed.count() > FEED_LIMIT:
            self.feed.takeItem(self.feed.count() - 1)
        self.feed_view.show_hint(self.feed.count() == 0)
