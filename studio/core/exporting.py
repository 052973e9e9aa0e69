"""Exporting a trained run: the child's command, its events, and the ``distill-studio export`` command.

The work happens in a child process (``python -m studio.export``, the only export code that
imports torch), so the GUI and the CLI share one path and a cancelled export is a terminated
process that leaves nothing behind (the child writes into a temp folder and renames at the end).
This module is torch-free: the GUI imports it.

Events (one JSON object per stdout line of the child):
``{"event": "progress", "stage", "done", "total"}``, ``{"event": "done", "path", "files", "bytes"}``,
``{"event": "error", "message", "hint"}``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from studio.core.errors import StudioError

if TYPE_CHECKING:
    from studio.core.training.runs import TrainingRun

EXPORT_FORMATS = ("adapter", "merged", "gguf")
QUANTS = ("f16", "bf16", "q8_0", "q4_k_m")
DEFAULT_QUANT = "q8_0"
KQUANTS = ("q4_k_m",)              # need the optional llama-cpp-python (extra "gguf-kquants")
EXPORTS_DIR = "exports"
FORMAT_HELP = {
    "adapter": "the LoRA adapter alone (a folder that loads with plain peft on the base model)",
    "merged": "base + adapter merged into one Hugging Face model (safetensors, tokenizer, chat template)",
    "gguf": "one GGUF file for llama.cpp, Ollama and LM Studio, with a ready Ollama Modelfile",
}
QUANT_HELP = {
    "f16": "16-bit floats: the same answers as the merged model, the largest file",
    "bf16": "bfloat16: the base model's own precision for most recent models",
    "q8_0": "8-bit blocks: half the size of f16, answers nearly unchanged",
    "q4_k_m": "4-bit K-quant (llama.cpp's usual choice): a quarter of f16; needs llama-cpp-python",
}
KQUANTS_MISSING = ("q4_k_m needs llama-cpp-python, which is not installed: "
                   "pip install 'distill-studio[gguf-kquants]'")
STAGE_WORDS = {
    "load": "Loading the base model and merging the adapter",
    "copy": "Copying the adapter",
    "tokenizer": "Writing the tokenizer",
    "save": "Writing the merged model",
    "tensors": "Writing tensors",
    "quantize": "Quantising to 4 bits",
}
STAGES = {"adapter": ("copy", "tokenizer"), "merged": ("load", "save", "tokenizer"), "gguf": ("load", "tensors")}


class ExportError(StudioError):
    """An export cannot start, or the child reported a failure (its message and hint)."""


@dataclass(frozen=True)
class ModelExporter:
    """One way to write a trained run for other tools: the entry ``registry.MODEL_EXPORTERS`` loads.

    ``module`` is the child run with ``python -m`` (it speaks the events protocol above and takes
    ``--run-dir --out --format [--quant] [--base-model] [--threads]``), so a plugin can add a
    format with its own child without the GUI importing anything heavy.
    """
    key: str
    title: str
    help: str
    quants: tuple[str, ...] = ()
    module: str = "studio.export"


ADAPTER_EXPORTER = ModelExporter("adapter", "Adapter (peft)", FORMAT_HELP["adapter"])
MERGED_EXPORTER = ModelExporter("merged", "Merged Hugging Face model", FORMAT_HELP["merged"])
GGUF_EXPORTER = ModelExporter("gguf", "GGUF (llama.cpp, Ollama)", FORMAT_HELP["gguf"], quants=QUANTS)
BUILT_IN_EXPORTERS = {e.key: e for e in (ADAPTER_EXPORTER, MERGED_EXPORTER, GGUF_EXPORTER)}


def model_exporter(key: str) -> ModelExporter:
    """The exporter for a format: a registered one (plugins), else a built-in."""
    from studio.core import registry

    if key in registry.MODEL_EXPORTERS:
        return registry.MODEL_EXPORTERS.load_instance(key, ModelExporter)
    if key in BUILT_IN_EXPORTERS:
        return BUILT_IN_EXPORTERS[key]
    raise ExportError(f"unknown export format {key!r}; formats: {', '.join(EXPORT_FORMATS)}")


GGUF_MISSING = "GGUF export needs the gguf package: pip install 'distill-studio[export-gguf]'"


def gguf_available() -> bool:
    """The ``gguf`` package is importable (looked up, not imported)."""
    return importlib.util.find_spec("gguf") is not None


def kquants_available() -> bool:
    """llama-cpp-python is importable here (looked up, not imported: the GUI must stay light)."""
    return importlib.util.find_spec("llama_cpp") is not None


def check_choice(fmt: str, quant: str | None) -> str | None:
    """The quant to pass (None except for gguf); an unknown format or quant is an error naming the choices."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; formats: {', '.join(EXPORT_FORMATS)}")
    if fmt != "gguf":
        if quant:
            raise ExportError(f"--quant applies to the gguf format only, not {fmt}")
        return None
    quant = quant or DEFAULT_QUANT
    if quant not in QUANTS:
        raise ExportError(f"unknown GGUF quantisation {quant!r}; choose {', '.join(QUANTS)}")
    return quant


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"


def default_export_dir(project_root: Path, run: TrainingRun, fmt: str) -> Path:
    """``<project>/exports/<run>-<format>``."""
    return Path(project_root) / EXPORTS_DIR / f"{safe_name(run.name or f'run-{run.id}')}-{fmt}"


def export_command(run: TrainingRun, out: Path, fmt: str, quant: str | None = None, *,
                   base_model: str | None = None, threads: int = 0) -> list[str]:
    """argv of the export child (no shell)."""
    quant = check_choice(fmt, quant)
    argv = [sys.executable, "-m", model_exporter(fmt).module, "--run-dir", str(run.run_dir), "--out", str(Path(out)),
            "--format", fmt]
    if quant:
        argv += ["--quant", quant]
    if base_model:
        argv += ["--base-model", str(base_model)]
    threads = threads or run.settings.torch_threads
    if threads > 0:
        argv += ["--threads", str(threads)]
    return argv


def export_env(run: TrainingRun, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: the training child's (unbuffered, quiet, our threads, PYTHONPATH)."""
    from studio.core.training.launch import child_env

    return child_env(run.settings, base)


@dataclass(frozen=True)
class ExportEvent:
    kind: str                              # "progress", "done" or "error"
    stage: str = ""
    done: int = 0
    total: int = 0
    path: str = ""
    files: tuple[str, ...] = field(default=())
    bytes: int = 0
    message: str = ""
    hint: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def describe(self) -> str:
        """A line for a status bar or the CLI."""
        if self.kind == "progress":
            words = STAGE_WORDS.get(self.stage, self.stage)
            return f"{words} ({self.done}/{self.total})" if self.total > 1 else words
        if self.kind == "done":
            return f"Exported to {self.path} ({len(self.files)} files, {format_size(self.bytes)})"
        return self.message + (f" — {self.hint}" if self.hint else "")


def stage_plan(fmt: str, quant: str | None) -> tuple[str, ...]:
    """The stages a format's child reports, in order (q4_k_m adds the 4-bit quantisation)."""
    return STAGES[fmt] + (("quantize",) if fmt == "gguf" and quant in KQUANTS else ())


def overall_fraction(plan: Sequence[str], event: ExportEvent, before: float = 0.0) -> float:
    """How far the whole export is (0..1): each stage an equal share; an unknown stage keeps ``before``."""
    if event.kind == "done":
        return 1.0
    if event.kind != "progress" or event.stage not in plan:
        return before
    return max(before, (plan.index(event.stage) + event.fraction) / len(plan))


def parse_event(line: str) -> ExportEvent | None:
    """One stdout line of the child as an event; anything else (a stray print) is None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("event") not in ("progress", "done", "error"):
        return None
    try:
        return ExportEvent(kind=data["event"], stage=str(data.get("stage", "")), done=int(data.get("done", 0)),
                           total=int(data.get("total", 0)), path=str(data.get("path", "")),
                           files=tuple(str(f) for f in data.get("files", ())), bytes=int(data.get("bytes", 0)),
                           message=str(data.get("message", "")), hint=str(data.get("hint", "")))
    except (TypeError, ValueError):
        return None


def format_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def check_run(run: TrainingRun, fmt: str, quant: str | None) -> None:
    """What can be refused before a process starts: no adapter, q4_k_m without llama-cpp-python."""
    if not run.has_adapter:
        from studio.core.serving.catalog import no_adapter_hint

        raise ExportError(f"training run {run.label} has no adapter yet ({run.adapter_dir}): {no_adapter_hint(run)}")
    if fmt == "gguf" and not gguf_available():
        raise ExportError(GGUF_MISSING)
    if fmt == "gguf" and quant in KQUANTS and not kquants_available():
        raise ExportError(KQUANTS_MISSING)


EXIT_CANCELLED = 130  # the shell's code for Ctrl+C
STOP_WAIT_S = 60.0  # how long a cancelled child may take to clean up (it stops at its next tensor) before a kill


class ExportCancelled(ExportError):
    """The export was cancelled (Ctrl+C) and the child stopped without writing the target."""


def run_export(argv: Sequence[str], *, env: dict[str, str] | None = None,
               on_event: Callable[[ExportEvent], None] | None = None,
               stop_wait_s: float = STOP_WAIT_S) -> ExportEvent:
    """Run the child to the end, passing each event on; returns the ``done`` event or raises ExportError.

    Ctrl+C here (KeyboardInterrupt) sends the child SIGTERM and waits for it (up to ``stop_wait_s``,
    then kills it), so the real outcome is reported: if the child had already put the export in
    place it finishes and its ``done`` event is returned; otherwise :class:`ExportCancelled`
    (the child removed its temp folder; nothing was written).
    """
    child = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             encoding="utf-8", errors="replace", env=env)
    final: ExportEvent | None = None
    stderr = ""
    try:
        assert child.stdout is not None
        for line in child.stdout:
            event = parse_event(line)
            if event is None:
                continue
            if event.kind != "progress":
                final = event
            if on_event is not None:
                on_event(event)
        stderr = child.stderr.read() if child.stderr else ""
        child.wait()
    except KeyboardInterrupt:
        rest = _stop(child, stop_wait_s)
        for line in rest.splitlines():
            event = parse_event(line)
            if event is not None and event.kind != "progress":
                final = event
        if final is not None and final.kind == "done" and child.returncode == 0:
            return final
        raise ExportCancelled("Export cancelled; nothing was written") from None
    if final is not None and final.kind == "done" and child.returncode == 0:
        return final
    if final is not None and final.kind == "error":
        raise ExportError(final.describe())
    tail = [line for line in stderr.strip().splitlines() if line.strip()]
    raise ExportError(f"the export process ended with status {child.returncode}"
                      + (f": {tail[-1]}" if tail else ""))


def _stop(child: subprocess.Popen, wait_s: float) -> str:
    """SIGTERM, then wait (a second Ctrl+C or the deadline: kill); the rest of its stdout."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        out, _ = child.communicate(timeout=wait_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        child.kill()
        out, _ = child.communicate()
    return out or ""


def cmd_export(args: argparse.Namespace) -> int:
    """``distill-studio export RUN PATH --format F [--quant Q] [--base-model DIR] [--project DIR]``.

    Progress goes to stderr, the export's folder to stdout (so scripts can use it).
    """
    from studio.core.paths import default_project_dir
    from studio.core.project import Project

    root = getattr(args, "project", None) or default_project_dir()
    with Project.open(root, exclusive=False) as project:
        run = project.training.get(args.run)
    quant = check_choice(args.format, getattr(args, "quant", None))
    check_run(run, args.format, quant)
    out = Path(args.path).expanduser().absolute()
    argv = export_command(run, out, args.format, quant, base_model=getattr(args, "base_model", None))
    last = [""]

    def show(event: ExportEvent) -> None:
        if event.kind == "progress":
            text = event.describe()
            if text != last[0]:
                last[0] = text
                print(text, file=sys.stderr, flush=True)

    try:
        done = run_export(argv, env=export_env(run), on_event=show)
    except ExportCancelled:
        print(f"Export cancelled; nothing was written to {out}.", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"Exported run {run.label} as {args.format}{' ' + quant if quant else ''}: "
          f"{len(done.files)} files, {format_size(done.bytes)}", file=sys.stderr)
    print(done.path)
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``export`` verb's arguments (the lead adds the sub-parser and ``--project``)."""
    parser.add_argument("run", metavar="RUN", help="run id or name")
    parser.add_argument("path", metavar="PATH", help="the folder to create (replaced if it is an earlier export)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, required=True,
                        help="; ".join(f"{k}: {v}" for k, v in FORMAT_HELP.items()))
    parser.add_argument("--quant", choices=QUANTS, default=None,
                        help=f"GGUF tensor type (default {DEFAULT_QUANT}); q4_k_m needs the gguf-kquants extra")
    parser.add_argument("--base-model", metavar="DIR", default=None,
                        help="the base model's folder, if it is no longer where the run found it "
                             "(never downloaded)")
