"""A list or table that says what will appear in it while it is empty (one look for every panel)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget


class HintedView(QStackedWidget):
    """``view`` when it has rows; a muted, centred hint (``show_hint(True, text)``) when it has none."""

    def __init__(self, view: QWidget, hint: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = view
        self.hint = QLabel(hint, wordWrap=True, alignment=Qt.AlignmentFlag.AlignCenter)
        self.hint.setProperty("role", "muted")
        self.hint.setMargin(16)
        self.addWidget(self.hint)
        self.addWidget(view)
        self.show_hint(True)

    def show_hint(self, empty: bool, text: str | None = None) -> None:
        if text is not None:
            self.hint.setText(text)
        self.setCurrentIndex(0 if empty else 1)

    def hint_shown(self) -> bool:
        return self.currentIndex() == 0
