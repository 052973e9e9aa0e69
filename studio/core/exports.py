"""Writing a dataset for training: the text formats plus Hugging Face ``datasets`` and parquet.

Each way of writing is an :class:`Exporter` registered in ``registry.DATASET_EXPORTERS``
(the built-ins exactly as a plugin's will be), so :func:`export` and every chooser name no
exporter themselves. A validation split, when asked for, is drawn with a seeded shuffle so
that the same snapshot, fraction and seed always give the same two halves. File exporters
write two files (``<stem>-train<ext>``, ``<stem>-validation<ext>``), all or none of them;
``hf`` writes one ``DatasetDict`` folder. ``datasets`` and ``pyarrow`` are imported only
when used.
"""
from __future__ import annotations

import importlib
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from studio.core import formats, registry
from studio.core.errors import StudioError
from studio.core.formats import FileWriteError, Record, os_reason
from studio.core.registry import RegistryError

HF, PARQUET = "hf", "parquet"
TRAIN, VALIDATION = "train", "validation"

Parts = dict[str, Sequence[Record]]


@dataclass(frozen=True)
class Exporter:
    """One way of writing a dataset. ``key`` must equal its registry key.

    ``export(path, parts)`` writes ``{"train": records, "validation": records}`` (validation
    only when split) atomically and returns the path of each part written.
    """

    key: str
    title: str
    export: Callable[[Path, Parts], dict[str, Path]]
    extensions: tuple[str, ...] = ()  # a file exporter's suffixes; the first is the one a save dialog suggests
    writes_folder: bool = False  # the path is a folder (ask for a directory, not a file name)


def split(records: Sequence[Record], val_fraction: float, seed: int = 0) -> dict[str, list[Record]]:
    """Train and validation parts; order inside each part follows the input order."""
    if not 0 <= val_fraction < 1:
        raise StudioError("The validation fraction must be at least 0 and below 1.")
    if val_fraction == 0:
        return {TRAIN: list(records)}
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(records) * val_fraction)) if len(records) > 1 else 0
    chosen = set(order[:n_val])
    return {
        TRAIN: [r for i, r in enumerate(records) if i not in chosen],
        VALIDATION: [r for i, r in enumerate(records) if i in chosen],
    }


def part_path(path: Path, part: str) -> Path:
    """Where a part of a split file export goes: ``data.json`` -> ``data-train.json``."""
    return path.with_name(f"{path.stem}-{part}{path.suffix}")


def write_file_parts(path: Path, parts: Parts, write_one: Callable[[Path, Sequence[Record]], None]) -> dict[str, Path]:
    """Write each part with ``write_one`` beside its target, then rename them all into place.

    So a failure while writing any part (disk full, say) leaves no part behind and every file
    that was there before untouched. ``write_one(temp_path, records)`` must only write.
    """
    targets = {name: path if len(parts) == 1 else part_path(path, name) for name in parts}
    staged: dict[str, Path] = {}
    try:
        for name, records in parts.items():
            target = targets[name]
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            os.close(handle)
            staged[name] = Path(temp_name)
            write_one(staged[name], records)
        for name, temp in staged.items():
            os.chmod(temp, formats.NEW_FILE_MODE)
            os.replace(temp, targets[name])
    except FileWriteError as exc:  # raised by write_one about a temporary name: name the user's path
        raise FileWriteError(path, exc.reason) from exc
    except OSError as exc:
        raise FileWriteError(path, os_reason(exc)) from exc
    finally:
        for temp in staged.values():
            temp.unlink(missing_ok=True)
    return targets


def format_exporter(format_key: str, title: str, extensions: tuple[str, ...] | None = None) -> Exporter:
    """An exporter writing a registered sample format (built-in or a plugin's), one file per part.

    ``extensions`` default to the format's; pass them when the format is not registered yet.
    """

    def export(path: Path, parts: Parts) -> dict[str, Path]:
        return write_file_parts(path, parts, lambda target, records: formats.write_samples(target, records, format_key))

    if extensions is None:
        extensions = formats.get_format(format_key).extensions
    return Exporter(key=format_key, title=title, export=export, extensions=extensions)


def _columns(records: Sequence[Record]) -> dict[str, list[str]]:
    return {
        "instruction": [r.instruction for r in records],
        "input": [r.input for r in records],
        "output": [r.output for r in records],
    }


def _import_optional(module: str, exporter: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise StudioError(
            f"The {exporter} export needs the {module.split('.')[0]} package: "
            f"pip install 'distill-studio[export]'."
        ) from None


def _write_parquet(path: Path, records: Sequence[Record]) -> None:
    pa = _import_optional("pyarrow", PARQUET)
    pq = _import_optional("pyarrow.parquet", PARQUET)
    pq.write_table(pa.table(_columns(records)), str(path))


def _export_parquet(path: Path, parts: Parts) -> dict[str, Path]:
    return write_file_parts(path, parts, _write_parquet)


def _export_hf(path: Path, parts: Parts) -> dict[str, Path]:
    """A ``DatasetDict`` (or, unsplit, a ``Dataset``) folder, built aside and swapped in whole."""
    datasets = _import_optional("datasets", HF)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as exc:
        raise FileWriteError(path, os_reason(exc)) from exc
    try:
        if len(parts) == 1:
            data = datasets.Dataset.from_dict(_columns(parts[TRAIN]))
        else:
            data = datasets.DatasetDict({k: datasets.Dataset.from_dict(_columns(v)) for k, v in parts.items()})
        data.save_to_disk(str(staging / "data"))
        previous = staging / "previous"
        if path.exists():
            path.replace(previous)  # put back if the new folder cannot be moved in
        try:
            (staging / "data").replace(path)
        except OSError:
            if previous.exists():
                previous.replace(path)
            raise
    except OSError as exc:
        raise FileWriteError(path, os_reason(exc)) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: path for name in parts}


ALPACA_EXPORTER = format_exporter(formats.ALPACA, "Alpaca JSON")
JSONL_EXPORTER = format_exporter(formats.JSONL, "Prompt/completion JSONL")
MESSAGES_EXPORTER = format_exporter(formats.MESSAGES, "Chat messages JSONL")
HF_EXPORTER = Exporter(key=HF, title="Hugging Face dataset folder", export=_export_hf, writes_folder=True)
PARQUET_EXPORTER = Exporter(key=PARQUET, title="Parquet", export=_export_parquet, extensions=(".parquet",))


# -- the registry's exporters -----------------------------------------------------------------
def export_formats() -> tuple[str, ...]:
    """Keys of the registered exporters, for choosers (nothing is imported to list them)."""
    return tuple(registry.DATASET_EXPORTERS.keys())


def __getattr__(name: str) -> tuple[str, ...]:
    # The old constant, computed on each use so an exporter registered later shows up.
    if name == "EXPORT_FORMATS":
        return export_formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_exporter(key: str) -> Exporter:
    """The registered exporter ``key``; a StudioError naming the known ones if there is none.

    ``key`` may also be a dataset format that writes samples and is no exporter (a plugin's CSV):
    File > Export samples offers those, so ``data export --format`` does too.
    """
    if key not in registry.DATASET_EXPORTERS and key in registry.DATASET_FORMATS:
        dataset_format = formats.get_format(key)
        if formats.SAMPLES not in dataset_format.writes:
            known = dict.fromkeys(export_formats() + formats.sample_formats())
            raise StudioError(f"The {key} format writes seed tasks only; export samples as one of {', '.join(known)}.")
        return format_exporter(key, dataset_format.title, dataset_format.extensions)
    if key not in registry.DATASET_EXPORTERS:
        why = registry.DATASET_EXPORTERS.unavailable(key) or registry.DATASET_FORMATS.unavailable(key)
        if why:  # a disabled plugin's format or exporter
            raise StudioError(f"The export format {key!r} is not available: {why}.")
        raise StudioError(f"Unknown export format {key!r}; use one of {', '.join(export_formats())}.")
    return registry.DATASET_EXPORTERS.load_instance(key, Exporter)


def exporter_for_path(path: Path | str) -> str | None:
    """The first exporter whose extensions include the file's (None if none does)."""
    suffix = Path(path).suffix.lower()
    for key in registry.DATASET_EXPORTERS.keys():
        try:
            if suffix in get_exporter(key).extensions:
                return key
        except RegistryError:  # a broken plugin cannot be a default; naming it explicitly reports why
            continue
    return None


def export(path: Path | str, records: Sequence[Record], fmt: str, *, val_fraction: float = 0.0, seed: int = 0) -> dict[str, Path]:
    """Write ``records`` with exporter ``fmt`` (see :func:`get_exporter`); returns the path of each part
    written ({"train": ...})."""
    exporter = get_exporter(fmt)
    parts = split(records, val_fraction, seed)
    if fmt not in registry.DATASET_EXPORTERS:  # a format's writer: write_samples guards the plugin
        return exporter.export(Path(path), parts)
    with registry.DATASET_EXPORTERS.guard(fmt, f"writing {path}"):  # a plugin's bug is reported as its own
        return exporter.export(Path(path), parts)
