"""Loopback OpenAI-compatible systems and judges for the evaluation tests and benchmark (stdlib only).

One server answers ``POST /v1/chat/completions`` for several models; the ``model`` field picks
who answers:

* an **answerer** (``FakeEvalServer.answerers[model]``) maps the prompt (the last user message's
  content) to its answer text, so a test decides exactly what each system says;
* a **judge** reads the two answers out of the default pairwise template and answers like an
  LLM judge: a short explanation that quotes another marker first (the engine must read the
  LAST one), then its verdict. Kinds: ``marker`` prefers the answer containing
  :data:`MARKER` (tie when both or neither do), ``first`` always picks the first position,
  ``longer`` always picks the longer answer, ``mumble`` never gives a verdict;
* a model in ``failing`` answers every request with 500; one in ``flaky`` fails the first
  attempt at each prompt with 500 (the client's retry gets the answer); ``refuse(model, prompt)``
  true answers that prompt with 500 every time.

Every answer takes ``latency_s`` from its arrival, and carries usage (characters / 4). The
server counts requests per model and keeps every body, so a test proves that a rerun asks
nothing again. The listen backlog is large (32+ clients connect at once; see fake_teacher).
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loopback_server import LoopbackServer

MARKER = "(certified good)"
API_KEY = "sk-fake-eval"
_ANSWERS = re.compile(r"<<<ANSWER A>>>\n(.*?)\n<<<END OF ANSWER A>>>.*?<<<ANSWER B>>>\n(.*?)\n<<<END OF ANSWER B>>>",
                      re.DOTALL)
JUDGE_KINDS = ("marker", "first", "longer", "mumble")


def echo_answer(prompt: str) -> str:
    return f"An answer to: {prompt}"


def judge_reply(kind: str, first: str, second: str) -> str:
    """What a fake judge of ``kind`` says about answers A (``first``) and B (``second``)."""
    if kind == "first":
        pick = "A"
    elif kind == "longer":
        pick = "A" if len(first) > len(second) else "B" if len(second) > len(first) else "C"
    elif kind == "marker":
        a, b = MARKER in first, MARKER in second
        pick = "A" if a and not b else "B" if b and not a else "C"
    else:
        return "Both answers have merits and I cannot decide."
    decoy = "[[C]]" if pick != "C" else "[[A]]"
    return f"At first sight {decoy} looked right, but on reflection the verdict is clear.\n\n[[{pick}]]"


@dataclass
class FakeEvalServer(LoopbackServer):
    latency_s: float = 0.0
    answerers: dict[str, Callable[[str], str]] = field(default_factory=dict)
    judges: dict[str, str] = field(default_factory=dict)  # model -> judge kind
    failing: set[str] = field(default_factory=set)
    flaky: set[str] = field(default_factory=set)
    refuse: Callable[[str, str], bool] | None = None
    api_key: str = API_KEY
    max_lifetime_s: float = 300.0
    keep_bodies: bool = True

    def __post_init__(self) -> None:
        self.requests_by_model: Counter[str] = Counter()
        self.attempts: Counter[tuple[str, str]] = Counter()  # (model, prompt) -> requests
        self.bodies: list[dict] = []
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeEvalServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._serve(_Server(("127.0.0.1", 0), handler))
        return self

    def spec(self, model: str) -> str:
        """The CLI form of a system on this server: ``URL#MODEL``."""
        return f"{self.base_url}#{model}"

    @property
    def total_requests(self) -> int:
        return sum(self.requests_by_model.values())

    # -- answers -----------------------------------------------------------------------------------
    def reply(self, model: str, messages: list[dict]) -> tuple[int, str]:
        prompt = str(messages[-1].get("content", "")) if messages else ""
        with self._lock:
            self.attempts[(model, prompt)] += 1
            attempt = self.attempts[(model, prompt)]
        if model in self.failing or (model in self.flaky and attempt == 1) or \
                (self.refuse is not None and self.refuse(model, prompt)):
            return 500, ""
        if model in self.judges:
            found = _ANSWERS.search(prompt)
            if found is None:
                return 200, "I see no answers to compare."
            return 200, judge_reply(self.judges[model], found.group(1), found.group(2))
        if model in self.answerers:
            return 200, self.answerers[model](prompt)
        return 404, ""


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeEvalServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        arrived = time.monotonic()
        fake = self.fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            self._send(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": "not found"}})
            return
        model = str(body.get("model"))
        with fake._lock:
            fake.requests_by_model[model] += 1
            if fake.keep_bodies:
                fake.bodies.append(body)
        status, text = fake.reply(model, body.get("messages") or [])
        if fake.latency_s:
            time.sleep(max(0.0, arrived + fake.latency_s - time.monotonic()))
        if status == 404:
            self._send(404, {"error": {"message": f"The model {model} does not exist", "code": "model_not_found"}})
            return
        if status != 200:
            self._send(status, {"error": {"message": "The server had an error"}})
            return
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
        usage = {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(text) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._send(200, {
            "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        })


# -- in its own process (benchmarks: its CPU and GIL are not the client's) ---------------------------
BENCH_SYSTEMS = ("sys-a", "sys-b")
BENCH_JUDGE = "judge-longer"


def bench_answer(model: str) -> Callable[[str], str]:
    """Deterministic answers of varied length (no hash randomisation: the same in every process)."""
    def answer(prompt: str) -> str:
        size = 1 + sum(map(ord, prompt + model)) % 7
        return f"{model} says: " + " ".join(["a considered sentence about the request."] * size)
    return answer


class ServerProcess:
    """A :class:`FakeEvalServer` with the benchmark's systems and judge, in a child process."""

    def __init__(self, latency_s: float, lifetime_s: float = 600.0):
        self.latency_s = latency_s
        self.lifetime_s = lifetime_s
        self.api_key = API_KEY
        self.base_url = ""
        self._process = None

    def __enter__(self) -> ServerProcess:
        import subprocess
        import sys

        self._process = subprocess.Popen([sys.executable, __file__, "--latency", str(self.latency_s),
                                          "--lifetime", str(self.lifetime_s)], stdout=subprocess.PIPE, text=True)
        self.base_url = self._process.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)


if __name__ == "__main__":  # python tests/fake_eval_endpoints.py --latency 0.5: prints the base URL, serves
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--lifetime", type=float, default=600.0)
    options = parser.parse_args()
    server = FakeEvalServer(latency_s=options.latency, answerers={m: bench_answer(m) for m in BENCH_SYSTEMS},
                            judges={BENCH_JUDGE: "longer"}, max_lifetime_s=options.lifetime, keep_bodies=False)
    with server:
        print(server.base_url, flush=True)
        deadline = time.monotonic() + options.lifetime
        while server._server is not None and time.monotonic() < deadline:
            time.sleep(0.5)
