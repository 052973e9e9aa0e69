"""A generation run's settings, the price table, and the cost estimate shown before starting.

Every setting carries a ``help`` string: one text for the CLI, the GUI tooltip and the saved
run config. The config is stored with the run (without the API key) so ``--resume`` and the
GUI's Resume continue exactly the run that was started.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from studio.core.generation.filters import FilterSettings
from studio.core.generation.teacher import TeacherConfig

# USD per 1M tokens (input, output). Prices change: the table is editable and saved per run.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def request_cost(prices: dict[str, tuple[float, float]], model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for one request; a model missing from the table (a local server) costs nothing."""
    price_in, price_out = prices.get(model, (0.0, 0.0))
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


def _help(text: str, default=None, factory=None):
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class RunConfig:
    mode: str = _help("Alpaca: one prompt makes a batch of complete tasks. Self-instruct: separate stages.", "alpaca")
    target: int = _help("Stop once this many samples are kept.", 1000)
    budget_usd: float | None = _help("Hard cap: no request starts that could take the spend over this.", None)
    max_requests: int | None = _help("Stop after this many finished requests (benchmarks, trials).", None)
    concurrency: int = _help("Requests in flight at once. Local servers: their batch size; APIs: their rate limit.", 8)
    num_tasks: int = _help("Tasks asked for in one request (Alpaca: 20).", 20)
    k_examples: int = _help("Example tasks shown in each prompt (Alpaca: 3; self-instruct shows 8 instructions).", 3)
    num_instances: int = _help("Self-instruct: examples asked for per generated instruction.", 2)
    accepted_share: float = _help("Share of the examples taken from accepted samples instead of seeds.", 0.0)
    temperature: float = _help("Sampling temperature; high values give more varied tasks.", 1.0)
    top_p: float = _help("Nucleus sampling cut-off.", 1.0)
    max_tokens: int = _help("Most tokens per answer; a batch cut off here loses only its last task.", 3072)
    request_timeout_s: float = _help("Give up on one attempt after this many seconds (then retry).", 120.0)
    max_attempts: int = _help("Attempts per request on rate limits, server errors and timeouts.", 6)
    backoff_base_s: float = _help("First retry delay; doubles each attempt, with jitter.", 1.0)
    backoff_max_s: float = _help("Longest retry delay.", 60.0)
    random_seed: int = _help("Makes the choice of examples per request repeatable.", 0)
    template: str = _help("The prompt template ($num_tasks, $examples).", "")
    teacher: TeacherConfig = _help("The teacher endpoint and model.", factory=TeacherConfig)
    filters: FilterSettings = _help("Quality and near-duplicate filters.", factory=FilterSettings)
    prices: dict[str, tuple[float, float]] = _help("USD per 1M input/output tokens per model.", factory=lambda: dict(DEFAULT_PRICES))

    def to_dict(self) -> dict:
        """JSON-safe and key-free: this is what the project and exports hold."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("teacher", "filters", "prices")}
        data["teacher"] = self.teacher.to_dict()
        data["filters"] = asdict(self.filters)
        data["prices"] = {model: list(pair) for model, pair in self.prices.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        simple = {f.name: data[f.name] for f in fields(cls) if f.name in data and f.name not in ("teacher", "filters", "prices")}
        config = cls(**simple)
        config.teacher = TeacherConfig.from_dict(data.get("teacher", {}))
        config.filters = FilterSettings.from_dict(data.get("filters", {}))
        if "prices" in data:
            config.prices = {model: (float(a), float(b)) for model, (a, b) in data["prices"].items()}
        return config

    def worst_case_cost(self, prompt_tokens: int) -> float:
        """The most one request can cost: its prompt plus a full ``max_tokens`` answer."""
        return request_cost(self.prices, self.teacher.model, prompt_tokens, self.max_tokens)


@dataclass(frozen=True)
class CostEstimate:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    usd: float
    assumed_keep_rate: float

    def describe(self) -> str:
        return (f"about {self.requests} requests, {self.prompt_tokens + self.completion_tokens:,} tokens, "
                f"${self.usd:.2f} (assuming {self.assumed_keep_rate:.0%} of tasks are kept)")


def estimate_cost(config: RunConfig, prompt_chars: int, *, keep_rate: float = 0.5,
                  tokens_per_task: int = 80) -> CostEstimate:
    """Rough cost of reaching the target: ~4 characters per token, ``tokens_per_task`` per answered task."""
    per_request_kept = max(0.1, config.num_tasks * keep_rate)
    requests = math.ceil(config.target / per_request_kept)
    prompt_tokens = requests * math.ceil(prompt_chars / 4)
    completion_tokens = requests * min(config.max_tokens, config.num_tasks * tokens_per_task)
    usd = request_cost(config.prices, config.teacher.model, prompt_tokens, completion_tokens)
    return CostEstimate(requests, prompt_tokens, completion_tokens, usd, keep_rate)
