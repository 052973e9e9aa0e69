"""One base model in memory, its LoRA adapters on top, and one worker thread that generates for every request.

Requests wait in a bounded queue and run one at a time on the worker, so answers never
interleave and peft's active adapter is only ever switched between requests (``set_adapter``,
or ``disable_adapter`` for the base). Each job carries a cancel event the web side sets when its
client disconnects; a stopping criterion checks it at every token, so an abandoned request
frees the model within one decoding step. The same criterion feeds the text stream (and its
stop strings) with each new token as ``generate`` appends it: no second streamer thread.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from studio.core.errors import StudioError
from studio.core.serving.catalog import ADAPTER, Catalog, ServedModel
from studio.core.serving.wire import RATE_LIMIT, UNAVAILABLE, Sampling, WireError
from studio.serve.profiling import profiled
from studio.serve.textstream import Pieces, TextStream, byte_level_pieces

MAX_DEFAULT_TOKENS = 4096     # a request without max_tokens gets the rest of the context, at most this
PROMPT_TAIL = 4               # prompt tokens decoded with the first answer token (its leading space)

# Events a job emits (from the worker thread, through its ``emit`` callback):
#   ("text", str)                                   new answer text
#   ("done", finish_reason, prompt_tokens, completion_tokens)
#   ("error", status, message)
Event = tuple


class EngineError(StudioError):
    """The model or an adapter cannot be loaded."""


@dataclass
class Job:
    model: ServedModel
    prompt_ids: list[int]
    sampling: Sampling
    stops: list[str]
    max_new_tokens: int
    emit: Callable[[Event], None]
    cancel: threading.Event = field(default_factory=threading.Event)


class _Row:
    """One job's progress inside a (possibly batched) generate call."""

    def __init__(self, job: Job, stream: TextStream):
        self.job, self.stream = job, stream
        self.count = 0
        self.saw_eos = False
        self.finished = False
        self.reported = False


class _Criterion(StoppingCriteria):
    """Called by ``generate`` after each new token: streams each row's text, ends a row on EOS, cancel,
    a stop string or its own max_tokens (a batch runs to its longest request)."""

    def __init__(self, engine: Engine, rows: list[_Row]):
        self.engine, self.rows = engine, rows
        self._none_done: torch.BoolTensor | None = None  # the usual answer, made once (no copy to the GPU per step)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        last = input_ids[:, -1].tolist()  # one device-to-host copy per step, as a streamer does
        done = []
        for row, token in zip(self.rows, last):
            if not row.finished:
                job = row.job
                row.count += 1
                if token in self.engine.eos_ids and not job.sampling.ignore_eos:
                    row.saw_eos = True
                elif token not in self.engine.special_ids:
                    text = row.stream.add(token)
                    if text:
                        job.emit(("text", text))
                row.finished = (row.saw_eos or row.stream.stopped or job.cancel.is_set()
                                or row.count >= job.max_new_tokens)
                if row.finished:  # its client hears now, not when the batch's longest answer ends
                    self.engine._report(row)
            done.append(row.finished)
        if any(done):
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
        if self._none_done is None:  # generate only ORs it into a new tensor, never writes to it
            self._none_done = torch.zeros(len(done), dtype=torch.bool, device=input_ids.device)
        return self._none_done


class Engine:
    """The loaded model and the generation worker. Thread-safe: ``submit`` and ``control`` from any thread."""

    def __init__(self, catalog: Catalog, *, device: str = "auto", max_queue: int = 16, threads: int = 0,
                 max_batch: int = 8):
        self.catalog = catalog
        self.max_queue = max(1, max_queue)
        self.max_batch = max(1, max_batch)
        self.threads = threads
        self.device = torch.device(_pick_device(device))
        self.model: Any = None
        self.tokenizer: Any = None
        self.eos_ids: set[int] = set()
        self.special_ids: set[int] = set()
        self.pieces: Pieces | None = None             # byte-level tokenizers: id -> bytes, streamed without windows
        self.context_length = 2048
        self._adapter_names: dict[str, str] = {}      # served id -> peft adapter name (peft forbids dots)
        self._next_adapter = 0
        self._waiting: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._tokenizer_lock = threading.Lock()       # a fast tokenizer must not be used by two threads at once
        self._running: list[Job] = []
        self._closing = False
        self.served = 0
        self.largest_batch = 0
        self._worker = threading.Thread(target=self._work, name="studio-serve-generate", daemon=True)

    # -- loading ----------------------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return f"cuda:{self.device.index or 0}" if self.device.type == "cuda" else self.device.type

    def load(self) -> None:
        """Load the base and every adapter of the catalog; EngineError names what failed and what to do."""
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        folder = self.catalog.base_model
        if not (Path(folder) / "config.json").is_file():
            raise EngineError(f"{folder}: not a model folder (no config.json); give --base-model a folder "
                              "with a Hugging Face model")
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # stderr is for one-line errors and warnings
        hf_logging.set_verbosity_error()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True,
                                                         trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001 - every loader failure becomes one line
            raise EngineError(f"cannot load the base model {folder}: {_short(exc)}") from None
        model.to(self.device).eval()
        self.model = model
        config = model.config
        self.context_length = int(getattr(config, "max_position_embeddings", 0) or 2048)
        eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None \
            else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.special_ids = set(self.tokenizer.all_special_ids)
        self.pieces = byte_level_pieces(self.tokenizer, self._tokenizer_lock)
        for served in self.catalog.adapters:
            self._attach(served)

    def _attach(self, served: ServedModel) -> None:
        if not served.adapter_path or not (Path(served.adapter_path) / "adapter_config.json").is_file():
            raise EngineError(f"{served.adapter_path}: no adapter_config.json, so {served.id} has no adapter "
                              "to load (train the run, or remove it with --run)")
        name = f"adapter_{self._next_adapter}"
        try:
            if self._adapter_names:
                self.model.load_adapter(served.adapter_path, adapter_name=name)
            else:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, served.adapter_path, adapter_name=name)
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"cannot load the adapter of {served.id} from {served.adapter_path}: "
                              f"{_short(exc)}") from None
        self.model.eval()
        self._next_adapter += 1
        self._adapter_names[served.id] = name

    def _detach(self, model_id: str) -> None:
        name = self._adapter_names.pop(model_id)
        if self._adapter_names:
            self.model.delete_adapter(name)
        else:  # the last adapter: back to the plain base model
            self.model = self.model.unload()

    # -- the catalog, changed at run time ---------------------------------------------------
    def find(self, model_id: str) -> ServedModel | None:
        return self.catalog.find(model_id)

    def add_adapter(self, served: ServedModel) -> Catalog:
        """Load one more adapter (on the worker, between requests); returns the new catalog."""
        if self.catalog.find(served.id) is not None:
            raise WireError(f"a model named {served.id!r} is already served", param="lora_name")
        self.control(lambda: self._attach(served))
        self.catalog = dataclasses.replace(self.catalog, models=(*self.catalog.models, served))
        return self.catalog

    def remove_adapter(self, model_id: str) -> Catalog:
        served = self.catalog.find(model_id)
        if served is None or served.kind != ADAPTER or model_id not in self._adapter_names:
            raise WireError(f"no adapter named {model_id!r} is loaded", status=404, param="lora_name",
                            code="model_not_found")
        self.catalog = dataclasses.replace(self.catalog, models=tuple(m for m in self.catalog.models
                                                                      if m.id != model_id))
        self.control(lambda: self._detach(model_id))
        return self.catalog

    # -- requests ---------------------------------------------------------------------------
    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        with self._tokenizer_lock:
            return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

    def new_tokens(self, prompt_tokens: int, sampling: Sampling) -> int:
        """How many tokens the answer may have; WireError when the prompt leaves no room."""
        room = self.context_length - prompt_tokens
        if sampling.max_tokens is None:
            if room < 1:
                raise WireError(f"the prompt has {prompt_tokens} tokens; this model's context is "
                                f"{self.context_length} tokens: shorten the conversation", param="messages")
            return min(room, MAX_DEFAULT_TOKENS)
        if sampling.max_tokens > room:
            raise WireError(f"the prompt ({prompt_tokens} tokens) plus max_tokens ({sampling.max_tokens}) exceeds "
                            f"this model's context of {self.context_length} tokens", param="max_tokens")
        return sampling.max_tokens

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closing:
                raise WireError("the server is shutting down", status=503, type=UNAVAILABLE)
            if len(self._waiting) >= self.max_queue:
                raise WireError(f"the server is busy ({self.max_queue} requests already wait); retry shortly",
                                status=429, type=RATE_LIMIT, code="rate_limit_exceeded")
            self._waiting.append(job)
            self._cond.notify()

    def control(self, action: Callable[[], Any], timeout_s: float = 600.0) -> Any:
        """Run ``action`` on the worker between two requests (adapters change the model in place)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closing:
                raise WireError("the server is shutting down", status=503, type=UNAVAILABLE)
            self._waiting.appendleft((action, future))
            self._cond.notify()
        return future.result(timeout=timeout_s)

    def queue_state(self) -> dict[str, int]:
        with self._cond:
            waiting = sum(1 for item in self._waiting if isinstance(item, Job))
            return {"waiting": waiting, "running": len(self._running), "max": self.max_queue}

    def memory(self) -> dict[str, int | None]:
        allocated = reserved = None
        if self.device.type == "cuda":
            allocated = int(torch.cuda.memory_allocated(self.device))
            reserved = int(torch.cuda.memory_reserved(self.device))
        return {"rss_bytes": _rss_bytes(), "gpu_allocated_bytes": allocated, "gpu_reserved_bytes": reserved}

    # -- the worker -------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Refuse new work, end what waits with 503, cancel what runs, stop the worker."""
        with self._cond:
            self._closing = True
            waiting, self._waiting = list(self._waiting), collections.deque()
            for job in self._running:
                job.cancel.set()
            self._cond.notify_all()
        for item in waiting:
            if isinstance(item, Job):
                item.emit(("error", 503, "the server is shutting down"))
            else:
                item[1].set_exception(WireError("the server is shutting down", status=503, type=UNAVAILABLE))
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout_s)

    def _work(self) -> None:
        with profiled("worker"):
            self._work_loop()

    def _work_loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closing:
                    self._cond.wait()
                if not self._waiting:
                    return
                item = self._waiting.popleft()
                if isinstance(item, Job):
                    self._running = [item] + self._batch_mates(item)
                    jobs = self._running
            if isinstance(item, Job):
                try:
                    self._generate(jobs)
                finally:
                    with self._cond:
                        self._running = []
                continue
            action, future = item
            try:
                future.set_result(action())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                future.set_exception(exc)

    def _batch_mates(self, first: Job) -> list[Job]:
        """Waiting jobs that can share one generate call with ``first`` (called with the lock held).

        Same model (one adapter active per call) and the same sampling settings; a seeded sampled
        request runs alone, since rows of a batch draw from one random stream.
        """
        if self.max_batch == 1 or (first.sampling.seed is not None and not first.sampling.greedy):
            return []
        key = _batch_key(first)
        mates = [job for job in self._waiting if isinstance(job, Job) and _batch_key(job) == key
                 and (job.sampling.greedy or job.sampling.seed is None)][: self.max_batch - 1]
        for job in mates:
            self._waiting.remove(job)
        return mates

    def _generate(self, jobs: list[Job]) -> None:
        jobs = [job for job in jobs if not job.cancel.is_set()]  # clients that left while they waited
        if not jobs:
            return
        first = jobs[0]
        self.largest_batch = max(self.largest_batch, len(jobs))
        rows = [_Row(job, TextStream(self.decode, job.stops, prompt_tail=job.prompt_ids[-PROMPT_TAIL:],
                                     pieces=self.pieces))
                for job in jobs]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else next(iter(self.eos_ids), 0)
        longest = max(len(job.prompt_ids) for job in jobs)
        # left padding: every row's next token comes at the same position of the batch
        ids = torch.tensor([[pad] * (longest - len(job.prompt_ids)) + job.prompt_ids for job in jobs],
                           dtype=torch.long, device=self.device)
        mask = torch.tensor([[0] * (longest - len(job.prompt_ids)) + [1] * len(job.prompt_ids) for job in jobs],
                            dtype=torch.long, device=self.device)
        new_tokens = max(job.max_new_tokens for job in jobs)
        try:
            with torch.inference_mode(), self._adapter_for(first.model):
                self._seed(first.sampling.seed)
                kwargs: dict[str, Any] = {
                    "input_ids": ids, "attention_mask": mask, "max_new_tokens": new_tokens,
                    "stopping_criteria": StoppingCriteriaList([_Criterion(self, rows)]), "pad_token_id": pad,
                    "do_sample": not first.sampling.greedy,
                }
                if not first.sampling.greedy:
                    kwargs.update(temperature=first.sampling.temperature, top_p=first.sampling.top_p, top_k=0)
                if first.sampling.ignore_eos:
                    kwargs["min_new_tokens"] = new_tokens
                self.model.generate(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the clients get the message, the server keeps serving
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            for row in rows:
                if not row.reported:
                    row.reported = True
                    row.job.emit(("error", 500, f"generation failed: {_short(exc)}"))
            return
        for row in rows:
            self._report(row)

    def _report(self, row: _Row) -> None:
        """A finished row's last text and its end (once), or nothing for a client that left."""
        if row.reported:
            return
        row.reported = True
        job, stream = row.job, row.stream
        if job.cancel.is_set() and not stream.stopped:
            if self._closing:  # its client is still there: end its stream, do not leave it hanging
                job.emit(("error", 503, "the server is shutting down"))
            return
        rest = stream.finish()
        if rest:
            job.emit(("text", rest))
        finish = "length" if row.count >= job.max_new_tokens and not (stream.stopped or row.saw_eos) else "stop"
        self.served += 1
        job.emit(("done", finish, len(job.prompt_ids), row.count))

    def _adapter_for(self, served: ServedModel) -> contextlib.AbstractContextManager:
        if not self._adapter_names:
            return contextlib.nullcontext()
        if served.kind == ADAPTER:
            self.model.set_adapter(self._adapter_names[served.id])
            return contextlib.nullcontext()
        return self.model.disable_adapter()

    def _seed(self, seed: int | None) -> None:
        if seed is not None:
            torch.manual_seed(seed)
        else:
            torch.manual_seed(int.from_bytes(os.urandom(8), "little") & ((1 << 63) - 1))


def _batch_key(job: Job) -> tuple:
    sampling = job.sampling
    if sampling.greedy:
        return (job.model.id, "greedy", sampling.ignore_eos)
    return (job.model.id, sampling.temperature, sampling.top_p, sampling.ignore_eos)


def _pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu")
    return device


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")

