"""A loopback OpenAI-compatible chat server with scripted, paced streams (real HTTP, stdlib only).

For the Chat panel's tests and benchmark: each model streams a known answer in small deltas
at a set pace, and every request body is recorded (what history a column sent). A gate
(``threading.Event``) can hold every stream after its first deltas, so a test sees all columns
mid-answer without timing assumptions. A client that disconnects ends its stream; the server
counts streams cut that way.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loopback_server import LoopbackServer


@dataclass
class Script:
    text: str
    chunk_chars: int = 4
    delay_s: float = 0.01  # between deltas
    hold_after: int | None = None  # deltas sent before waiting on the server's gate


@dataclass
class FakeChatServer(LoopbackServer):
    scripts: dict[str, Script] = field(default_factory=dict)
    max_lifetime_s: float = 120.0
    health: dict | None = None  # served at GET /health (so a ServerControl can adopt this server)

    def __post_init__(self) -> None:
        self.requests: list[dict] = []
        self.gate = threading.Event()
        self.gate.set()
        self.disconnects = 0
        self.completed = 0
        self.deltas_sent = 0
        self._lock = threading.Lock()

    def start(self) -> FakeChatServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._serve(server)
        return self

    def stop(self) -> None:
        self.gate.set()  # a held stream lets go first
        super().stop()

    def requests_for(self, model: str) -> list[dict]:
        with self._lock:
            return [body for body in self.requests if body.get("model") == model]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeChatServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health" and self.fake.health is not None:
            self._json(200, self.fake.health)
        elif self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                                                        for m in self.fake.scripts]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        fake = self.fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with fake._lock:
            fake.requests.append(body)
        script = fake.scripts.get(body.get("model"))
        if script is None:
            self._json(404, {"error": {"message": f"The model {body.get('model')} does not exist",
                                       "type": "invalid_request_error", "code": "model_not_found"}})
            return
        text = script.text
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if not body.get("stream"):
            self._json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                             "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                                                                  "message": {"role": "assistant", "content": text}}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body["model"]

        def event(choices: list, usage: dict | None = None) -> None:
            data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": choices}
            if usage is not None:
                data["usage"] = usage
            raw = f"data: {json.dumps(data)}\n\n".encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        step = max(1, script.chunk_chars)
        pieces = [text[i:i + step] for i in range(0, len(text), step)]
        finish = "stop"
        if limit is not None and len(pieces) > int(limit):
            pieces, finish = pieces[:int(limit)], "length"
        try:
            event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for n, piece in enumerate(pieces):
                if script.hold_after is not None and n == script.hold_after:
                    while not fake.gate.wait(0.05):
                        pass
                if script.delay_s:
                    time.sleep(script.delay_s)
                event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
                with fake._lock:
                    fake.deltas_sent += 1
            event([{"index": 0, "delta": {}, "finish_reason": finish}])
            if (body.get("stream_options") or {}).get("include_usage"):
                event([], {"prompt_tokens": 10, "completion_tokens": len(pieces), "total_tokens": 10 + len(pieces)})
            raw = b"data: [DONE]\n\n"
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n0\r\n\r\n")
            self.wfile.flush()
            with fake._lock:
                fake.completed += 1
        except (BrokenPipeError, ConnectionResetError):
            with fake._lock:
                fake.disconnects += 1
            self.close_connection = True


def long_markdown(tokens: int, seed: int = 0) -> str:
    """About ``tokens`` deltas of 4 characters of Markdown: paragraphs, a heading, a list, code every few blocks."""
    import random

    rng = random.Random(seed)
    words = ("model answer token stream render column latency window paint layout segment python "
             "function value result student teacher adapter server prompt").split()
    blocks: list[str] = []
    size = 0
    n = 0
    while size < tokens * 4:
        n += 1
        if n % 7 == 0:
            block = "```python\n" + "\n".join(f"def step_{n}_{i}(x):\n    return x * {i} + {rng.randint(0, 99)}"
                                               for i in range(4)) + "\n```"
        elif n % 5 == 0:
            block = "\n".join(f"- {' '.join(rng.choices(words, k=6))}" for _ in range(4))
        elif n % 11 == 0:
            block = f"## Part {n}"
        else:
            block = " ".join(("**" + w + "**") if rng.random() < 0.05 else w for w in rng.choices(words, k=60)) + "."
        blocks.append(block)
        size += len(block) + 2
    return "\n\n".join(blocks)


if __name__ == "__main__":  # python tests/fake_chat_server.py --tokens N: prints the base URL, serves until killed
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--delay", type=float, default=0.0005)
    parser.add_argument("--chunk", type=int, default=4)
    parser.add_argument("--lifetime", type=float, default=900.0)
    options = parser.parse_args()
    models = {f"model-{c}": Script(long_markdown(options.tokens, n), chunk_chars=options.chunk, delay_s=options.delay)
              for n, c in enumerate("abc")}
    with FakeChatServer(models, max_lifetime_s=options.lifetime) as server:
        print(server.base_url, flush=True)
        deadline = time.monotonic() + options.lifetime
        while server._server is not None and time.monotonic() < deadline:
            time.sleep(0.5)
    sys.exit(0)
