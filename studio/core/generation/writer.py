"""Answer commits of a running generation engine, on their own thread and connection.

Committing one answer (20 samples with their full-text index entries, its rejects, the
request's ``done`` mark) costs ~2 ms, most of it inside SQLite, which releases the GIL.
Done on the event loop it delays every send and read queued behind it; done here it runs
on the other core while the loop keeps talking to the teacher. Jobs run one at a time, in
the order they were submitted, so answers are committed in the order they were judged.

New request rows stay on the loop's own connection: a request must be committed before it
is sent, and a round trip through this queue (behind answer commits) would hold the send
up for several ms, while SQLite's write lock is rarely held here for more than a few.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from studio.core.generation.repository import GenerationRepository

if TYPE_CHECKING:
    from studio.core.project import Project

T = TypeVar("T")


class StoreWriter:
    """Runs ``job(store)`` callables in order on one thread that owns a :class:`GenerationRepository`.

    The store sits on a :meth:`Project.worker` handle, so its commits reach the change feed.
    """

    def __init__(self, project: Project):
        self._jobs: queue.SimpleQueue[tuple[Callable[[GenerationRepository], Any], Future] | None] = queue.SimpleQueue()
        self._closed = False
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, args=(project, ready), name="generation-writer",
                                        daemon=True)
        self._thread.start()
        ready.result()  # a connection that cannot be opened fails here, in the caller

    def submit(self, job: Callable[[GenerationRepository], T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("the store writer is closed")
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return future

    def close(self) -> None:
        """Finish every job already submitted, then close the connection and end the thread."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        self._thread.join()

    def _serve(self, project: Project, ready: Future[None]) -> None:
        try:
            handle = project.worker()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller waiting on ready
            ready.set_exception(exc)
            return
        store = handle.generation
        ready.set_result(None)
        try:
            while (item := self._jobs.get()) is not None:
                job, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = job(store)  # the job's own transaction has committed when it returns
                except BaseException as exc:  # noqa: BLE001 - the submitter re-raises it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            handle.close()
