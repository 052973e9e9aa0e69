"""Provider jobs of a generation run (a Batch API batch) and the requests each holds (schema V9).

A backend that keeps work at a provider writes here so that no request is ever paid for
twice: the job row and its request keys are committed BEFORE anything is uploaded (its
``local_key`` travels as the uploaded file's name and the job's metadata, so a job whose ids
were never committed is found again at the provider), then the file id and the job id the
moment each is known. A resumed run asks :meth:`BackendJobs.job_holding` before it sends a
request and waits for that job instead. Every call commits at once: a ``kill -9`` between
two calls loses nothing that the next call relies on.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.core.db import transaction

PREPARING, UPLOADED, COLLECTED, FAILED = "preparing", "uploaded", "collected", "failed"
# A job in one of these states holds nothing more at the provider (collected: its answers were read).
CLOSED_STATES = (COLLECTED, FAILED)
SENT, ANSWERED, LINE_FAILED = "sent", "answered", "failed"  # a request's state in one job


@dataclass(frozen=True)
class Job:
    id: int
    run_id: int
    backend: str
    local_key: str
    file_id: str | None
    job_id: str | None
    status: str
    output_file_id: str | None
    error_file_id: str | None
    counts: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    created_at: float = 0.0
    finished_at: float | None = None

    @property
    def open(self) -> bool:
        return self.status not in CLOSED_STATES


class BackendJobs:
    """The ``backend_jobs`` / ``backend_job_requests`` tables over one connection (the engine loop's)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    # -- writing (each call is one transaction) -----------------------------------------------------
    def create_job(self, run_id: int, backend: str, local_key: str, request_keys: Iterable[str],
                   detail: Mapping[str, Any] | None = None) -> Job:
        """The job and the requests it will hold, committed before anything leaves for the provider."""
        now = time.time()
        keys = list(request_keys)
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO backend_jobs (run_id, backend, local_key, counts, detail, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (run_id, backend, local_key, json.dumps({"total": len(keys), "completed": 0, "failed": 0}),
                 json.dumps(dict(detail or {})), now, now))
            job = cursor.lastrowid
            self.conn.executemany("INSERT INTO backend_job_requests (job, request_key) VALUES (?,?)",
                                  [(job, key) for key in keys])
        found = self.job(job)
        assert found is not None
        return found

    def set_file_id(self, job: int, file_id: str) -> None:
        self._update(job, file_id=file_id, status=UPLOADED)

    def set_job_id(self, job: int, job_id: str, status: str = "validating") -> None:
        self._update(job, job_id=job_id, status=status)

    def set_status(self, job: int, status: str, *, counts: Mapping[str, int] | None = None,
                   output_file_id: str | None = None, error_file_id: str | None = None,
                   detail: Mapping[str, Any] | None = None) -> None:
        """The provider's status and counts; output/error file ids once known (None leaves them as they are)."""
        values: dict[str, Any] = {"status": status}
        if counts is not None:
            values["counts"] = json.dumps(dict(counts))
        if output_file_id is not None:
            values["output_file_id"] = output_file_id
        if error_file_id is not None:
            values["error_file_id"] = error_file_id
        if detail is not None:
            values["detail"] = json.dumps(dict(detail))
        if status in CLOSED_STATES:
            values["finished_at"] = time.time()
        self._update(job, **values)

    def set_request_states(self, job: int, states: Mapping[str, tuple[str, str | None]]) -> None:
        """Per request key: (answered | failed, error or None) in this job."""
        with transaction(self.conn):
            self.conn.executemany(
                "UPDATE backend_job_requests SET status = ?, error = ? WHERE job = ? AND request_key = ?",
                [(status, error, job, key) for key, (status, error) in states.items()])

    def _update(self, job: int, **values: Any) -> None:
        values["updated_at"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in values)
        with transaction(self.conn):
            self.conn.execute(f"UPDATE backend_jobs SET {columns} WHERE id = ?", (*values.values(), job))

    # -- reading ----------------------------------------------------------------------------------------
    def job(self, job: int) -> Job | None:
        row = self.conn.execute("SELECT * FROM backend_jobs WHERE id = ?", (job,)).fetchone()
        return _job(row) if row is not None else None

    def jobs(self, run_id: int, *, open_only: bool = False) -> list[Job]:
        """The run's jobs, oldest first."""
        sql = "SELECT * FROM backend_jobs WHERE run_id = ?"
        params: tuple = (run_id,)
        if open_only:
            sql += f" AND status NOT IN ({','.join('?' * len(CLOSED_STATES))})"
            params += CLOSED_STATES
        return [_job(r) for r in self.conn.execute(sql + " ORDER BY id", params)]

    def job_holding(self, request_key: str) -> tuple[Job, str] | None:
        """The newest job holding ``request_key`` and the request's state in it (sent, answered, failed)."""
        row = self.conn.execute(
            "SELECT j.*, q.status AS request_status FROM backend_job_requests q JOIN backend_jobs j ON j.id = q.job"
            " WHERE q.request_key = ? ORDER BY j.id DESC LIMIT 1", (request_key,)).fetchone()
        return (_job(row), row["request_status"]) if row is not None else None

    def request_keys(self, job: int) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT request_key FROM backend_job_requests WHERE job = ? ORDER BY request_key", (job,))]

    def request_states(self, job: int) -> dict[str, tuple[str, str | None]]:
        return {r[0]: (r[1], r[2]) for r in self.conn.execute(
            "SELECT request_key, status, error FROM backend_job_requests WHERE job = ?", (job,))}

    def has_open_jobs(self, run_id: int) -> bool:
        return bool(self.jobs(run_id, open_only=True))  # a run has a handful of jobs


def _job(row: sqlite3.Row) -> Job:
    return Job(row["id"], row["run_id"], row["backend"], row["local_key"], row["file_id"], row["job_id"],
               row["status"], row["output_file_id"], row["error_file_id"], json.loads(row["counts"]),
               json.loads(row["detail"]), row["created_at"], row["finished_at"])
