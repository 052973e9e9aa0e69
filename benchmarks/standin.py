"""The full-scale Alpaca stand-in described in shared/data/SOURCES.md.

Repeat the 2,000 real records; in repeat k (k >= 1) every alphanumeric word gets the suffix
"zz<k>", so repeats keep the real length distribution but are not near-duplicates of each
other. Figures measured on it must say so.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
FULL_SIZE = 52_002
_WORD = re.compile(r"[A-Za-z0-9]+")


def load_sample(data_dir: Path = DEFAULT_DATA) -> list[dict]:
    path = data_dir / "alpaca_sample_2000.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: these benchmarks need ../shared/data (see --data).")
    return json.loads(path.read_text(encoding="utf-8"))


def _suffixed(text: str, k: int) -> str:
    return _WORD.sub(lambda m: f"{m.group(0)}zz{k}", text) if k else text


def standin_records(count: int = FULL_SIZE, data_dir: Path = DEFAULT_DATA) -> list[dict]:
    base = load_sample(data_dir)
    records: list[dict] = []
    k = 0
    while len(records) < count:
        for record in base[: count - len(records)]:
            records.append({key: _suffixed(record[key], k) for key in ("instruction", "input", "output")})
        k += 1
    return records


def write_standin(path: Path, count: int = FULL_SIZE, data_dir: Path = DEFAULT_DATA) -> Path:
    """Alpaca JSON (indent=4, like upstream's alpaca_data.json)."""
    path.write_text(json.dumps(standin_records(count, data_dir), indent=4, ensure_ascii=False), encoding="utf-8")
    return path
