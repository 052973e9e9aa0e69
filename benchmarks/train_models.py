"""What the training benchmarks share: the Alpaca data, a tokenizer trained on it, random-weight
Llama models, the Stanford-style padded baseline and one step meter for every trainer.

Imports torch/transformers lazily inside functions, so ``--help`` stays quick. No hub access:
the tokenizer is a byte-level BPE trained on the benchmark's own samples (so token lengths
follow the real Alpaca length distribution, as with a real Llama tokenizer: mean ~130 tokens
with the Stanford prompt), the model is built from a config with random weights.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALPACA_SAMPLE = ROOT.parent / "shared" / "data" / "alpaca_sample_2000.json"
PAD, EOS, BOS, UNK = "<pad>", "</s>", "<s>", "<unk>"
IGNORE_INDEX = -100

# name -> LlamaConfig keyword arguments (vocab_size comes from the tokenizer)
MODEL_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 2,
             "num_key_value_heads": 2},
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 4},
    "1b": {"hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 16, "num_attention_heads": 16,
           "num_key_value_heads": 16},
}


def set_threads(threads: int) -> None:
    """Fix torch's CPU threads (both trainers run under the same count)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def quiet() -> None:
    """No progress bars or advice from transformers/datasets in a benchmark's output."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:
        pass
    warnings.filterwarnings("ignore", category=FutureWarning)


def alpaca_records(path: Path = ALPACA_SAMPLE, limit: int | None = None) -> list[Any]:
    """The Alpaca sample as snapshot records; SystemExit with a clear message when it is absent."""
    from studio.train.data import SnapshotRecord

    if not path.exists():
        raise SystemExit(f"{path} is not present: this benchmark needs ../shared/data/alpaca_sample_2000.json "
                         "(Stanford Alpaca samples) next to the checkout")
    rows = json.loads(path.read_text(encoding="utf-8"))
    records = [SnapshotRecord(i, row["instruction"], row.get("input", "") or "", row["output"])
               for i, row in enumerate(rows)]
    return records[:limit] if limit else records


def train_tokenizer(records: list[Any], target_dir: Path, *, vocab_size: int = 8000) -> Any:
    """A byte-level BPE fast tokenizer trained on the records' Stanford-format text.

    BOS is added in front of every encoded text (like Llama's); the pad token is its own id,
    distinct from EOS, so "real tokens" can be counted as ``input_ids != pad_token_id``.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    from studio.core.training.prompt_format import render_prompt

    corpus = [render_prompt("alpaca", r.instruction, r.input) + r.output for r in records]
    core = Tokenizer(models.BPE(unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, UNK],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(corpus, trainer=trainer)
    bos_id = core.token_to_id(BOS)
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                        special_tokens=[(BOS, bos_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS,
                                        pad_token=PAD, unk_token=UNK)
    target_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(target_dir)
    return tokenizer


def llama_config(size: str, vocab_size: int, *, max_position_embeddings: int = 2048) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, max_position_embeddings=max_position_embeddings,
                       tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                       **MODEL_SIZES[size])


def save_random_llama(size: str, tokenizer: Any, target_dir: Path, *, seed: int = 0, dtype: str = "float32",
                      device: str = "cpu", vocab_size: int | None = None) -> Path:
    """A random-weight Llama of ``size`` with ``tokenizer``, saved as a local base-model folder.

    ``vocab_size`` may exceed the tokenizer's (a 1B config keeps Llama's 32,000 rows, as real
    models carry unused rows); the weights are initialised on ``device`` (seconds on a GPU for 1B).
    """
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    config = llama_config(size, max(vocab_size or 0, len(tokenizer)))
    with torch.device(device):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(target_dir)
    tokenizer.save_pretrained(target_dir)
    del model
    return target_dir


def parameter_count(size: str, vocab_size: int) -> int:
    """Parameters of the base model, from its config (no weights built)."""
    c = MODEL_SIZES[size]
    h, i, n, heads, kv = (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"],
                          c["num_attention_heads"], c["num_key_value_heads"])
    head_dim = h // heads
    attention = h * h * 2 + h * kv * head_dim * 2
    per_layer = attention + 3 * h * i + 2 * h
    return n * per_layer + 2 * vocab_size * h + h


# -- the Stanford Alpaca baseline --------------------------------------------------------------

class PadToLongestCollator:
    """Stanford Alpaca's batching, rewritten from its description: each batch is padded to its
    longest sample, input ids with the pad id, labels with -100, and the attention mask is
    ``input_ids != pad_id``. No length grouping: the order is the Trainer's random sampler."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        for row, f in enumerate(features):
            ids[row, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
            labels[row, : len(f["labels"])] = torch.tensor(f["labels"])
        return {"input_ids": ids, "labels": labels, "attention_mask": ids.ne(self.pad_token_id)}


def tokenized(records: list[Any], tokenizer: Any, *, max_length: int, prompt_format: str = "alpaca") -> list[dict]:
    """The records as {input_ids, labels} exactly as our job tokenizes them (studio.train.data)."""
    from studio.train.data import build_example

    out = []
    for record in records:
        ex = build_example(tokenizer, prompt_format, record, max_length=max_length)
        out.append({"input_ids": ex.input_ids, "labels": ex.labels})
    return out


def lora_model(base_dir: Path, *, dtype: str, device: str, r: int = 16, alpha: int = 32,
               dropout: float = 0.05, target_modules: Any = "all-linear") -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, dtype)).to(device)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


# -- one meter for every trainer ----------------------------------------------------------------

@dataclass
class StepMeter:
    """Counts real (non-pad) tokens and token slots of every batch a trainer's collator builds,
    and the time at the end of every optimiser step, so any Trainer is measured the same way.

    Batches are counted when collated and consumed in the same order, so batch k belongs to
    step k // accumulation whatever the data loader prefetches. The first ``warmup`` steps are
    left out of the figures (allocator, kernel and thread-pool warm-up).
    """

    pad_token_id: int
    warmup: int
    accumulation: int = 1
    device: str = "cpu"
    real: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    step_ends: list[float] = field(default_factory=list)
    cpu_ends: list[float] = field(default_factory=list)    # process CPU time: steadier on a shared machine
    started: float = 0.0
    cpu_started: float = 0.0

    def wrap(self, collator: Any) -> Any:
        def counting(features: list[dict[str, Any]]) -> dict[str, Any]:
            batch = collator(features)
            ids = batch["input_ids"]
            self.real.append(int(ids.ne(self.pad_token_id).sum()))
            self.slots.append(int(ids.numel()))
            self.samples.append(len(features))
            return batch
        return counting

    def callback(self) -> Any:
        from transformers import TrainerCallback

        meter = self

        class _Clock(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                meter.started, meter.cpu_started = time.perf_counter(), time.process_time()

            def on_step_end(self, args, state, control, **kwargs):
                meter._sync()
                meter.step_ends.append(time.perf_counter())
                meter.cpu_ends.append(time.process_time())

        return _Clock()

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def summary(self) -> dict[str, Any]:
        steps = len(self.step_ends)
        if steps <= self.warmup:
            raise RuntimeError(f"only {steps} steps ran; need more than the {self.warmup} warm-up steps")
        a = self.accumulation
        first, last = self.warmup * a, steps * a
        real, slots = sum(self.real[first:last]), sum(self.slots[first:last])
        seconds = self.step_ends[-1] - self.step_ends[self.warmup - 1] if self.warmup else \
            self.step_ends[-1] - self.started
        cpu = (self.cpu_ends[-1] - (self.cpu_ends[self.warmup - 1] if self.warmup else self.cpu_started)
               if len(self.cpu_ends) == steps else float("nan"))
        timed = steps - self.warmup
        return {"steps": timed, "seconds": seconds, "cpu_seconds": cpu,
                "tokens_per_cpu_s": real / cpu if cpu else 0.0, "real_tokens": real, "token_slots": slots,
                "samples": sum(self.samples[first:last]), "real_fraction": real / slots if slots else 0.0,
                "tokens_per_s": real / seconds, "slots_per_s": slots / seconds,
                "real_tokens_per_step": real / timed, "seconds_per_step": seconds / timed}


# -- the two runs, measured the same way ------------------------------------------------------

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def run_padded(base_dir: Path, records: list[Any], *, batch_size: int, steps: int, warmup: int, seed: int,
               device: str, precision: str, out_dir: Path, max_length: int) -> dict[str, Any]:
    """Stanford Alpaca's way: a plain Trainer, each batch padded to its longest sample, random order."""
    from datasets import Dataset
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    examples = tokenized(records, tokenizer, max_length=max_length)
    model = lora_model(base_dir, dtype=DTYPES[precision], device=device)
    meter = StepMeter(pad_token_id=tokenizer.pad_token_id, warmup=warmup, device=device)
    args = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=batch_size, gradient_accumulation_steps=1,
        max_steps=steps, learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0.03,
        logging_steps=1, save_strategy="no", report_to=[], seed=seed, data_seed=seed,   # Stanford logs every step
        train_sampling_strategy="random", remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=device == "cpu", bf16=precision == "bf16", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                      data_collator=meter.wrap(PadToLongestCollator(tokenizer.pad_token_id)),
                      callbacks=[meter.callback()])
    return measure(trainer, meter, device)


def run_ours(base_dir: Path, records: list[Any], *, batch_size: int, steps: int, warmup: int, seed: int,
             device: str, precision: str, out_dir: Path, max_length: int,
             loss: str | None = None) -> dict[str, Any]:
    """Our job's Trainer for the same records and settings, measured with the same meter.

    Also returned: how many ``log`` events the job wrote (proof the job's own callback ran)
    and the median of the tokens/s it reported itself, as a cross-check of the meter.
    ``loss`` overrides the job's choice of loss ("model" or "fused", see ``use_loss``); by
    default the job picks (the model's own loss on the CPU, TRL's fused LM-head loss on a GPU).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    meter = StepMeter(pad_token_id=tokenizer.pad_token_id, warmup=warmup, device=device)
    trainer = our_trainer(base_dir, records, out_dir, meter=meter, batch_size=batch_size, steps=steps,
                          seed=seed, device=device, precision=precision, max_length=max_length)
    if loss is not None:
        use_loss(trainer, loss)
    result = measure(trainer, meter, device)
    logs = [json.loads(line) for line in (out_dir / "run" / "events.jsonl").read_text(encoding="utf-8").splitlines()
            if '"log"' in line]
    logs = [event for event in logs if event.get("type") == "log"]
    rates = sorted(e["tokens_per_s"] for e in logs[warmup:] if e.get("tokens_per_s"))
    result["job_log_events"] = len(logs)
    result["job_reported_tokens_per_s"] = rates[len(rates) // 2] if rates else None
    return result


def use_loss(trainer: Any, loss: str) -> None:
    """Force one loss on a trainer the job built: "model" (transformers' ``Trainer.compute_loss``,
    the model's own forward) or "fused" (TRL's fused LM-head loss, its chunked log-prob kernel
    plus entropy/accuracy metrics). Same labels, same masking either way."""
    import types

    from transformers import Trainer
    from trl import SFTTrainer

    method = {"model": Trainer.compute_loss, "fused": SFTTrainer.compute_loss}[loss]
    trainer.compute_loss = types.MethodType(method, trainer)


def measure(trainer: Any, meter: StepMeter, device: str) -> dict[str, Any]:
    """Train, then the meter's figures (and the peak GPU memory on CUDA)."""
    import gc

    import torch
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    result = meter.summary()
    if cuda:
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    trainer.model = trainer.model_wrapped = None
    del trainer
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


# -- our trainer ---------------------------------------------------------------------------------

def our_trainer(base_dir: Path, records: list[Any], out_dir: Path, *, meter: StepMeter, batch_size: int,
                steps: int, seed: int, device: str, precision: str, max_length: int) -> Any:
    """The Trainer our job builds for these records and settings, its collator counted by ``meter``.

    Built by the job itself (``studio.train.job.build_trainer``: the same tokenizer loading,
    data, LoRA model and SFTTrainer, callback included, as ``python -m studio.train`` runs)
    from a RunConfig with the job's default batching (``packing``: padding-free), one step
    per batch, no held-out split and no checkpoint inside the timed steps. Its events go to
    ``run/events.jsonl`` and a throw-away stream.
    """
    import io

    from studio.core.training.run_config import RunConfig
    from studio.core.training.settings import TrainSettings
    from studio.train.events_out import EventWriter
    from studio.train.job import build_trainer

    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / "snapshot.jsonl"
    with open(data_path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"sample_id": r.sample_id, "instruction": r.instruction, "input": r.input,
                                      "output": r.output}, ensure_ascii=False) + "\n" for r in records)
    settings = TrainSettings(
        prompt_format="alpaca", max_length=max_length, packing=True, validation_fraction=0.0, sample_prompts=0,
        seed=seed, max_steps=steps, per_device_train_batch_size=batch_size, gradient_accumulation_steps=1,
        learning_rate=2e-4, lr_scheduler_type="cosine", warmup_ratio=0.03, eval_steps=0, save_steps=steps + 1,
        logging_steps=1, lora_r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
        precision=precision, use_cpu=device == "cpu")
    config = RunConfig(run_id="bench", run_name="bench", run_dir=str(out_dir / "run"), base_model=str(base_dir),
                       data_path=str(data_path), settings=settings)
    trainer = build_trainer(config, writer=EventWriter(config.dir, stream=io.StringIO()))
    trainer.add_callback(meter.callback())
    trainer.data_collator = meter.wrap(trainer.data_collator)
    return trainer
