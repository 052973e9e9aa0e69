"""Memory and time estimates for a LoRA run, from the base model's ``config.json`` and the settings.

Pure arithmetic (no torch), so the pre-flight check and the Train panel can show them before
anything is loaded. Every figure carries a ``method`` string that says how it was computed:
these are estimates to catch "this will not fit" and "this takes a week", not measurements.
"""
from __future__ import annotations

import math
from typing import Any

from studio.core.training.settings import ALL_LINEAR, TrainSettings

GB = 1024 ** 3
# Assumed sustained training throughput (model FLOPs actually achieved, not the card's peak).
CUDA_SUSTAINED_TFLOPS = 40.0       # ~40 % MFU on a consumer card with ~100 dense bf16 TFLOP/s peak
CPU_SUSTAINED_TFLOPS = 0.15        # a 135M-param LoRA run measured ~270 tokens/s on 2 CPU cores
PACKED_EFFICIENCY = 0.99           # real tokens per computed token slot when packing (padding-free)
PADDED_EFFICIENCY = 0.55           # padded random-order batches on Alpaca-like lengths: 46-64 % real
CPU_SECONDS_PER_TOKEN = 7e-5       # framework overhead: a 0.65M-param model runs ~14k tokens/s on one thread
CUDA_OVERHEAD_GB = 0.8             # CUDA context, allocator slack and kernels' workspaces

_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


def _dims(config: dict[str, Any]) -> dict[str, int]:
    """The Llama-family shape numbers, with the usual fallbacks (GPT-2 style names, missing kv heads)."""
    hidden = int(config.get("hidden_size") or config.get("n_embd") or config.get("d_model") or 0)
    layers = int(config.get("num_hidden_layers") or config.get("n_layer") or config.get("num_layers") or 0)
    heads = int(config.get("num_attention_heads") or config.get("n_head") or 0)
    vocab = int(config.get("vocab_size") or 0)
    if not (hidden and layers and heads and vocab):
        raise ValueError("the model's config.json lacks hidden_size, num_hidden_layers, "
                         "num_attention_heads or vocab_size, so its size cannot be estimated")
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    intermediate = int(config.get("intermediate_size") or config.get("n_inner") or 4 * hidden)
    return {"hidden": hidden, "layers": layers, "heads": heads, "kv_heads": kv_heads,
            "head_dim": head_dim, "intermediate": intermediate, "vocab": vocab}


def linear_shapes(model_config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear layer of one decoder block, by its Llama module name."""
    d = _dims(model_config)
    q_out = d["heads"] * d["head_dim"]
    kv_out = d["kv_heads"] * d["head_dim"]
    return {
        "q_proj": (d["hidden"], q_out), "k_proj": (d["hidden"], kv_out),
        "v_proj": (d["hidden"], kv_out), "o_proj": (q_out, d["hidden"]),
        "gate_proj": (d["hidden"], d["intermediate"]), "up_proj": (d["hidden"], d["intermediate"]),
        "down_proj": (d["intermediate"], d["hidden"]),
    }


def param_count(model_config: dict[str, Any]) -> int:
    """Parameters of a Llama-family model (Llama, Mistral, Qwen2, SmolLM...): embeddings, blocks, head.

    Biases are counted when ``attention_bias``/``mlp_bias`` say so; the output head is not
    counted again when ``tie_word_embeddings`` is true.
    """
    d = _dims(model_config)
    shapes = linear_shapes(model_config)
    block = sum(i * o for i, o in shapes.values()) + 2 * d["hidden"]        # two RMSNorms
    if model_config.get("attention_bias"):
        block += sum(shapes[name][1] for name in _ATTENTION)
    if model_config.get("mlp_bias"):
        block += sum(shapes[name][1] for name in _MLP)
    embed = d["vocab"] * d["hidden"]
    head = 0 if model_config.get("tie_word_embeddings", False) else embed
    return embed + d["layers"] * block + d["hidden"] + head


def lora_param_count(model_config: dict[str, Any], settings: TrainSettings) -> int:
    """Trainable LoRA parameters: r·(in + out) for each targeted linear layer of every block."""
    shapes = linear_shapes(model_config)
    targets = settings.lora_targets()
    names = list(shapes) if targets == ALL_LINEAR else [t for t in targets if t in shapes]
    per_block = sum(settings.lora_r * (shapes[n][0] + shapes[n][1]) for n in names)
    return _dims(model_config)["layers"] * per_block


def _weight_bytes_per_param(settings: TrainSettings, device: str) -> tuple[float, str]:
    if settings.load_in_4bit and device == "cuda":
        return 0.5625, "4-bit NF4 (4.5 bits per parameter with its quantisation constants)"
    precision = settings.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" else "fp32"
    return (4.0, "fp32") if precision == "fp32" else (2.0, precision)


def estimate(model_config: dict[str, Any], settings: TrainSettings, *, n_samples: int,
             mean_tokens: float, gpus: int = 1, device: str = "cuda",
             sustained_tflops: float | None = None) -> dict[str, Any]:
    """Memory per device and training time, each with the ``method`` that produced it.

    ``n_samples`` is the whole snapshot (the validation split is taken off here) and
    ``mean_tokens`` the mean tokenized length after ``max_length``. ``sustained_tflops``
    overrides the assumed rate (the GUI may know the card; this module never asks torch).
    """
    d = _dims(model_config)
    total_params = param_count(model_config)
    lora_params = lora_param_count(model_config, settings)
    gpus = max(1, int(gpus))

    # -- memory --------------------------------------------------------------------------------
    per_param, weight_kind = _weight_bytes_per_param(settings, device)
    embed_params = d["vocab"] * d["hidden"] * (1 if model_config.get("tie_word_embeddings") else 2)
    if settings.load_in_4bit and device == "cuda":
        weights = (total_params - embed_params) * per_param + embed_params * 2.0
        weight_method = (f"{total_params / 1e6:,.1f}M parameters: linear layers in {weight_kind}, "
                         "embeddings and output head kept in 16-bit")
    else:
        weights = total_params * per_param
        weight_method = f"{total_params / 1e6:,.1f}M parameters × {per_param:g} bytes ({weight_kind})"
    lora_state = lora_params * 16.0
    lora_method = (f"{lora_params / 1e6:,.2f}M LoRA parameters × 16 bytes: fp32 weights (4), "
                   "gradients (4) and AdamW's two moments (8)")

    act_bytes = 4.0 if per_param == 4.0 else 2.0
    if settings.packing:
        tokens_per_pass = settings.per_device_train_batch_size * min(mean_tokens, settings.max_length)
        pass_method = f"batch {settings.per_device_train_batch_size} × mean {mean_tokens:.0f} tokens (packed)"
    else:
        tokens_per_pass = settings.per_device_train_batch_size * settings.max_length
        pass_method = (f"batch {settings.per_device_train_batch_size} × max_length "
                       f"{settings.max_length} (padded, worst batch)")
    # Per token and block: the inputs kept for backward of the norms, q/k/v/o, the SwiGLU MLP and
    # the residual adds (~12·hidden + 4·intermediate values, SDPA attention keeps no score matrix).
    per_token_block = (12 * d["hidden"] + 4 * d["intermediate"]) * act_bytes
    logits = tokens_per_pass * d["vocab"] * 4.0 * 2         # fp32 logits and their gradient
    if settings.gradient_checkpointing:
        activations = tokens_per_pass * (d["layers"] * d["hidden"] * act_bytes + per_token_block) + logits
        act_method = (f"{pass_method}; gradient checkpointing keeps each block's input "
                      "(hidden × layers) plus one block recomputed at a time, plus fp32 logits and their gradient")
    else:
        activations = tokens_per_pass * d["layers"] * per_token_block + logits
        act_method = (f"{pass_method} × layers × (12·hidden + 4·intermediate) values, plus fp32 "
                      "logits and their gradient")
    overhead = CUDA_OVERHEAD_GB * GB if device == "cuda" else 0.0
    total = weights + lora_state + activations + overhead

    # -- time ----------------------------------------------------------------------------------
    held_out = min(int(n_samples * settings.validation_fraction), settings.max_validation_samples)
    train_samples = max(0, n_samples - held_out)
    per_step = settings.per_device_train_batch_size * settings.gradient_accumulation_steps * gpus
    steps_per_epoch = max(1, math.ceil(train_samples / per_step)) if train_samples else 0
    if settings.max_steps > 0:
        steps = settings.max_steps
        tokens = steps * per_step * mean_tokens
    else:
        steps = math.ceil(steps_per_epoch * settings.num_train_epochs)
        tokens = train_samples * mean_tokens * settings.num_train_epochs
    flops_per_token = (6 if settings.gradient_checkpointing else 4) * total_params
    efficiency = PACKED_EFFICIENCY if settings.packing else PADDED_EFFICIENCY
    rate = sustained_tflops or (CUDA_SUSTAINED_TFLOPS if device == "cuda" else CPU_SUSTAINED_TFLOPS)
    seconds = tokens * flops_per_token / efficiency / (rate * 1e12 * gpus)
    if device == "cpu":
        seconds += tokens * CPU_SECONDS_PER_TOKEN
    time_method = (
        f"{tokens:,.0f} real tokens × {'6' if settings.gradient_checkpointing else '4'}·N FLOPs "
        f"(forward 2·N, backward through the frozen weights 2·N, no weight gradients but LoRA's"
        f"{'; checkpointing recomputes the forward, +2·N' if settings.gradient_checkpointing else ''}; "
        f"attention scores ignored) ÷ {efficiency:.0%} real tokens per slot "
        f"({'packed' if settings.packing else 'padded'}) ÷ an assumed sustained "
        f"{rate:g} TFLOP/s per {'GPU' if device == 'cuda' else 'CPU'}"
        f"{f' × {gpus} GPUs (linear scaling)' if gpus > 1 else ''}"
        f"{f', plus {CPU_SECONDS_PER_TOKEN * 1e6:g} µs of framework overhead per token on the CPU' if device == 'cpu' else ''}")

    return {
        "device": device,
        "gpus": gpus,
        "parameters": total_params,
        "lora_parameters": lora_params,
        "memory": {
            "weights_gb": weights / GB,
            "lora_and_optimizer_gb": lora_state / GB,
            "activations_gb": activations / GB,
            "overhead_gb": overhead / GB,
            "total_gb": total / GB,
            "method": {
                "weights": weight_method,
                "lora_and_optimizer": lora_method,
                "activations": act_method,
                "overhead": (f"CUDA context and allocator slack, about {CUDA_OVERHEAD_GB:g} GB"
                             if device == "cuda" else "none counted on the CPU"),
                "total": "the sum, per device (each GPU holds a full copy under DDP)",
            },
        },
        "time": {
            "train_samples": train_samples,
            "steps": steps,
            "tokens": tokens,
            "flops": tokens * flops_per_token,
            "seconds": seconds,
            "sustained_tflops": rate,
            "method": time_method,
        },
    }
