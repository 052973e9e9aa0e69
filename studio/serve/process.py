"""The server process: arguments, the catalog, binding, loading, uvicorn, the info file and a clean exit.

Order matters for the people waiting on it: the port is bound and listening before the model
loads (a port already taken fails in a second, not after the load, and nobody can take it
meanwhile); a live server already named in the info file is refused before anything loads; the
info file and the one stdout line appear only once the model is loaded (so whoever reads them
can connect at once), and both the info file and in-flight generations are dealt with on SIGTERM/Ctrl+C
before the process exits 0. Every startup failure is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.serving.catalog import (
    Catalog,
    build_catalog,
    project_catalog,
)
from studio.core.serving.server_info import (
    ServerInfo,
    claim_info,
    info_path,
    live_server,
    remove_info,
)
from studio.serve.cli_support import add_serve_arguments
from studio.serve.parent_watch import watch_parent
from studio.serve.profiling import profiled

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ANY_HOSTS = ("0.0.0.0", "::", "")
STARTUP_FAILURE = 2
BACKLOG = 2048  # uvicorn's default
ADDRESS_IN_USE = {errno.EADDRINUSE, 48, 10048}  # Linux's, macOS's and Windows' numbers
PORT_TAKEN = "the port is taken (another server?); choose another with --port, or 0 for any free one"
LIBRARY_MODULES = r"(transformers|peft|accelerate|torch|huggingface_hub)(\.|$)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio.serve",
                                     description="Serve a base model and its LoRA adapters with the OpenAI API.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options: ``--project`` plus the ones shared with ``distill-studio serve``."""
    parser.add_argument("--project", type=Path, help="project folder: serve its trained runs")
    add_serve_arguments(parser)


def run(argv: list[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / Ctrl+C (``args`` as :func:`add_arguments` defines them)."""
    if args.threads > 0:  # before torch is imported, so its pools start with this size
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    quiet_library_warnings()
    watch_parent()  # started by the app: stop when the app is gone (a crash must not leave the model loaded)
    try:
        catalog, info_file = _catalog(args)
        if info_file is not None:
            _refuse_a_second_server(info_file)
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
    except OSError as exc:
        if exc.errno in ADDRESS_IN_USE:  # uvicorn's own socket work, after ours
            return _fail(f"cannot listen on {args.host}:{args.port}: {PORT_TAKEN}")
        raise
    except KeyboardInterrupt:  # Ctrl+C while the model loads
        return 130
    finally:
        sock.close()


def quiet_library_warnings() -> None:
    """Hide the libraries' deprecation notices (e.g. transformers' ``is_gradient_checkpointing``): they
    concern peft/transformers internals, not the user, and would come before the server's first line."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)


def _refuse_a_second_server(info_file: Path) -> None:
    other = live_server(info_file)
    if other is not None and other.pid != os.getpid():
        raise StudioError(_already_running(other))


def _already_running(other: ServerInfo) -> str:
    return (f"a server for this project is already running at {other.url} (pid {other.pid}); "
            "stop it first or pass --info-file PATH")


def _serve(args: argparse.Namespace, catalog: Catalog, info_file: Path | None, sock: socket.socket) -> int:
    try:
        import uvicorn

        from studio.serve.app import ServerState, create_app, request_logger
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
    refused: list[ServerInfo] = []

    def catalog_changed(new: Catalog) -> None:
        info.catalog = new
        if info_file is not None:
            claim_info(info_file, info)

    def ready() -> None:
        if info_file is not None:
            other = claim_info(info_file, info)
            if other is not None:  # another server started for this project while we loaded
                refused.append(other)
                server.should_exit = True
                return
        print(ready_line(info, network_urls(args.host, port)), flush=True)

    log = None if getattr(args, "quiet", False) else request_logger(sys.stderr)
    app = create_app(engine, ServerState(on_catalog_change=catalog_changed, log=log,
                                         stream_interval_s=max(0.0, getattr(args, "stream_interval_ms", 25.0)) / 1000))
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
    if refused:
        return _fail(_already_running(refused[0]))
    if not server.started:
        return _fail(f"the server did not start on {args.host}:{port}")
    return 0


def ready_line(info: ServerInfo, network: list[str] | None = None) -> str:
    """The first stdout line: where the server is (for this machine, and for others when it listens on
    every interface) and what it serves."""
    base = info.catalog.base.id
    names = [f"{base} (base)"] + [f"{model.id} (adapter of {base})" for model in info.catalog.adapters]
    where = info.url
    if info.host in ANY_HOSTS:
        where += f" (listening on {info.host} port {info.port}"
        where += f"; other machines: {', '.join(network)})" if network else ")"
    return f"Serving {where} · models: {', '.join(names)}"


def network_urls(host: str, port: int) -> list[str]:
    """For a server on every interface: the URLs other machines can use (this machine's outward IP, its name).

    The IP is the one of the default route, found by connecting a UDP socket (which sends nothing).
    """
    if host not in ANY_HOSTS:
        return []
    names: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.254.254.254", 1))
        address = probe.getsockname()[0]
        if address and not address.startswith("127.") and address != "0.0.0.0":
            names.append(address)
    except OSError:
        pass
    finally:
        probe.close()
    hostname = socket.gethostname()
    if hostname and hostname != "localhost":
        names.append(hostname)
    return [f"http://{name}:{port}/v1" for name in names]


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
        catalog = project_catalog(project, base_model=args.base_model, only=args.runs)  # a moved base names --base-model
        root = project.root
    finally:
        project.close()
    for reason in catalog.skipped:
        print(f"note: not served: {reason}", file=sys.stderr, flush=True)
    return catalog, args.info_file or info_path(root)


def _bind(host: str, port: int) -> socket.socket:
    """A socket already listening: from here on the port is ours (bound but not listening, another
    SO_REUSEADDR socket could still take it while the model loads). Connections wait in the backlog."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = PORT_TAKEN if exc.errno in ADDRESS_IN_USE else exc.strerror or str(exc)
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

