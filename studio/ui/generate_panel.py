"""The Generate page: pick a teacher, set the run, watch samples and cost arrive.

All teacher traffic happens in :class:`GenerationWorker` / :class:`ConnectionTester` threads.
Engine events are only collected in the slot; a 10 Hz timer redraws, so a fast teacher never
floods the GUI thread. Slots only gather parameters and call core.
"""
from __future__ import annotations

import time
from dataclasses import fields

from PySide6.QtCore import Qt, QTimer, Signal
from superqt.utils import create_worker
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
    QProgressBar, QPushButton, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from studio.core.generation import events as ev
from studio.core.generation.config import RunConfig, estimate_cost
from studio.core.generation.engine import RunResult, create_run
from studio.core.generation.filters import REASONS, default_index_factory
from studio.core.generation.prompts import default_template
from studio.core.generation.store import GenerationStore
from studio.core.generation.teacher import PRESETS, ConnectionReport, TeacherConfig, store_api_key
from studio.core.project import Project
from studio.ui.generate_worker import ConnectionTester, GenerationWorker
from studio.ui.jobs import JobRunner
from studio.ui.panels import Panel
from studio.ui.project_context import ProjectContext

FEED_LIMIT = 200
COUNTS_INTERVAL_S = 2.0  # how often a run refreshes the window's sample counts
HELP = {f.name: f.metadata.get("help", "") for f in fields(RunConfig)}


class GeneratePanel(Panel):
    title = "Generate"
    icon = "generate.svg"
    data_changed = Signal()  # samples were added: the window's sample counts are stale

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None):
        super().__init__(parent, jobs=jobs)
        self.index_factory = default_index_factory  # tests inject a stand-in
        self._worker: GenerationWorker | None = None
        self._run_id: int | None = None
        self._pending: list[ev.Event] = []
        self._counts_emitted_at = 0.0
        self._counters: ev.Counters | None = None
        self._tester = ConnectionTester(self)
        self._tester.done.connect(self._on_tester_done)
        self._build()
        self._redraw_timer = QTimer(self, interval=100)
        self._redraw_timer.timeout.connect(self._redraw)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self._on_start_clicked)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self._on_stop_clicked)
        self._set_running(False)

    # -- layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.banner = QLabel(wordWrap=True, visible=False)
        self.banner.setStyleSheet("background:#fde2e1; color:#7a1712; padding:8px; border-radius:4px;")

        teacher = QGroupBox("Teacher")
        form = QFormLayout(teacher)
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.currentTextChanged.connect(self._on_preset_changed)
        self.base_url = QLineEdit(PRESETS["OpenAI"].base_url)
        self.model = QComboBox(editable=True)
        self.model.setCurrentText(PRESETS["OpenAI"].model)
        self.key_env = QLineEdit("OPENAI_API_KEY", toolTip="Environment variable read when the OS keyring has no key.")
        self.api_key = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="from keyring or environment",
                                 toolTip="Kept in memory only; 'Save key' puts it in the OS keyring, never in the project.")
        self.save_key = QPushButton("Save key", clicked=self._on_save_key_clicked)
        self.test_button = QPushButton("Test connection", clicked=self._on_test_clicked)
        self.connection_status = QLabel(wordWrap=True)
        key_row = QHBoxLayout()
        key_row.addWidget(self.api_key)
        key_row.addWidget(self.save_key)
        form.addRow("Preset", self.preset)
        form.addRow("Base URL", self.base_url)
        form.addRow("Model", self.model)
        form.addRow("API key", key_row)
        form.addRow("Key variable", self.key_env)
        form.addRow(self.test_button, self.connection_status)

        params = QGroupBox("Run")
        pform = QFormLayout(params)
        self.mode = QComboBox(toolTip=HELP["mode"])
        self.mode.addItem("Alpaca", "alpaca")
        self.mode.addItem("Self-Instruct (staged)", "self-instruct")
        self.target = self._spin(1, 1_000_000, 1000, "target")
        self.concurrency = self._spin(1, 512, 8, "concurrency")
        self.num_tasks = self._spin(1, 50, 20, "num_tasks")
        self.k_examples = self._spin(1, 10, 3, "k_examples")
        self.budget = QDoubleSpinBox(minimum=0, maximum=100_000, decimals=2, prefix="$ ", specialValueText="no cap",
                                     toolTip=HELP["budget_usd"])
        self.temperature = QDoubleSpinBox(minimum=0, maximum=2, singleStep=0.1, value=1.0, toolTip=HELP["temperature"])
        self.estimate_label = QLabel(wordWrap=True)
        for label, widget in (("Mode", self.mode), ("Target samples", self.target), ("Concurrency", self.concurrency),
                              ("Tasks per request", self.num_tasks), ("Examples per prompt", self.k_examples),
                              ("Budget", self.budget), ("Temperature", self.temperature),
                              ("Cost estimate", self.estimate_label)):
            pform.addRow(label, widget)
        for spin in (self.target, self.num_tasks):
            spin.valueChanged.connect(self._update_estimate)
        self.model.currentTextChanged.connect(self._update_estimate)
        self._update_estimate()

        self.start_button = QPushButton("Start", clicked=self._on_start_clicked, toolTip="Start a new run (Ctrl+Return)")
        self.pause_button = QPushButton("Pause", checkable=True, toggled=self._on_pause_toggled)
        self.stop_button = QPushButton("Stop", clicked=self._on_stop_clicked, toolTip="Stop; finished work is kept (Esc)")
        self.resume_button = QPushButton("Resume last run", clicked=self._on_resume_clicked)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)

        self.progress = QProgressBar(format="%v / %m kept")
        self.eta = QLabel()
        self.counters_label = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)

        self.feed = QListWidget()
        self.reason_filter = QComboBox()
        self.reason_filter.addItem("all reasons", "")
        for reason in REASONS:
            self.reason_filter.addItem(reason, reason)
        self.reason_filter.currentIndexChanged.connect(self._refresh_rejected)
        self.rejected_table = QTableWidget(0, 4, selectionBehavior=QTableWidget.SelectionBehavior.SelectRows)
        self.rejected_table.setHorizontalHeaderLabels(["Reason", "Instruction", "Nearest", "Score"])
        self.restore_button = QPushButton("Restore as pending sample", clicked=self._on_restore_clicked)
        rejected = QWidget()
        rlayout = QVBoxLayout(rejected)
        rlayout.addWidget(self.reason_filter)
        rlayout.addWidget(self.rejected_table)
        rlayout.addWidget(self.restore_button)
        self.seed_table = QTableWidget(0, 4)
        self.seed_table.setHorizontalHeaderLabels(["Seed", "Shown", "Kept", "Kept per request"])
        self.tabs = QTabWidget()
        self.tabs.addTab(self.feed, "New samples")
        self.tabs.addTab(rejected, "Rejected")
        self.tabs.addTab(self.seed_table, "Per seed")
        self.tabs.currentChanged.connect(self._on_tab_changed)

        left = QWidget()
        llayout = QVBoxLayout(left)
        for widget in (teacher, params):
            llayout.addWidget(widget)
        llayout.addLayout(buttons)
        llayout.addStretch(1)
        right = QWidget()
        rl = QVBoxLayout(right)
        for widget in (self.progress, self.eta, self.counters_label, self.tabs):
            rl.addWidget(widget)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(splitter)

    def _spin(self, low: int, high: int, value: int, name: str) -> QSpinBox:
        return QSpinBox(minimum=low, maximum=high, value=value, toolTip=HELP[name])

    # -- panel contract -----------------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        self.shutdown()
        super().set_context(context)
        project = self.project
        self._run_id = GenerationStore(project.conn).latest_run_id() if project else None
        self._set_running(False)

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.stop_and_wait()
            self._worker = None
        self._redraw_timer.stop()

    # -- building a run -----------------------------------------------------------------------------
    def teacher_config(self) -> TeacherConfig:
        return TeacherConfig(base_url=self.base_url.text().strip(), model=self.model.currentText().strip(),
                             api_key_env=self.key_env.text().strip() or "OPENAI_API_KEY",
                             api_key=self.api_key.text() or None)

    def run_config(self) -> RunConfig:
        config = RunConfig(mode=self.mode.currentData(), target=self.target.value(),
                           concurrency=self.concurrency.value(), num_tasks=self.num_tasks.value(),
                           k_examples=self.k_examples.value(), temperature=self.temperature.value(),
                           budget_usd=self.budget.value() or None)
        config.teacher = self.teacher_config()
        return config

    def _launch(self, run_id: int) -> None:
        self.banner.hide()
        self._run_id = run_id
        self._pending.clear()
        self.feed.clear()
        self._worker = GenerationWorker(self.project.new_connection, run_id, self.api_key.text() or None,
                                        self.index_factory, self)
        self._worker.event.connect(self._on_worker_event)
        self._worker.finished.connect(self._on_worker_finished)
        self._worker.crashed.connect(self._on_worker_crashed)
        self._set_running(True)
        self._redraw_timer.start()
        self._worker.start()

    def _set_running(self, running: bool) -> None:
        has_project = self.project is not None
        self.start_button.setEnabled(has_project and not running)
        self.resume_button.setEnabled(has_project and not running and self._run_id is not None)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.setChecked(False)

    def is_running(self) -> bool:
        return self._worker is not None and self._worker.is_running()

    # -- slots ------------------------------------------------------------------------------------
    def _on_preset_changed(self, name: str) -> None:
        preset = PRESETS[name]
        self.base_url.setText(preset.base_url)
        self.model.setCurrentText(preset.model)

    def _on_test_clicked(self) -> None:
        self.test_button.setEnabled(False)
        self.connection_status.setText("Testing...")
        self._tester.run(self.teacher_config())

    def _on_tester_done(self, report: ConnectionReport) -> None:
        self.test_button.setEnabled(True)
        self.connection_status.setText(report.message)
        if report.models:
            current = self.model.currentText()
            self.model.clear()
            self.model.addItems(report.models)
            self.model.setCurrentText(current)

    def _on_save_key_clicked(self) -> None:
        # A desktop keyring may wait on an unlock prompt: never on the GUI thread.
        self.save_key.setEnabled(False)
        self.connection_status.setText("Saving the key in the OS keyring…")
        worker = create_worker(store_api_key, self.base_url.text().strip(), self.api_key.text(), _start_thread=False)
        worker.returned.connect(lambda problem: self.connection_status.setText(problem or "Key saved in the OS keyring."))
        worker.errored.connect(lambda exc: self.connection_status.setText(f"Could not save the key: {exc}"))
        worker.finished.connect(lambda: self.save_key.setEnabled(True))
        self._key_saver = worker
        worker.start()

    def _on_start_clicked(self) -> None:
        if self.project is None or self.is_running():
            return
        run_id = create_run(GenerationStore(self.project.conn), self.run_config())
        self._launch(run_id)

    def _on_resume_clicked(self) -> None:
        if self.project is not None and self._run_id is not None and not self.is_running():
            self._launch(self._run_id)

    def _on_pause_toggled(self, paused: bool) -> None:
        if self._worker is not None:
            (self._worker.engine.pause if paused else self._worker.engine.resume)()
        self.pause_button.setText("Resume" if paused else "Pause")

    def _on_stop_clicked(self) -> None:
        if self._worker is not None:
            self._worker.engine.stop()  # the worker thread winds down; finished arrives by signal

    def _update_estimate(self) -> None:
        config = self.run_config()
        prompt_chars = len(default_template()) + 200 * config.k_examples
        self.estimate_label.setText(estimate_cost(config, prompt_chars).describe())

    def _on_tab_changed(self, index: int) -> None:
        if index == 1:
            self._refresh_rejected()
        elif index == 2:
            self._refresh_seed_table()

    def _on_worker_event(self, event: ev.Event) -> None:
        self._pending.append(event)  # drawn by the timer

    def _on_worker_finished(self, result: RunResult) -> None:
        self._redraw()
        self._redraw_timer.stop()
        self._worker = None
        self._set_running(False)
        self.eta.setText(f"Finished: {result.reason}. {result.message}")
        self._refresh_rejected()
        self._refresh_seed_table()

    def _on_worker_crashed(self, message: str) -> None:
        self._show_banner(f"The run stopped unexpectedly: {message}")
        self._worker = None
        self._redraw_timer.stop()
        self._set_running(False)

    def _on_restore_clicked(self) -> None:
        row = self.rejected_table.currentRow()
        item = self.rejected_table.item(row, 0) if row >= 0 else None
        if item is None or self.project is None:
            return
        GenerationStore(self.project.conn).restore(item.data(Qt.ItemDataRole.UserRole))
        self._refresh_rejected()

    # -- drawing ------------------------------------------------------------------------------------
    def _show_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.show()

    def _redraw(self) -> None:
        events, self._pending = self._pending, []
        new_samples = []
        for event in events:
            if isinstance(event, ev.Progress):
                self._counters = event.counters
            elif isinstance(event, ev.RunFinished):
                self._counters = event.counters
                self.data_changed.emit()
            elif isinstance(event, ev.SampleKept):
                new_samples.append(event.instruction)
            elif isinstance(event, ev.TeacherError):
                self._show_banner(f"{event.kind.upper()}: {event.message}")
            elif isinstance(event, ev.RunStarted):
                self.connection_status.setText(f"Key from {event.key_source}. Estimate: {event.estimate}")
        if new_samples:
            # The status bar's counts follow a run, at a pace that keeps their query off the critical path.
            if time.monotonic() - self._counts_emitted_at >= COUNTS_INTERVAL_S:
                self._counts_emitted_at = time.monotonic()
                self.data_changed.emit()
            self.feed.insertItems(0, list(reversed(new_samples[-FEED_LIMIT:])))
            while self.feed.count() > FEED_LIMIT:
                self.feed.takeItem(self.feed.count() - 1)
        c = self._counters
        if c is None:
            return
        self.progress.setMaximum(max(1, c.target))
        self.progress.setValue(min(c.kept, c.target))
        eta = f"ETA {c.eta_s:.0f} s" if c.eta_s is not None else "ETA --"
        self.eta.setText(f"{eta} · {c.samples_per_min:.0f} samples/min" + (" · paused" if c.paused else ""))
        by_reason = ", ".join(f"{k} {v}" for k, v in sorted(c.rejected_by_reason.items())) or "none"
        per_kept = f"${c.cost_per_kept:.4f}" if c.cost_per_kept is not None else "--"
        self.counters_label.setText(
            f"In flight {c.in_flight} · requests {c.requests_done} (+{c.requests_failed} failed) · kept {c.kept} · "
            f"rejected {c.rejected} ({by_reason}) · tokens {c.prompt_tokens:,} in / {c.completion_tokens:,} out · "
            f"cost ${c.cost:.4f} · per kept sample {per_kept}")

    def _refresh_rejected(self) -> None:
        if self.project is None or self._run_id is None:
            return
        rows = GenerationStore(self.project.conn).rejected(self._run_id, self.reason_filter.currentData() or None)
        self.rejected_table.setRowCount(len(rows))
        for n, row in enumerate(rows):
            reason = QTableWidgetItem(row["reason"] + (" (restored)" if row["restored"] else ""))
            reason.setData(Qt.ItemDataRole.UserRole, row["id"])
            score = f"{row['score']:.2f}" if row["score"] is not None else ""
            text = row["instruction"] or row["detail"]
            for col, item in enumerate((reason, QTableWidgetItem(text), QTableWidgetItem(row["nearest_instruction"] or ""),
                                        QTableWidgetItem(score))):
                self.rejected_table.setItem(n, col, item)

    def _refresh_seed_table(self) -> None:
        if self.project is None or self._run_id is None:
            return
        yields = GenerationStore(self.project.conn).seed_yield(self._run_id)
        self.seed_table.setRowCount(len(yields))
        for n, (seed_id, (shown, kept)) in enumerate(sorted(yields.items())):
            seed = self.project.seeds.get(seed_id)
            name = (seed.name or seed.instruction[:60]) if seed else f"#{seed_id} (deleted)"
            for col, text in enumerate((name, str(shown), str(kept), f"{kept / shown:.1f}" if shown else "")):
                self.seed_table.setItem(n, col, QTableWidgetItem(text))
