"""The pre-flight check: ``python -m studio.train.preflight CONFIG.json [--json] [--sample N]``.

Before hours of training, show one sample exactly as the model will see it (token by token,
with the loss mask), check the mistakes that make a model ramble forever (no EOS, EOS cut by
``max_length``, EOS masked as padding, a chat model trained on a foreign template), count what
``max_length`` cuts and estimate memory and time. It loads only the tokenizer and the model's
``config.json``, never the weights, so it takes seconds. A child process, because the GUI never
imports transformers: the panel and ``train preflight`` read its stdout. The checks only the
project can make (evaluation-only prompts in the training split: ``eval_prompt``, ``eval_prompt_near``)
are made by the parent and arrive in the config's ``project_checks``; the child never opens the
project database. Exit 0 when no check is an error, 1 otherwise; the report is printed either way.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.training.base_models import (
    GENERATION_CONFIG,
    HUB,
    BaseModelInfo,
    fetch_configs,
    resolve,
)
from studio.core.training.estimates import estimate
from studio.core.training.prompt_format import load_format
from studio.core.training.run_config import RunConfig
from studio.core.training.settings import TrainSettings
from studio.core.wording import count_noun, format_duration
from studio.train.data import (
    IGNORE_INDEX,
    Example,
    SnapshotRecord,
    build_example,
    read_snapshot,
    target_body,
    texts,
)

OK, WARNING, ERROR = "ok", "warning", "error"
HISTOGRAM_BINS = 20
EOS_CHECKED = 256            # records built exactly as the trainer does, for the EOS checks


def check(level: str, code: str, message: str) -> dict[str, str]:
    return {"level": level, "code": code, "message": message}


def load_tokenizer(model: BaseModelInfo, settings: TrainSettings, revision: str | None) -> Any:
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    return AutoTokenizer.from_pretrained(model.path_or_id, revision=revision,
                                         trust_remote_code=settings.trust_remote_code)


def model_config_dicts(model: BaseModelInfo, revision: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The model's ``config.json`` and its ``generation_config.json`` (None when it has none) as plain
    JSON; a hub model's are fetched alone, the weights stay put."""
    if model.source == HUB:
        config_path, generation_path = fetch_configs(model.path_or_id, revision)
    else:
        config_path = Path(model.path_or_id) / "config.json"
        generation_path = Path(model.path_or_id) / GENERATION_CONFIG
        if not generation_path.is_file():
            generation_path = None
    return _json_object(config_path), (_json_object(generation_path) if generation_path else None)


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: expected a JSON object")
    return data


def token_view(tokenizer: Any, example: Example) -> list[dict[str, Any]]:
    """Each token of an example with its text and whether the loss ignores it (label -100)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    return [{"id": int(token), "text": tokenizer.decode([token]), "masked": label == IGNORE_INDEX,
             "special": int(token) in special}
            for token, label in zip(example.input_ids, example.labels)]


def length_report(lengths: list[int], max_length: int) -> dict[str, Any]:
    """Histogram of full (uncut) token lengths, percentiles, and how many ``max_length`` cuts."""
    if not lengths:
        return {"edges": [], "counts": [], "p50": 0, "p95": 0, "p99": 0, "max": 0, "mean": 0.0,
                "max_length": max_length, "cut": 0, "samples": 0}
    ordered = sorted(lengths)
    top = max(ordered[-1], max_length)
    width = max(1, math.ceil(top / HISTOGRAM_BINS))
    width = _nice(width)
    bins = math.ceil((top + 1) / width)
    counts = [0] * bins
    for value in ordered:
        counts[min(bins - 1, value // width)] += 1
    return {
        "edges": [i * width for i in range(bins + 1)],
        "counts": counts,
        "p50": _percentile(ordered, 0.50),
        "p95": _percentile(ordered, 0.95),
        "p99": _percentile(ordered, 0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
        "max_length": max_length,
        "cut": sum(1 for value in ordered if value > max_length),
        "samples": len(ordered),
    }


def _nice(width: int) -> int:
    """A bin width of 1, 2 or 5 times a power of ten, so the edges read well."""
    magnitude = 10 ** max(0, len(str(width)) - 1)
    for step in (1, 2, 5, 10):
        if width <= step * magnitude:
            return step * magnitude
    return width


def _percentile(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def detect_device(settings: TrainSettings) -> tuple[str, float | None]:
    """("cuda", GPU memory in GB) or ("cpu", None); torch is already loaded with transformers here."""
    if settings.use_cpu:
        return "cpu", None
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda", torch.cuda.get_device_properties(0).total_memory / 1024 ** 3
    except Exception:                       # noqa: BLE001 - a broken CUDA setup means CPU here
        pass
    return "cpu", None


def run_preflight(config: RunConfig, *, sample_index: int = 0,
                  device: tuple[str, float | None] | None = None) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (see the module docstring for its parts)."""
    settings = config.settings
    # The project's own checks first (evaluation prompts in the snapshot): the parent made them.
    checks: list[dict[str, str]] = [dict(c) for c in config.project_checks]
    report: dict[str, Any] = {"run_id": config.run_id, "base_model": config.base_model,
                              "prompt_format": settings.prompt_format, "max_length": settings.max_length,
                              "checks": checks, "sample": None, "lengths": None, "estimates": None,
                              "model": None, "eos_id": None, "pad_id": None}
    try:
        model = resolve(config.base_model, revision=config.base_model_revision)
        model_config, generation_config = model_config_dicts(model, config.base_model_revision)
    except (StudioError, OSError, ValueError) as exc:
        message = str(exc)
        checks.append(check(ERROR, "base_model", message if message.startswith(config.base_model)
                            else f"base model {config.base_model}: {message}"))
        return report
    report["model"] = model.to_dict()
    if model.needs_remote_code and not settings.trust_remote_code:
        checks.append(check(ERROR, "remote_code",
                            f"{model.name} needs Python code shipped with the model (config.json has an "
                            "auto_map), and trust_remote_code is off: tick it only if you trust the model"))
        return report
    if model.needs_remote_code:
        checks.append(check(WARNING, "remote_code", f"{model.name} runs its own Python code "
                            "(trust_remote_code is on)"))
    if model.source != HUB and not model.has_safetensors:
        folder = Path(model.path_or_id)
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt*")):
            checks.append(check(WARNING, "safetensors", f"{model.name} has no .safetensors weights: its "
                                "pickle (.bin) weights can run code when loaded; prefer a safetensors copy"))
        else:
            checks.append(check(WARNING, "weights", f"{folder}: no weight files (.safetensors or .bin); "
                                "the check reads only the tokenizer and config, but training needs the weights"))
    try:
        tokenizer = load_tokenizer(model, settings, config.base_model_revision)
    except Exception as exc:               # noqa: BLE001 - any loader failure is the user's to see
        checks.append(check(ERROR, "tokenizer", f"cannot load the tokenizer of {model.name}: "
                            f"{_first_line(exc)}"))
        return report

    _template_checks(checks, tokenizer, settings, model)
    if tokenizer.eos_token is None or tokenizer.eos_token_id is None:
        checks.append(check(ERROR, "eos_missing", "the tokenizer has no EOS token, so the model could never "
                            "learn to stop; choose another base model or set eos_token in its tokenizer_config.json"))
    else:
        _eos_config_check(checks, tokenizer, model_config, generation_config)
    if any(c["level"] == ERROR and c["code"] != "eos_config" for c in checks):
        return report                       # the samples cannot be rendered (eos_config's can: show them)

    try:
        records = read_snapshot(config.data_path)
    except (OSError, ValueError) as exc:
        checks.append(check(ERROR, "snapshot", f"cannot read the snapshot: {exc}"))
        return report
    if not records:
        checks.append(check(ERROR, "snapshot_empty", f"{config.data_path}: the snapshot has no samples"))
        return report

    index = min(max(0, sample_index), len(records) - 1)
    try:
        full_lengths, prompt_lengths = token_lengths(tokenizer, settings.prompt_format, records)
        checked = sorted({index, *range(min(len(records), EOS_CHECKED))})
        examples = [build_example(tokenizer, settings.prompt_format, records[i], max_length=settings.max_length,
                                  train_on_inputs=settings.train_on_inputs) for i in checked]
    except (StudioError, ValueError) as exc:
        checks.append(check(ERROR, "render", f"cannot render the samples in the "
                            f"{settings.prompt_format!r} format: {exc}"))
        return report

    report["eos_id"], report["pad_id"] = tokenizer.eos_token_id, tokenizer.pad_token_id
    report["sample"] = _sample_view(tokenizer, settings, records[index], examples[checked.index(index)])
    _eos_checks(checks, tokenizer, settings, examples, total=len(records))
    empty = 0 if settings.train_on_inputs else sum(1 for n in prompt_lengths if n >= settings.max_length)
    if empty:
        checks.append(check(WARNING, "no_response",
                            f"{count_noun(empty, 'sample')} with a prompt as long as max_length {settings.max_length}: no "
                            "response token left: training skips them; raise max_length"))
    lengths = length_report(full_lengths, settings.max_length)
    report["lengths"] = lengths
    if lengths["cut"]:
        checks.append(check(WARNING, "eos_cut",
                            f"{lengths['cut']:,} of {len(records):,} samples are longer than max_length "
                            f"{settings.max_length} (longest {lengths['max']}): they are cut and lose their "
                            f"EOS, teaching the model to run on; raise max_length (to {max(lengths['p99'], settings.max_length + 1)} "
                            f"keeps 99 % whole) or curate the long ones out"))
    else:
        checks.append(check(OK, "eos_cut", f"no sample is longer than max_length {settings.max_length} "
                            f"(longest {lengths['max']} tokens)"))
    window = model_config.get("max_position_embeddings")
    if isinstance(window, int) and settings.max_length > window:
        checks.append(check(WARNING, "max_length", f"max_length {settings.max_length} is beyond the model's "
                            f"context of {window} tokens; lower it to {window} or less"))

    cut_lengths = [min(n, settings.max_length) for n in full_lengths]
    report["estimates"] = _estimates(checks, model_config, settings, cut_lengths, device or detect_device(settings))
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:240]


def token_lengths(tokenizer: Any, prompt_format: str, records: list[SnapshotRecord],
                  chunk: int = 1024) -> tuple[list[int], list[int]]:
    """(uncut length, prompt length) of every record, tokenized in batches.

    The same arithmetic as :func:`studio.train.data.build_example` (prompt ids, then the target
    without its EOS string, then the EOS id), batched so a 52K-sample snapshot takes seconds.
    """
    eos = tokenizer.eos_token
    add_special = load_format(prompt_format).kind == "text"
    full: list[int] = []
    prompts: list[int] = []
    for start in range(0, len(records), chunk):
        pairs = [texts(tokenizer, prompt_format, record) for record in records[start:start + chunk]]
        prompt_ids = tokenizer([p for p, _ in pairs], add_special_tokens=add_special)["input_ids"]
        bodies = [target_body(t, eos) for _, t in pairs]
        body_ids = tokenizer(bodies, add_special_tokens=False)["input_ids"]
        for p, b in zip(prompt_ids, body_ids):
            full.append(len(p) + len(b) + 1)
            prompts.append(len(p))
    return full, prompts


def _sample_view(tokenizer: Any, settings: TrainSettings, record: SnapshotRecord,
                 example: Example) -> dict[str, Any]:
    prompt_text, target_text = texts(tokenizer, settings.prompt_format, record)
    eos_ok = (not example.truncated and bool(example.input_ids)
              and example.input_ids[-1] == tokenizer.eos_token_id and example.labels[-1] != IGNORE_INDEX)
    return {"sample_id": record.sample_id, "prompt_text": prompt_text, "target_text": target_text,
            "tokens": token_view(tokenizer, example), "prompt_tokens": example.prompt_length,
            "eos_ok": eos_ok, "truncated": example.truncated}


# Names of instruction-tuned checkpoints: Qwen2.5-7B-Instruct, Llama-2-7b-chat-hf, gemma-2b-it, ...-SFT.
_INSTRUCT_NAME = re.compile(r"instruct|chat|sft|dpo|rlhf|(^|[-_.])it($|[-_.])", re.IGNORECASE)


def instruct_hint(tokenizer: Any, model: BaseModelInfo) -> str | None:
    """Why a tokenizer with a chat template looks like an instruct model's, or None.

    Base models ship chat templates too (Qwen2.5, SmolLM2, Llama 3.1 base), so a template alone
    says nothing. Two signs do: a name like ``…-Instruct`` / ``…-chat`` / ``…-it``, or a template
    that ends each turn with the tokenizer's own EOS written out (``<|im_end|>``, ``<|eot_id|>``):
    an instruct model's EOS is its turn end, a base model's is the end of a document.
    """
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):                  # named templates: {"default": ..., "tool_use": ...}
        template = "\n".join(str(t) for t in template.values())
    names = [n for n in (model.repo_id, model.name) if n]
    named = next((n for n in names if _INSTRUCT_NAME.search(n.split("/")[-1])), None)
    if named:
        return f"its name {named.split('/')[-1]!r} says it is instruction-tuned"
    eos = tokenizer.eos_token
    if eos and isinstance(template, str) and eos in template:
        return f"its template ends turns with its EOS {eos!r}"
    return None


def _template_checks(checks: list[dict[str, str]], tokenizer: Any, settings: TrainSettings,
                     model: BaseModelInfo) -> None:
    has_template = bool(getattr(tokenizer, "chat_template", None))
    kind = load_format(settings.prompt_format).kind
    if kind == "chat" and not has_template:
        checks.append(check(ERROR, "chat_template", "the 'chat' format needs the base model's chat template "
                            "and this tokenizer has none: choose 'alpaca' or 'alpaca-lora'"))
    elif kind == "chat":
        checks.append(check(OK, "chat_template", "the 'chat' format uses the model's own chat template"))
    elif not has_template:
        checks.append(check(OK, "chat_template", f"a base model without a chat template, trained on "
                            f"{settings.prompt_format!r}"))
    elif (hint := instruct_hint(tokenizer, model)) is not None:
        checks.append(check(WARNING, "chat_template",
                            f"this tokenizer has a chat template and {hint}, so it looks like an instruct model "
                            f"(instruct models are tuned on their template), but the chosen format is "
                            f"{settings.prompt_format!r}: the model will learn a prompt it was not tuned on, and chat "
                            "clients that apply its template will prompt it differently; choose the 'chat' format "
                            "unless you mean to"))
    else:
        checks.append(check(OK, "chat_template",
                            f"this tokenizer has a chat template (instruct models are tuned on theirs; base models "
                            f"often ship one unused) and the chosen format is {settings.prompt_format!r}: fine for a "
                            "base model; choose the 'chat' format if this is an instruct model"))


def _eos_ids(value: Any) -> list[int] | None:
    """An ``eos_token_id`` entry (an int or a list of ints) as a list; None when absent or unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    return None


def _eos_config_check(checks: list[dict[str, str]], tokenizer: Any, model_config: dict[str, Any],
                      generation_config: dict[str, Any] | None) -> None:
    """The tokenizer's EOS (the id the targets end in) against the ids ``generate()`` stops on.

    ``generate()`` reads ``generation_config.json`` when the model has one (only it: from_pretrained
    loads the file as it is), else ``config.json``.
    If the tokenizer's EOS is not among them the model learns to emit a token that never stops
    it, and it rambles to max_new_tokens: an error. A disagreeing file that ``generate()`` does
    not read is a warning (other tools read it).
    """
    eos_id, eos = tokenizer.eos_token_id, tokenizer.eos_token
    named = {"config.json": _eos_ids(model_config.get("eos_token_id"))}
    if generation_config is not None:
        named[GENERATION_CONFIG] = _eos_ids(generation_config.get("eos_token_id"))
    used = GENERATION_CONFIG if generation_config is not None else "config.json"
    stops = named[used]
    disagree = [name for name, ids in named.items() if ids is not None and eos_id not in ids]
    if stops is None:
        where = (f"{GENERATION_CONFIG} names no eos_token_id, and generate() reads it rather than config.json"
                 if generation_config is not None else "config.json names no eos_token_id (and the model has no "
                 f"{GENERATION_CONFIG})")
        checks.append(check(WARNING, "eos_config",
                            f"{where}: generate() stops only at max_new_tokens unless told eos_token_id={eos_id}; "
                            f"set \"eos_token_id\": {eos_id} (the tokenizer's EOS {eos!r}) in {used}"))
        return

    def said(name: str) -> str:
        ids = named[name]
        return f"{name} says {ids[0] if len(ids) == 1 else ids}"

    if used in disagree:
        token = tokenizer.convert_ids_to_tokens(stops[0]) if 0 <= stops[0] < len(tokenizer) else None
        retoken = f"set eos_token in tokenizer_config.json to {token!r} (id {stops[0]})" if token else \
            "fix eos_token in tokenizer_config.json"
        checks.append(check(ERROR, "eos_config",
                            f"the tokenizer's EOS is {eos!r} (id {eos_id}) but {' and '.join(said(n) for n in disagree)}"
                            f": the model would learn to end with id {eos_id} while generate() stops only on "
                            f"{', '.join(map(str, stops))}, so it rambles on; make them agree: {retoken}, or set "
                            f"eos_token_id to {eos_id} in {' and '.join(disagree)}"))
    elif disagree:
        checks.append(check(WARNING, "eos_config",
                            f"{' and '.join(said(n) for n in disagree)} for eos_token_id, not the tokenizer's EOS "
                            f"{eos!r} (id {eos_id}); generate() reads {used}, which agrees, but tools that read "
                            f"{' and '.join(disagree)} may not stop: set eos_token_id to {eos_id} there"))
    else:
        checks.append(check(OK, "eos_config", f"the tokenizer's EOS {eos!r} (id {eos_id}) is the one generate() "
                            f"stops on ({used})"))


def _eos_checks(checks: list[dict[str, str]], tokenizer: Any, settings: TrainSettings,
                examples: list[Example], *, total: int) -> None:
    """``examples`` are the first :data:`EOS_CHECKED` of ``total`` samples, built as the trainer does
    (build_example appends the EOS id to every target, so a sample shows the rule; what
    max_length cuts is counted over all samples by eos_cut)."""
    eos_id = tokenizer.eos_token_id
    kept = [e for e in examples if not e.truncated]
    missing = sum(1 for e in kept if not e.input_ids or e.input_ids[-1] != eos_id or e.labels[-1] == IGNORE_INDEX)
    which = (f"the {count_noun(total, 'sample')}" if len(examples) >= total else
             f"the {len(examples):,} samples checked (of {total:,})")
    if missing:
        checks.append(check(ERROR, "eos_target", f"{count_noun(missing, 'target')} of {which} not ending in a "
                            f"learned EOS ({tokenizer.eos_token!r}, id {eos_id}): the model would never learn to stop"))
    else:
        checks.append(check(OK, "eos_target", f"every target of {which}, built as the trainer builds them, ends in "
                            f"EOS {tokenizer.eos_token!r} (id {eos_id}) with a label, unless cut, so the model "
                            "learns to stop"))
    pad_id = tokenizer.pad_token_id
    own_pad = pad_id is not None
    if not own_pad:
        pad_id = eos_id                     # the job pads with EOS when the tokenizer has no pad token
    if pad_id == eos_id:
        named = (f"the pad token is the EOS token (id {eos_id})" if own_pad else
                 f"the tokenizer has no pad token, so batches are padded with EOS (id {eos_id})")
        if settings.packing:
            checks.append(check(OK, "eos_pad", f"{named}: harmless here, packing is padding-free"))
        else:
            checks.append(check(WARNING, "eos_pad",
                                f"{named} and batches are padded: a collator that masks padding by token id "
                                "also masks every EOS, and the model never learns to stop; keep packing on "
                                "or give the tokenizer its own pad token"))
    else:
        checks.append(check(OK, "eos_pad", f"the EOS token (id {eos_id}) is not the pad token (id {pad_id})"))


def _estimates(checks: list[dict[str, str]], model_config: dict[str, Any], settings: TrainSettings,
               lengths: list[int], device: tuple[str, float | None]) -> dict[str, Any] | None:
    kind, gpu_gb = device
    mean = sum(lengths) / len(lengths)
    gpus = int(os.environ.get("WORLD_SIZE", "1") or 1)
    try:
        result = estimate(model_config, settings, n_samples=len(lengths), mean_tokens=mean, gpus=gpus,
                          device=kind)
    except (ValueError, TypeError) as exc:
        checks.append(check(WARNING, "estimates", f"no memory or time estimate: {exc}"))
        return None
    result["gpu_memory_gb"] = gpu_gb
    duration = format_duration(result["time"]["seconds"])
    if kind == "cpu":
        checks.append(check(WARNING, "device", f"no GPU: training runs on the CPU, estimated {duration} "
                            f"for {result['time']['steps']} steps (a GPU is typically 100× faster)"))
    else:
        checks.append(check(OK, "device", f"training on the GPU, estimated {duration} "
                            f"for {result['time']['steps']} steps"))
    if kind == "cpu" and settings.precision in ("bf16", "fp16"):
        checks.append(check(ERROR, "precision", f"precision {settings.precision} needs a GPU and this run "
                            "is on the CPU: set precision to auto or fp32"))
    if settings.load_in_4bit and kind != "cuda":
        checks.append(check(ERROR, "qlora", "load_in_4bit needs a CUDA GPU; turn it off to train on the CPU"))
    elif settings.load_in_4bit and importlib.util.find_spec("bitsandbytes") is None:
        checks.append(check(ERROR, "qlora", "load_in_4bit needs bitsandbytes: install the 'qlora' extra "
                            "(pip install bitsandbytes) or turn load_in_4bit off"))
    total = result["memory"]["total_gb"]
    if gpu_gb is not None and total > gpu_gb:
        checks.append(check(WARNING, "memory",
                            f"estimated {total:.1f} GB per GPU, more than its {gpu_gb:.1f} GB: lower "
                            "per_device_train_batch_size (raise gradient_accumulation_steps to keep the "
                            "effective batch), turn on gradient_checkpointing, lower max_length, or use load_in_4bit"))
    return result


# -- command line --------------------------------------------------------------------------------

def format_text(report: dict[str, Any]) -> str:
    """The report as plain text for a terminal: the sample with masked tokens in [brackets]."""
    lines = [f"Pre-flight check: {report['base_model']}, format {report['prompt_format']}, "
             f"max_length {report['max_length']}"]
    sample = report.get("sample")
    if sample:
        lines += ["", f"Sample {sample['sample_id']} as the model sees it "
                  "([bracketed] tokens are prompt: no loss; EOS must end the target):"]
        lines.append("".join(f"[{t['text']}]" if t["masked"] else f"|{t['text']}|" for t in sample["tokens"]))
        lines.append(f"{len(sample['tokens'])} tokens, {sample['prompt_tokens']} in the prompt; "
                     f"EOS at the end: {'yes' if sample['eos_ok'] else 'NO'}")
    lines += ["", "Checks:"]
    for item in report["checks"]:
        lines.append(f"  {item['level'].upper():7} {item['code']}: {item['message']}")
    lengths = report.get("lengths")
    if lengths and lengths["samples"]:
        lines += ["", f"Token lengths of {lengths['samples']} samples: p50 {lengths['p50']}, p95 {lengths['p95']}, "
                  f"max {lengths['max']}; max_length {lengths['max_length']} cuts {lengths['cut']}"]
        peak = max(lengths["counts"]) or 1
        for low, count in zip(lengths["edges"], lengths["counts"]):
            if count:
                lines.append(f"  {low:>6}+ {'#' * max(1, round(40 * count / peak)):40} {count}")
    est = report.get("estimates")
    if est:
        memory, timing = est["memory"], est["time"]
        lines += ["", f"Estimates ({est['device']}, {est['parameters'] / 1e6:,.1f}M parameters, "
                  f"{est['lora_parameters'] / 1e6:,.2f}M trainable):",
                  f"  memory {memory['total_gb']:.2f} GB per device = weights {memory['weights_gb']:.2f} "
                  f"+ LoRA and optimizer {memory['lora_and_optimizer_gb']:.2f} + activations "
                  f"{memory['activations_gb']:.2f} + overhead {memory['overhead_gb']:.2f}"]
        lines += [f"    {key}: {text}" for key, text in memory["method"].items()]
        lines += [f"  time {format_duration(timing['seconds'])} for {timing['steps']} steps",
                  f"    {timing['method']}"]
    return "\n".join(lines)


def has_errors(report: dict[str, Any]) -> bool:
    return any(item["level"] == ERROR for item in report["checks"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.train.preflight", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="the run's config.json")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--sample", type=int, default=0, help="which snapshot record to show (0-based)")
    args = parser.parse_args(argv)
    try:
        config = RunConfig.read(args.config)
    except StudioError as exc:
        report = {"run_id": None, "base_model": None, "prompt_format": None, "max_length": None,
                  "checks": [check(ERROR, "config", str(exc))], "sample": None, "lengths": None,
                  "estimates": None, "model": None}
    else:
        report = run_preflight(config, sample_index=args.sample)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(format_text(report))
    sys.stdout.flush()
    return 1 if has_errors(report) else 0


if __name__ == "__main__":
    sys.exit(main())
