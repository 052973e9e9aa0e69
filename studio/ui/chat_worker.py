"""The columns' answers as one job: every column's ``stream_answer`` on one asyncio loop, one worker thread.

One thread for all columns, not one per column: the ``openai`` client parses every chunk in
Python, and with three threads doing that at once the GUI thread waits for the GIL behind all
of them (measured in benchmarks/chat_render.py); one loop does the same work with one
competitor. Deltas are never sent to the GUI thread one by one either (a fast model gives
hundreds a second): they go into each column's locked buffer and the panel's tick (≤ 30 a
second) takes what has arrived with :meth:`ColumnStream.take`. Stop is a flag ``stream_answer``
checks between deltas and while it waits for one. Errors of any kind become that column's
answer error: one column failing never touches the others.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.ui.jobs import Job, JobRunner, plain_message


def _answer_type() -> type:
    from studio.core.chat.conversations import Answer

    return Answer


class ColumnStream(QObject):
    """One column's answer; ``finished(Answer)`` on the GUI thread when it ends (done, stopped or failed)."""

    finished = Signal(object)

    def __init__(self, column: int, turn: int, source: Any, server: Any, messages: list[dict], spec: Any, *,
                 client_factory: Callable[[Any, Any], tuple[Any, str]] | None = None,
                 streamer: Callable[..., Any] | None = None, parent: QObject | None = None,
                 studio_messages: list[dict] | None = None):
        super().__init__(parent)
        self.column, self.turn = column, turn
        self.source, self.server, self.messages, self.spec = source, server, messages, spec
        # The same turn in the studio server's form (the Alpaca input as its own field), used if the
        # worker finds that this endpoint is a studio server (asking it may take a second: not on the GUI thread).
        self.studio_messages = studio_messages
        self._client_factory = client_factory
        self._streamer = streamer
        self._lock = threading.Lock()
        self._parts: list[str] = []  # since the last take
        self._count = 0
        self._all: list[str] = []  # everything so far (a stopped or failed stream keeps it)
        self.first_delta_at: float | None = None
        self.started_at = time.monotonic()
        self._stop = threading.Event()
        self.done = False
        self.answer: Any = None

    # -- GUI thread --------------------------------------------------------------------------------
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

    def finish(self, answer: Any) -> None:
        if self.done:
            return
        self.done = True
        self.answer = answer
        self.finished.emit(answer)

    def received(self) -> tuple[str, int]:
        with self._lock:
            return "".join(self._all), len(self._all)

    # -- the worker's loop -------------------------------------------------------------------------
    def _on_delta(self, text: str) -> None:
        if self._stop.is_set():
            return  # stopped: nothing more reaches the column
        with self._lock:
            if self.first_delta_at is None:
                self.first_delta_at = time.monotonic()
            self._parts.append(text)
            self._all.append(text)
            self._count += 1

    async def run(self) -> Any:
        """Make the client, stream, close the client; never raises (the error is the answer's)."""
        Answer = _answer_type()
        if self._client_factory is not None:
            client_factory = self._client_factory
        else:
            from studio.core.chat.sources import client_for as client_factory
        if self._streamer is not None:
            streamer = self._streamer
        else:
            from studio.core.chat.session import stream_answer as streamer
        self.started_at = time.monotonic()

        def make_client() -> tuple[Any, str]:
            import openai  # noqa: F401 - imported here, off the shared loop, the first time

            if self.studio_messages is not None:
                from studio.core.chat.sources import is_studio_server

                if is_studio_server(self.source, self.server, probe=True):
                    self.messages = self.studio_messages
            return client_factory(self.source, self.server)

        try:
            # Off the loop: finding a key may wait on the OS keyring (seconds on a desktop without
            # one), and the loop is every column's.
            client, model = await asyncio.to_thread(make_client)
        except Exception as exc:  # noqa: BLE001 - said in the column
            return Answer(error=plain_message(exc), finish_reason="error")
        try:
            # stream_answer polls ``cancelled`` while it waits and after every delta, closes the
            # HTTP stream when it is set (the server sees the client leave) and never raises for
            # the endpoint's failures.
            return await streamer(client, model, self.messages, self.spec, self._on_delta, self._stop.is_set)
        except Exception as exc:  # noqa: BLE001 - a bug below must still end as this column's error
            text, tokens = self.received()
            return Answer(text=text, error=plain_message(exc), finish_reason="error", tokens=tokens)
        finally:
            close = getattr(client, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # noqa: BLE001, S110 - closing a pool that already failed
                    pass


def start_streams(jobs: JobRunner, streams: Sequence[ColumnStream], title: str = "Chat") -> Job:
    """Run ``streams`` together on one job; each one's ``finished`` comes as soon as it ends."""
    streams = list(streams)

    def run_all(report: Callable[[object], None]) -> None:
        async def one(index: int, stream: ColumnStream) -> None:
            report((index, await stream.run()))

        async def all_of_them() -> None:
            await asyncio.gather(*(one(n, s) for n, s in enumerate(streams)))

        asyncio.run(all_of_them())

    def on_yield(value: object) -> None:
        index, answer = value  # type: ignore[misc]
        streams[index].finish(answer)

    def on_error(message: str) -> None:  # the loop itself failed: every open column says so
        Answer = _answer_type()
        for stream in streams:
            text, tokens = stream.received()
            stream.finish(Answer(text=text, error=message, finish_reason="error", tokens=tokens))

    return jobs.submit(title, run_all, report=True, quiet=True, cancellable=False, on_yield=on_yield,
                       on_error=on_error)
