"""A generation run's settings, their validation, and the cost estimate shown before starting.

Prices come from :mod:`studio.core.llm.pricing` (the table is saved with each run).

Every setting carries a ``help`` string: one text for the CLI, the GUI tooltip and the saved
run config. The config is stored with the run (without the API key) so ``--resume`` and the
GUI's Resume continue exactly the run that was started.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from studio.core.errors import StudioError
from studio.core.generation.filters import FilterSettings
from studio.core.llm.endpoint import EndpointConfig
from studio.core.llm.pricing import DEFAULT_PRICES, request_cost

__all__ = ["CostEstimate", "ConfigError", "DEFAULT_PRICES", "RunConfig", "estimate_cost", "request_cost"]


class ConfigError(StudioError):
    """A run setting that cannot work; said before anything is stored or sent."""


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
    teacher: EndpointConfig = _help("The teacher endpoint and model.", factory=EndpointConfig)
    filters: FilterSettings = _help("Quality and near-duplicate filters.", factory=FilterSettings)
    prices: dict[str, tuple[float, float]] = _help("USD per 1M input/output tokens per model.", factory=lambda: dict(DEFAULT_PRICES))
    backend: str = _help("How requests are sent: live calls, or a provider's batch API (a plugin).", "live")
    backend_options: dict = _help("The backend's own settings (its entry's 'options').", factory=dict)

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
        config.teacher = EndpointConfig.from_dict(data.get("teacher", {}))
        config.filters = FilterSettings.from_dict(data.get("filters", {}))
        if "prices" in data:
            config.prices = {model: (float(a), float(b)) for model, (a, b) in data["prices"].items()}
        return config

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first setting that cannot work."""
        from studio.core.registry import GENERATION_MODES

        if self.mode not in GENERATION_MODES:
            known = ", ".join(GENERATION_MODES.keys())
            raise ConfigError(f"Unknown generation mode {self.mode!r}; known: {known}.")
        from studio.core.registry import GENERATION_BACKENDS

        if self.backend not in GENERATION_BACKENDS:
            known = ", ".join(GENERATION_BACKENDS.keys())
            raise ConfigError(f"Unknown generation backend {self.backend!r} (is its plugin installed and enabled?); "
                              f"known: {known}.")
        for name in ("target", "concurrency", "num_tasks", "k_examples", "max_tokens", "max_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', ' ').capitalize()} must be at least 1 (it is {getattr(self, name)}).")
        if self.max_requests is not None and self.max_requests < 1:
            raise ConfigError(f"Max requests must be at least 1 (it is {self.max_requests}).")
        if self.budget_usd is not None and self.budget_usd <= 0:
            raise ConfigError(f"The budget must be more than $0 (it is ${self.budget_usd}); leave it empty for no cap.")
        if not self.teacher.base_url.strip():
            raise ConfigError("The teacher's base URL is empty (e.g. http://127.0.0.1:8000/v1).")
        if not self.teacher.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"The teacher's base URL {self.teacher.base_url!r} must start with http:// or https://.")
        if not self.teacher.model.strip():
            raise ConfigError("No teacher model is set: pick one from the teacher's list (Test connection).")

    def worst_case_cost(self, prompt_tokens: int) -> float:
        """The most one request can cost: its prompt plus a full ``max_tokens`` answer."""
        return request_cost(self.prices, self.teacher.model, prompt_tokens, self.max_tokens)


def usd(value: float) -> str:
    """Dollars as the run's words say them: cents, or four decimals below a cent (never "$0.00" for a cost)."""
    return f"${value:,.2f}" if value == 0 or abs(value) >= 0.01 else f"${value:.4f}"


@dataclass(frozen=True)
class CostEstimate:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    usd: float
    assumed_keep_rate: float

    def describe(self) -> str:
        return (f"about {self.requests} requests, {self.prompt_tokens + self.completion_tokens:,} tokens, "
                f"{usd(self.usd)} (assuming {self.assumed_keep_rate:.0%} of tasks are kept)")


def estimate_cost(config: RunConfig, prompt_chars: int, *, keep_rate: float = 0.5,
                  tokens_per_task: int = 80) -> CostEstimate:
    """Rough cost of reaching the target: ~4 characters per token, ``tokens_per_task`` per answered task."""
    per_request_kept = max(0.1, config.num_tasks * keep_rate)
    requests = math.ceil(config.target / per_request_kept)
    prompt_tokens = requests * math.ceil(prompt_chars / 4)
    completion_tokens = requests * min(config.max_tokens, config.num_tasks * tokens_per_task)
    usd = request_cost(config.prices, config.teacher.model, prompt_tokens, completion_tokens)
    return CostEstimate(requests, prompt_tokens, completion_tokens, usd, keep_rate)
