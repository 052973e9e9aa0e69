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


def measure(action: Callable[[], object], done: Callable[[], bool], *, settle_ms: int = 150,
            limit_s: float = 300.0) -> tuple[float, float]:
    """Run ``action`` from the event loop; return (seconds until ``done()``, longest gap in ms)."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    QApplication.instance() or QApplication([])
    clock = QElapsedTimer()
    clock.start()
    last, gap = [0], [0]
    finished: list[float] = []
    loop = QEventLoop()

    def tick() -> None:
        now = clock.elapsed()
        gap[0] = max(gap[0], now - last[0])
        last[0] = now

    def check() -> None:
        if not finished and (done() or time.perf_counter() - started > limit_s):
            finished.append(time.perf_counter() - started)
            QTimer.singleShot(settle_ms, loop.quit)  # the coalesced refresh that follows

    ticker, checker = QTimer(interval=TICK_MS), QTimer(interval=10)
    ticker.timeout.connect(tick)
    checker.timeout.connect(check)
    ticker.start()
    started = time.perf_counter()
    last[0] = clock.elapsed()
    QTimer.singleShot(0, action)  # clicked from the event loop, as a user would
    checker.start()
    loop.exec()
    ticker.stop()
    checker.stop()
    return finished[0], float(gap[0])
