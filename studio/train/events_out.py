"""Where the job's events go: one JSON line to stdout and to ``events.jsonl``, from global rank 0 only.

Kept free of torch so the error path (a bad config, a missing model) reports before anything
heavy is imported. The file is opened in append mode and flushed per line, so a reader tailing
it (``EventTail``) only ever sees whole lines and a resumed run continues the same file.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from studio.core.training.run_config import EVENTS_FILE


def global_rank() -> int:
    """This process's rank under torchrun / accelerate launch (0 when run alone)."""
    for name in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                pass
    return 0


class EventWriter:
    """Writes events on rank 0; on other ranks every call is a no-op."""

    def __init__(self, run_dir: Path | None = None, *, stream: TextIO | None = None,
                 rank: int | None = None) -> None:
        self.is_main = (global_rank() if rank is None else rank) == 0
        self.stream = stream or sys.stdout
        self._file: TextIO | None = None
        if run_dir is not None:
            self.attach(run_dir)

    def attach(self, run_dir: Path) -> None:
        """Start appending to ``run_dir/events.jsonl`` (once the run dir is known)."""
        if not self.is_main or self._file is not None:
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(run_dir / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - held for the run

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type, "time": time.time(), **fields}
        if not self.is_main:
            return event
        line = json.dumps(event, ensure_ascii=False, default=_jsonable) + "\n"
        if self._file is not None:
            self._file.write(line)
            self._file.flush()
        try:
            self.stream.write(line)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass                            # the parent went away; the file still has everything
        return event

    def error(self, message: str, hint: str = "", kind: str = "error") -> dict[str, Any]:
        return self.emit("error", message=message, hint=hint, kind=kind)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)
