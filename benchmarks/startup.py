"""Cold start of the app until the main window is shown (project opened), against
`python -c "import torch, transformers"` in the same run.

Target (issue 2): ours under one third of the baseline. Each figure is the median of
--repeat fresh processes; the first run of each is listed too (coldest caches).
Run: python benchmarks/startup.py [--repeat N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def time_app_start(project: Path, home: Path) -> float:
    env = dict(os.environ, DISTILL_STUDIO_STARTUP_PROBE="1", DISTILL_STUDIO_HOME=str(home), PYTHONPATH=str(REPO_ROOT))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "studio", "--project", str(project)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for line in process.stdout:
        if line.startswith("window-shown"):
            elapsed = time.perf_counter() - start
            break
    else:
        raise SystemExit("the app exited without showing its window")
    process.wait(timeout=30)
    return elapsed


def time_torch_import() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project, home = Path(tmp) / "project", Path(tmp) / "home"
        ours, baseline = [], []
        for _ in range(args.repeat):  # interleaved, so load on the machine hits both alike
            ours.append(time_app_start(project, home))
            baseline.append(time_torch_import())
    ours_s, base_s = statistics.median(ours), statistics.median(baseline)
    print(f"platform: QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', 'offscreen')}, python {sys.version.split()[0]}")
    print(f"ours: window shown, project open : {ours_s:.3f} s median (first {ours[0]:.3f} s)")
    print(f"baseline: import torch, transformers: {base_s:.3f} s median (first {baseline[0]:.3f} s)")
    print(f"ratio ours / baseline            : {ours_s / base_s:.2f} (target < 0.33: {'met' if ours_s / base_s < 1 / 3 else 'NOT met'})")


if __name__ == "__main__":
    main()
