"""The status bar's view of the job runner: what runs, how far it is, and a Cancel button."""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QToolButton, QWidget

from studio.ui.elided_label import ElidedLabel

from studio.ui.jobs import JobRunner

LABEL_WIDTH = 340  # px at most; it shrinks (and elides) in a narrow window


class JobStatus(QWidget):
    """Shows the newest visible job (and how many others run); hidden when nothing runs."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.label = ElidedLabel("")
        self.label.setProperty("role", "muted")
        self.label.setMaximumWidth(LABEL_WIDTH)  # a long title is cut, never pushes the counts out
        self.bar = QProgressBar()
        self.bar.setFixedWidth(110)
        self.bar.setMaximumHeight(14)
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton(text="Cancel", autoRaise=True)
        self.cancel_button.setToolTip("Stop this job; nothing half-done is kept")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        for signal in (runner.job_started, runner.job_progressed, runner.job_finished):
            signal.connect(lambda _job: self.refresh())
        self.refresh()

    def visible_jobs(self) -> list:
        return [job for job in self.runner.active_jobs() if not job.quiet]

    def refresh(self) -> None:
        jobs = self.visible_jobs()
        if not jobs:
            self.hide()
            return
        job = jobs[-1]
        others = f"  (+{len(jobs) - 1} more)" if len(jobs) > 1 else ""
        progress = job.progress
        text = job.title + (f": {progress.message}" if progress and progress.message else "")
        # Cut to a fixed width, so a long title never pushes the counts out of a narrow window.
        full = text + others
        self.label.setToolTip(full)
        self.label.setText(full)
        if progress is not None and progress.total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * (progress.fraction or 0.0)))
        else:
            self.bar.setRange(0, 0)  # busy indicator: the total is unknown
        self.cancel_button.setVisible(job.cancellable)
        self.show()

    def _on_cancel_clicked(self) -> None:
        jobs = self.visible_jobs()
        if jobs:
            jobs[-1].cancel()
