"""What an endpoint offers: its model list, and the connection test behind "Test connection".

Blocking calls (the sync ``openai`` client): run them off the GUI thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from studio.core.llm.endpoint import EndpointConfig
from studio.core.llm.errors import MODEL, NETWORK, LLMError, from_openai
from studio.core.llm.keys import ResolvedKey, resolve_key


def list_models(endpoint: EndpointConfig, *, key: ResolvedKey | None = None, timeout_s: float = 10.0) -> list[str]:
    """The model ids the endpoint lists, sorted; raises :class:`LLMError` in plain words."""
    import openai

    key = key or resolve_key(endpoint)
    client = openai.OpenAI(base_url=endpoint.base_url, api_key=key.value, max_retries=0, timeout=timeout_s,
                           default_headers=endpoint.extra_headers or None)
    try:
        return sorted(m.id for m in client.models.list())
    except openai.NotFoundError as exc:  # the list itself is missing: a wrong path, not a wrong model
        raise LLMError(NETWORK, f"No OpenAI-compatible API at {endpoint.base_url} (404 on /models). "
                                "Check the base URL; it usually ends in /v1.", status_code=404) from exc
    except openai.OpenAIError as exc:
        raise from_openai(exc, base_url=endpoint.base_url, model=endpoint.model) from exc
    finally:
        client.close()


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    message: str
    models: list[str] = field(default_factory=list)
    key_source: str = ""
    error: LLMError | None = None


def check_connection(endpoint: EndpointConfig, timeout_s: float = 10.0) -> ConnectionReport:
    """List the endpoint's models and check ours is among them; never raises for endpoint problems."""
    key = resolve_key(endpoint)
    try:
        models = list_models(endpoint, key=key, timeout_s=timeout_s)
    except LLMError as error:
        return ConnectionReport(False, error.message, key_source=key.source, error=error)
    if endpoint.model and endpoint.model not in models:
        shown = ", ".join(models[:8]) + (" ..." if len(models) > 8 else "")
        error = LLMError(MODEL, f"Connected, but the teacher has no model {endpoint.model!r}. It offers: {shown}")
        return ConnectionReport(False, error.message, models, key.source, error)
    return ConnectionReport(True, f"Connected to {endpoint.base_url}: {len(models)} models. {key.describe()}.",
                            models, key.source)
