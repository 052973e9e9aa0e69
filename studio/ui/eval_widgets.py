"""Small pieces the Evaluate pages share: hinted views, actions with their key in the tooltip, dialogs tests replace."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QWidget,
)

ID_ROLE = Qt.ItemDataRole.UserRole


def key_text(shortcut: str | QKeySequence | QKeySequence.StandardKey) -> str:
    return QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)


def make_action(owner: QWidget, text: str, shortcut, slot: Callable, tip: str, *,
                context: Qt.ShortcutContext = Qt.ShortcutContext.WidgetWithChildrenShortcut) -> QAction:
    """An action on ``owner`` whose key works while the focus is inside it; the tooltip names the key."""
    action = QAction(text, owner)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
        tip = f"{tip} ({key_text(shortcut)})"
    action.setToolTip(tip)
    action.setShortcutContext(context)
    action.triggered.connect(lambda _checked=False: slot())
    owner.addAction(action)
    return action


def tool_button(action: QAction) -> QToolButton:
    button = QToolButton()
    button.setDefaultAction(action)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    return button


def heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setProperty("role", "heading")
    return label


def muted(text: str = "", *, wrap: bool = True) -> QLabel:
    label = QLabel(text, wordWrap=wrap)
    label.setProperty("role", "muted")
    return label


def read_only_table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().lineSpacing() + 8)
    table.setWordWrap(False)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setHighlightSections(False)
    return table


def item(text: object, data: object = None, *, tip: str | None = None, align_right: bool = False) -> QTableWidgetItem:
    shown = "" if text is None else str(text)
    cell = QTableWidgetItem(" ".join(shown.split()) if len(shown) < 2000 else " ".join(shown[:2000].split()) + "…")
    if data is not None:
        cell.setData(ID_ROLE, data)
    cell.setToolTip(tip if tip is not None else (shown[:1200] if len(shown) > 60 else ""))
    if align_right:
        cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return cell


class Dialogs:
    """The questions a page asks the user; tests replace the attributes with answers."""

    def __init__(self, parent: QWidget):
        self.parent = parent

    def open_file(self, title: str, filters: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, "", filters)
        return path

    def save_file(self, title: str, suggested: str, filters: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self.parent, title, suggested, filters)
        return path

    def text(self, title: str, label: str, value: str = "") -> str | None:
        text, ok = QInputDialog.getText(self.parent, title, label, QLineEdit.EchoMode.Normal, value)
        return text if ok else None

    def confirm(self, title: str, text: str, ok: str = "OK") -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, self.parent)
        yes = box.addButton(ok, QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(yes)
        box.exec()
        return box.clickedButton() is yes
