"""Curate at scale: open, search, sort, filter and memory, against an all-in-memory baseline.

Data: the 52,002-record stand-in for Alpaca (shared/data/SOURCES.md: the 2,000-record
sample repeated, every alphanumeric word of repeat k suffixed "zz<k>"), imported through
SampleRepository.add_many; and a synthetic 1,000,000-sample project built the same way
but inserted with one executemany (no Sample objects), statuses cycling.

Each measurement runs in a fresh child process (so memory figures are its own):
* ours: Project.open -> SampleTableModel -> QTableView shown and painted (offscreen);
  then a full-text search, a sort, a filter change, each until the first page is painted;
* baseline: every row in a QStandardItemModel (what a naive table does), search through a
  QSortFilterProxyModel. Measured at 52K only; its 1M figures are a linear extrapolation.

    python benchmarks/curate.py [--skip-1m] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "alpaca_sample_2000.json"
WORD = re.compile(r"[A-Za-z0-9]+")
TARGETS = {52_002: {"open": 1.0, "search": 0.050, "filter": 0.050},
           1_000_000: {"open": 3.0, "search": 0.300, "memory_mb": 600}}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def templates() -> list[tuple[str, str, str]]:
    """Each record as str.format templates: every word gets "zz{k}" appended."""
    records = json.loads(DATA.read_text(encoding="utf-8"))

    def template(text: str) -> str:
        escaped = text.replace("{", "{{").replace("}", "}}")
        return WORD.sub(lambda m: m.group(0) + "zz{k}", escaped)

    return [(template(r["instruction"]), template(r["input"]), template(r["output"])) for r in records]


def stand_in(n: int):
    parts = templates()
    for i in range(n):
        k, j = divmod(i, len(parts))
        yield tuple(t.format(k=k) for t in parts[j])


def build_52k(root: Path) -> float:
    """Import through the real path (add_many); returns its seconds."""
    from studio.core.project import Project
    from studio.core.samples import Origin, Sample, Status

    statuses = list(Status)
    records = list(stand_in(52_002))  # building the stand-in itself is not import time
    with Project.create(root) as project:
        started = time.perf_counter()
        project.samples.add_many(
            Sample(a, b, c, origin=Origin.IMPORTED, status=statuses[i % 3]) for i, (a, b, c) in enumerate(records)
        )
        return time.perf_counter() - started


def build_1m(root: Path, n: int = 1_000_000) -> float:
    from studio.core.db import transaction
    from studio.core.project import Project
    from studio.core.samples import content_hash
    from studio.core.bulk_insert import bulk_insert

    started = time.perf_counter()
    now = time.time()
    statuses = ("pending", "accepted", "rejected")
    with Project.create(root) as project:
        rows = ((a, b, c, statuses[i % 3], "generated", now, now + i, content_hash(a, b, c), len(a.split()), len(c.split()))
                for i, (a, b, c) in enumerate(stand_in(n)))
        with transaction(project.conn), bulk_insert(project.conn, n):
            project.conn.executemany(
                "INSERT INTO samples (instruction, input, output, status, origin, created_at, updated_at, content_hash,"
                " instruction_words, output_words)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
            )
    return time.perf_counter() - started


# -- child measurements --------------------------------------------------------------------
def _app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])


def _paint(app, view) -> None:
    # One scheduled paint, run by the event loop as in the app (a model reset has already
    # scheduled one; repaint() here would paint twice). ~17 ms of each figure is this paint
    # of a 1400x900 table (480 cells) on this machine.
    view.viewport().update()
    app.processEvents()


def measure_ours(root: Path, common: str, rare: str) -> dict:
    app = _app()
    from dataclasses import replace

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QHeaderView, QTableView

    from studio.core.curation import CurationRepository, SampleQuery, fts_phrase
    from studio.core.project import Project
    from studio.ui.sample_table_model import COLUMN_KEYS, SampleTableModel

    base_rss = rss_mb()
    out: dict = {}
    t = time.perf_counter()
    project = Project.open(root, exclusive=False)
    model = SampleTableModel(project.curation)
    view = QTableView()
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(22)
    view.setModel(model)
    view.resize(1400, 900)
    view.show()
    _paint(app, view)
    out["open"] = time.perf_counter() - t
    out["rows"] = model.rowCount()

    def timed(name: str, action, paint: bool = True) -> None:
        t = time.perf_counter()
        action()
        if paint:
            _paint(app, view)
        out[name] = time.perf_counter() - t

    timed("search", lambda: model.set_query(SampleQuery(search=common)))
    out["search_hits"] = model.rowCount()
    timed("search_rare", lambda: model.set_query(SampleQuery(search=rare)))
    out["search_rare_hits"] = model.rowCount()
    # SQL alone, uncached (a fresh CurationRepository): what one FTS pass costs at this size.
    fresh = CurationRepository(project.conn)
    timed("sql_search_page_uncached", lambda: fresh.page(SampleQuery(search=common), 0, 256), paint=False)
    timed("sql_search_count_cached", lambda: fresh.count(SampleQuery(search=common)), paint=False)
    timed("sql_fts_count_direct", lambda: project.conn.execute(
        "SELECT count(*) FROM samples_fts WHERE samples_fts MATCH ?", (fts_phrase(common),)).fetchone(), paint=False)
    model.set_query(SampleQuery())
    timed("sort", lambda: model.sort(COLUMN_KEYS.index("output_words"), Qt.SortOrder.DescendingOrder))
    timed("filter", lambda: model.set_query(replace(model.query, statuses=("accepted",))))
    timed("filter_search", lambda: model.set_query(replace(model.query, search=common)))
    view.scrollToBottom()
    timed("scroll_to_end", lambda: None)
    out["memory_mb"] = rss_mb()
    out["memory_growth_mb"] = out["memory_mb"] - base_rss
    project.close()
    return out


def measure_baseline(root: Path, common: str) -> dict:
    app = _app()
    from PySide6.QtCore import QRegularExpression, QSortFilterProxyModel
    from PySide6.QtGui import QStandardItem, QStandardItemModel
    from PySide6.QtWidgets import QTableView

    from studio.core.project import Project

    base_rss = rss_mb()
    out: dict = {}
    t = time.perf_counter()
    project = Project.open(root, exclusive=False)
    rows = project.conn.execute(
        "SELECT status, instruction, input, output, instruction_words, output_words, origin, teacher_model,"
        " run_id, rating, tags, updated_at FROM samples ORDER BY id"
    ).fetchall()
    model = QStandardItemModel(len(rows), 12)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            model.setItem(r, c, QStandardItem("" if value is None else str(value)))
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(model)
    view = QTableView()
    view.setModel(proxy)
    view.resize(1400, 900)
    view.show()
    _paint(app, view)
    out["open"] = time.perf_counter() - t
    out["rows"] = model.rowCount()
    t = time.perf_counter()
    proxy.setFilterKeyColumn(-1)
    proxy.setFilterRegularExpression(QRegularExpression(re.escape(common.rstrip("*")),
                                     QRegularExpression.PatternOption.CaseInsensitiveOption))
    _paint(app, view)
    out["search"] = time.perf_counter() - t
    out["search_hits"] = proxy.rowCount()
    proxy.setFilterRegularExpression("")
    t = time.perf_counter()
    proxy.sort(5)
    _paint(app, view)
    out["sort"] = time.perf_counter() - t
    t = time.perf_counter()
    proxy.setFilterKeyColumn(0)
    proxy.setFilterFixedString("accepted")
    _paint(app, view)
    out["filter"] = time.perf_counter() - t
    out["memory_mb"] = rss_mb()
    out["memory_growth_mb"] = out["memory_mb"] - base_rss
    project.close()
    return out


def child(kind: str, root: Path, common: str, rare: str) -> dict:
    command = [sys.executable, __file__, "--child", kind, str(root), common, rare]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{kind} measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def report(n: int, ours: dict, base: dict, extrapolated: bool) -> None:
    print(f"\n== {n:,} samples ==" + ("  (baseline extrapolated linearly from 52,002)" if extrapolated else ""))
    print(f"{'':<22}{'ours':>12}{'baseline':>12}{'ratio':>9}  target")
    for key, unit in (("open", "s"), ("search", "s"), ("sort", "s"), ("filter", "s"), ("memory_mb", "MB")):
        target = TARGETS.get(n, {}).get(key)
        verdict = "" if target is None else f"<= {target:g}{unit} " + ("ok" if ours[key] <= target else "MISSED")
        ratio = base[key] / ours[key] if ours[key] else float("inf")
        fmt = (lambda v: f"{v * 1000:9.1f} ms") if unit == "s" else (lambda v: f"{v:9.0f} MB")
        print(f"{key:<22}{fmt(ours[key]):>12}{fmt(base[key]):>12}{ratio:8.1f}x  {verdict}")
    for key in ("search_rare", "filter_search", "scroll_to_end", "sql_search_page_uncached",
                "sql_search_count_cached", "sql_fts_count_direct"):
        print(f"{key:<22}{ours[key] * 1000:9.1f} ms")
    print(f"hits: common {ours['search_hits']:,}, rare {ours['search_rare_hits']:,}; "
          f"memory growth ours {ours['memory_growth_mb']:.0f} MB, baseline {base['memory_growth_mb']:.0f} MB")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, root, common, rare = sys.argv[2], Path(sys.argv[3]), sys.argv[4], sys.argv[5]
        result = measure_ours(root, common, rare) if kind == "ours" else measure_baseline(root, common)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-1m", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing (see shared/data/SOURCES.md)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="curate-bench-"))
    common, rare = "describe*", "waterzz17"  # a prefix hitting every repeat; a word of one repeat
    print(f"Work folder {workdir}. Figures from the 52,002-record stand-in (SOURCES.md recipe), "
          "and a synthetic 1M project built the same way with executemany.")
    small = workdir / "p52k"
    if not small.exists():
        print(f"import 52,002 via SampleRepository.add_many: {build_52k(small):.2f} s (budget 2 s)")
    ours = child("ours", small, common, rare)
    base = child("baseline", small, common, rare)
    report(52_002, ours, base, extrapolated=False)
    if args.skip_1m:
        return
    big = workdir / "p1m"
    if not big.exists():
        print(f"\nbuilding the synthetic 1,000,000-sample project (executemany): {build_1m(big):.1f} s")
    ours_1m = child("ours", big, common, rare)
    scale = 1_000_000 / 52_002
    base_1m = {k: (v * scale if isinstance(v, float) else v) for k, v in base.items()}
    # Memory: the interpreter and Qt stay; only what the rows added grows with them.
    base_1m["memory_growth_mb"] = base["memory_growth_mb"] * scale
    base_1m["memory_mb"] = base["memory_mb"] - base["memory_growth_mb"] + base_1m["memory_growth_mb"]
    report(1_000_000, ours_1m, base_1m, extrapolated=True)


if __name__ == "__main__":
    main()
