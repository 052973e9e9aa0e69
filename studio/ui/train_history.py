"""The Train panel's run history: one row per training run, newest first; several may be selected.

A view only: the panel reads ``project.training.list()`` in a job and hands the runs to
:meth:`RunHistory.show_runs`. The current row is the run the live view shows; every other
selected row is a run whose loss curve is overlaid on it (``selection_changed``).
"""
from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QMenu, QTableWidget, QTableWidgetItem, QWidget

COLUMNS = ("Run", "Status", "Steps", "Snapshot", "Base model", "Started")
ELIDED = (COLUMNS.index("Run"), COLUMNS.index("Snapshot"), COLUMNS.index("Base model"))  # long names: share the rest
STATUS_WORDS = {"created": "created", "running": "running", "stopped": "stopped (resumable)", "done": "done",
                "failed": "failed"}


MIN_ROWS = 4  # the history never shrinks below this many rows (the curves' splitter gives way first)


def _when(stamp: float | None) -> str:
    if not stamp:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


class RunHistory(QTableWidget):
    """Runs as rows; ``current_run_changed(run_id | None)`` and ``selection_changed([run_id, ...])``;
    ``export_requested(run_id)`` from the row's context menu (enabled for runs with an adapter)."""

    current_run_changed = Signal(object)
    selection_changed = Signal(list)
    export_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        for col in ELIDED:  # sized in _fit_columns: the space left, never narrower than the header's word
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        # One line per run: a long base path is elided (all of it in the tooltip), never wrapped into a row
        # twice as tall and cut in half.
        self.setWordWrap(False)
        rows = self.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 10)
        self.setMinimumHeight(self.height_for_rows(MIN_ROWS))
        self.setToolTip("Training runs, newest first. Select one to show it; Ctrl/Shift-click more to overlay "
                        "their loss curves.")
        self.runs: dict[int, Any] = {}
        self._filling = False
        self._current: int | None = None
        self.itemSelectionChanged.connect(self._on_selection)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_context_menu)

    def height_for_rows(self, rows: int) -> int:
        """The height that shows the header and ``rows`` whole rows (with a horizontal scroll bar's room)."""
        header = self.horizontalHeader().sizeHint().height()
        scroll = self.horizontalScrollBar().sizeHint().height()
        return header + rows * self.verticalHeader().defaultSectionSize() + scroll + 2 * self.frameWidth()

    def context_menu(self, run_id: int) -> QMenu:
        """The row's menu: Export… (only a run with an adapter can be exported)."""
        menu = QMenu(self)
        run = self.runs.get(run_id)
        action = menu.addAction("Export…", lambda: self.export_requested.emit(run_id))
        action.setEnabled(run is not None and bool(getattr(run, "has_adapter", False)))
        if not action.isEnabled():
            action.setToolTip("This run has no adapter yet")
        return menu

    def _on_context_menu(self, pos: QPoint) -> None:
        item = self.itemAt(pos)
        if item is None:
            return
        self.context_menu(item.data(Qt.ItemDataRole.UserRole)).exec(self.viewport().mapToGlobal(pos))

    def show_runs(self, runs: list[Any], select: int | None = None) -> None:
        """Replace the rows, keeping the current and selected runs (or selecting ``select``)."""
        keep = self.selected_runs()
        current = select if select is not None else self._current
        self._filling = True
        try:
            self.clearSelection()
            self.setRowCount(len(runs))
            self.runs = {run.id: run for run in runs}
            for row, run in enumerate(runs):
                steps = f"{run.last_step} / {run.max_steps}" if run.max_steps else str(run.last_step or 0)
                values = (f"#{run.id} {run.name}".strip(), STATUS_WORDS.get(run.status, run.status), steps,
                          run.snapshot_name, run.base_model, _when(run.created_at))
                for col, text in enumerate(values):
                    item = QTableWidgetItem(text)
                    item.setData(Qt.ItemDataRole.UserRole, run.id)
                    if col == 1 and run.error:
                        item.setToolTip(run.error)
                    if col in ELIDED:
                        item.setToolTip(text)
                    self.setItem(row, col, item)
            model = self.selectionModel()
            rows = model.SelectionFlag.Rows
            current_row = self.row_of(current)
            if current_row is not None:
                model.setCurrentIndex(self.model().index(current_row, 0), model.SelectionFlag.Select | rows)
            for row, run in enumerate(runs):
                if run.id in keep and row != current_row:
                    model.select(self.model().index(row, 0), model.SelectionFlag.Select | rows)
        finally:
            self._filling = False
        self._fit_columns()
        self._on_selection()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Short columns fit their contents; Snapshot and Base model share the rest (elided, the full text in a
        tooltip) but keep room for their headers, so no header is clipped at 1024×640."""
        header = self.horizontalHeader()
        used = sum(header.sectionSize(col) for col in range(len(COLUMNS)) if col not in ELIDED)
        left = max(0, self.viewport().width() - used)
        *first, last = ELIDED
        for col in first:
            need = header.sectionSizeFromContents(col).width()
            wanted = max(self.sizeHintForColumn(col), need)
            size = max(need, min(wanted, left // len(ELIDED)))
            header.resizeSection(col, size)
            left -= size
        # the last elided column (the base model's path) takes whatever room is left
        header.resizeSection(last, max(header.sectionSizeFromContents(last).width(), left))

    def show_live_step(self, run_id: int, step: int, max_steps: int | None) -> None:
        """The followed run's step as the curves show it (the store records it less often)."""
        row = self.row_of(run_id)
        item = self.item(row, COLUMNS.index("Steps")) if row is not None else None
        if item is not None:
            item.setText(f"{step} / {max_steps}" if max_steps else str(step))

    def row_of(self, run_id: int | None) -> int | None:
        if run_id is None:
            return None
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == run_id:
                return row
        return None

    def current_run(self) -> int | None:
        item = self.item(self.currentRow(), 0) if self.currentRow() >= 0 else None
        return item.data(Qt.ItemDataRole.UserRole) if item is not None and item.isSelected() else None

    def selected_runs(self) -> list[int]:
        rows = sorted({index.row() for index in self.selectedIndexes()})
        return [self.item(row, 0).data(Qt.ItemDataRole.UserRole) for row in rows if self.item(row, 0) is not None]

    def _on_selection(self) -> None:
        if self._filling:
            return
        current = self.current_run()
        if current is None:
            selected = self.selected_runs()
            current = selected[0] if selected else None
        if current != self._current:
            self._current = current
            self.current_run_changed.emit(current)
        self.selection_changed.emit(self.selected_runs())
