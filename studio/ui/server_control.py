"""The local model server's control: start, stop, watch, adopt; small enough for a side bar or a toolbar row.

The server is its own process (``python -m studio.serve``) started on the job runner, so the
GUI never loads a model. Everything that waits or reads (the training-GPU check, waiting for
the info file, ``/health`` every 2 s, loading an adapter) runs on a worker; this widget only
shows the answers. A server already running for the project (its info file names a live pid)
is adopted rather than started twice.

The backend combo lists the serving backends (``SERVING_BACKENDS``: the studio's own server and
what plugins add, such as vLLM on a GPU box), one unavailable here greyed with its reason. Every
call into a backend goes through :mod:`studio.core.serving.backends`; for one that writes no info
file, its ``wait_ready`` writes ``server.json`` and this widget removes it on exit, so the Chat
panel, ``distill-studio chat`` and Evaluate find every backend's server alike.
"""
from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.processes import pid_alive
from studio.core.registry import SERVING_BACKENDS
from studio.core.serving import launch
from studio.core.serving.backends import (
    STUDIO,
    ServeOptions,
    ServingBackend,
    backend_for,
    guarded,
    probe_health,
    serving_backend,
)
from studio.core.serving.catalog import Catalog, project_catalog, run_model_id
from studio.core.serving.server_info import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerInfo,
    info_path,
    read_info,
    remove_info,
)
from studio.ui import theme
from studio.ui.app_settings import settings as app_settings
from studio.ui.elided_label import ElidedLabel
from studio.ui.jobs import JobRunner, ProcessJob, ProcessResult
from studio.ui.project_context import ProjectContext

STOPPED, CHECKING, STARTING, READY, STOPPING, FAILED = "stopped", "checking", "starting", "ready", "stopping", "failed"
STATE_TEXT = {STOPPED: "Stopped", CHECKING: "Checking…", STARTING: "Starting…", READY: "Ready",
              STOPPING: "Stopping…", FAILED: "Failed"}
STATE_COLOR = {STOPPED: "muted", CHECKING: "warning", STARTING: "warning", READY: "highlight",
               STOPPING: "warning", FAILED: "error"}
SHORTCUT = "Ctrl+Shift+S"
HEALTH_INTERVAL_MS = 2000
READY_TIMEOUT_S = 900.0      # a large base model on a slow disk can take minutes to load
STOP_TIMEOUT_S = 6.0         # the job runner terminates after half, kills after all of it
QUIT_WAIT_MS = 3000          # at app exit: how long the server gets to remove its info file
TAIL_CHARS = 2000
BACKEND_SETTING = "server/backend"  # the key of the serving backend a Start uses (remembered)


def _while_alive(method: Callable[..., Any]) -> Callable[..., Any]:
    """A job's answer reaches a widget that is still there: after shutdown() or deletion it is dropped."""

    @functools.wraps(method)
    def guarded(self: ServerControl, *args: Any) -> Any:
        if self._closed or not shiboken6.isValid(self):
            return None
        return method(self, *args)

    return guarded


class ServerControl(QWidget):
    """Start/Stop, state, URL, device, memory and loaded adapters of the project's model server."""

    state_changed = Signal(object)  # ServerInfo | None
    adapter_result = Signal(int, str)  # after ensure_adapter(run_id): "" once it is served, else why not

    def __init__(self, context: ProjectContext | None, jobs: JobRunner, parent: QWidget | None = None, *,
                 horizontal: bool = False, settings: QSettings | None = None):
        super().__init__(parent)
        self.horizontal = horizontal
        self.settings = settings if settings is not None else app_settings()
        self.setObjectName("ServerControl")
        self.jobs = jobs
        self.context: ProjectContext | None = None
        # How the server is started (tests point ``command_prefix`` at tests/fake_studio_server.py).
        self.command_prefix: list[str] | None = None
        self.host, self.port, self.device, self.threads = DEFAULT_HOST, DEFAULT_PORT, "auto", 0
        self.state = STOPPED
        self._info: ServerInfo | None = None
        self._health: dict[str, Any] | None = None
        self._process: ProcessJob | None = None
        self._adopted = False
        self._user_stop = False
        self._ready_cancel = threading.Event()
        self._wait_error = ""
        self._restart: tuple[Sequence[str] | None, str | None] | None = None
        self._polling = False
        self._started_at = 0.0
        self._announced = False
        self._closed = False
        self._backend = STUDIO            # of the server this widget started (or adopted)
        self._serving: ServingBackend | None = None  # that backend, when it is one this widget started
        self._child_pid: int | None = None
        # Why each backend cannot start here ("" = it can), once a worker has asked (a plugin's code is
        # imported to ask, never on this thread); a key not yet asked counts as available.
        self._reasons: dict[str, str] = {}
        self.backend_checks = 0  # how many of those answers the combo has shown (for whoever waits on one)
        self._out_tail: deque[str] = deque(maxlen=20)  # a backend logging to stdout: its last lines explain a failure
        self._build()
        self._timer = QTimer(self, interval=HEALTH_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer)
        self._timer.start()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_app_quit)
        self.set_context(context)

    # -- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.dot = QLabel("●")
        self.dot.setObjectName("ServerStateDot")
        self.state_label = QLabel()
        self.state_label.setObjectName("ServerState")
        self.state_label.setToolTip("The local model server (python -m studio.serve): one base model and the "
                                    "project's trained adapters, on the OpenAI API")
        font = self.state_label.font()
        font.setBold(True)
        self.state_label.setFont(font)
        self.backend_combo = QComboBox()
        self.backend_combo.setObjectName("ServerBackend")
        self.backend_combo.setAccessibleName("server backend")
        self.backend_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for entry in SERVING_BACKENDS:  # plain data: nothing of a plugin is imported to list it
            self.backend_combo.addItem(entry.label, entry.key)
            self.backend_combo.setItemData(self.backend_combo.count() - 1, entry.help, Qt.ItemDataRole.ToolTipRole)
        saved = str(self.settings.value(BACKEND_SETTING, STUDIO))
        index = self.backend_combo.findData(saved)
        if index >= 0:  # greyed (and left) once the check below finds it cannot start here
            self.backend_combo.setCurrentIndex(index)
        self.backend_combo.currentIndexChanged.connect(self._on_backend_changed)
        self.toggle_button = QPushButton("Start")
        self.toggle_button.setObjectName("ServerToggle")
        self.toggle_button.clicked.connect(self._on_toggle)
        self.url_field = QLineEdit()
        self.url_field.setObjectName("ServerUrl")
        self.url_field.setReadOnly(True)
        self.url_field.setPlaceholderText("not running")
        self.url_field.setToolTip("The OpenAI base URL: give it to any OpenAI client (base_url=...)")
        self.url_field.setAccessibleName("server URL")
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy")
        self.copy_button.setToolTip("Copy the server's URL")
        self.copy_button.clicked.connect(self.copy_url)
        self.details = ElidedLabel("")   # one line: device, memory, queue
        self.details.setProperty("role", "muted")
        # In a side bar the models wrap (it is narrow, adapter names are not); in a row they elide.
        self.models_label = ElidedLabel("") if self.horizontal else QLabel()
        self.models_label.setObjectName("ServerModels")
        self.models_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_view = QPlainTextEdit()
        self.error_view.setObjectName("ServerError")
        self.error_view.setReadOnly(True)
        self.error_view.setMaximumHeight(96)
        self.error_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.error_view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.error_view.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        if self.horizontal:  # a toolbar row: everything on one line, the error below it when there is one
            row = QHBoxLayout()
            row.setSpacing(6)
            self.url_field.setMinimumWidth(190)
            self.details.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
            for widget in (self.dot, self.state_label, self.url_field, self.copy_button, self.details):
                row.addWidget(widget)
            row.addWidget(self.models_label, 1)
            row.addWidget(self.backend_combo)
            row.addWidget(self.toggle_button)
            layout.addLayout(row)
        else:                # a side bar ~300 px wide
            self.models_label.setWordWrap(True)
            top = QHBoxLayout()
            top.setSpacing(6)
            top.addWidget(self.dot)
            top.addWidget(self.state_label, 1)
            top.addWidget(self.toggle_button)
            layout.addLayout(top)
            url_row = QHBoxLayout()
            url_row.setSpacing(4)
            url_row.addWidget(self.url_field, 1)
            url_row.addWidget(self.copy_button)
            layout.addLayout(url_row)
            details_row = QHBoxLayout()  # the combo beside the details: the top row has no room in ~300 px
            details_row.setSpacing(6)
            details_row.addWidget(self.details, 1)
            details_row.addWidget(self.backend_combo)
            layout.addLayout(details_row)
            layout.addWidget(self.models_label)
        layout.addWidget(self.error_view)

        self.shortcut = QShortcut(QKeySequence(SHORTCUT), self, activated=self._on_toggle)
        self.shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self._show()
        self.refresh_backends()

    def _key(self, name: str) -> str:
        """A job key of this control: the Chat and Evaluate panels each embed one, and with a shared key
        one control's health poll would cancel the other's ("latest wins"), leaving it polling forever."""
        return f"{name}@{id(self):x}"

    # -- public API ----------------------------------------------------------------------------
    def info(self) -> ServerInfo | None:
        """The running server (None unless it is ready)."""
        return self._info if self.state == READY else None

    def backend(self) -> str:
        """The key of the serving backend a Start uses: the combo's, when it is available here (else ``"studio"``)."""
        backend = str(self.backend_combo.currentData())
        return backend if self._backend_enabled(backend) else STUDIO

    def set_backend(self, backend: str) -> None:
        """Pick the backend (as the combo does; remembered); only one that is available here."""
        index = self.backend_combo.findData(backend)
        if index < 0:
            known = ", ".join(str(self.backend_combo.itemData(i)) for i in range(self.backend_combo.count()))
            raise ValueError(f"unknown server backend {backend!r}; backends: {known}")
        if self._backend_enabled(backend):
            self.backend_combo.setCurrentIndex(index)

    def refresh_backends(self) -> None:
        """Ask, on a worker, which backends can start here (a plugin's backend is asked, so its code is
        imported: never on the GUI thread); the answer greys the others, their tooltips saying why."""
        keys = [str(self.backend_combo.itemData(i)) for i in range(self.backend_combo.count())]
        self.jobs.submit("Checking the model server backends", _backend_reasons, keys,
                         key=self._key("serve-backends"), quiet=True, cancellable=False,
                         on_done=self._on_backend_reasons)

    @_while_alive
    def _on_backend_reasons(self, reasons: dict[str, str]) -> None:
        """Enable each backend's item only where it can start; a disabled item's tooltip says why (its
        unavailable reason or its plugin's error). The remembered choice stays for when it can again."""
        self._reasons = dict(reasons)
        unavailable = []
        for index in range(self.backend_combo.count()):
            key = str(self.backend_combo.itemData(index))
            reason = self._reasons.get(key, "")
            item = self.backend_combo.model().item(index)  # type: ignore[attr-defined]
            item.setEnabled(not reason)
            item.setToolTip(reason or SERVING_BACKENDS.get(key).help)
            if reason:
                unavailable.append(f"{self.backend_combo.itemText(index)}: {reason}")
                if self.backend_combo.currentIndex() == index and self.state in (STOPPED, FAILED):
                    self._show_backend(STUDIO)
        saved = str(self.settings.value(BACKEND_SETTING, STUDIO))
        if self.state in (STOPPED, FAILED) and self._backend_enabled(saved):
            self._show_backend(saved)  # installed again since it was greyed: the user's choice again
        others = [self.backend_combo.itemText(i) for i in range(self.backend_combo.count())
                  if self.backend_combo.itemData(i) != STUDIO]
        text = "Which server to start: the studio's own (python -m studio.serve)"
        if others:
            text += f" or {', '.join(others)}"
        self.backend_combo.setToolTip(text + ("".join(f". {r}" for r in unavailable) + "." if unavailable
                                              else " (installed here)" if others else ""))
        self.backend_checks += 1

    def set_context(self, context: ProjectContext | None) -> None:
        """The open project changed: stop the server this widget started for the old one, adopt the new one's."""
        if context is self.context:
            return
        if self._process is not None:
            self._ready_cancel.set()
            self._terminate_own()
            self._process = None
        self._forget()
        self._announce(None)
        self.context = context
        self._set_state(STOPPED)
        if context is not None:
            self._check_for_server()

    def start(self, runs: Sequence[str] | None = None, base_model: str | None = None) -> None:
        """Start the server with ``runs`` (None: every run with an adapter) on ``base_model`` (None: the newest run's)."""
        if self.context is None or self.state in (CHECKING, STARTING, READY, STOPPING):
            return
        key = self.backend()
        self._set_state(CHECKING, note="")
        options = ServeOptions(project=self.context.root, info_file=info_path(self.context.root),
                               runs=tuple(runs or ()), base_model=base_model, threads=self.threads,
                               device=self.device,
                               program=tuple(self.command_prefix) if self.command_prefix is not None else None)
        self.jobs.submit("Checking before the model server starts", _prepare, list(runs) if runs else None,
                         base_model, self.device != "cpu", self.host, self.port, key, options, project=self.context,
                         key=self._key("serve-check"),
                         quiet=True, cancellable=False,
                         on_done=lambda result: self._on_prepared(result, runs, base_model),
                         on_error=lambda message: self._fail(message))
        self.refresh_backends()  # vLLM installed (or removed) since: the combo follows

    def stop(self) -> None:
        """Stop the server (ours or adopted): SIGTERM, then kill; the widget shows Stopped once it is gone."""
        self._restart = None
        self._stop()

    def ensure_adapter(self, run_id: int) -> None:
        """Make a run trained after the server started available: load its adapter, or offer a restart.

        ``adapter_result(run_id, "")`` follows once the run is served (``state_changed`` too when
        the catalog changed), ``adapter_result(run_id, why)`` when it is not.
        """
        if self.state != READY or self._info is None or self.context is None:
            self.adapter_result.emit(run_id, "the local server is not running; start it to serve this run")
            return
        info = self._info
        self.jobs.submit("Loading an adapter into the model server", _ensure_adapter, run_id, info,
                         project=self.context, key=self._key(f"serve-adapter-{run_id}"), quiet=True,
                         on_done=self._on_adapter_result,
                         on_error=lambda message, r=run_id: self._on_adapter_failed(r, message))

    def shutdown(self) -> None:
        """The window is closing: SIGTERM the server this widget started (it cleans up itself); never waits."""
        self._timer.stop()
        self._closed = True
        self._ready_cancel.set()
        if self._process is not None:
            self._user_stop = True
            self._terminate_own()

    def copy_url(self) -> None:
        if self.url_field.text():
            QGuiApplication.clipboard().setText(self.url_field.text())

    # -- starting ------------------------------------------------------------------------------
    @_while_alive
    def _on_prepared(self, result: dict, runs: Sequence[str] | None, base_model: str | None) -> None:
        if self.state != CHECKING:
            return
        conflict = result.get("conflict")
        if conflict:
            answer = QMessageBox.question(self, "Start the model server?", conflict,
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                self._set_state(STOPPED, note="Not started: a training run is using the GPU.")
                return
        adopted = result.get("running")
        if adopted is not None:  # someone (the CLI) started one meanwhile: use it
            self._adopt(adopted)
            return
        self._launch(result)

    def _launch(self, prepared: dict) -> None:
        """The backend's server on the job runner; a worker waits until it serves (the backend's wait_ready,
        which writes the info file for a server that writes none)."""
        assert self.context is not None
        root = self.context.root
        backend: ServingBackend = prepared["backend"]
        title = "Model server" if backend.key == STUDIO else f"{backend.title} server"
        job = self._start_job(title, prepared["argv"], root, prepared["env"], backend)
        if job is None:
            return
        pid = int(job.process.processId())
        if pid <= 0:  # it could not start at all: the exit handler has already said why
            return
        port, size = int(prepared["port"]), int(prepared["tensor_parallel_size"])
        cancel = self._ready_cancel
        self.jobs.submit("Starting the model server", _wait_ready, backend, prepared["catalog"], self.host, port,
                         pid, size, info_path(root), READY_TIMEOUT_S, cancel.is_set, key=self._key("serve-wait"),
                         quiet=True, cancellable=False, on_done=lambda info, j=job: self._on_ready(info, j),
                         on_error=lambda message, j=job: self._on_wait_failed(message, j))

    def _start_job(self, title: str, argv: list[str], root: Path, env: dict[str, str],
                   backend: ServingBackend) -> ProcessJob | None:
        """Start the server child; None when it did not start (the failure is shown)."""
        self._user_stop = False
        self._wait_error = ""
        self._ready_cancel = threading.Event()
        self._backend, self._serving = backend.key, backend
        self._out_tail.clear()
        started: list[ProcessJob] = []
        try:
            job = self.jobs.start_process(title, argv, key="serve", cwd=str(root), env=env,
                                          on_line=self._on_server_line,
                                          on_exit=lambda result: self._on_server_exit(result, started),
                                          stop_timeout_s=STOP_TIMEOUT_S)
        except RuntimeError as exc:  # the runner has shut down (the window is closing)
            self._fail(str(exc))
            return None
        started.append(job)
        self._child_pid = int(job.process.processId()) or None
        # Deleted without shutdown() (a panel rebuilt for another project): the server goes with it.
        self.destroyed.connect(functools.partial(_terminate_job, job))
        job.quiet = True  # a server runs for hours: this widget shows it, not the status bar's busy bar
        if self._process is None and self.state == FAILED:  # it failed to start inside start_process
            return None
        self._process = job
        self._started_at = time.monotonic()
        self._set_state(STARTING)
        return job

    @_while_alive
    def _on_server_line(self, line: str) -> None:
        self._out_tail.append(line)
        if line.startswith("Serving ") and self.state == STARTING:
            self._note(line)

    @_while_alive
    def _on_ready(self, info: ServerInfo, job: ProcessJob) -> None:
        if job is not self._process or self.state != STARTING:
            return
        self._info, self._adopted = info, False
        self._set_state(READY, note="")
        self._announce(info)
        self._poll_health()

    @_while_alive
    def _on_wait_failed(self, message: str, job: ProcessJob) -> None:
        if job is not self._process or self._ready_cancel.is_set():
            return
        self._wait_error = message
        if job.running and pid_alive(int(job.process.processId())):  # it timed out: give up on it
            self._fail(message)
            self._terminate_own()
        # otherwise the process has exited and _on_server_exit shows its error output

    @_while_alive
    def _on_server_exit(self, result: ProcessResult, started: list[ProcessJob]) -> None:
        if started and started[0] is not self._process:
            return  # a server of a project no longer shown (set_context already let it go)
        self._ready_cancel.set()
        was_ready = self.state == READY
        self._process = None
        restart, self._restart = self._restart, None
        serving = self._serving
        if serving is not None and not serving.writes_info and self.context is not None and started:
            # a server that writes no info file never removes the one this widget's wait wrote for it
            self.jobs.submit("Removing the model server's info file", remove_info, info_path(self._root()),
                             self._child_pid, key=self._key("serve-clean"), quiet=True)
        tail = result.stderr_tail.strip()[-TAIL_CHARS:]
        if serving is not None and serving.logs_to_stdout and self._out_tail:  # its stdout explains as much
            tail = "\n".join([tail, *self._out_tail]).strip()[-TAIL_CHARS:]
        if self.state == FAILED and result.stopped:  # we gave up on it (not ready in time): already shown
            self._forget()
            self._show()
            if tail:
                self.error_view.setPlainText(f"{self.error_view.toPlainText()}\n{tail}")
                self.error_view.show()
            return
        if self._user_stop or result.stopped:  # Stop here, or the job runner stopped it (window closing)
            self._forget()
            self._set_state(STOPPED, note="")
            self._announce(None)
            if restart is not None:
                self.start(*restart)
            return
        what = "stopped" if was_ready else "could not start"
        code = "crashed" if result.crashed else f"exit code {result.exit_code}"
        self._forget()
        self._fail(f"The server {what} ({code}).", tail or self._wait_error)
        self._announce(None)

    # -- adopting ------------------------------------------------------------------------------
    def _check_for_server(self) -> None:
        """On a worker: is a server of this project already running (its info file, a live pid)?"""
        if self.context is None or self._polling:
            return
        self._polling = True
        self.jobs.submit("Looking for the model server", read_info, info_path(self.context.root),
                         key=self._key("serve-find"), quiet=True, on_done=self._on_found, on_error=self._on_find_failed)

    @_while_alive
    def _on_found(self, info: ServerInfo | None) -> None:
        self._polling = False
        if info is not None and self.state in (STOPPED, FAILED) and self._process is None:
            self._adopt(info)

    @_while_alive
    def _on_find_failed(self, _message: str) -> None:
        self._polling = False

    def _adopt(self, info: ServerInfo) -> None:
        self._info, self._adopted, self._backend, self._serving = info, True, info.backend, None
        self._show_backend(info.backend)  # the combo names the running server's backend, not the remembered one
        self._set_state(READY, note="")
        self._announce(info)
        self._poll_health()

    # -- watching ------------------------------------------------------------------------------
    def _on_timer(self) -> None:
        if self.state == READY:
            self._poll_health()
        elif self.state == STARTING:
            self._show()  # the seconds it has been loading
        elif self.state in (STOPPED, FAILED) and self.isVisible():
            self._check_for_server()  # a server started from the CLI shows up here

    def _poll_health(self) -> None:
        if self._info is None or self._polling:
            return
        self._polling = True
        info = self._info
        self.jobs.submit("Model server health", probe_health, info, key=self._key("serve-health"), quiet=True,
                         on_done=lambda health, i=info: self._on_health(health, i),
                         on_error=lambda message, i=info: self._on_health_failed(message, i))

    @_while_alive
    def _on_health(self, health: dict, info: ServerInfo) -> None:
        self._polling = False
        if info is not self._info or self.state != READY:
            return
        changed = self._health is not None and self._health.get("adapters") != health.get("adapters")
        if self._health is None and self.error_view.toPlainText().startswith("Not answering"):
            self._note("")
        self._health = health
        self._show()
        if changed:  # an adapter was loaded or unloaded: its info file says so too
            self.jobs.submit("Reading the model server's info", read_info, info_path(self._root()),
                             key=self._key("serve-reread"), quiet=True, on_done=self._on_reread)

    @_while_alive
    def _on_health_failed(self, message: str, info: ServerInfo) -> None:
        self._polling = False
        if info is not self._info or self.state != READY:
            return
        if self._adopted and not pid_alive(info.pid):
            self._forget()
            self._set_state(STOPPED, note="The server has exited.")
            self._announce(None)
            return
        self._health = None
        self._show()
        self._note(f"Not answering: {message}", error=True)

    @_while_alive
    def _on_reread(self, info: ServerInfo | None) -> None:
        if info is None or self._info is None or info.pid != self._info.pid or self.state != READY:
            return
        changed = info.catalog != self._info.catalog
        self._info = info
        self._show()
        if changed:  # only news is announced: a listener that calls ensure_adapter again cannot loop
            self._announce(info)

    # -- adapters --------------------------------------------------------------------------------
    @_while_alive
    def _on_adapter_result(self, result: dict) -> None:
        run_id = int(result["run_id"])
        if result["status"] in ("loaded", "present"):
            if result["status"] == "loaded":
                self._note(f"Loaded {result['model']}.")
            self.jobs.submit("Reading the model server's info", read_info, info_path(self._root()),
                             key=self._key("serve-reread"), quiet=True, on_done=self._on_reread)
            self._poll_health()
            self.adapter_result.emit(run_id, "")
        elif result["status"] == "load-failed":  # e.g. vLLM without runtime LoRA loading (or it refused): restart
            name = result["title"]
            text = (f"{name} could not load {result['model']} while running ({result['error']}). Restart {name} "
                    "with every trained run? Chats with the current models stop.")
            answer = QMessageBox.question(self, f"Restart {name}?", text,
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer == QMessageBox.StandardButton.Yes:
                self._restart = (None, result["server_base"])
                self._stop()
                self.adapter_result.emit(run_id, f"{name} is restarting with that run")
            else:
                why = f"{result['model']} is not served: {result['error']}"
                self._note(f"{why}.", error=True)
                self.adapter_result.emit(run_id, why)
        elif result["status"] == "other-base":
            text = (f"Training run {result['label']} was trained on {result['base']}, but the running server holds "
                    f"{result['server_base']}; one server holds one base model. Restart the server with "
                    f"{result['base']}? Chats with the current models stop.")
            answer = QMessageBox.question(self, "Restart the model server?", text,
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer == QMessageBox.StandardButton.Yes:
                self._restart = (None, result["base"])
                self._stop()
                self.adapter_result.emit(run_id, "the server is restarting with that run's base model")
            else:
                why = f"{result['model']} is not served: it was trained on another base model"
                self._note(f"{why}.", error=True)
                self.adapter_result.emit(run_id, why)

    @_while_alive
    def _on_adapter_failed(self, run_id: int, message: str) -> None:
        self._note(message, error=True)
        self.adapter_result.emit(run_id, message)

    # -- stopping --------------------------------------------------------------------------------
    def _stop(self) -> None:
        if self._process is not None:
            self._user_stop = True
            self._ready_cancel.set()
            self._set_state(STOPPING)
            self._terminate_own()
        elif self.state == READY and self._info is not None:
            info = self._info
            self._set_state(STOPPING)
            self.jobs.submit("Stopping the model server", launch.stop_server, info, 5.0,
                             info_file=info_path(self._root()), key=self._key("serve-stop"), quiet=True,
                             cancellable=False,
                             on_done=lambda _r: self._on_adopted_stopped(),
                             on_error=lambda message: self._fail(message))
        elif self.state in (FAILED, CHECKING):
            self._set_state(STOPPED, note="")

    @_while_alive
    def _on_adopted_stopped(self) -> None:
        self._forget()
        self._set_state(STOPPED, note="")
        self._announce(None)
        restart, self._restart = self._restart, None
        if restart is not None:
            self.start(*restart)

    def _terminate_own(self) -> None:
        """SIGTERM now (the job runner's stop would first wait for a flag file), kill later if needed."""
        job = self._process
        if job is None or not job.running:
            return
        job.stop()                 # the flag file, and the runner's terminate/kill timers as a backstop
        job.process.terminate()    # SIGTERM at once: the server finishes its streams and removes its info file

    def _on_app_quit(self) -> None:
        job = self._process
        if job is not None and job.running:
            pid = int(job.process.processId())
            self._terminate_own()
            job.process.waitForFinished(QUIT_WAIT_MS)  # the loop has ended: nothing else waits on this thread
            if self._serving is not None and not self._serving.writes_info and self.context is not None:
                remove_info(info_path(self._root()), pid)  # such a server does not remove the file written for it

    # -- showing -----------------------------------------------------------------------------------
    def _announce(self, info: ServerInfo | None) -> None:
        """Tell listeners (the Chat panel) the server's new info, or None once it is gone (once)."""
        if info is None and not self._announced:
            return
        self._announced = info is not None
        self.state_changed.emit(info)

    def _forget(self) -> None:
        if self._adopted:
            self._show_backend(str(self.settings.value(BACKEND_SETTING, STUDIO)))
        self._info, self._health, self._adopted = None, None, False

    def _show_backend(self, backend: str) -> None:
        """Show ``backend`` in the combo without remembering it (an adopted server's, then the user's again)."""
        index = self.backend_combo.findData(backend)
        if index >= 0:
            self.backend_combo.blockSignals(True)
            self.backend_combo.setCurrentIndex(index)
            self.backend_combo.blockSignals(False)

    @_while_alive
    def _fail(self, message: str, detail: str = "") -> None:
        self._set_state(FAILED, note=message)
        if detail:
            self.error_view.setPlainText(f"{message}\n{detail}")
            self.error_view.show()

    def _note(self, text: str, *, error: bool = False) -> None:
        self.error_view.setPlainText(text)
        self.error_view.setVisible(bool(text))
        self.error_view.setProperty("level", "error" if error else "info")

    def _set_state(self, state: str, *, note: str | None = None) -> None:
        self.state = state
        if note is not None:
            self._note(note, error=state == FAILED)
        self._show()

    def _show(self) -> None:
        c = theme.colors(theme.palette_look(self.palette()))
        role = STATE_COLOR[self.state]
        color = c.get("success", c["highlight"]) if self.state == READY else c[role]  # a theme's green, when it has one
        self.dot.setStyleSheet(f"color: {color};")
        self.dot.setAccessibleName(f"server {self.state}")
        text = f"Server: {STATE_TEXT[self.state]}"
        if self.state == READY and self._adopted:
            text += " (already running)"
        self.state_label.setText(text)
        running = self.state in (STARTING, READY)
        self.toggle_button.setText("Stop" if running or self.state == STOPPING else "Start")
        self.toggle_button.setEnabled(self.context is not None and self.state not in (CHECKING, STOPPING))
        self.backend_combo.setEnabled(self.state in (STOPPED, FAILED))  # a running server keeps its backend
        verb = "Stop" if running else "Start"
        self.toggle_button.setToolTip(f"{verb} the local model server ({SHORTCUT})")
        info = self._info if self.state == READY else None
        self.url_field.setText(info.url if info is not None else "")
        self.url_field.setPlaceholderText("starting…" if self.state in (CHECKING, STARTING) else "not running")
        self.copy_button.setEnabled(info is not None)
        details = self._details_text(info)
        self.details.setText(details)
        self.details.setToolTip(details)
        self.details.setVisible(bool(details))
        models = self._models_text(info)
        self.models_label.setText(models)
        self.models_label.setToolTip(models)
        self.models_label.setVisible(bool(models))

    def _details_text(self, info: ServerInfo | None) -> str:
        if info is None:
            if self.state == STARTING:
                return f"Loading the model… {time.monotonic() - self._started_at:.0f} s"
            return "" if self.state != STOPPED or self.context is None else f"Serves your trained runs ({SHORTCUT})"
        health = self._health or {}
        parts = [str(health.get("device") or info.device)]
        memory = health.get("memory") or {}
        used = memory.get("gpu_used_mib")  # a plugin's server: the GPUs' memory as nvidia-smi reports it
        if isinstance(used, list) and used:
            parts.append(f"GPU {human_bytes(sum(used) * 1024 * 1024)} used")
        if int(info.extra.get("tensor_parallel_size") or 1) > 1:
            parts.append(f"{info.extra['tensor_parallel_size']} GPUs")
        if memory.get("rss_bytes"):
            parts.append(f"RAM {human_bytes(memory['rss_bytes'])}")
        gpu = memory.get("gpu_reserved_bytes") or memory.get("gpu_allocated_bytes")
        if gpu:
            parts.append(f"GPU {human_bytes(gpu)}")
        queue = health.get("queue") or {}
        if queue.get("running") or queue.get("waiting"):
            parts.append(f"{queue.get('running', 0)} running, {queue.get('waiting', 0)} waiting")
        return " · ".join(parts)

    def _models_text(self, info: ServerInfo | None) -> str:
        if info is None:
            return ""
        health = self._health or {}
        adapters = health.get("adapters")
        if not isinstance(adapters, list):
            adapters = [model.id for model in info.catalog.adapters]
        base = health.get("base_id") or info.catalog.base.id
        if not adapters:
            return f"Base {base}, no adapters"
        return f"Base {base} · adapters: {', '.join(adapters)}"

    def loaded_adapters(self) -> list[str]:
        """The adapters the server says it holds (from /health; the info file's until the first answer)."""
        if self._info is None:
            return []
        adapters = (self._health or {}).get("adapters")
        return list(adapters) if isinstance(adapters, list) else [m.id for m in self._info.catalog.adapters]

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.PaletteChange:
            self._show()  # the theme switched: the state colour follows
        super().changeEvent(event)

    def _backend_enabled(self, backend: str) -> bool:
        """A backend in the combo that the last check did not find unable to start (a Start checks again)."""
        return self.backend_combo.findData(backend) >= 0 and not self._reasons.get(backend)

    def _on_backend_changed(self, _index: int) -> None:
        self.settings.setValue(BACKEND_SETTING, str(self.backend_combo.currentData()))

    def _on_toggle(self) -> None:
        if self.state in (STARTING, READY):
            self.stop()
        elif self.state in (STOPPED, FAILED):
            self.start()

    def _root(self) -> Path:
        assert self.context is not None
        return self.context.root


# -- worker functions (no Qt) ----------------------------------------------------------------------
def _unavailable_reason(key: str) -> str:
    """Why backend ``key`` cannot start here, or "": its own reason, or why its plugin's code did not load."""
    try:
        backend = serving_backend(key)
        return guarded(backend, "checking whether it can start here", backend.unavailable_reason)
    except StudioError as exc:
        return str(exc)


def _backend_reasons(keys: list[str]) -> dict[str, str]:
    """Why each of ``keys`` cannot start here ("" when it can); on a worker: it imports plugins' code."""
    return {key: _unavailable_reason(key) for key in keys}


def _prepare(project: Any, runs: list[str] | None, base_model: str | None, on_gpu: bool, host: str,
             port: int, key: str, options: ServeOptions) -> dict:
    """Before a start: the backend (its code loaded here, off the GUI thread) and whether it can start,
    a server already running, the training-GPU conflict, the catalog, a port, the argv.

    The argv is built here, on the worker: a backend may read files for it (vLLM, the adapters' ranks).
    """
    backend = serving_backend(key)  # a plugin whose code broke: its PluginError is the start's failure
    reason = _unavailable_reason(key)
    if reason:
        raise launch.ServeError(f"{backend.title} cannot start here: {reason}")
    running = read_info(info_path(project.root))
    if running is not None:
        return {"running": running}
    on_gpu = on_gpu or backend.on_gpu
    conflict = launch.training_gpu_conflict(project) if on_gpu else None
    catalog = project_catalog(project, base_model=base_model, only=runs)  # no model: say so before a process starts
    action = "building the server's command"
    size = int(guarded(backend, action, backend.tensor_parallel_size))
    port = int(guarded(backend, action, backend.port, host, port))
    argv = guarded(backend, action, backend.command, catalog, host, port, size, options)
    env = guarded(backend, action, backend.env, options)
    return {"conflict": conflict, "port": port, "running": None, "backend": backend, "catalog": catalog,
            "tensor_parallel_size": size, "argv": list(argv), "env": dict(env)}


def _wait_ready(backend: ServingBackend, catalog: Catalog, host: str, port: int, pid: int, tensor_parallel_size: int,
                info_file: Path, timeout_s: float, cancelled: Callable[[], bool]) -> ServerInfo:
    """Wait until the server serves: the backend's wait (a backend that writes no info file gets it written)."""
    info = guarded(backend, "waiting for its server", backend.info, catalog, host, port, pid, tensor_parallel_size)
    return guarded(backend, "waiting for its server", backend.wait_ready, info, info_file, timeout_s, cancelled)


def _terminate_job(job: ProcessJob, *_args: object) -> None:
    if shiboken6.isValid(job) and job.running:
        job.stop()
        job.process.terminate()


def _ensure_adapter(project: Any, run_id: int, info: ServerInfo) -> dict:
    run = project.training.get(run_id)
    model = run_model_id(run)
    backend = backend_for(info)
    result = {"run_id": run.id, "model": model, "label": run.label, "base": run.base_model,
              "server_base": info.catalog.base_model, "title": backend.title if backend else info.backend}
    try:
        served = probe_health(info, gpu_memory=False).get("adapters")
    except StudioError:
        served = None
    if not isinstance(served, list):
        served = [m.id for m in info.catalog.adapters]
    if model in served:
        return {**result, "status": "present"}
    if not launch.same_base(info.catalog, run):
        return {**result, "status": "other-base"}
    if backend is None:
        serving_backend(info.backend)  # raises: says why this server's backend cannot be used here
    assert backend is not None
    try:
        guarded(backend, f"loading {model} into its server", backend.load_adapter, info, run, info_path(project.root))
    except launch.ServeError as exc:
        if not backend.restart_to_load:
            raise
        return {**result, "status": "load-failed", "error": str(exc)}
    return {**result, "status": "loaded"}


def human_bytes(value: float) -> str:
    """``512 MB``, ``1.2 GB``: memory as a person reads it."""
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.1f} GB" if value < 10 else f"{value:.0f} GB"
