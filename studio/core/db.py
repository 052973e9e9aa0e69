"""SQLite connections configured the one way the project needs them."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """Open the project database: WAL (readers never block the writer), foreign keys on.

    ``synchronous=NORMAL`` in WAL mode keeps every committed transaction across a killed
    process (only a power cut can lose the last few), at a fraction of FULL's fsync cost.
    Autocommit mode: callers group writes with :func:`transaction`.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: bulk imports and FTS builds stop spilling pages
    # The schema's word-length columns call this; every connection that writes samples needs it.
    conn.create_function("studio_words", 1, word_count, deterministic=True)
    return conn


def word_count(text: str | None) -> int:
    """Whitespace-separated words: the unit of the length filters and Alpaca's length plots."""
    return len(text.split()) if text else 0


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing: an exception rolls back every write made inside the block."""
    if conn.in_transaction:  # nested use joins the outer transaction
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
