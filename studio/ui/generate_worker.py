"""The generation engine's own thread, as a Qt object the Generate panel can listen to.

A run lives longer than a job (minutes to hours, with pause and resume), talks to the teacher
from its own asyncio loop and commits from its own writer thread, so it keeps a plain
``threading.Thread`` instead of a :class:`~studio.ui.jobs.JobRunner` job. Each engine event
is emitted through a Qt signal, which Qt queues onto the GUI thread because the receiver
lives there; the panel batches what arrives and redraws on a timer, however fast events come.

A new run is checked and stored on this thread too (:func:`prepare_run`: settings, seeds, the
teacher's model list): a start that fails that check leaves no run row behind.
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from studio.core.generation.config import RunConfig
from studio.core.generation.engine import GenerationEngine, RunResult, prepare_run
from studio.core.generation.filters import IndexFactory, default_index_factory
from studio.core.project import Project
from studio.ui.jobs import plain_message


class GenerationWorker(QObject):
    """One run on a background thread: a new one (``config``) or a stored one (``run_id``).

    Signals: ``created(run_id)`` once the new run is stored, ``event`` per engine event,
    ``start_failed(message)`` when the pre-check refused to start, ``finished(RunResult)``,
    ``crashed(message)`` for anything unexpected.
    """

    created = Signal(int)
    event = Signal(object)
    start_failed = Signal(str)
    finished = Signal(object)
    crashed = Signal(str)

    def __init__(self, project: Project, *, run_id: int | None = None, config: RunConfig | None = None,
                 api_key: str | None = None, index_factory: IndexFactory = default_index_factory,
                 parent: QObject | None = None):
        super().__init__(parent)
        if (run_id is None) == (config is None):
            raise ValueError("give either run_id (resume) or config (new run)")
        self.run_id = run_id
        self._project = project
        self._config = config
        self._api_key = api_key
        self._index_factory = index_factory
        self._lock = threading.Lock()
        self._engine: GenerationEngine | None = None
        self._stop = False
        self._paused = False
        self._thread = threading.Thread(target=self._run, name="generation-run", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.is_alive()

    # -- control (GUI thread); safe before the engine exists ---------------------------------------
    def stop(self) -> None:
        """Ask the run to stop; returns at once (finished work is committed, then ``finished`` comes)."""
        with self._lock:
            self._stop = True
            engine = self._engine
        if engine is not None:
            engine.stop()

    def pause(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            engine = self._engine
        if engine is not None:
            (engine.pause if paused else engine.resume)()

    # -- the thread -------------------------------------------------------------------------------
    def _emit(self, signal: Signal, value: object) -> None:
        try:
            signal.emit(value)
        except RuntimeError:  # the panel was destroyed mid-run: nobody to tell, keep committing
            pass

    def _run(self) -> None:
        try:
            if self.run_id is None:
                try:
                    with self._project.worker() as handle:
                        self.run_id = prepare_run(handle, self._config, api_key=self._api_key)
                except Exception as exc:  # noqa: BLE001 - bad settings, key or address: said, nothing stored
                    self._emit(self.start_failed, plain_message(exc))
                    return
                self._emit(self.created, self.run_id)
            engine = GenerationEngine(self._project, self.run_id, on_event=lambda e: self._emit(self.event, e),
                                      api_key=self._api_key, index_factory=self._index_factory)
            with self._lock:
                self._engine = engine
                if self._stop:
                    engine.stop()
                if self._paused:
                    engine.pause()
            result: RunResult = engine.run_blocking()
        except Exception as exc:  # noqa: BLE001 - shown in the message area instead of dying silently
            self._emit(self.crashed, plain_message(exc))
        else:
            self._emit(self.finished, result)
