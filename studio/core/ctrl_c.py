"""Ctrl+C for a CLI command that runs an engine: the first asks it to stop, a second quits at once.

Generation and evaluation runs commit each result as it arrives, so a first Ctrl+C lets the
requests in flight finish and the command print its summary; only a second one interrupts.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

STOPPING = "stopping: finishing the requests in flight (Ctrl+C again to quit at once)"
# A batch backend's run stops at once: what the provider holds stays there (``--resume`` collects it).
STOPPING_BATCH = "stopping: leaving the batch at the provider (Ctrl+C again to quit at once)"


class CtrlCStops:
    """``with CtrlCStops(engine.stop, line.note):`` — SIGINT handled on the main thread only, restored after."""

    def __init__(self, stop: Callable[[], None], note: Callable[[str], None], text: str = STOPPING):
        self._stop, self._note, self._text = stop, note, text
        self._previous: Any = None
        self.pressed = False

    def _handler(self, signum: int, frame: object) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        self._note(self._text)
        self._stop()

    def __enter__(self) -> CtrlCStops:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
