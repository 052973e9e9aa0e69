"""From snapshot records to token ids and labels, the one way training and the pre-flight check do it.

Prompt and target are tokenized separately and concatenated, so the loss mask falls exactly
on the boundary whatever the tokenizer merges; the EOS at the end of the target is appended
as its id, so it is present even when the tokenizer would split or drop the EOS string.
Prompt tokens get label -100 unless ``train_on_inputs``. A sample longer than ``max_length``
is cut at the end (its EOS is then lost, which the pre-flight check counts).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.training.prompt_format import load_format, render_prompt, render_target

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SnapshotRecord:
    sample_id: int | None
    instruction: str
    input: str
    output: str


@dataclass
class Example:
    sample_id: int | None
    input_ids: list[int]
    labels: list[int]
    prompt_length: int       # tokens before the target starts
    truncated: bool          # cut at max_length (EOS lost)

    @property
    def completion_mask(self) -> list[int]:
        return [0 if label == IGNORE_INDEX else 1 for label in self.labels]


def read_snapshot(path: Path | str) -> list[SnapshotRecord]:
    """The records of a snapshot JSONL file; a bad line raises ValueError naming file and line."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                records.append(SnapshotRecord(data.get("sample_id"), data["instruction"],
                                              data.get("input", "") or "", data["output"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: line {number}: not a snapshot record ({exc})") from None
    return records


def eos_token(tokenizer: Any) -> str:
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has no EOS token, so the model could never learn to stop")
    return tokenizer.eos_token


def texts(tokenizer: Any, prompt_format: str, record: SnapshotRecord) -> tuple[str, str]:
    """The prompt and target text of one record, exactly as the model will see them."""
    prompt = render_prompt(prompt_format, record.instruction, record.input, tokenizer=tokenizer)
    target = render_target(prompt_format, record.instruction, record.input, record.output,
                           eos_token=eos_token(tokenizer), tokenizer=tokenizer)
    return prompt, target


def prompt_ids(tokenizer: Any, prompt_format: str, prompt: str) -> list[int]:
    """Token ids of a prompt: a text format gets the tokenizer's BOS; a chat template writes its own."""
    add_special = load_format(prompt_format).kind == "text"
    return list(tokenizer(prompt, add_special_tokens=add_special)["input_ids"])


def build_example(tokenizer: Any, prompt_format: str, record: SnapshotRecord, *, max_length: int,
                  train_on_inputs: bool = False) -> Example:
    prompt, target = texts(tokenizer, prompt_format, record)
    eos = eos_token(tokenizer)
    source = prompt_ids(tokenizer, prompt_format, prompt)
    # A chat template may write a newline after the end-of-turn EOS ("<|im_end|>\n"): the target
    # ends at the EOS, which is appended as its id exactly once.
    stripped = target.rstrip()
    body = stripped.removesuffix(eos) if stripped.endswith(eos) else target
    target_ids = list(tokenizer(body, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    input_ids = source + target_ids
    labels = (list(source) if train_on_inputs else [IGNORE_INDEX] * len(source)) + target_ids
    truncated = len(input_ids) > max_length
    return Example(record.sample_id, input_ids[:max_length], labels[:max_length], len(source), truncated)
