"""Evaluation test helpers: a prompt set in the project, evaluations over loopback fakes, their clients."""
from __future__ import annotations

from collections.abc import Sequence

from fake_eval_endpoints import API_KEY, FakeEvalServer

from studio.core.evaluation.engine import ClientFactory
from studio.core.evaluation.judge import default_judge_spec
from studio.core.evaluation.model import AnswerSettings, EvalPrompt, EvalSettings, Evaluation, SystemSpec
from studio.core.llm.client import LLMClient, RetryPolicy
from studio.core.llm.endpoint import EndpointConfig

FAST_RETRY = RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.02)


def add_prompt_set(project, prompts: Sequence[EvalPrompt], name: str = "test prompts") -> tuple[int, list[int], str]:
    """Store ``prompts`` as an evaluation-only set; (set id, prompt ids in order, content hash)."""
    created = project.prompt_sets.create(name, prompts, source="test")
    return created.id, [p.id for p in project.prompt_sets.prompts(created.id)], created.content_hash


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
    name = set_name or "test prompts"
    if any(s.name == name for s in project.prompt_sets.list()):
        existing = project.prompt_sets.get(name)
        set_id, set_hash = existing.id, existing.content_hash
        ids = [p.id for p in project.prompt_sets.prompts(set_id)]
    else:
        set_id, ids, set_hash = add_prompt_set(project, prompt_list or prompts(count), name)
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
