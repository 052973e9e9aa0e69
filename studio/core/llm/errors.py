"""LLM endpoint errors in plain words, with a kind the caller acts on.

Every failure of a call to an OpenAI-compatible endpoint becomes one :class:`LLMError`: a
``kind`` (retry it? stop the run? ask for a key?), a sentence a person can act on, and the
server's ``Retry-After`` when it sent one. The mapping from ``openai`` exceptions lives here
only, so Generate, Chat, the judge and the local server all say the same thing.
"""
from __future__ import annotations

import email.utils
import re
import time

from studio.core.errors import StudioError

AUTH, QUOTA, NETWORK, MODEL, RATE, SERVER, TIMEOUT, BAD_REQUEST, OTHER = (
    "auth", "quota", "network", "model", "rate_limit", "server", "timeout", "bad_request", "other",
)
RETRYABLE = frozenset({RATE, SERVER, TIMEOUT, NETWORK})
# No retry can fix these: a run that meets one stops at once instead of failing request by request.
FATAL = frozenset({AUTH, QUOTA, MODEL})


class LLMError(StudioError):
    """A failed call: ``kind`` (see the constants above), a plain ``message``, ``retry_after`` seconds."""

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None, status_code: int | None = None,
                 attempts: int = 1):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.status_code = status_code
        self.attempts = attempts  # attempts made when the caller gave up

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    @property
    def fatal(self) -> bool:
        return self.kind in FATAL

    def __repr__(self) -> str:
        return f"LLMError({self.kind!r}, {self.message!r}, retry_after={self.retry_after!r})"


DEFAULT_ROLE = "the teacher"  # what Generate calls its endpoint; Chat passes its own (see LLMClient.role)


def from_openai(exc: BaseException, *, base_url: str = "", model: str = "", role: str = DEFAULT_ROLE) -> LLMError:
    """Map an ``openai`` exception (or any other) to an :class:`LLMError` a person can act on.

    ``role`` is how the sentence names the server ("the teacher", "the model server", ...), so
    a chat with the studio's own server does not blame a teacher.
    """
    import openai

    where = base_url or "the endpoint"
    who = role[:1].upper() + role[1:]
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError):  # a subclass of APIConnectionError: test it first
        return LLMError(TIMEOUT, f"{who} at {where} did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(NETWORK, f"Cannot reach {where}: check the base URL and that the server is running.")
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.AuthenticationError):
        return LLMError(AUTH, f"{who} at {where} refused the API key (401). Check the key.", status_code=status)
    if isinstance(exc, openai.PermissionDeniedError):
        return LLMError(AUTH, "The API key has no access to this model or endpoint (403).", status_code=status)
    if isinstance(exc, openai.NotFoundError):
        if _no_such_path(exc, base_url, model):
            return LLMError(BAD_REQUEST, f"{who} at {where} has no such API path (404): "
                                         "does the base URL end in /v1?", status_code=status)
        named = repr(model) if model else "the model"
        return LLMError(MODEL, f"{who} does not know the model {named} (404). Pick one from its list.",
                        status_code=status)
    if isinstance(exc, openai.RateLimitError):
        body = str(getattr(exc, "body", "") or exc).lower()
        if "insufficient_quota" in body or "quota" in body:
            return LLMError(QUOTA, "The account is out of quota or credit (429 insufficient_quota).", status_code=status)
        return LLMError(RATE, f"{who} asked us to slow down (429).", retry_after=retry_after_s(exc),
                        status_code=status)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return LLMError(SERVER, f"{who} had a server error ({exc.status_code}).",
                            retry_after=retry_after_s(exc), status_code=exc.status_code)
        return LLMError(BAD_REQUEST, f"{who} rejected the request ({exc.status_code}): {server_said(exc)}",
                        status_code=exc.status_code)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMError(BAD_REQUEST, f"{who} at {where} sent an answer that is not OpenAI-compatible.")
    return LLMError(OTHER, f"{type(exc).__name__}: {exc}")


def server_said(exc: BaseException) -> str:
    """The server's own error sentence, without openai's "Error code: 400 - {...}" wrapping."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        text = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(text, dict):
            text = text.get("message")
        if text:
            return str(text)
    if isinstance(body, str) and body.strip():
        return body.strip()
    message = str(getattr(exc, "message", "") or exc)
    return re.sub(r"^Error code: \d+ - ", "", message)


_ROUTE_404 = ("not found", "404 page not found", "unknown path")


def _no_such_path(exc: BaseException, base_url: str, model: str) -> bool:
    """A 404 for the URL itself (no such route), not for the model: the base URL is most likely missing ``/v1``."""
    if getattr(exc, "code", None) == "model_not_found":
        return False
    said = server_said(exc).strip().lower().rstrip(".")
    if said.startswith("no route"):  # the studio server's own words for an unknown path
        return True
    if (model and model.lower() in said) or "model" in said:
        return False
    return said in _ROUTE_404 or "/v1" not in base_url


def retry_after_s(exc: BaseException, *, now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (a number of seconds or an HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
