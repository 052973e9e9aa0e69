"""A generation run as a job of the window's runner, with the controls the Generate panel needs.

A run lives longer than most jobs (minutes to hours, with pause and resume), talks to the
teacher from its own asyncio loop and commits from its own writer thread; all of that happens
inside one :class:`~studio.ui.jobs.JobRunner` job, so the run shows in the status bar with the
others and the status bar's Cancel stops it the way the panel's Stop does (finished work stays
committed, then the run's summary arrives). Engine events travel as the job's partial results,
queued onto the GUI thread; the panel batches what arrives and redraws on a timer.

A new run is checked and stored inside the job too (:func:`prepare_run`: settings, seeds, the
teacher's model list): a start that fails that check leaves no run row behind.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from studio.core.errors import StudioError
from studio.core.generation import events as ev
from studio.core.generation.config import RunConfig
from studio.core.generation.engine import GenerationEngine, RunResult, prepare_run
from studio.core.generation.filters import IndexFactory, default_index_factory
from studio.core.jobs import Progress
from studio.core.project import Project
from studio.ui.jobs import Job, JobRunner, plain_message


class _StartFailed(StudioError):
    """The pre-check refused the run: said to the user, nothing stored."""


class GenerationWorker(QObject):
    """One run: a new one (``config``) or a stored one (``run_id``), on ``jobs``.

    Signals: ``created(run_id)`` once the new run is stored, ``event`` per engine event,
    ``start_failed(message)`` when the pre-check refused to start, ``finished(RunResult)``,
    ``crashed(message)`` for anything unexpected.
    """

    created = Signal(int)
    event = Signal(object)
    start_failed = Signal(str)
    finished = Signal(object)
    crashed = Signal(str)

    def __init__(self, project: Project, *, jobs: JobRunner, run_id: int | None = None,
                 config: RunConfig | None = None, api_key: str | None = None,
                 index_factory: IndexFactory = default_index_factory, parent: QObject | None = None):
        super().__init__(parent)
        if (run_id is None) == (config is None):
            raise ValueError("give either run_id (resume) or config (new run)")
        self.run_id = run_id
        self._jobs = jobs
        self._project = project
        self._config = config
        self._api_key = api_key
        self._index_factory = index_factory
        self._lock = threading.Lock()
        self._engine: GenerationEngine | None = None
        self._stop = False
        self._detach = False
        self._cancel_work = False
        self._paused = False
        self.job: Job | None = None

    def start(self) -> None:
        title = "Generating samples" if self.run_id is None else f"Generating samples (run #{self.run_id})"
        self.job = self._jobs.submit(title, self._run, report=True, on_cancel=self.stop,
                                     on_yield=self._on_partial, on_done=self.finished.emit,
                                     on_error=self._on_error)

    def is_running(self) -> bool:
        return self.job is not None and self.job.running

    # -- control (GUI thread); safe before the engine exists ---------------------------------------
    def stop(self, *, detach: bool = False, cancel_work: bool = False) -> None:
        """Ask the run to stop; returns at once (finished work is committed, then ``finished`` comes).

        ``detach``: the app is closing, a batch at the provider stays there (the run is picked up
        later); ``cancel_work``: ask the provider to cancel it. Both stick: a later plain stop (the
        runner's shutdown cancelling the job) does not undo them.
        """
        with self._lock:
            self._stop = True
            self._detach = self._detach or detach
            self._cancel_work = self._cancel_work or cancel_work
            engine = self._engine
        if engine is not None:
            self._stop_engine(engine)

    def _stop_engine(self, engine: GenerationEngine) -> None:
        engine.stop(detach=self._detach, cancel_work=self._cancel_work)

    def pause(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            engine = self._engine
        if engine is not None:
            (engine.pause if paused else engine.resume)()

    # -- back on the GUI thread ---------------------------------------------------------------------
    def _on_partial(self, value: object) -> None:
        kind, payload = value
        if kind == "created":
            self.run_id = payload
            self.created.emit(payload)
        else:
            self.event.emit(payload)

    def _on_error(self, message: str) -> None:
        (self.start_failed if self._start_failed else self.crashed).emit(message)

    _start_failed = False

    # -- the job's thread ---------------------------------------------------------------------------
    def _run(self, report: Callable[[object], None]) -> RunResult:
        if self.run_id is None:
            try:
                with self._project.worker() as handle:
                    run_id = prepare_run(handle, self._config, api_key=self._api_key)
            except Exception as exc:  # noqa: BLE001 - bad settings, key or address: said, nothing stored
                self._start_failed = True
                raise _StartFailed(plain_message(exc)) from exc
            self.run_id = run_id
            report(("created", run_id))

        def on_event(event: object) -> None:
            report(("event", event))
            if isinstance(event, ev.Progress):  # the status bar's view of the run
                c = event.counters
                report(Progress(c.kept, c.target, f"{c.kept:,} of {c.target:,} kept · ${c.cost:.2f}"))

        engine = GenerationEngine(self._project, self.run_id, on_event=on_event, api_key=self._api_key,
                                  index_factory=self._index_factory)
        with self._lock:
            self._engine = engine
            if self._stop:
                self._stop_engine(engine)
            if self._paused:
                engine.pause()
        return engine.run_blocking()
