"""One message area for errors, warnings and notices: theme-aware, and it never moves the layout.

Every panel shows its problems the same way: a strip with an icon-like marker, the message,
an optional detail on hover, and a close button. Its height is reserved whether or not a
message shows (no layout jump when one appears), its colours come from the palette (no fixed
light-pink box in a dark theme), and :meth:`clear` — called when the next action succeeds —
makes it go away.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from studio.ui.elided_label import ElidedLabel

ERROR, WARNING, INFO = "error", "warning", "info"
_MARKERS = {ERROR: "✖", WARNING: "▲", INFO: "ℹ"}


class MessageArea(QWidget):
    """``show_message(text, level)``; ``clear()``. Emits ``dismissed`` when the user closes it."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, objectName="MessageArea")
        self._level = ""
        self._full_text = ""
        self.marker = QLabel(objectName="MessageMarker")
        self.text = ElidedLabel("")
        self.text.setObjectName("MessageText")
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.action_button = QToolButton(objectName="MessageAction")  # e.g. "Show plugins"; hidden without one
        self.action_button.clicked.connect(self._on_action_clicked)
        self._on_action: Callable[[], object] | None = None
        self.close_button = QToolButton(objectName="MessageClose", text="✕", autoRaise=True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self._on_close_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.marker, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        # The line is always reserved: a message appearing never pushes the panel down. A long
        # message is cut with "…" to the width; the tooltip holds all of it.
        self.setFixedHeight(self.fontMetrics().lineSpacing() + 12)
        self.clear()

    @property
    def level(self) -> str:
        """The level shown now; empty when nothing is shown."""
        return self._level

    def message(self) -> str:
        """The whole message shown now (also when the strip shows it cut)."""
        return self._full_text if self._level else ""

    def show_message(self, text: str, level: str = ERROR, detail: str = "",
                     action: tuple[str, Callable[[], object]] | None = None) -> None:
        """Show ``text``; ``action`` (label, callback) adds one button that does the obvious next step."""
        if level not in _MARKERS:
            raise ValueError(f"unknown message level {level!r}")
        self._level = level
        self.marker.setText(_MARKERS[level])
        self._full_text = text
        self.text.setText(" ".join(text.split()))  # one line: newlines would be drawn as breaks
        self.text.setToolTip(detail or text)
        self.setProperty("level", level)
        self.setToolTip(detail)
        self._show_parts(True)
        self._on_action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self._restyle()

    def show_error(self, text: str, detail: str = "") -> None:
        self.show_message(text, ERROR, detail)

    def clear(self) -> None:
        self._level = ""
        self._full_text = ""
        self.text.setText("")
        self.text.setToolTip("")
        self.setProperty("level", "")
        self._on_action = None
        self.action_button.setVisible(False)
        self._show_parts(False)
        self._restyle()

    def _show_parts(self, visible: bool) -> None:
        # The widget itself stays: hiding it would give its height back and move the layout.
        for part in (self.marker, self.text, self.close_button):
            part.setVisible(visible)

    def _restyle(self) -> None:
        style = self.style()
        style.unpolish(self)
        style.polish(self)
        self.update()

    def _on_action_clicked(self) -> None:
        if self._on_action is not None:
            self._on_action()

    def action_text(self) -> str:
        """The action button's label ("" when the message has none)."""
        return self.action_button.text() if self._on_action is not None else ""

    def _on_close_clicked(self) -> None:
        self.clear()
        self.dismissed.emit()

    def is_shown(self) -> bool:
        return bool(self._level)
