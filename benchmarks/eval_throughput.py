"""Evaluation throughput: answers and verdicts per second against loopback endpoints with fixed latency.

    python benchmarks/eval_throughput.py [--prompts 252] [--latency 0.5] [--concurrency 32] [--quick] [--json]

252 prompts (the size of Self-Instruct's user-oriented set), two systems and one judge, all
answering exactly ``latency`` after a request arrives, from a server in its own process (its
CPU is not ours). With C requests in flight and latency L, the latency-bound limit is C / L
requests per second (64 at C=32, L=0.5 s); the figure that matters is the share of it each
phase reaches (target >= 90 %): what the engine's own work costs (building prompts, one
SQLite commit per answer and per verdict, the budget check, progress events). The baseline,
in the same run against the same server, is the least anyone could write: a bare
``asyncio.gather`` over ``openai.AsyncOpenAI`` with a semaphore, storing nothing. Both phases
end with a partial wave (504 requests = 15.75 waves of 32), so even a perfect client reaches
at most 504 / (16 x 32) = 98.4 % here.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from eval_support import add_prompt_set  # noqa: E402
from fake_eval_endpoints import BENCH_JUDGE, BENCH_SYSTEMS, ServerProcess  # noqa: E402

from studio.core.evaluation.engine import EvalEngine, prompt_messages  # noqa: E402
from studio.core.evaluation.judge import PAIRWISE_JUDGE, default_judge_spec  # noqa: E402
from studio.core.evaluation.model import AnswerSettings, EvalPrompt, EvalSettings, SystemSpec  # noqa: E402
from studio.core.llm.client import LLMClient  # noqa: E402
from studio.core.llm.endpoint import EndpointConfig  # noqa: E402
from studio.core.project import Project  # noqa: E402

TOPICS = ("a birthday message", "a SQL query", "a packing list", "a haiku", "a bug report", "a recipe",
          "a cover letter", "a workout plan", "a product review", "a travel itinerary", "a regex", "a limerick")


def bench_prompts(count: int) -> list[EvalPrompt]:
    """User-oriented instructions, about a third with an input, in a few categories (like the real set)."""
    return [EvalPrompt(instruction=f"Write {TOPICS[n % len(TOPICS)]} for request number {n}.",
                       input="" if n % 3 else f"Details for request {n}: keep it short and friendly.",
                       category=("writing", "coding", "planning")[n % 3], ext_id=f"user_oriented_task_{n}")
            for n in range(count)]


def run_ours(server: ServerProcess, root: Path, prompts: list[EvalPrompt], concurrency: int) -> dict:
    with Project.create(root) as project:
        set_id, ids, set_hash = add_prompt_set(project, prompts, "bench")
        systems = [SystemSpec("endpoint", label=m, base_url=server.base_url, model=m, key=f"{server.base_url}#{m}")
                   for m in BENCH_SYSTEMS]
        judge = default_judge_spec(EndpointConfig(base_url=server.base_url, model=BENCH_JUDGE))
        settings = EvalSettings(answers=AnswerSettings(max_tokens=256), concurrency=concurrency)
        evaluation = project.evaluations.create(set_id=set_id, set_hash=set_hash, prompt_ids=ids, systems=systems,
                                                judge=judge, settings=settings)

        def clients(spec: SystemSpec) -> tuple[LLMClient, str]:
            return LLMClient(spec.endpoint(), api_key=server.api_key), spec.model

        judge_client = LLMClient(judge.endpoint_config(), api_key=server.api_key, role="the judge")
        result = EvalEngine(project, evaluation.id, clients=clients, judge_client=judge_client).run_blocking()
    if result.status != "done":
        raise SystemExit(f"the engine ended {result.status}: {result.message}")
    return {"answers": result.answers, "judgments": result.judgments, "answer_s": result.answer_s,
            "judge_s": result.judge_s}


async def run_baseline(server: ServerProcess, prompts: list[EvalPrompt], concurrency: int) -> dict:
    """The same requests with nothing around them: a semaphore, ``gather`` and the typed openai call."""
    import openai

    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    gate = asyncio.Semaphore(concurrency)
    system = SystemSpec.parse(f"{server.base_url}#x")

    async def ask(model: str, messages: list[dict], max_tokens: int) -> str:
        async with gate:
            response = await client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                            temperature=0.0)
            return response.choices[0].message.content or ""

    try:
        started = time.perf_counter()
        texts = await asyncio.gather(*(ask(m, prompt_messages(p, "", system), 256) for p in prompts
                                       for m in BENCH_SYSTEMS))
        answer_s = time.perf_counter() - started
        judge = default_judge_spec(EndpointConfig(base_url=server.base_url, model=BENCH_JUDGE))
        asks = []
        for n, prompt in enumerate(prompts):
            a, b = texts[2 * n], texts[2 * n + 1]
            for first, second in ((a, b), (b, a)):
                asks.append(PAIRWISE_JUDGE.messages(judge, prompt, first, second))
        started = time.perf_counter()
        verdicts = await asyncio.gather(*(ask(BENCH_JUDGE, m, judge.max_tokens) for m in asks))
        judge_s = time.perf_counter() - started
    finally:
        await client.close()
    return {"answers": len(texts), "judgments": len(verdicts), "answer_s": answer_s, "judge_s": judge_s}


def rates(row: dict, limit: float) -> dict:
    row["answers_per_s"] = row["answers"] / row["answer_s"]
    row["judgments_per_s"] = row["judgments"] / row["judge_s"]
    row["answer_share"] = row["answers_per_s"] / limit
    row["judge_share"] = row["judgments_per_s"] / limit
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=252)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="16 prompts, 0.05 s latency, concurrency 8 (a test)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.latency, args.concurrency = 16, 0.05, 8
    prompts = bench_prompts(args.prompts)
    limit = args.concurrency / args.latency
    print(f"{args.prompts} prompts, systems {' and '.join(BENCH_SYSTEMS)}, judge {BENCH_JUDGE}; loopback endpoints "
          f"answering in {args.latency:.2f} s; concurrency {args.concurrency}: the latency-bound limit is "
          f"{limit:.0f} requests/s", flush=True)
    with ServerProcess(args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        # One-off process costs (importing openai, its first client: ~1 s) are paid once per app
        # session, not per request: a one-prompt warm-up of each side keeps them out of the figures.
        run_ours(server, Path(tmp) / "warm-up", bench_prompts(1), 2)
        asyncio.run(run_baseline(server, bench_prompts(1), 2))
        baseline = rates(asyncio.run(run_baseline(server, prompts, args.concurrency)), limit)
        ours = rates(run_ours(server, Path(tmp) / "bench", prompts, args.concurrency), limit)
    for name, row in (("baseline (bare openai + gather)", baseline), ("EvalEngine", ours)):
        print(f"{name:>32}: {row['answers']} answers in {row['answer_s']:.2f} s = {row['answers_per_s']:.1f}/s "
              f"({100 * row['answer_share']:.1f} % of the limit); {row['judgments']} verdicts in {row['judge_s']:.2f} s "
              f"= {row['judgments_per_s']:.1f}/s ({100 * row['judge_share']:.1f} %)")
    worst = min(ours["answer_share"], ours["judge_share"])
    print(f"EvalEngine vs baseline: answers {ours['answers_per_s'] / baseline['answers_per_s']:.2f}x, verdicts "
          f"{ours['judgments_per_s'] / baseline['judgments_per_s']:.2f}x; lowest share {100 * worst:.1f} % "
          f"({'meets' if worst >= 0.9 else 'misses'} the 90 % target)")
    if args.json:
        print(json.dumps({"prompts": args.prompts, "latency_s": args.latency, "concurrency": args.concurrency,
                          "limit_per_s": limit, "ours": ours, "baseline": baseline, "target": 0.9}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
