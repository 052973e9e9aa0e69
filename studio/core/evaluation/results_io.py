"""An evaluation's result on disk: one JSON file, or CSV files that each hold one kind of row.

JSON (``write_json``): the result's ``to_dict()`` (the first pair's summary numbers at the top,
every pair, the ranking, ``meta`` to repeat it) plus ``"prompts"``: the per-prompt rows.

CSV (``write_csv``): a CSV file has one header, so a summary block above the prompt rows would not
be CSV. Instead ``PATH`` holds the per-prompt rows, ``PATH``'s stem + ``.summary.csv`` one row per
pair and one per (pair, category), and, for more than two systems, ``.ranking.csv`` the
Bradley–Terry ranking. ``results.csv`` → ``results.csv``, ``results.summary.csv``,
``results.ranking.csv``. Every file is written atomically (a temporary file renamed over it).
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from studio.core.evaluation.stats import EvalResult, PairResult
from studio.core.formats import atomic_write_text

# Summary columns, in order: which pair and category, then the numbers (PairResult's names).
SUMMARY_COLUMNS = ("system_a", "system_b", "category", "n", "wins_a", "wins_b", "ties", "inconsistent", "both_bad",
                   "win_rate_a", "ci_low", "ci_high", "win_rate_a_ties_half", "lc_win_rate_a", "lc_ci_low",
                   "lc_ci_high", "length_bias", "avg_len_a", "avg_len_b", "position_consistency",
                   "judged_both_orders")
RANKING_COLUMNS = ("rank", "system", "strength", "ci_low", "ci_high", "games", "score")
META_COLUMNS = ("evaluation_id", "set_hash")  # repeated on every summary row, so one file is enough to cite


def write_json(result: EvalResult, rows: Sequence[dict], path: Path | str) -> list[Path]:
    """Write the result and its per-prompt rows to ``path`` as one JSON object; returns the path written."""
    path = Path(path)
    data = result.to_dict()
    data["prompts"] = [dict(row) for row in rows]
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2, default=_jsonable) + "\n")
    return [path]


def companion_paths(path: Path | str) -> tuple[Path, Path]:
    """The summary and ranking files that go with a CSV export at ``path``."""
    path = Path(path)
    stem = path.name[:-4] if path.name.lower().endswith(".csv") else path.name
    return path.with_name(f"{stem}.summary.csv"), path.with_name(f"{stem}.ranking.csv")


def write_csv(result: EvalResult, rows: Sequence[dict], path: Path | str) -> list[Path]:
    """Write the per-prompt rows to ``path`` and the summary (and ranking) beside it; returns every path written.

    Lists and dicts in a row (e.g. chat messages) become JSON text; None becomes an empty cell.
    """
    path = Path(path)
    summary_path, ranking_path = companion_paths(path)
    columns = _columns(rows)
    atomic_write_text(path, _csv_text(columns, (row for row in rows)))
    meta = {key: result.meta.get(key) for key in META_COLUMNS}
    summary = [{**meta, **row} for pair in result.pairs for row in _summary_rows(pair)]
    atomic_write_text(summary_path, _csv_text((*META_COLUMNS, *SUMMARY_COLUMNS), summary))
    written = [path, summary_path]
    if result.ranking is not None:
        atomic_write_text(ranking_path, _csv_text(RANKING_COLUMNS, (r.to_dict() for r in result.ranking)))
        written.append(ranking_path)
    return written


def _summary_rows(pair: PairResult) -> list[dict]:
    """The pair as a whole (category empty), then one row per category."""
    whole = pair.to_dict()
    whole["category"] = ""
    rows = [whole]
    for name, numbers in pair.per_category.items():
        rows.append({"system_a": pair.system_a, "system_b": pair.system_b, "category": name, **numbers})
    return rows


def _columns(rows: Sequence[dict]) -> list[str]:
    """Every key of every row, in the order first seen (rows need not all have the same keys)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _csv_text(columns: Sequence[str], rows: Iterable[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=_jsonable)
    return str(value)


def _jsonable(value: Any) -> Any:
    """Numbers numpy hands back (e.g. a float64 in a row) and paths, as plain JSON."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
