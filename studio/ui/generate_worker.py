"""Qt adapters that keep the teacher off the GUI thread.

The engine runs its asyncio loop on a plain ``threading.Thread``; each engine event is emitted
through a Qt signal, which Qt queues onto the GUI thread because the receiver lives there.
The panel batches what arrives and redraws on a timer, however fast events come.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from studio.core.generation.engine import GenerationEngine, RunResult
from studio.core.generation.filters import IndexFactory, default_index_factory
from studio.core.generation.teacher import ConnectionReport, TeacherConfig, test_connection


class GenerationWorker(QObject):
    """One engine run on a background thread. ``event`` carries engine events; ``finished`` a RunResult."""

    event = Signal(object)
    finished = Signal(object)
    crashed = Signal(str)

    def __init__(self, connect: Callable, run_id: int, api_key: str | None,
                 index_factory: IndexFactory = default_index_factory, parent: QObject | None = None):
        super().__init__(parent)
        self.engine = GenerationEngine(connect, run_id, on_event=self._emit_event, api_key=api_key,
                                       index_factory=index_factory)
        self._thread = threading.Thread(target=self._run, name=f"generation-run-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _emit_event(self, event: object) -> None:
        try:
            self.event.emit(event)
        except RuntimeError:  # the panel was destroyed mid-run: nobody to tell, keep committing
            pass

    def _run(self) -> None:
        try:
            result: RunResult = self.engine.run_blocking()
        except Exception as exc:  # noqa: BLE001 - shown in the banner instead of dying silently
            outcome, signal = f"{type(exc).__name__}: {exc}", self.crashed
        else:
            outcome, signal = result, self.finished
        try:
            signal.emit(outcome)
        except RuntimeError:  # the panel is gone
            pass

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def stop_and_wait(self, timeout_s: float = 10.0) -> None:
        self.engine.stop()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


class ConnectionTester(QObject):
    """Runs :func:`test_connection` on a background thread; ``done`` carries the ConnectionReport."""

    done = Signal(object)

    def run(self, config: TeacherConfig) -> None:
        def work() -> None:
            report: ConnectionReport = test_connection(config)
            self.done.emit(report)

        threading.Thread(target=work, name="teacher-connection-test", daemon=True).start()
