"""Helpers for tests of serving: trained-looking runs without training, and the fake server's command line.

A "trained" run here is a real run row and folder whose ``adapter/`` holds just an
``adapter_config.json`` — enough for the catalog (which only checks that file) and for the
fake server, which loads nothing. Tests of the real server make a real peft adapter instead.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.core.training.runs import TrainingRun
from studio.core.training.settings import TrainSettings

FAKE_SERVER = Path(__file__).with_name("fake_studio_server.py")


def fake_program(*extra: str) -> list[str]:
    """What replaces ``[python, -m, studio.serve]``: the fake server, with its own test flags."""
    return [sys.executable, str(FAKE_SERVER), *extra]


def base_folder(root: Path, name: str = "tiny-base") -> Path:
    """A folder that passes for a local base model (a config.json, no chat template)."""
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    return folder


def trained_run(project: Project, base: Path, *, name: str = "", r: int = 8,
                prompt_format: str = "alpaca") -> TrainingRun:
    """A run with an adapter folder (adapter_config.json only), on ``base``."""
    if not project.snapshots.list():
        for i in range(3):
            project.samples.add(Sample(f"Instruction {i}.", "", f"Output {i}.", status=Status.ACCEPTED))
        project.snapshots.create("v1")
    settings = TrainSettings().with_overrides({"lora_r": r, "prompt_format": prompt_format})
    run = project.training.create(snapshot="v1", base_model=str(base), settings=settings, name=name)
    run.adapter_dir.mkdir(parents=True, exist_ok=True)
    (run.adapter_dir / "adapter_config.json").write_text(json.dumps({"r": r, "peft_type": "LORA"}), encoding="utf-8")
    return run


def peft_student(project: Project, base: Path, *, name: str = "student") -> TrainingRun:
    """A run on ``base`` whose adapter is a real peft LoRA with non-zero ``lora_B``, so the real server's
    student answers unlike the base (for tests of the real server; imports torch, so call it lazily)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = trained_run(project, base, name=name, r=4)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for weight_name, weight in model.named_parameters():
            if "lora_B" in weight_name:
                weight.normal_(0, 0.5)
    model.save_pretrained(run.adapter_dir)
    return run


def live_training(run: TrainingRun, device: str | None) -> subprocess.Popen:
    """Make ``run`` look like a live training job: a sleeping child (its command line names studio)
    in job.pid and, unless ``device`` is None, a config event naming the device."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "studio-fake-train"])
    run.pid_path.write_text(f"{child.pid}\n", encoding="utf-8")
    if device is not None:
        with open(run.events_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"type": "config", "time": time.time(), "run_id": run.id, "device": device}) + "\n")
    return child
