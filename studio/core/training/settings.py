"""Training settings: one dataclass whose fields carry their own help text, and the presets.

Each field's ``metadata["help"]`` is the one sentence shown by ``train start --help``, the Train
panel's tooltip and the saved ``config.json`` (under ``"help"``), so the three never disagree.
Where transformers' ``TrainingArguments`` or peft's ``LoraConfig`` has the same setting, the
field has its name (``learning_rate``, ``lora_alpha`` …), so ``--set`` reads like their docs.
Pure Python: the GUI builds and validates settings without importing torch.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from studio.core.errors import StudioError

PROMPT_FORMATS = ("alpaca", "alpaca-lora", "chat")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SCHEDULES = ("cosine", "linear", "constant", "constant_with_warmup")
ALL_LINEAR = "all-linear"
DEFAULT_TRAINER = "peft-lora"  # the built-in trainer (python -m studio.train); also a run made before trainers


class SettingsError(StudioError):
    """A training setting is unknown or out of range."""


def _setting(default: Any, help: str, *, group: str, choices: tuple[str, ...] | None = None,
             minimum: float | None = None, maximum: float | None = None) -> Any:
    metadata = {"help": help, "group": group, "choices": choices, "min": minimum, "max": maximum}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainSettings:
    """Everything a run's user chooses. Paths and ids of a concrete run live in ``RunConfig``."""

    # -- data and prompt ------------------------------------------------------------------
    prompt_format: str = _setting(
        "alpaca", "How a sample becomes text: 'alpaca' (Stanford's exact prompt), 'alpaca-lora' "
        "(a newline after '### Response:') or 'chat' (the base model's own chat template).",
        group="Data", choices=PROMPT_FORMATS)
    train_on_inputs: bool = _setting(
        False, "Also compute the loss on the prompt tokens. Off: only the response (and its EOS) "
        "is learned; the prompt's labels are -100.", group="Data")
    max_length: int = _setting(
        512, "Longest sample in tokens (prompt + response + EOS); longer samples are cut at the "
        "end. The pre-flight check counts how many would be cut.", group="Data", minimum=16)
    packing: bool = _setting(
        True, "Padding-free batching: samples are packed end to end with their own position ids, "
        "so no compute is spent on padding. Off: each batch is padded to its longest sample.",
        group="Data")
    validation_fraction: float = _setting(
        0.05, "Share of the snapshot held out for the eval loss and the sample answers "
        "(at most max_validation_samples).", group="Data", minimum=0.0, maximum=0.5)
    max_validation_samples: int = _setting(
        200, "Upper bound on held-out samples, so evaluation stays quick on a large snapshot.",
        group="Data", minimum=0)
    sample_prompts: int = _setting(
        3, "How many fixed held-out prompts the model answers (greedily) at each eval, so you "
        "can read what it learns as it learns.", group="Data", minimum=0, maximum=10)
    sample_max_new_tokens: int = _setting(
        96, "Longest sample answer, in new tokens.", group="Data", minimum=1)
    seed: int = _setting(42, "Random seed for the split, the data order, LoRA's initialisation "
                         "and dropout: the same seed and data repeat the run.", group="Data")

    # -- optimisation ---------------------------------------------------------------------
    num_train_epochs: float = _setting(3.0, "Passes over the training split.", group="Optimisation",
                                       minimum=0.0)
    max_steps: int = _setting(-1, "Stop after this many optimiser steps (-1: run all epochs).",
                              group="Optimisation", minimum=-1)
    per_device_train_batch_size: int = _setting(
        4, "Samples per forward pass on each device (with packing: about this many samples' "
        "tokens per pass). Lower it first when memory runs out.", group="Optimisation", minimum=1)
    gradient_accumulation_steps: int = _setting(
        8, "Forward passes per optimiser step; the effective batch is this times the batch "
        "size times the number of GPUs.", group="Optimisation", minimum=1)
    learning_rate: float = _setting(2e-4, "Peak learning rate of the LoRA weights.",
                                    group="Optimisation", minimum=0.0)
    lr_scheduler_type: str = _setting("cosine", "How the learning rate falls after warmup.",
                                      group="Optimisation", choices=SCHEDULES)
    warmup_ratio: float = _setting(0.03, "Share of all steps spent warming the learning rate up "
                                   "from zero (ignored when warmup_steps > 0).",
                                   group="Optimisation", minimum=0.0, maximum=1.0)
    warmup_steps: int = _setting(0, "Warmup length in steps; 0 uses warmup_ratio.",
                                 group="Optimisation", minimum=0)
    weight_decay: float = _setting(0.0, "AdamW weight decay.", group="Optimisation", minimum=0.0)
    max_grad_norm: float = _setting(1.0, "Gradients are clipped to this norm.", group="Optimisation",
                                    minimum=0.0)

    # -- LoRA ------------------------------------------------------------------------------
    lora_r: int = _setting(16, "LoRA rank: the size of the low-rank update. Higher learns more "
                           "and costs more memory.", group="LoRA", minimum=1)
    lora_alpha: int = _setting(32, "LoRA scaling: the update is multiplied by lora_alpha / lora_r.",
                               group="LoRA", minimum=1)
    lora_dropout: float = _setting(0.05, "Dropout on the LoRA input.", group="LoRA",
                                   minimum=0.0, maximum=0.9)
    target_modules: list[str] | str = _setting(
        ALL_LINEAR, "Which layers get LoRA: 'all-linear' (every linear layer but the output head) "
        "or a comma-separated list such as q_proj,v_proj.", group="LoRA")
    load_in_4bit: bool = _setting(
        False, "QLoRA: load the base model in 4-bit NF4 (needs CUDA and the 'qlora' extra, "
        "bitsandbytes). Saves about three quarters of the base model's memory.", group="LoRA")

    # -- hardware and bookkeeping ------------------------------------------------------------
    precision: str = _setting(
        "auto", "Number format: 'auto' picks bf16 on GPUs that have it, else fp16 on a GPU, else "
        "fp32 on the CPU.", group="Hardware", choices=PRECISIONS)
    gradient_checkpointing: bool = _setting(
        False, "Recompute activations in the backward pass: much less memory, about a third slower.",
        group="Hardware")
    use_cpu: bool = _setting(False, "Train on the CPU even when a GPU is present.", group="Hardware")
    torch_threads: int = _setting(0, "CPU threads for the training process (0: all cores).",
                                  group="Hardware", minimum=0)
    logging_steps: int = _setting(1, "Write a log event (loss, learning rate, tokens/s) every N steps.",
                                  group="Checkpoints", minimum=1)
    eval_steps: int = _setting(50, "Evaluate and answer the sample prompts every N steps "
                               "(0: only at the end).", group="Checkpoints", minimum=0)
    save_steps: int = _setting(100, "Write a checkpoint every N steps (and always at Stop).",
                               group="Checkpoints", minimum=1)
    save_total_limit: int = _setting(3, "Keep at most this many checkpoints (the newest).",
                                     group="Checkpoints", minimum=1)
    trust_remote_code: bool = _setting(
        False, "Run Python code shipped with the base model (some architectures need it). Only "
        "for models you trust.", group="Hardware")
    trainer: str = _setting(
        DEFAULT_TRAINER, "Which trainer runs the job: 'peft-lora' (the studio's own, python -m studio.train) "
        "or a plugin's (distill-studio plugins list shows them).", group="Hardware")

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the first bad setting."""
        for f in fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            if meta.get("choices") and value not in meta["choices"]:
                raise SettingsError(f"{f.name} must be one of {', '.join(meta['choices'])}, not {value!r}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if meta.get("min") is not None and value < meta["min"]:
                    raise SettingsError(f"{f.name} must be at least {meta['min']:g}, not {value:g}")
                if meta.get("max") is not None and value > meta["max"]:
                    raise SettingsError(f"{f.name} must be at most {meta['max']:g}, not {value:g}")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise SettingsError("set num_train_epochs above 0 or max_steps to a positive number")
        if not self.target_modules:
            raise SettingsError("target_modules is empty: use 'all-linear' or name the layers")
        if not self.trainer.strip():
            raise SettingsError("trainer is empty: use 'peft-lora' or a plugin's trainer")

    def lora_targets(self) -> list[str] | str:
        """``target_modules`` as peft takes it: ``"all-linear"`` or a list of names."""
        if isinstance(self.target_modules, str):
            if self.target_modules == ALL_LINEAR:
                return ALL_LINEAR
            return [name.strip() for name in self.target_modules.split(",") if name.strip()]
        return list(self.target_modules)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        """Settings from a saved config; unknown keys are an error that lists the known ones."""
        unknown = sorted(set(data) - set(setting_names()))
        if unknown:
            raise SettingsError(_unknown_message(unknown[0]))
        settings = cls(**{key: _coerce(key, value) for key, value in data.items()})
        settings.validate()
        return settings

    def with_overrides(self, overrides: dict[str, Any]) -> TrainSettings:
        return TrainSettings.from_dict({**self.to_dict(), **overrides})


def setting_names() -> list[str]:
    return [f.name for f in fields(TrainSettings)]


def setting_help(name: str) -> str:
    return _field(name).metadata["help"]


def help_by_name() -> dict[str, str]:
    return {f.name: f.metadata["help"] for f in fields(TrainSettings)}


def setting_groups() -> dict[str, list[str]]:
    """Setting names by the group the panel shows them in, in declaration order."""
    groups: dict[str, list[str]] = {}
    for f in fields(TrainSettings):
        groups.setdefault(f.metadata["group"], []).append(f.name)
    return groups


def setting_meta(name: str) -> dict[str, Any]:
    f = _field(name)
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    return {**f.metadata, "name": name, "default": default}


def _field(name: str):
    for f in fields(TrainSettings):
        if f.name == name:
            return f
    raise SettingsError(_unknown_message(name))


def _unknown_message(name: str) -> str:
    return f"unknown training setting {name!r}; known settings: {', '.join(setting_names())}"


def _coerce(name: str, value: Any) -> Any:
    """A value from JSON or the command line, as the field's type; a clear error otherwise."""
    f = _field(name)
    default = setting_meta(name)["default"]
    if name == "target_modules":
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value
        raise SettingsError("target_modules must be 'all-linear' or a list of layer names")
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, (bool, int)):
                return bool(value)
            raise ValueError(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(type(default), "text")
        raise SettingsError(f"{f.name} must be {kind}, not {value!r}") from None


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as typed overrides; an unknown key lists the known ones."""
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--set wants KEY=VALUE, not {assignment!r}")
        _field(key)
        value: Any = raw
        if raw.strip().startswith("["):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise SettingsError(f"{key}: {raw!r} is not a JSON list") from None
        overrides[key] = _coerce(key, value)
    return overrides


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    settings: dict[str, Any]


PRESETS: dict[str, Preset] = {
    "alpaca": Preset(
        "alpaca",
        "Stanford Alpaca's recipe adapted to LoRA: 3 epochs, cosine schedule, 3 % warmup, max "
        "length 512, Stanford's prompt, effective batch 128 (4 × 32 accumulation on one GPU), "
        "no weight decay; learning rate 2e-4 instead of full fine-tuning's 2e-5, LoRA r 16 on all "
        "linear layers.",
        {"prompt_format": "alpaca", "num_train_epochs": 3.0, "lr_scheduler_type": "cosine",
         "warmup_ratio": 0.03, "warmup_steps": 0, "max_length": 512, "learning_rate": 2e-4,
         "per_device_train_batch_size": 4, "gradient_accumulation_steps": 32, "weight_decay": 0.0,
         "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ALL_LINEAR,
         "train_on_inputs": False},
    ),
    "alpaca-lora": Preset(
        "alpaca-lora",
        "tloen/alpaca-lora's defaults: LoRA r 8, alpha 16, dropout 0.05 on q_proj and v_proj, "
        "learning rate 3e-4, cutoff 256 tokens, 3 epochs, effective batch 128 (4 × 32), 100 warmup "
        "steps, its prompt variant, loss on the inputs too (its train_on_inputs default).",
        {"prompt_format": "alpaca-lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05,
         "target_modules": ["q_proj", "v_proj"], "learning_rate": 3e-4, "max_length": 256,
         "num_train_epochs": 3.0, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 32,
         "warmup_steps": 100, "lr_scheduler_type": "linear", "train_on_inputs": True},
    ),
}


def preset_settings(name: str | None) -> TrainSettings:
    """Defaults with a preset applied; ``None`` is the plain defaults."""
    if name is None:
        return TrainSettings()
    if name not in PRESETS:
        raise SettingsError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return TrainSettings().with_overrides(PRESETS[name].settings)
