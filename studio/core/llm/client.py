"""One client for every OpenAI-compatible call: ``complete()`` and ``stream()``, with retries.

Generation, Chat, the LLM judge and the local-server check all call an endpoint the same
way: the key resolved once (:mod:`keys`), errors in plain words (:mod:`errors`), retries with
exponential backoff and full jitter that never undercut a server's ``Retry-After``, token
usage and cost (:mod:`pricing`) on every answer. The ``openai`` client's own retries are off:
ours report each retry (``on_retry``) so a run can show "retrying in 4 s (429)" and store the
attempt, and they count attempts across a resumed run.

``complete`` posts a plain dict through the client's documented generic ``post()`` and reads
a dict back: same auth, errors and timeouts as ``chat.completions.create()``, without its
per-call parameter transform and pydantic parse, which cost ~20 % of a request's CPU on the
event loop and capped generation throughput at high concurrency. ``stream`` uses the typed
streaming API (``stream=True`` with ``stream_options.include_usage``), where the per-chunk
cost is the network's, not ours.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from studio.core.llm.endpoint import EndpointConfig
from studio.core.llm.errors import DEFAULT_ROLE, NETWORK, LLMError, from_openai
from studio.core.llm.keys import resolve_key
from studio.core.llm.pricing import PriceTable, Usage, usage_cost

Messages = str | Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry rate limits, server errors, timeouts and dropped connections."""

    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    # A refused connection before this client ever got an answer is a wrong URL or a server
    # that is down, not a blip: say so at once instead of backing off for minutes.
    retry_network_before_first_answer: bool = False

    def delay_s(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Exponential with full jitter (half to all of the ceiling); a server's Retry-After is a floor."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        delay = (rng or random).uniform(ceiling / 2, ceiling)
        return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class RetryNotice:
    """Told to ``on_retry`` before each backoff sleep: the attempt that failed, the wait, and why."""

    attempt: int
    delay_s: float
    error: LLMError


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    usage: Usage
    cost: float
    latency_s: float  # of the successful attempt
    attempts: int
    model: str = ""


@dataclass(frozen=True)
class StreamEnd:
    """The last item of :meth:`LLMClient.stream`: the whole text, why it ended, usage and cost."""

    text: str
    finish_reason: str | None
    usage: Usage
    cost: float
    latency_s: float
    attempts: int


RetryCallback = Callable[[RetryNotice], None]


def as_messages(messages: Messages) -> list[dict[str, str]]:
    """A bare prompt is one user message."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


class LLMClient:
    """An endpoint's chat completions, async (``complete``/``stream``) with sync twins for CLIs and tests.

    The async methods must all run on one event loop per client (the ``openai`` HTTP pool is
    bound to its loop); the sync twins each use a fresh loop and close the pool after.
    """

    def __init__(self, endpoint: EndpointConfig, *, api_key: str | None = None, retry: RetryPolicy | None = None,
                 prices: PriceTable | None = None, on_retry: RetryCallback | None = None, role: str = DEFAULT_ROLE):
        self.endpoint = endpoint
        self.role = role  # how error messages name the server ("the teacher", "the model server", ...)
        self.retry = retry or RetryPolicy()
        self.prices: PriceTable = prices or {}
        self.on_retry = on_retry
        self.key = resolve_key(endpoint) if api_key is None else None
        self._api_key = api_key if api_key is not None else self.key.value  # type: ignore[union-attr]
        self.answers = 0  # successful calls so far
        self._client: Any = None

    # -- plumbing --------------------------------------------------------------------------------
    def _openai(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                base_url=self.endpoint.base_url, api_key=self._api_key, max_retries=0,
                timeout=self.endpoint.timeout_s, default_headers=self.endpoint.extra_headers or None,
            )
        return self._client

    def warm(self) -> None:
        """Build the HTTP client now (setting up ``openai`` takes ~0.4 s once), so a timed call times only the call."""
        self._openai()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _error(self, exc: BaseException, attempts: int) -> LLMError:
        error = from_openai(exc, base_url=self.endpoint.base_url, model=self.endpoint.model, role=self.role)
        error.attempts = attempts
        return error

    def _should_retry(self, error: LLMError, attempts: int) -> bool:
        if not error.retryable or attempts >= self.retry.max_attempts:
            return False
        return error.kind != NETWORK or self.answers > 0 or self.retry.retry_network_before_first_answer

    async def _back_off(self, error: LLMError, attempts: int, on_retry: RetryCallback | None) -> None:
        delay = self.retry.delay_s(attempts, error.retry_after)
        callback = on_retry or self.on_retry
        if callback is not None:
            callback(RetryNotice(attempts, delay, error))
        await asyncio.sleep(delay)

    def _body(self, messages: Messages, params: Mapping[str, Any]) -> dict[str, Any]:
        body = {"model": self.endpoint.model, "messages": as_messages(messages)}
        body.update({k: v for k, v in params.items() if v is not None})
        return body

    # -- calls ---------------------------------------------------------------------------------------
    async def complete(self, messages: Messages, *, headers: Mapping[str, str] | None = None,
                       timeout_s: float | None = None, prior_attempts: int = 0, on_retry: RetryCallback | None = None,
                       **params: Any) -> Completion:
        """One answer, after retries; raises :class:`LLMError` (``attempts`` set) when it gives up.

        ``params`` go into the request body as given (``temperature``, ``max_tokens``, ...; None
        values are left out). ``prior_attempts`` counts attempts a resumed request already made.
        """
        import openai

        client = self._openai()
        body = self._body(messages, params)
        options: dict[str, Any] = {"timeout": timeout_s or self.endpoint.timeout_s}
        if headers:
            options["headers"] = dict(headers)
        attempts = prior_attempts
        while True:
            attempts += 1
            started = time.monotonic()
            try:
                response = await client.post("/chat/completions", cast_to=dict, body=body, options=options)
            except openai.OpenAIError as exc:
                error = self._error(exc, attempts)
                if not self._should_retry(error, attempts):
                    raise error from exc
                await self._back_off(error, attempts, on_retry)
                continue
            self.answers += 1
            return self._completion(response, time.monotonic() - started, attempts)

    def _completion(self, response: dict, latency_s: float, attempts: int) -> Completion:
        choice = (response.get("choices") or [{}])[0]
        usage = Usage.from_dict(response.get("usage"))
        model = self.endpoint.model
        return Completion((choice.get("message") or {}).get("content") or "", choice.get("finish_reason"), usage,
                          usage_cost(self.prices, model, usage), latency_s, attempts, response.get("model") or model)

    async def stream(self, messages: Messages, *, headers: Mapping[str, str] | None = None,
                     timeout_s: float | None = None, on_retry: RetryCallback | None = None,
                     **params: Any) -> AsyncIterator[str | StreamEnd]:
        """Text deltas as they arrive, then one :class:`StreamEnd`.

        Retries happen only before the first delta: once text has been shown, a retry would
        show a different answer, so a failure mid-stream raises (``LLMError``) instead.
        """
        import openai

        client = self._openai()
        body = self._body(messages, params)
        attempts = 0
        while True:
            attempts += 1
            started = time.monotonic()
            parts: list[str] = []
            finish_reason: str | None = None
            usage = Usage()
            try:
                chunks = await client.chat.completions.create(
                    **body, stream=True, stream_options={"include_usage": True},
                    timeout=timeout_s or self.endpoint.timeout_s, extra_headers=dict(headers) if headers else None,
                )
                async with chunks:
                    async for chunk in chunks:
                        if chunk.usage is not None:
                            usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                        for choice in chunk.choices:
                            if choice.finish_reason:
                                finish_reason = choice.finish_reason
                            text = choice.delta.content if choice.delta is not None else None
                            if text:
                                parts.append(text)
                                yield text
            except openai.OpenAIError as exc:
                error = self._error(exc, attempts)
                if parts or not self._should_retry(error, attempts):
                    raise error from exc
                await self._back_off(error, attempts, on_retry)
                continue
            self.answers += 1
            cost = usage_cost(self.prices, self.endpoint.model, usage)
            yield StreamEnd("".join(parts), finish_reason, usage, cost, time.monotonic() - started, attempts)
            return

    # -- sync twins (CLI, tests, worker threads without a loop) ------------------------------------
    def complete_sync(self, messages: Messages, **kwargs: Any) -> Completion:
        async def once() -> Completion:
            try:
                return await self.complete(messages, **kwargs)
            finally:
                await self.aclose()

        return asyncio.run(once())

    def stream_sync(self, messages: Messages, **kwargs: Any) -> Iterator[str | StreamEnd]:
        loop = asyncio.new_event_loop()
        items = self.stream(messages, **kwargs)
        try:
            while True:
                try:
                    yield loop.run_until_complete(items.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(items.aclose())
            loop.run_until_complete(self.aclose())
            loop.close()
