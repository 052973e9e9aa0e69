"""The Evaluate panel (CONTRACT SKELETON: helper E fills it)."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.ui.jobs import JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.panels import Panel


class EvaluatePanel(Panel):
    title = "Evaluate"
    icon = "evaluate.svg"

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Evaluate"))
