"""The longest GUI-thread stall while an action runs: the one meter every stall benchmark uses.

A 5 ms timer on the GUI thread records the longest gap between its ticks, in an idle event
loop as in the app (a busy ``processEvents`` loop would take the GIL from the worker), from
the moment the action is "clicked" until ``done()`` holds and the refresh after it has run.
Imports only PySide6, so a benchmark can measure another checkout's ``studio`` with it.
"""
from __future__ import annotations

import time
from collections.abc import Callable

TICK_MS = 5


class GapMeter:
    """The longest gap between the ticks of a ``TICK_MS`` timer on the GUI thread, from ``start()``."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.clock = QElapsedTimer()
        self.clock.start()
        self.last, self.gap_ms = 0, 0
        self.ticker = QTimer(interval=TICK_MS)
        self.ticker.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.gap_ms = max(self.gap_ms, now - self.last)
        self.last = now

    def start(self) -> None:
        self.last = self.clock.elapsed()
        self.ticker.start()

    def stop(self) -> float:
        self.ticker.stop()
        return float(self.gap_ms)


def measure(action: Callable[[], object], done: Callable[[], bool], *, settle_ms: int = 150,
            limit_s: float = 300.0) -> tuple[float, float]:
    """Run ``action`` from the event loop; return (seconds until ``done()``, longest gap in ms)."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    QApplication.instance() or QApplication([])
    meter = GapMeter()
    finished: list[float] = []
    loop = QEventLoop()

    def check() -> None:
        if not finished and (done() or time.perf_counter() - started > limit_s):
            finished.append(time.perf_counter() - started)
            QTimer.singleShot(settle_ms, loop.quit)  # the coalesced refresh that follows

    checker = QTimer(interval=10)
    checker.timeout.connect(check)
    meter.start()
    started = time.perf_counter()
    QTimer.singleShot(0, action)  # clicked from the event loop, as a user would
    checker.start()
    loop.exec()
    gap = meter.stop()
    checker.stop()
    return finished[0], gap
