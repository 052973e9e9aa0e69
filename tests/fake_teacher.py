"""A loopback OpenAI-compatible teacher for tests and benchmarks (real HTTP, stdlib only).

Answers ``GET /v1/models`` and ``POST /v1/chat/completions`` with numbered task batches made
by a deterministic word generator, so every instruction is distinct and the same request key
always gets the same answer. Faults are drawn per (request key, attempt) from a seeded RNG:
429 with Retry-After, 500, a stall past the client's timeout, malformed text, a batch cut off
with ``finish_reason="length"``. A wrong bearer key gets 401. The server counts requests per
request key so tests can prove finished requests are never sent again. With ``"stream": true``
it answers as OpenAI does: server-sent ``chat.completion.chunk`` events of a few characters,
a last chunk with ``finish_reason``, with ``stream_options.include_usage`` one more with
``choices: []`` and ``usage``, then ``data: [DONE]``; ``stream_break_after`` chunks cuts the
connection mid-stream.
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loopback_server import LoopbackServer

WORDS = (
    "apple river budget castle dolphin engine forest garden harbor island jacket kettle ladder meadow "
    "needle orchard pepper quartz rocket saddle tunnel umbrella valley wagon yarn zebra anchor basket "
    "candle desert elbow feather glacier hammer igloo jungle kitten lemon magnet nectar oyster parrot "
    "quiver raven salmon tiger unicorn violin walrus xylophone yacht zipper acorn bamboo cactus donkey "
    "eagle falcon goblet hazel iris jasmine koala lantern marble nutmeg olive panda quilt radish spruce "
    "tulip urchin velvet willow yeast zinnia amber bronze copper denim ember fabric granite hollow ivory"
).split()
VERBS = ("Describe", "Explain", "Summarize", "Compare", "List", "Classify", "Rewrite", "Suggest", "Evaluate", "Outline")


@dataclass
class Faults:
    """Probabilities per attempt; each attempt of each key draws once."""

    rate_limit: float = 0.0
    server_error: float = 0.0
    stall: float = 0.0
    malformed: float = 0.0
    truncated: float = 0.0
    retry_after_s: float = 0.05
    stall_s: float = 3.0


@dataclass
class FakeTeacher(LoopbackServer):
    latency_s: float = 0.0
    faults: Faults = field(default_factory=Faults)
    api_key: str = "sk-fake-teacher"
    models: tuple[str, ...] = ("fake-teacher", "fake-small")
    max_lifetime_s: float = 300.0
    tasks_per_batch: int | None = None  # None: as many as the prompt asks for
    bad_items_every: int = 0  # every n-th item gets a blacklisted or too-short instruction
    quota_after: int | None = None  # after this many answers, every request gets 429 insufficient_quota
    chunk_chars: int = 7  # characters per streamed delta
    stream_break_after: int | None = None  # streamed chunks sent before the connection is cut
    faulty_attempts: int = 0  # the first n attempts of each key get the next fault in ``fault_cycle``
    fault_cycle: tuple[str, ...] = ()
    chunk_delay_s: float = 0.0  # pause between streamed deltas (a slow model; cancellation tests)

    def __post_init__(self) -> None:
        self.requests_by_key: Counter[str] = Counter()
        self.successes_by_key: Counter[str] = Counter()
        self.total_requests = 0
        self.bodies: list[dict] = []  # every chat request's JSON body, in arrival order
        self.client_gone = threading.Event()  # set when a client closed a stream before its end
        self._lock = threading.Lock()

    # -- lifecycle (stop, with, base_url: LoopbackServer) ------------------------------------------
    def start(self) -> FakeTeacher:
        handler = type("Handler", (_Handler,), {"teacher": self})
        self._serve(_Server(("127.0.0.1", 0), handler))
        return self

    # -- content ----------------------------------------------------------------------------------
    def batch(self, key: str, count: int) -> list[tuple[str, str, str]]:
        rng = random.Random(key)
        items = []
        for n in range(count):
            words = rng.sample(WORDS, 9)
            instruction = f"{rng.choice(VERBS)} the {' '.join(words[:6])} in {words[6]} terms."
            if self.bad_items_every and (n + 1) % self.bad_items_every == 0:
                instruction = "Draw a map." if ((n + 1) // self.bad_items_every) % 2 else f"Describe this picture of a {words[0]} please."
            input_text = "" if n % 3 else f"The {words[7]} and the {words[8]}."
            items.append((instruction, input_text, f"An answer about {' and '.join(words[:3])}."))
        return items


def render(items: list[tuple[str, str, str]]) -> str:
    blocks = [
        f"Task {n}\nInstruction: {i}\nInput: {inp or '<noinput>'}\nOutput: {out}"
        for n, (i, inp, out) in enumerate(items, start=1)
    ]
    return "Here are the tasks.\n\n" + "\n\n".join(blocks) + "\n"


def respond(teacher: FakeTeacher, key: str, prompt: str) -> str:
    """Answer in the layout the prompt asks for: an Alpaca batch or one of the self-instruct stages."""
    asked = re.search(r"numbered 1 to (\d+)", prompt)
    count = teacher.tasks_per_batch or (int(asked.group(1)) if asked else 20)
    if "Answer one line per task" in prompt:  # self-instruct: classification?
        tasks = re.findall(r"^(\d+)\. (.*)$", prompt.split("Answer one line per task", 1)[1], re.MULTILINE)
        return "\n".join(f"{n}: {'Yes' if text.startswith('Classify') else 'No'}" for n, text in tasks)
    if "Class label: ..." in prompt:  # output-first instances
        rng = random.Random(key)
        return "\n\n".join(f"Example {n}\nClass label: {label}\nInput: A {rng.choice(WORDS)} {rng.choice(WORDS)} story."
                            for n, label in enumerate(("positive", "negative"), start=1))
    if "Output: ..." in prompt and "Task: " in prompt:  # input-first instances
        rng = random.Random(key)
        return "\n\n".join(f"Example {n}\nInput: The {rng.choice(WORDS)} near the {rng.choice(WORDS)}.\n"
                            f"Output: It is about {rng.choice(WORDS)}." for n in (1, 2))
    if "one per line" in prompt:  # self-instruct: new instructions
        return "\n".join(f"{n}. {instruction}" for n, (instruction, _, _) in enumerate(teacher.batch(key, count), start=1))
    return render(teacher.batch(key, count))


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 drops SYNs when 32+ clients connect at once, and each
    # drop costs a 1 s retransmit: that would measure the kernel, not the engine.
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client gave up: fine
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    teacher: FakeTeacher
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms delayed-ACK stalls

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.teacher.api_key}":
            return True
        self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}})
        return False

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.teacher.models]
            self._send(200, {"object": "list", "data": data})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        arrived = time.monotonic()
        teacher = self.teacher
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self._authorised():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": "not found"}})
            return
        with teacher._lock:
            teacher.bodies.append(body)
        if body.get("model") not in teacher.models:
            self._send(404, {"error": {"message": f"The model {body.get('model')} does not exist", "code": "model_not_found"}})
            return
        prompt = body["messages"][-1]["content"]
        key = self.headers.get("X-Distill-Request-Key") or str(hash(prompt))
        with teacher._lock:
            teacher.requests_by_key[key] += 1
            teacher.total_requests += 1
            attempt = teacher.requests_by_key[key]
        f = teacher.faults
        roll = random.Random(f"{key}#{attempt}").random()
        edge = 0.0
        for name, probability in (("rate_limit", f.rate_limit), ("server_error", f.server_error), ("stall", f.stall),
                                  ("malformed", f.malformed), ("truncated", f.truncated)):
            edge += probability
            if roll < edge:
                fault = name
                break
        else:
            fault = ""
        if attempt <= teacher.faulty_attempts and teacher.fault_cycle:
            fault = teacher.fault_cycle[(attempt - 1) % len(teacher.fault_cycle)]
        # The answer is written first and sent when the latency is up, so every answer takes
        # latency_s however long this (single-GIL) server takes to write 32 answers at once.
        text = respond(teacher, key, prompt)
        if teacher.latency_s:
            time.sleep(max(0.0, arrived + teacher.latency_s - time.monotonic()))
        with teacher._lock:
            out_of_quota = teacher.quota_after is not None and sum(teacher.successes_by_key.values()) >= teacher.quota_after
        if out_of_quota:
            self._send(429, {"error": {"message": "You exceeded your current quota, please check your plan and billing"
                                       " details.", "type": "insufficient_quota", "code": "insufficient_quota"}})
            return
        if fault == "rate_limit":
            self._send(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                       {"Retry-After": str(f.retry_after_s)})
            return
        if fault == "rate_limit_date":  # Retry-After as an HTTP date, as some proxies send it
            from email.utils import formatdate

            self._send(429, {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
                       {"Retry-After": formatdate(time.time() + 2, usegmt=True)})
            return
        if fault == "bad_request":
            self._send(400, {"error": {"message": "max_tokens is too large for this model", "type": "invalid_request_error"}})
            return
        if fault == "server_error":
            self._send(500, {"error": {"message": "The server had an error"}})
            return
        if fault == "stall":
            time.sleep(f.stall_s)
        finish = "stop"
        if fault == "malformed":
            text = "I'm sorry, here are some ideas:\n- something\n- something else\n"
        elif fault == "truncated":
            text = text[: int(len(text) * 0.6)]
            finish = "length"
        with teacher._lock:
            teacher.successes_by_key[key] += 1
        prompt_tokens, completion_tokens = len(prompt) // 4, len(text) // 4
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(f"chatcmpl-{key}-{attempt}", body["model"], text, finish, include_usage,
                         {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens})
            return
        self._send(200, {
            "id": f"chatcmpl-{key}-{attempt}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


def _chunk(chunk_id: str, model: str, choices: list, usage: dict | None = None) -> bytes:
    event = {"id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
             "choices": choices}
    if usage is not None:
        event["usage"] = usage
    return f"data: {json.dumps(event)}\n\n".encode()


def _stream(self: _Handler, chunk_id: str, model: str, text: str, finish: str, include_usage: bool,
            usage: dict) -> None:
    """Server-sent events, chunked transfer: the layout the openai client's stream parser reads."""
    teacher = self.teacher
    self.send_response(200)
    self.send_header("Content-Type", "text/event-stream")
    self.send_header("Transfer-Encoding", "chunked")
    self.end_headers()

    def write(data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    write(_chunk(chunk_id, model, [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))
    step = max(1, teacher.chunk_chars)
    for n, start in enumerate(range(0, len(text), step)):
        if teacher.stream_break_after is not None and n >= teacher.stream_break_after:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)  # cut mid-answer, as a dying server or proxy does
            return
        if n and teacher.chunk_delay_s:
            time.sleep(teacher.chunk_delay_s)
        try:
            write(_chunk(chunk_id, model, [{"index": 0, "delta": {"content": text[start:start + step]},
                                            "finish_reason": None}]))
        except (BrokenPipeError, ConnectionResetError):
            teacher.client_gone.set()
            raise
    write(_chunk(chunk_id, model, [{"index": 0, "delta": {}, "finish_reason": finish}]))
    if include_usage:
        write(_chunk(chunk_id, model, [], usage))
    write(b"data: [DONE]\n\n")
    write(b"")  # the last chunk of a chunked body


_Handler._stream = _stream  # type: ignore[attr-defined]


class ServerProcess:
    """The fake teacher in its own process, so its CPU and GIL are not the client's (benchmarks)."""

    def __init__(self, latency_s: float, lifetime_s: float = 300.0):
        self.latency_s = latency_s
        self.lifetime_s = lifetime_s
        self.api_key = FakeTeacher.api_key
        self._process = None
        self.base_url = ""

    def __enter__(self) -> ServerProcess:
        import subprocess
        import sys

        self._process = subprocess.Popen(
            [sys.executable, __file__, "--latency", str(self.latency_s), "--lifetime", str(self.lifetime_s)],
            stdout=subprocess.PIPE, text=True,
        )
        self.base_url = self._process.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)


if __name__ == "__main__":  # python tests/fake_teacher.py --latency 0.5: prints the base URL, serves until killed
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--lifetime", type=float, default=300.0)
    options = parser.parse_args()
    with FakeTeacher(latency_s=options.latency, max_lifetime_s=options.lifetime) as server:
        print(server.base_url, flush=True)
        deadline = time.monotonic() + options.lifetime
        while server._server is not None and time.monotonic() < deadline:
            time.sleep(0.5)
