"""What the Train panel knows about one run, built from its events: numpy series and plain state.

Ingestion is the cheap half of the live view: each event appends to growable numpy buffers
(amortised O(1), no Qt calls), so a job that logs a thousand times a second costs the GUI
thread microseconds per event; the plots copy the buffers into their curves on a timer
(:mod:`studio.ui.train_plots`). The same class replays a finished run's ``events.jsonl`` after
an app restart, so a live run and a run from history look the same.
"""
from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.wording import format_duration
from studio.core.training import events as ev

SMOOTHING = 0.9  # exponential moving average weight of the smoothed loss (TensorBoard's default is 0.6..0.99)
LOG_LINES = 2000  # lines kept in memory; older lines are dropped
LOG_PER_DRAW = 200  # the most lines one redraw appends to the log pane
SERIES = ("loss", "loss_smooth", "eval_loss", "learning_rate", "grad_norm", "tokens_per_s", "gpu_memory_gb")


class Series:
    """x/y float arrays that grow by doubling; ``x``/``y`` are views of the filled part."""

    __slots__ = ("_x", "_y", "size")

    def __init__(self, capacity: int = 256):
        self._x = np.empty(capacity, dtype=np.float64)
        self._y = np.empty(capacity, dtype=np.float64)
        self.size = 0

    def append(self, x: float, y: float) -> None:
        if self.size == self._x.shape[0]:
            self._x = np.concatenate([self._x, np.empty_like(self._x)])
            self._y = np.concatenate([self._y, np.empty_like(self._y)])
        self._x[self.size] = x
        self._y[self.size] = y
        self.size += 1

    def truncate_from(self, x: float) -> None:
        """Forget points at or after ``x`` (a resumed run re-logs from its checkpoint's step)."""
        if self.size and self._x[self.size - 1] >= x:
            self.size = int(np.searchsorted(self._x[: self.size], x, side="left"))

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.size]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.size]

    def __len__(self) -> int:
        return self.size


@dataclass
class LiveRun:
    """A run's state from its events, in arrival order; :meth:`ingest` is all the GUI thread does per event."""

    series: dict[str, Series] = field(default_factory=lambda: {name: Series() for name in SERIES})
    step: int = 0
    max_steps: int | None = None
    epoch: float | None = None
    eta_s: float | None = None
    device: str = ""
    run_id: Any = None
    config: dict[str, Any] | None = None
    eval_samples: int | None = None  # the job's validation split size (config event); 0: samples are training prompts
    samples: list[dict[str, Any]] = field(default_factory=list)  # [{"step", "samples": [...]}], oldest first
    final: dict[str, Any] | None = None  # the last stopped/done/error event
    errors: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    log_count: int = 0  # lines ever noted: a view that showed n of them appends the last log_count - n
    events_seen: int = 0
    version: int = 0  # bumped by every ingest: the timer redraws only when it moved
    _ema: float | None = None
    _ema_weight: float = 0.0

    def ingest(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self._one(event)
        if events:
            self.version += 1

    def _one(self, event: dict[str, Any]) -> None:
        self.events_seen += 1
        kind = event.get("type")
        if kind == ev.LOG:
            step = _number(event.get("step"))
            if step is None:
                return
            self.step = max(self.step, int(step))
            loss = _number(event.get("loss"))
            if loss is not None:
                self._add_loss(step, loss)
            for name in ("learning_rate", "grad_norm", "tokens_per_s", "gpu_memory_gb"):
                value = _number(event.get(name))
                if value is not None:
                    self._add_point(name, step, value)
            self._note(_log_line(event))
        elif kind == ev.PROGRESS:
            step = _number(event.get("step"))
            if step is not None:
                self.step = int(step)
            self.max_steps = _int_or_none(event.get("max_steps"), self.max_steps)
            self.epoch = _number(event.get("epoch")) if event.get("epoch") is not None else self.epoch
            self.eta_s = _number(event.get("eta_s"))
        elif kind == ev.EVAL:
            step, value = _number(event.get("step")), _number(event.get("eval_loss"))
            if step is not None and value is not None:
                self._add_point("eval_loss", step, value)
                self._note(f"step {int(step)}: eval loss {value:.4f}")
        elif kind == ev.SAMPLES:
            answers = event.get("samples") or []
            self.samples.append({"step": event.get("step"), "samples": list(answers)})
            self._note(f"step {event.get('step')}: {len(answers)} sample answers")
        elif kind == ev.CONFIG:
            self._on_config(event)
        elif kind == ev.CHECKPOINT:
            step = _int_or_none(event.get("step"), None)
            if step is not None:
                self.checkpoints.append(step)
            self._note(f"step {event.get('step')}: checkpoint {event.get('path', '')}")
        elif kind in ev.FINAL_TYPES:
            self.final = event
            step = _int_or_none(event.get("step"), None)
            if step is not None:
                self.step = max(self.step, step)
            if kind == ev.ERROR:
                self.errors.append(event)
                hint = f" — {event['hint']}" if event.get("hint") else ""
                self._note(f"error: {event.get('message', 'the job failed')}{hint}")
            elif kind == ev.STOPPED:
                self._note(f"stopped at step {event.get('step')}; checkpoint {event.get('checkpoint', '')}")
            else:
                loss = _number(event.get("train_loss"))
                self._note(f"done at step {event.get('step')}" + (f", train loss {loss:.4f}" if loss is not None
                                                                       else ""))
        elif kind == ev.HARDEST:
            self._note(f"hardest samples scored: {event.get('count')}")

    def _note(self, line: str) -> None:
        self.log.append(line)
        self.log_count += 1

    def new_log_lines(self, shown: int, limit: int = LOG_PER_DRAW) -> list[str]:
        """The lines noted after the first ``shown``: at most ``limit``, the newest, after a note of how many were skipped.

        A burst of thousands of events is unreadable as lines anyway, and appending them all
        to the log pane in one go was the longest part of a redraw (~40 ms for 2,000).
        """
        fresh = self.log_count - shown
        if fresh <= 0:
            return []
        if fresh <= limit:
            return list(itertools.islice(reversed(self.log), fresh))[::-1]
        return [f"… {fresh - limit:,} lines not shown"] + list(itertools.islice(reversed(self.log), limit))[::-1]

    def _on_config(self, event: dict[str, Any]) -> None:
        self.run_id = event.get("run_id", self.run_id)
        self.config = event.get("config") or self.config
        self.device = str(event.get("device") or self.device)
        self.eval_samples = _int_or_none(event.get("eval_samples"), self.eval_samples)
        if self.final is not None and self.final.get("type") != ev.DONE:
            self.final = None  # a resumed run: running again
        self._note(f"config: run {self.run_id} on {self.device or 'an unknown device'}")

    def _add_loss(self, step: float, loss: float) -> None:
        raw, smooth = self.series["loss"], self.series["loss_smooth"]
        if raw.size and raw.x[-1] >= step:
            # A run resumed from an older checkpoint logs those steps again: the curve keeps one
            # point per step (the newest), and the average is replayed over what is kept.
            raw.truncate_from(step)
            smooth.size = 0
            self._ema, self._ema_weight = None, 0.0
            for x, y in zip(raw.x.tolist(), raw.y.tolist()):
                smooth.append(x, self._smooth(y))
        raw.append(step, loss)
        smooth.append(step, self._smooth(loss))

    def _add_point(self, name: str, step: float, value: float) -> None:
        series = self.series[name]
        series.truncate_from(step)
        series.append(step, value)

    def _smooth(self, value: float) -> float:
        """A debiased exponential moving average (the first points are not pulled toward zero)."""
        self._ema = value * (1 - SMOOTHING) + (self._ema if self._ema is not None else 0.0) * SMOOTHING
        self._ema_weight = self._ema_weight * SMOOTHING + (1 - SMOOTHING)
        return self._ema / self._ema_weight

    # -- what the panel shows -------------------------------------------------------------------
    @property
    def status(self) -> str:
        if self.final is None:
            return "running" if self.events_seen else "created"
        return {ev.DONE: "done", ev.STOPPED: "stopped", ev.ERROR: "failed"}[self.final["type"]]

    @property
    def samples_source(self) -> str:
        """Where the sample prompts come from: with no validation split the job samples training prompts."""
        return "training prompts (no validation split)" if self.eval_samples == 0 else "held-out prompts"

    def progress_text(self) -> str:
        total = f" / {self.max_steps}" if self.max_steps else ""
        parts = [f"step {self.step}{total}"]
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch:.2f}")
        if self.final is None and self.eta_s is not None:
            parts.append(f"ETA {format_duration(self.eta_s)}")
        loss = self.series["loss_smooth"]
        if loss.size:
            parts.append(f"loss {loss.y[-1]:.4f} (smoothed)")
        speed = self.series["tokens_per_s"]
        if speed.size:
            parts.append(f"{speed.y[-1]:,.0f} tokens/s")
        return " · ".join(parts)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _int_or_none(value: Any, default: int | None) -> int | None:
    number = _number(value)
    return int(number) if number is not None else default


def _log_line(event: dict[str, Any]) -> str:
    parts = [f"step {event.get('step')}"]
    for name, label, fmt in (("loss", "loss", ".4f"), ("learning_rate", "lr", ".3g"), ("grad_norm", "grad", ".3f"),
                             ("tokens_per_s", "tok/s", ",.0f"), ("gpu_memory_gb", "GPU", ".2f")):
        value = _number(event.get(name))
        if value is not None:
            parts.append(f"{label} {value:{fmt}}" + (" GB" if name == "gpu_memory_gb" else ""))
    return " · ".join(parts)
