"""The training benchmarks run (``--smoke``: tiny model, a few steps) and count honestly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ALPACA = REPO_ROOT.parent / "shared" / "data" / "alpaca_sample_2000.json"


def _run(script: str, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / script), "--smoke", *args],
                          check=False, capture_output=True, text=True, env=env, timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_honest(summary: dict) -> None:
    padded, ours = summary["padded"], summary["ours"]
    # the same samples in the same order: the same real tokens, only the batching differs
    assert padded["samples"] == ours["samples"] > 0
    assert padded["real_tokens"] == ours["real_tokens"] > 0
    assert padded["real_fraction"] < 0.9                      # padding to the longest sample
    assert ours["token_slots"] <= padded["token_slots"]
    assert summary["ratio"] == pytest.approx(ours["tokens_per_s"] / padded["tokens_per_s"])


@pytest.mark.skipif(not ALPACA.exists(), reason="../shared/data/alpaca_sample_2000.json is not present")
def test_train_throughput_smoke() -> None:
    summary = _run("train_throughput.py", "--threads", "1", "--json", "--fused-loss")
    _check_honest(summary)
    # "ours" is the real job: its own callback wrote one log event per step
    assert summary["ours"]["job_log_events"] == summary["steps"]
    assert summary["ours"]["job_reported_tokens_per_s"] > 0
    variant = summary["ours_fused_loss"]
    assert variant["real_tokens"] == summary["ours"]["real_tokens"]


@pytest.mark.skipif(not ALPACA.exists(), reason="../shared/data/alpaca_sample_2000.json is not present")
def test_train_gpu_smoke_runs_on_the_cpu() -> None:
    summary = _run("train_gpu.py")
    _check_honest(summary)
    assert summary["device"] == "CPU"
    assert summary["ours_model_loss"]["real_tokens"] == summary["ours"]["real_tokens"]
    flops = summary["flops_per_token"]
    assert flops["six_n"] > flops["four_n"] > flops["attention"] > 0
    for run in (summary["padded"], summary["ours"], summary["ours_model_loss"]):
        assert run["mfu"] == pytest.approx(flops["six_n"] * run["tokens_per_s"] / 1e12 / summary["peak_tflops"])


def test_pad_to_longest_collator_is_stanfords_batching() -> None:
    from benchmarks.train_models import IGNORE_INDEX, PadToLongestCollator

    batch = PadToLongestCollator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                                                  {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[True, True, True], [True, False, False]]


def test_step_meter_leaves_out_warmup_steps() -> None:
    import torch

    from benchmarks.train_models import StepMeter

    meter = StepMeter(pad_token_id=0, warmup=1)
    count = meter.wrap(lambda features: {"input_ids": torch.tensor(features)})
    for step, batch in enumerate([[[1, 0]], [[1, 1], [1, 0]], [[1, 1]]]):
        count(batch)
        meter.step_ends.append(float(step))
    summary = meter.summary()
    assert (summary["steps"], summary["real_tokens"], summary["token_slots"], summary["samples"]) == (2, 5, 6, 3)
    assert summary["tokens_per_s"] == pytest.approx(5 / 2.0)
