"""One column's answer as a job: ``stream_answer`` in its own asyncio loop on a worker thread.

Deltas are never sent to the GUI thread one by one (a fast model gives hundreds a second): the
worker appends them to a locked buffer and the panel's tick (≤ 30 a second) takes what has
arrived with :meth:`ColumnStream.take`. Stop is a flag that ``stream_answer`` checks between
deltas and while it waits for one, so Stop never waits for the next token. Errors of any kind become
the answer's error text: one column failing never touches the others.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.ui.jobs import Job, JobRunner, plain_message

STOP_GRACE_S = 0.3  # stream_answer's own stop check gets this long before its task is cancelled
WATCH_INTERVAL_S = 0.05


def _answer_type():
    from studio.core.chat.conversations import Answer

    return Answer


class ColumnStream(QObject):
    """Streams one answer; ``finished(Answer)`` on the GUI thread when it ends (done, stopped or failed)."""

    finished = Signal(object)

    def __init__(self, column: int, turn: int, source: Any, server: Any, messages: list[dict], spec: Any, *,
                 client_factory: Callable[[Any, Any], tuple[Any, str]] | None = None,
                 streamer: Callable[..., Any] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.column, self.turn = column, turn
        self.source, self.server, self.messages, self.spec = source, server, messages, spec
        self._client_factory = client_factory
        self._streamer = streamer
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._count = 0  # deltas since the last take
        self._total = 0
        self._received = ""  # the whole text so far (a stopped or failed stream keeps it)
        self.first_delta_at: float | None = None
        self.started_at = time.monotonic()
        self._stop = threading.Event()
        self.job: Job | None = None
        self.done = False
        self.answer: Any = None

    # -- GUI thread --------------------------------------------------------------------------------
    def start(self, jobs: JobRunner) -> None:
        self.started_at = time.monotonic()
        label = getattr(self.source, "label", "") or "a model"
        self.job = jobs.submit(f"Chat: {label}", self._run, quiet=True, cancellable=False,
                               on_done=self._on_done, on_error=self._on_error)

    def stop(self) -> None:
        """Ask the stream to end; ``finished`` follows with what was received."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def take(self) -> tuple[str, int]:
        """The text and number of deltas received since the last call."""
        with self._lock:
            text, count = "".join(self._parts), self._count
            self._parts.clear()
            self._count = 0
        return text, count

    def _on_done(self, answer: Any) -> None:
        self._finish(answer)

    def _on_error(self, message: str) -> None:
        text, _count = self._peek_all()
        self._finish(_answer_type()(text=text, error=message, finish_reason="error"))

    def _finish(self, answer: Any) -> None:
        if self.done:
            return
        self.done = True
        self.answer = answer
        self.finished.emit(answer)

    def _peek_all(self) -> tuple[str, int]:
        with self._lock:
            return self._received, self._total

    # -- worker thread -----------------------------------------------------------------------------
    def _on_delta(self, text: str) -> None:
        if self._stop.is_set():
            return  # stopped: nothing more reaches the column
        with self._lock:
            if self.first_delta_at is None:
                self.first_delta_at = time.monotonic()
            self._parts.append(text)
            self._received += text
            self._count += 1
            self._total += 1

    def _run(self) -> Any:
        if self._client_factory is None:
            from studio.core.chat.sources import client_for

            client_factory = client_for
        else:
            client_factory = self._client_factory
        if self._streamer is None:
            from studio.core.chat.session import stream_answer

            streamer = stream_answer
        else:
            streamer = self._streamer
        Answer = _answer_type()
        try:
            client, model = client_factory(self.source, self.server)
        except Exception as exc:  # noqa: BLE001 - said in the column
            return Answer(error=plain_message(exc), finish_reason="error")
        return asyncio.run(self._stream(streamer, client, model, Answer))

    async def _stream(self, streamer: Callable[..., Any], client: Any, model: str, Answer: type) -> Any:
        # stream_answer polls ``cancelled`` while it waits and after every delta, and closes the
        # HTTP stream when it is set (the server sees the client leave); it never raises for the
        # endpoint's failures. The client's pool belongs to this loop: closed here.
        try:
            return await streamer(client, model, self.messages, self.spec, self._on_delta, self._stop.is_set)
        except Exception as exc:  # noqa: BLE001 - a bug below must still end as this column's error
            text, tokens = self._peek_all()
            return Answer(text=text, error=plain_message(exc), finish_reason="error", tokens=tokens)
        finally:
            close = getattr(client, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # noqa: BLE001 - closing a pool that already failed
                    pass
