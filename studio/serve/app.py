"""The HTTP side: FastAPI routes in the OpenAI wire format over the engine, and OpenAI-style errors.

Bodies are parsed by :mod:`studio.core.serving.wire` rather than pydantic models, so a bad
body is a 400 that names the field in OpenAI's words (and FastAPI's own 422 becomes 400 too).
Tokens travel from the worker thread to the request's coroutine through an asyncio queue
(``call_soon_threadsafe``); leaving the stream (the client went away, Starlette cancels the
response) sets the job's cancel event in ``finally``, which stops its generation.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from studio.core.errors import StudioError
from studio.core.serving import wire
from studio.core.serving.catalog import ADAPTER, Catalog, ServedModel, adapter_model
from studio.core.serving.render import adds_special_tokens, format_stops, render_chat
from studio.core.training.prompt_format import PromptFormatError
from studio.core.training.settings import PROMPT_FORMATS
from studio.serve.engine import Engine, Job

DISCONNECT_POLL_S = 0.25   # how often a non-streaming request checks that its client is still there


RECORD_KEY = "studio.request"  # where a request's log record travels in the ASGI scope


DEFAULT_STREAM_INTERVAL_MS = 25


@dataclass
class ServerState:
    """What the routes share besides the engine: when it started, who to tell when the catalog changes,
    and where the one line per request goes (None: nowhere)."""
    started_at: int = field(default_factory=wire.now)
    on_catalog_change: Callable[[Catalog], None] = lambda catalog: None
    log: Callable[[str], None] | None = None
    # Tokens that come faster than this travel as one chunk: one wake-up, one chunk and one socket write per
    # interval instead of per token (a fast small model otherwise spends ~0.5 ms of loop CPU per token),
    # while a chat view repaints at 30 Hz anyway. A token slower than this goes alone; the first is never held.
    stream_interval_s: float = DEFAULT_STREAM_INTERVAL_MS / 1000


@dataclass
class RequestRecord:
    """What a request's log line says: never the prompt or the answer (they may be private)."""
    model: str | None = None
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish: str | None = None


def request_logger(stream: TextIO) -> Callable[[str], None]:
    def log(line: str) -> None:
        print(line, file=stream, flush=True)
    return log


class RequestLog:
    """ASGI middleware: one line per /v1 request once its response has ended (a stream included)."""

    def __init__(self, app: Any, log: Callable[[str], None]):
        self.app, self.log = app, log

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        record = scope[RECORD_KEY] = RequestRecord()
        started, status, ended = time.monotonic(), [0], [False]

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                ended[0] = True

        try:
            await self.app(scope, receive, watch)
        finally:
            self.log(log_line(scope["method"], scope["path"], record, status[0], ended[0],
                              time.monotonic() - started))


def log_line(method: str, path: str, record: RequestRecord, status: int, ended: bool, seconds: float) -> str:
    """``2026-12-01 13:52:01 POST /v1/chat/completions student stream prompt=12 completion=24 0.84s stop``."""
    parts = [time.strftime("%Y-%m-%d %H:%M:%S"), method, path, record.model or "-",
             "stream" if record.stream else "no-stream"]
    if record.prompt_tokens is not None:
        parts.append(f"prompt={record.prompt_tokens} completion={record.completion_tokens or 0}")
    parts.append(f"{seconds:.2f}s")
    if status == 200 and record.finish:
        parts.append(record.finish)
    elif status and not ended:
        parts.append(f"{status} client disconnected")
    else:
        parts.append(str(status or 500))
    return " ".join(parts)


def _record(request: Request, body: dict[str, Any]) -> RequestRecord:
    """This request's log record (a throwaway one when nothing logs), with the model and stream it asked for."""
    record = request.scope.get(RECORD_KEY) or RequestRecord()
    model = body.get("model")
    record.model = model if isinstance(model, str) else None
    record.stream = body.get("stream") is True
    return record


def create_app(engine: Engine, state: ServerState | None = None) -> FastAPI:
    state = state or ServerState()
    app = FastAPI(title="Distill Studio model server", docs_url=None, redoc_url=None, openapi_url=None)
    if state.log is not None:
        app.add_middleware(RequestLog, log=state.log)

    @app.exception_handler(wire.WireError)
    async def _wire_error(request: Request, exc: wire.WireError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(wire.error_body(f"malformed request: {exc.errors()[:1]}"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = wire.NOT_FOUND if exc.status_code == 404 else wire.INVALID_REQUEST
        message = f"no route {request.method} {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(wire.error_body(message, type=kind), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(wire.error_body(f"internal error: {type(exc).__name__}: {exc}", type=wire.SERVER_ERROR),
                            status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        catalog = engine.catalog
        return {"status": "ready", "pid": os.getpid(), "device": engine.device_name,
                "base_model": catalog.base_model, "base_id": catalog.base.id, "models": catalog.ids(),
                "adapters": [model.id for model in catalog.adapters], "memory": engine.memory(),
                "queue": engine.queue_state(), "served": engine.served,
                "batch": {"max": engine.max_batch, "largest": engine.largest_batch}}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        catalog = engine.catalog
        return {"object": "list", "data": [
            wire.model_entry(model.id, created=state.started_at, parent=model.parent,
                             root=model.adapter_path if model.kind == ADAPTER else catalog.base_model,
                             prompt_format=model.prompt_format)
            for model in catalog.models]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        body = wire.parse_json(await request.body())
        record = _record(request, body)
        parsed = wire.parse_chat_request(body)
        served = _model(engine, parsed.model)
        messages, prefill = _split_prefill(parsed.messages or [])
        try:
            prompt = render_chat(served.prompt_format, messages, engine.tokenizer) + prefill
        except (StudioError, PromptFormatError) as exc:
            raise wire.WireError(str(exc), param="messages") from None
        ids = engine.encode(prompt, add_special_tokens=adds_special_tokens(served.prompt_format))
        return await _answer(request, engine, served, parsed, ids, chat=True, record=record,
                             interval_s=state.stream_interval_s)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        body = wire.parse_json(await request.body())
        record = _record(request, body)
        parsed = wire.parse_completion_request(body)
        served = _model(engine, parsed.model)
        ids = engine.encode(parsed.prompt or "", add_special_tokens=True)
        return await _answer(request, engine, served, parsed, ids, chat=False, record=record,
                             interval_s=state.stream_interval_s)

    @app.post("/v1/load_lora_adapter")
    async def load_lora_adapter(request: Request) -> dict[str, Any]:
        body = wire.parse_json(await request.body())
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not name.strip():
            raise wire.WireError("'lora_name' is required: the model id to serve the adapter under", param="lora_name")
        if not isinstance(path, str) or not (Path(path) / "adapter_config.json").is_file():
            raise wire.WireError(f"'lora_path' must be a folder with adapter_config.json (got {path!r})",
                                 param="lora_path")
        fmt = body.get("prompt_format")
        if fmt is not None and fmt not in PROMPT_FORMATS:
            raise wire.WireError(f"unknown prompt_format {fmt!r}; formats: {', '.join(PROMPT_FORMATS)}",
                                 param="prompt_format")
        served = adapter_model(name.strip(), path, engine.catalog.base.id, fmt)
        try:
            catalog = await asyncio.to_thread(engine.add_adapter, served)
        except StudioError as exc:
            if isinstance(exc, wire.WireError):
                raise
            raise wire.WireError(str(exc), param="lora_path") from None
        state.on_catalog_change(catalog)
        return {"id": served.id}

    @app.post("/v1/unload_lora_adapter")
    async def unload_lora_adapter(request: Request) -> dict[str, Any]:
        body = wire.parse_json(await request.body())
        name = body.get("lora_name")
        if not isinstance(name, str):
            raise wire.WireError("'lora_name' is required", param="lora_name")
        catalog = await asyncio.to_thread(engine.remove_adapter, name)
        state.on_catalog_change(catalog)
        return {"id": name}

    return app


def _split_prefill(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """A last assistant message is a prefill: the answer starts with it and the model continues it.

    The conversation before it is rendered as usual (with the prompt for the next answer) and the
    prefill follows, which is what the training prompt + target looked like.
    """
    last = messages[-1]["role"] if messages else None
    if last == "user":
        return messages, ""
    if last == "assistant":
        if len(messages) < 2 or messages[-2]["role"] != "user":
            raise wire.WireError("a last assistant message (a prefill the model continues) must follow a user "
                                 "message", param="messages")
        return messages[:-1], messages[-1]["content"]
    raise wire.WireError(f"the last message is the {last}'s: end with a user message (the model answers it) "
                         "or an assistant message (the model continues it)", param="messages")


def _model(engine: Engine, model_id: str) -> ServedModel:
    served = engine.find(model_id)
    if served is None:
        raise wire.WireError(f"the model {model_id!r} does not exist here; models: {', '.join(engine.catalog.ids())}",
                             status=404, type=wire.NOT_FOUND, param="model", code="model_not_found")
    return served


async def _answer(request: Request, engine: Engine, served: ServedModel, parsed: wire.GenerationRequest,
                  ids: list[int], *, chat: bool, record: RequestRecord, interval_s: float = 0.0) -> Any:
    events = Mailbox(asyncio.get_running_loop())
    stops = format_stops(served.prompt_format, engine.tokenizer.eos_token, parsed.sampling.stop) if chat \
        else list(parsed.sampling.stop)
    job = Job(model=served, prompt_ids=ids, sampling=parsed.sampling, stops=stops,
              max_new_tokens=engine.new_tokens(len(ids), parsed.sampling), emit=events.put)
    engine.submit(job)
    reply_id, created, model = wire.new_id("chatcmpl" if chat else "cmpl"), wire.now(), parsed.model
    if parsed.stream:
        return StreamingResponse(_stream(job, events, reply_id, created, model, chat, parsed.include_usage, record,
                                         interval_s),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    texts: list[str] = []
    try:
        while True:
            try:
                batch = await asyncio.wait_for(events.take(), DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    job.cancel.set()
                    return JSONResponse(wire.error_body("the client disconnected"), status_code=499)
                continue
            for event in batch:
                if event[0] == "text":
                    texts.append(event[1])
                elif event[0] == "error":
                    raise wire.WireError(event[2], status=event[1],
                                         type=wire.UNAVAILABLE if event[1] == 503 else wire.SERVER_ERROR)
                else:
                    _, finish, prompt_tokens, completion_tokens = event
                    record.finish, record.prompt_tokens, record.completion_tokens = \
                        finish, prompt_tokens, completion_tokens
                    counts = wire.usage(prompt_tokens, completion_tokens)
                    build = wire.chat_response if chat else wire.completion_response
                    return build(reply_id, created, model, "".join(texts), finish, counts)
    finally:
        job.cancel.set()  # no-op once done; stops the generation if this coroutine was cancelled


async def _stream(job: Job, events: Mailbox, reply_id: str, created: int, model: str, chat: bool,
                  include_usage: bool, record: RequestRecord | None = None,
                  interval_s: float = 0.0) -> AsyncIterator[str]:
    template = (wire.ChunkTemplate.chat if chat else wire.ChunkTemplate.completion)(
        reply_id, created, model, with_usage=include_usage)
    try:
        if chat:
            yield wire.sse(wire.chat_chunk(reply_id, created, model, {"role": "assistant", "content": ""},
                                           with_usage=include_usage))
        while True:
            batch = _merge_text(await events.take())
            for event in batch:
                if event[0] == "text":
                    yield template(event[1])
                    continue
                if event[0] == "error":
                    kind = wire.UNAVAILABLE if event[1] == 503 else wire.SERVER_ERROR
                    if record is not None:
                        record.finish = f"error {event[1]}"
                    yield wire.sse(wire.error_body(event[2], type=kind))
                    yield wire.SSE_DONE
                    return
                _, finish, prompt_tokens, completion_tokens = event
                if record is not None:
                    record.finish, record.prompt_tokens, record.completion_tokens = \
                        finish, prompt_tokens, completion_tokens
                final = (wire.chat_chunk(reply_id, created, model, {}, finish, with_usage=include_usage) if chat
                         else wire.completion_chunk(reply_id, created, model, "", finish, with_usage=include_usage))
                yield wire.sse(final)
                if include_usage:
                    yield wire.sse(wire.usage_chunk(reply_id, created, model,
                                                    wire.CHAT_CHUNK if chat else wire.TEXT_COMPLETION,
                                                    wire.usage(prompt_tokens, completion_tokens)))
                yield wire.SSE_DONE
                return
            if interval_s > 0:  # see ServerState.stream_interval_s
                await asyncio.sleep(interval_s)
    finally:
        job.cancel.set()


class Mailbox:
    """Events from the worker thread to one request's coroutine, woken once per batch, not once per token.

    The worker appends under a lock and schedules a wake-up only if none is pending, so tokens
    that arrive while the event loop is busy sending travel together (one chunk, one wake-up).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple] = []
        self._scheduled = False
        self._ready = asyncio.Event()

    def put(self, event: tuple) -> None:
        """From any thread. Only the first event since the last :meth:`take` wakes the loop."""
        with self._lock:
            self._items.append(event)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the loop is gone (shutting down): nobody is listening
            pass

    async def take(self) -> list[tuple]:
        """Every event so far (at least one), in order."""
        while True:
            with self._lock:
                items, self._items = self._items, []
                self._scheduled = False
            if items:
                return items
            self._ready.clear()
            await self._ready.wait()


def _merge_text(events: list[tuple]) -> list[tuple]:
    merged: list[tuple] = []
    for event in events:
        if event[0] == "text" and merged and merged[-1][0] == "text":
            merged[-1] = ("text", merged[-1][1] + event[1])
        else:
            merged.append(event)
    return merged
