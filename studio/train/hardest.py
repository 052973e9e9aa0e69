"""Hardest samples: ``python -m studio.train.hardest CONFIG.json [--adapter DIR]``.

After a run (or from one of its checkpoints), the loss of every training sample under the
trained adapter, worst first. A sample the model still cannot fit after epochs on it is
usually a flawed one (a wrong answer, a truncated output, an answer to another question), so
this is a direct way to find what to curate. Writes ``<run_dir>/hardest.jsonl`` atomically
(one ``{"sample_id", "loss", "tokens", "instruction"}`` per line), appends a ``hardest`` event
to the run's ``events.jsonl`` and prints the events (``progress`` while it runs) on stdout.
The loss is the mean cross-entropy over the response tokens and EOS, the part the run learned.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.formats import atomic_write_lines
from studio.core.training import events as ev
from studio.core.training.base_models import resolve
from studio.core.training.run_config import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    TOKENIZER_DIR,
    RunConfig,
)
from studio.train.data import IGNORE_INDEX, SnapshotRecord, build_example, read_snapshot

BATCH_TOKENS = 4096          # padded tokens per forward pass: small enough for any card, fast on the CPU


class HardestError(StudioError):
    """Per-sample losses cannot be computed (no adapter, unreadable snapshot...)."""


def emit(event: dict[str, Any], *, events_path: Path | None = None) -> None:
    """One event to stdout (and appended to the run's events file when given)."""
    line = json.dumps({**event, "time": time.time()}, ensure_ascii=False)
    print(line, flush=True)
    if events_path is not None:
        with open(events_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def find_adapter(run_dir: Path) -> Path:
    """The run's final ``adapter/``, else its newest ``checkpoints/checkpoint-N``."""
    final = run_dir / ADAPTER_DIR
    if (final / "adapter_config.json").is_file():
        return final
    checkpoints = [p for p in (run_dir / CHECKPOINTS_DIR).glob("checkpoint-*")
                   if (p / "adapter_config.json").is_file() and p.name.split("-")[-1].isdigit()]
    if checkpoints:
        return max(checkpoints, key=lambda p: int(p.name.split("-")[-1]))
    raise HardestError(f"{run_dir}: the run has no adapter/ and no checkpoint yet; train it first "
                       "(or name one with --adapter)")


def training_records(config: RunConfig, records: list[SnapshotRecord]) -> list[SnapshotRecord]:
    """The run's training split; held-out samples were never trained on, so their loss is not comparable."""
    from studio.train.job import split_records  # the trainer's own seeded split

    train, _validation = split_records(records, config.settings)
    return list(train)


def per_sample_losses(model: Any, examples: list[Any], *, pad_id: int, device: Any,
                      on_progress: Any = None) -> list[tuple[float, int]]:
    """(mean response-token loss, response tokens) per example, in the given order.

    Examples are batched by length (``BATCH_TOKENS`` padded tokens per pass) with right padding
    and an attention mask, so a sample's loss does not depend on its batch neighbours.
    """
    import torch

    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    done = 0
    start = 0
    while start < len(order):
        longest = len(examples[order[start]].input_ids)
        end = start + 1
        while end < len(order):
            longest_next = len(examples[order[end]].input_ids)
            if (end - start + 1) * longest_next > BATCH_TOKENS:
                break
            longest = longest_next
            end += 1
        batch = [examples[i] for i in order[start:end]]
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), longest), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, example in enumerate(batch):
            n = len(example.input_ids)
            ids[row, :n] = torch.tensor(example.input_ids)
            labels[row, :n] = torch.tensor(example.labels)
            mask[row, :n] = 1
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        shift_logits, shift_labels = logits[:, :-1, :], labels[:, 1:]
        token_loss = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
            ignore_index=IGNORE_INDEX, reduction="none").view(shift_labels.shape)
        counted = (shift_labels != IGNORE_INDEX).sum(dim=1)
        sums = token_loss.sum(dim=1)
        for row, index in enumerate(order[start:end]):
            n = int(counted[row])
            results[index] = (float(sums[row]) / n if n else 0.0, n)
        done += len(batch)
        if on_progress is not None:
            on_progress(done, len(examples))
        start = end
    return results


def load_model(config: RunConfig, adapter: Path) -> tuple[Any, Any, Any]:
    """(peft model in eval mode, tokenizer, device): the base in bf16 on a GPU that has it (4-bit when the
    run was QLoRA), else fp32 on the CPU; the run's saved tokenizer when there is one."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    settings = config.settings
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    use_cuda = torch.cuda.is_available() and not settings.use_cpu
    device = torch.device("cuda" if use_cuda else "cpu")
    dtype = torch.float32
    if use_cuda:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    base = resolve(config.base_model, revision=config.base_model_revision)
    tokenizer_dir = adapter if (adapter / "tokenizer_config.json").is_file() else Path(base.path_or_id)
    if (config.dir / TOKENIZER_DIR / "tokenizer_config.json").is_file():
        tokenizer_dir = config.dir / TOKENIZER_DIR
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=settings.trust_remote_code)
    kwargs: dict[str, Any] = {}
    if settings.load_in_4bit and use_cuda:        # score under the base the adapter was trained on
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(base.path_or_id, dtype=dtype,
                                                 revision=config.base_model_revision,
                                                 trust_remote_code=settings.trust_remote_code, **kwargs)
    model = PeftModel.from_pretrained(model, str(adapter))
    if "quantization_config" not in kwargs:
        model.to(device)
    model.eval()
    return model, tokenizer, device


def run_hardest(config: RunConfig, adapter: Path | None = None) -> Path:
    """Compute, write ``hardest.jsonl`` and append the ``hardest`` event; returns the file's path."""
    adapter = Path(adapter) if adapter else find_adapter(config.dir)
    if not (adapter / "adapter_config.json").is_file():
        raise HardestError(f"{adapter}: not a LoRA adapter (it has no adapter_config.json)")
    try:
        records = training_records(config, read_snapshot(config.data_path))
    except (OSError, ValueError) as exc:
        raise HardestError(f"cannot read the snapshot: {exc}") from None
    if not records:
        raise HardestError(f"{config.data_path}: the snapshot has no training samples")
    model, tokenizer, device = load_model(config, adapter)
    settings = config.settings
    examples = [build_example(tokenizer, settings.prompt_format, record, max_length=settings.max_length,
                              train_on_inputs=False) for record in records]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= 0.5:
            last[0] = now
            emit({"type": ev.PROGRESS, "phase": "hardest", "step": done, "max_steps": total})

    losses = per_sample_losses(model, examples, pad_id=pad_id, device=device, on_progress=progress)
    rows = [{"sample_id": record.sample_id, "loss": round(loss, 6), "tokens": tokens,
             "instruction": record.instruction}
            for record, (loss, tokens) in zip(records, losses)]
    rows.sort(key=lambda row: -row["loss"])
    path = config.hardest_path
    atomic_write_lines(path, (json.dumps(row, ensure_ascii=False) for row in rows))
    emit({"type": ev.HARDEST, "count": len(rows), "path": str(path), "adapter": str(adapter)},
         events_path=config.events_path)
    return path


def read_hardest(path: Path | str) -> list[dict[str, Any]]:
    """The rows of a ``hardest.jsonl``, worst first (as written)."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.train.hardest", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="the run's config.json")
    parser.add_argument("--adapter", help="an adapter folder (default: the run's adapter/ or newest checkpoint)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        config = RunConfig.read(args.config)
        run_hardest(config, Path(args.adapter) if args.adapter else None)
    except StudioError as exc:
        emit({"type": ev.ERROR, "message": str(exc), "hint": "", "kind": "hardest"})
        return 1
    except Exception as exc:            # noqa: BLE001 - the parent shows one line, not a traceback
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        emit({"type": ev.ERROR, "message": f"hardest samples failed: {text}", "hint": "", "kind": "hardest"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
