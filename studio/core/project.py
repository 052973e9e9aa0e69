"""A project: one folder holding the database, frozen snapshots, training runs and exports.

Only one Distill Studio process may hold a project at a time. The lock is an OS file lock
(``filelock``), so it is released by the operating system when the holder dies, even under
``kill -9``: a crashed app never leaves a project locked.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
from pathlib import Path

from filelock import FileLock, Timeout

from studio.core import db, schema
from studio.core.changes import ChangeFeed
from studio.core.chat.conversations import ConversationRepository
from studio.core.curation import CurationRepository
from studio.core.errors import ProjectError, ProjectLockedError
from studio.core.evaluation.prompt_sets import PromptSetRepository
from studio.core.evaluation.store import EvaluationRepository
from studio.core.evaluation.votes import VoteRepository
from studio.core.generation.repository import GenerationRepository
from studio.core.samples import SampleRepository
from studio.core.seeds import SeedRepository
from studio.core.snapshots import SnapshotRepository
from studio.core.training.runs import TrainingRunRepository
from studio.core.trash import TrashRepository

DB_NAME = "project.sqlite"
LOCK_NAME = ".studio.lock"
OWNER_NAME = ".studio.owner"
SUBFOLDERS = ("snapshots", "runs", "exports")


class Project:
    """An open project. Use :meth:`create` or :meth:`open`; close it (or use ``with``)."""

    def __init__(self, root: Path, conn: sqlite3.Connection, lock: FileLock | None, changes: ChangeFeed | None = None):
        self.root = root
        self.conn = conn
        self._lock = lock
        # Every repository publishes what it changed here; worker handles share the same feed.
        self.changes = changes if changes is not None else ChangeFeed()
        self.seeds = SeedRepository(conn, self.changes)
        self.samples = SampleRepository(conn, self.changes)
        self.curation = CurationRepository(conn, self.changes)
        self.snapshots = SnapshotRepository(conn, root, self.changes)
        self.trash = TrashRepository(conn, self.changes)
        self.generation = GenerationRepository(conn, self.changes)
        self.training = TrainingRunRepository(conn, root, self.changes)
        self.conversations = ConversationRepository(conn, self.changes)
        self.prompt_sets = PromptSetRepository(conn, root, self.changes)
        self.evaluations = EvaluationRepository(conn, self.changes)
        self.votes = VoteRepository(conn, self.changes)

    # -- opening and closing -------------------------------------------------------------
    @classmethod
    def create(cls, root: Path | str, *, with_default_seeds: bool = False, exclusive: bool = True) -> Project:
        """Make a new project folder (or adopt an empty one) and open it."""
        root = Path(root).expanduser().resolve()
        if (root / DB_NAME).exists():
            raise ProjectError(f"{root} already holds a project; open it instead.")
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} is a file, not a folder.")
        seeds = []
        if with_default_seeds:  # read before anything is created, so a failure leaves no half project
            from studio.core.default_seeds import load_default_seeds

            seeds = load_default_seeds()
        root.mkdir(parents=True, exist_ok=True)
        project = cls.open(root, exclusive=exclusive, create=True)
        try:
            project.seeds.add_many(seeds)
        except BaseException:
            project.close()
            raise
        return project

    @classmethod
    def open(cls, root: Path | str, *, exclusive: bool = True, create: bool = False) -> Project:
        """Open an existing project.

        ``exclusive`` takes the project lock (the GUI and every command that writes);
        read-only commands pass ``False`` and may run beside an open app.
        """
        root = Path(root).expanduser().resolve()
        db_path = root / DB_NAME
        if not create and not db_path.exists():
            raise ProjectError(f"No project at {root} (no {DB_NAME}). Create one with `distill-studio init {root}`.")
        lock = _acquire_lock(root) if exclusive else None
        try:
            for name in SUBFOLDERS:
                (root / name).mkdir(exist_ok=True)
            try:
                conn = db.connect(db_path)
                schema.migrate(conn, db_path)
            except sqlite3.DatabaseError as exc:
                raise ProjectError(f"{db_path} is not a readable Distill Studio database: {exc}") from exc
        except BaseException:
            if lock is not None:
                _release_lock(root, lock)
            raise
        return cls(root, conn, lock)

    @classmethod
    def open_or_create(cls, root: Path | str, *, with_default_seeds: bool = True) -> Project:
        root = Path(root).expanduser()
        if (root / DB_NAME).exists():
            return cls.open(root)
        return cls.create(root, with_default_seeds=with_default_seeds)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute("PRAGMA optimize")  # SQLite's advice: refresh planner statistics on close
            except sqlite3.Error:
                pass
            self.conn.close()
            self.conn = None  # type: ignore[assignment]
        if self._lock is not None:
            _release_lock(self.root, self._lock)
            self._lock = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- facts ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.root.name

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    def new_connection(self) -> sqlite3.Connection:
        """A bare connection for code that takes one (the generation engine); prefer :meth:`worker`."""
        return db.connect(self.db_path)

    def worker(self) -> Project:
        """The one way a worker thread reaches the project: a handle of its own.

        SQLite connections belong to one thread, so the handle has its own connection and
        repositories, but shares this project's folder and change feed: what a worker writes
        reaches every view like a write from the GUI thread. It holds no lock (the project
        is already held by this process); close it when the work is done (``with`` does).
        """
        if self.conn is None:
            raise ProjectError(f"The project {self.root} is closed.")
        return Project(self.root, db.connect(self.db_path), None, self.changes)

    def stats(self) -> dict:
        return project_stats(self.conn, self.root)


def project_stats(conn: sqlite3.Connection, root: Path) -> dict:
    """Seed and sample counts; takes any connection, so a worker thread can count a big project."""
    samples = SampleRepository(conn)
    by_status = samples.counts_by("status")
    return {
        "project": str(root),
        "seed_tasks": SeedRepository(conn).count(),
        "samples": samples.count(),
        "by_status": {status: by_status.get(status, 0) for status in ("pending", "accepted", "rejected")},
        "by_origin": samples.counts_by("origin"),
    }


def is_project(root: Path | str) -> bool:
    return (Path(root) / DB_NAME).is_file()


def _acquire_lock(root: Path) -> FileLock:
    lock = FileLock(root / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ProjectLockedError(_locked_message(root)) from None
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    (root / OWNER_NAME).write_text(json.dumps(owner), encoding="utf-8")
    return lock


def _release_lock(root: Path, lock: FileLock) -> None:
    try:
        (root / OWNER_NAME).unlink(missing_ok=True)
    finally:
        lock.release()


def _locked_message(root: Path) -> str:
    holder = "another Distill Studio window or command"
    try:
        owner = json.loads((root / OWNER_NAME).read_text(encoding="utf-8"))
        holder = f"another Distill Studio process (pid {owner['pid']} on {owner['host']})"
    except (OSError, ValueError, KeyError):
        pass
    return (
        f"The project {root} is already open in {holder}. "
        "Switch to that window, or close it and try again."
    )
