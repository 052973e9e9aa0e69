"""The serving benchmark runs (``--smoke``: tiny model, few tokens) and both sides make the same tokens."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_serve_overhead_smoke() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "serve_overhead.py"), "--smoke", "--json"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["raw"]["tokens"] == summary["server"]["tokens"] == summary["prompts"] * summary["max_tokens"]
    assert summary["concurrent"]["tokens"] == summary["concurrent"]["clients"] * summary["max_tokens"]
    assert summary["server_exit"] == 0
