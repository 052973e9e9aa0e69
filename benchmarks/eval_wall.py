"""Benchmark: the evaluation wall's cost at Alpaca's scale (52,002 samples vs 252 evaluation prompts).

    python benchmarks/eval_wall.py [--data DIR] [--count N]

A real project (SQLite) holding the 52,002-record stand-in (``benchmarks/standin.py``, per
shared/data/SOURCES.md) frozen into one snapshot, and a prompt set of 252 prompts: the 175
Self-Instruct seed tasks (first instance) plus 77 of the real Alpaca records (so 77 exact hits
in the snapshot). Times: loading the wall, Train's refusal check (exact copies only, what
``TrainingRunRepository.create`` / resume / export-job run), the pre-flight check (exact and
ROUGE-L near over every training record), one generation-filter check a candidate, and the
same Train check with no prompt set (what every project without an evaluation pays).
Other jobs may share the machine: the seconds are one run's, on one core.
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.standin import DEFAULT_DATA, FULL_SIZE, load_sample, standin_records  # noqa: E402
from studio.core.evaluation.guard import EvalWall, preflight_checks, snapshot_report  # noqa: E402
from studio.core.evaluation.model import EvalPrompt  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.samples import Origin, Status  # noqa: E402
from studio.core.training.runs import TrainingRunError  # noqa: E402
from studio.core.training.settings import TrainSettings  # noqa: E402


def timed(action):
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def eval_prompts(data: Path) -> list[EvalPrompt]:
    seeds = [json.loads(line) for line in (data / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    prompts = [EvalPrompt(s["instruction"], s["instances"][0]["input"], s["instances"][0]["output"]) for s in seeds]
    sample = load_sample(data)
    prompts += [EvalPrompt(r["instruction"], r["input"], r["output"]) for r in sample[100:100 + 252 - len(prompts)]]
    return prompts[:252]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--count", type=int, default=FULL_SIZE)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="eval-wall-"))
    try:
        with Project.create(workdir / "project") as project:
            records = standin_records(args.count, args.data)
            build_s, _ = timed(lambda: project.samples.import_texts(
                ((r["instruction"], r["input"], r["output"]) for r in records), status=Status.ACCEPTED,
                origin=Origin.IMPORTED, source="standin"))
            snap_s, snap = timed(lambda: project.snapshots.create("all"))
            settings = TrainSettings()
            print(f"{len(records):,} samples imported in {build_s:.1f} s, snapshot frozen in {snap_s:.1f} s")

            empty_s, _ = timed(lambda: project.training.create(snapshot=snap.id, base_model="org/model",
                                                               settings=settings, name="no-set"))
            empty_pf_s, empty_checks = timed(lambda: preflight_checks(project.conn, snap.id, settings))
            assert empty_checks == []
            prompts = eval_prompts(args.data)
            project.prompt_sets.create("bench", prompts)
            load_s, wall = timed(lambda: EvalWall.load(project.conn))
            exact_s, (report, _items) = timed(lambda: snapshot_report(project.conn, snap.id, settings, near=False))

            def refused() -> str:
                try:
                    project.training.create(snapshot=snap.id, base_model="org/model", settings=settings)
                except TrainingRunError as exc:
                    return str(exc)
                return ""

            create_s, message = timed(refused)
            assert message, "the run was not refused"
            preflight_s, checks = timed(lambda: preflight_checks(project.conn, snap.id, settings))
            wall.near("warm the index")
            candidates = [r["instruction"] for r in records[:2000:2]]
            filter_s, _ = timed(lambda: [wall.check(text) for text in candidates])
            print(f"{len(wall)} evaluation prompts; {len(report.exact)} exact copies in the training split\n")
            rows = [
                ("Train create, no prompt set (whole create)", empty_s),
                ("pre-flight checks, no prompt set", empty_pf_s),
                ("load the wall (252 prompts)", load_s),
                ("exact check of the snapshot (Train's refusal)", exact_s),
                ("Train create refused (whole call)", create_s),
                ("pre-flight: exact + ROUGE-L near, every record", preflight_s),
                (f"generation filter, per candidate (mean of {len(candidates):,})", filter_s / len(candidates)),
            ]
            for label, seconds in rows:
                shown = f"{seconds * 1000:9.3f} ms" if seconds < 1 else f"{seconds:9.2f} s "
                print(f"{label:<56}{shown}")
            print("\npre-flight said:")
            for check in checks:
                print(f"  {check['level']}: {check['message'][:160]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
