"""Export time and peak memory: each format of ``python -m studio.export`` on a random-weight Llama.

    python benchmarks/export_memory.py [--size 100m|tiny] [--threads N] [--json]

Builds a Llama with random weights (no hub access) and a byte-level BPE tokenizer trained on the
spot, a peft LoRA adapter on every linear layer with non-zero B, then runs the real export child
for adapter, merged, gguf f16 and gguf q8_0, recording wall time, the child's peak RSS
(``VmHWM``, Linux) and the size written. The point: GGUF conversion holds the merged model once plus
one tensor at a time, so its peak stays near the merged model's size, not a multiple of it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    "tiny": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4),
    "100m": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                 num_key_value_heads=4),
}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a child would report the
# benchmark's own peak (the model it just built); VmHWM belongs to the new program's memory map.
WRAPPER = ("import atexit, runpy, sys\n"
           "def hwm():\n"
           "    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
           "    print('MAXRSS_KB', line.split()[1], file=sys.stderr, flush=True)\n"
           "atexit.register(hwm)\n"
           "sys.argv = ['studio.export'] + sys.argv[1:]\n"
           "runpy.run_module('studio.export', run_name='__main__')\n")


def build(folder: Path, size: str) -> tuple[Path, int]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT))
    from tests.export_support import make_run
    from tests.tiny_model import default_texts, train_tokenizer

    tokenizer = train_tokenizer(default_texts())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=2048, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **SIZES[size])
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    base = folder / f"llama-{size}"
    model.save_pretrained(str(base))
    tokenizer.save_pretrained(str(base))
    del model
    make_run(folder / "runs" / "1", base, name=f"bench-{size}")
    return folder / "runs" / "1", params


def export(run: Path, out: Path, fmt: str, quant: str | None, threads: int) -> dict:
    argv = [sys.executable, "-c", WRAPPER, "--run-dir", str(run), "--out", str(out), "--format", fmt,
            "--threads", str(threads)] + (["--quant", quant] if quant else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{fmt} {quant or ''} failed: {done.stdout[-500:]} {done.stderr[-2000:]}")
    rss_kb = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("MAXRSS_KB")))
    final = json.loads(done.stdout.strip().splitlines()[-1])
    return {"format": fmt, "quant": quant, "wall_s": round(wall, 2), "peak_rss_mb": round(rss_kb / 1024, 1),
            "written_mb": round(final["bytes"] / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=SIZES, default="100m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        run, params = build(folder, args.size)
        weights_mb = (folder / f"llama-{args.size}" / "model.safetensors").stat().st_size / 2**20
        rows = [export(run, folder / f"out-{fmt}-{quant}", fmt, quant, args.threads)
                for fmt, quant in (("adapter", None), ("merged", None), ("gguf", "f16"), ("gguf", "q8_0"))]
    summary = {"size": args.size, "parameters": params, "base_fp32_mb": round(weights_mb, 1), "exports": rows}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"Llama {args.size}: {params / 1e6:.1f}M parameters, base {weights_mb:.0f} MB in fp32")
    for row in rows:
        name = row["format"] + (f" {row['quant']}" if row["quant"] else "")
        print(f"  {name:<10} {row['wall_s']:>6.1f} s  peak RSS {row['peak_rss_mb']:>7.0f} MB  "
              f"written {row['written_mb']:>7.1f} MB")


if __name__ == "__main__":
    main()
