"""The server process: arguments, the catalog, binding, loading, uvicorn, the info file and a clean exit.

Order matters for the people waiting on it: the port is bound before the model loads (a port
already taken fails in a second, not after the load), the info file and the one stdout line
appear only once the socket listens and the model is loaded (so whoever reads them can connect
at once), and both the info file and in-flight generations are dealt with on SIGTERM/Ctrl+C
before the process exits 0. Every startup failure is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.serving.catalog import Catalog, build_catalog, project_catalog
from studio.core.serving.server_info import DEFAULT_HOST, DEFAULT_PORT, ServerInfo, info_path, remove_info, write_info
from studio.serve.profiling import profiled

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
STARTUP_FAILURE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio.serve",
                                     description="Serve a base model and its LoRA adapters with the OpenAI API.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options (shared with ``distill-studio serve``)."""
    parser.add_argument("--project", type=Path, help="project folder: serve its trained runs")
    parser.add_argument("--run", action="append", default=None, dest="runs", metavar="RUN",
                        help="serve only this run (id or name); repeat for several (default: every run with an adapter)")
    parser.add_argument("--base-model", help="base model folder (default: the newest run's base)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--info-file", type=Path, help="where to write the server's info file "
                        "(default <project>/serve/server.json)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's own)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto: cuda when available)")
    parser.add_argument("--max-queue", type=int, default=16, help="requests that may wait before 429 (default 16)")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="waiting requests for the same model and settings generated together (default 8; 1: one at a time)")


def run(argv: list[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / Ctrl+C (``args`` as :func:`add_arguments` defines them)."""
    if args.threads > 0:  # before torch is imported, so its pools start with this size
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    try:
        catalog, info_file = _catalog(args)
        if args.host not in LOCAL_HOSTS:
            print(f"warning: --host {args.host}: the server is reachable from other machines on the network, "
                  "with no authentication; leave --host out to keep it on this machine", file=sys.stderr, flush=True)
        sock = _bind(args.host, args.port)
    except StudioError as exc:
        return _fail(str(exc))
    try:
        return _serve(args, catalog, info_file, sock)
    except StudioError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:  # Ctrl+C while the model loads
        return 130
    finally:
        sock.close()


def _serve(args: argparse.Namespace, catalog: Catalog, info_file: Path | None, sock: socket.socket) -> int:
    try:
        import uvicorn

        from studio.serve.app import ServerState, create_app
        from studio.serve.engine import Engine
    except ImportError as exc:
        return _fail(f"the server needs the 'serve' extra ({exc.name} is missing): pip install 'distill-studio[serve]'")
    engine = Engine(catalog, device=args.device, max_queue=args.max_queue, threads=args.threads,
                    max_batch=getattr(args, "max_batch", 8))
    engine.load()
    engine.start()
    port = sock.getsockname()[1]
    info = ServerInfo(pid=os.getpid(), host=args.host, port=port, catalog=catalog, device=engine.device_name,
                      started_at=time.time())

    def catalog_changed(new: Catalog) -> None:
        info.catalog = new
        if info_file is not None:
            write_info(info_file, info)

    def ready() -> None:
        if info_file is not None:
            write_info(info_file, info)
        print(ready_line(info), flush=True)

    app = create_app(engine, ServerState(on_catalog_change=catalog_changed))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5)
    server = _server_class()(config, on_ready=ready, on_stop=engine.close)
    # uvicorn re-raises the signal it caught once it has shut down; with these handlers in place
    # beforehand (it restores them), that re-raise is harmless and the process exits 0.
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with profiled("loop"):
            server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.close()
        if info_file is not None:
            remove_info(info_file, os.getpid())
    if not server.started:
        return _fail(f"the server did not start on {args.host}:{port}")
    return 0


def ready_line(info: ServerInfo) -> str:
    """The first stdout line: where the server is and what it serves."""
    base = info.catalog.base.id
    names = [f"{base} (base)"] + [f"{model.id} (adapter of {base})" for model in info.catalog.adapters]
    return f"Serving {info.url} · models: {', '.join(names)}"


def _catalog(args: argparse.Namespace) -> tuple[Catalog, Path | None]:
    if args.project is None:
        if args.runs:
            raise StudioError("--run needs --project DIR (the project the runs belong to)")
        if not args.base_model:
            raise StudioError("nothing to serve: give --project DIR (its trained runs) or --base-model PATH")
        return build_catalog([], base_model=args.base_model), args.info_file
    from studio.core.project import Project

    project = Project.open(args.project, exclusive=False)
    try:
        catalog = project_catalog(project, base_model=args.base_model, only=args.runs)
        root = project.root
    finally:
        project.close()
    for reason in catalog.skipped:
        print(f"note: not served: {reason}", file=sys.stderr, flush=True)
    return catalog, args.info_file or info_path(root)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "the port is taken (another server?); choose another with --port, or 0 for any free one" \
            if exc.errno in (98, 48, 10048) else exc.strerror or str(exc)
        raise StudioError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def _fail(message: str) -> int:
    print(f"distill-studio serve: {message}", file=sys.stderr, flush=True)
    return STARTUP_FAILURE


def _ignore(signum: int, frame: Any) -> None:
    """Stand-in handler: uvicorn has already shut down gracefully when it re-raises the signal."""


def _server_class() -> type:
    import uvicorn

    class StudioServer(uvicorn.Server):
        """uvicorn's server, telling us when it listens and letting the engine cancel streams before it drains."""

        def __init__(self, config: uvicorn.Config, *, on_ready: Any, on_stop: Any):
            super().__init__(config)
            self._on_ready, self._on_stop = on_ready, on_stop

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                self._on_ready()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            import asyncio

            await asyncio.to_thread(self._on_stop)  # cancels running generations, 503 to the waiting
            await super().shutdown(sockets=sockets)

    return StudioServer

