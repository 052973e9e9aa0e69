"""The one job runner: long work off the GUI thread, with progress, cancel, "latest wins" and one error path.

Core work is a plain function or a generator yielding :class:`~studio.core.jobs.Progress`
(see :mod:`studio.core.jobs`). :meth:`JobRunner.submit` runs it on a worker thread; with
``project=context`` the job gets a project handle of its own (``context.worker()``), opened and
closed on that thread, so it never shares the GUI thread's SQLite connection. Results, partial
results, progress and errors come back as queued Qt signals and callbacks on the GUI thread.

Child processes (training, the model server) are jobs too: :meth:`JobRunner.start_process`
streams their stdout line by line and stops them by a flag file, then terminate, then kill —
without ever waiting on the GUI thread.

Why not superqt's ``create_worker`` (which the app used before): its workers share Qt's
global thread pool — two threads on a 2-core machine — so a snapshot freeze queued for
seconds behind chart and clustering workers; and it has no child processes, no project
handles and no "latest wins". Each job here gets a thread of its own.

Nothing here joins a thread: cancelling sets a flag the worker sees at its next yield, and a
cancelled job's result is dropped. Worker threads are daemons, and their writes are
transactions, so quitting mid-job loses nothing that was committed and half-commits nothing.
"""
from __future__ import annotations

import atexit
import inspect
import itertools
import os
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from studio.core.errors import StudioError
from studio.core.jobs import Progress

PROGRESS_INTERVAL_S = 0.05  # at most 20 progress updates a second reach the GUI thread
RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
STOP_FILE_ENV = "STUDIO_STOP_FILE"
EXIT_GRACE_S = 3.0  # at interpreter exit, how long running jobs get to see their cancel flag

_live_threads: set[threading.Thread] = set()
_live_threads_lock = threading.Lock()


def plain_message(exc: BaseException) -> str:
    """What the user reads: our errors as written, the rest named by type."""
    if isinstance(exc, StudioError):
        return str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return "The project database is busy (another write is still running); try again in a moment."
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return "Out of memory: close other programs or work on a smaller selection."
    return f"{type(exc).__name__}: {exc}"


class Job(QObject):
    """One unit of work on a worker thread. Signals arrive on the GUI thread."""

    progressed = Signal(object)  # Progress
    yielded = Signal(object)  # a partial result
    succeeded = Signal(object)  # the result
    failed = Signal(str)  # a plain message
    finished = Signal()  # after any of: success, failure, cancel

    # worker thread -> GUI thread (queued: the Job lives on the GUI thread)
    _w_progress = Signal(object)
    _w_yield = Signal(object)
    _w_done = Signal(object)
    _w_error = Signal(str, str)

    _ids = itertools.count(1)

    def __init__(self, title: str, key: str | None, cancellable: bool, quiet: bool, parent: QObject | None = None,
                 on_cancel: Callable[[], None] | None = None):
        super().__init__(parent)
        self.id = next(self._ids)
        self.title = title
        self.key = key
        self.cancellable = cancellable
        self.quiet = quiet  # no status-bar progress (quick background reads such as counts)
        self.state = RUNNING
        self.progress: Progress | None = None
        self.error: str = ""
        self.traceback: str = ""
        self.started_at = time.monotonic()
        self._cancel = threading.Event()
        self._on_cancel = on_cancel  # a cooperative stop: the work winds down and still reports its result
        self._w_progress.connect(self._on_progress)
        self._w_yield.connect(self._on_yield)
        self._w_done.connect(self._on_done)
        self._w_error.connect(self._on_error)

    # -- control (GUI thread) ----------------------------------------------------------------
    def cancel(self, *, force: bool = False) -> None:
        """Ask the work to stop at its next yield; its result, if it still comes, is dropped.

        ``force`` (the window is closing) cancels even a job the user may not cancel.
        """
        if self.state == RUNNING and self._on_cancel is not None and not force:
            self._on_cancel()  # e.g. a generation run: Stop, then its summary arrives as the result
            return
        if self.state == RUNNING and (self.cancellable or force):
            if self._on_cancel is not None:
                self._on_cancel()
            self._cancel.set()
            self.state = CANCELLED
            self.finished.emit()

    def report(self, value: object) -> None:
        """From the worker thread, for callback-style work: a partial result, or a ``Progress``."""
        if self._cancel.is_set():
            return
        try:
            # Unthrottled: callback-style work reports when something happened (a generation run:
            # once per answer), and dropping one would leave the status bar a request behind.
            (self._w_progress if isinstance(value, Progress) else self._w_yield).emit(value)
        except RuntimeError:  # the window is gone: nobody to tell, the work carries on
            pass

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    # -- the worker thread -------------------------------------------------------------------
    def _work(self, fn: Callable, args: tuple, kwargs: dict, project: Any) -> None:
        handle = None
        with _live_threads_lock:
            _live_threads.add(threading.current_thread())
        try:
            if project is not None:
                handle = project.worker()
                args = (handle, *args)
            result = fn(*args, **kwargs)
            if inspect.isgenerator(result):
                result = self._drive(result)
                if result is _CANCELLED:
                    return
            if not self._cancel.is_set():
                self._w_done.emit(result)
        except BaseException as exc:  # noqa: BLE001 - every failure reaches the user, none kills the app
            if not self._cancel.is_set():
                # Our own errors are expected outcomes (a bad file, a refused key): no traceback.
                trace = "" if isinstance(exc, StudioError) else traceback.format_exc()
                self._w_error.emit(plain_message(exc), trace)
        finally:
            if handle is not None:
                handle.close()
            with _live_threads_lock:
                _live_threads.discard(threading.current_thread())

    def _drive(self, steps) -> Any:
        last_progress = 0.0
        pending: Progress | None = None
        while True:
            if self._cancel.is_set():
                steps.close()  # GeneratorExit at the yield: transactions inside roll back
                return _CANCELLED
            try:
                value = next(steps)
            except StopIteration as stop:
                if pending is not None:
                    self._w_progress.emit(pending)
                return stop.value
            if isinstance(value, Progress):
                now = time.monotonic()
                if now - last_progress >= PROGRESS_INTERVAL_S:
                    self._w_progress.emit(value)
                    last_progress, pending = now, None
                else:
                    pending = value
            else:
                self._w_yield.emit(value)

    # -- back on the GUI thread ------------------------------------------------------------------
    def _on_progress(self, progress: Progress) -> None:
        if self.state == RUNNING:
            self.progress = progress
            self.progressed.emit(progress)

    def _on_yield(self, value: object) -> None:
        if self.state == RUNNING:
            self.yielded.emit(value)

    def _on_done(self, result: object) -> None:
        if self.state != RUNNING:
            return
        self.state = DONE
        self.succeeded.emit(result)
        self.finished.emit()

    def _on_error(self, message: str, trace: str) -> None:
        if self.state != RUNNING:
            return
        self.state, self.error, self.traceback = FAILED, message, trace
        if trace:
            print(f"[distill-studio] job {self.title!r} failed:\n{trace}", file=sys.stderr)
        self.failed.emit(message)
        self.finished.emit()


_CANCELLED = object()


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    crashed: bool  # killed or died without exiting normally
    stopped: bool  # we asked it to stop
    stderr_tail: str


class ProcessJob(QObject):
    """A child process whose stdout arrives line by line; stop = flag file, then terminate, then kill."""

    line = Signal(str)
    exited = Signal(object)  # ProcessResult
    STDERR_TAIL = 8000

    def __init__(self, title: str, argv: Sequence[str], *, key: str | None, cwd: Path | str | None,
                 env: dict[str, str] | None, stop_timeout_s: float, parent: QObject | None = None):
        super().__init__(parent)
        if not argv:
            raise ValueError("a process job needs a command")
        self.title, self.key, self.argv = title, key, list(argv)
        self.stop_timeout_s = stop_timeout_s
        self.stop_file = Path(tempfile.gettempdir()) / f"distill-studio-stop-{os.getpid()}-{id(self)}"
        self.stop_file.unlink(missing_ok=True)
        self.stopping = False
        self.quiet = False
        self.cancellable = True
        self.progress: Progress | None = None
        self._buffer = b""
        self._stderr = b""
        self.process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        for name, value in (env or {}).items():
            environment.insert(name, value)
        environment.insert(STOP_FILE_ENV, str(self.stop_file))
        self.process.setProcessEnvironment(environment)
        if cwd is not None:
            self.process.setWorkingDirectory(str(cwd))
        self.process.readyReadStandardOutput.connect(self._on_stdout)
        self.process.readyReadStandardError.connect(self._on_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error_occurred)
        self._started = False

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        self.process.start(self.argv[0], self.argv[1:])
        self._started = True

    def stop(self) -> None:
        """Ask nicely (the flag file the child polls), then terminate, then kill — never waiting here."""
        if not self.running or self.stopping:
            return
        self.stopping = True
        try:
            self.stop_file.touch()
        except OSError:
            pass
        half = int(self.stop_timeout_s * 500)
        QTimer.singleShot(half, self._terminate_if_running)
        QTimer.singleShot(2 * half, self._kill_if_running)

    cancel = stop  # the status bar's Cancel button treats every job alike

    def _terminate_if_running(self) -> None:
        if self.running:
            self.process.terminate()

    def _kill_if_running(self) -> None:
        if self.running:
            self.process.kill()

    def _on_stdout(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            self.line.emit(raw.decode("utf-8", errors="replace").rstrip("\r"))

    def _on_stderr(self) -> None:
        self._stderr = (self._stderr + bytes(self.process.readAllStandardError()))[-self.STDERR_TAIL:]

    def _on_error_occurred(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._stderr += f"could not start {self.argv[0]!r}: {self.process.errorString()}".encode()
            self._finish(-1, crashed=True)

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        self._on_stdout()
        if self._buffer:
            self.line.emit(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
        self._finish(exit_code, crashed=status == QProcess.ExitStatus.CrashExit)

    def _finish(self, exit_code: int, *, crashed: bool) -> None:
        self.stop_file.unlink(missing_ok=True)
        self.exited.emit(ProcessResult(exit_code, crashed, self.stopping, self._stderr.decode("utf-8", errors="replace")))


class JobRunner(QObject):
    """Runs jobs and child processes for one window; the status bar and the message area listen to it."""

    job_started = Signal(object)  # Job | ProcessJob
    job_progressed = Signal(object)
    job_finished = Signal(object)
    job_failed = Signal(str, str)  # title, message — for jobs submitted without on_error
    job_succeeded = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs: list[Job | ProcessJob] = []
        self._closed = False
        _runners.add(self)

    def submit(
        self,
        title: str,
        fn: Callable,
        *args: Any,
        key: str | None = None,
        project: Any = None,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_yield: Callable[[Any], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        cancellable: bool = True,
        quiet: bool = False,
        report: bool = False,
        on_cancel: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> Job:
        """Run ``fn(*args)`` (or ``fn(handle, *args)`` with ``project=`` a context or a core project) on a worker thread.

        ``report=True`` passes ``report=job.report`` to ``fn``, for work that tells its progress
        through a callback rather than by yielding. ``on_cancel`` turns Cancel into a cooperative
        stop: it is called, and the job still ends with its result.
        """
        if self._closed:
            raise RuntimeError("the job runner has shut down")
        if key is not None:
            for other in self.jobs_with_key(key):
                if isinstance(other, Job):
                    other.cancel()  # latest wins
        # The thread gets the core project, never the context: a QObject whose last reference
        # died on a worker thread would be destroyed there, with its timer still on this one.
        core_project = getattr(project, "project", project) if project is not None else None
        job = Job(title, key, cancellable, quiet, self, on_cancel=on_cancel)
        if report:
            kwargs["report"] = job.report
        if on_done is not None:
            job.succeeded.connect(on_done)
        if on_yield is not None:
            job.yielded.connect(on_yield)
        if on_progress is not None:
            job.progressed.connect(on_progress)
        if on_error is not None:
            job.failed.connect(on_error)
        else:
            job.failed.connect(lambda message, t=title: self.job_failed.emit(t, message))
        job.succeeded.connect(lambda _result, j=job: self.job_succeeded.emit(j))
        job.progressed.connect(lambda _p, j=job: self.job_progressed.emit(j))
        job.finished.connect(lambda j=job: self._on_finished(j))
        self._jobs.append(job)
        thread = threading.Thread(target=job._work, args=(fn, args, kwargs, core_project), name=f"job-{job.id}-{title}",
                                  daemon=True)
        self.job_started.emit(job)
        thread.start()
        return job

    def start_process(
        self,
        title: str,
        argv: Sequence[str],
        *,
        key: str | None = None,
        cwd: Path | str | None = None,
        env: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        on_exit: Callable[[ProcessResult], None] | None = None,
        stop_timeout_s: float = 10.0,
    ) -> ProcessJob:
        """Start a child process; its stdout lines go to ``on_line`` as they arrive."""
        if self._closed:
            raise RuntimeError("the job runner has shut down")
        job = ProcessJob(title, argv, key=key, cwd=cwd, env=env, stop_timeout_s=stop_timeout_s, parent=self)
        if on_line is not None:
            job.line.connect(on_line)
        if on_exit is not None:
            job.exited.connect(on_exit)
        job.exited.connect(lambda _result, j=job: self._on_finished(j))
        self._jobs.append(job)
        self.job_started.emit(job)
        job.start()
        return job

    # -- state -----------------------------------------------------------------------------------
    def active_jobs(self) -> list[Job | ProcessJob]:
        return [job for job in self._jobs if job.running]

    def jobs_with_key(self, key: str) -> list[Job | ProcessJob]:
        return [job for job in self._jobs if job.key == key and job.running]

    def is_busy(self, key: str | None = None) -> bool:
        return bool(self.jobs_with_key(key) if key is not None else self.active_jobs())

    def cancel(self, key: str) -> None:
        for job in self.jobs_with_key(key):
            job.cancel()

    def shutdown(self) -> None:
        """Cancel every job and stop every process; returns at once (threads are daemons)."""
        self._closed = True
        for job in list(self._jobs):
            if isinstance(job, Job):
                job.cancel(force=True)
            else:
                job.stop()

    def _on_finished(self, job: Job | ProcessJob) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        self.job_finished.emit(job)


_runners: weakref.WeakSet[JobRunner] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    """Cancel what still runs and give it a moment: a worker thread that emits a signal while
    the interpreter tears Qt down crashes the process (a script that never closed its window)."""
    for runner in list(_runners):
        try:
            runner.shutdown()
        except RuntimeError:  # its Qt side is already gone
            pass
    deadline = time.monotonic() + EXIT_GRACE_S
    with _live_threads_lock:
        threads = list(_live_threads)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
