"""Writing a dataset for training: the text formats plus Hugging Face ``datasets`` and parquet.

A validation split, when asked for, is drawn with a seeded shuffle so that the same
snapshot, fraction and seed always give the same two halves. Text formats and parquet get
two files (``<stem>-train<ext>``, ``<stem>-validation<ext>``); ``hf`` gets one
``DatasetDict`` folder. ``datasets`` and ``pyarrow`` are imported only here, when used.
"""
from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from studio.core import formats
from studio.core.errors import StudioError
from studio.core.formats import Record

HF, PARQUET = "hf", "parquet"
EXPORT_FORMATS = (*formats.SAMPLE_FORMATS, HF, PARQUET)
TRAIN, VALIDATION = "train", "validation"


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


def _columns(records: Sequence[Record]) -> dict[str, list[str]]:
    return {
        "instruction": [r.instruction for r in records],
        "input": [r.input for r in records],
        "output": [r.output for r in records],
    }


def _part_path(path: Path, part: str) -> Path:
    return path.with_name(f"{path.stem}-{part}{path.suffix}")


def _write_parquet(path: Path, records: Sequence[Record]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table(_columns(records)), temp)
    temp.replace(path)


def _write_hf(path: Path, parts: dict[str, list[Record]]) -> None:
    from datasets import Dataset, DatasetDict

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if len(parts) == 1:
            Dataset.from_dict(_columns(parts[TRAIN])).save_to_disk(str(staging / "data"))
        else:
            DatasetDict({k: Dataset.from_dict(_columns(v)) for k, v in parts.items()}).save_to_disk(str(staging / "data"))
        if path.exists():
            shutil.rmtree(path)
        (staging / "data").replace(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export(path: Path | str, records: Sequence[Record], fmt: str, *, val_fraction: float = 0.0, seed: int = 0) -> dict[str, Path]:
    """Write ``records`` as ``fmt``; returns the path of each part written ({"train": ...})."""
    path = Path(path)
    if fmt not in EXPORT_FORMATS:
        raise StudioError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.")
    parts = split(records, val_fraction, seed)
    if fmt == HF:
        _write_hf(path, parts)
        return {name: path for name in parts}
    written = {}
    for name, part in parts.items():
        target = path if len(parts) == 1 else _part_path(path, name)
        if fmt == PARQUET:
            _write_parquet(target, part)
        else:
            formats.write_samples(target, part, fmt)
        written[name] = target
    return written
