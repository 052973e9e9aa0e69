"""Serving backends: which server the Chat panel's Start runs for the project (the ``serving_backends`` point).

The studio's own server (``python -m studio.serve``, :data:`STUDIO_BACKEND`) is built in; a plugin
adds another (the first-party ``vllm-serve`` plugin: ``vllm serve BASE --enable-lora``). Every
backend serves the same catalog on the OpenAI API, so Chat and Evaluate use any of them
unchanged; what differs is how it is started, whether it writes its own info file
(``server.json``), how it reports health and how it takes a run's adapter while running. The
server control and the evaluation's server path call only what this protocol names, never a
backend by name. Everything here is blocking and Qt-free: callers run it on a worker thread.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.errors import StudioError
from studio.core.serving.catalog import Catalog
from studio.core.serving.server_info import ServerInfo, read_info

if TYPE_CHECKING:
    from studio.core.training.runs import TrainingRun

STUDIO = "studio"  # the built-in backend's key (ServerInfo.backend of the studio's own server)
# A cache-key suffix names the serving backend an evaluation's answers came from (``run:3:abc:vllm``).
_SUFFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class ServeOptions:
    """What a start knows besides the catalog (the studio's own server reads the project itself)."""

    project: Path | None = None               # the project folder
    info_file: Path | None = None             # <project>/serve/server.json
    runs: tuple[str, ...] = ()                # the runs asked for (empty: every run with an adapter)
    base_model: str | None = None             # None: the newest run's
    threads: int = 0                          # CPU threads (0: all); the studio server's --threads
    device: str = "auto"                      # the studio server's --device
    program: tuple[str, ...] | None = None    # tests: replaces ``[python, -m, studio.serve]``


class ServingBackend:
    """The protocol a serving backend implements (subclass it; the defaults are the studio server's shape).

    ``writes_info``: the server writes (and removes) its info file itself; otherwise ``wait_ready``
    writes it and the launcher removes it when the process exits. ``logs_to_stdout``: its stdout
    explains a failure as much as its stderr does. ``on_gpu``: it always takes a GPU (the
    training-GPU check runs whatever the device setting). ``restart_to_load``: when loading an
    adapter into the running server fails, the user is offered a restart with every run.
    """

    key: str = ""
    title: str = ""
    writes_info: bool = True
    logs_to_stdout: bool = False
    on_gpu: bool = False
    restart_to_load: bool = False

    def unavailable_reason(self) -> str:
        """Why this backend cannot start here ("" when it can); the combo's tooltip shows it."""
        return ""

    def tensor_parallel_size(self) -> int:
        """How many GPUs the server spreads the model over (asked on a worker, before the command)."""
        return 1

    def port(self, host: str, preferred: int) -> int:
        """The port to pass: ``preferred`` when free, else one the server (0) or the OS picks."""
        from studio.core.serving import launch

        return launch.pick_port(host, preferred)

    def command(self, catalog: Catalog, host: str, port: int, tensor_parallel_size: int = 1,
                options: ServeOptions | None = None) -> list[str]:
        """The server's argv; a :class:`~studio.core.serving.launch.ServeError` when it cannot serve ``catalog``."""
        raise NotImplementedError

    def env(self, options: ServeOptions | None = None) -> dict[str, str]:
        """The server child's environment."""
        raise NotImplementedError

    def info(self, catalog: Catalog, host: str, port: int, pid: int, tensor_parallel_size: int = 1) -> ServerInfo:
        """The info of the server just started as ``pid`` (final for a backend that writes none itself)."""
        return ServerInfo(pid=pid, host=host, port=int(port), catalog=catalog, started_at=time.time(),
                          backend=self.key, extra={"tensor_parallel_size": int(tensor_parallel_size)})

    def wait_ready(self, info: ServerInfo, info_file: Path, timeout_s: float,
                   cancelled: Callable[[], bool] | None = None) -> ServerInfo:
        """Block until the server of ``info`` (from :meth:`info`) serves; its info as written to ``info_file``."""
        raise NotImplementedError

    def health(self, url: str, timeout_s: float = 2.0, *, gpu_memory: bool = True) -> dict[str, Any]:
        """A ``/health``-shaped dict: ``status``, ``device``, ``base_id``, ``adapters``, ``memory`` (…)."""
        raise NotImplementedError

    def load_adapter(self, info: ServerInfo, run: TrainingRun, info_file: Path) -> ServerInfo:
        """Load a run's adapter into the running server; its info afterwards (``info_file`` updated)."""
        raise NotImplementedError


class StudioBackend(ServingBackend):
    """The studio's own server (``python -m studio.serve``): it writes server.json and has ``/health``."""

    key, title = STUDIO, "Studio server"

    def command(self, catalog: Catalog, host: str, port: int, tensor_parallel_size: int = 1,
                options: ServeOptions | None = None) -> list[str]:
        """The studio server resolves the runs itself (``--run``, ``--base-model``), as it did from the CLI."""
        from studio.core.serving import launch

        options = options or ServeOptions()
        return launch.serve_command(project=options.project, runs=options.runs, base_model=options.base_model,
                                    host=host, port=port, info_file=options.info_file, threads=options.threads,
                                    device=options.device, program=options.program)

    def env(self, options: ServeOptions | None = None) -> dict[str, str]:
        from studio.core.serving import launch

        return launch.serve_env(options.threads if options is not None else 0)

    def wait_ready(self, info: ServerInfo, info_file: Path, timeout_s: float,
                   cancelled: Callable[[], bool] | None = None) -> ServerInfo:
        from studio.core.serving import launch

        return launch.wait_ready(info_file, info.pid, timeout_s, cancelled)

    def health(self, url: str, timeout_s: float = 2.0, *, gpu_memory: bool = True) -> dict[str, Any]:
        from studio.core.serving import launch

        return launch.fetch_health(url, timeout_s)

    def load_adapter(self, info: ServerInfo, run: TrainingRun, info_file: Path) -> ServerInfo:
        """``POST /v1/load_lora_adapter``; the server rewrites its own info file with the new model."""
        from studio.core.serving import launch

        launch.load_adapter(info.url, run)
        current = read_info(info_file, check_alive=False)
        return current if current is not None and current.pid == info.pid else info


STUDIO_BACKEND = StudioBackend()


def serving_backend(key: str) -> ServingBackend:
    """The backend registered as ``key`` (imports a plugin's code on first use); RegistryError otherwise."""
    from studio.core.registry import SERVING_BACKENDS

    _discover(key)
    return SERVING_BACKENDS.load_instance(key, ServingBackend)


def backend_for(info: ServerInfo) -> ServingBackend | None:
    """The backend a running server's info names, or None (its plugin is disabled, missing or broken)."""
    try:
        return serving_backend(info.backend)
    except StudioError:
        return None


def guarded(backend: ServingBackend, action: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)`` at the registry boundary of ``backend``'s entry.

    A plugin's bug becomes a PluginError naming the plugin (recorded for Help > Plugins); a
    StudioError (a server that does not answer, a refused adapter) passes as it is, unrecorded:
    a server that is down is not the plugin's fault, and health is asked every 2 s.
    """
    from studio.core.registry import SERVING_BACKENDS

    try:
        return call(*args, **kwargs)
    except StudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - handed to the boundary, which names the plugin
        if backend.key not in SERVING_BACKENDS:
            raise
        with SERVING_BACKENDS.guard(backend.key, action):
            raise exc


def probe_health(info: ServerInfo, timeout_s: float = 2.0, *, gpu_memory: bool = True) -> dict[str, Any]:
    """The running server's health through its backend; a server whose backend is not loadable here
    (a plugin disabled since) is asked its ``GET /v1/models``, which every backend answers."""
    from studio.core.serving import launch

    backend = backend_for(info)
    if backend is None:
        return launch.models_health(info.url, timeout_s)
    return guarded(backend, f"asking the server at {info.url} how it is", backend.health, info.url, timeout_s,
                   gpu_memory=gpu_memory)


def backend_title(key: str) -> str:
    """What a message calls the backend ``key``: the registry's title, else the key itself."""
    from studio.core.registry import SERVING_BACKENDS

    _discover(key)
    return SERVING_BACKENDS.get(key).label if key in SERVING_BACKENDS else key


def _discover(key: str) -> None:
    """Register the enabled plugins if this process has not yet (the app and the CLI do at start; a
    library caller may not), so a server.json naming a plugin's backend finds it. Once per process."""
    from studio.core.registry import SERVING_BACKENDS

    if key not in SERVING_BACKENDS:
        from studio.core.plugins.discovery import load_plugins

        load_plugins()


def cache_suffix(key: str) -> str:
    """``:KEY`` after a run/base cache key answered by backend ``key``; nothing for the studio's own server.

    The studio server takes an Alpaca input as its own field, other servers in the text, so
    their answers are cached apart (``:vllm`` keys of earlier releases read the same way).
    """
    return "" if key == STUDIO else f":{key}"


def suffix_backend(key: str, fixed_parts: int) -> str:
    """The backend a cache key with ``fixed_parts`` ``:``-parts before its suffix names (``studio``: none)."""
    parts = key.split(":")
    if len(parts) > fixed_parts and _SUFFIX.fullmatch(parts[-1]):
        return parts[-1]
    return STUDIO


__all__ = [
    "STUDIO",
    "STUDIO_BACKEND",
    "ServeOptions",
    "ServingBackend",
    "StudioBackend",
    "backend_for",
    "backend_title",
    "cache_suffix",
    "guarded",
    "probe_health",
    "serving_backend",
    "suffix_backend",
]
