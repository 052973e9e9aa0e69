"""What the model server costs: raw ``model.generate`` against the same model behind ``python -m studio.serve``.

    python benchmarks/serve_overhead.py [--size cpu|cpu-medium|1b|smoke] [--threads 1] [--max-tokens 128]
                                        [--prompts 6] [--rounds 3]
    python benchmarks/serve_overhead.py --gpu        # --size 1b: a ~1B random-weight Llama in bf16 (auto on CUDA)
    python benchmarks/serve_overhead.py --smoke      # --size smoke: a few seconds on the CPU, for the test suite

One random-weight Llama with a byte-level BPE tokenizer trained on the spot, saved to a
temporary folder: ``cpu`` hidden 256, 4 layers (3.6M parameters: the server's fixed per-token
cost shows at its largest); ``cpu-medium`` hidden 512, 8 layers (~30M, a step closer to a
real small model's per-token compute); ``1b`` the 1B shape of the training benchmarks (bf16 on
CUDA). Both sides run the same prompts (the Alpaca prompt of a few instructions, tokenized as
the server does: BOS + text), greedy, ``max_tokens`` new tokens each with EOS ruled out (raw:
``min_new_tokens``; server: ``ignore_eos``, vLLM's extension), so both make exactly the same
number of tokens — checked against the server's ``usage``.

- **raw**: ``model.generate`` in this process with a streamer that timestamps the first token.
- **server**: the real server as a child process (same device, same torch thread count), the
  real ``openai`` client streaming chat completions; time to first token is the first content
  chunk, tokens from the usage chunk.

Rounds alternate raw / server and each side's best round counts (other processes share this
machine's cores); the CPU time per token of this process (raw) and of the server process is
printed too, steadier than wall time on a shared machine. Then 8 concurrent clients against
one: aggregate tokens/s and the ratio (the server batches waiting requests for the same model;
``--max-batch 1`` measures it one request at a time).
The last line is a JSON summary (``--json`` prints only that).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INSTRUCTIONS = ["Give three tips for staying healthy.", "Describe the water cycle.", "Name a famous painter.",
                "Write a short poem about the sea.", "Explain what a prime number is.",
                "List three uses of a paper clip.", "Summarise the plot of a fairy tale.",
                "Suggest a name for a cat."]
SIZES = {
    "smoke": {"hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 2},
    "cpu": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
            "num_key_value_heads": 4},
    "cpu-medium": {"hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 8, "num_attention_heads": 8,
                   "num_key_value_heads": 8},
    "1b": {"hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 16, "num_attention_heads": 16,
           "num_key_value_heads": 16},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, both sides")
    parser.add_argument("--max-tokens", type=int, default=128, help="new tokens per request")
    parser.add_argument("--prompts", type=int, default=6, help="requests per round (distinct prompts)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each side's best counts")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in the second part")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="the server's --max-batch (1: one request at a time, no batching)")
    parser.add_argument("--size", choices=sorted(SIZES), default=None,
                        help="model shape (default: 1b on CUDA, else cpu)")
    parser.add_argument("--gpu", action="store_true", help="a ~1B Llama in bf16 on CUDA (the default when CUDA is there)")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is there")
    parser.add_argument("--smoke", action="store_true", help="tiny model, few tokens: checks the script only")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args(argv)
    if args.size == "smoke":
        args.smoke = True
    if args.smoke:
        args.size = "smoke"
        args.max_tokens, args.prompts, args.rounds, args.clients = 12, 2, 1, 3
    return args


def build_model(folder: Path, size: str, device: str) -> Path:
    """A random-weight Llama and a BPE tokenizer trained on the prompts, saved as a normal model folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [f"{instruction} {word} {i}" for i, instruction in enumerate(INSTRUCTIONS * 40)
              for word in ("alpha", "beta", "gamma", "delta")] + [
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(corpus, trainer=trainers.BpeTrainer(
        vocab_size=4000, special_tokens=["<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        model_max_length=4096)
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=4096, bos_token_id=0, eos_token_id=1,
                         pad_token_id=2, tie_word_embeddings=False, **SIZES[size])
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    if device == "cuda":
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def raw_round(model: Any, tokenizer: Any, prompts: list[str], max_tokens: int, device: str) -> dict[str, Any]:
    import torch
    from transformers.generation.streamers import BaseStreamer

    class FirstToken(BaseStreamer):
        def __init__(self) -> None:
            self.calls, self.first = 0, None

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2:  # the first call carries the prompt
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    tokens, elapsed, ttfts = 0, 0.0, []
    cpu = time.process_time()
    for prompt in prompts:
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=True)["input_ids"]], device=device)
        streamer = FirstToken()
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                 min_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 streamer=streamer)
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - started
        ttfts.append(streamer.first - started)
        tokens += out.shape[1] - ids.shape[1]
    return {"tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed,
            "ttft_ms": statistics.median(ttfts) * 1000, "cpu_ms_per_token": (time.process_time() - cpu) / tokens * 1000}


def process_cpu_s(pid: int, thread: int | None = None) -> float:
    """utime + stime of another process, or of one of its threads (Linux /proc; 0 elsewhere)."""
    stat = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_request(client: Any, instruction: str, max_tokens: int) -> tuple[int, float, float]:
    """(completion tokens, time to first content, total time) of one streamed chat request."""
    started = time.perf_counter()
    first, tokens = None, 0
    stream = client.chat.completions.create(
        model="base", messages=[{"role": "user", "content": instruction}], temperature=0, max_tokens=max_tokens,
        stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter()
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    end = time.perf_counter()
    return tokens, (first or end) - started, end - started


def server_round(client: Any, instructions: list[str], max_tokens: int, pid: int = 0) -> dict[str, Any]:
    cpu, loop = process_cpu_s(pid), process_cpu_s(pid, pid)  # the main thread runs the event loop
    client_cpu = time.process_time()                           # this process: the openai client
    results = [server_request(client, instruction, max_tokens) for instruction in instructions]
    tokens = sum(r[0] for r in results)
    elapsed = sum(r[2] for r in results)
    return {"tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed,
            "ttft_ms": statistics.median(r[1] for r in results) * 1000,
            "cpu_ms_per_token": (process_cpu_s(pid) - cpu) / max(tokens, 1) * 1000,
            "loop_cpu_ms_per_token": (process_cpu_s(pid, pid) - loop) / max(tokens, 1) * 1000,
            "client_cpu_ms_per_token": (time.process_time() - client_cpu) / max(tokens, 1) * 1000}


def concurrent_round(client: Any, instructions: list[str], max_tokens: int, clients: int) -> dict[str, Any]:
    results: list[tuple[int, float, float] | None] = [None] * clients

    def one(i: int) -> None:
        results[i] = server_request(client, instructions[i % len(instructions)], max_tokens)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    tokens = sum(r[0] for r in results if r)
    return {"clients": clients, "tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall,
            "ttft_ms_median": statistics.median(r[1] for r in results if r) * 1000}


def start_server(folder: Path, threads: int, device: str, max_batch: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-m", "studio.serve", "--base-model", str(folder), "--port", "0",
                             "--threads", str(threads), "--device", device, "--max-queue", "64",
                             "--max-batch", str(max_batch)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    line = proc.stdout.readline()
    if not line.startswith("Serving "):
        proc.kill()
        raise SystemExit(f"the server did not start: {proc.communicate()[1][-2000:]}")
    return proc, line.split()[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from benchmarks import train_models as tm
    from studio.core.training.prompt_format import render_prompt

    tm.quiet()
    tm.set_threads(args.threads)
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu: torch sees no CUDA GPU here; leave --gpu out to measure on the CPU")
    device = "cuda" if (args.gpu or torch.cuda.is_available()) and not args.cpu and not args.smoke else "cpu"
    size = args.size or ("1b" if device == "cuda" else "cpu")
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, flush=True))
    import openai
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        folder = build_model(Path(tmp) / f"llama-{size}", size, device)
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        params = sum(p.numel() for p in model.parameters())
        say(f"model: random-weight Llama {size} ({params / 1e6:.1f}M parameters, {dtype}) on {device}, "
            f"{args.threads} thread(s); {args.prompts} prompts x {args.max_tokens} tokens, greedy, EOS ruled out")
        instructions = [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(args.prompts)]
        prompts = [render_prompt("alpaca", instruction) for instruction in instructions]  # what the server renders
        proc, url = start_server(folder, args.threads, device, args.max_batch)
        try:
            client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
            raw_round(model, tokenizer, prompts[:1], 4, device)          # warm-up both sides
            server_round(client, instructions[:1], 4)
            raws, servers = [], []
            for index in range(args.rounds):
                raws.append(raw_round(model, tokenizer, prompts, args.max_tokens, device))
                servers.append(server_round(client, instructions, args.max_tokens, proc.pid))
                say(f"round {index + 1}: raw {raws[-1]['tokens_per_s']:.1f} tok/s, ttft {raws[-1]['ttft_ms']:.1f} ms"
                    f" | server {servers[-1]['tokens_per_s']:.1f} tok/s, ttft {servers[-1]['ttft_ms']:.1f} ms")
            expected = args.prompts * args.max_tokens
            if any(r["tokens"] != expected for r in raws + servers):
                raise SystemExit(f"the sides made different token counts (expected {expected} each round)")
            raw = max(raws, key=lambda r: r["tokens_per_s"])
            served = max(servers, key=lambda r: r["tokens_per_s"])
            overhead = (raw["tokens_per_s"] - served["tokens_per_s"]) / raw["tokens_per_s"] * 100
            say(f"raw generate : {raw['tokens_per_s']:.1f} tokens/s, time to first token {raw['ttft_ms']:.1f} ms")
            say(f"server       : {served['tokens_per_s']:.1f} tokens/s, time to first token {served['ttft_ms']:.1f} ms")
            raw_cpu = min(r["cpu_ms_per_token"] for r in raws)
            server_cpu = min(r["cpu_ms_per_token"] for r in servers)
            say(f"overhead     : {overhead:.1f} % of tokens/s (goal <= 10 %), "
                f"+{served['ttft_ms'] - raw['ttft_ms']:.1f} ms to the first token")
            loop_cpu = min(r["loop_cpu_ms_per_token"] for r in servers)
            extra_us = (server_cpu - raw_cpu) * 1000
            if device == "cpu" and server_cpu:
                say(f"CPU per token: raw {raw_cpu:.2f} ms, server process {server_cpu:.2f} ms "
                    f"({(server_cpu - raw_cpu) / raw_cpu * 100:+.1f} %; steadier than wall time on a shared machine)")
            client_cpu = min(r["client_cpu_ms_per_token"] for r in servers)
            say(f"server cost  : {extra_us:+.0f} us CPU per token over raw generate (event loop thread "
                f"{loop_cpu * 1000:.0f} us, the rest on the worker; /proc ticks, best round of each); "
                f"the openai client here {client_cpu * 1000:.0f} us per token more")
            del model
            one = concurrent_round(client, instructions, args.max_tokens, 1)
            many = concurrent_round(client, instructions, args.max_tokens, args.clients)
            ratio = many["tokens_per_s"] / one["tokens_per_s"]
            say(f"1 client     : {one['tokens_per_s']:.1f} tokens/s")
            say(f"{args.clients} clients    : {many['tokens_per_s']:.1f} tokens/s aggregate "
                f"({ratio:.2f}x one client, server --max-batch {args.max_batch}), "
                f"median time to first token {many['ttft_ms_median']:.0f} ms")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = {"device": device, "size": size, "parameters": params, "threads": args.threads,
               "max_tokens": args.max_tokens, "prompts": args.prompts, "max_batch": args.max_batch, "raw": raw, "server": served,
               "overhead_pct": overhead,
               "cpu_ms_per_token": {"raw": raw_cpu, "server": server_cpu, "server_loop": loop_cpu,
                                    "client": client_cpu},
               "server_cpu_us_per_token": extra_us, "one_client": one, "concurrent": many, "concurrent_ratio": ratio,
               "server_exit": proc.returncode}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
