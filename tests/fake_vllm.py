"""A stand-in for ``vllm serve`` in tests: vLLM's flags, its /v1/models and load_lora_adapter, no /health.

Tests write a script named ``vllm`` that runs :func:`main` (see :func:`install`) and put its
folder first on PATH, so the server control starts it exactly as it would start vLLM. It
parses ``serve BASE --served-model-name NAME [NAME ...] --enable-lora --lora-modules
name=path ... --host H --port P ...``, records its argv and environment (``FAKE_VLLM_LOG``, one
JSON object), and answers on loopback with tests/fake_studio_server.py's handler: /v1/models
(the base, then each LoRA module naming its parent) and a streaming /v1/chat/completions.
Like vLLM it writes no info file, has no /health, routes /v1/load_lora_adapter only when
``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` is true (answering plain text), and exits on SIGTERM.
``FAKE_VLLM_FAIL=MESSAGE`` makes it print MESSAGE on stderr and exit 1 at once;
``FAKE_VLLM_STARTUP_S`` delays listening; ``FAKE_VLLM_NO_RUNTIME_LORA=1`` leaves the load route out
(a vLLM that ignores the variable).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.core.serving.catalog import ADAPTER, BASE, Catalog, ServedModel  # noqa: E402
from tests.fake_studio_server import DEFAULT_REPLY, FakeState, Handler  # noqa: E402


def install(folder: Path) -> Path:
    """Write an executable ``folder/vllm`` that runs this fake with the test's interpreter; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "vllm"
    root = Path(__file__).resolve().parents[1]
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(root)!r})\n"
                      "from tests.fake_vllm import main\nraise SystemExit(main())\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vllm")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("model")
    serve.add_argument("--served-model-name", nargs="+")
    serve.add_argument("--enable-lora", action="store_true")
    serve.add_argument("--lora-modules", nargs="+", default=[])
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--tensor-parallel-size", type=int, default=1)
    serve.add_argument("--max-lora-rank", type=int, default=16)
    return parser.parse_args(argv)


def catalog_from(args: argparse.Namespace) -> Catalog:
    names = args.served_model_name or [args.model]
    base = ServedModel(id=names[0], kind=BASE, parent=None, prompt_format="chat")
    aliases = [ServedModel(id=name, kind=BASE, parent=None, prompt_format="chat") for name in names[1:]]
    adapters = []
    for module in args.lora_modules:
        name, _, path = module.partition("=")
        adapters.append(ServedModel(id=name, kind=ADAPTER, parent=names[0], prompt_format="chat", adapter_path=path))
    # The aliases are accepted as a `model` but, as in vLLM, listed too: the base first.
    return Catalog(base_model=args.model, models=(base, *aliases, *adapters))


class VllmHandler(Handler):
    """vLLM's routes: no /health of ours; load_lora_adapter only when runtime updating is allowed."""

    runtime_lora = False

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/health":  # vLLM's /health is empty; this fake has none, so a caller of ours would fail
            self._error(404, "Not Found", "invalid_request_error")
            return
        super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        if self.path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
            if not self.runtime_lora:
                self._error(404, "Not Found", "invalid_request_error")
                return
            if self.path == "/v1/load_lora_adapter":
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                name, path = body.get("lora_name"), body.get("lora_path")
                catalog = self.state.catalog
                model = ServedModel(id=name, kind=ADAPTER, parent=catalog.base.id, prompt_format="chat",
                                    adapter_path=path)
                self.state.catalog = Catalog(catalog.base_model, (*catalog.models, model))
                data = f"Success: LoRA adapter '{name}' added successfully.".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
        super().do_POST()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("FAKE_VLLM_FAIL"):
        print(os.environ["FAKE_VLLM_FAIL"], file=sys.stderr, flush=True)
        return 1
    args = parse_args(argv)
    log = os.environ.get("FAKE_VLLM_LOG")
    if log:
        keep = ("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")
        Path(log).write_text(json.dumps({"argv": argv, "pid": os.getpid(),
                                         "env": {k: os.environ.get(k) for k in keep}}), encoding="utf-8")
    print(f"INFO fake vLLM loading {args.model}", flush=True)
    time.sleep(float(os.environ.get("FAKE_VLLM_STARTUP_S") or 0))
    handler_args = argparse.Namespace(reply=DEFAULT_REPLY, delay_ms=0.0, chunk_chars=4, max_queue=16,
                                      requests_log=None)
    state = FakeState(handler_args, catalog_from(args), None)
    runtime = (os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("1", "true")
               and not os.environ.get("FAKE_VLLM_NO_RUNTIME_LORA"))
    handler = type("BoundVllmHandler", (VllmHandler,), {"state": state, "runtime_lora": runtime})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    print(f"INFO Uvicorn running on http://{args.host}:{args.port}", flush=True)

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
