"""Evaluation test helpers: a prompt set in the project, evaluations over loopback fakes, their clients.

The prompt set is written with plain SQL into the v8 tables until the prompt-set repository
(``project.prompt_sets``) is merged; the engine only reads the rows.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence

from fake_eval_endpoints import API_KEY, FakeEvalServer

from studio.core.db import transaction
from studio.core.evaluation.engine import ClientFactory
from studio.core.evaluation.judge import default_judge_spec
from studio.core.evaluation.model import AnswerSettings, EvalPrompt, EvalSettings, Evaluation, SystemSpec
from studio.core.llm.client import LLMClient, RetryPolicy
from studio.core.llm.endpoint import EndpointConfig

FAST_RETRY = RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.02)


def add_prompt_set(project, prompts: Sequence[EvalPrompt], name: str = "test prompts") -> tuple[int, list[int], str]:
    """Store ``prompts`` as an evaluation-only set; (set id, prompt ids in order, content hash)."""
    content_hash = hashlib.sha256("".join(p.hash for p in prompts).encode()).hexdigest()
    with transaction(project.conn):
        set_id = project.conn.execute(
            "INSERT INTO eval_prompt_sets (name, source, content_hash, meta, created_at) VALUES (?, 'test', ?, '{}', ?)",
            (name, content_hash, time.time())).lastrowid
        ids = [project.conn.execute(
            "INSERT INTO eval_prompts (set_id, position, ext_id, instruction, input, reference, category, messages,"
            " prompt_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (set_id, n, p.ext_id, p.instruction, p.input, p.reference, p.category,
             json.dumps(p.messages) if p.messages else None, p.hash)).lastrowid for n, p in enumerate(prompts)]
    return set_id, ids, content_hash


def prompts(count: int, *, categories: Sequence[str] = ("writing", "coding")) -> list[EvalPrompt]:
    return [EvalPrompt(instruction=f"Write a note about topic number {n}.", input="" if n % 2 else f"Context {n}.",
                       category=categories[n % len(categories)], ext_id=f"t{n}") for n in range(count)]


def system(server: FakeEvalServer, model: str) -> SystemSpec:
    spec = SystemSpec.parse(server.spec(model))
    return SystemSpec(spec.kind, label=model, base_url=spec.base_url, model=spec.model, key=server.spec(model))


def create_evaluation(project, server: FakeEvalServer, models: Sequence[str], *, judge: str | None,
                      count: int = 12, budget: float | None = None, concurrency: int = 8, max_attempts: int = 2,
                      prices: dict | None = None, prompt_list: Sequence[EvalPrompt] | None = None,
                      set_name: str | None = None, max_tokens: int = 64) -> Evaluation:
    existing = project.conn.execute("SELECT id, content_hash FROM eval_prompt_sets WHERE name = ?",
                                    (set_name or "test prompts",)).fetchone()
    if existing is not None:
        set_id, set_hash = existing[0], existing[1]
        ids = [r[0] for r in project.conn.execute("SELECT id FROM eval_prompts WHERE set_id = ? ORDER BY position",
                                                   (set_id,))]
    else:
        set_id, ids, set_hash = add_prompt_set(project, prompt_list or prompts(count), set_name or "test prompts")
    judge_spec = default_judge_spec(EndpointConfig(base_url=server.base_url, model=judge)) if judge else None
    settings = EvalSettings(answers=AnswerSettings(max_tokens=max_tokens, system_prompt="Be brief."),
                            concurrency=concurrency, max_attempts=max_attempts, budget_usd=budget,
                            prices=prices or {})
    return project.evaluations.create(set_id=set_id, set_hash=set_hash, prompt_ids=ids,
                                      systems=[system(server, m) for m in models], judge=judge_spec,
                                      settings=settings)


def client_factory(api_key: str = API_KEY) -> ClientFactory:
    def make(spec: SystemSpec) -> tuple[LLMClient, str]:
        return LLMClient(spec.endpoint(), api_key=api_key, retry=FAST_RETRY, role="the system"), spec.model
    return make


def judge_client(server: FakeEvalServer, model: str) -> LLMClient:
    return LLMClient(EndpointConfig(base_url=server.base_url, model=model), api_key=API_KEY, retry=FAST_RETRY,
                     role="the judge")
