"""One message area for errors, warnings and notices: theme-aware, and it never moves the layout.

Every panel shows its problems the same way: a strip with an icon-like marker, the message,
an optional detail on hover, and a close button. Its height is reserved whether or not a
message shows (no layout jump when one appears), its colours come from the palette (no fixed
light-pink box in a dark theme), and :meth:`clear` — called when the next action succeeds —
makes it go away.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

ERROR, WARNING, INFO = "error", "warning", "info"
_MARKERS = {ERROR: "✖", WARNING: "▲", INFO: "ℹ"}


class MessageArea(QWidget):
    """``show_message(text, level)``; ``clear()``. Emits ``dismissed`` when the user closes it."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None, *, lines: int = 1):
        super().__init__(parent, objectName="MessageArea")
        self._level = ""
        self._full_text = ""
        self._lines = lines
        self.marker = QLabel(objectName="MessageMarker")
        self.text = QLabel(objectName="MessageText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.text.installEventFilter(self)
        self.close_button = QToolButton(objectName="MessageClose", text="✕", autoRaise=True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self._on_close_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.marker, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        # The lines are always reserved: a message appearing never pushes the panel down. One
        # line (the window's) is cut with "…" to the width; the tooltip holds all of it.
        line = self.fontMetrics().lineSpacing()
        self.setFixedHeight(lines * line + 12)
        self.text.setWordWrap(lines > 1)
        self.clear()

    @property
    def level(self) -> str:
        """The level shown now; empty when nothing is shown."""
        return self._level

    def message(self) -> str:
        """The whole message shown now (also when the strip shows it cut)."""
        return self._full_text if self._level else ""

    def show_message(self, text: str, level: str = ERROR, detail: str = "") -> None:
        if level not in _MARKERS:
            raise ValueError(f"unknown message level {level!r}")
        self._level = level
        self.marker.setText(_MARKERS[level])
        self._full_text = text
        self._fit_text()
        self.text.setToolTip(detail or text)
        self.setProperty("level", level)
        self.setToolTip(detail)
        self._show_parts(True)
        self._restyle()

    def show_error(self, text: str, detail: str = "") -> None:
        self.show_message(text, ERROR, detail)

    def clear(self) -> None:
        self._level = ""
        self._full_text = ""
        self.text.setText("")
        self.text.setToolTip("")
        self.setProperty("level", "")
        self._show_parts(False)
        self._restyle()

    def _fit_text(self) -> None:
        if self._lines > 1:
            self.text.setText(self._full_text)
            return
        flat = " ".join(self._full_text.split())
        width = max(40, self.text.width())
        self.text.setText(self.text.fontMetrics().elidedText(flat, Qt.TextElideMode.ElideRight, width))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        # The label learns its width only once the layout has placed it: cut the text then.
        if watched is self.text and event.type() == QEvent.Type.Resize and self._level and self._lines == 1:
            self._fit_text()
        return super().eventFilter(watched, event)

    def _show_parts(self, visible: bool) -> None:
        # The widget itself stays: hiding it would give its height back and move the layout.
        for part in (self.marker, self.text, self.close_button):
            part.setVisible(visible)

    def _restyle(self) -> None:
        style = self.style()
        style.unpolish(self)
        style.polish(self)
        self.update()

    def _on_close_clicked(self) -> None:
        self.clear()
        self.dismissed.emit()

    def is_shown(self) -> bool:
        return bool(self._level)
