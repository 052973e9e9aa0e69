"""Starting, finding, watching and stopping the local model server (``python -m studio.serve``).

The Chat panel's server control, the CLI and tests build the command and environment here, so
every launcher starts the same process. The server is found through its info file
(``<project>/serve/server.json``, written once it listens, removed at exit) and watched through
``GET /health``; everything here is plain Python (urllib, no Qt, no torch) and blocking, so the
GUI calls it from a worker thread. Other servers (a plugin's serving backend, see
:mod:`studio.core.serving.backends`) share the helpers at the end: GPUs, ports, ``/v1/models``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.errors import StudioError
from studio.core.processes import pid_alive, python_child_env
from studio.core.serving.catalog import (
    ADAPTER,
    Catalog,
    ServedModel,
    local_base_folder,
    run_model_id,
)
from studio.core.serving.server_info import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerInfo,
    read_info,
    remove_info,
    write_info,
)
from studio.core.training import events as ev

if TYPE_CHECKING:
    from studio.core.project import Project
    from studio.core.training.runs import TrainingRun

SERVE_MODULE = "studio.serve"
STDERR_LOG = "stderr.log"          # <project>/serve/stderr.log: the server's stderr when a launcher keeps it
READY_POLL_S = 0.1


class ServeError(StudioError):
    """The local server could not be started, reached or told something; the message says what to do."""


class ServeCancelled(ServeError):
    """Waiting for the server was cancelled (the user pressed Stop, or the process went away)."""


# -- the command line and environment ------------------------------------------------------------
def serve_command(*, project: Path | None, runs: Sequence[str] = (), base_model: str | None = None,
                  host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, info_file: Path | None = None,
                  threads: int = 0, device: str = "auto", module: str = SERVE_MODULE,
                  program: Sequence[str] | None = None) -> list[str]:
    """``[python, -m, studio.serve, ...]`` with this interpreter (the app's own environment).

    ``program`` replaces ``[python, -m, module]`` (tests launch tests/fake_studio_server.py so).
    """
    command = list(program) if program is not None else [sys.executable, "-m", module]
    if project is not None:
        command += ["--project", str(project)]
    for run in runs:
        command += ["--run", str(run)]
    if base_model:
        command += ["--base-model", str(base_model)]
    command += ["--host", host, "--port", str(int(port))]
    if info_file is not None:
        command += ["--info-file", str(info_file)]
    if threads > 0:
        command += ["--threads", str(int(threads))]
    if device != "auto":
        command += ["--device", device]
    return command


# A server started by this process watches it and stops when it is gone (no orphan holding the model).
PARENT_ENV = "DISTILL_STUDIO_PARENT_PID"


def serve_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server child's environment: unbuffered lines, quiet libraries, never a download, our threads.

    ``threads`` > 0 caps OpenMP/MKL (on a small machine shared with a training run, an uncapped
    server takes every core); ``PYTHONPATH`` names the folder holding ``studio`` so a child
    started from any folder finds it.
    """
    env = python_child_env(threads, base)
    env["HF_HUB_OFFLINE"] = "1"  # the server reads the base model where it is, it never downloads
    env[PARENT_ENV] = str(os.getpid())  # the server stops itself if this process dies (studio/serve/parent_watch.py)
    return env


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (the server would fail on a taken port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, int(port)))
        except OSError:
            return False
    return True


def pick_port(host: str = DEFAULT_HOST, preferred: int = DEFAULT_PORT) -> int:
    """``preferred`` when it is free, else 0 (the server then picks a free port and writes it in its info file)."""
    return preferred if preferred and port_free(host, preferred) else 0


# -- the training run beside it --------------------------------------------------------------------
def training_gpu_conflict(project: Project) -> str | None:
    """A message naming the live training run that holds a GPU, or None (no live run, or it trains on the CPU).

    The device comes from the run's newest ``config`` event (``"cuda (NAME)"`` or ``"cpu"``); a
    run that has not written one yet counts as on the GPU unless its settings say ``use_cpu`` or
    this machine shows no NVIDIA GPU.
    """
    from studio.core.training.launch import live_pid

    for run in project.training.list():
        if live_pid(run) is None:
            continue
        device = run_device(run)
        if device is None:
            if run.settings.use_cpu or not nvidia_gpu_present():
                continue
            device = "cuda"
        if device.startswith("cuda"):
            return (f"Training run {run.label} is using the GPU ({_gpu_name(device)}); a model server beside it "
                    "can run both out of memory. Start the server anyway?")
    return None


def run_device(run: TrainingRun) -> str | None:
    """The device of the run's newest leg, from its events' ``config`` events (None before the first)."""
    device = None
    try:
        with open(run.events_path, "rb") as handle:
            for line in handle:
                if b'"config"' not in line:  # only config lines are parsed: a long run has many others
                    continue
                event = ev.parse_line(line)
                if event is not None and event.get("type") == ev.CONFIG and isinstance(event.get("device"), str):
                    device = event["device"]
    except OSError:
        return None
    return device


def nvidia_gpu_present() -> bool:
    """An NVIDIA GPU looks present (its device node or driver tool), without importing torch."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def _gpu_name(device: str) -> str:
    if "(" in device and device.endswith(")"):
        return device[device.index("(") + 1:-1]
    return device if ":" in device else "cuda:0"


# -- finding and watching it -------------------------------------------------------------------------
def server_root(url: str) -> str:
    """``http://host:port`` from a server's OpenAI base URL (``…/v1``) or its root."""
    root = url.rstrip("/")
    return root.removesuffix("/v1")


def _get_json(url: str, path: str, timeout_s: float) -> tuple[str, object]:
    """``GET <root><path>`` of the server at ``url`` as parsed JSON (None if the body is not JSON); ServeError
    with a plain reason when it does not answer."""
    root = server_root(url)
    busy = f"the server at {root} did not answer within {timeout_s:g} s (busy or stuck)"
    try:
        with urllib.request.urlopen(f"{root}{path}", timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise ServeError(f"{root}{path} answered HTTP {exc.code}: {_error_message(exc)}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise ServeError(busy) from None
        raise ServeError(f"the server at {root} does not answer ({_reason(exc.reason)}); is it running?") from None
    except TimeoutError:
        raise ServeError(busy) from None
    except OSError as exc:
        raise ServeError(f"the server at {root} does not answer ({_reason(exc)}); is it running?") from None
    try:
        return root, json.loads(body)
    except ValueError:
        return root, None


def fetch_health(url: str, timeout_s: float = 2.0) -> dict:
    """``GET /health`` of the server at ``url`` (its ``…/v1`` base URL or root); ServeError if it does not answer."""
    root, health = _get_json(url, "/health", timeout_s)
    if health is None:
        raise ServeError(f"{root}/health did not answer JSON: another program may be on that port")
    if not isinstance(health, dict):
        raise ServeError(f"{root}/health did not answer a JSON object: another program may be on that port")
    return health


def wait_ready(info_file: Path, pid: int, timeout_s: float,
               cancelled: Callable[[], bool] | None = None) -> ServerInfo:
    """Block until the server ``pid`` has written its info file (it listens); for a worker thread.

    Raises ServeError when the process exits first or ``timeout_s`` passes, ServeCancelled when
    ``cancelled()`` turns true. A file left by another (older) server is not taken for this one.
    """
    info_file = Path(info_file)
    deadline = time.monotonic() + timeout_s
    while True:
        info = read_info(info_file, check_alive=False)
        if info is not None and info.pid == pid:
            return info
        if cancelled is not None and cancelled():
            raise ServeCancelled("stopped before the server was ready")
        if not pid_alive(pid):
            raise ServeError("the server exited before it was ready (its error output says why)")
        if time.monotonic() >= deadline:
            raise ServeError(f"the server did not become ready within {timeout_s:g} s ({info_file} was not written); "
                             "a large base model may need longer")
        time.sleep(READY_POLL_S)


def stop_server(info: ServerInfo, wait_s: float = 5.0, *, info_file: Path | None = None) -> None:
    """SIGTERM the server (it finishes or cancels its streams and removes its info file), then kill it.

    After a kill the server cannot clean up; ``info_file`` is then removed here (if still its own).
    """
    pid = info.pid
    if not pid_alive(pid):
        if info_file is not None:
            remove_info(info_file, pid)
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except OSError as exc:
        raise ServeError(f"could not stop the server (pid {pid}): {exc.strerror or exc}") from None
    deadline = time.monotonic() + wait_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        try:
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        except OSError:
            pass
        end = time.monotonic() + 5.0
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
    if info_file is not None:
        remove_info(info_file, pid)


def load_adapter(url: str, run: TrainingRun) -> None:
    """Load a run's adapter into the running studio server (``POST /v1/load_lora_adapter``)."""
    if not run.has_adapter:
        raise ServeError(f"training run {run.label} has no adapter yet ({run.adapter_dir}); train it first")
    body = {"lora_name": run_model_id(run), "lora_path": str(run.adapter_dir),
            "prompt_format": run.settings.prompt_format}
    post_json(url, "/v1/load_lora_adapter", body, timeout_s=120.0)


def post_json(url: str, path: str, body: dict, *, timeout_s: float = 30.0) -> dict:
    """POST a JSON body to the server at ``url`` (base URL or root) and return its JSON answer."""
    root = server_root(url)
    request = urllib.request.Request(f"{root}{path}", data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise ServeError(f"{root}{path} answered HTTP {exc.code}: {_error_message(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise ServeError(f"the server at {root} does not answer ({_reason(reason)}); is it running?") from None
    try:
        answer = json.loads(raw) if raw.strip() else {}
    except ValueError:
        answer = {}
    return answer if isinstance(answer, dict) else {}


def same_base(catalog: Catalog, run: TrainingRun) -> bool:
    """Whether a run was trained on the base model this server holds (then its adapter can be loaded)."""
    if run.base_model == catalog.base_model:
        return True
    try:
        return local_base_folder(run.base_model) == catalog.base_model
    except StudioError:
        return False


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(exc.read())
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        if isinstance(message, str) and message:
            return message
    except (ValueError, AttributeError, OSError):
        pass
    return str(exc.reason)


def _reason(reason: Any) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


# -- servers started by a plugin's backend: GPUs, ports and the OpenAI model list ------------------------
def gpu_count(env: Mapping[str, str] | None = None) -> int:
    """How many GPUs a child would see: CUDA_VISIBLE_DEVICES when set, else the lines of ``nvidia-smi -L``.

    At least 1 (a tensor parallel size); no torch, so the GUI process can ask.
    """
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip():
        devices = [d for d in visible.split(",") if d.strip() and not d.strip().startswith("-")]
        return max(1, len(devices))
    lines = _nvidia_smi(["-L"])
    count = sum(1 for line in lines if line.startswith("GPU "))
    return max(1, count)


def gpu_memory_used_mib() -> list[int] | None:
    """Memory used on each GPU in MiB (``nvidia-smi --query-gpu=memory.used``), or None without nvidia-smi."""
    lines = _nvidia_smi(["--query-gpu=memory.used", "--format=csv,noheader,nounits"])
    values = []
    for line in lines:
        try:
            values.append(int(float(line.strip())))
        except ValueError:
            continue
    return values or None


def _nvidia_smi(args: list[str], timeout_s: float = 5.0) -> list[str]:
    program = shutil.which("nvidia-smi")
    if program is None:
        return []
    try:
        done = subprocess.run([program, *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def free_port(host: str = DEFAULT_HOST, preferred: int = DEFAULT_PORT) -> int:
    """``preferred`` when free, else a port the OS picks now (for a server that, unlike ours, cannot report
    one it picked)."""
    if preferred and port_free(host, preferred):
        return preferred
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def fetch_models(url: str, timeout_s: float = 2.0) -> list[dict]:
    """``GET /v1/models``: the ``data`` list (each with ``id`` and, for a LoRA module, ``parent``)."""
    root, answer = _get_json(url, "/v1/models", timeout_s)
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise ServeError(f"{root}/v1/models did not answer an OpenAI model list: another program may be on that port")
    return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def models_health(url: str, timeout_s: float = 2.0) -> dict:
    """A /health-shaped summary of an OpenAI server without our /health, from ``GET /v1/models``.

    ``adapters`` are the models naming a parent (a LoRA module); the device and memory are unknown
    here ("" and {}: a caller shows the info file's device), a backend that knows them adds them.
    """
    models = fetch_models(url, timeout_s)
    base = next((m["id"] for m in models if not m.get("parent")), "")
    return {"status": "ready", "device": "", "base_id": base, "models": [m["id"] for m in models],
            "adapters": [m["id"] for m in models if m.get("parent")], "memory": {}}


def wait_models(url: str, pid: int, timeout_s: float, cancelled: Callable[[], bool] | None = None, *,
                name: str = "The server") -> list[dict]:
    """Block until the server ``pid`` answers ``GET /v1/models`` (for one that writes no info file); for a worker.

    ServeError when the process exits first or ``timeout_s`` passes, ServeCancelled on ``cancelled()``;
    ``name`` is what the messages call the server (its backend's title).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if cancelled is not None and cancelled():
            raise ServeCancelled("stopped before the server was ready")
        if not pid_alive(pid):
            raise ServeError(f"{name} exited before it was ready (its error output says why)")
        try:
            models = fetch_models(url, timeout_s=2.0)
            if models:
                return models
        except ServeError:
            pass
        if time.monotonic() >= deadline:
            raise ServeError(f"{name} did not answer {server_root(url)}/v1/models within {timeout_s:g} s; "
                             "a large base model may need longer")
        time.sleep(READY_POLL_S)


def add_adapter_to_info(info: ServerInfo, run: TrainingRun, info_file: Path) -> ServerInfo:
    """``info`` with a run's adapter added to its catalog, written to ``info_file`` (when still this server's).

    For a server that writes no info file (its launcher wrote it): the prompt format and the run
    id of a model loaded at run time are known only here.
    """
    model_id = run_model_id(run)
    model = ServedModel(id=model_id, kind=ADAPTER, parent=info.catalog.base.id,
                        prompt_format=run.settings.prompt_format, adapter_path=str(run.adapter_dir), run_id=run.id)
    others = tuple(m for m in info.catalog.models if m.id != model_id)
    updated = replace(info, catalog=Catalog(info.catalog.base_model, (*others, model), info.catalog.skipped))
    current = read_info(info_file, check_alive=False)
    if current is None or current.pid == info.pid:
        write_info(info_file, updated)
    return updated


__all__ = [
    "SERVE_MODULE",
    "ServeCancelled",
    "ServeError",
    "add_adapter_to_info",
    "fetch_health",
    "fetch_models",
    "free_port",
    "gpu_count",
    "gpu_memory_used_mib",
    "load_adapter",
    "models_health",
    "pick_port",
    "post_json",
    "same_base",
    "serve_command",
    "serve_env",
    "server_root",
    "stop_server",
    "training_gpu_conflict",
    "wait_models",
    "wait_ready",
]
