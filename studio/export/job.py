"""The export child: a run's adapter, a merged model or a GGUF file, written whole or not at all.

``python -m studio.export --run-dir DIR --out PATH --format adapter|merged|gguf [--quant Q]
[--base-model PATH]`` prints JSON lines: ``progress`` (stage, done, total), then ``done`` (path,
files, bytes) or ``error`` (message, hint); exit 0 or 1. Everything is written into a temporary
folder beside ``PATH`` and renamed onto it at the very end, so SIGTERM, the stop file of the job
runner or a crash leave no partial export behind. The base model is read from where it is (a
folder, or the Hugging Face cache) with ``local_files_only=True``: an export never downloads.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.exporting import DEFAULT_QUANT, EXPORT_FORMATS, QUANTS
from studio.core.training.run_config import TOKENIZER_DIR, RunConfig
from studio.export import templates

FORMATS = EXPORT_FORMATS
MARKER = "export.json"             # written into every export: what it is, so a re-export may replace it
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
STOP_FILE_ENV = "STUDIO_STOP_FILE"


class ExportError(StudioError):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class Cancelled(BaseException):
    """SIGTERM or the stop file: unwinds through every ``finally`` so the temp folder goes."""


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


def progress(stage: str, done: int, total: int) -> None:
    emit("progress", stage=stage, done=done, total=total)


def check_cancel() -> None:
    stop = os.environ.get(STOP_FILE_ENV)
    if stop and Path(stop).exists():
        raise Cancelled()


CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_cancel = {"armed": False}  # whether the next SIGTERM/SIGINT cancels (a dict: no ``global`` in the handler)


def _on_cancel_signal(signum: int, frame: Any) -> None:
    """The first SIGTERM/SIGINT cancels; later ones do nothing, so they cannot cut the cleanup short.

    Ctrl+C in a terminal sends SIGINT to the child too, and the CLI then sends SIGTERM: without
    this the second signal lands inside the ``finally`` that removes the temp folder. (The
    handler stays installed and just returns: switching to SIG_IGN while a second signal is
    pending makes Python raise "Signal 15 ignored due to race condition".)
    """
    if not _cancel["armed"]:
        return
    _cancel["armed"] = False
    raise Cancelled()


def install_cancel_handlers() -> None:
    _cancel["armed"] = True
    for signum in CANCEL_SIGNALS:
        signal.signal(signum, _on_cancel_signal)


def ignore_cancel_signals() -> None:
    """From now on SIGTERM/SIGINT do not cancel (the export is in place, or being put there)."""
    _cancel["armed"] = False


def remove_stale_partials(out: Path) -> None:
    """``.NAME.partial-PID`` folders beside ``out`` whose process is gone (killed before it could clean up)."""
    from studio.core.processes import pid_alive

    for folder in out.parent.glob(f".{out.name}.partial-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def default_modes(root: Path) -> None:
    """Give every exported file and folder the user's default mode (0644/0755 under umask 022).

    Some writers go through temp files (0600); an export is meant to be shared and served.
    """
    mask = os.umask(0)
    os.umask(mask)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


# -- inputs ---------------------------------------------------------------------------------------
def read_run(run_dir: Path) -> RunConfig:
    try:
        return RunConfig.read(run_dir / "config.json")
    except StudioError as exc:
        raise ExportError(str(exc), "export needs a training run folder (runs/<id>/)") from None


def adapter_folder(run_dir: Path) -> Path:
    folder = run_dir / "adapter"
    if not (folder / "adapter_config.json").is_file():
        raise ExportError(f"{folder}: the run has no adapter yet", "train the run to the end (or Stop it) first")
    return folder


def base_folder(config: RunConfig, override: str | None) -> Path:
    """The base model's folder on this machine: --base-model, the run's folder, or the HF cache."""
    from studio.core.training.base_models import HUB, BaseModelError, resolve

    spec = override or config.base_model
    try:
        info = resolve(spec, revision=None if override else config.base_model_revision)
    except BaseModelError as exc:
        raise ExportError(str(exc), "give the base model's folder with --base-model PATH") from None
    if info.source == HUB:
        raise ExportError(f"the base model {spec} is neither a folder nor in the Hugging Face cache "
                          "(export reads it with local_files_only=True and never downloads)",
                          "give its folder with --base-model PATH")
    folder = Path(info.path_or_id)
    if not (folder / "config.json").is_file():
        raise ExportError(f"{folder}: not a model folder (no config.json)", "give the base model's folder with --base-model PATH")
    return folder


def tokenizer_folder(config: RunConfig, base: Path | None) -> Path:
    saved = config.dir / TOKENIZER_DIR
    if (saved / "tokenizer_config.json").is_file():
        return saved
    if base is not None:
        return base
    raise ExportError(f"{saved}: the run saved no tokenizer", "give the base model's folder with --base-model PATH")


def load_tokenizer(folder: Path, fmt: str) -> Any:
    """The run's tokenizer; for a text format its chat template becomes the run's prompt format."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    template = templates.jinja_chat_template(fmt)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def load_merged(config: RunConfig, base: Path, adapter: Path) -> tuple[Any, Any]:
    """(base + adapter merged with peft's ``merge_and_unload``, the base's dtype) on the CPU."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    progress("load", 0, 3)
    model = AutoModelForCausalLM.from_pretrained(
        str(base), dtype="auto", local_files_only=True, trust_remote_code=config.settings.trust_remote_code)
    dtype = next(model.parameters()).dtype
    check_cancel()
    progress("load", 1, 3)
    model = PeftModel.from_pretrained(model, str(adapter))
    progress("load", 2, 3)
    check_cancel()
    model = model.merge_and_unload()
    model.eval()
    progress("load", 3, 3)
    return model, dtype if dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float32


# -- formats --------------------------------------------------------------------------------------
def card_settings(config: RunConfig) -> dict[str, Any]:
    return config.settings.to_dict()


def write_card(target: Path, config: RunConfig, fmt: str, *, tokenizer: Any, base_name: str,
               how_to_load: str, extra: str = "") -> None:
    files = sorted(p.name for p in target.iterdir()) + ["README.md"]
    example = templates.example_prompt(config.settings.prompt_format, tokenizer=tokenizer)
    text = templates.model_card(
        title=f"{config.run_name or 'run-' + str(config.run_id)} ({fmt})", fmt=fmt, base_model=base_name,
        snapshot_name=config.snapshot_name, snapshot_hash=config.snapshot_hash, settings=card_settings(config),
        example=example, how_to_load=how_to_load, files=sorted(set(files)), extra=extra)
    (target / "README.md").write_text(text, encoding="utf-8")


def bos_note(config: RunConfig) -> str:
    """Text formats were trained with the tokenizer's BOS added at encoding, not written by the template."""
    if templates.jinja_chat_template(config.settings.prompt_format) is None:
        return ""
    return ("The chat template renders the prompt text without BOS, as training did: encode its text with the "
            "tokenizer (`tokenizer(apply_chat_template(messages, tokenize=False, add_generation_prompt=True))`), "
            "which adds BOS the way the run's tokenizer did during training.\n")


def export_adapter(config: RunConfig, target: Path, base_override: str | None) -> None:
    adapter = adapter_folder(config.dir)
    names = [p for p in sorted(adapter.iterdir()) if p.is_file() and p.name != "README.md"]
    for n, path in enumerate(names, 1):
        check_cancel()
        shutil.copy2(path, target / path.name)
        progress("copy", n, len(names))
    try:
        base = base_folder(config, base_override)
    except ExportError:
        base = None  # the adapter alone needs no base weights, only its tokenizer
    tokenizer = load_tokenizer(tokenizer_folder(config, base), config.settings.prompt_format)
    tokenizer.save_pretrained(str(target))
    progress("tokenizer", 1, 1)
    write_card(target, config, "adapter", tokenizer=tokenizer, base_name=config.base_model, how_to_load=(
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\nfrom peft import PeftModel\n\n"
        f"base = AutoModelForCausalLM.from_pretrained({config.base_model!r})\n"
        "model = PeftModel.from_pretrained(base, \"path/to/this/folder\")\n"
        "tokenizer = AutoTokenizer.from_pretrained(\"path/to/this/folder\")\n```\n"), extra=bos_note(config))


def export_merged(config: RunConfig, target: Path, base_override: str | None) -> None:
    from transformers import GenerationConfig

    base = base_folder(config, base_override)
    tokenizer = load_tokenizer(tokenizer_folder(config, base), config.settings.prompt_format)
    model, dtype = load_merged(config, base, adapter_folder(config.dir))
    check_cancel()
    progress("save", 0, 1)
    model.to(dtype)
    try:
        generation = GenerationConfig.from_pretrained(str(base), local_files_only=True)
    except (OSError, ValueError):
        generation = GenerationConfig.from_model_config(model.config)
    generation.eos_token_id = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
    model.generation_config = generation
    model.save_pretrained(str(target), safe_serialization=True)
    progress("save", 1, 1)
    check_cancel()
    tokenizer.save_pretrained(str(target))
    progress("tokenizer", 1, 1)
    write_card(target, config, "merged", tokenizer=tokenizer, base_name=config.base_model, how_to_load=(
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        "model = AutoModelForCausalLM.from_pretrained(\"path/to/this/folder\")\n"
        "tokenizer = AutoTokenizer.from_pretrained(\"path/to/this/folder\")\n"
        "# tokenizer.apply_chat_template renders the training prompt format\n```\n"), extra=bos_note(config))


def gguf_file_name(config: RunConfig, quant: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in (config.run_name or f"run-{config.run_id}"))
    return f"{stem}-{quant}.gguf"


def kquant(source: Path, target: Path) -> None:
    """F16 GGUF → Q4_K_M through llama-cpp-python's bundled llama.cpp (``llama_model_quantize``)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if status != 0:
        raise ExportError(f"llama.cpp could not quantise {source.name} to Q4_K_M (status {status})")


def export_gguf(config: RunConfig, target: Path, base_override: str | None, quant: str) -> None:
    try:
        from studio.export import gguf_export
        import gguf  # noqa: F401
    except ImportError:
        raise ExportError("GGUF export needs the gguf package, which is not installed",
                          "pip install 'gguf>=0.17' (the export-gguf extra)") from None

    if quant == "q4_k_m":
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise ExportError("q4_k_m needs llama-cpp-python, which is not installed",
                              "install the gguf-kquants extra (pip install 'distill-studio[gguf-kquants]'), "
                              "or choose f16, bf16 or q8_0") from None
    base = base_folder(config, base_override)
    try:
        hf_config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"{base / 'config.json'}: cannot read the model's config ({exc})") from None
    gguf_export.check_architecture(hf_config)
    fmt = config.settings.prompt_format
    tokenizer = load_tokenizer(tokenizer_folder(config, base), fmt)
    model, _dtype = load_merged(config, base, adapter_folder(config.dir))
    name = gguf_file_name(config, quant)
    written = target / (name if quant != "q4_k_m" else f".{name}.f16")
    gguf_export.write_gguf(
        written, model=model, tokenizer=tokenizer, quant="f16" if quant == "q4_k_m" else quant,
        name=config.run_name or f"run-{config.run_id}",
        description=(f"LoRA fine-tune of {config.base_model} on snapshot {config.snapshot_name} "
                     f"({config.snapshot_hash}); prompt format {fmt}; exported by Distill Studio"),
        chat_template=tokenizer.chat_template, on_progress=progress, check_cancel=check_cancel)
    del model
    if quant == "q4_k_m":
        progress("quantize", 0, 1)
        kquant(written, target / name)
        written.unlink()
        progress("quantize", 1, 1)
    (target / "Modelfile").write_text(
        templates.modelfile(name, fmt, eos_token=tokenizer.eos_token, chat=ollama_chat(tokenizer, fmt)),
        encoding="utf-8")
    write_card(target, config, "gguf", tokenizer=tokenizer, base_name=config.base_model, how_to_load=(
        f"llama.cpp: `llama-cli -m {name}` (the prompt format is in the file's tokenizer.chat_template).\n\n"
        f"Ollama: `ollama create {Path(name).stem} -f Modelfile` in this folder, then "
        f"`ollama run {Path(name).stem}`.\n"))


def ollama_chat(tokenizer: Any, fmt: str) -> templates.OllamaChat | None:
    """A chat-format run's Ollama TEMPLATE and stops, from its tokenizer's chat template."""
    if templates.jinja_chat_template(fmt) is not None or not getattr(tokenizer, "chat_template", None):
        return None
    probe = tokenizer("a")["input_ids"]
    adds_bos = bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id

    def render(messages: list[dict], generation: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    return templates.ollama_from_chat_template(render, eos_token=tokenizer.eos_token,
                                               bos_token=tokenizer.bos_token if adds_bos else None)


# -- the whole export -----------------------------------------------------------------------------
def _replaceable(path: Path) -> bool:
    if not path.exists():
        return True
    if path.is_dir():
        return (path / MARKER).is_file() or not any(path.iterdir())
    return False


def run_export(run_dir: Path, out: Path, fmt: str, quant: str | None, base_model: str | None) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if fmt == "gguf":
        quant = quant or DEFAULT_QUANT
        if quant not in QUANTS:
            raise ExportError(f"unknown GGUF quantisation {quant!r}; choose {', '.join(QUANTS)}")
    elif quant:
        raise ExportError(f"--quant applies to the gguf format only, not {fmt}")
    out = out.expanduser().absolute()
    if not _replaceable(out):
        raise ExportError(f"{out}: already exists and is not an earlier export",
                          "choose another target folder, or move that one away")
    config = read_run(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out)
    temp = out.parent / f".{out.name}.partial-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    try:
        if fmt == "adapter":
            export_adapter(config, temp, base_model)
        elif fmt == "merged":
            export_merged(config, temp, base_model)
        else:
            export_gguf(config, temp, base_model, quant or DEFAULT_QUANT)
        (temp / MARKER).write_text(json.dumps({
            "format": fmt, "quant": quant, "run_id": config.run_id, "run_name": config.run_name,
            "base_model": config.base_model, "snapshot_hash": config.snapshot_hash,
            "prompt_format": config.settings.prompt_format, "created_at": time.time()}, indent=2) + "\n",
            encoding="utf-8")
        default_modes(temp)
        check_cancel()
        # The swap is two renames: let it finish. Once the export is in place it is done: a signal
        # after that must not report "cancelled, nothing written", so the handlers stay off.
        ignore_cancel_signals()
        if out.exists():
            out.rename(old)
        temp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"path": str(out), "files": files, "bytes": size}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m studio.export", description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="the training run's folder (runs/<id>/)")
    parser.add_argument("--out", type=Path, required=True, help="the export folder to create")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--quant", choices=QUANTS, default=None, help=f"GGUF tensor type (default {DEFAULT_QUANT})")
    parser.add_argument("--base-model", default=None, help="the base model's folder (default: the run's)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    install_cancel_handlers()  # first: the heavy imports below are cancellable too
    try:
        args = parse_args(argv)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        check_cancel()
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        result = run_export(args.run_dir, args.out, args.format, args.quant, args.base_model)
    except Cancelled:
        emit("error", message="export cancelled; nothing was written", hint="")
        return 1
    except ExportError as exc:
        emit("error", message=str(exc), hint=exc.hint)
        return 1
    except StudioError as exc:
        emit("error", message=str(exc), hint="")
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        emit("error", message=f"{where}{exc.strerror or exc}", hint="check the target folder and free disk space")
        return 1
    except Exception as exc:  # a library failure: one line, the type named, never a traceback on stdout
        emit("error", message=f"export failed: {type(exc).__name__}: {exc}", hint="see the process's stderr")
        import traceback

        traceback.print_exc(file=sys.stderr)
        return 1
    emit("done", **result)
    return 0
