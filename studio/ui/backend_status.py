"""The Generate panel's box for a backend's own state (a batch at the provider).

It shows the backend's one-line :class:`~studio.core.generation.events.BackendStatus` text
and, when the state carries request counts, the batch's progress as a bar. The same box shows
a past run's stored ``backend_status``, so a run waiting at the provider is visible after a
restart too. Live calls have no such state: the box stays hidden.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget


def holds_work(state: Mapping[str, Any]) -> bool:
    """Whether the provider still holds requests of the run: ``open`` (or ``open_jobs`` > 0) in the state."""
    return bool(state.get("open", state.get("open_jobs")))


def batch_counts(state: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(total, completed, failed) of the batch the state describes; None when it has no counts.

    The state's own ``total``/``completed``/``failed`` (the openai-batch plugin: the current
    batch), else its ``counts``, else the sum over a list of ``jobs`` with ``counts``. A plugin's
    counts that are no numbers ("many", a list) are unknown: None, never an exception in a GUI slot.
    """
    try:
        counts = _counts(state)
    except (TypeError, ValueError, OverflowError):
        return None
    if counts is not None and not all(0 <= n < 2**31 for n in counts):  # what a QProgressBar can show
        return None
    return counts


def _counts(state: Mapping[str, Any]) -> tuple[int, int, int] | None:
    if state.get("total"):
        return int(state["total"]), int(state.get("completed") or 0), int(state.get("failed") or 0)
    jobs = state.get("jobs")
    sources = [job.get("counts") or {} for job in jobs if isinstance(job, Mapping)] if isinstance(jobs, list) else []
    if not sources and isinstance(state.get("counts"), Mapping):
        sources = [state["counts"]]
    sources = [c for c in sources if isinstance(c, Mapping) and c.get("total")]
    if not sources:
        return None
    return (sum(int(c.get("total") or 0) for c in sources), sum(int(c.get("completed") or 0) for c in sources),
            sum(int(c.get("failed") or 0) for c in sources))


class BackendStatusBox(QGroupBox):
    """Title, one selectable line, and a bar of the batch's done (completed + failed) of total requests."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Batch", parent)
        self.text = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.bar = QProgressBar(format="%v of %m requests done")  # done: answered or failed, as the provider counts
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.bar)
        self.clear()

    def clear(self) -> None:
        self.text.setText("")
        self.bar.hide()
        self.hide()

    def show_status(self, text: str, state: Mapping[str, Any] | None = None, *, title: str = "Batch") -> None:
        """Show one status line (and its counts); an empty text hides the box."""
        if not text:
            self.clear()
            return
        self.setTitle(title)
        self.text.setText(text)
        counts = batch_counts(state or {})
        if counts is None:
            self.bar.hide()
        else:
            total, completed, failed = counts
            self.bar.setMaximum(max(1, total))
            self.bar.setValue(min(total, completed + failed))
            self.bar.setToolTip(f"{completed:,} answered, {failed:,} failed of {total:,} in the provider's jobs")
            self.bar.show()
        self.show()
