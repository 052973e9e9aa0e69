"""The evaluation throughput benchmark runs (``--quick``) and both sides make every request (no timing asserts)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_eval_throughput_quick() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "eval_throughput.py"), "--quick", "--json"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for side in ("ours", "baseline"):
        assert summary[side]["answers"] == summary[side]["judgments"] == 2 * summary["prompts"]
        assert summary[side]["answer_share"] > 0 and summary[side]["judge_share"] > 0
    assert summary["limit_per_s"] == summary["concurrency"] / summary["latency_s"]
