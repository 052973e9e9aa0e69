"""Near-duplicate clusters of instructions, off the GUI's interpreter for big selections.

A cluster is a connected component of "ROUGE-L F above the threshold", built one
instruction at a time against an index of the earlier ones (``studio.core.dedup``).
That index is pure Python and numpy: in a thread it keeps the GIL for tens of ms at a time
(measured at 52K: GUI-thread gaps up to ~90 ms, p99 ~40 ms), so from ``CHILD_THRESHOLD``
instructions on the work runs in a child process that reads the rows itself (gaps ≤ 7 ms).
Both paths are the same step generator for the job runner; cancelling ends the child.
"""
from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Sequence

from studio.core.curation import SampleQuery, fetch_steps, where_sql
from studio.core.errors import StudioError
from studio.core.jobs import Progress, Steps, run_to_end

CHILD_THRESHOLD = 2000  # instructions; below this a child process costs more than it saves
POLL_SECONDS = 0.05
STEP_SECONDS = 0.02  # the in-thread path yields at least this often


def _select(where: str) -> str:
    return f"SELECT id, instruction FROM samples WHERE {where} ORDER BY id"


def _components(rows: Sequence[tuple[int, str]], threshold: float) -> Steps[list[list[int]]]:
    """Yields how many rows are done now and then; returns the clusters (sample ids, 2+ each)."""
    from studio.core.dedup import cluster_steps  # another module's job; imported when needed

    groups = yield from cluster_steps([instruction for _sample_id, instruction in rows], threshold,
                                      every_s=STEP_SECONDS)
    return [[rows[i][0] for i in group] for group in groups if len(group) > 1]


def _child(db_path: str, where: str, params: list, threshold: float, progress, send) -> None:
    """The child process: read the rows, cluster, send ("ok", clusters) or ("error", text)."""
    from studio.core import db

    try:
        conn = db.connect(db_path)
        try:
            rows = conn.execute(_select(where), params).fetchall()
        finally:
            conn.close()
        steps = _components(rows, threshold)
        while True:
            try:
                progress.value = next(steps)
            except StopIteration as stop:
                send.send(("ok", stop.value))
                return
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it as a StudioError
        send.send(("error", f"{type(exc).__name__}: {exc}"))


def _in_child(conn: sqlite3.Connection, where: str, params: list, threshold: float, total: int) -> Steps[list[list[int]]]:
    db_path = conn.execute("PRAGMA database_list").fetchone()[2]
    context = multiprocessing.get_context("spawn")  # never fork a process that runs Qt and threads
    receive, send = context.Pipe(duplex=False)
    progress = context.Value("i", 0, lock=False)
    process = context.Process(target=_child, args=(db_path, where, params, threshold, progress, send),
                              name="distill-studio-clustering", daemon=True)
    process.start()
    send.close()
    try:
        yield Progress(0, total, "Starting the comparison")
        while not receive.poll(POLL_SECONDS):
            if not process.is_alive() and not receive.poll():
                raise StudioError(f"The clustering process stopped unexpectedly (exit code {process.exitcode}).")
            yield Progress(progress.value, total, "Comparing instructions")
        status, value = receive.recv()
    finally:  # also on cancel (GeneratorExit at the yield): the child goes with the job
        if process.is_alive():
            process.terminate()
        process.join(5)
        receive.close()
    if status != "ok":
        raise StudioError(f"Finding near-duplicates failed: {value}")
    return value


def find_clusters_steps(conn: sqlite3.Connection, query: SampleQuery | None = None, threshold: float = 0.7,
                        *, child_threshold: int = CHILD_THRESHOLD) -> Steps[list[list[int]]]:
    """Near-duplicate clusters (sample ids, two or more each) among the matching instructions."""
    where, params = where_sql(conn, query or SampleQuery())
    total = conn.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchone()[0]
    if total >= child_threshold:
        return (yield from _in_child(conn, where, params, threshold, total))
    rows = yield from fetch_steps(conn.execute(_select(where), params), "Reading instructions")
    steps = _components(rows, threshold)
    while True:
        try:
            done = next(steps)
        except StopIteration as stop:
            return stop.value
        yield Progress(done, total, "Comparing instructions")


def find_clusters(conn: sqlite3.Connection, query: SampleQuery | None = None, threshold: float = 0.7) -> list[list[int]]:
    return run_to_end(find_clusters_steps(conn, query, threshold))
