"""The Batch API generation backend: a run's requests go to OpenAI as batch jobs, at half the price.

The engine still decides which requests exist (its launch rules, budget at batch prices); the
sender gathers the requests in flight (a batch is sent when ``batch_size`` requests wait, or
``collect_s`` passes without a new one), writes them as JSONL, uploads the file
(``files.create(purpose="batch")``, named after the job's ``local_key``), creates the batch and
polls it every ``poll_s``. Nothing is paid for twice:

* the job row and its request keys are committed before the upload, the file id and the
  batch id the moment each is known (:mod:`studio.core.generation.backend_jobs`);
* a request already in a job is never uploaded again: a resumed run's ``send`` waits for that
  job, and a job already collected has its output file read again, not re-run;
* a job whose ids were never committed (a kill mid-upload) is looked up at the provider by
  its ``local_key`` (files by name, batches by metadata) before anything is uploaded again;
  a job that never reached the provider is dropped and its requests go into a new one.

Per-line errors (server errors, rate limits, lines an expired or cancelled batch never ran)
are retried in a follow-up batch or live (``retry_failed``) up to the run's ``max_attempts``;
a line the provider refused (4xx) fails its request; a batch that fails as a whole (bad
JSONL, quota) stops the run with the provider's message.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from studio.core.generation.backend_jobs import ANSWERED, COLLECTED, FAILED, LINE_FAILED, SENT, BackendJobs, Job
from studio.core.generation.backends import REQUEST_KEY_HEADER, BackendContext
from studio.core.generation.config import usd
from studio.core.generation.events import BackendStatus
from studio.core.llm.client import Completion, RetryCallback, RetryNotice
from studio.core.llm.errors import AUTH, BAD_REQUEST, OTHER, QUOTA, RATE, SERVER, TIMEOUT, LLMError
from studio.core.llm.pricing import Usage, request_cost, usage_cost

KEY = "openai-batch"
ENDPOINT = "/v1/chat/completions"
PRICE_FACTOR = 0.5
FINISHED = ("completed", "expired", "cancelled")
MAX_REQUESTS = 50_000  # OpenAI's limits on one batch input file: requests, and bytes (200 MB)
MAX_FILE_BYTES = 200 * 1000 * 1000
# Test hook (a real crash, not a simulated one): kill this process right after the named step.
CRASH_ENV = "DISTILL_OPENAI_BATCH_CRASH_AFTER"  # "upload" (before the file id's commit) or "create"


class BatchFailed(LLMError):
    """The provider failed the whole batch (bad JSONL, token quota): no retry helps, the run stops."""

    @property
    def fatal(self) -> bool:
        return True


@dataclass(frozen=True)
class _Line:
    """One request's outcome in a job: an answer, an error, or "resubmit" (the job never reached the provider)."""

    completion: Completion | None = None
    error: LLMError | None = None
    resubmit: bool = False


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class _Watch:
    """One job followed to its end; its lines' outcomes, kept for requests that ask late (a resume)."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.futures: dict[str, asyncio.Future] = {}
        self.results: dict[str, _Line] | None = None
        self.failure: BaseException | None = None
        self.task: asyncio.Task | None = None

    def future(self, key: str) -> asyncio.Future:
        future = self.futures.get(key)
        if future is None or future.cancelled():
            future = self.futures[key] = asyncio.get_running_loop().create_future()
            if self.failure is not None:
                future.set_exception(self.failure)
            elif self.results is not None:
                future.set_result(self.results.get(key) or _missing(key))
        return future

    def deliver(self, results: dict[str, _Line]) -> None:
        self.results = results
        # Answers first: when a refused line wakes its request, the run has seen answers already.
        for key, future in sorted(self.futures.items(), key=lambda kv: (results.get(kv[0]) or _missing(kv[0])).error
                                  is not None):
            if not future.done():
                future.set_result(results.get(key) or _missing(key))

    def fail(self, error: BaseException) -> None:
        self.failure = error
        for future in self.futures.values():
            if not future.done():
                future.set_exception(error)


def _missing(key: str) -> _Line:
    return _Line(error=LLMError(SERVER, f"The batch ended without an answer or an error for request {key}."))


class BatchSender:
    """Collects the engine's requests into batch jobs and answers each from its job's output."""

    def __init__(self, context: BackendContext):
        self.context = context
        options = context.options
        self.retry_failed = str(options.get("retry_failed") or "batch")
        self.batch_size = min(MAX_REQUESTS, max(1, int(options.get("batch_size") or 5000)))
        self.poll_s = float(options.get("poll_s") or 30.0)
        self.collect_s = float(options.get("collect_s") if options.get("collect_s") is not None else 2.0)
        self.max_in_flight = self.batch_size  # the engine sends this many at once: one batch's worth
        self.answers = 0
        self.jobs = BackendJobs(context.conn)
        self._client: Any = None
        self._pending: list[tuple[Any, Mapping[str, Any], asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._watches: dict[int, _Watch] = {}
        self._tasks: set[asyncio.Task] = set()

    # -- the engine's side --------------------------------------------------------------------------------
    async def send(self, request: Any, *, prior_attempts: int, on_retry: RetryCallback, timeout_s: float,
                   params: Mapping[str, Any]) -> Completion:
        config = self.context.config
        attempts = prior_attempts
        held = self._job_holding(request.key)
        if held is not None:
            line = await self._watch(held).future(request.key)  # in a job already: wait for it, never resend
        else:
            line = await self._submit(request, params)
        while True:
            if line.resubmit:  # its job never reached the provider: nothing was sent or paid
                line = await self._submit(request, params)
                continue
            attempts += 1
            if line.completion is not None:
                done = line.completion
                return Completion(done.text, done.finish_reason, done.usage, done.cost, 0.0, attempts, done.model)
            error = line.error
            assert error is not None
            error.attempts = attempts
            if not error.retryable or attempts >= config.max_attempts:
                raise error
            on_retry(RetryNotice(attempts, 0.0, error))
            # Live only if the budget can hold the live worst case; else the follow-up batch it reserved.
            if self.retry_failed == "live" and self.context.reserve(request.key, 1.0):
                client = self.context.live_client()  # its own retries, at the live price
                done = await client.complete(request.prompt, headers={REQUEST_KEY_HEADER: request.key},
                                             timeout_s=timeout_s, prior_attempts=attempts, on_retry=on_retry,
                                             **params)
                self.answers += 1
                return done
            line = await self._submit(request, params)  # a follow-up batch

    def holds(self, request_key: str) -> bool:
        """True when a job at the provider holds the request (ran or will run: paid): the engine sends it anyway."""
        return self._job_holding(request_key) is not None

    def _job_holding(self, request_key: str) -> Job | None:
        held = self.jobs.job_holding(request_key)
        if held is not None and held[1] in (SENT, ANSWERED) and held[0].status != FAILED:
            return held[0]
        return None

    def open_work(self) -> bool:
        return self.jobs.has_open_jobs(self.context.run_id)

    async def cancel_open_work(self) -> None:
        """Cancel the run's batches at the provider; what they answered before is collected on resume."""
        client = self._openai()
        for job in self.jobs.jobs(self.context.run_id, open_only=True):
            batch_id = job.job_id or await self._find_batch(job.local_key)
            if batch_id is None:
                if job.file_id is None and await self._find_file(job.local_key) is None:
                    self.jobs.set_status(job.id, FAILED, detail={**job.detail, "why": "cancelled before upload"})
                continue
            if job.job_id is None:
                self.jobs.set_job_id(job.id, batch_id)
            batch = await self._call(client.batches.cancel(batch_id))
            self.jobs.set_status(job.id, batch.status)
            self._report(self.jobs.job(job.id) or job, batch)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # -- gathering requests into jobs ---------------------------------------------------------------------
    def _submit(self, request: Any, params: Mapping[str, Any]) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, params, future))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if len(self._pending) >= self.batch_size:
            self._flush()
        else:  # sent once collect_s passes without a new request
            self._timer = asyncio.get_running_loop().call_later(self.collect_s, self._flush)
        return future

    def _flush(self) -> None:
        self._timer = None
        items = [item for item in self._pending if not item[2].done()]  # a stopped worker's request stays pending
        self._pending = []
        chunk: list[tuple[tuple[Any, Mapping[str, Any], asyncio.Future], bytes]] = []
        size = 0
        for item in items:  # one job per file the provider accepts: long prompts fill 200 MB before 50,000 lines
            request, params, _ = item
            line = (json.dumps({"custom_id": request.key, "method": "POST", "url": ENDPOINT,
                                "body": self._body(request, params)}) + "\n").encode()
            if chunk and size + len(line) > MAX_FILE_BYTES:
                self._spawn(self._start_job(chunk))
                chunk, size = [], 0
            chunk.append((item, line))
            size += len(line)
        if chunk:
            self._spawn(self._start_job(chunk))

    def _spawn(self, coroutine: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _start_job(self, items: list[tuple[tuple[Any, Mapping[str, Any], asyncio.Future], bytes]]) -> None:
        """One job for ``items`` (each with its JSONL line): committed with its request keys, then uploaded."""
        context = self.context
        local_key = f"run{context.run_id}-{uuid.uuid4().hex[:12]}"
        try:
            job = self.jobs.create_job(context.run_id, KEY, local_key, [r.key for (r, _, _), _ in items],
                                       {"model": context.config.teacher.model,
                                        "expected_saving": self._expected_saving(items)})
        except Exception as error:  # noqa: BLE001 - nothing was sent; the waiting requests must hear it, not hang
            for (_, _, future), _ in items:
                if not future.done():
                    future.set_exception(error)
            return
        watch = _Watch(job.id)
        self._watches[job.id] = watch
        for (request, _, future), _ in items:
            watch.futures[request.key] = future
        watch.task = asyncio.current_task()
        await self._follow(job, watch, b"".join(line for _, line in items))

    def _expected_saving(self, items: list[tuple[tuple[Any, Mapping[str, Any], asyncio.Future], bytes]]) -> float:
        """What these lines should save against live calls before any answer is back (the estimate's rule:
        ~4 characters a prompt token, the answer ``max_tokens`` or ~80 tokens a task, whichever is less)."""
        config = self.context.config
        live = 0.0
        for (request, params, _), _ in items:
            answer_tokens = min(int(params.get("max_tokens") or config.max_tokens), config.num_tasks * 80)
            live += request_cost(config.prices, config.teacher.model, len(request.prompt) // 4, answer_tokens)
        return live * (1 - PRICE_FACTOR)

    def _body(self, request: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.context.config.teacher.model,
                                "messages": [{"role": "user", "content": request.prompt}]}
        body.update({k: params[k] for k in ("temperature", "top_p", "max_tokens") if params.get(k) is not None})
        return body

    def _watch(self, job: Job) -> _Watch:
        watch = self._watches.get(job.id)
        if watch is None:
            watch = self._watches[job.id] = _Watch(job.id)
            watch.task = self._spawn(self._follow(job, watch, None))
        return watch

    # -- one job, from upload to its answers ------------------------------------------------------------------
    async def _follow(self, job: Job, watch: _Watch, content: bytes | None) -> None:
        try:
            results = await self._run_job(job, content)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - every waiting request hears it (the engine decides)
            watch.fail(error)
            return
        watch.deliver(results)

    async def _run_job(self, job: Job, content: bytes | None) -> dict[str, _Line]:
        client = self._openai()
        if job.status == COLLECTED:  # answered before a crash, not yet stored: read its output again, never re-run
            results = await self._read_results(job)
            self.answers += sum(1 for line in results.values() if line.completion is not None)
            return results
        if job.file_id is None:
            file_id = None if content is not None else await self._find_file(job.local_key)
            if file_id is None and content is None:
                # Never uploaded (killed before): nothing is at the provider; its requests go into a new job.
                self.jobs.set_status(job.id, FAILED, detail={**job.detail, "why": "never uploaded"})
                return {key: _Line(resubmit=True) for key in self.jobs.request_keys(job.id)}
            if file_id is None:
                name = f"{job.local_key}.jsonl"
                uploaded = await self._patiently(
                    job, lambda: client.with_options(max_retries=0).files.create(file=(name, content), purpose="batch"),
                    lambda: self._find_file(job.local_key))
                file_id = uploaded if isinstance(uploaded, str) else uploaded.id
                _crash_point("upload")
            self.jobs.set_file_id(job.id, file_id)
            job = self.jobs.job(job.id) or job
        if job.job_id is None:
            batch_id = None if content is not None else await self._find_batch(job.local_key)
            if batch_id is None:
                file_id = job.file_id

                async def made_already() -> Any:
                    found = await self._find_batch(job.local_key)
                    return None if found is None else await client.batches.retrieve(found)

                batch = await self._patiently(job, lambda: client.with_options(max_retries=0).batches.create(
                    input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h",
                    metadata={"distill_job": job.local_key, "run": str(self.context.run_id)}), made_already)
                batch_id = batch.id
                _crash_point("create")
                self.jobs.set_job_id(job.id, batch_id, batch.status)
                job = self.jobs.job(job.id) or job
                self._report(job, batch)
            else:
                self.jobs.set_job_id(job.id, batch_id)
                job = self.jobs.job(job.id) or job
            await asyncio.sleep(self.poll_s)
        while True:
            batch_id = job.job_id
            batch = await self._patiently(job, lambda: client.batches.retrieve(batch_id))
            counts = _counts(batch)
            self.jobs.set_status(job.id, batch.status, counts=counts, output_file_id=batch.output_file_id,
                                 error_file_id=batch.error_file_id)
            job = self.jobs.job(job.id) or job
            self._report(job, batch)
            if batch.status == "failed":
                message = _batch_errors(batch)
                self.jobs.set_status(job.id, FAILED, detail={**job.detail, "why": message})
                self._report(self.jobs.job(job.id) or job, batch)
                raise BatchFailed(QUOTA if "quota" in message.lower() or "limit" in message.lower() else OTHER,
                                  f"OpenAI failed batch {batch.id} as a whole: {message}")
            if batch.status in FINISHED:
                return await self._collect(job, batch.status)
            await asyncio.sleep(self.poll_s)

    async def _collect(self, job: Job, status: str) -> dict[str, _Line]:
        """Read the job's output and error files; commit each request's state and the job as collected."""
        results = await self._read_results(job, status)
        cost = sum(line.completion.cost for line in results.values() if line.completion is not None)
        states = {key: (ANSWERED, None) if line.completion is not None else
                  (LINE_FAILED, line.error.message if line.error else None) for key, line in results.items()}
        self.jobs.set_request_states(job.id, states)
        detail = {**job.detail, "cost": cost, "saving": cost / PRICE_FACTOR - cost, "provider_status": status}
        self.jobs.set_status(job.id, COLLECTED, detail=detail)
        self.answers += sum(1 for line in results.values() if line.completion is not None)
        self._report(self.jobs.job(job.id) or job, None)
        return results

    async def _read_results(self, job: Job, status: str | None = None) -> dict[str, _Line]:
        results: dict[str, _Line] = {}
        for file_id in (job.output_file_id, job.error_file_id):
            if not file_id:
                continue
            content = await self._patiently(job, lambda: self._openai().files.content(file_id))
            for text in content.text.splitlines():
                if text.strip():
                    line = json.loads(text)
                    results[line["custom_id"]] = self._line(line, job)
        expired = status or job.detail.get("provider_status")
        for key in self.jobs.request_keys(job.id):
            if key not in results:
                results[key] = _Line(error=LLMError(TIMEOUT, f"The batch {job.job_id} ended ({expired}) before "
                                                             f"request {key} ran.")) \
                    if expired in ("expired", "cancelled") else _missing(key)
        return results

    def _line(self, line: Mapping[str, Any], job: Job) -> _Line:
        response = line.get("response") or {}
        error = line.get("error")
        key = line.get("custom_id")
        code = response.get("status_code")
        if code == 200 and not error:
            body = response.get("body") or {}
            choice = (body.get("choices") or [{}])[0]
            usage = Usage.from_dict(body.get("usage"))
            config = self.context.config
            cost = usage_cost(config.prices, config.teacher.model, usage) * PRICE_FACTOR
            return _Line(Completion((choice.get("message") or {}).get("content") or "", choice.get("finish_reason"),
                                    usage, cost, 0.0, 1, body.get("model") or config.teacher.model))
        if error:  # the line never ran: batch_expired, batch_cancelled
            return _Line(error=LLMError(TIMEOUT, f"Request {key} did not run in batch {job.job_id}: "
                                                 f"{error.get('code')}: {error.get('message')}"))
        detail = ((response.get("body") or {}).get("error") or {})
        message = f"OpenAI answered request {key} in batch {job.job_id} with {code}: {detail.get('message') or detail}"
        kind = RATE if code == 429 else SERVER if (code or 500) >= 500 else AUTH if code in (401, 403) else BAD_REQUEST
        return _Line(error=LLMError(kind, message, status_code=code))

    # -- the provider -----------------------------------------------------------------------------------------
    def _openai(self) -> Any:
        if self._client is None:
            import openai

            from studio.core.llm.keys import resolve_key

            teacher = self.context.config.teacher
            api_key = self.context.api_key or resolve_key(teacher).value or "missing-key"
            self._client = openai.AsyncOpenAI(base_url=teacher.base_url, api_key=api_key, max_retries=2,
                                              timeout=max(60.0, teacher.timeout_s))
        return self._client

    async def _call(self, awaitable: Any) -> Any:
        import openai

        from studio.core.llm.errors import from_openai

        try:
            return await awaitable
        except openai.OpenAIError as exc:
            teacher = self.context.config.teacher
            raise from_openai(exc, base_url=teacher.base_url, model=teacher.model, role="the Batch API") from exc

    async def _patiently(self, job: Job, call: Callable[[], Awaitable[Any]],
                         made_already: Callable[[], Awaitable[Any]] | None = None) -> Any:
        """``call()`` until the provider answers: a transient failure waits ``poll_s`` and tries again.

        A batch waits hours at the provider; a network or server blip meanwhile must not fail its
        requests (the run would send new ones and pay for both). A create that failed may still have
        reached the provider (the answer lost): ``made_already()`` looks for what it made (by the
        job's ``local_key``) before creating again, and such calls go without the openai client's
        own retries, which would simply create again.
        """
        failed = False
        while True:
            try:
                if failed and made_already is not None:
                    found = await self._call(made_already())
                    if found is not None:
                        return found
                return await self._call(call())
            except LLMError as error:
                if not error.retryable:
                    raise
                failed = True
                wait_s = max(self.poll_s, error.retry_after or 0.0)
                self._report(self.jobs.job(job.id) or job, None, f"{error.message} Trying again in {wait_s:g} s.")
                await asyncio.sleep(wait_s)

    async def _find_file(self, local_key: str) -> str | None:
        name = f"{local_key}.jsonl"
        async for item in self._openai().files.list(purpose="batch"):
            if item.filename == name:
                return item.id
        return None

    async def _find_batch(self, local_key: str) -> str | None:
        async for batch in self._openai().batches.list(limit=100):
            if (batch.metadata or {}).get("distill_job") == local_key:
                return batch.id
        return None

    # -- what the panel and the CLI show ------------------------------------------------------------------------
    def _report(self, job: Job, batch: Any | None, problem: str = "") -> None:
        """The run's batch status line (and its state for the panel); ``problem``: why it is waiting now."""
        jobs = self.jobs.jobs(self.context.run_id)
        number = next((n for n, j in enumerate(jobs, start=1) if j.id == job.id), len(jobs))
        counts = _counts(batch) if batch is not None else job.counts
        saving = sum(float(j.detail.get("saving") or 0.0) for j in jobs)
        # A job not collected yet counts what it should save (its answers' usage is not known before then).
        expected = saving + sum(float(j.detail.get("expected_saving") or 0.0) for j in jobs if "saving" not in j.detail)
        status = batch.status if batch is not None else job.status
        total, completed, failed = counts.get("total", 0), counts.get("completed", 0), counts.get("failed", 0)
        said = f"saving {usd(saving)}" if expected == saving else f"expected saving ≈ {usd(expected)}"
        text = (f"Batch {number} of {len(jobs)} at OpenAI: {status} — {completed:,} of {total:,} done, "
                f"{failed:,} failed · {said}") + (f" · {problem}" if problem else "")
        state = {"job": job.local_key, "batch_id": job.job_id, "status": status, "total": total,
                 "completed": completed, "failed": failed, "saving_usd": round(saving, 6),
                 "expected_saving_usd": round(expected, 6), "number": number,
                 "jobs": len(jobs), "open_jobs": sum(1 for j in jobs if j.open), "problem": problem}
        self.context.report(BackendStatus(self.context.run_id, text, state))


def _counts(batch: Any) -> dict[str, int]:
    counts = getattr(batch, "request_counts", None)
    return {"total": int(getattr(counts, "total", 0) or 0), "completed": int(getattr(counts, "completed", 0) or 0),
            "failed": int(getattr(counts, "failed", 0) or 0)}


def _batch_errors(batch: Any) -> str:
    errors = getattr(getattr(batch, "errors", None), "data", None) or []
    return "; ".join(f"{e.code}: {e.message}" + (f" (line {e.line})" if getattr(e, "line", None) else "")
                     for e in errors) or "no reason given"


@dataclass(frozen=True)
class BatchBackend:
    key: str = KEY
    price_factor: float = PRICE_FACTOR
    max_in_flight: int | None = None  # the sender's: its batch_size option

    def open(self, context: BackendContext) -> BatchSender:
        return BatchSender(context)


BATCH_BACKEND = BatchBackend()
