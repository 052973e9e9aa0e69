"""The teacher: an OpenAI-compatible chat endpoint, its API key, and plain-words errors.

The API key is resolved at run time (OS keyring, then an environment variable) and kept only
in memory: :class:`TeacherConfig` never serialises it, so it cannot reach the project file,
logs or exported run configs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

KEYRING_SERVICE = "distill-studio"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
NO_KEY = "not-needed"  # local servers ignore the key, but the client insists on one


@dataclass(frozen=True)
class Preset:
    name: str
    base_url: str
    model: str
    needs_key: bool


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("OpenAI", "https://api.openai.com/v1", "gpt-4o-mini", True),
        Preset("vLLM (local)", "http://127.0.0.1:8000/v1", "", False),
        Preset("Ollama", "http://127.0.0.1:11434/v1", "llama3.1", False),
        Preset("llama.cpp server", "http://127.0.0.1:8080/v1", "", False),
        Preset("LM Studio", "http://127.0.0.1:1234/v1", "", False),
    )
}


@dataclass
class TeacherConfig:
    """Where the teacher is and how to call it. Serialises without the key."""

    base_url: str = PRESETS["OpenAI"].base_url
    model: str = PRESETS["OpenAI"].model
    api_key_env: str = DEFAULT_KEY_ENV
    extra_headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 120.0
    # Set from the GUI's key field or by tests; never serialised.
    api_key: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
            "extra_headers": {k: v for k, v in self.extra_headers.items() if not _secret_header(k)},
            "timeout_s": self.timeout_s,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TeacherConfig:
        known = {k: data[k] for k in ("base_url", "model", "api_key_env", "extra_headers", "timeout_s") if k in data}
        return cls(**known)


def _secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in {"authorization", "api-key", "x-api-key"} or "key" in lowered or "token" in lowered


@dataclass(frozen=True)
class ResolvedKey:
    value: str
    source: str  # said to the user: "keyring", "environment variable OPENAI_API_KEY", ...


def resolve_api_key(config: TeacherConfig) -> ResolvedKey:
    """Find the key: explicit value, then the OS keyring, then the environment variable.

    Headless Linux usually has no keyring backend (``NoKeyringError``); that is not an
    error, the environment variable is used and the source says so.
    """
    if config.api_key:
        return ResolvedKey(config.api_key, "entered key")
    stored = _keyring_get(config.base_url)
    if stored:
        return ResolvedKey(stored, "OS keyring")
    env_value = os.environ.get(config.api_key_env or DEFAULT_KEY_ENV)
    if env_value:
        return ResolvedKey(env_value, f"environment variable {config.api_key_env}")
    return ResolvedKey(NO_KEY, f"no key (keyring empty or unavailable, ${config.api_key_env} unset)")


def _keyring_get(base_url: str) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, base_url)
        except (KeyringError, RuntimeError):
            return None
    except ImportError:
        return None


def store_api_key(base_url: str, key: str) -> str | None:
    """Save the key in the OS keyring; returns None on success, else why it could not be saved."""
    try:
        import keyring
        from keyring.errors import KeyringError

        keyring.set_password(KEYRING_SERVICE, base_url, key)
        return None
    except ImportError:
        return "the keyring package is not installed"
    except (KeyringError, RuntimeError) as exc:
        return f"no usable OS keyring ({type(exc).__name__}); set an environment variable instead"


# -- errors in plain words -----------------------------------------------------------------
AUTH, QUOTA, NETWORK, MODEL, RATE, SERVER, TIMEOUT, BAD_REQUEST, OTHER = (
    "auth", "quota", "network", "model", "rate_limit", "server", "timeout", "bad_request", "other",
)
RETRYABLE = {RATE, SERVER, TIMEOUT, NETWORK}


@dataclass(frozen=True)
class TeacherProblem:
    kind: str
    message: str
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


def describe_error(exc: BaseException, config: TeacherConfig | None = None) -> TeacherProblem:
    """Map an ``openai`` exception to a kind the engine acts on and a sentence a person can act on."""
    import openai

    where = config.base_url if config else "the teacher"
    if isinstance(exc, openai.APITimeoutError):
        return TeacherProblem(TIMEOUT, f"The teacher at {where} did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return TeacherProblem(NETWORK, f"Cannot reach {where}: check the base URL and that the server is running.")
    if isinstance(exc, openai.AuthenticationError):
        return TeacherProblem(AUTH, f"The teacher at {where} refused the API key (401). Check the key.")
    if isinstance(exc, openai.PermissionDeniedError):
        return TeacherProblem(AUTH, "The API key has no access to this model or endpoint (403).")
    if isinstance(exc, openai.NotFoundError):
        model = config.model if config else "the model"
        return TeacherProblem(MODEL, f"The teacher does not know the model {model!r} (404). Pick one from its list.")
    if isinstance(exc, openai.RateLimitError):
        body = str(getattr(exc, "body", "") or exc).lower()
        if "insufficient_quota" in body or "quota" in body:
            return TeacherProblem(QUOTA, "The account is out of quota or credit (429 insufficient_quota).")
        return TeacherProblem(RATE, "The teacher asked us to slow down (429).", _retry_after(exc))
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return TeacherProblem(SERVER, f"The teacher had a server error ({exc.status_code}).", _retry_after(exc))
        return TeacherProblem(BAD_REQUEST, f"The teacher rejected the request ({exc.status_code}): {exc.message}")
    return TeacherProblem(OTHER, f"{type(exc).__name__}: {exc}")


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (numbers only; HTTP dates are ignored)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


# -- clients and the connection test -------------------------------------------------------
def async_client(config: TeacherConfig):
    """An ``AsyncOpenAI`` with retries off: the engine retries with its own backoff and budget."""
    import openai

    return openai.AsyncOpenAI(
        base_url=config.base_url, api_key=resolve_api_key(config).value, max_retries=0,
        timeout=config.timeout_s, default_headers=config.extra_headers or None,
    )


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    message: str
    models: list[str] = field(default_factory=list)
    key_source: str = ""
    problem: TeacherProblem | None = None


def test_connection(config: TeacherConfig, timeout_s: float = 10.0) -> ConnectionReport:
    """List the teacher's models and check ours is among them. Blocking: call off the GUI thread."""
    import openai

    key = resolve_api_key(config)
    client = openai.OpenAI(
        base_url=config.base_url, api_key=key.value, max_retries=0, timeout=timeout_s,
        default_headers=config.extra_headers or None,
    )
    try:
        models = sorted(m.id for m in client.models.list())
    except openai.NotFoundError:  # the model list itself is missing: wrong path, not a wrong model
        problem = TeacherProblem(NETWORK, f"No OpenAI-compatible API at {config.base_url} (404 on /models). "
                                          "Check the base URL; it usually ends in /v1.")
        return ConnectionReport(False, problem.message, key_source=key.source, problem=problem)
    except openai.OpenAIError as exc:
        problem = describe_error(exc, config)
        return ConnectionReport(False, problem.message, key_source=key.source, problem=problem)
    finally:
        client.close()
    if config.model and config.model not in models:
        shown = ", ".join(models[:8]) + (" ..." if len(models) > 8 else "")
        problem = TeacherProblem(MODEL, f"Connected, but the teacher has no model {config.model!r}. It offers: {shown}")
        return ConnectionReport(False, problem.message, models, key.source, problem)
    return ConnectionReport(True, f"Connected to {config.base_url}: {len(models)} models; key from {key.source}.",
                            models, key.source)


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported
