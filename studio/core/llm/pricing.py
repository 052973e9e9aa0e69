"""Token prices and what a call cost. The table is editable and saved with each run (prices change)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# USD per 1M tokens (input, output).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}

PriceTable = Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class Usage:
    """Tokens of one call; servers that send no usage count as zero (local servers often don't)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_dict(cls, usage: Mapping | None) -> Usage:
        usage = usage or {}
        return cls(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def request_cost(prices: PriceTable, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for one call; a model missing from the table (a local server) costs nothing."""
    price_in, price_out = prices.get(model, (0.0, 0.0))
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


def usage_cost(prices: PriceTable, model: str, usage: Usage) -> float:
    return request_cost(prices, model, usage.prompt_tokens, usage.completion_tokens)
