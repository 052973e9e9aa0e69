"""The Train page: pick a snapshot, a base model and settings, check, train, watch, stop, resume.

The training job is its own OS process (``python -m studio.train CONFIG.json``), started
*detached*: closing the window leaves it training, and the next start re-attaches to it. So
the panel never reads the job's stdout; everything comes from ``runs/<id>/events.jsonl``,
tailed with :class:`~studio.core.training.events.EventTail` from a byte offset (only new
bytes are read, never the whole file), one path for a run started here, a run re-attached
after a restart and a run from history. Events land in numpy buffers
(:class:`~studio.ui.train_live.LiveRun`); one 10 Hz timer reads the tail and redraws, however
fast the job logs. Stop touches the run's flag file (the job checkpoints and exits) and only
kills the process after :data:`STOP_KILL_AFTER_S`.

Off the GUI thread: every store read and write (jobs on the window's runner), replaying a
finished run's events, the pre-flight check and hardest-samples scoring (child processes, the
GUI never imports torch or a tokenizer), the GPU probe (``nvidia-smi``).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
    QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSplitter, QTabWidget, QTextBrowser, QVBoxLayout, QWidget,
)

import html
import json

from studio.core.errors import StudioError
from studio.core.project import Project
from studio.core.training import events as ev
from studio.core.training import launch
from studio.core.training.runs import TrainingRun
from studio.core.training.settings import PRESETS, SettingsError, TrainSettings, preset_settings
from studio.ui.elided_label import ElidedLabel
from studio.ui.jobs import JobRunner, ProcessResult
from studio.ui.message_area import MessageArea
from studio.ui.panels import Panel
from studio.ui.project_context import ProjectContext
from studio.ui.train_history import RunHistory
from studio.ui.train_live import LiveRun
from studio.ui.train_plots import TrainPlots
from studio.ui.train_preflight_view import PreflightView
from studio.ui.train_settings_form import SettingsForm

TICK_MS = 100  # the one timer: tail the events file, redraw (at most 10 times a second)
TAIL_CHUNK = 64 << 10  # bytes per read (~330 log events)
TICK_BUDGET_S = 0.025  # reading stops for this tick once it took this long: a burst is drawn over a few
                       # ticks instead of stalling the window while it is parsed
RUNS_REFRESH_S = 3.0  # how often the history re-reads runs while one of them runs
SYNC_INTERVAL_S = 2.0  # how often a live run's events are recorded in the store (status, step) while it runs
LIVENESS_INTERVAL_S = 1.0
START_GRACE_S = 30.0  # a job that wrote neither its pid file nor an event by then did not start
STOP_KILL_AFTER_S = 120.0  # Stop waits this long for the job's checkpoint before terminating it
KILL_AFTER_TERM_S = 15.0  # and this long after terminating before killing it
LOG_BLOCKS = 5000
SAMPLE_ROUNDS = 50  # eval rounds of sample answers kept in the view
CPU_NOTE = ("No NVIDIA GPU found: training will run on the CPU, roughly 100× slower than on a GPU (a "
            "135M-parameter model trains at about 300 tokens/s on two cores). Fine for a tiny test run; "
            "the pre-flight check estimates this run's time.")
READ_JOBS = ("train-runs", "train-snapshots", "train-gpu", "train-models", "train-replay", "train-overlays")


# -- work for jobs (worker threads, own project handles) -------------------------------------
def read_runs(project: Project) -> list[TrainingRun]:
    """The runs, newest first; a run marked running is synced first (its job may have ended meanwhile)."""
    runs = project.training.list()
    return [project.training.sync(run.id) if run.status == "running" else run for run in runs]


def read_snapshots(project: Project) -> list[tuple[str, int]]:
    return [(f"{s.name} ({s.sample_count} samples)", s.id) for s in reversed(project.snapshots.list())]


def replay_run(run: TrainingRun) -> tuple[LiveRun, int, bool]:
    """A run's events into a fresh LiveRun (a thread: a long run has many), the offset reached, and liveness."""
    alive = launch.live_pid(run) is not None  # asked first: a job gone by now wrote all it will
    live = LiveRun()
    tail = ev.EventTail(run.events_path)
    while batch := tail.read_new():
        live.ingest(batch)
    return live, tail.offset, alive


def prepare_resume(project: Project, run_id: int) -> tuple[TrainingRun, bool]:
    """The run made ready to resume, or (if its job runs after all) as it is, with True: follow it instead."""
    run = project.training.get(run_id)
    if launch.live_pid(run) is not None:
        return run, True
    return project.training.prepare_resume(run_id), False


def write_preflight_config(project: Project, snapshot: int, base_model: str, settings: TrainSettings) -> Path:
    """The pre-flight config in a folder of its own (the check runs after this job returns)."""
    folder = Path(tempfile.mkdtemp(prefix="distill-preflight-"))
    return launch.write_preflight_config(project, snapshot, base_model, settings, folder)


def probe_gpu() -> str:
    """'' when an NVIDIA GPU answers ``nvidia-smi``, else the CPU note (no torch import in the GUI)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return CPU_NOTE
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return CPU_NOTE
    try:
        out = subprocess.run([tool, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return CPU_NOTE
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return "" if out.returncode == 0 and names else CPU_NOTE


def list_base_models() -> list[tuple[str, str]]:
    """(label, path or id) of the models in the Hugging Face cache; none when that module is absent."""
    try:
        from studio.core.training.base_models import list_cached_models
    except ImportError:
        return []
    return [(f"{m.name} (cache)", str(m.path_or_id)) for m in list_cached_models()]


def prepare_base_model(spec: str, trust_remote_code: bool):
    """Job body: check the base model and download a hub model not yet cached (with progress).

    Returns the spec to put in the run (a folder, or the hub id: the job then loads it from the
    cache, and the run records which model it was). A model whose code ships with it and is
    not allowed to run is refused here, before a run exists.
    """
    from studio.core.training.base_models import HUB, download_steps, inspect_local, resolve

    info = resolve(spec)
    if info.source == HUB:
        folder = yield from download_steps(info.repo_id or spec, info.revision)
        info = inspect_local(folder, repo_id=info.repo_id)
    if info.needs_remote_code and not trust_remote_code:
        raise StudioError(f"{info.name} needs Python code shipped with the model (its config.json has an "
                          "auto_map); tick trust_remote_code only if you trust its authors, or choose another model")
    return spec


class TrainPanel(Panel):
    title = "Train"
    icon = "train.svg"

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        # How a job is started: tests swap in a scripted child that writes events.
        self.child_command: Callable[[Path], list[str]] = launch.child_command
        self.hardest_command: Callable[[Path], list[str]] = launch.hardest_command
        self.preflight_command: Callable[[Path], list[str]] = launch.preflight_command
        self.stop_kill_after_s = STOP_KILL_AFTER_S
        self.start_grace_s = START_GRACE_S
        self.runs: list[TrainingRun] = []
        self.run: TrainingRun | None = None  # the run the live view shows
        self.live: LiveRun | None = None
        self.tail: ev.EventTail | None = None  # set while the shown run's job runs
        self._attached_at = 0.0
        self._last_sync = 0.0
        self._last_liveness = 0.0
        self._saw_pid = False  # the followed job's pid file named a live process since this attach
        self._events_at_attach = 0  # events replayed before following: a resume's earlier leg is no sign of life
        self._launching: int | None = None  # a run whose job was just started and is not followed yet
        self._stopping_since: float | None = None
        self._terminated = False
        self._shown_log = 0
        self._shown_rounds = 0
        self._overlay_cache: dict[int, tuple[float, LiveRun]] = {}  # run id -> (events mtime, replay)
        self._pending_select: int | None = None
        self._wanted_snapshot: int | None = None  # the reopened run's snapshot, chosen once the snapshots are read
        self._splitter_sized = False
        self._drawn_version = -1
        self._build()
        self._timer = QTimer(self, interval=TICK_MS)
        self._timer.timeout.connect(self.tick)
        # A job that runs while another run is shown still reaches the history (its store row is synced).
        self._runs_timer = QTimer(self, interval=int(RUNS_REFRESH_S * 1000))
        self._runs_timer.timeout.connect(self._refresh_running)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.start_run)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.stop_run)
        QShortcut(QKeySequence("Ctrl+Shift+Return"), self, activated=self.resume_run)
        QShortcut(QKeySequence("Ctrl+Shift+P"), self, activated=self.run_preflight)
        self._update_buttons()

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        run_box = QGroupBox("Run")
        form = QFormLayout(run_box)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.snapshot = QComboBox(toolTip="The frozen snapshot to train on (Curate ▸ snapshot).")
        self.base_model = QComboBox(editable=True, toolTip=(
            "A local model folder, a model in the Hugging Face cache (listed), or a hub id (downloaded when online)."))
        self.base_model.lineEdit().setPlaceholderText("folder or hub id")
        browse = QPushButton("Folder…", clicked=self._browse_model, toolTip="Choose a local model folder")
        model_row = QHBoxLayout()
        model_row.addWidget(self.base_model, 1)
        model_row.addWidget(browse)
        self.preset = QComboBox(toolTip="Settings from a known recipe; every field can still be changed.")
        self.preset.addItem("defaults", None)
        for name, preset in PRESETS.items():
            self.preset.addItem(name, name)
            self.preset.setItemData(self.preset.count() - 1, preset.description, Qt.ItemDataRole.ToolTipRole)
        self.preset.currentIndexChanged.connect(self._on_preset_changed)
        self.preset_note = QLabel(wordWrap=True)
        self.preset_note.setProperty("role", "muted")
        self.run_name = QLineEdit(placeholderText="run-N", toolTip="A name to find the run by (optional).")
        self.device_note = QLabel(wordWrap=True)
        self.device_note.setProperty("role", "muted")
        form.addRow("Snapshot", self.snapshot)
        form.addRow("Base model", model_row)
        form.addRow("Preset", self.preset)
        form.addRow(self.preset_note)
        form.addRow("Name", self.run_name)
        form.addRow(self.device_note)

        self.form = SettingsForm()
        self.preflight_button = QPushButton("Pre-flight", clicked=self.run_preflight,
                                            toolTip="Render a sample as the model sees it and check EOS, template, "
                                                    "lengths, memory and time (Ctrl+Shift+P)")
        self.start_button = QPushButton("Start", clicked=self.start_run, toolTip="Start a new run (Ctrl+Return)")
        self.stop_button = QPushButton("Stop", clicked=self.stop_run,
                                       toolTip="Checkpoint and stop at the end of the current step (Esc)")
        self.resume_button = QPushButton("Resume", clicked=self.resume_run,
                                         toolTip="Continue the selected run from its last checkpoint: same steps, "
                                                 "same curve (Ctrl+Shift+Return)")
        buttons = QHBoxLayout()
        for button in (self.preflight_button, self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)

        settings = QWidget()
        left = QVBoxLayout(settings)
        left.setContentsMargins(0, 0, 4, 0)
        left.addWidget(run_box)
        left.addWidget(self.form)
        left.addStretch(1)
        self.settings_scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.settings_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_scroll.setWidget(settings)
        self.settings_scroll.setMinimumWidth(settings.minimumSizeHint().width()
                                             + self.settings_scroll.verticalScrollBar().sizeHint().width())
        left_side = QWidget()
        left_layout = QVBoxLayout(left_side)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.settings_scroll, 1)
        left_layout.addLayout(buttons)

        self.progress = QProgressBar(format="No run yet: Start (Ctrl+Return)", textVisible=True)
        self.progress.setValue(0)
        self.status_line = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plots = TrainPlots()
        self.samples_view = QTextBrowser(openLinks=False)
        self.samples_view.setPlaceholderText("At each eval the model answers a few fixed prompts (held out, or "
                                             "training prompts when there is no validation split); the answers "
                                             "appear here as they arrive.")
        self.log_view = QPlainTextEdit(readOnly=True)
        self.log_view.setMaximumBlockCount(LOG_BLOCKS)
        self.log_view.setPlaceholderText("The job's events, one line each.")
        self.preflight = PreflightView()
        live = QWidget()
        live_layout = QVBoxLayout(live)
        live_layout.setContentsMargins(0, 0, 0, 0)
        live_layout.addWidget(self.progress)
        live_layout.addWidget(self.status_line)
        live_layout.addWidget(self.plots, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(live, "Curves")
        self.tabs.addTab(self.samples_view, "Sample answers")
        self.tabs.addTab(self.log_view, "Log")
        self.tabs.addTab(self.preflight, "Pre-flight")

        self.history = RunHistory()
        self.history.current_run_changed.connect(self._on_history_current)
        self.history.selection_changed.connect(self._on_history_selection)
        self.hardest_button = QPushButton("Hardest samples", clicked=self.show_hardest,
                                          toolTip="Score every training sample under the run's adapter and open "
                                                  "them in Curate, worst first: a direct way to find flawed samples")
        self.export_button = QPushButton("Export…", clicked=lambda: self.export_run(),
                                         toolTip="Export the run: its adapter alone, a merged model, or GGUF "
                                                 "for llama.cpp and Ollama")
        self.history.export_requested.connect(self.export_run)
        self.export_dialog = None  # the ExportDialog last opened here
        history_box = QWidget()
        hl = QVBoxLayout(history_box)
        hl.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        caption = ElidedLabel("Runs · Ctrl-click to overlay", "Training runs, newest first: select one to show it, "
                              "Ctrl/Shift-click more to overlay their loss curves")
        caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        head.addWidget(caption, 1)
        head.addWidget(self.hardest_button)
        head.addWidget(self.export_button)
        hl.addLayout(head)
        hl.addWidget(self.history, 1)

        right = QSplitter(Qt.Orientation.Vertical, childrenCollapsible=False)
        right.addWidget(self.tabs)
        right.addWidget(history_box)
        right.setStretchFactor(0, 4)
        right.setStretchFactor(1, 1)
        self.right_splitter = right
        self.splitter = QSplitter(childrenCollapsible=False)
        self.splitter.addWidget(left_side)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter, 1)
        self._on_preset_changed()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._splitter_sized:
            self._splitter_sized = True
            total = self.splitter.width()
            left = max(self.settings_scroll.minimumWidth(), int(total * 0.3))
            self.splitter.setSizes([left, max(1, total - left)])
            # The curves take most of the height, the run list at least its minimum (four whole rows).
            height = self.right_splitter.height()
            runs = max(self.right_splitter.widget(1).minimumSizeHint().height(), int(height * 0.26))
            self.right_splitter.setSizes([max(1, height - runs), runs])

    # -- panel contract --------------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        if self.context is not None:
            self.context.training_runs_changed.disconnect(self._read_runs)
            self.context.snapshots_changed.disconnect(self._read_snapshots)
        for key in READ_JOBS:  # the other project's answers
            self.jobs.cancel(key)
        self._detach()
        self._launching = None
        self._wanted_snapshot = None
        super().set_context(context)
        self.runs = []
        self.run = None
        self.live = None
        self._overlay_cache.clear()
        self.plots.show_run(None)
        self.plots.set_overlays([])
        self.history.show_runs([])
        self.snapshot.clear()
        self.samples_view.clear()
        self.log_view.clear()
        self.preflight.clear()
        if context is not None:
            context.training_runs_changed.connect(self._read_runs)
            context.snapshots_changed.connect(self._read_snapshots)
            self._read_runs()
            self._read_snapshots()
            self.jobs.submit("Looking for a GPU", probe_gpu, key="train-gpu", quiet=True,
                             on_done=self._on_gpu_probed, on_error=lambda _m: None)
            self.jobs.submit("Listing cached models", list_base_models, key="train-models", quiet=True,
                             on_done=self._on_models_listed, on_error=lambda _m: None)
        self._update_buttons()

    def shutdown(self) -> None:
        """Return at once: a training job keeps running (detached) and is re-attached at the next start."""
        self._timer.stop()
        self._runs_timer.stop()
        self.tail = None
        for key in READ_JOBS:  # reads whose answer nobody will show (a sync still records)
            self.jobs.cancel(key)

    # -- reads -----------------------------------------------------------------------------------
    def _read_runs(self) -> None:
        if self.context is not None:
            self.jobs.submit("Reading training runs", read_runs, key="train-runs", project=self.context,
                             on_done=self._on_runs_read, quiet=True)

    def _on_runs_read(self, runs: list[TrainingRun]) -> None:
        first_read = not self.runs and self.run is None
        self.runs = runs
        select = self._pending_select
        if select is None and first_read and runs:
            # After a restart: the running job if there is one (re-attached), else the newest run.
            running = [run for run in runs if run.status in ("running", "created")]
            select = (running or runs)[0].id
            # The form shows what that run used (the last choices), not the defaults: Start then
            # trains what is on screen, and a re-attached run is described by its own settings.
            self._fill_form_from((running or runs)[0])
        self._pending_select = None
        self.history.show_runs(runs, select=select)
        if any(run.status == "running" for run in runs):
            self._runs_timer.start()
        else:
            self._runs_timer.stop()
        if self.run is not None:
            fresh = next((run for run in runs if run.id == self.run.id), None)
            if fresh is not None:
                self.run = fresh
        self._update_buttons()

    def _fill_form_from(self, run: TrainingRun) -> None:
        """Snapshot, base model and settings of ``run`` into the form (the preset it matches, if any)."""
        self.base_model.setCurrentText(run.base_model)
        matching = next((name for name in PRESETS if preset_settings(name) == run.settings), None)
        if matching is None and preset_settings(None) == run.settings:
            matching = ""
        self.preset.blockSignals(True)
        try:
            if matching is not None:
                self.preset.setCurrentIndex(self.preset.findData(matching) if matching else 0)
        finally:
            self.preset.blockSignals(False)
        self.form.set_settings(run.settings)
        self.preset_note.setText(PRESETS[matching].description if matching else
                                 f"The settings of run {run.label}; pick a preset to apply a known recipe.")
        self._wanted_snapshot = run.snapshot_id
        index = self.snapshot.findData(run.snapshot_id) if run.snapshot_id is not None else -1
        if index >= 0:
            self.snapshot.setCurrentIndex(index)
            self._wanted_snapshot = None

    def _refresh_running(self) -> None:
        if self.context is None:
            self._runs_timer.stop()
        elif not self.jobs.is_busy("train-runs"):
            self._read_runs()

    def _read_snapshots(self) -> None:
        if self.context is not None:
            self.jobs.submit("Reading snapshots", read_snapshots, key="train-snapshots", project=self.context,
                             on_done=self._on_snapshots_read, quiet=True)

    def _on_snapshots_read(self, snapshots: list[tuple[str, int]]) -> None:
        current = self.snapshot.currentData()
        if current is None and self._wanted_snapshot is not None:
            current = self._wanted_snapshot
        self._wanted_snapshot = None
        self.snapshot.clear()
        for label, snapshot_id in snapshots:
            self.snapshot.addItem(label, snapshot_id)
        if not snapshots:
            self.snapshot.setPlaceholderText("no snapshot yet: make one in Curate")
        index = self.snapshot.findData(current)
        self.snapshot.setCurrentIndex(index if index >= 0 else 0)
        self._update_buttons()

    def _on_gpu_probed(self, note: str) -> None:
        self.device_note.setText(note)
        self.device_note.setVisible(bool(note))

    def _on_models_listed(self, models: list[tuple[str, str]]) -> None:
        text = self.base_model.currentText()
        for label, path in models:
            if self.base_model.findData(path) < 0:
                self.base_model.addItem(label, path)
        self.base_model.setCurrentText(text)

    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Base model folder", self.base_model_text() or str(Path.home()))
        if folder:
            self.base_model.setCurrentText(folder)

    def base_model_text(self) -> str:
        """What the user chose: a listed model's path, or the typed folder or hub id."""
        text = self.base_model.currentText().strip()
        index = self.base_model.findText(text)
        if index >= 0 and self.base_model.itemData(index):
            return str(self.base_model.itemData(index))
        return text

    def _on_preset_changed(self) -> None:
        name = self.preset.currentData()
        self.form.set_settings(preset_settings(name))
        self.preset_note.setText(PRESETS[name].description if name else
                                 "The settings' defaults; pick a preset to apply a known recipe.")

    # -- actions -----------------------------------------------------------------------------------
    def _inputs(self) -> tuple[int, str, TrainSettings] | None:
        """Snapshot, base model and settings, or None after saying what is missing."""
        snapshot = self.snapshot.currentData()
        if snapshot is None:
            self.messages.show_error("No snapshot to train on: create one in Curate (Snapshot…) first.")
            return None
        base = self.base_model_text()
        if not base:
            self.messages.show_error("Choose a base model: a local folder (Folder…), a cached model or a hub id.")
            return None
        try:
            settings = self.form.settings()
        except SettingsError as exc:
            self.messages.show_error(f"Training settings: {exc}")
            return None
        return int(snapshot), base, settings

    def run_preflight(self) -> None:
        if self.context is None or self.jobs.is_busy("train-preflight"):
            return
        inputs = self._inputs()
        if inputs is None:
            return
        self.preflight_button.setEnabled(False)
        self.tabs.setCurrentWidget(self.preflight)
        self.preflight.summary.setText("Checking: loading the tokenizer and the model's config (not its weights)…")
        self.jobs.submit("Preparing the pre-flight check", write_preflight_config, *inputs, project=self.context,
                         on_done=self._start_preflight, on_error=self._on_preflight_failed)

    def _start_preflight(self, config_path: Path) -> None:
        lines: list[str] = []

        def exited(result: ProcessResult) -> None:
            shutil.rmtree(config_path.parent, ignore_errors=True)
            self.preflight_button.setEnabled(True)
            report = None
            for line in reversed(lines):
                try:
                    report = json.loads(line)
                    break
                except json.JSONDecodeError:
                    continue
            if not isinstance(report, dict):
                tail = result.stderr_tail.strip().splitlines()
                self._on_preflight_failed(tail[-1] if tail else f"the check exited with status {result.exit_code}")
                return
            self.show_preflight(report)

        self.jobs.start_process("Pre-flight check", self.preflight_command(config_path), key="train-preflight",
                                env=launch.child_env(TrainSettings(torch_threads=1)), on_line=lines.append,
                                on_exit=exited, stop_timeout_s=2.0)

    def show_preflight(self, report: dict[str, Any]) -> None:
        self.preflight.show_report(report)
        self.tabs.setCurrentWidget(self.preflight)
        errors = [c for c in report.get("checks") or [] if c.get("level") == "error"]
        if errors:
            self.messages.show_error(f"Pre-flight: {errors[0].get('message')}", level_detail(errors))
        else:
            self.messages.clear()

    def _on_preflight_failed(self, message: str) -> None:
        self.preflight_button.setEnabled(True)
        self.preflight.summary.setText(f"The check could not run: {message}")
        self.messages.show_error(f"Pre-flight check failed: {message}")

    def start_run(self) -> None:
        if (self.context is None or self.is_running() or self._launching is not None
                or self.jobs.is_busy("train-create")):
            return
        running = next((r for r in self.runs if launch.live_pid(r) is not None), None)
        if running is not None:
            # A job of this project already trains (the panel lost track of it): show it rather
            # than start a second one on the same device.
            self._reattach(running)
            self.messages.show_error(f"Training run {running.label} is still running: it is shown again; "
                                     "stop it (Esc) before starting another")
            return
        inputs = self._inputs()
        if inputs is None:
            return
        snapshot, base, settings = inputs
        name = self.run_name.text().strip()

        def create(_checked: str) -> None:
            if self.context is None:
                return
            self.jobs.submit("Creating a training run",
                             lambda project: project.training.create(snapshot=snapshot, base_model=base,
                                                                     settings=settings, name=name),
                             key="train-create", project=self.context, on_done=self._launch,
                             on_error=self._on_start_failed)

        self.start_button.setEnabled(False)
        self.jobs.submit("Preparing the base model", prepare_base_model, base, settings.trust_remote_code,
                         key="train-create", on_done=create, on_error=self._on_start_failed)

    def resume_run(self) -> None:
        run = self._selected_run()
        if (self.context is None or run is None or self.is_running() or self._launching is not None
                or self.jobs.is_busy("train-create") or self._status_of(run) not in ("stopped", "failed")):
            return
        if launch.live_pid(run) is not None:
            self._reattach(run)  # its job runs (the panel lost track of it): follow it, start no second one
            return
        self.resume_button.setEnabled(False)
        self.jobs.submit("Preparing to resume", prepare_resume, run.id, key="train-create", project=self.context,
                         on_done=self._on_resume_prepared, on_error=self._on_start_failed)
        self._update_buttons()

    def _on_resume_prepared(self, result: tuple[TrainingRun, bool]) -> None:
        run, already_running = result
        if already_running:
            self._reattach(run)
        else:
            self._launch(run, resume=True)

    def _reattach(self, run: TrainingRun) -> None:
        """Follow a run whose job already runs, instead of refusing to start it again."""
        self.messages.clear()
        self.status_message.emit(f"Training run {run.label} is already running: following it")
        self.tabs.setCurrentIndex(0)
        self._pending_select = run.id
        self._launching = run.id
        self._load(run, follow=True)
        self._read_runs()
        self._update_buttons()

    def _status_of(self, run: TrainingRun) -> str:
        """The run's status, from the live view's final event when it shows that run (the store lags behind)."""
        if (self.run is not None and self.live is not None and run.id == self.run.id and self.tail is None
                and self.live.final is not None):
            return self.live.status
        return run.status

    def _on_start_failed(self, message: str) -> None:
        self.messages.show_error(f"The run did not start: {message}")
        self._update_buttons()

    def _launch(self, run: TrainingRun, resume: bool = False) -> None:
        """Build the job's command on a worker (its trainer may be a plugin's: its code is imported and
        called there, never on the GUI thread), then start it."""
        self._launching = run.id  # no second Start or Resume while the command is built
        self.jobs.submit("Building the training command", self.child_command, run.config_path, key="train-create",
                         quiet=True, on_done=lambda argv, r=run: self._start_job(r, argv, resume),
                         on_error=self._on_command_failed)

    def _on_command_failed(self, message: str) -> None:
        self._launching = None
        self._on_start_failed(message)

    def _start_job(self, run: TrainingRun, argv: list[str], resume: bool) -> None:
        """Start the job detached (it outlives this window), then follow its events file."""
        self._launching = None
        process = QProcess()
        process.setProgram(argv[0])
        process.setArguments(argv[1:])
        environment = QProcessEnvironment()
        for key, value in launch.child_env(run.settings).items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.setWorkingDirectory(str(run.run_dir))
        process.setStandardOutputFile(QProcess.nullDevice())  # the events are in events.jsonl
        process.setStandardErrorFile(str(run.stderr_path), QProcess.OpenModeFlag.Append)
        started = process.startDetached()  # PySide6 6.11: a bool; the signature also names (bool, pid)
        ok = bool(started[0] if isinstance(started, tuple) else started)
        if not ok:
            self.messages.show_error(f"Could not start the training job ({argv[0]}): {process.errorString()}")
            self._update_buttons()
            return
        self.messages.clear()
        self.status_message.emit(f"Training run {run.label} started")
        self.tabs.setCurrentIndex(0)  # the curves: what a user watches once a run starts
        self._pending_select = run.id
        self._launching = run.id  # until it is followed: no second Start or Resume meanwhile
        if resume:
            # The earlier curve is replayed first (a job), then the file is followed from its end.
            self._load(run, follow=True)
        else:
            self._show(run, LiveRun(), offset=0, alive=True)
        self._read_runs()

    def stop_run(self) -> None:
        if self.run is None or not self.is_running() or self._stopping_since is not None:
            return
        launch.request_stop(self.run)
        self._stopping_since = time.monotonic()
        self._terminated = False
        self.status_line.setText("Stopping: the job checkpoints at the end of its current step…")
        self._update_buttons()

    def is_running(self) -> bool:
        """The shown run's job is followed live."""
        return self.tail is not None

    # -- following a run ---------------------------------------------------------------------------
    def _on_history_current(self, run_id: int | None) -> None:
        if run_id is None:
            return
        run = next((r for r in self.runs if r.id == run_id), None)
        if run is None or (self.run is not None and self.run.id == run_id and self.live is not None):
            self._update_buttons()
            return
        self._load(run)

    def _load(self, run: TrainingRun, *, follow: bool = False) -> None:
        """Replay the run's events in a job, then show it (and follow it if its job runs, or ``follow``)."""
        def shown(result: tuple[LiveRun, int, bool], r: TrainingRun = run) -> None:
            live, offset, alive = result
            if follow:
                live.final = None  # resumed: the stop that ended the last leg is over
            self._show(r, live, offset, alive or follow)

        self.jobs.submit("Reading a run's events", replay_run, run, key="train-replay", quiet=True,
                         on_done=shown,
                         on_error=self._on_replay_failed)

    def _on_replay_failed(self, message: str) -> None:
        self._launching = None
        self.messages.show_error(f"Cannot read run events: {message}")
        self._update_buttons()

    def _show(self, run: TrainingRun, live: LiveRun, offset: int, alive: bool) -> None:
        """Show ``live`` (replayed up to ``offset``); follow the file from there while its job runs."""
        if self.run is not None and self.run.id != run.id:
            self._detach()
        self.run = run
        self.live = live
        self._shown_log = 0
        self._shown_rounds = 0
        self.log_view.clear()
        self.samples_view.clear()
        self.plots.show_run(live)
        self._stopping_since = None
        self._launching = None
        if alive:
            self.tail = ev.EventTail(run.events_path, offset)
            self._attached_at = time.monotonic()
            self._saw_pid = launch.live_pid(run) is not None
            self._events_at_attach = live.events_seen
            self._last_sync = 0.0
        else:
            self.tail = None
        self._timer.start()
        self.tick()
        self._refresh_overlays()
        self._update_buttons()

    def follow_events_file(self, path: Path) -> LiveRun:
        """Follow an events file that belongs to no run of the project (the events benchmark)."""
        self._detach()
        self.run = None
        self.live = LiveRun()
        self._shown_log = self._shown_rounds = 0
        self.log_view.clear()
        self.samples_view.clear()
        self.plots.show_run(self.live)
        self.tail = ev.EventTail(Path(path))
        self._timer.start()
        return self.live

    def _detach(self) -> None:
        self.tail = None
        self._stopping_since = None

    def tick(self) -> None:
        """The timer: new events from the file, then one redraw of whatever changed."""
        live = self.live
        if live is None:
            return
        if self.tail is not None:
            deadline = time.perf_counter() + TICK_BUDGET_S
            while self.tail is not None and (batch := self.tail.read_new(TAIL_CHUNK)):
                live.ingest(batch)
                if time.perf_counter() > deadline:
                    break
            self._watch_job()
        self.redraw()
        if self.tail is None and live.version == self._drawn_version:
            self._timer.stop()  # a finished run: nothing more will come, no idle ticks
        self._drawn_version = live.version

    def redraw(self) -> None:
        live = self.live
        if live is None:
            return
        self.plots.redraw()
        lines = live.new_log_lines(self._shown_log)
        if lines:
            self.log_view.appendPlainText("\n".join(lines))
        self._shown_log = live.log_count
        if len(live.samples) > self._shown_rounds:
            for round_ in live.samples[self._shown_rounds:][-SAMPLE_ROUNDS:]:
                self.samples_view.append(samples_html(round_, live.samples_source))
            self._shown_rounds = len(live.samples)
        if self.run is not None and live.step:
            self.history.show_live_step(self.run.id, live.step, live.max_steps)
        if live.max_steps:
            self.progress.setMaximum(live.max_steps)
            self.progress.setValue(min(live.step, live.max_steps))
        else:
            self.progress.setMaximum(0 if live.final is None and self.tail is not None else 1)
            self.progress.setValue(1 if live.final is not None else 0)
        label = self.run.label if self.run is not None else "run"
        words = {"done": "done", "stopped": "stopped", "failed": "failed", "running": "running",
                 "created": "starting"}[live.status]
        self.progress.setFormat(f"{label}: {words} · %v / %m steps" if live.max_steps else f"{label}: {words}")
        text = live.progress_text()
        if self._stopping_since is not None and live.final is None:
            text = "Stopping: the job checkpoints at the end of its current step… · " + text
        self.status_line.setText(text + (f" · on {live.device}" if live.device else ""))

    def _watch_job(self) -> None:
        """While following: the final event, a job that vanished, a Stop that was not heeded, the store's copy."""
        run, live = self.run, self.live
        assert live is not None
        now = time.monotonic()
        if live.final is not None:
            self._finished(live.final)
            return
        if run is None:
            return  # a bare events file: no job to watch, no store to tell
        if now - self._last_sync >= SYNC_INTERVAL_S:
            self._last_sync = now
            self._sync(run.id)
        if now - self._last_liveness < LIVENESS_INTERVAL_S:
            return
        self._last_liveness = now
        pid = launch.live_pid(run)
        if pid is not None:
            self._saw_pid = True
            if self._stopping_since is not None and now - self._stopping_since > self.stop_kill_after_s:
                # Not stopped in time (a step that never ends, a hung collective): terminate, and
                # kill if even that is ignored. The last checkpoint stays usable for Resume.
                _terminate(pid, kill=self._terminated)
                self._terminated = True
                self._stopping_since = now - self.stop_kill_after_s + KILL_AFTER_TERM_S
            return
        fresh_events = live.events_seen > self._events_at_attach
        if not self._saw_pid and not fresh_events and now - self._attached_at < self.start_grace_s:
            # Still starting (importing torch takes seconds). Only what this job wrote counts: a
            # resumed run's replayed earlier leg says nothing about whether the new job is up.
            return
        while self.tail is not None and (rest := self.tail.read_new()):  # a dead job wrote all it will
            live.ingest(rest)
        if live.final is not None:
            self._finished(live.final)
            return
        # Gone without a word: say why if stderr knows, and let the store mark the run.
        tail = launch.stderr_tail(run, 2000)
        last = tail.splitlines()[-1] if tail else "no output"
        message = f"The training process of run {run.label} ended without a final event ({last})."
        live.ingest([{"type": ev.ERROR, "message": message, "hint": "Resume continues from the last checkpoint",
                      "kind": "lost", "time": time.time()}])
        self.messages.show_error(message, tail)
        self._end_follow()

    def _finished(self, final: dict[str, Any]) -> None:
        run = self.run
        kind = final.get("type")
        if kind == ev.ERROR:
            hint = f" {final['hint']}" if final.get("hint") else ""
            self.messages.show_error(f"Training failed: {final.get('message', 'the job failed')}.{hint}".replace("..", "."),
                                     launch.stderr_tail(run, 2000) if run is not None else "")
        elif kind == ev.DONE:
            self.status_message.emit(f"Training run {run.label if run else ''} done")
        else:
            self.status_message.emit(f"Training run {run.label if run else ''} stopped; Resume continues it")
        self._end_follow()

    def _end_follow(self) -> None:
        self.tail = None
        self._stopping_since = None
        if self.run is not None:
            self._sync(self.run.id)
        self.redraw()
        self._update_buttons()

    def _sync(self, run_id: int) -> None:
        if self.context is not None:
            self.jobs.submit("Recording training events", lambda project: project.training.sync(run_id),
                             key=f"train-sync-{run_id}", project=self.context, quiet=True,
                             on_error=lambda _m: None)

    # -- overlays and hardest ------------------------------------------------------------------------
    def _on_history_selection(self, _ids: list[int]) -> None:
        self._refresh_overlays()
        self._update_buttons()

    def _refresh_overlays(self) -> None:
        shown = self.run.id if self.run is not None else None
        others = [r for r in self.runs if r.id in self.history.selected_runs() and r.id != shown]
        missing = [r for r in others if self._overlay_cache.get(r.id, (None,))[0] != _mtime(r.events_path)]
        if missing:
            def replay_all(runs: list[TrainingRun]) -> dict[int, tuple[float, LiveRun]]:
                return {r.id: (_mtime(r.events_path), replay_run(r)[0]) for r in runs}

            def done(result: dict[int, tuple[float, LiveRun]]) -> None:
                self._overlay_cache.update(result)
                self._draw_overlays(others)

            self.jobs.submit("Reading runs to compare", replay_all, missing, key="train-overlays", quiet=True,
                             on_done=done, on_error=lambda _m: None)
        self._draw_overlays([r for r in others if r.id in self._overlay_cache])

    def _draw_overlays(self, runs: list[TrainingRun]) -> None:
        curves = []
        for run in runs:
            cached = self._overlay_cache.get(run.id)
            if cached is not None:
                series = cached[1].series["loss_smooth"]
                curves.append((f"{run.label} (smoothed)", series.x.copy(), series.y.copy()))
        self.plots.set_overlays(curves)

    def show_hardest(self) -> None:
        run = self._selected_run()
        if self.context is None or run is None or not run.has_adapter or self.jobs.is_busy("train-hardest"):
            return
        self.hardest_button.setEnabled(False)

        def imported(count: int) -> None:
            self._update_buttons()
            self.status_message.emit(f"Scored {count} training samples of run {run.label}")
            self.open_in_curate(run.id)

        def import_scores(result: ProcessResult | None = None) -> None:
            if result is not None and result.exit_code != 0:
                tail = result.stderr_tail.strip().splitlines()
                self.messages.show_error(f"Scoring the hardest samples of run {run.label} failed: "
                                         f"{tail[-1] if tail else 'exit status ' + str(result.exit_code)}",
                                         result.stderr_tail)
                self._update_buttons()
                return
            self.jobs.submit("Importing per-sample losses", lambda project: project.training.import_hardest(run.id),
                             project=self.context, on_done=imported,
                             on_error=lambda m: (self.messages.show_error(f"Hardest samples: {m}"),
                                                 self._update_buttons()))

        if run.hardest_path.is_file():
            import_scores()
        else:
            self.jobs.start_process(f"Scoring the samples of run {run.label}", self.hardest_command(run.config_path),
                                    key="train-hardest", env=launch.child_env(run.settings), on_exit=import_scores)

    def export_run(self, run_id: int | None = None) -> None:
        """The export dialog for a run with an adapter (the selected one by default)."""
        from studio.ui.export_dialog import ExportDialog

        run = self._selected_run() if run_id is None else next((r for r in self.runs if r.id == run_id), None)
        if self.context is None or run is None or not run.has_adapter:
            return
        self.export_dialog = ExportDialog(self.context, self.jobs, run.id, parent=self)
        self.export_dialog.show()

    def open_in_curate(self, run_id: int) -> None:
        """Show the Curate panel filtered to this run's scored samples, worst first (when in a window)."""
        curate = self.open_panel("curate")
        if curate is not None and hasattr(curate, "show_hardest_run"):
            curate.show_hardest_run(run_id)

    # -- state -------------------------------------------------------------------------------------
    def _selected_run(self) -> TrainingRun | None:
        run_id = self.history.current_run()
        run = next((r for r in self.runs if r.id == run_id), None)
        return run or self.run

    def _update_buttons(self) -> None:
        has_project = self.context is not None
        running = self.is_running()
        creating = self.jobs.is_busy("train-create") or self._launching is not None
        run = self._selected_run()
        self.start_button.setEnabled(has_project and not running and not creating)
        self.preflight_button.setEnabled(has_project and not self.jobs.is_busy("train-preflight"))
        self.stop_button.setEnabled(running and self._stopping_since is None)
        status = self._status_of(run) if run is not None else ""
        self.resume_button.setEnabled(has_project and not running and not creating and run is not None
                                      and status in ("stopped", "failed"))
        self.hardest_button.setEnabled(has_project and run is not None and run.has_adapter and not running
                                       and status in ("done", "stopped") and not self.jobs.is_busy("train-hardest"))
        self.export_button.setEnabled(has_project and run is not None and run.has_adapter)


def samples_html(round_: dict[str, Any], source: str = "held-out prompts") -> str:
    """One eval's sample answers under a heading naming the step and where the prompts come from."""
    parts = [f"<h4>Step {html.escape(str(round_.get('step')))} · {html.escape(source)}</h4>"]
    for sample in round_.get("samples") or []:
        instruction = html.escape(str(sample.get("instruction", "")))
        given = html.escape(str(sample.get("input", "") or ""))
        answer = html.escape(str(sample.get("answer", ""))).replace("\n", "<br>")
        reference = html.escape(str(sample.get("reference", ""))).replace("\n", "<br>")
        parts.append(f"<p><b>{instruction}</b>" + (f"<br><i>{given}</i>" if given else "")
                     + f"<br>model: {answer or '<i>(empty)</i>'}"
                     + f'<br><span style="color:#8a8a8a">reference: {reference}</span></p>')
    return "".join(parts)


def level_detail(checks: list[dict[str, Any]]) -> str:
    return "\n".join(f"{c.get('level')}: {c.get('message')}" for c in checks)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _terminate(pid: int, *, kill: bool = False) -> None:
    """After Stop's timeout: SIGTERM (TerminateProcess on Windows), then SIGKILL where there is one."""
    try:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM) if kill else signal.SIGTERM)
    except OSError:
        pass
