"""Helpers for the export tests: a training run folder with a real peft LoRA adapter, made in a second.

Training is not needed to test export: ``get_peft_model`` + ``save_pretrained`` with lora_B filled
with random non-zero values (peft initialises it to zeros) gives an adapter that changes the
logits, so "merged == base + adapter" and "adapter != base" are real checks.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from studio.core.training.run_config import RunConfig
from studio.core.training.settings import TrainSettings

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_run(run_dir: Path, base: Path, *, prompt_format: str = "alpaca", name: str = "student",
             seed: int = 0) -> Path:
    """``run_dir`` with config.json, adapter/ (non-zero lora_B) and tokenizer/, like a finished run's."""
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = TrainSettings(prompt_format=prompt_format, lora_r=4, lora_alpha=8)
    RunConfig(run_id=7, run_name=name, run_dir=str(run_dir), base_model=str(base),
              data_path=str(run_dir / "data.jsonl"), snapshot_hash="sha256:feedc0ffee1234",
              snapshot_name="accepted-v1", settings=settings).write()
    return add_adapter(run_dir, base, seed=seed)


def add_adapter(run_dir: Path, base: Path, *, seed: int = 0, target_modules: list[str] | None = None) -> Path:
    """adapter/ (a peft LoRA with random non-zero lora_B) and tokenizer/ in ``run_dir``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=target_modules or ["q_proj", "k_proj", "v_proj", "o_proj",
                                                        "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, lora)
    with torch.no_grad():
        for param_name, param in peft_model.named_parameters():
            if "lora_B" in param_name:
                param.normal_(0.0, 0.2)
    peft_model.save_pretrained(str(run_dir / "adapter"))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(run_dir / "tokenizer"))
    return run_dir


def export_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def run_child(run_dir: Path, out: Path, fmt: str, quant: str | None = None, *extra: str,
              timeout: float = 240) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "studio.export", "--run-dir", str(run_dir), "--out", str(out),
            "--format", fmt, "--threads", "1", *extra]
    if quant:
        argv += ["--quant", quant]
    return subprocess.run(argv, capture_output=True, text=True, env=export_env(), timeout=timeout, cwd=REPO_ROOT)


def project_run(project, base: Path, *, adapter: bool = True, name: str = "cli-student"):
    """A real training run row (snapshot of 3 accepted samples) on ``base``, with a peft adapter unless told not."""
    from studio.core.samples import Sample, Status

    for i in range(3):
        project.samples.add(Sample(f"Instruction {i}.", "", f"Out {i}.", status=Status.ACCEPTED))
    project.snapshots.create("v1")
    run = project.training.create(snapshot="v1", base_model=str(base), settings=TrainSettings(lora_r=4), name=name)
    if adapter:
        add_adapter(run.run_dir, base)
    return run
