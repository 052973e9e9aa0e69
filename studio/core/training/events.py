"""The training events protocol: one JSON object per line, each with a ``type``.

The job (``python -m studio.train``) writes them to stdout and appends them to
``runs/<id>/events.jsonl``; the Train panel, the CLI and the run store read them. Readers
tail the file from a saved byte offset (:class:`EventTail`): a run with a million events is
never re-read whole, and a half-written last line is left for the next read.

Types and their main fields (every event also has ``time``, seconds since the epoch):
- ``config``: ``run_id``, ``config`` (the whole resolved config), ``versions``, ``device``
- ``progress``: ``step``, ``max_steps``, ``epoch``, ``eta_s``
- ``log``: ``step``, ``loss``, ``learning_rate``, ``grad_norm``, ``tokens_per_s`` (real, non-padding),
  ``gpu_memory_gb`` (peak allocated; null on the CPU)
- ``eval``: ``step``, ``eval_loss``
- ``samples``: ``step``, ``samples`` [{``instruction``, ``input``, ``reference``, ``answer``}]
- ``checkpoint``: ``step``, ``path``
- ``stopped``: ``step``, ``checkpoint`` (the stop leaves a usable adapter)
- ``done``: ``step``, ``adapter``, ``train_loss`` (mean over all steps), ``runtime_s`` (sum of all legs), ``legs``
- ``error``: ``message`` (plain words), ``hint`` (what to change), ``kind`` (e.g. ``oom``)
- ``hardest``: ``count``, ``path`` (per-sample losses written by ``studio.train.hardest``)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG, PROGRESS, LOG, EVAL, SAMPLES, CHECKPOINT = "config", "progress", "log", "eval", "samples", "checkpoint"
STOPPED, DONE, ERROR, HARDEST = "stopped", "done", "error", "hardest"
EVENT_TYPES = (CONFIG, PROGRESS, LOG, EVAL, SAMPLES, CHECKPOINT, STOPPED, DONE, ERROR, HARDEST)
FINAL_TYPES = (STOPPED, DONE, ERROR)


def parse_line(line: str | bytes) -> dict[str, Any] | None:
    """One event from one line, or None for a blank, foreign or broken line (a child's stray print)."""
    try:
        event = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return event
    return None


@dataclass
class EventTail:
    """Reads the events appended to a file since the last read, from a byte offset the caller may save."""

    path: Path
    offset: int = 0

    def read_new(self, max_bytes: int = 8 << 20) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read(max_bytes)
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []                           # nothing complete yet
        complete = chunk[: end + 1]
        self.offset += len(complete)
        events = []
        for line in complete.splitlines():
            event = parse_line(line)
            if event is not None:
                events.append(event)
        return events


def read_all(path: Path) -> list[dict[str, Any]]:
    """Every event in a file (for a finished run's history; live readers use :class:`EventTail`)."""
    tail = EventTail(Path(path))
    events: list[dict[str, Any]] = []
    while batch := tail.read_new():
        events.extend(batch)
    return events


def final_event(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    for event in reversed(events):
        if event.get("type") in FINAL_TYPES:
            return event
    return None
