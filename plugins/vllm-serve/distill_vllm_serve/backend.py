"""The vLLM serving backend: ``vllm serve BASE --enable-lora --lora-modules name=path ...`` on a GPU box.

The server control starts it instead of the studio's own server when the user picks it (offered
only where ``vllm`` is on PATH). vLLM speaks the same OpenAI API, so Chat and Evaluate use it
unchanged; what differs is handled here: vLLM writes no info file (:meth:`VllmBackend.wait_ready`
waits for ``GET /v1/models`` and writes ``server.json`` for it), has no ``/health`` of ours
(:meth:`VllmBackend.health` summarises ``/v1/models`` plus nvidia-smi's memory), and loads an
adapter at run time only with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` (else the user is offered a
restart). No torch: the GUI process asks these things.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.serving import launch
from studio.core.serving.backends import ServeOptions, ServingBackend
from studio.core.serving.catalog import BASE_ALIAS, Catalog, run_model_id
from studio.core.serving.launch import ServeCancelled, ServeError
from studio.core.serving.server_info import ServerInfo, write_info

if TYPE_CHECKING:
    from studio.core.training.runs import TrainingRun

KEY = "vllm"
# The LoRA ranks vLLM accepts for --max-lora-rank (its `MaxLoRARanks`); an adapter's r is rounded up to one.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
NOT_INSTALLED = "vLLM is not installed here: `pip install vllm` on a machine with an NVIDIA GPU puts `vllm` on PATH"


def available() -> bool:
    """``vllm`` is on PATH (the backend is offered only then)."""
    return shutil.which("vllm") is not None


def vllm_command(catalog: Catalog, *, host: str = launch.DEFAULT_HOST, port: int = launch.DEFAULT_PORT,
                 tensor_parallel_size: int = 1) -> list[str]:
    """``vllm serve BASE`` with every adapter of the catalog as a LoRA module (argv only).

    The base is served under the catalog's base id and ``base`` (the first name is the one
    vLLM lists), so clients ask for the same names as of the studio's own server;
    ``--max-lora-rank`` is the largest adapter ``r`` rounded up to a rank vLLM accepts.
    """
    if tensor_parallel_size < 1:
        raise ServeError(f"tensor_parallel_size must be at least 1, not {tensor_parallel_size}")
    command = ["vllm", "serve", catalog.base_model, "--served-model-name", catalog.base.id, BASE_ALIAS,
               "--enable-lora"]
    if catalog.adapters:
        command += ["--lora-modules", *[f"{model.id}={model.adapter_path}" for model in catalog.adapters]]
    command += ["--host", host, "--port", str(int(port)), "--tensor-parallel-size", str(int(tensor_parallel_size))]
    if catalog.adapters:
        rank = max(adapter_rank(Path(model.adapter_path or "")) for model in catalog.adapters)
        command += ["--max-lora-rank", str(next((r for r in LORA_RANKS if r >= rank), rank))]
    return command


def adapter_rank(adapter_dir: Path) -> int:
    """The LoRA rank ``r`` an adapter was trained with (its adapter_config.json)."""
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        rank = json.loads(path.read_text(encoding="utf-8"))["r"]
        return int(rank)
    except (OSError, ValueError, KeyError, TypeError):
        raise ServeError(f"{path}: no readable LoRA rank 'r'; is this a peft LoRA adapter folder?") from None


def vllm_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``vllm serve`` child's environment: runtime LoRA loading allowed, unbuffered, never a download."""
    env = dict(os.environ if base is None else base)
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # else POST /v1/load_lora_adapter is not routed
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"  # the base model is a local folder; vLLM must not fetch it again
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


class VllmBackend(ServingBackend):
    """``vllm serve`` as a serving backend (see the module's docstring)."""

    key, title = KEY, "vLLM"
    writes_info = False      # vLLM writes no server.json: wait_ready writes it, the launcher removes it
    logs_to_stdout = True    # vLLM logs to stdout as much as to stderr
    on_gpu = True
    restart_to_load = True   # a vLLM without runtime LoRA updating takes a new adapter only at a restart

    def unavailable_reason(self) -> str:
        return "" if available() else NOT_INSTALLED

    def tensor_parallel_size(self) -> int:
        """Every GPU present (CUDA_VISIBLE_DEVICES, else nvidia-smi -L)."""
        return launch.gpu_count()

    def port(self, host: str, preferred: int) -> int:
        """A port free now: vLLM, unlike the studio's server, cannot report one it picked itself."""
        return launch.free_port(host, preferred)

    def command(self, catalog: Catalog, host: str, port: int, tensor_parallel_size: int = 1,
                options: ServeOptions | None = None) -> list[str]:
        return vllm_command(catalog, host=host, port=port or launch.DEFAULT_PORT,
                            tensor_parallel_size=tensor_parallel_size)

    def env(self, options: ServeOptions | None = None) -> dict[str, str]:
        return vllm_env()

    def info(self, catalog: Catalog, host: str, port: int, pid: int, tensor_parallel_size: int = 1) -> ServerInfo:
        """The info file a vLLM server gets from its launcher, so every client finds it alike."""
        return replace(super().info(catalog, host, port, pid, tensor_parallel_size), device="cuda")

    def wait_ready(self, info: ServerInfo, info_file: Path, timeout_s: float,
                   cancelled: Callable[[], bool] | None = None) -> ServerInfo:
        """Wait until vLLM answers /v1/models, then write the info file it never writes itself."""
        launch.wait_models(info.url, info.pid, timeout_s, cancelled, name=self.title)
        if cancelled is not None and cancelled():
            raise ServeCancelled("stopped before the server was ready")
        write_info(info_file, info)
        return info

    def health(self, url: str, timeout_s: float = 2.0, *, gpu_memory: bool = True) -> dict[str, Any]:
        """``/v1/models`` as a /health; memory is the GPUs' as nvidia-smi reports it (``gpu_used_mib``),
        since vLLM reserves most of the GPU up front anyway."""
        health = {**launch.models_health(url, timeout_s), "device": "cuda"}  # vLLM serves on GPUs only
        if gpu_memory:
            used = launch.gpu_memory_used_mib()
            if used is not None:
                health["memory"]["gpu_used_mib"] = used
        return health

    def load_adapter(self, info: ServerInfo, run: TrainingRun, info_file: Path) -> ServerInfo:
        """vLLM's own ``/v1/load_lora_adapter`` takes only the name and path; the prompt format and run
        id go into the info file here, which vLLM never rewrites."""
        if not run.has_adapter:
            raise ServeError(f"training run {run.label} has no adapter yet ({run.adapter_dir}); train it first")
        launch.post_json(info.url, "/v1/load_lora_adapter",
                         {"lora_name": run_model_id(run), "lora_path": str(run.adapter_dir)}, timeout_s=120.0)
        return launch.add_adapter_to_info(info, run, info_file)


VLLM_BACKEND = VllmBackend()
