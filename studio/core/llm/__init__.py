"""The shared LLM client: endpoints, keys, one complete()/stream() pair with retries, costs, errors.

    endpoint.py  EndpointConfig (serialises without the key) and the EndpointPreset presets
    keys.py      the key: typed in, OS keyring, environment variable, or none (said in plain words)
    errors.py    LLMError (kind, plain message, retry_after) and the mapping from openai exceptions
    client.py    LLMClient: async complete()/stream() with backoff + jitter + Retry-After; sync twins
    pricing.py   the price table, token usage and cost
    models.py    model listing and the connection test

Used by generation, and by Chat, the LLM judge and the local server. ``openai`` is imported
only when a call is made, so importing this package is cheap.
"""
from __future__ import annotations

from studio.core.llm.client import Completion, LLMClient, RetryNotice, RetryPolicy, StreamEnd
from studio.core.llm.endpoint import EndpointConfig, EndpointPreset, presets
from studio.core.llm.errors import LLMError
from studio.core.llm.keys import ResolvedKey, resolve_key, store_key
from studio.core.llm.models import ConnectionReport, check_connection, list_models
from studio.core.llm.pricing import DEFAULT_PRICES, Usage, request_cost

__all__ = [
    "Completion", "ConnectionReport", "DEFAULT_PRICES", "EndpointConfig", "EndpointPreset", "LLMClient", "LLMError",
    "ResolvedKey", "RetryNotice", "RetryPolicy", "StreamEnd", "Usage", "check_connection", "list_models", "presets",
    "request_cost", "resolve_key", "store_key",
]
