"""Curate's bulk actions at the 52K Alpaca scale: ours against the old per-row path, same run.

Data: the 52,002-record stand-in (shared/data/SOURCES.md recipe, benchmarks/standin.py),
imported once; every measurement runs on a fresh copy of that database.

* delete all / its undo: ours = TrashRepository's path (rows moved to the trash with the FTS
  triggers detoured, index rebuilt or told in one statement per chunk; restore the same way)
  vs the old path (executemany DELETE with the per-row triggers; undo = executemany INSERT of
  the kept rows). Targets: each <= 3 s.
* delete a third (17,334 rows: the FTS told per chunk instead of rebuilt) and its undo.
* mark all accepted / its undo (the same executemany either way, now in 1,000-row steps).
The GUI thread's stalls while these run through the panel are benchmarks/gui_stalls.py's.

    python benchmarks/bulk_curation.py [--data DIR] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.standin import standin_records  # noqa: E402
from studio.core import db  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.samples import Origin, Status  # noqa: E402

TARGET_S = 3.0


def build(root: Path, data: Path) -> None:
    records = standin_records(data_dir=data)
    with Project.create(root) as project:
        statuses = [Status.PENDING, Status.ACCEPTED, Status.REJECTED]
        project.samples.import_texts(((r["instruction"], r["input"], r["output"]) for r in records),
                                     status=statuses[0], origin=Origin.IMPORTED, source="standin")
        project.conn.execute("UPDATE samples SET status = 'accepted' WHERE id % 3 = 1")


def copy(template: Path, name: str, workdir: Path) -> Path:
    target = workdir / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("*-wal", "*-shm", ".studio.*"))
    return target


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def old_delete_and_undo(root: Path, ids_of) -> tuple[float, float]:
    """The pre-trash path: whole rows kept in memory, per-row DELETE and INSERT with triggers."""
    conn = db.connect(root / "project.sqlite")
    try:
        ids = ids_of(conn)
        columns = [r[1] for r in conn.execute("PRAGMA table_info(samples)")]
        rows = []
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            rows += [tuple(r) for r in conn.execute(
                f"SELECT {','.join(columns)} FROM samples WHERE id IN ({','.join('?' * len(chunk))})", chunk)]

        def delete() -> None:
            with db.transaction(conn):
                conn.executemany("DELETE FROM samples WHERE id = ?", [(r[0],) for r in rows])

        def undo() -> None:
            with db.transaction(conn):
                conn.executemany(f"INSERT INTO samples ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})", rows)

        return timed(delete)[0], timed(undo)[0]
    finally:
        conn.close()


def ours_delete_and_undo(root: Path, ids_of) -> tuple[float, float]:
    with Project.open(root) as project:
        ids = ids_of(project.conn)
        delete_s, deletion = timed(lambda: project.curation.delete(ids))
        undo_s, _ = timed(lambda: deletion.apply(project.conn, undo=True))
        assert project.samples.count() == 52_002
        project.conn.execute("INSERT INTO samples_fts(samples_fts) VALUES ('integrity-check')")
        return delete_s, undo_s


def ours_mark_and_undo(root: Path) -> tuple[float, float]:
    with Project.open(root) as project:
        ids = [r[0] for r in project.conn.execute("SELECT id FROM samples")]
        mark_s, change = timed(lambda: project.curation.set_status(ids, Status.ACCEPTED))
        undo_s, _ = timed(lambda: change.apply(project.conn, undo=True))
        return mark_s, undo_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bulk-curation-"))
    template = workdir / "template"
    shutil.rmtree(template, ignore_errors=True)
    build_s, _ = timed(lambda: build(template, args.data))
    print(f"Work folder {workdir}; 52,002-record stand-in (SOURCES.md recipe) imported in {build_s:.1f} s.")
    print("Other jobs may share this machine's 2 cores: compare the ratios, not the seconds alone.\n")

    def every(conn) -> list[int]:
        return [r[0] for r in conn.execute("SELECT id FROM samples ORDER BY id")]

    def a_third(conn) -> list[int]:
        return [r[0] for r in conn.execute("SELECT id FROM samples WHERE id % 3 = 0 ORDER BY id")]

    print(f"{'':<28}{'ours':>9}{'old':>9}{'ratio':>8}  target")
    for label, ids_of in (("all 52,002", every), ("a third (17,334)", a_third)):
        ours = ours_delete_and_undo(copy(template, "ours", workdir), ids_of)
        old = old_delete_and_undo(copy(template, "old", workdir), ids_of)
        for what, mine, theirs in (("delete", ours[0], old[0]), ("undo delete", ours[1], old[1])):
            verdict = "ok" if mine <= TARGET_S else "MISSED"
            print(f"{what + ' ' + label:<28}{mine:8.2f}s{theirs:8.2f}s{theirs / mine:7.1f}x  <= {TARGET_S:.0f} s {verdict}")
    mark, undo = ours_mark_and_undo(copy(template, "mark", workdir))
    print(f"{'mark all 52,002':<28}{mark:8.2f}s{'':>9}{'':>8}  ~1 s")
    print(f"{'undo mark all':<28}{undo:8.2f}s{'':>9}{'':>8}  ~1 s")

    print("\nThe GUI thread while these run through the Curate panel: benchmarks/gui_stalls.py.")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
