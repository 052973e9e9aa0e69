"""A stand-in for ``python -m studio.serve`` in tests: same flags, info file, first line, /health and SSE.

Run as a child: ``python tests/fake_studio_server.py --info-file F --port 0 [--reply TEXT]``. It
loads no model: ``/v1/chat/completions`` streams a canned answer (``--reply``, where ``{model}``
and ``{prompt}`` are replaced by the request's model and last user message) in pieces of
``--chunk-chars`` characters, ``--delay-ms`` apart, exactly in the OpenAI SSE shape (one id,
``chat.completion.chunk``, a final ``finish_reason``, the usage chunk when
``stream_options.include_usage``, ``[DONE]``). Like the real server it writes the info file once
it listens, prints ``Serving http://HOST:PORT/v1 · models: ...`` as its first line, and removes
the file on SIGTERM / Ctrl+C or when the job runner's stop file (``STUDIO_STOP_FILE``) appears.
Faults for tests: ``--fail MESSAGE`` (one stderr line, exit 2 before listening),
``--startup-delay-ms``, ``--die-after-ms`` (exits 3 without cleaning up), ``--ignore-stop-file``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root holds `studio`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.core.serving.catalog import ADAPTER, BASE, Catalog, ServedModel, adapter_model, base_model_id  # noqa: E402
from studio.core.serving.server_info import ServerInfo, info_path, remove_info, write_info  # noqa: E402

DEFAULT_REPLY = "Hello from {model}: you said {prompt}."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake_studio_server")
    parser.add_argument("--project")
    parser.add_argument("--run", action="append", default=[])
    parser.add_argument("--base-model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--info-file")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--chunk-chars", type=int, default=4)
    parser.add_argument("--startup-delay-ms", type=float, default=0.0)
    parser.add_argument("--fail")
    parser.add_argument("--die-after-ms", type=float)
    parser.add_argument("--ignore-stop-file", action="store_true", help="only a signal stops it")
    parser.add_argument("--requests-log", help="append each request body as a JSON line here")
    return parser.parse_args(argv)


def build_fake_catalog(args: argparse.Namespace) -> Catalog:
    """The project's real catalog when --project is given (as the real server), else one from the flags."""
    if args.project:
        from studio.core.project import Project
        from studio.core.serving.catalog import project_catalog

        project = Project.open(args.project, exclusive=False)
        try:
            return project_catalog(project, base_model=args.base_model, only=args.run or None)
        finally:
            project.close()
    base = args.base_model or "/fake/base-model"
    base_id = base_model_id(base)
    adapters = [ServedModel(id=run, kind=ADAPTER, parent=base_id, prompt_format="alpaca",
                            adapter_path=f"/fake/{run}/adapter") for run in args.run]
    return Catalog(base_model=base, models=(ServedModel(id=base_id, kind=BASE, parent=None, prompt_format="chat"),
                                            *adapters))


class FakeState:
    def __init__(self, args: argparse.Namespace, catalog: Catalog, info_file: Path | None):
        self.args = args
        self.catalog = catalog
        self.info_file = info_file
        self.info: ServerInfo | None = None
        self.served = 0
        self.running = 0
        self.lock = threading.Lock()

    def rewrite_info(self) -> None:
        if self.info is not None:
            self.info.catalog = self.catalog
            if self.info_file is not None:
                write_info(self.info_file, self.info)


def rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: FakeState

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass

    # -- plumbing ----------------------------------------------------------------------------
    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, type_: str, code: str | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": type_, "param": None, "code": code}})

    def _body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(400, "the body is not JSON", "invalid_request_error")
            return None
        if not isinstance(body, dict):
            self._error(400, "the body must be a JSON object", "invalid_request_error")
            return None
        if self.state.args.requests_log:
            with open(self.state.args.requests_log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"path": self.path, "body": body}) + "\n")
        return body

    # -- endpoints -----------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        catalog = self.state.catalog
        if self.path == "/health":
            self._json(200, {
                "status": "ready", "pid": os.getpid(), "device": self.state.info.device if self.state.info else "cpu",
                "base_model": catalog.base_model, "base_id": catalog.base.id, "models": catalog.ids(),
                "adapters": [m.id for m in catalog.adapters],
                "memory": {"rss_bytes": rss_bytes(), "gpu_allocated_bytes": None, "gpu_reserved_bytes": None},
                "queue": {"waiting": 0, "running": self.state.running, "max": self.state.args.max_queue},
                "served": self.state.served})
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [
                {"id": m.id, "object": "model", "created": 0, "owned_by": "distill-studio", "parent": m.parent,
                 "root": m.adapter_path or catalog.base_model, "prompt_format": m.prompt_format}
                for m in catalog.models]})
        else:
            self._error(404, f"no route {self.path}", "invalid_request_error")

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if body is None:
            return
        if self.path == "/v1/chat/completions":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                self._error(400, "messages must be a non-empty list", "invalid_request_error")
                return
            prompt = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
            self._complete(body, prompt, chat=True)
        elif self.path == "/v1/completions":
            self._complete(body, str(body.get("prompt", "")), chat=False)
        elif self.path == "/v1/load_lora_adapter":
            name, path = body.get("lora_name"), body.get("lora_path")
            if not isinstance(name, str) or not isinstance(path, str):
                self._error(400, "lora_name and lora_path are required", "invalid_request_error")
                return
            catalog = self.state.catalog
            model = adapter_model(name, path, catalog.base.id, body.get("prompt_format"))  # as the real server
            others = tuple(m for m in catalog.models if m.id != name)
            self.state.catalog = Catalog(catalog.base_model, (*others, model), catalog.skipped)
            self.state.rewrite_info()
            self._json(200, {"id": name})
        elif self.path == "/v1/unload_lora_adapter":
            catalog = self.state.catalog
            name = body.get("lora_name")
            if catalog.find(str(name)) is None or name == catalog.base.id:
                self._error(404, f"no adapter {name!r}", "invalid_request_error", "model_not_found")
                return
            self.state.catalog = Catalog(catalog.base_model, tuple(m for m in catalog.models if m.id != name),
                                         catalog.skipped)
            self.state.rewrite_info()
            self._json(200, {"id": name})
        else:
            self._error(404, f"no route {self.path}", "invalid_request_error")

    def _complete(self, body: dict, prompt: str, *, chat: bool) -> None:
        model = body.get("model")
        if not isinstance(model, str) or self.state.catalog.find(model) is None:
            self._error(404, f"The model {model!r} does not exist", "invalid_request_error", "model_not_found")
            return
        args = self.state.args
        text = args.reply.replace("{model}", model).replace("{prompt}", prompt)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if isinstance(max_tokens, int) and max_tokens > 0 and len(text.split()) > max_tokens:
            text, finish = " ".join(text.split()[:max_tokens]), "length"
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                 "total_tokens": len(prompt.split()) + len(text.split())}
        ident = f"{'chatcmpl' if chat else 'cmpl'}-fake{self.state.served}"
        with self.state.lock:
            self.state.served += 1
            self.state.running += 1
        try:
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream(ident, model, text, finish, usage if include_usage else None, chat=chat)
            elif chat:
                self._json(200, {"id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": finish}], "usage": usage})
            else:
                self._json(200, {"id": ident, "object": "text_completion", "created": int(time.time()), "model": model,
                                 "choices": [{"index": 0, "text": text, "finish_reason": finish}], "usage": usage})
        finally:
            with self.state.lock:
                self.state.running -= 1

    def _stream(self, ident: str, model: str, text: str, finish: str, usage: dict | None, *, chat: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"

        def send(payload: object) -> None:
            data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def chunk(delta: dict | None, piece: str, reason: str | None) -> dict:
            choice = ({"index": 0, "delta": delta, "finish_reason": reason} if chat
                      else {"index": 0, "text": piece, "finish_reason": reason})
            return {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}

        step = max(1, self.state.args.chunk_chars)
        delay = self.state.args.delay_ms / 1000.0
        try:
            if chat:
                send(chunk({"role": "assistant", "content": ""}, "", None))
            for start in range(0, len(text), step):
                if delay:
                    time.sleep(delay)
                piece = text[start:start + step]
                send(chunk({"content": piece}, piece, None))
            send(chunk({}, "", finish))
            if usage is not None:
                send({"id": ident, "object": kind, "created": created, "model": model, "choices": [], "usage": usage})
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: its "generation" stops here


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.startup_delay_ms:
        time.sleep(args.startup_delay_ms / 1000.0)
    if args.fail:
        print(args.fail, file=sys.stderr, flush=True)
        return 2
    try:
        catalog = build_fake_catalog(args)
    except Exception as exc:  # noqa: BLE001 - like the real server: one line, exit 2
        print(f"cannot serve: {exc}", file=sys.stderr, flush=True)
        return 2
    info_file = Path(args.info_file) if args.info_file else (info_path(args.project) if args.project else None)
    state = FakeState(args, catalog, info_file)
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    device = "cpu" if args.device in ("auto", "cpu") else args.device
    state.info = ServerInfo(pid=os.getpid(), host=str(host), port=int(port), catalog=catalog, device=device,
                            started_at=time.time(), extra={"fake": True})
    if info_file is not None:
        write_info(info_file, state.info)
    names = ", ".join([f"{catalog.base.id} (base)"] + [f"{m.id} (adapter of {m.parent})" for m in catalog.adapters])
    print(f"Serving {state.info.url} · models: {names}", flush=True)

    stopping = threading.Event()

    def stop(*_: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stop_file = None if args.ignore_stop_file else os.environ.get("STUDIO_STOP_FILE")

    def watch() -> None:
        started = time.monotonic()
        while not stopping.is_set():
            if stop_file and Path(stop_file).exists():
                stop()
            if args.die_after_ms is not None and time.monotonic() - started >= args.die_after_ms / 1000.0:
                os._exit(3)  # a crash: no cleanup, the info file stays behind
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        if info_file is not None:
            remove_info(info_file, os.getpid())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
