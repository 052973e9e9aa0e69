"""Help ▸ Plugins: every plugin found, its state and errors, and enable/disable (twin of ``plugins list``).

The dialog shows the records :func:`~studio.core.plugins.discovery.loaded_plugins` already
made: it reads no manifest, imports no plugin code and does no I/O beyond writing the user's
choice (``settings.set_enabled``). A choice takes effect at the next start, because code that
was imported cannot be unloaded; the banner says so and offers **Restart now**.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QModelIndex, QObject, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QKeyEvent, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QFrame, QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit,
    QPushButton, QSplitter, QStackedWidget, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from studio.core import registry
from studio.core.plugins import settings
from studio.core.plugins.model import DISABLED, ENABLED, ERROR, PluginRecord
from studio.ui import theme

FAILED_ON_USE = "failed"  # not a discovery state: enabled, but its code failed at the registry boundary
BADGE_TEXT = {ENABLED: "Enabled", DISABLED: "Disabled", ERROR: "Error", FAILED_ON_USE: "Failed on use"}
RESTART_BANNER = "Changes take effect the next time Distill Studio starts."
SAFE_MODE_NOTE = (f"Safe mode: {settings.SAFE_MODE_ENV} is set, so no plugin is loaded in this session; "
                  "the checkboxes say what loads at the next normal start.")
EMPTY_TEXT = ("No plugins are installed.\n\nA plugin adds dataset formats, sample filters, teachers, trainers, "
              "exporters, judges or panels without changing the app. plugins/README.md shows the smallest "
              "working one; install it with\n\n    distill-studio plugins install ./my-plugin")
COLUMNS = ("Plugin", "Version", "State", "Contributes", "Enabled")
NAME, VERSION, STATE, CONTRIBUTES, ENABLED_COLUMN = range(len(COLUMNS))
_STATE_ROLE = Qt.ItemDataRole.UserRole + 1
# Badge colours (text, background) per look; green is not in the theme's palette, so it lives here.
_GREEN = {"light": ("#2e7d32", "#e3f3e4"), "dark": ("#7fd08a", "#1f3324")}


def display_state(record: PluginRecord) -> str:
    """The badge a record gets: its discovery state, or "failed on use" for an enabled one that failed."""
    if record.state == ENABLED and record.runtime_errors:
        return FAILED_ON_USE
    return record.state


def contributions_summary(record: PluginRecord) -> str:
    """One line per extension point, as the table shows it: "dataset format: csv, tsv"."""
    by_point: dict[str, list[str]] = {}
    for c in record.contributions:
        by_point.setdefault(c.point, []).append(c.key)
    return "; ".join(f"{_point_name(point)}: {', '.join(keys)}" for point, keys in by_point.items())


def problem_text(record: PluginRecord) -> str:
    """The error and the runtime errors of a record, as one selectable (and copyable) text."""
    return "\n\n".join(part for part in (record.error, *record.runtime_errors) if part)


def problem_notice(records: Sequence[PluginRecord], disabled: set[str] | None = None) -> str:
    """The window's one notice: "1 plugin could not be loaded: broken-manifest — Help ▸ Plugins" ("" if none).

    Plugins the user turned off are left out: they asked not to hear from them.
    """
    off = settings.disabled_plugins() if disabled is None else disabled
    broken = [r.name for r in records if r.state == ERROR and r.name not in off]
    failed = [r.name for r in records if r.state != ERROR and r.runtime_errors and r.name not in off]
    parts = []
    if broken:
        parts.append(f"{len(broken)} plugin{'s' if len(broken) != 1 else ''} could not be loaded: {', '.join(broken)}")
    if failed:
        noun = "" if parts else (" plugin" if len(failed) == 1 else " plugins")
        parts.append(f"{len(failed)}{noun} failed while in use: {', '.join(failed)}")
    return "; ".join(parts) + " — Help ▸ Plugins" if parts else ""


def restart_argv(project_root: Path | None) -> list[str]:
    """How **Restart now** starts the app again: this Python, the same project."""
    argv = [sys.executable, "-m", "studio"]
    return argv + ["--project", str(project_root)] if project_root is not None else argv


def launch_detached(argv: Sequence[str]) -> None:
    """Start ``argv`` on its own (new session / process group), so it outlives this process."""
    extra: dict = {}
    if os.name == "nt":  # pragma: no cover - Windows
        extra["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        extra["start_new_session"] = True
    subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     close_fds=True, **extra)


def _point_name(point: str) -> str:
    known = registry.ALL.get(point)
    return known.name if known is not None else point


def badge_colors(state: str, look: str) -> tuple[str, str]:
    """(text, background) of a state's badge in the light or dark look."""
    c = theme.colors(look)
    return {ENABLED: _GREEN[look], DISABLED: (c["muted"], c["button"]), ERROR: (c["error"], c["error_bg"]),
            FAILED_ON_USE: (c["warning"], c["warning_bg"])}.get(state, (c["text"], c["alt"]))


class BadgeDelegate(QStyledItemDelegate):
    """Draws the State column as a rounded, coloured badge (the text stays the item's, for tests and copy)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        state = index.data(_STATE_ROLE)
        if not state:
            super().paint(painter, option, index)
            return
        self.initStyleOption(option, index)
        widget = option.widget
        style = widget.style() if widget is not None else None
        if style is not None:  # the selection background, without the text
            option.text = ""
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, widget)
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        fg, bg = badge_colors(state, theme.palette_look(widget.palette()) if widget is not None else "light")
        metrics = option.fontMetrics
        width = metrics.horizontalAdvance(text) + 16
        height = metrics.height() + 4
        rect = QRectF(option.rect.left() + 6, option.rect.center().y() - height / 2 + 1, width, height)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QColor(fg))
        painter.setBrush(QColor(bg))
        painter.drawRoundedRect(rect, height / 2, height / 2)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex):  # noqa: N802 - Qt's name
        hint = super().sizeHint(option, index)
        hint.setWidth(hint.width() + 28)
        return hint


class PluginsDialog(QDialog):
    """Every plugin's record; a checkbox per row remembers enable/disable for the next start.

    ``restart`` is what **Restart now** calls after the dialog closes (the window passes its own,
    which closes the window and relaunches the app); without one the button is hidden.
    """

    enabled_changed = Signal(str, bool)  # plugin name, the new choice (already written)

    def __init__(self, records: list[PluginRecord], parent: QWidget | None = None, *,
                 restart: Callable[[], None] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Plugins")
        self.resize(940, 640)
        self.records = list(records)
        self._restart = restart
        off = settings.disabled_plugins()
        self._chosen = {r.name: r.name not in off for r in self.records}  # what the next start loads
        # What this session loaded: a plugin turned off before it started is DISABLED (safe mode turns all
        # off, so there only a toggle here counts as a change).
        self._session = dict(self._chosen) if settings.safe_mode() else {
            r.name: r.state != DISABLED for r in self.records}
        self._filling = False

        self.table = QTableWidget(len(self.records), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.setTabKeyNavigation(False)  # Tab leaves the list for Copy / Restart now / Close; arrows move in it
        self.table.setItemDelegateForColumn(STATE, BadgeDelegate(self.table))
        header = self.table.horizontalHeader()
        for column in (NAME, VERSION, STATE, ENABLED_COLUMN):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(CONTRIBUTES, QHeaderView.ResizeMode.Stretch)
        self._fill_table()
        self.table.itemChanged.connect(self._on_table_item_changed)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_details(row))
        self.table.installEventFilter(self)

        self.empty_label = QLabel(EMPTY_TEXT, objectName="PluginsEmpty")
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setProperty("role", "muted")
        self.empty_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.details = self._build_details()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        self.pages = QStackedWidget()
        self.pages.addWidget(splitter)
        self.pages.addWidget(self.empty_label)
        self.pages.setCurrentWidget(splitter if self.records else self.empty_label)

        self.banner = QFrame(objectName="MessageArea")  # the message area's info look
        self.banner.setProperty("level", "info")
        self.banner.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(8, 4, 4, 4)
        self.banner_label = QLabel(RESTART_BANNER)
        self.restart_button = QPushButton("Restart now")
        self.restart_button.clicked.connect(self._on_restart_clicked)
        self.restart_button.setVisible(restart is not None)
        banner_layout.addWidget(self.banner_label, 1)
        banner_layout.addWidget(self.restart_button)
        self.banner.setVisible(self.has_pending_changes())  # e.g. a choice made the last time the dialog was open
        self.safe_mode_label = QLabel(SAFE_MODE_NOTE)
        self.safe_mode_label.setWordWrap(True)
        self.safe_mode_label.setProperty("role", "muted")
        self.safe_mode_label.setVisible(settings.safe_mode())

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.safe_mode_label)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.banner)
        layout.addWidget(buttons)
        if self.records:
            self.select(self.records[0].name)
        self.table.setFocus()
        # The list as tall as its rows (up to ten), the details below get the rest.
        rows = min(len(self.records), 10)
        table_height = self.table.horizontalHeader().sizeHint().height() + rows * self.table.verticalHeader().defaultSectionSize() + 6
        splitter.setSizes([table_height, max(self.height() - table_height - 120, 200)])

    # -- building -------------------------------------------------------------------------------
    def _fill_table(self) -> None:
        self._filling = True
        for row, record in enumerate(self.records):
            name = QTableWidgetItem(record.label if record.label == record.name else f"{record.label}  ({record.name})")
            name.setToolTip(record.description or record.name)
            state = display_state(record)
            badge = QTableWidgetItem(BADGE_TEXT.get(state, state))
            badge.setData(_STATE_ROLE, state)
            badge.setToolTip(problem_text(record) or BADGE_TEXT.get(state, state))
            summary = contributions_summary(record)
            contributes = QTableWidgetItem(summary or "—")
            contributes.setToolTip(summary)
            enabled = QTableWidgetItem("")
            enabled.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable)
            enabled.setCheckState(Qt.CheckState.Checked if self._chosen[record.name] else Qt.CheckState.Unchecked)
            enabled.setToolTip("Load this plugin when Distill Studio starts (Space toggles)")
            for column, item in ((NAME, name), (VERSION, QTableWidgetItem(record.version or record.dist_version)),
                                 (STATE, badge), (CONTRIBUTES, contributes), (ENABLED_COLUMN, enabled)):
                self.table.setItem(row, column, item)
        self._filling = False

    def _build_details(self) -> QWidget:
        pane = QWidget(objectName="PluginDetails")
        self.title_label = QLabel(objectName="PluginTitle")
        self.title_label.setProperty("role", "heading")
        self.description_label = QLabel(wordWrap=True)
        self.facts_label = QLabel(wordWrap=True)  # distribution, location, studio versions, contributions
        self.facts_label.setTextFormat(Qt.TextFormat.RichText)
        for label in (self.title_label, self.description_label, self.facts_label):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem_heading = QLabel("Error")
        self.problem_heading.setProperty("role", "error")
        self.problem_view = QPlainTextEdit(objectName="PluginError")
        self.problem_view.setReadOnly(True)
        self.problem_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                                  | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the error to the clipboard (Ctrl+C in the list)")
        self.copy_button.clicked.connect(self.copy_problem)
        problem_row = QHBoxLayout()
        problem_row.addWidget(self.problem_heading)
        problem_row.addStretch(1)
        problem_row.addWidget(self.copy_button)
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(2, 8, 2, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.description_label)
        layout.addWidget(self.facts_label)
        layout.addLayout(problem_row)
        layout.addWidget(self.problem_view, 1)
        layout.addStretch(0)
        return pane

    # -- the selected plugin ----------------------------------------------------------------------
    def current_record(self) -> PluginRecord | None:
        row = self.table.currentRow()
        return self.records[row] if 0 <= row < len(self.records) else None

    def select(self, name: str) -> None:
        """Select the row of plugin ``name`` (its details show)."""
        for row, record in enumerate(self.records):
            if record.name == name:
                self.table.setCurrentCell(row, NAME)
                self._show_details(row)
                return

    def _show_details(self, row: int) -> None:
        record = self.records[row] if 0 <= row < len(self.records) else None
        if record is None:
            return
        state = display_state(record)
        name = record.name if record.label == record.name else f"{record.label}   {record.name}"
        self.title_label.setText(f"{name} {record.version}".rstrip())
        self.description_label.setText(record.description or "No description.")
        self.description_label.setProperty("role", "" if record.description else "muted")
        self.facts_label.setText(_facts_html(record))
        problem = problem_text(record)
        self.problem_heading.setText({ERROR: "Error", FAILED_ON_USE: "Failed while in use this session"}
                                     .get(state, "Error"))
        self.problem_view.setPlainText(problem)
        for widget in (self.problem_heading, self.problem_view, self.copy_button):
            widget.setVisible(bool(problem))

    def copy_problem(self) -> None:
        """Copy the selected plugin's error (or, for a healthy one, its name and version)."""
        record = self.current_record()
        if record is None:
            return
        text = problem_text(record) or f"{record.name} {record.version}".strip()
        QGuiApplication.clipboard().setText(text)

    # -- enable / disable ---------------------------------------------------------------------------
    def is_checked(self, name: str) -> bool:
        for row, record in enumerate(self.records):
            if record.name == name:
                return self.table.item(row, ENABLED_COLUMN).checkState() == Qt.CheckState.Checked
        raise KeyError(name)

    def toggle(self, row: int) -> None:
        """Flip row ``row``'s Enabled checkbox (what Space does)."""
        item = self.table.item(row, ENABLED_COLUMN)
        if item is not None:
            checked = item.checkState() == Qt.CheckState.Checked
            item.setCheckState(Qt.CheckState.Unchecked if checked else Qt.CheckState.Checked)

    def _on_table_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != ENABLED_COLUMN:
            return
        name = self.records[item.row()].name
        enabled = item.checkState() == Qt.CheckState.Checked
        settings.set_enabled(name, enabled)
        self.enabled_changed.emit(name, enabled)
        self.banner.setVisible(self.has_pending_changes())

    def has_pending_changes(self) -> bool:
        """Whether a checkbox differs from what this session loaded (a restart would change something)."""
        return any(self.is_checked(name) != loaded for name, loaded in self._session.items())

    def _on_restart_clicked(self) -> None:
        self.accept()
        if self._restart is not None:
            self._restart()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        # In the list, Space toggles the current row's checkbox whatever cell is current (the view
        # alone toggles only on the checkbox cell), and Ctrl+C copies the plugin's error (the view
        # would copy the current cell's text).
        if watched is self.table and event.type() == QEvent.Type.KeyPress:
            key_event: QKeyEvent = event  # type: ignore[assignment]
            if key_event.key() == Qt.Key.Key_Space and not key_event.modifiers():
                self.toggle(self.table.currentRow())
                return True
            if key_event.matches(QKeySequence.StandardKey.Copy):
                self.copy_problem()
                return True
        return super().eventFilter(watched, event)


def _facts_html(record: PluginRecord) -> str:
    from html import escape

    rows = []
    if record.distribution:
        rows.append(("Distribution", f"{record.distribution} {record.dist_version}".strip()))
    if record.location:
        rows.append(("Location", record.location))
    if record.studio_versions:
        rows.append(("Works with", f"Distill Studio {record.studio_versions}"))
    if record.requires:
        rows.append(("Requires", ", ".join(record.requires)))
    cells = "".join(f"<tr><td style='padding-right:12px'><b>{escape(k)}</b></td><td>{escape(v)}</td></tr>"
                    for k, v in rows)
    if record.contributions:
        items = "".join(
            f"<tr><td style='padding-right:12px'>{escape(_point_name(c.point))}</td>"
            f"<td style='padding-right:12px'><code>{escape(c.key)}</code></td><td>{escape(c.title)}</td></tr>"
            for c in record.contributions)
        contributes = f"<p style='margin-top:6px'><b>Contributes</b></p><table>{items}</table>"
    else:
        contributes = "<p style='margin-top:6px'><b>Contributes</b> nothing readable (see the error).</p>"
    return f"<table>{cells}</table>{contributes}"
