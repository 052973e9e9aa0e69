"""The models a chat column can talk to, and the OpenAI client that reaches each one.

Three kinds: a teacher endpoint (any OpenAI-compatible server the project's generation runs
used), the base model and every trained run (both served by the studio's local server, so
they need it running). A source is plain data that is saved with a conversation; the client is
made when a prompt is sent, against the server that runs then (its port may have changed).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from studio.core.errors import StudioError
from studio.core.serving.catalog import ADAPTER, base_model_id, run_model_id

if TYPE_CHECKING:  # the LLM client is imported when a client is made: opening a project stays cheap
    from studio.core.llm.client import LLMClient, RetryPolicy
    from studio.core.project import Project
    from studio.core.serving.server_info import ServerInfo

ENDPOINT, BASE, RUN = "endpoint", "base", "run"
SOURCE_KINDS = (ENDPOINT, BASE, RUN)
DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # studio.core.llm.keys.DEFAULT_KEY_ENV (a test checks they agree)
STUDIO_ROLE, ENDPOINT_ROLE = "the model server", "the endpoint"  # how a chat client's errors name the server
START_SERVER_HINT = "start the local server (Chat panel ▸ Start, or `distill-studio serve`)"


class ChatSourceError(StudioError):
    """A source cannot be reached: the local server is not running, or does not offer that model."""


@dataclass(frozen=True)
class ModelSource:
    """What a column talks to. ``model`` is the id sent as the request's ``model`` field.

    ``api_key_env`` (endpoints only; empty: $OPENAI_API_KEY) names where the key is found;
    the key itself is never part of a source.
    """

    kind: str            # ENDPOINT, BASE or RUN
    label: str
    base_url: str = ""
    model: str = ""
    run_id: int | None = None
    api_key_env: str = ""

    def same_model(self, other: ModelSource) -> bool:
        """The same model behind it, whatever it is called (labels change when a run is renamed)."""
        return (self.kind, self.base_url, self.model, self.run_id) == \
            (other.kind, other.base_url, other.model, other.run_id)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSource:
        run_id = data.get("run_id")
        return cls(kind=str(data.get("kind") or ENDPOINT), label=str(data.get("label") or ""),
                   base_url=str(data.get("base_url") or ""), model=str(data.get("model") or ""),
                   run_id=int(run_id) if run_id is not None else None, api_key_env=str(data.get("api_key_env") or ""))

    @property
    def local(self) -> bool:
        """Served by the studio's own server (base or run)."""
        return self.kind in (BASE, RUN)


def endpoint_label(base_url: str, model: str) -> str:
    """``model @ host:port``: short enough for a column header, enough to tell two teachers apart."""
    host = urlparse(base_url).netloc or base_url
    return f"{model} @ {host}" if model else host


def list_sources(project: Project, server: ServerInfo | None) -> list[ModelSource]:
    """Teachers (distinct endpoint + model of the generation runs, newest first), the base, every run with an adapter.

    The base is the running server's; without a server, the base of the newest run with an
    adapter (choosing it then asks for the server to be started).
    """
    sources: list[ModelSource] = []
    seen: set[tuple[str, str]] = set()
    rows = project.conn.execute(
        "SELECT base_url, teacher_model, config FROM generation_runs"
        " WHERE coalesce(base_url, '') != '' AND coalesce(teacher_model, '') != '' ORDER BY id DESC"
    ).fetchall()
    for base_url, model, config in rows:
        if (base_url, model) in seen:
            continue
        seen.add((base_url, model))
        sources.append(ModelSource(ENDPOINT, endpoint_label(base_url, model), base_url=base_url, model=model,
                                   api_key_env=_key_env(config)))
    runs = [run for run in project.training.list() if run.has_adapter]  # newest first
    if server is not None:
        base_id = server.catalog.base.id
        sources.append(ModelSource(BASE, f"{base_id} (base)", model=base_id))
    elif runs:
        base_id = base_model_id(runs[0].base_model)
        sources.append(ModelSource(BASE, f"{base_id} (base)", model=base_id))
    for run in runs:
        model_id = run_model_id(run)
        label = model_id if model_id == f"run-{run.id}" else f"{model_id} (#{run.id})"
        sources.append(ModelSource(RUN, label, model=model_id, run_id=run.id))
    return sources


def _key_env(config_json: str | None) -> str:
    try:
        variable = (json.loads(config_json or "{}").get("teacher") or {}).get("api_key_env") or ""
    except (ValueError, AttributeError):
        return ""
    return "" if variable == DEFAULT_KEY_ENV else str(variable)


def served_model_id(source: ModelSource, server: ServerInfo | None) -> str:
    """The id the running server knows this base or run by; :class:`ChatSourceError` if it has none."""
    if server is None:
        raise ChatSourceError(f"{source.label} is served by the studio's local server, which is not running: "
                              f"{START_SERVER_HINT}.")
    catalog = server.catalog
    if source.kind == BASE:
        return catalog.base.id
    for model in catalog.models:
        if model.kind == ADAPTER and ((source.run_id is not None and model.run_id == source.run_id)
                                      or (source.model and model.id == source.model)):
            return model.id
    raise ChatSourceError(f"The local server at {server.url} does not offer {source.label}; "
                          "restart it (or load the run's adapter) to chat with it.")


STUDIO_PROBE_TIMEOUT_S = 1.0
_studio_endpoints: dict[str, bool] = {}  # root URL -> whether its /health is a studio server's (per process)


def is_studio_endpoint(url: str, *, timeout_s: float = STUDIO_PROBE_TIMEOUT_S) -> bool:
    """Whether ``url`` (an OpenAI base URL) is a studio server: its ``GET /health`` answers ``status`` and ``base_id``.

    The studio server renders the Alpaca ``input`` itself (the ``input`` extension), so a
    client that knows it is one sends the input apart and chat equals training. The answer is
    cached per URL once the server has answered; an endpoint that does not answer is asked
    again next time (it may not have started yet). This blocks up to ``timeout_s``: call it off
    the GUI thread (the Chat panel's streams run on the job runner).
    """
    import urllib.error
    import urllib.request

    from studio.core.serving.launch import server_root

    root = server_root(url)
    if not root.startswith(("http://", "https://")):
        return False
    known = _studio_endpoints.get(root)
    if known is not None:
        return known
    try:
        with urllib.request.urlopen(f"{root}/health", timeout=timeout_s) as response:
            health = json.loads(response.read())
    except urllib.error.HTTPError:  # it answered, and not as a studio server (no /health, or a key wanted)
        health = None
    except (OSError, ValueError):  # down, not HTTP, or not JSON: ask again next time
        return False
    studio = isinstance(health, dict) and isinstance(health.get("status"), str) and bool(health.get("base_id"))
    _studio_endpoints[root] = studio
    return studio


def is_studio_server(source: ModelSource, server: ServerInfo | None, *, probe: bool = False) -> bool:
    """Whether the column's requests go to the studio's own server (which takes the ``input`` extension).

    Base and runs do unless the project's server is a plugin's (vLLM: a serving backend that knows no
    ``input``); an endpoint does when its URL is the running studio server's, or, with ``probe``
    (off the GUI thread only), when :func:`is_studio_endpoint` finds a studio server there.
    """
    if source.local:
        return server is None or server.backend == "studio"
    if not source.base_url:
        return False
    if server is not None and source.base_url.rstrip("/") == server.url.rstrip("/"):
        return server.backend == "studio"
    return probe and is_studio_endpoint(source.base_url)


def chat_retry() -> RetryPolicy:
    """A person waits for a chat answer: a few quick retries of a 429/5xx, not Generate's minute-long backoff."""
    from studio.core.llm.client import RetryPolicy

    return RetryPolicy(max_attempts=3, backoff_base_s=0.5, backoff_max_s=4.0)


def studio_client(url: str, model_id: str) -> LLMClient:
    """A client of the studio's own server, which takes no key."""
    from studio.core.llm.client import LLMClient
    from studio.core.llm.endpoint import EndpointConfig
    from studio.core.llm.keys import NO_KEY

    return LLMClient(EndpointConfig(base_url=url, model=model_id, api_key_env=""), api_key=NO_KEY,
                     retry=chat_retry(), role=STUDIO_ROLE)


def client_for(source: ModelSource, server: ServerInfo | None) -> tuple[LLMClient, str]:
    """The client for a column and the model id to send.

    Endpoints get their key the usual way (typed, OS keyring, ``api_key_env``; see
    :func:`studio.core.llm.keys.resolve_key`); the studio server needs none. The client's
    async calls must stay on one event loop; close it with ``await client.aclose()``.
    """
    from studio.core.llm.client import LLMClient
    from studio.core.llm.endpoint import EndpointConfig

    if source.kind == ENDPOINT:
        if not source.base_url:
            raise ChatSourceError(f"{source.label or 'This column'} has no endpoint URL; pick a teacher or set one.")
        config = EndpointConfig(base_url=source.base_url, model=source.model,
                                api_key_env=source.api_key_env or DEFAULT_KEY_ENV)
        return LLMClient(config, retry=chat_retry(), role=ENDPOINT_ROLE), source.model
    if source.kind not in SOURCE_KINDS:
        raise ChatSourceError(f"Unknown kind of chat source {source.kind!r}; kinds: {', '.join(SOURCE_KINDS)}.")
    model_id = served_model_id(source, server)
    assert server is not None
    return studio_client(server.url, model_id), model_id
