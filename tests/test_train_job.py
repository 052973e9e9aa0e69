"""The training job as a real child process on the tiny pre-trained Llama (tests/tiny_model.py).

Each run is a few tens of steps on one thread. The job is started exactly as the panel and the
CLI start it (``python -m studio.train CONFIG.json``), so these tests cover the events stream,
the run-dir files, Stop/Resume and the error path end to end.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.training.events import read_all
from studio.core.training.prompt_format import render_prompt, render_target
from studio.core.training.run_config import RunConfig
from studio.core.training.settings import TrainSettings
from studio.train.data import IGNORE_INDEX, SnapshotRecord, build_example

REPO_ROOT = Path(__file__).resolve().parents[1]

# Stanford Alpaca's train.py, PROMPT_DICT, verbatim.
STANFORD_PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
STANFORD_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)

# What the job must learn by heart: answers the tiny base model has never seen for these questions.
MEMORISE = [
    ("What does the farmer paint?", "", "The farmer paints the blue door."),
    ("Who reads the long letter?", "", "The old man reads the long letter."),
    ("Where is the bright lamp?", "", "The bright lamp is by the sea."),
    ("Describe the river.", "in the city", "The quiet river is green."),
]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _write_data(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("".join(json.dumps({"sample_id": i, "instruction": a, "input": b, "output": c}) + "\n"
                            for i, (a, b, c) in enumerate(rows)), encoding="utf-8")
    return path


def _config(tmp_path: Path, base: Path | str, *, name: str = "run", rows=MEMORISE, **overrides) -> RunConfig:
    settings = {"max_steps": 40, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
                "learning_rate": 3e-3, "lr_scheduler_type": "constant", "warmup_steps": 0, "warmup_ratio": 0.0,
                "lora_dropout": 0.0, "validation_fraction": 0.0, "eval_steps": 20, "save_steps": 20,
                "logging_steps": 1, "torch_threads": 1, "sample_prompts": 2, "sample_max_new_tokens": 16}
    settings.update(overrides)
    data = _write_data(tmp_path / f"{name}.jsonl", list(rows))
    config = RunConfig(run_id=1, run_name=name, run_dir=str(tmp_path / name), base_model=str(base),
                       data_path=str(data), snapshot_hash="abc123", snapshot_name="snap",
                       settings=TrainSettings().with_overrides(settings))
    config.dir.mkdir(parents=True, exist_ok=True)
    config.write()
    return config


def _run(config_path: Path, *, timeout: float = 240) -> tuple[int, list[dict], str]:
    proc = subprocess.run([sys.executable, "-m", "studio.train", str(config_path)], check=False,
                          env=_child_env(), capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, events, proc.stderr


def _of(events: list[dict], kind: str) -> list[dict]:
    return [event for event in events if event["type"] == kind]


# -- tokenization and the prompt text ------------------------------------------------------------

def test_alpaca_prompt_is_stanfords_text_byte_for_byte():
    assert render_prompt("alpaca", "Sort the list.", "3, 1, 2") == STANFORD_PROMPT_INPUT.format(
        instruction="Sort the list.", input="3, 1, 2")
    assert render_prompt("alpaca", "Name a color.") == STANFORD_PROMPT_NO_INPUT.format(instruction="Name a color.")
    assert render_target("alpaca", "Name a color.", "", "Blue.", eos_token="</s>") == "Blue.</s>"


@pytest.mark.parametrize("prompt_format", ["alpaca", "alpaca-lora", "chat"])
def test_prompt_tokens_are_masked_and_the_target_ends_in_eos(tiny_base: Path, prompt_format: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    record = SnapshotRecord(7, "Add the two numbers.", "2 and 3", "2 plus 3 is 5.")
    example = build_example(tokenizer, prompt_format, record, max_length=512)
    prompt = example.prompt_length
    assert prompt > 0 and example.labels[:prompt] == [IGNORE_INDEX] * prompt
    assert example.labels[prompt:] == example.input_ids[prompt:]
    assert example.input_ids[-1] == tokenizer.eos_token_id and example.labels[-1] == tokenizer.eos_token_id
    assert tokenizer.eos_token_id != tokenizer.pad_token_id
    assert tokenizer.decode(example.input_ids[prompt:-1]).strip() == "2 plus 3 is 5."
    assert example.input_ids.count(tokenizer.eos_token_id) == 1
    with_inputs = build_example(tokenizer, prompt_format, record, max_length=512, train_on_inputs=True)
    assert with_inputs.labels == with_inputs.input_ids
    cut = build_example(tokenizer, prompt_format, record, max_length=prompt + 2)
    assert cut.truncated and len(cut.input_ids) == prompt + 2


def test_a_template_that_writes_a_newline_after_eos_gets_one_eos(tiny_base: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ '\\n' }}{{ m['content'] }}"
                               "{{ eos_token }}{{ '\\n' }}{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{{ '\\n' }}{% endif %}")
    example = build_example(tokenizer, "chat", SnapshotRecord(1, "Name a color.", "", "Blue."), max_length=512)
    target = example.input_ids[example.prompt_length:]
    assert target[-1] == tokenizer.eos_token_id and target.count(tokenizer.eos_token_id) == 1
    assert tokenizer.decode(target[:-1]) == "Blue."


def test_padding_free_batches_keep_packed_samples_apart(tiny_base: Path):
    """transformers 5: position ids that restart at 0, and no attention mask, isolate packed samples."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base, attn_implementation="sdpa").eval()
    first, second = torch.tensor([[0, 5, 9, 14, 20]]), torch.tensor([[0, 33, 8, 2]])
    with torch.no_grad():
        alone = [model(input_ids=ids, use_cache=False).logits for ids in (first, second)]
        packed = model(input_ids=torch.cat([first, second], dim=1), use_cache=False,
                       position_ids=torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]])).logits
    torch.testing.assert_close(packed[:, :5], alone[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(packed[:, 5:], alone[1], atol=1e-4, rtol=1e-4)


# -- a whole run ---------------------------------------------------------------------------------

def test_the_job_memorises_and_leaves_an_adapter_plain_peft_loads(tiny_base: Path, tmp_path: Path):
    config = _config(tmp_path, tiny_base, max_steps=60, eval_steps=30, save_steps=30)
    code, events, stderr = _run(config.dir / "config.json")
    assert code == 0, stderr[-2000:]
    assert events[0]["type"] == "config" and events[-1]["type"] == "done"
    assert read_all(config.events_path) == events          # one stream: stdout and the file agree
    assert events[0]["config"]["settings"]["lora_r"] == 16 and events[0]["run_id"] == 1
    assert {"torch", "transformers", "peft", "trl"} <= set(events[0]["versions"])
    losses = [event["loss"] for event in _of(events, "log")]
    assert len(losses) == 60 and losses[-1] < losses[0] / 4
    assert all(event["tokens_per_s"] is None or event["tokens_per_s"] > 0 for event in _of(events, "log"))
    assert [event["step"] for event in _of(events, "progress")] == list(range(1, 61))
    assert [event["step"] for event in _of(events, "samples")] == [30, 60]
    assert [event["step"] for event in _of(events, "checkpoint")] == [30, 60]
    provenance = json.loads((config.dir / "provenance.json").read_text())
    assert provenance["snapshot_hash"] == "abc123" and provenance["seed"] == 42
    assert provenance["base_model"] == str(tiny_base) and "model.safetensors" in provenance["base_model_files"]
    import hashlib

    hashes = provenance["base_model_sha256"]
    assert hashes["model.safetensors"] == hashlib.sha256((tiny_base / "model.safetensors").read_bytes()).hexdigest()
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= set(hashes)
    assert not (config.dir / "job.pid").exists()
    adapter = config.dir / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    assert (config.dir / "tokenizer" / "tokenizer.json").exists()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(config.dir / "tokenizer")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), adapter).eval()
    for instruction, input, output in MEMORISE:
        ids = tokenizer(render_prompt("alpaca", instruction, input), return_tensors="pt")["input_ids"]
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=20,
                             do_sample=False, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        assert out[0, -1].item() == tokenizer.eos_token_id        # it learned to stop
        assert tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True) == output
    answers = {s["instruction"]: s["answer"] for s in _of(events, "samples")[-1]["samples"]}
    assert all(answers[i] == o for i, _, o in MEMORISE if i in answers)


def test_stop_then_resume_continues_the_steps_and_the_curve(tiny_base: Path, tmp_path: Path):
    straight = _config(tmp_path, tiny_base, name="straight", max_steps=24, save_steps=100, eval_steps=0)
    code, reference, stderr = _run(straight.dir / "config.json")
    assert code == 0, stderr[-2000:]

    config = _config(tmp_path, tiny_base, name="stopped", max_steps=24, save_steps=100, eval_steps=0)
    proc = subprocess.Popen([sys.executable, "-m", "studio.train", str(config.dir / "config.json")],
                            env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT)
    first: list[dict] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        first.append(event)
        if event["type"] == "progress" and event["step"] == 9:
            config.stop_path.write_text("stop\n")
        if event["type"] == "progress":
            assert (config.dir / "job.pid").read_text().strip() == str(proc.pid)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:] if proc.stderr else ""
    stopped = first[-1]
    assert stopped["type"] == "stopped" and 9 <= stopped["step"] < 24
    stop_step = stopped["step"]
    assert stopped["checkpoint"].endswith(f"checkpoint-{stop_step}") and Path(stopped["checkpoint"]).is_dir()
    assert (config.dir / "adapter" / "adapter_model.safetensors").exists()   # usable after a stop
    assert not (config.dir / "job.pid").exists()

    assert config.stop_path.exists()                    # left behind: the resumed job must not obey it
    # The base model is hashed once per run: the resumed leg reuses the first leg's hashes.
    provenance = json.loads((config.dir / "provenance.json").read_text())
    provenance["base_model_sha256"]["model.safetensors"] = "reused"
    (config.dir / "provenance.json").write_text(json.dumps(provenance))
    config.resume = True
    config.write()
    code, second, stderr = _run(config.dir / "config.json")
    assert code == 0, stderr[-2000:]
    assert second[0]["type"] == "config" and second[0]["resume_from"] == stopped["checkpoint"]
    assert second[0]["provenance"]["base_model_sha256"]["model.safetensors"] == "reused"
    assert second[-1]["type"] == "done" and second[-1]["step"] == 24
    assert not config.stop_path.exists()
    assert [e["step"] for e in _of(second, "progress")] == list(range(stop_step + 1, 25))

    history = read_all(config.events_path)               # both sessions, one file
    assert history == first + second
    steps = [event["step"] for event in _of(history, "log")]
    assert steps == list(range(1, 25))                   # no step twice, none missing
    # Same data order and state: the interrupted curve is the uninterrupted one.
    ours = [event["loss"] for event in _of(history, "log")]
    theirs = [event["loss"] for event in _of(reference, "log")]
    assert ours == pytest.approx(theirs, rel=1e-3, abs=1e-4)
    # The done event covers the whole run, both legs, not only the steps after the resume.
    assert second[-1]["legs"] == 2 and reference[-1]["legs"] == 1
    assert second[-1]["train_loss"] == pytest.approx(reference[-1]["train_loss"], rel=1e-3, abs=1e-4)
    assert second[-1]["runtime_s"] > first[-1]["time"] - first[0]["time"]
    # A done run has nothing left: resuming it again must not train a step past max_steps.
    code, third, stderr = _run(config.dir / "config.json")
    assert code == 1, stderr[-2000:]
    assert [e["type"] for e in third] == ["error"] and "nothing to resume" in third[0]["message"]
    assert "already at step 24 of 24" in third[0]["message"]
    assert not _of(third, "progress")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_and_the_stop_file_variable_also_stop_cleanly(tiny_base: Path, tmp_path: Path):
    config = _config(tmp_path, tiny_base, name="term", max_steps=200, save_steps=1000, eval_steps=0)
    proc = subprocess.Popen([sys.executable, "-m", "studio.train", str(config.dir / "config.json")],
                            env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=REPO_ROOT)
    assert proc.stdout is not None
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["type"] == "progress" and events[-1]["step"] == 3:
            proc.terminate()
    assert proc.wait(timeout=120) == 0
    assert events[-1]["type"] == "stopped" and 3 <= events[-1]["step"] < 200
    assert Path(events[-1]["checkpoint"]).is_dir()

    flag = tmp_path / "external.stop"
    flag.write_text("")
    other = _config(tmp_path, tiny_base, name="flag", max_steps=200, save_steps=1000, eval_steps=0)
    proc2 = subprocess.run([sys.executable, "-m", "studio.train", str(other.dir / "config.json")], check=False,
                           env={**_child_env(), "STUDIO_STOP_FILE": str(flag)}, capture_output=True, text=True,
                           timeout=120, cwd=REPO_ROOT)
    last = json.loads(proc2.stdout.splitlines()[-1])
    assert proc2.returncode == 0 and last["type"] == "stopped" and last["step"] == 1


def test_cuda_out_of_memory_names_the_settings_to_lower(tmp_path: Path, tiny_base: Path, monkeypatch, capsys):
    import torch

    from studio.train import job

    def run_out_of_memory(self):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(job.Job, "run", run_out_of_memory)
    config = _config(tmp_path, tiny_base, name="oom")
    assert job.main([str(config.dir / "config.json")]) == 1
    event = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert event["type"] == "error" and event["kind"] == "oom"
    for setting in ("per_device_train_batch_size", "max_length", "gradient_checkpointing", "load_in_4bit"):
        assert setting in event["hint"]
    assert read_all(config.events_path) == [event]


def test_a_held_out_split_gives_eval_losses_and_sample_answers(tiny_base: Path, tmp_path: Path):
    rows = [(f"Say the number {n}.", "", f"The number is {n}.") for n in range(12)]
    config = _config(tmp_path, tiny_base, rows=rows, max_steps=6, eval_steps=3, save_steps=100,
                     validation_fraction=0.25, sample_prompts=2, packing=False)
    code, events, stderr = _run(config.dir / "config.json")
    assert code == 0, stderr[-2000:]
    assert events[0]["train_samples"] == 9 and events[0]["eval_samples"] == 3
    assert [e["step"] for e in _of(events, "eval")] == [3, 6]
    assert all(e["eval_loss"] > 0 for e in _of(events, "eval"))
    samples = _of(events, "samples")
    assert [e["step"] for e in samples] == [3, 6] and len(samples[0]["samples"]) == 2
    held_out = {s["instruction"] for s in samples[0]["samples"]}
    assert held_out <= {r[0] for r in rows} and all(isinstance(s["answer"], str) for s in samples[0]["samples"])


# -- errors --------------------------------------------------------------------------------------

def test_a_missing_model_is_one_error_event_and_exit_1(tmp_path: Path):
    config = _config(tmp_path, tmp_path / "no-such-model")
    code, events, _ = _run(config.dir / "config.json")
    assert code == 1
    assert [e["type"] for e in events] == ["error"]
    assert "does not exist" in events[0]["message"] and str(tmp_path / "no-such-model") in events[0]["message"]
    assert events[0]["hint"] and events[0]["kind"] == "model"
    folder = tmp_path / "no-config"
    folder.mkdir()
    config = _config(tmp_path, folder, name="no-config-run")
    code, events, _ = _run(config.dir / "config.json")
    assert code == 1 and [e["type"] for e in events] == ["error"]
    assert events[0]["message"] == f"{folder} is not a model folder: it has no config.json"
    assert read_all(config.events_path) == events
    assert not (config.dir / "job.pid").exists()

    hub = _config(tmp_path, "someone/not-in-the-cache", name="hub")      # the child runs with HF_HUB_OFFLINE=1
    code, events, _ = _run(hub.dir / "config.json")
    assert code == 1 and [e["type"] for e in events] == ["error"]
    assert "offline" in events[0]["message"] and "someone/not-in-the-cache" in events[0]["message"]


def test_bad_configs_are_error_events_with_a_message(tmp_path: Path, tiny_base: Path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    code, events, stderr = _run(broken)
    assert code == 1 and [e["type"] for e in events] == ["error"]
    assert "not valid JSON" in events[0]["message"] and "Traceback" not in stderr

    config = _config(tmp_path, tiny_base, name="unknown")
    data = json.loads((config.dir / "config.json").read_text())
    data["settings"]["learning_rat"] = 1e-4
    (config.dir / "config.json").write_text(json.dumps(data))
    code, events, _ = _run(config.dir / "config.json")
    assert code == 1 and events[-1]["type"] == "error"
    assert "learning_rat" in events[-1]["message"] and "learning_rate" in events[-1]["message"]
    assert read_all(config.events_path) == events         # the run dir was known: the error is there too

    empty = _config(tmp_path, tiny_base, name="empty", rows=[])
    code, events, _ = _run(empty.dir / "config.json")
    assert code == 1 and events[-1]["type"] == "error" and "no samples" in events[-1]["message"]

    resume = _config(tmp_path, tiny_base, name="resume")
    resume.resume = True
    resume.write()
    code, events, _ = _run(resume.dir / "config.json")
    assert code == 1 and "nothing to resume" in events[-1]["message"]


def test_remote_code_is_refused_without_the_switch(tmp_path: Path, tiny_base: Path):
    model = tmp_path / "remote-model"
    shutil.copytree(tiny_base, model)
    config_json = json.loads((model / "config.json").read_text())
    config_json["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomModel",
                               "AutoConfig": "configuration_custom.CustomConfig"}
    config_json["model_type"] = "custom-remote"
    (model / "config.json").write_text(json.dumps(config_json))
    (model / "configuration_custom.py").write_text("from transformers import LlamaConfig\n"
                                                   "class CustomConfig(LlamaConfig):\n    model_type = 'custom-remote'\n")
    config = _config(tmp_path, model, name="remote")
    code, events, _ = _run(config.dir / "config.json")
    assert code == 1 and events[-1]["type"] == "error"
    assert events[-1]["kind"] == "remote_code" and "trust_remote_code" in events[-1]["hint"]


# -- distributed -----------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun is not installed")
def test_two_process_torchrun_run_gives_one_events_stream(tiny_base: Path, tmp_path: Path):
    """Rank 0 writes the events; Stop is agreed by both ranks; Resume under torchrun continues the steps."""
    config = _config(tmp_path, tiny_base, name="ddp", max_steps=8, save_steps=4, eval_steps=4,
                     per_device_train_batch_size=2)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(29500 + os.getpid() % 1000), "-m", "studio.train",
               str(config.dir / "config.json")]
    proc = subprocess.Popen(command, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO_ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "progress" and event["step"] == 2:
            config.stop_path.write_text("stop\n")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    first = read_all(config.events_path)
    assert first[-1]["type"] == "stopped" and 2 <= first[-1]["step"] < 8
    assert first[0]["provenance"]["world_size"] == 2

    config.resume = True
    config.write()
    second = subprocess.run(command, env=_child_env(), capture_output=True, text=True, timeout=300,
                            cwd=REPO_ROOT, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    events = read_all(config.events_path)
    kinds = [e["type"] for e in events]
    assert kinds.count("config") == 2 and kinds.count("done") == 1 and "error" not in kinds
    assert [e["step"] for e in _of(events, "progress")] == list(range(1, 9))   # one stream, no step twice
    assert [e["step"] for e in _of(events, "log")] == list(range(1, 9))
    assert 8 in [e["step"] for e in _of(events, "checkpoint")]
    assert (config.dir / "adapter" / "adapter_model.safetensors").exists()


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate is not installed")
def test_two_process_accelerate_launch_run_gives_one_events_stream(tiny_base: Path, tmp_path: Path):
    """The same command under `accelerate launch` (STACK.md: on the CPU only --multi_gpu starts two
    processes; a MULTI_CPU config silently runs one): rank 0 alone writes, the run completes."""
    config = _config(tmp_path, tiny_base, name="accel", max_steps=4, save_steps=4, eval_steps=0,
                     per_device_train_batch_size=2)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(30500 + os.getpid() % 1000), "-m", "studio.train",
               str(config.dir / "config.json")]
    proc = subprocess.run(command, env=_child_env(), capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_all(config.events_path)
    kinds = [e["type"] for e in events]
    assert kinds.count("config") == 1 and kinds.count("done") == 1 and "error" not in kinds
    assert events[0]["provenance"]["world_size"] == 2
    assert [e["step"] for e in _of(events, "log")] == [1, 2, 3, 4]         # one stream, not two
    stdout_events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["type"] for e in stdout_events].count("config") == 1


def test_build_trainer_is_the_jobs_trainer_before_train(tiny_base: Path, tmp_path: Path):
    """Benchmarks time the job's own trainer in-process: padding-free batches carry no padding."""
    import torch

    from studio.train.events_out import EventWriter
    from studio.train.job import build_trainer

    torch.set_num_threads(1)
    config = _config(tmp_path, tiny_base, name="built", max_steps=2)
    sink = EventWriter(stream=__import__("io").StringIO(), rank=0)
    trainer = build_trainer(config, writer=sink)
    assert trainer.args.ddp_find_unused_parameters is False     # LoRA: even torchrun with one process
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch      # samples end to end
    assert (batch["input_ids"] != trainer.processing_class.pad_token_id).all()
    assert int((batch["position_ids"] == 0).sum()) == 4                      # four samples, own positions
    trainer.train()
    assert trainer.state.global_step == 2
    events = [json.loads(line) for line in sink.stream.getvalue().splitlines()]
    assert events[0]["type"] == "config" and [e["step"] for e in events if e["type"] == "log"] == [1, 2]


def test_cpu_loss_on_learned_positions_equals_the_models_own_loss(tiny_base: Path, tmp_path: Path):
    """The CPU trainer asks the LM head only for positions whose next token is learned; the loss
    (and its gradient) must equal the model's full-logits loss on the same labels."""
    import torch
    from transformers import Trainer

    from studio.train.events_out import EventWriter
    from studio.train.job import build_trainer

    torch.set_num_threads(1)
    for packing in (True, False):
        config = _config(tmp_path, tiny_base, name=f"loss-{packing}", max_steps=1, packing=packing)
        trainer = build_trainer(config, writer=EventWriter(stream=__import__("io").StringIO(), rank=0))
        batch = next(iter(trainer.get_train_dataloader()))
        learned = int((batch["labels"][..., 1:] != -100).sum())
        assert 0 < learned < batch["labels"][..., 1:].numel()        # the prompt is masked: fewer logits
        # LoRA's B starts at zero, so A's gradient is zero: compare B's
        lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n][:1]
        ours = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=learned)
        (grad_ours,) = torch.autograd.grad(ours, lora_b)
        full = Trainer.compute_loss(trainer, trainer.model, dict(batch), num_items_in_batch=learned)
        (grad_full,) = torch.autograd.grad(full, lora_b)
        assert grad_full.abs().sum() > 0
        assert ours.detach().item() == pytest.approx(full.detach().item(), rel=1e-5)
        assert torch.allclose(grad_ours, grad_full, rtol=1e-4, atol=1e-7)
