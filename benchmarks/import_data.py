"""Importing the 52,002-record Alpaca stand-in into a new project, against json.load of the same file.

Target (issue 2): ours <= 2 s on the 2-core reference machine.
Run: python benchmarks/import_data.py [--data DIR] [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.standin import DEFAULT_DATA, FULL_SIZE, write_standin  # noqa: E402
from studio.cli import main as cli_main  # noqa: E402


def time_json_load(path: Path) -> float:
    start = time.perf_counter()
    with path.open(encoding="utf-8") as stream:
        json.load(stream)
    return time.perf_counter() - start


def time_import(path: Path, workdir: Path, run: int) -> float:
    """The user's path: `distill-studio data import FILE` into a freshly created project."""
    project = workdir / f"project-{run}"
    assert cli_main(["init", str(project), "--empty"]) == 0
    start = time.perf_counter()
    code = cli_main(["data", "import", str(path), "--project", str(project)])
    elapsed = time.perf_counter() - start
    assert code == 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = write_standin(workdir / "alpaca_standin_52002.json", FULL_SIZE, args.data)
        size_mb = path.stat().st_size / 1e6
        baseline = [time_json_load(path) for _ in range(args.repeat)]
        ours = [time_import(path, workdir, run) for run in range(args.repeat)]
    base_s, ours_s = statistics.median(baseline), statistics.median(ours)
    print(f"data: 52,002-record stand-in built from shared/data/alpaca_sample_2000.json ({size_mb:.1f} MB)")
    print(f"baseline json.load          : {base_s:.3f} s (median of {args.repeat})")
    print(f"ours data import (new proj.): {ours_s:.3f} s (median of {args.repeat}; runs {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"ratio ours / json.load      : {ours_s / base_s:.1f}x")
    print(f"target <= 2.0 s             : {'met' if ours_s <= 2.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
