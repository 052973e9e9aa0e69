"""The OpenAI wire format, as the studio server speaks it: request checks, response and chunk dicts, SSE lines.

Pure Python (no torch, no web framework), so the shapes are tested without a model and any
client of ours can rely on one definition. The shapes follow the OpenAI API as clients parse
it: a stream is ``data: {chunk}`` lines sharing one ``id``, the role in the first delta, the
``finish_reason`` in the last choice chunk, a ``choices: []`` chunk with ``usage`` when
``stream_options.include_usage`` is set, then ``data: [DONE]``.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from studio.core.errors import StudioError

SSE_DONE = "data: [DONE]\n\n"
CHAT_CHUNK, CHAT_COMPLETION, TEXT_COMPLETION = "chat.completion.chunk", "chat.completion", "text_completion"
ROLES = ("system", "developer", "user", "assistant")

# error types and codes, as OpenAI names them
INVALID_REQUEST, NOT_FOUND, RATE_LIMIT, SERVER_ERROR, UNAVAILABLE = (
    "invalid_request_error", "not_found_error", "rate_limit_exceeded", "server_error", "service_unavailable")


class WireError(StudioError):
    """A request the server refuses: the message, the HTTP status, the offending field."""

    def __init__(self, message: str, *, status: int = 400, type: str = INVALID_REQUEST,
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type, param, code

    def body(self) -> dict[str, Any]:
        return error_body(str(self), type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str = INVALID_REQUEST, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# -- requests ------------------------------------------------------------------------------
@dataclass
class Sampling:
    """How to generate: OpenAI's fields, checked. ``max_tokens`` None means "the rest of the context"."""
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    ignore_eos: bool = False        # vLLM's extension: run to max_tokens (benchmarks)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class GenerationRequest:
    """One parsed chat or completions request."""
    model: str
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False
    messages: list[dict[str, str]] | None = None    # chat: {"role", "content"[, "input"]}
    prompt: str | None = None                       # completions: the raw prompt


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise WireError("the request body must be a JSON object")
    return body


def parse_chat_request(body: dict[str, Any]) -> GenerationRequest:
    request = _common(body)
    _refuse_unsupported(body, chat=True)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("'messages' is required: a non-empty list of {role, content} objects", param="messages")
    request.messages = [_message(item, index) for index, item in enumerate(messages)]
    return request


def parse_completion_request(body: dict[str, Any]) -> GenerationRequest:
    request = _common(body)
    _refuse_unsupported(body, chat=False)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list):
        raise WireError("this server takes one prompt (a string) per request", param="prompt")
    if not isinstance(prompt, str):
        raise WireError("'prompt' is required: a string", param="prompt")
    request.prompt = prompt
    return request


def _common(body: dict[str, Any]) -> GenerationRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("'model' is required: the id of a model from GET /v1/models", param="model")
    n = body.get("n", 1)
    if n is not None and (not _is_int(n) or n != 1):
        raise WireError("only n=1 is supported (one answer per request)", param="n")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise WireError(f"'{param}' must be a whole number of at least 1", param=param)
    temperature = _number(body, "temperature", 1.0, low=0.0, high=2.0)
    top_p = _number(body, "top_p", 1.0, low=0.0, high=1.0)
    if top_p == 0:
        raise WireError("'top_p' must be greater than 0", param="top_p")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise WireError("'seed' must be a whole number", param="seed")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise WireError("'stream' must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise WireError("'stream_options' must be an object", param="stream_options")
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise WireError("'ignore_eos' must be true or false", param="ignore_eos")
    sampling = Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=_stops(body.get("stop")),
                        seed=seed, ignore_eos=ignore_eos)
    return GenerationRequest(model=model, sampling=sampling, stream=stream,
                             include_usage=bool(options.get("include_usage")))


MAX_STOPS = 4  # as OpenAI


def _refuse_unsupported(body: dict[str, Any], *, chat: bool) -> None:
    """Fields this server cannot honour are a 400, never silently ignored (the client would trust them)."""
    logprobs = body.get("logprobs")
    if logprobs not in (None, False) or body.get("top_logprobs") not in (None, 0):
        param = "logprobs" if logprobs not in (None, False) else "top_logprobs"
        raise WireError(f"'{param}': log probabilities are not supported by this server", param=param)
    if not chat:
        return
    if body.get("tools") or body.get("functions"):
        param = "tools" if body.get("tools") else "functions"
        raise WireError(f"'{param}': tool calling is not supported by this server", param=param)
    for param in ("tool_choice", "function_call"):
        if body.get(param) not in (None, "none"):
            raise WireError(f"'{param}': tool calling is not supported by this server", param=param)
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        kind = response_format.get("type") if isinstance(response_format, dict) else response_format
        raise WireError(f"'response_format' {kind!r} is not supported by this server (only text)",
                        param="response_format")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: dict[str, Any], name: str, default: float, *, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise WireError(f"'{name}' must be a number from {low:g} to {high:g}", param=name)
    return float(value)


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise WireError("'stop' must be a string or a list of strings", param="stop")
    if len(value) > MAX_STOPS:
        raise WireError(f"'stop' takes at most {MAX_STOPS} sequences (got {len(value)})", param="stop")
    return [item for item in value if item]


def _message(item: Any, index: int) -> dict[str, str]:
    param = f"messages[{index}]"
    if not isinstance(item, dict):
        raise WireError(f"{param} must be an object with 'role' and 'content'", param=param)
    role = item.get("role")
    if role not in ROLES:
        raise WireError(f"{param}.role must be one of {', '.join(ROLES)}", param=f"{param}.role")
    content = item.get("content")
    if isinstance(content, list):  # content parts: only text is understood here
        if not all(isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                   for part in content):
            raise WireError(f"{param}.content: this server understands only text parts", param=f"{param}.content")
        content = "".join(part["text"] for part in content)
    if content is None and role == "assistant":
        content = ""
    if not isinstance(content, str):
        raise WireError(f"{param}.content must be a string", param=f"{param}.content")
    message = {"role": "system" if role == "developer" else role, "content": content}
    extra = item.get("input")  # the Alpaca form's optional input (our extension)
    if extra is not None:
        if not isinstance(extra, str):
            raise WireError(f"{param}.input must be a string", param=f"{param}.input")
        if extra:
            message["input"] = extra
    return message


# -- responses -----------------------------------------------------------------------------
def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_chunk(id: str, created: int, model: str, delta: dict[str, str], finish_reason: str | None = None,
               *, with_usage: bool = False) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": id, "object": CHAT_CHUNK, "created": created, "model": model,
                             "system_fingerprint": None,
                             "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}]}
    if with_usage:
        chunk["usage"] = None  # as OpenAI: every chunk carries usage null until the last one
    return chunk


def completion_chunk(id: str, created: int, model: str, text: str, finish_reason: str | None = None,
                     *, with_usage: bool = False) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": id, "object": TEXT_COMPLETION, "created": created, "model": model,
                             "system_fingerprint": None,
                             "choices": [{"index": 0, "text": text, "logprobs": None,
                                          "finish_reason": finish_reason}]}
    if with_usage:
        chunk["usage"] = None
    return chunk


def usage_chunk(id: str, created: int, model: str, object: str, counts: dict[str, int]) -> dict[str, Any]:
    return {"id": id, "object": object, "created": created, "model": model, "system_fingerprint": None,
            "choices": [], "usage": counts}


def chat_response(id: str, created: int, model: str, text: str, finish_reason: str,
                  counts: dict[str, int]) -> dict[str, Any]:
    return {"id": id, "object": CHAT_COMPLETION, "created": created, "model": model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": finish_reason}],
            "usage": counts}


def completion_response(id: str, created: int, model: str, text: str, finish_reason: str,
                        counts: dict[str, int]) -> dict[str, Any]:
    return {"id": id, "object": TEXT_COMPLETION, "created": created, "model": model, "system_fingerprint": None,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
            "usage": counts}


def model_entry(model_id: str, *, created: int, parent: str | None, root: str, prompt_format: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "distill-studio",
            "parent": parent, "root": root, "prompt_format": prompt_format}


class ChunkTemplate:
    """One stream's content chunks, serialised once: each token's chunk is then two string joins.

    A stream sends hundreds of chunks that differ only in their text; building and dumping the
    whole dict for each is most of the server's own per-token cost.
    """
    _MARK = "\x00studio-text\x00"

    def __init__(self, chunk: dict[str, Any]):
        encoded = sse(chunk)
        marker = json.dumps(self._MARK, ensure_ascii=False)
        self.head, self.tail = encoded.split(marker)

    def __call__(self, text: str) -> str:
        return f"{self.head}{json.dumps(text, ensure_ascii=False)}{self.tail}"

    @classmethod
    def chat(cls, id: str, created: int, model: str, *, with_usage: bool = False) -> ChunkTemplate:
        return cls(chat_chunk(id, created, model, {"content": cls._MARK}, with_usage=with_usage))

    @classmethod
    def completion(cls, id: str, created: int, model: str, *, with_usage: bool = False) -> ChunkTemplate:
        return cls(completion_chunk(id, created, model, cls._MARK, with_usage=with_usage))


def sse(data: dict[str, Any]) -> str:
    """One Server-Sent Event line pair, as OpenAI streams them."""
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"
