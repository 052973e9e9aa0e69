"""The training job: ``python -m studio.train CONFIG.json`` (also under torchrun / accelerate launch).

One run: read the RunConfig, load the base model and tokenizer, tokenize the snapshot with
``studio.train.data`` (our loss mask), wrap the model in LoRA (peft) and train it with TRL's
``SFTTrainer`` on the pre-tokenized ``input_ids``/``labels``, so our masking is what trains.
``settings.packing`` turns on TRL's padding-free batching (a batch is its samples laid end to end
with their own position ids; transformers 5 turns those into a block-diagonal mask for SDPA and
eager attention, so packed samples do not see each other). Everything the GUI needs arrives as
events (``studio.core.training.events``); a failure is one ``error`` event with a hint, exit 1.
Stop: ``stop.request`` in the run dir (or ``$STUDIO_STOP_FILE``, or SIGTERM) is checked every
step; the job checkpoints, saves the adapter, emits ``stopped`` and exits 0.
"""
from __future__ import annotations

import io
import json
import os
import platform
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from studio.core.training.run_config import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    PROVENANCE_FILE,
    TOKENIZER_DIR,
    RunConfig,
    RunConfigError,
)
from studio.core.training.settings import SettingsError
from studio.core.training.split import split_records  # the split core shares (evaluation sets)
from studio.train.events_out import EventWriter

# In each checkpoint: the loss sum, steps and seconds of every leg up to it, so a resumed run's
# ``done`` reports the whole run (the Trainer's own figures cover only the steps of one train()).
TOTALS_FILE = "studio_totals.json"
STOP_ENV = "STUDIO_STOP_FILE"
OOM_HINT = ("lower per_device_train_batch_size (raise gradient_accumulation_steps to keep the "
            "effective batch), lower max_length, turn on gradient_checkpointing, or set load_in_4bit")


class JobError(Exception):
    """A failure with a plain message and a hint, reported as one ``error`` event."""

    def __init__(self, message: str, hint: str = "", kind: str = "error") -> None:
        super().__init__(message)
        self.message, self.hint, self.kind = message, hint, kind


def main(argv: list[str] | None = None) -> int:
    """Run the job; returns the exit code (0 on ``done`` or ``stopped``, 1 on ``error``)."""
    argv = sys.argv[1:] if argv is None else argv
    writer = EventWriter()
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        writer.error("usage: python -m studio.train CONFIG.json",
                     "pass the path of a run's config.json", kind="usage")
        return 1
    config_path = Path(argv[0])
    try:
        config = RunConfig.read(config_path)
    except (RunConfigError, SettingsError) as exc:
        _attach_if_known(writer, config_path)
        writer.error(str(exc), f"fix {config_path} (setting names: see `distill-studio train start --help`)",
                     kind="config")
        return 1
    writer.attach(config.dir)
    pid_path = config.pid_path
    if writer.is_main:
        pid_path.write_text(f"{os.getpid()}\n", encoding="utf-8")
        # A stop request is for the job that was running; a new start or a Resume must not obey it.
        config.stop_path.unlink(missing_ok=True)
    try:
        return Job(config, writer).run()
    except JobError as exc:
        writer.error(exc.message, exc.hint, kind=exc.kind)
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure becomes one error event
        if _is_oom(exc):
            writer.error("out of memory while training", OOM_HINT, kind="oom")
        else:
            traceback.print_exc(file=sys.stderr)
            writer.error(f"training failed: {type(exc).__name__}: {exc}",
                         "see the job's stderr for the traceback", kind="internal")
        return 1
    finally:
        if writer.is_main:
            pid_path.unlink(missing_ok=True)
        writer.close()
        _finish_distributed()


def build_trainer(config: RunConfig, *, writer: EventWriter | None = None) -> Any:
    """The ``SFTTrainer`` the job would train with for ``config``, not yet trained (benchmarks use it).

    Its events go to ``writer`` (by default kept in memory, not printed); ``trainer.train()``
    then trains exactly as ``python -m studio.train`` does, minus the final adapter save.
    Raises :class:`JobError` where the job would emit an ``error`` event.
    """
    config.dir.mkdir(parents=True, exist_ok=True)
    trainer, _ = Job(config, writer or EventWriter(stream=io.StringIO())).prepare()
    return trainer


def _attach_if_known(writer: EventWriter, config_path: Path) -> None:
    """A config that fails validation may still name its run dir: report there too."""
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("run_dir"), str) and data["run_dir"]:
            writer.attach(Path(data["run_dir"]))
    except (OSError, ValueError):
        pass


def _is_oom(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


def _finish_distributed() -> None:
    """A final barrier before tearing the process group down (a rank sometimes aborted at exit without it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    except Exception as exc:  # noqa: BLE001 - exiting anyway
        print(f"distributed teardown: {exc}", file=sys.stderr)


class Job:
    """One training run, from a resolved config to ``done``/``stopped``."""

    def __init__(self, config: RunConfig, writer: EventWriter) -> None:
        self.config = config
        self.settings = config.settings
        self.writer = writer
        self.started = time.time()
        self.stop_flag = False
        self.trainer: Any = None
        self.previous: dict[str, float] = {}    # totals of the legs before this one (from the checkpoint)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> int:
        trainer, callback = self.prepare()
        result = trainer.train(resume_from_checkpoint=self.resume_from)
        step = trainer.state.global_step
        if callback.stopped:
            adapter = self._save_outputs(trainer, self.tokenizer)
            last = _last_checkpoint(self.checkpoints_dir)
            self.writer.emit("stopped", step=step, checkpoint=last, adapter=adapter)
            return 0
        if self.has_eval and callback.last_eval_step != step:
            trainer.evaluate()              # the final eval loss and sample answers
        elif not self.has_eval:
            callback.emit_samples(trainer.model, step)
        adapter = self._save_outputs(trainer, self.tokenizer)
        loss, runtime, legs = self.run_totals(result.training_loss, step)
        # train_loss: the mean over every step of the run; runtime_s: the sum of all legs (resumes).
        self.writer.emit("done", step=step, adapter=adapter, train_loss=loss, runtime_s=round(runtime, 3),
                         legs=legs)
        return 0

    def run_totals(self, leg_loss: float | None, step: int) -> tuple[float | None, float, int]:
        """(train loss over all steps, seconds over all legs, legs) from this leg and the checkpoint's totals."""
        runtime = time.time() - self.started
        prev = self.previous
        if not prev:
            return (float(leg_loss) if leg_loss is not None else None), runtime, 1
        runtime += float(prev.get("runtime_s", 0.0))
        legs = int(prev.get("legs", 1)) + 1
        before = int(prev.get("steps", 0))
        if leg_loss is None or step <= 0:
            return None, runtime, legs
        total = float(prev.get("loss_sum", 0.0)) + float(leg_loss) * max(step - before, 0)
        return total / step, runtime, legs

    def save_totals(self, checkpoint: Path, step: int) -> None:
        """Called when a checkpoint is written: the running totals travel with it."""
        trainer = self.trainer
        if trainer is None or not self.writer.is_main or not checkpoint.is_dir():
            return
        pending = getattr(trainer, "_tr_loss", None)
        leg_sum = float(getattr(trainer, "_total_loss_scalar", 0.0) or 0.0)
        if pending is not None:
            leg_sum += float(pending.item() if hasattr(pending, "item") else pending)
        prev = self.previous
        totals = {"loss_sum": float(prev.get("loss_sum", 0.0)) + leg_sum, "steps": step,
                  "runtime_s": float(prev.get("runtime_s", 0.0)) + time.time() - self.started,
                  "legs": int(prev.get("legs", 0)) + 1}
        (checkpoint / TOTALS_FILE).write_text(json.dumps(totals) + "\n", encoding="utf-8")

    def prepare(self) -> tuple[Any, Any]:
        """Everything before ``train()``: tokenizer, data, LoRA model, the ``config`` event, the trainer."""
        settings = self.settings
        if settings.torch_threads > 0:
            os.environ["OMP_NUM_THREADS"] = str(settings.torch_threads)
        _quiet_libraries()
        import torch

        if settings.torch_threads > 0:
            torch.set_num_threads(settings.torch_threads)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)     # SIGTERM: stop at the next step

        device = self._device(torch)
        tokenizer = self._load_tokenizer()
        train_examples, eval_examples, sample_records = self._data(tokenizer)
        model = self._load_model(torch, device)
        checkpoint = self._resume_checkpoint()
        provenance = self._provenance(device, model)
        self.writer.emit("config", run_id=self.config.run_id, config=self.config.to_dict(),
                         versions=provenance["versions"], device=device, resume_from=checkpoint,
                         train_samples=len(train_examples), eval_samples=len(eval_examples),
                         provenance=provenance)
        if self.writer.is_main:
            (self.config.dir / PROVENANCE_FILE).write_text(
                json.dumps(provenance, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

        self.tokenizer, self.resume_from, self.has_eval = tokenizer, checkpoint, bool(eval_examples)
        return self._trainer(torch, model, tokenizer, device, train_examples, eval_examples, sample_records)

    @property
    def checkpoints_dir(self) -> Path:
        return self.config.dir / CHECKPOINTS_DIR

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stop_flag = True

    def stop_requested(self) -> bool:
        if self.stop_flag or self.config.stop_path.exists():
            return True
        env = os.environ.get(STOP_ENV)
        return bool(env) and Path(env).exists()

    # -- pieces ---------------------------------------------------------------------------
    def _device(self, torch: Any) -> str:
        if self.settings.use_cpu or not torch.cuda.is_available():
            if self.settings.load_in_4bit:
                raise JobError("load_in_4bit needs a CUDA GPU, and this run is on the CPU",
                               "turn load_in_4bit off, or run on a machine with an NVIDIA GPU", kind="config")
            return "cpu"
        return f"cuda ({torch.cuda.get_device_name(0)})"

    def _precision(self, torch: Any, device: str) -> str:
        wanted = self.settings.precision
        if device == "cpu":
            if wanted in ("bf16", "fp16"):
                raise JobError(f"precision {wanted} needs a GPU; this run is on the CPU",
                               "set precision to auto or fp32", kind="config")
            return "fp32"
        if wanted == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if wanted == "bf16" and not torch.cuda.is_bf16_supported():
            raise JobError("this GPU has no bf16", "set precision to auto or fp16", kind="config")
        return wanted

    def _model_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"trust_remote_code": self.settings.trust_remote_code}
        if self.config.base_model_revision:
            kwargs["revision"] = self.config.base_model_revision
        return kwargs

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        base = self.config.base_model
        try:
            tokenizer = AutoTokenizer.from_pretrained(base, **self._model_kwargs())
        except Exception as exc:  # noqa: BLE001 - translated into one plain message
            raise self._model_error(exc) from None
        if tokenizer.eos_token is None:
            raise JobError(f"the tokenizer of {base} has no EOS token, so the model could never learn to stop",
                           "choose another base model", kind="model")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def _model_error(self, exc: Exception) -> JobError:
        base = self.config.base_model
        text = str(exc)
        if "trust_remote_code" in text:
            return JobError(f"{base} needs to run its own Python code (remote code), which is not allowed",
                            "tick trust_remote_code if you trust this model", kind="remote_code")
        local = Path(base).expanduser()
        if local.is_absolute() or base.startswith(".") or local.exists():
            if not local.exists():
                return JobError(f"base model folder {base} does not exist",
                                "choose an existing model folder or a hub id", kind="model")
            if local.is_dir() and not (local / "config.json").is_file():
                return JobError(f"{base} is not a model folder: it has no config.json",
                                "choose a folder with config.json, weights and tokenizer files", kind="model")
            return JobError(f"{base} is not a model folder transformers can load ({text.splitlines()[0] if text else type(exc).__name__})",
                            "choose a folder with config.json, weights and tokenizer files", kind="model")
        if os.environ.get("HF_HUB_OFFLINE") or "offline" in text.lower() or "connect" in text.lower():
            return JobError(f"cannot download {base}: offline and not in the Hugging Face cache",
                            "connect to the internet or choose a local model folder", kind="model")
        first = text.splitlines()[0] if text else type(exc).__name__
        return JobError(f"cannot load base model {base}: {first}",
                        "check the hub id, the revision and your access to it", kind="model")

    def _data(self, tokenizer: Any) -> tuple[list[dict], list[dict], list]:
        from studio.core.training.prompt_format import PromptFormatError
        from studio.train.data import build_example, read_snapshot

        path = Path(self.config.data_path)
        try:
            records = read_snapshot(path)
        except FileNotFoundError:
            raise JobError(f"snapshot data {path} does not exist",
                           "export the snapshot again or fix data_path in the config", kind="data") from None
        except ValueError as exc:
            raise JobError(str(exc), "fix or re-export the snapshot", kind="data") from None
        if not records:
            raise JobError(f"snapshot {self.config.snapshot_name or path} has no samples",
                           "choose a snapshot with samples", kind="data")
        train_records, eval_records = split_records(records, self.settings)

        def encode(batch: list) -> list[dict]:
            rows = []
            for record in batch:
                try:
                    example = build_example(tokenizer, self.settings.prompt_format, record,
                                            max_length=self.settings.max_length,
                                            train_on_inputs=self.settings.train_on_inputs)
                except PromptFormatError as exc:
                    raise JobError(str(exc), "set prompt_format to alpaca or alpaca-lora", kind="config") from None
                except ValueError as exc:
                    raise JobError(str(exc), "choose another base model", kind="model") from None
                if any(label != -100 for label in example.labels):
                    rows.append({"input_ids": example.input_ids, "labels": example.labels})
            return rows

        train_rows = encode(train_records)
        if not train_rows:
            raise JobError("no training sample has a response left after cutting at max_length",
                           "raise max_length", kind="data")
        samples = (eval_records or train_records)[: self.settings.sample_prompts]
        return train_rows, encode(eval_records), samples

    def _load_model(self, torch: Any, device: str) -> Any:
        from transformers import AutoModelForCausalLM

        precision = self._precision(torch, device)
        self.precision = precision
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
        kwargs = self._model_kwargs()
        local = Path(self.config.base_model)
        if local.is_dir() and any(local.glob("*.safetensors")):
            kwargs["use_safetensors"] = True
        if self.settings.load_in_4bit:
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                raise JobError("load_in_4bit needs bitsandbytes, which is not installed",
                               "install the 'qlora' extra (pip install 'distill-studio[qlora]')",
                               kind="dependency") from None
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype)
        try:
            model = AutoModelForCausalLM.from_pretrained(self.config.base_model, dtype=dtype, **kwargs)
        except Exception as exc:
            if _is_oom(exc):
                raise
            raise self._model_error(exc) from None
        from peft import LoraConfig, get_peft_model
        from transformers import set_seed

        if self.settings.load_in_4bit:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=self.settings.gradient_checkpointing)
        set_seed(self.settings.seed)                     # LoRA's initialisation repeats with the seed
        lora = LoraConfig(r=self.settings.lora_r, lora_alpha=self.settings.lora_alpha,
                          lora_dropout=self.settings.lora_dropout,
                          target_modules=self.settings.lora_targets(), task_type="CAUSAL_LM")
        try:
            model = get_peft_model(model, lora)
        except ValueError as exc:
            raise JobError(f"LoRA cannot be applied: {exc}",
                           "set target_modules to all-linear or to layer names this model has",
                           kind="config") from None
        if self.settings.gradient_checkpointing:
            model.enable_input_require_grads()
        return model

    def _resume_checkpoint(self) -> str | None:
        if not self.config.resume:
            return None
        last = _last_checkpoint(self.checkpoints_dir)
        if last is None:
            raise JobError(f"nothing to resume: {self.checkpoints_dir} has no checkpoint",
                           "start the run again instead of resuming", kind="config")
        self._refuse_finished(last, self.settings.max_steps)
        try:
            totals = json.loads((Path(last) / TOTALS_FILE).read_text(encoding="utf-8"))
            self.previous = totals if isinstance(totals, dict) else {}
        except (OSError, ValueError):
            self.previous = {}             # a checkpoint from before the totals: this leg only
        return last

    def _refuse_finished(self, checkpoint: str, max_steps: int) -> None:
        """A checkpoint at the end of the schedule has nothing left to train (Trainer would add a step)."""
        try:
            state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        step = int(state.get("global_step") or 0)
        total = max_steps if max_steps and max_steps > 0 else int(state.get("max_steps") or 0)
        if total > 0 and step >= total:
            raise JobError(f"nothing to resume: {checkpoint} is already at step {step} of {total}",
                           "the run is done; start a new run (or raise max_steps) to train more",
                           kind="config")

    def _provenance(self, device: str, model: Any) -> dict[str, Any]:
        """What is needed to repeat the run: data hash, base model and its revision, versions, seed."""
        versions = {"python": platform.python_version()}
        for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers"):
            module = sys.modules.get(name)
            if module is None:
                try:
                    module = __import__(name)
                except ImportError:
                    continue
            versions[name] = getattr(module, "__version__", "?")
        base = Path(self.config.base_model)
        files: dict[str, int] = {}
        hashes: dict[str, str] = {}
        if base.is_dir():
            files = {p.name: p.stat().st_size for p in sorted(base.iterdir()) if p.is_file()}
            if self.writer.is_main:
                hashes = self._base_model_hashes(base, files)
        commit = getattr(getattr(model, "config", None), "_commit_hash", None)
        return {"run_id": self.config.run_id, "run_name": self.config.run_name,
                "snapshot_name": self.config.snapshot_name, "snapshot_hash": self.config.snapshot_hash,
                "data_path": self.config.data_path, "base_model": self.config.base_model,
                "base_model_is_local": base.is_dir(), "base_model_revision": self.config.base_model_revision,
                "base_model_commit": commit, "base_model_files": files, "base_model_sha256": hashes,
                "seed": self.settings.seed,
                "precision": getattr(self, "precision", None), "device": device,
                "world_size": int(os.environ.get("WORLD_SIZE", "1") or 1), "versions": versions}

    def _base_model_hashes(self, base: Path, sizes: dict[str, int]) -> dict[str, str]:
        """sha256 of the weights, config and tokenizer files of a local base model, streamed.

        Hashing can take minutes for GBs of weights, so a resumed run reuses the hashes of its
        previous leg's provenance when the same folder still has the same files and sizes.
        """
        if self.config.resume:
            try:
                before = json.loads((self.config.dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                before = {}
            old = before.get("base_model_sha256") if isinstance(before, dict) else None
            if (old and before.get("base_model") == self.config.base_model
                    and before.get("base_model_files") == sizes):
                return dict(old)
        import hashlib

        hashes = {}
        for name in sizes:
            if _hashed_model_file(name):
                with open(base / name, "rb") as handle:
                    hashes[name] = hashlib.file_digest(handle, "sha256").hexdigest()
        return hashes

    def _trainer(self, torch: Any, model: Any, tokenizer: Any, device: str, train_rows: list[dict],
                 eval_rows: list[dict], sample_records: list) -> tuple[Any, Any]:
        from datasets import Dataset
        from transformers.trainer_callback import PrinterCallback, ProgressCallback
        from trl import SFTConfig, SFTTrainer

        from studio.train.callback import StudioCallback

        s = self.settings
        evaluate = bool(eval_rows) and s.eval_steps > 0
        # transformers 5: warmup_steps below 1 is a ratio of all steps (warmup_ratio is gone).
        warmup: float | int = s.warmup_steps if s.warmup_steps > 0 else min(float(s.warmup_ratio), 0.999)
        args = SFTConfig(
            output_dir=str(self.checkpoints_dir),
            per_device_train_batch_size=s.per_device_train_batch_size,
            per_device_eval_batch_size=s.per_device_train_batch_size,
            gradient_accumulation_steps=s.gradient_accumulation_steps,
            num_train_epochs=s.num_train_epochs, max_steps=s.max_steps,
            learning_rate=s.learning_rate, lr_scheduler_type=s.lr_scheduler_type,
            warmup_steps=warmup, weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm,
            logging_steps=s.logging_steps, logging_first_step=True,
            eval_strategy="steps" if evaluate else "no", eval_steps=s.eval_steps if evaluate else None,
            save_strategy="steps", save_steps=s.save_steps, save_total_limit=s.save_total_limit,
            seed=s.seed, data_seed=s.seed,
            bf16=self.precision == "bf16", fp16=self.precision == "fp16", use_cpu=device == "cpu",
            gradient_checkpointing=s.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if s.gradient_checkpointing else None,
            report_to=[], disable_tqdm=True, prediction_loss_only=True,
            # padding-free batches hold no padding at all (and a pad id equal to EOS must still count)
            include_num_input_tokens_seen="all" if s.packing else "non_padding",
            # Our examples are already cut at max_length and carry our labels; TRL must not re-cut them.
            max_length=None, packing=False, padding_free=s.packing,
            dataset_num_proc=None, remove_unused_columns=True,
            # LoRA leaves the frozen base without gradients on purpose; DDP must not search for
            # unused parameters (always False: torchrun with one process wraps in DDP too).
            ddp_find_unused_parameters=False,
        )
        callback = StudioCallback(self, tokenizer, sample_records, torch)
        callback.samples_on_steps = not eval_rows and s.eval_steps > 0
        trainer = _sft_trainer_class(SFTTrainer, model_loss=device == "cpu")(
            model=model, args=args, processing_class=tokenizer,
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
            callbacks=[callback],
        )
        for unwanted in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(unwanted)
        self.trainer = trainer
        return trainer, callback

    def _save_outputs(self, trainer: Any, tokenizer: Any) -> str:
        adapter = self.config.dir / ADAPTER_DIR
        trainer.accelerator.wait_for_everyone()
        if self.writer.is_main:
            trainer.model.save_pretrained(str(adapter))
            tokenizer.save_pretrained(str(self.config.dir / TOKENIZER_DIR))
        return str(adapter)


def _sft_trainer_class(base: type, *, model_loss: bool) -> type:
    """TRL's SFTTrainer, with the model's own loss on learned positions only, on the CPU.

    TRL 1.x computes the loss through its fused LM-head kernel (never materialising the full
    logits, plus entropy/accuracy metrics). On a GPU that saves the memory of a
    tokens × vocabulary logits tensor; on the CPU it costs ~30 % per token
    (benchmarks/train_throughput.py). There the model's own forward is asked (transformers'
    ``logits_to_keep``) for logits only at positions whose next token is learned: the prompt
    tokens never reach the LM head, which on a small model is a large share of the work.
    The labels are the same, so the masking is unchanged: the padding-free collator puts -100
    at every sequence start, and no token is predicted across a packed boundary.
    """
    if not model_loss:
        return base

    class LearnedPositionsSFTTrainer(base):  # type: ignore[misc, valid-type]
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch
            import torch.nn.functional as F

            inputs = dict(inputs)
            labels = inputs.pop("labels")
            shift = inputs.pop("shift_labels", None)
            if shift is None:  # the target at position t is the label of t + 1
                shift = F.pad(labels[..., 1:], (0, 1), value=-100)
            keep = (shift != -100).any(dim=0).nonzero().squeeze(-1)
            outputs = model(**inputs, use_cache=False, logits_to_keep=keep)
            targets = shift[:, keep]
            loss = F.cross_entropy(outputs.logits.float().flatten(0, 1), targets.flatten(),
                                   ignore_index=-100, reduction="sum")
            count = num_items_in_batch if num_items_in_batch is not None else (targets != -100).sum()
            loss = loss / torch.as_tensor(count, device=loss.device).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients across ranks
            return (loss, outputs) if return_outputs else loss

    return LearnedPositionsSFTTrainer


_HASHED_NAMES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                 "chat_template.jinja", "chat_template.json")


def _hashed_model_file(name: str) -> bool:
    """The files that decide what the base model computes: weights, config, tokenizer."""
    return name in _HASHED_NAMES or name.endswith((".safetensors", ".bin", ".safetensors.index.json",
                                                   ".bin.index.json"))


def _last_checkpoint(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    steps = []
    for path in folder.iterdir():
        if (path.name.startswith("checkpoint-") and path.name[11:].isdigit()
                and (path / "trainer_state.json").exists()):
            steps.append((int(path.name[11:]), path))
    return str(max(steps)[1]) if steps else None


def _quiet_libraries() -> None:
    """No progress bars or advisory chatter: stdout is the events stream."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)   # renamed-argument notices, not problems

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()


