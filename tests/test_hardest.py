"""Hardest samples: a deliberately corrupted sample in a memorisation set ranks first under the trained adapter."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.training import events as ev
from studio.core.training.run_config import HARDEST_FILE, RunConfig
from studio.core.training.settings import TrainSettings
from studio.train.data import SnapshotRecord, build_example
from studio.train.hardest import find_adapter, read_hardest
from tests.tiny_model import _INSTRUCTIONS

REPO = Path(__file__).resolve().parents[1]
CORRUPTED_ID = 107


def memorisation_set() -> list[dict]:
    rng = random.Random(3)
    rows = [{"sample_id": 100 + i, "instruction": ins, "input": inp, "output": out}
            for i, (ins, inp, out) in enumerate(_INSTRUCTIONS[:12])]
    garbage = "".join(rng.choice("qxzjkvw ") for _ in range(40))
    rows[CORRUPTED_ID - 100]["output"] = garbage            # an answer that fits no question
    return rows


def train_adapter(base: Path, rows: list[dict], out: Path, *, steps: int = 40) -> None:
    """A LoRA adapter trained with plain peft on the rows (response-only loss), saved to ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
    examples = [build_example(tokenizer, "alpaca", SnapshotRecord(r["sample_id"], r["instruction"], r["input"],
                                                                  r["output"]), max_length=256) for r in rows]
    longest = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), longest), tokenizer.pad_token_id)
    labels = torch.full((len(examples), longest), -100)
    mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, example in enumerate(examples):
        ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
        mask[row, : len(example.input_ids)] = 1
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)


@pytest.fixture(scope="module")
def trained_run(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> RunConfig:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("hardest") / "run"
    rows = memorisation_set()
    run_dir.mkdir()
    data = run_dir.parent / "snapshot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    try:
        train_adapter(tiny_base, rows, run_dir / "adapter")
    finally:
        torch.set_num_threads(threads)
    config = RunConfig(run_id=7, run_name="memorise", run_dir=str(run_dir), base_model=str(tiny_base),
                       data_path=str(data), settings=TrainSettings(torch_threads=1, max_length=256, validation_fraction=0.0))
    config.write()
    config.events_path.write_text(json.dumps({"type": "done", "step": 40, "time": 1.0}) + "\n")
    return config


def run_child(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "studio.train.hardest", *args], capture_output=True,
                          text=True, env=env, timeout=180)


def test_the_corrupted_sample_ranks_first(trained_run: RunConfig) -> None:
    done = run_child(str(trained_run.dir / "config.json"))
    assert done.returncode == 0, done.stderr

    rows = read_hardest(trained_run.dir / HARDEST_FILE)
    assert len(rows) == 12 and rows[0]["sample_id"] == CORRUPTED_ID
    assert rows[0]["loss"] > 2 * rows[1]["loss"]
    assert [r["loss"] for r in rows] == sorted((r["loss"] for r in rows), reverse=True)
    assert rows[0]["instruction"] == _INSTRUCTIONS[CORRUPTED_ID - 100][0] and rows[0]["tokens"] > 10

    printed = [ev.parse_line(line) for line in done.stdout.splitlines()]
    assert [e["type"] for e in printed if e][-1] == ev.HARDEST
    assert any(e and e["type"] == ev.PROGRESS and e["max_steps"] == 12 for e in printed)
    events = ev.read_all(trained_run.events_path)
    assert [e["type"] for e in events] == ["done", ev.HARDEST]            # progress stays on stdout
    assert events[-1]["count"] == 12 and events[-1]["path"] == str(trained_run.dir / HARDEST_FILE)
    assert ev.final_event(events)["type"] == "done"                       # the run still reads as done


def test_the_ranking_does_not_depend_on_batching(trained_run: RunConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.train import hardest

    monkeypatch.setattr(hardest, "emit", lambda event, events_path=None: None)
    batched = {r["sample_id"]: r["loss"] for r in read_hardest(hardest.run_hardest(trained_run))}
    monkeypatch.setattr(hardest, "BATCH_TOKENS", 1)                       # one sample per pass
    single = {r["sample_id"]: r["loss"] for r in read_hardest(hardest.run_hardest(trained_run))}
    assert single == pytest.approx(batched, abs=1e-4)
    assert max(single, key=single.get) == CORRUPTED_ID


def test_only_the_training_split_is_ranked(trained_run: RunConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A held-out sample was never trained on: its loss would rank it high for no fault of its own."""
    from studio.train import hardest
    from studio.train.job import split_records

    monkeypatch.setattr(hardest, "emit", lambda event, events_path=None: None)
    config = RunConfig.from_dict({**trained_run.to_dict(),
                                  "settings": {**trained_run.settings.to_dict(), "validation_fraction": 0.2}})
    records = hardest.read_snapshot(config.data_path)
    _train, held_out = split_records(records, config.settings)
    ranked = {r["sample_id"] for r in read_hardest(hardest.run_hardest(config))}
    assert len(held_out) == 2 and len(ranked) == 10
    assert ranked.isdisjoint(r.sample_id for r in held_out)


def test_adapter_defaults_to_the_newest_checkpoint(tmp_path: Path) -> None:
    for step in (5, 20, 10):
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
    assert find_adapter(tmp_path).name == "checkpoint-20"
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert find_adapter(tmp_path).name == "adapter"


def test_no_adapter_is_an_error_event_and_exit_1(tiny_base: Path, tmp_path: Path) -> None:
    data = tmp_path / "snapshot.jsonl"
    data.write_text(json.dumps(memorisation_set()[0]) + "\n")
    config = RunConfig(run_id=8, run_name="empty", run_dir=str(tmp_path / "run"), base_model=str(tiny_base),
                       data_path=str(data))
    config.write()
    done = run_child(str(config.dir / "config.json"))
    assert done.returncode == 1
    event = ev.parse_line(done.stdout.strip().splitlines()[-1])
    assert event["type"] == ev.ERROR and "no adapter/ and no checkpoint" in event["message"]
    assert not config.events_path.exists()             # a failed ranking does not mark the run failed


def test_after_a_run_of_the_training_job_the_corrupted_sample_ranks_first(tiny_base: Path, tmp_path: Path) -> None:
    """The whole path: ``python -m studio.train`` writes adapter/ and checkpoints; hardest reads both."""
    rows = memorisation_set()
    data = tmp_path / "snapshot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = TrainSettings().with_overrides({
        "max_steps": 40, "learning_rate": 3e-3, "lr_scheduler_type": "constant", "warmup_ratio": 0.0,
        "per_device_train_batch_size": 12, "gradient_accumulation_steps": 1, "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.0, "validation_fraction": 0.0, "eval_steps": 0, "sample_prompts": 0,
        "save_steps": 20, "torch_threads": 1, "max_length": 256})
    config = RunConfig(run_id=9, run_name="job", run_dir=str(tmp_path / "run"), base_model=str(tiny_base),
                       data_path=str(data), settings=settings)
    path = config.write()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    trained = subprocess.run([sys.executable, "-m", "studio.train", str(path)], capture_output=True, text=True,
                             env=env, timeout=300)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]

    assert run_child(str(path)).returncode == 0
    ranked = read_hardest(config.dir / HARDEST_FILE)
    assert len(ranked) == 12 and ranked[0]["sample_id"] == CORRUPTED_ID

    done = run_child(str(path), "--adapter", str(config.dir / "checkpoints" / "checkpoint-20"))
    assert done.returncode == 0, done.stdout
    event = ev.parse_line(done.stdout.strip().splitlines()[-1])
    assert event["type"] == ev.HARDEST and event["adapter"].endswith("checkpoint-20")
    assert [e["type"] for e in ev.read_all(config.events_path)][-2:] == [ev.HARDEST, ev.HARDEST]
