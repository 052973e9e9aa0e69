"""The pre-flight check (a child process reading only the tokenizer and config.json) and the estimates."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.training.estimates import estimate, lora_param_count, param_count
from studio.core.training.run_config import RunConfig
from studio.core.training.settings import TrainSettings, preset_settings
from studio.core.wording import format_duration
from studio.train.data import SnapshotRecord, build_example
from studio.train.preflight import (
    format_text,
    has_errors,
    length_report,
    run_preflight,
    token_lengths,
)

REPO = Path(__file__).resolve().parents[1]
CPU = ("cpu", None)

LLAMA2_7B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
             "intermediate_size": 11008, "vocab_size": 32000, "tie_word_embeddings": False}
TINYLLAMA = {"hidden_size": 2048, "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
             "intermediate_size": 5632, "vocab_size": 32000, "tie_word_embeddings": False}
SMOLLM2_135M = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True}

RECORDS = [
    {"sample_id": 11, "instruction": "Name a color.", "input": "", "output": "Blue is a color."},
    {"sample_id": 12, "instruction": "Add the two numbers.", "input": "2 and 3", "output": "2 plus 3 is 5."},
    {"sample_id": 13, "instruction": "Count to five.", "input": "",
     "output": "One, two, three, four, five. " * 12},
]


def write_config(tmp_path: Path, base_model: Path | str, records: list[dict] = RECORDS, **settings) -> Path:
    data = tmp_path / "snapshot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    config = RunConfig(run_id=1, run_name="t", run_dir=str(tmp_path / "run"), base_model=str(base_model),
                       data_path=str(data), settings=TrainSettings().with_overrides(settings))
    return config.write(tmp_path / "config.json")


def codes(report: dict, level: str) -> set[str]:
    return {c["code"] for c in report["checks"] if c["level"] == level}


def model_copy(tiny_base: Path, tmp_path: Path, *, chat_template: bool = True, tokenizer: dict | None = None,
               config: dict | None = None, generation: dict | None = None, generation_file: bool = True,
               name: str = "model-copy") -> Path:
    """The tiny model's tokenizer and configs (no weights: pre-flight never needs them), edited."""
    target = tmp_path / name
    target.mkdir()
    for file in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja"):
        if (file != "chat_template.jinja" or chat_template) and (file != "generation_config.json" or generation_file):
            shutil.copyfile(tiny_base / file, target / file)
    for file, changes in (("tokenizer_config.json", tokenizer), ("config.json", config),
                          ("generation_config.json", generation)):
        if changes:
            data = json.loads((target / file).read_text())
            data.update(changes)
            (target / file).write_text(json.dumps(data))
    return target


# -- estimates -------------------------------------------------------------------------------------

def test_param_count_matches_published_sizes() -> None:
    assert param_count(LLAMA2_7B) == 6_738_415_616
    assert param_count(TINYLLAMA) == 1_100_048_384
    assert param_count(SMOLLM2_135M) == 134_515_008       # tied embeddings are counted once
    assert lora_param_count(LLAMA2_7B, preset_settings("alpaca-lora")) == 4_194_304   # alpaca-lora's r 8 on q,v


def test_param_count_and_lora_count_match_the_real_model(tiny_base: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = json.loads((tiny_base / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    assert param_count(config) == sum(p.numel() for p in model.parameters())
    settings = TrainSettings(lora_r=4, target_modules="all-linear")
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert lora_param_count(config, settings) == trainable


def test_estimates_move_the_right_way_and_say_how() -> None:
    base = TrainSettings()
    plain = estimate(LLAMA2_7B, base, n_samples=52_000, mean_tokens=132)
    qlora = estimate(LLAMA2_7B, base.with_overrides({"load_in_4bit": True}), n_samples=52_000, mean_tokens=132)
    checkpointed = estimate(LLAMA2_7B, base.with_overrides({"gradient_checkpointing": True}),
                            n_samples=52_000, mean_tokens=132)
    padded = estimate(LLAMA2_7B, base.with_overrides({"packing": False}), n_samples=52_000, mean_tokens=132)
    two_gpus = estimate(LLAMA2_7B, base, n_samples=52_000, mean_tokens=132, gpus=2)
    cpu = estimate(LLAMA2_7B, base, n_samples=52_000, mean_tokens=132, device="cpu")

    assert 12.0 < plain["memory"]["weights_gb"] < 13.0                   # 6.7B × 2 bytes
    assert qlora["memory"]["weights_gb"] < plain["memory"]["weights_gb"] / 3
    assert checkpointed["memory"]["activations_gb"] < plain["memory"]["activations_gb"] / 4
    assert checkpointed["time"]["seconds"] > plain["time"]["seconds"]      # the recomputed forward
    assert padded["time"]["seconds"] > 1.5 * plain["time"]["seconds"]
    assert two_gpus["time"]["seconds"] < plain["time"]["seconds"] and two_gpus["time"]["steps"] < plain["time"]["steps"]
    assert cpu["memory"]["weights_gb"] == pytest.approx(2 * plain["memory"]["weights_gb"])   # fp32 on the CPU
    assert cpu["time"]["seconds"] > 100 * plain["time"]["seconds"]
    assert plain["time"]["train_samples"] == 52_000 - 200                  # the capped validation split
    assert plain["memory"]["total_gb"] == pytest.approx(sum(
        plain["memory"][k] for k in ("weights_gb", "lora_and_optimizer_gb", "activations_gb", "overhead_gb")))
    for figure in ("weights", "lora_and_optimizer", "activations", "overhead", "total"):
        assert plain["memory"]["method"][figure]
    assert "assumed sustained 40 TFLOP/s" in plain["time"]["method"]
    assert format_duration(45) == "45 s" and format_duration(3 * 3600 + 20 * 60) == "3 h 20 min"


def test_an_unknown_architecture_says_why_it_has_no_estimate() -> None:
    with pytest.raises(ValueError, match="lacks hidden_size"):
        param_count({"model_type": "mystery"})


# -- the report ------------------------------------------------------------------------------------

def test_length_report_counts_what_max_length_cuts() -> None:
    report = length_report([10, 20, 30, 40, 500], max_length=35)
    assert report["cut"] == 2 and report["max"] == 500 and report["p50"] == 30
    assert sum(report["counts"]) == 5 and len(report["edges"]) == len(report["counts"]) + 1
    assert report["edges"][1] - report["edges"][0] == 50          # 1-2-5 bin widths


def test_child_prints_the_sample_token_by_token_with_the_loss_mask(tiny_base: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny_base, max_length=64)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "studio.train.preflight", str(config), "--json", "--sample", "1"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    sample = report["sample"]
    assert sample["sample_id"] == 12
    assert sample["prompt_text"].endswith("### Input:\n2 and 3\n\n### Response:")    # Stanford's, no newline
    assert sample["target_text"] == "2 plus 3 is 5.</s>"
    tokens = sample["tokens"]
    masked = [t["masked"] for t in tokens]
    assert masked == [True] * sample["prompt_tokens"] + [False] * (len(tokens) - sample["prompt_tokens"])
    assert tokens[0]["text"] == "<s>" and tokens[-1]["text"] == "</s>" and not tokens[-1]["masked"]
    assert "".join(t["text"] for t in tokens[1:sample["prompt_tokens"]]) == sample["prompt_text"]
    assert "".join(t["text"] for t in tokens[sample["prompt_tokens"]:]) == sample["target_text"]
    assert sample["eos_ok"]

    lengths = report["lengths"]
    assert lengths["samples"] == 3 and lengths["cut"] == 1 and lengths["max"] > 64   # the long count
    assert "eos_cut" in codes(report, "warning") and "eos_target" in codes(report, "ok")
    assert "chat_template" in codes(report, "ok")              # a base model's template, a text format
    assert report["estimates"]["device"] == "cpu" and "device" in codes(report, "warning")
    assert report["model"]["architecture"] == "LlamaForCausalLM"

    text = subprocess.run([sys.executable, "-m", "studio.train.preflight", str(config)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert text.returncode == 0 and "[### Response:]" not in text.stdout   # tokens, not one block
    assert "|</s>|" in text.stdout and "max_length 64 cuts 1" in text.stdout


def test_chat_format_uses_the_models_template(tiny_base: Path, tmp_path: Path) -> None:
    report = run_preflight(RunConfig.read(write_config(tmp_path, tiny_base, prompt_format="chat")), device=CPU)
    assert not has_errors(report)
    assert "chat_template" in codes(report, "ok")
    assert report["sample"]["prompt_text"].endswith("<|assistant|>\n")
    assert report["sample"]["tokens"][-1]["text"] == "</s>"


def test_chat_format_without_a_template_is_an_error_and_exit_1(tiny_base: Path, tmp_path: Path) -> None:
    folder = model_copy(tiny_base, tmp_path, chat_template=False)
    config = write_config(tmp_path, folder, prompt_format="chat")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "studio.train.preflight", str(config), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert "chat_template" in codes(report, "error") and report["sample"] is None
    # the same tokenizer with a text format is a plain base model: no template warning
    text_report = run_preflight(RunConfig.read(write_config(tmp_path, folder)), device=CPU)
    assert "chat_template" in codes(text_report, "ok") and not has_errors(text_report)


def message_of(report: dict, code: str) -> str:
    return next(c["message"] for c in report["checks"] if c["code"] == code)


def test_an_eos_that_generate_does_not_stop_on_is_an_error(tiny_base: Path, tmp_path: Path) -> None:
    # QA's repro: eos_token "<pad>" (id 2) in tokenizer_config.json, eos_token_id 1 in both model configs
    folder = model_copy(tiny_base, tmp_path, tokenizer={"eos_token": "<pad>"})
    report = run_preflight(RunConfig.read(write_config(tmp_path, folder)), device=CPU)
    assert "eos_config" in codes(report, "error") and has_errors(report)
    message = message_of(report, "eos_config")
    assert message.startswith("the tokenizer's EOS is '<pad>' (id 2) but config.json says 1 and "
                              "generation_config.json says 1")
    assert "generate() stops only on 1" in message
    assert "set eos_token in tokenizer_config.json to '</s>' (id 1)" in message
    assert message.endswith("or set eos_token_id to 2 in config.json and generation_config.json")
    assert report["sample"] is not None and "eos_target" in codes(report, "ok")    # the rest still shown
    assert "eos_config" in codes(run_preflight(RunConfig.read(write_config(tmp_path, tiny_base)), device=CPU), "ok")


@pytest.mark.parametrize("generation, config, level, named", [
    ({"eos_token_id": [1, 2]}, None, "warning", "config.json says 1"),        # generate() reads the agreeing list
    (None, {"eos_token_id": [2, 1]}, "error", "but generation_config.json says 1:"),   # the file generate() reads
    ("absent", None, "error", "but config.json says 1:"),                      # generate() falls back to config.json
    ("absent", {"eos_token_id": [0, 2]}, "ok", None),
    ({"eos_token_id": None}, {"eos_token_id": 2}, "warning", "generation_config.json names no eos_token_id, and "
     "generate() reads it rather than config.json: generate() stops only at max_new_tokens"),
    ("absent", {"eos_token_id": None}, "warning", "config.json names no eos_token_id (and the model has no "
     "generation_config.json)"),
])
def test_the_eos_files_that_disagree_are_named(tiny_base: Path, tmp_path: Path, generation, config, level,
                                               named) -> None:
    folder = model_copy(tiny_base, tmp_path, tokenizer={"eos_token": "<pad>"}, config=config,
                        generation=None if generation == "absent" else generation,
                        generation_file=generation != "absent")
    report = run_preflight(RunConfig.read(write_config(tmp_path, folder)), device=CPU)
    assert "eos_config" in codes(report, level)
    if named:
        assert named in message_of(report, "eos_config")
    if level == "warning" and "names no" not in named:
        assert "generate() reads" in message_of(report, "eos_config")


def test_a_text_format_warns_only_for_a_template_that_looks_instruct(tiny_base: Path, tmp_path: Path) -> None:
    base = run_preflight(RunConfig.read(write_config(tmp_path, tiny_base)), device=CPU)
    assert "chat_template" in codes(base, "ok") and "fine for a base model" in message_of(base, "chat_template")

    named = model_copy(tiny_base, tmp_path, name="tiny-llama-Instruct")
    report = run_preflight(RunConfig.read(write_config(tmp_path, named)), device=CPU)
    message = message_of(report, "chat_template")
    assert "chat_template" in codes(report, "warning")
    assert message.startswith("this tokenizer has a chat template and its name 'tiny-llama-Instruct' says it is "
                              "instruction-tuned, so it looks like an instruct model")
    assert "the chosen format is 'alpaca'" in message

    turn_end = model_copy(tiny_base, tmp_path, name="tiny-llama")          # the template writes '</s>' out
    template = turn_end / "chat_template.jinja"
    template.write_text(template.read_text().replace("{{ eos_token }}", "</s>"))
    report = run_preflight(RunConfig.read(write_config(tmp_path, turn_end)), device=CPU)
    assert "chat_template" in codes(report, "warning")
    assert "its template ends turns with its EOS '</s>'" in message_of(report, "chat_template")


def test_the_eos_check_says_how_many_samples_it_built(tiny_base: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.train import preflight

    config = RunConfig.read(write_config(tmp_path, tiny_base))
    assert "every target of the 3 samples, built" in message_of(run_preflight(config, device=CPU), "eos_target")
    monkeypatch.setattr(preflight, "EOS_CHECKED", 2)
    report = run_preflight(config, device=CPU)
    assert "every target of the 2 samples checked (of 3), built" in message_of(report, "eos_target")
    assert report["lengths"]["samples"] == 3                          # eos_cut counts every sample


def test_eos_as_pad_is_flagged_only_when_batches_are_padded(tiny_base: Path, tmp_path: Path) -> None:
    folder = model_copy(tiny_base, tmp_path, tokenizer={"pad_token": "</s>"})
    padded = run_preflight(RunConfig.read(write_config(tmp_path, folder, packing=False)), device=CPU)
    assert "eos_pad" in codes(padded, "warning")
    assert "never learns to stop" in next(c["message"] for c in padded["checks"] if c["code"] == "eos_pad")
    packed = run_preflight(RunConfig.read(write_config(tmp_path, folder, packing=True)), device=CPU)
    assert "eos_pad" in codes(packed, "ok")


def test_no_pad_token_means_padding_with_eos(tiny_base: Path, tmp_path: Path) -> None:
    folder = model_copy(tiny_base, tmp_path, tokenizer={"pad_token": None})
    report = run_preflight(RunConfig.read(write_config(tmp_path, folder, packing=False)), device=CPU)
    message = next(c["message"] for c in report["checks"] if c["code"] == "eos_pad")
    assert "eos_pad" in codes(report, "warning") and "no pad token" in message
    assert report["pad_id"] is None and report["eos_id"] == 1


def test_a_prompt_longer_than_max_length_leaves_no_response(tiny_base: Path, tmp_path: Path) -> None:
    records = [*RECORDS, {"sample_id": 14, "instruction": "Name a color. " * 30, "input": "", "output": "Red."}]
    report = run_preflight(RunConfig.read(write_config(tmp_path, tiny_base, records, max_length=64)), device=CPU)
    assert "no_response" in codes(report, "warning")
    assert next(c["message"] for c in report["checks"] if c["code"] == "no_response").startswith("1 sample with a prompt")


def test_remote_code_needed_but_off_is_an_error(tiny_base: Path, tmp_path: Path) -> None:
    folder = model_copy(tiny_base, tmp_path, config={"auto_map": {"AutoModelForCausalLM": "modeling.Custom"}})
    report = run_preflight(RunConfig.read(write_config(tmp_path, folder)), device=CPU)
    message = next(c["message"] for c in report["checks"] if c["code"] == "remote_code")
    assert has_errors(report) and "trust_remote_code is off" in message


def test_a_missing_model_or_bad_config_is_an_error_report(tmp_path: Path) -> None:
    report = run_preflight(RunConfig.read(write_config(tmp_path, tmp_path / "no-model")), device=CPU)
    assert has_errors(report) and "base_model" in codes(report, "error")
    assert "Checks:" in format_text(report)
    a_file = tmp_path / "weights.safetensors"                 # what train start says, not "no such folder"
    a_file.write_bytes(b"x")
    report = run_preflight(RunConfig.read(write_config(tmp_path, a_file)), device=CPU)
    assert message_of(report, "base_model") == f"{a_file}: the base model must be a folder (with config.json), not a file"

    offline = {**os.environ, "PYTHONPATH": str(REPO), "HF_ENDPOINT": "http://127.0.0.1:9",
               "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    done = subprocess.run([sys.executable, "-m", "studio.train.preflight",
                           str(write_config(tmp_path, "org/not-downloaded")), "--json"],
                          capture_output=True, text=True, env=offline, timeout=120)
    assert done.returncode == 1
    message = json.loads(done.stdout)["checks"][0]["message"]
    assert message.startswith("base model org/not-downloaded: cannot reach the Hugging Face Hub") and "\n" not in message

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "studio.train.preflight", str(bad), "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert json.loads(done.stdout)["checks"][0]["code"] == "config"


def test_gpu_only_settings_on_the_cpu_are_errors(tiny_base: Path, tmp_path: Path) -> None:
    report = run_preflight(RunConfig.read(write_config(tmp_path, tiny_base, precision="bf16", load_in_4bit=True)),
                           device=CPU)
    assert {"precision", "qlora"} <= codes(report, "error")


def test_a_folder_without_weights_is_told_so(tiny_base: Path, tmp_path: Path) -> None:
    report = run_preflight(RunConfig.read(write_config(tmp_path, model_copy(tiny_base, tmp_path))), device=CPU)
    assert "weights" in codes(report, "warning") and "safetensors" not in codes(report, "warning")
    whole = run_preflight(RunConfig.read(write_config(tmp_path, tiny_base)), device=CPU)
    assert not {"weights", "safetensors"} & codes(whole, "warning")


def test_memory_over_the_gpu_names_the_settings_to_lower(tiny_base: Path, tmp_path: Path) -> None:
    report = run_preflight(RunConfig.read(write_config(tmp_path, tiny_base)), device=("cuda", 0.01))
    message = next(c["message"] for c in report["checks"] if c["code"] == "memory")
    assert "per_device_train_batch_size" in message and "gradient_checkpointing" in message


def test_the_alpaca_sample_shows_real_lengths(tiny_base: Path, tmp_path: Path, shared_data: Path) -> None:
    rows = json.loads((shared_data / "alpaca_sample_2000.json").read_text())[:1200]
    records = [{"sample_id": i, **row} for i, row in enumerate(rows)]
    report = run_preflight(RunConfig.read(write_config(tmp_path, tiny_base, records, max_length=256)), device=CPU)
    lengths = report["lengths"]
    assert lengths["samples"] == 1200 and sum(lengths["counts"]) == 1200
    assert 0 < lengths["cut"] < 1200 and lengths["p50"] < lengths["p95"] <= lengths["max"]
    assert f"{lengths['cut']:,} of 1,200 samples are longer than max_length 256" in message_of(report, "eos_cut")
    assert "every target of the 256 samples checked (of 1,200)" in message_of(report, "eos_target")


# A ChatML-like template that writes a newline after each turn's EOS.
NEWLINE_AFTER_EOS = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
                     "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.mark.parametrize("prompt_format", ["alpaca", "alpaca-lora", "chat", "chat-newline"])
def test_batched_lengths_are_the_trainers_lengths(tiny_base: Path, shared_data: Path, prompt_format: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    if prompt_format == "chat-newline":
        tokenizer.chat_template, prompt_format = NEWLINE_AFTER_EOS, "chat"
    rows = json.loads((shared_data / "alpaca_sample_2000.json").read_text())[:200]
    records = [SnapshotRecord(i, r["instruction"], r.get("input", ""), r["output"]) for i, r in enumerate(rows)]
    full, prompts = token_lengths(tokenizer, prompt_format, records, chunk=64)
    exact = [build_example(tokenizer, prompt_format, r, max_length=1 << 30) for r in records]
    assert full == [len(e.input_ids) for e in exact]
    assert prompts == [e.prompt_length for e in exact]


def _saved_for_backward_bytes(config: dict, *, batch: int, seq: int, checkpointing: bool) -> int:
    """Bytes of the tensors autograd keeps for backward in one LoRA forward (weights excluded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(LlamaConfig(**config, attn_implementation="sdpa")),
                           LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear"))
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    ids = torch.randint(0, config["vocab_size"], (batch, seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, labels=ids)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(size for pointer, size in storages.items() if pointer not in weights)


def test_the_activation_estimate_matches_what_autograd_keeps() -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = {"vocab_size": 4000, "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 512,
              "tie_word_embeddings": False}
    try:
        plain = _saved_for_backward_bytes(config, batch=2, seq=192, checkpointing=False)
        checkpointed = _saved_for_backward_bytes(config, batch=2, seq=192, checkpointing=True)
    finally:
        torch.set_num_threads(threads)
    settings = TrainSettings(per_device_train_batch_size=2, lora_r=8, precision="fp32")
    estimated = estimate(config, settings, n_samples=100, mean_tokens=192, device="cpu")
    estimated_gc = estimate(config, settings.with_overrides({"gradient_checkpointing": True}), n_samples=100,
                            mean_tokens=192, device="cpu")
    gib = 1024 ** 3
    assert 0.7 < estimated["memory"]["activations_gb"] * gib / plain < 1.3
    # with checkpointing the forward keeps only block inputs; the estimate adds the recomputed block's peak
    assert checkpointed < estimated_gc["memory"]["activations_gb"] * gib < estimated["memory"]["activations_gb"] * gib
