"""The CSV dataset format: a header row ``instruction,input,output``, then one record per row."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from studio.core.errors import FormatError
from studio.core.formats import DatasetFormat, Record, atomic_write_text

COLUMNS = ("instruction", "input", "output")


def sniff(path: Path, text: str) -> bool:
    """A .csv file is ours (detection calls this for every file; it must not raise)."""
    return path.suffix.lower() == ".csv"


def read_samples(path: Path, text: str) -> list[Record]:
    """Every row, checked first: a problem raises FormatError naming the file and line, so imports are all or nothing."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [name for name in ("instruction", "output") if name not in (reader.fieldnames or [])]
    if missing:
        raise FormatError(path, f"no {' or '.join(missing)} column; the first row must be {','.join(COLUMNS)}", line=1)
    records = []
    try:
        for row in reader:
            instruction = (row["instruction"] or "").strip()
            if not instruction:
                raise FormatError(path, "the instruction is empty", line=reader.line_num)
            records.append(Record(instruction, row.get("input") or "", row["output"] or ""))
    except csv.Error as exc:
        raise FormatError(path, f"not valid CSV ({exc})", line=reader.line_num) from None
    if not records:
        raise FormatError(path, "the file holds no records")
    return records


def write_samples(path: Path, records: list[Record]) -> None:
    """Write the header and the records to a temporary file, then rename it over ``path``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(records)
    atomic_write_text(path, buffer.getvalue())


CSV_FORMAT = DatasetFormat(
    key="csv",  # must equal the manifest's key
    title="CSV",
    extensions=(".csv",),
    sniff=sniff,
    read_samples=read_samples,
    write_samples=write_samples,
    shape="instruction,input,output columns",
)
