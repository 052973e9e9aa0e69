"""Training on an NVIDIA GPU: a ~1B-parameter random-weight Llama, bf16 LoRA, our trainer
against Stanford Alpaca's padded ``Trainer`` — tokens/s, peak memory and model-FLOPs utilisation.

    python benchmarks/train_gpu.py [--steps 40] [--batch-size 16] [--peak-tflops 790]
    python benchmarks/train_gpu.py --smoke      # tiny config on the CPU, to test the script

Sized to finish in well under 8 minutes on one H200 (most of it building and loading the
2.2 GB model twice). The model: hidden 2048, 16 layers, intermediate 5504, 16 heads, 32,000
vocabulary rows (0.94B parameters with the untied output head), random weights, bf16; LoRA
r 16 / alpha 32 on all linear layers; the tokenizer is a byte-level BPE trained on the Alpaca
sample itself, so sample lengths follow the real Alpaca distribution. Both trainers see the
same samples in the same order (``benchmarks/train_models.py``: same seed, same tokenization,
same meter: real tokens = not pad, warm-up steps left out, CUDA synchronised at each step end).

Model-FLOPs utilisation = model FLOPs per real token x real tokens/s / the card's peak
(``--peak-tflops``, default 790: H200 dense bf16). Model FLOPs per token = 6 N + 12 L d s:
N = parameters doing matmuls (all but the input embedding), 6 N = forward 2 N + backward 4 N
(the usual full-training convention); 12 L d s = PaLM's attention term, with s the
token-weighted mean sample length (attention runs within a sample, never across padding or
packed neighbours). LoRA never computes the frozen weights' gradients, so the hardware does
only about 4 N + 12 L d s per token: ``mfu_lora`` reports that figure too. Padding is never
counted as useful work, so the padded trainer's MFU is what it delivers, not what it burns.
On a GPU the job keeps TRL's fused LM-head loss (no tokens × vocabulary logits tensor); a third
run, ``ours_model_loss``, forces the model's own loss (``train_models.use_loss``), which the job
uses on the CPU where the fused kernel costs ~30 % per token: this shows what each costs on the GPU. One JSON summary line ends the output.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import train_models as tm


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="optimiser steps per trainer, warm-up included")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the figures")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per step (both trainers)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--size", default="1b", choices=sorted(tm.MODEL_SIZES))
    parser.add_argument("--vocab-size", type=int, default=32000, help="rows of the embedding and output head")
    parser.add_argument("--peak-tflops", type=float, default=790.0,
                        help="the card's dense bf16 peak in TFLOP/s (H200: about 790)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds; each trainer's best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny config on the CPU: checks the script only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.batch_size, args.size, args.vocab_size = 4, 1, 4, "tiny", 0
        args.max_length, args.repeats = min(args.max_length, 256), 1
    return args


def flops_per_token(size: str, vocab_size: int, mean_context: float) -> dict[str, float]:
    """Model FLOPs per trained token: 6N (+ the attention term), and the 4N LoRA actually does."""
    c = tm.MODEL_SIZES[size]
    matmul_params = tm.parameter_count(size, vocab_size) - vocab_size * c["hidden_size"]
    attention = 12 * c["num_hidden_layers"] * c["hidden_size"] * mean_context
    return {"matmul_params": matmul_params, "six_n": 6 * matmul_params + attention,
            "four_n": 4 * matmul_params + attention, "attention": attention}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    tm.quiet()
    cuda = torch.cuda.is_available() and not args.smoke
    device, precision = ("cuda", "bf16") if cuda else ("cpu", "fp32")
    if not cuda:
        tm.set_threads(1)
    started = time.perf_counter()
    records = tm.alpaca_records(limit=200 if args.smoke else None)
    card = torch.cuda.get_device_name(0) if cuda else "CPU"
    best: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer = tm.train_tokenizer(records, work / "tokenizer",
                                       vocab_size=2000 if args.smoke else min(args.vocab_size, 32000))
        vocab = max(args.vocab_size, len(tokenizer))
        base_dir = tm.save_random_llama(args.size, tokenizer, work / "base", seed=args.seed,
                                        dtype="bfloat16" if cuda else "float32", device=device,
                                        vocab_size=vocab)
        lengths = [len(e["input_ids"]) for e in tm.tokenized(records, tokenizer, max_length=args.max_length)]
        mean_context = sum(n * n for n in lengths) / sum(lengths)
        flops = flops_per_token(args.size, vocab, mean_context)
        print(f"{card}: random Llama '{args.size}' ({tm.parameter_count(args.size, vocab) / 1e9:.2f}B params), "
              f"{precision} LoRA r16 all-linear; {len(records)} Alpaca samples, token-weighted mean length "
              f"{mean_context:.0f}; batch {args.batch_size} samples, {args.steps} steps ({args.warmup} warm-up); "
              f"setup {time.perf_counter() - started:.0f} s", flush=True)
        for round_ in range(args.repeats):
            for name, runner in (("padded", tm.run_padded), ("ours", tm.run_ours),
                                 ("ours_model_loss", functools.partial(tm.run_ours, loss="model"))):
                result = runner(base_dir, records, batch_size=args.batch_size, steps=args.steps,
                                warmup=args.warmup, seed=args.seed, device=device, precision=precision,
                                out_dir=work / f"{name}-{round_}", max_length=args.max_length)
                result["tflops"] = flops["six_n"] * result["tokens_per_s"] / 1e12
                result["mfu"] = result["tflops"] / args.peak_tflops
                result["mfu_lora"] = flops["four_n"] * result["tokens_per_s"] / 1e12 / args.peak_tflops
                memory = f", peak {result['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in result else ""
                print(f"{name:>15} #{round_ + 1}: {result['tokens_per_s']:9.0f} real tokens/s, real-token fraction "
                      f"{100 * result['real_fraction']:.0f} %, {result['tflops']:.1f} model TFLOP/s, "
                      f"MFU {100 * result['mfu']:.1f} % (6N) / {100 * result['mfu_lora']:.1f} % (4N){memory}",
                      flush=True)
                if name not in best or result["tokens_per_s"] > best[name]["tokens_per_s"]:
                    best[name] = result
    ratio = best["ours"]["tokens_per_s"] / best["padded"]["tokens_per_s"]
    model_loss_ratio = best["ours_model_loss"]["tokens_per_s"] / best["padded"]["tokens_per_s"]
    print(f"ratio: {ratio:.2f}x real tokens/s (with the model's own loss: {model_loss_ratio:.2f}x); "
          f"total {time.perf_counter() - started:.0f} s")
    print(json.dumps({"benchmark": "train_gpu", "device": card, "size": args.size,
                      "params": tm.parameter_count(args.size, vocab), "precision": precision,
                      "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
                      "peak_tflops": args.peak_tflops, "flops_per_token": flops, "padded": best["padded"],
                      "ours": best["ours"], "ratio": ratio,
                      "ours_model_loss": best["ours_model_loss"], "model_loss_ratio": model_loss_ratio,
                      "seconds": time.perf_counter() - started}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
