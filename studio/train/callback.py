"""The Trainer callback of the job: the Trainer's moments as events, the stop file as a checkpoint and a stop."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

if TYPE_CHECKING:
    from studio.train.job import Job


class StudioCallback(TrainerCallback):
    """Turns the Trainer's moments into events, and the stop file into a checkpoint and a stop."""

    def __init__(self, job: Job, tokenizer: Any, sample_records: list, torch: Any) -> None:
        self.job = job
        self.writer = job.writer
        self.tokenizer = tokenizer
        self.sample_records = sample_records
        self.torch = torch
        self.stopped = False
        self.last_eval_step: int | None = None
        self.last_samples_step: int | None = None
        self._session_start = time.time()
        self._first_step = 0
        self._last_log: tuple[float, int] | None = None
        self.samples_on_steps = False      # no held-out split: answer the sample prompts at eval_steps anyway

    # -- timing ----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self._session_start = time.time()
        self._first_step = state.global_step
        self._last_log = (time.time(), state.num_input_tokens_seen)

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step - self._first_step
        elapsed = time.time() - self._session_start
        remaining = max(state.max_steps - state.global_step, 0)
        eta = elapsed / done * remaining if done > 0 else None
        self.writer.emit("progress", step=state.global_step, max_steps=state.max_steps,
                         epoch=round(state.epoch or 0.0, 4), eta_s=round(eta, 2) if eta is not None else None)
        every = self.job.settings.eval_steps
        if (self.samples_on_steps and every and state.global_step % every == 0
                and kwargs.get("model") is not None):
            self.emit_samples(kwargs["model"], state.global_step)
        if self._agreed_stop():
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def _agreed_stop(self) -> bool:
        """Every rank must stop at the same step, so the ranks agree on the flag."""
        wanted = self.job.stop_requested()
        dist = self.torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = self.torch.tensor([1 if wanted else 0], dtype=self.torch.int32)
            if dist.get_backend() == "nccl":
                flag = flag.cuda()
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            return bool(flag.item())
        return wanted

    # -- events ----------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        now, tokens = time.time(), state.num_input_tokens_seen
        rate = None
        if self._last_log is not None and now > self._last_log[0] and tokens >= self._last_log[1]:
            rate = (tokens - self._last_log[1]) / (now - self._last_log[0])
        self._last_log = (now, tokens)
        gpu = None
        if self.torch.cuda.is_available() and not args.use_cpu:
            gpu = round(self.torch.cuda.max_memory_allocated() / 1e9, 3)
        self.writer.emit("log", step=state.global_step, epoch=round(state.epoch or 0.0, 4),
                         loss=_number(logs.get("loss")), learning_rate=_number(logs.get("learning_rate")),
                         grad_norm=_number(logs.get("grad_norm")),
                         tokens_per_s=round(rate, 1) if rate is not None else None,
                         tokens_seen=tokens, gpu_memory_gb=gpu)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        self.last_eval_step = state.global_step
        if "eval_loss" in metrics:
            self.writer.emit("eval", step=state.global_step, eval_loss=_number(metrics["eval_loss"]))
        if kwargs.get("model") is not None:
            self.emit_samples(kwargs["model"], state.global_step)
        if self._last_log is not None:
            self._last_log = (time.time(), state.num_input_tokens_seen)   # eval time is not training time

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.job.save_totals(path, state.global_step)
        self.writer.emit("checkpoint", step=state.global_step, path=str(path))

    def emit_samples(self, model: Any, step: int) -> None:
        if self.sample_records and self.writer.is_main and self.last_samples_step != step:
            self.writer.emit("samples", step=step, samples=self._answers(model))
        self.last_samples_step = step
        self._last_log = (time.time(), self._last_log[1]) if self._last_log else None

    def _answers(self, model: Any) -> list[dict[str, Any]]:
        """Greedy answers to the fixed held-out prompts, rendered in the run's own prompt format."""
        from studio.train.data import prompt_ids, texts

        torch = self.torch
        settings = self.job.settings
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        answers = []
        try:
            with torch.no_grad():
                for record in self.sample_records:
                    prompt, _ = texts(self.tokenizer, settings.prompt_format, record)
                    ids = torch.tensor([prompt_ids(self.tokenizer, settings.prompt_format, prompt)],
                                       device=device)
                    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                         max_new_tokens=settings.sample_max_new_tokens, do_sample=False,
                                         eos_token_id=self.tokenizer.eos_token_id,
                                         pad_token_id=self.tokenizer.pad_token_id, use_cache=True)
                    answer = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
                    answers.append({"instruction": record.instruction, "input": record.input,
                                    "reference": record.output, "answer": answer})
        finally:
            if was_training:
                model.train()
        return answers


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
