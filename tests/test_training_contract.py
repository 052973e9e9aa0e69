"""The torch-free half of training: settings and presets, prompt formats, run configs, event tailing."""
from __future__ import annotations

import json

import pytest

from studio.core.training import events
from studio.core.training.prompt_format import PromptFormatError, render_prompt, render_target, stop_strings
from studio.core.training.run_config import RunConfig, RunConfigError
from studio.core.training.settings import (
    PRESETS, SettingsError, TrainSettings, help_by_name, parse_assignments, preset_settings, setting_groups,
)

# Stanford Alpaca train.py's PROMPT_DICT, written out here as the expected literal.
STANFORD_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
STANFORD_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)


def test_alpaca_format_is_stanfords_text_byte_for_byte():
    assert render_prompt("alpaca", "Name a colour.", "") == STANFORD_NO_INPUT.format(instruction="Name a colour.")
    assert render_prompt("alpaca", "Add them.", "2 and 3") == STANFORD_INPUT.format(instruction="Add them.", input="2 and 3")
    assert render_target("alpaca", "Add them.", "2 and 3", "5", eos_token="</s>") == "5</s>"


def test_alpaca_lora_format_has_a_newline_after_response():
    assert render_prompt("alpaca-lora", "Name a colour.") == STANFORD_NO_INPUT.format(instruction="Name a colour.") + "\n"
    assert "\n### Instruction:" in stop_strings("alpaca-lora", eos_token="</s>")


class _ChatTokenizer:
    eos_token = "<|end|>"
    chat_template = "fake"

    def apply_chat_template(self, conversation, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in conversation)
        return text + ("<|assistant|>" if add_generation_prompt else "")


def test_chat_format_uses_the_tokenizers_template_and_ends_the_target_with_eos():
    tok = _ChatTokenizer()
    prompt = render_prompt("chat", "Add them.", "2 and 3", tokenizer=tok)
    assert prompt == "<|user|>Add them.\n\n2 and 3<|end|><|assistant|>"
    # The fake template writes the assistant turn as "<|assistant|>…", so the split is exact.
    assert render_target("chat", "Add them.", "2 and 3", "5", eos_token="<|end|>", tokenizer=tok) == "5<|end|>"


def test_chat_format_without_a_template_is_a_clear_error():
    class Plain:
        eos_token = "</s>"
        chat_template = None

    with pytest.raises(PromptFormatError, match="chat template"):
        render_prompt("chat", "x", tokenizer=Plain())


def test_every_setting_has_help_and_a_group():
    helps = help_by_name()
    assert all(text.strip() for text in helps.values())
    assert sum(len(names) for names in setting_groups().values()) == len(helps)


def test_presets_match_their_recipes():
    alpaca = preset_settings("alpaca")
    assert (alpaca.num_train_epochs, alpaca.lr_scheduler_type, alpaca.warmup_ratio, alpaca.max_length) == (3.0, "cosine", 0.03, 512)
    lora = preset_settings("alpaca-lora")
    assert (lora.lora_r, lora.lora_alpha, lora.lora_dropout, lora.learning_rate, lora.max_length) == (8, 16, 0.05, 3e-4, 256)
    assert lora.lora_targets() == ["q_proj", "v_proj"]
    assert set(PRESETS) == {"alpaca", "alpaca-lora"}


def test_set_assignments_are_typed_and_unknown_keys_list_the_known_ones():
    assert parse_assignments(["learning_rate=1e-4", "packing=off", "lora_r=4", "target_modules=q_proj,k_proj"]) == {
        "learning_rate": 1e-4, "packing": False, "lora_r": 4, "target_modules": "q_proj,k_proj"}
    assert TrainSettings(target_modules="q_proj,k_proj").lora_targets() == ["q_proj", "k_proj"]
    with pytest.raises(SettingsError, match="known settings: .*learning_rate"):
        parse_assignments(["lr=1"])
    with pytest.raises(SettingsError, match="lora_r must be a whole number"):
        parse_assignments(["lora_r=big"])
    with pytest.raises(SettingsError, match="prompt_format must be one of"):
        TrainSettings().with_overrides({"prompt_format": "vicuna"})
    with pytest.raises(SettingsError, match="at least"):
        TrainSettings().with_overrides({"learning_rate": -1})


def test_run_config_round_trips_and_saves_the_help(tmp_path):
    config = RunConfig(run_id=3, run_name="first", run_dir=str(tmp_path), base_model="m", data_path="d.jsonl",
                       settings=preset_settings("alpaca-lora"))
    path = config.write()
    saved = json.loads(path.read_text())
    assert saved["help"]["lora_r"].startswith("LoRA rank")
    again = RunConfig.read(path)
    assert again == config


def test_run_config_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"run_id": 1,\n "run_dir": }')
    with pytest.raises(RunConfigError, match=r"config.json: line 2"):
        RunConfig.read(bad)
    bad.write_text(json.dumps({"run_id": 1}))
    with pytest.raises(RunConfigError, match="lacks run_dir, base_model, data_path"):
        RunConfig.read(bad)
    bad.write_text(json.dumps({"run_id": 1, "run_dir": "r", "base_model": "m", "data_path": "d",
                               "settings": {"learning_rat": 1}}))
    with pytest.raises(SettingsError, match="unknown training setting 'learning_rat'"):
        RunConfig.read(bad)


def test_event_tail_reads_only_whole_new_lines_from_its_offset(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = events.EventTail(path)
    assert tail.read_new() == []                      # no file yet
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"type": "log", "step": 1}) + "\n")
        handle.write("not json\n")                    # a stray print is skipped
        handle.write('{"type": "log", "st')           # half written
    assert [e["step"] for e in tail.read_new()] == [1]
    saved = tail.offset
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('ep": 2}\n')
    resumed = events.EventTail(path, offset=saved)    # a reader re-attached from a saved offset
    assert [e["step"] for e in resumed.read_new()] == [2]
    assert resumed.read_new() == []
    assert len(events.read_all(path)) == 2
    assert events.final_event([{"type": "log"}, {"type": "stopped", "step": 2}, {"type": "log"}])["type"] == "stopped"
