"""Curate ▸ Trash…: the batches of deleted samples, with Restore and Empty (twin of `data trash`).

The trash lives in the project, so a delete made before the app was last closed can still
be restored here. Restoring and emptying run as jobs through the panel's ``run_write``,
which keeps one write at a time and disables the panel's other write actions meanwhile.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPushButton, QTableWidget, QTableWidgetItem,
    QVBoxLayout,
)

from studio.core.wording import count_noun
from studio.core.project import Project
from studio.core.trash import RestoreResult, TrashBatch
from studio.ui.project_context import ProjectContext

EMPTY_HINT = ("The Trash is empty. Samples you delete in Curate land here first, "
              "and can be restored from here until you empty it.")
RunWrite = Callable[..., object]  # (title, fn, *args, on_done=...) -> Job | None


def _restore_job(project: Project, batch_id: int):
    return project.trash.restore_steps(batch_id)


def _empty_job(project: Project, batch_id: int | None) -> int:
    return project.trash.empty(batch_id)


class TrashDialog(QDialog):
    def __init__(self, context: ProjectContext, run_write: RunWrite, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Trash")
        self.resize(720, 420)
        self._context = context
        self._run_write = run_write
        self.batches: list[TrashBatch] = []
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Batch", "Deleted", "Samples", "What"])
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        # Columns as wide as their contents, one line each: the date wrapped onto two lines before.
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.hint = QLabel(EMPTY_HINT)
        self.hint.setWordWrap(True)
        self.restore_button = QPushButton("Restore")
        self.restore_button.clicked.connect(self.restore_selected)
        self.empty_button = QPushButton("Empty selected…")
        self.empty_button.clicked.connect(lambda: self.empty(self.selected_batch()))
        self.empty_all_button = QPushButton("Empty Trash…")
        self.empty_all_button.clicked.connect(lambda: self.empty(None))
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.restore_button, self.empty_button, self.empty_all_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.hint)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        context.trash_changed.connect(self.reload)
        self.reload()

    def reload(self) -> None:
        if self._context.project.conn is None:
            return  # the project closed before the coalesced signal arrived
        self.batches = self._context.project.trash.batches()
        self.table.setRowCount(len(self.batches))
        for row, batch in enumerate(self.batches):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(batch.created_at))
            for column, value in enumerate((str(batch.id), when, f"{batch.sample_count:,}", batch.description)):
                self.table.setItem(row, column, QTableWidgetItem(value))
        if self.batches and self.table.currentRow() < 0:
            self.table.selectRow(0)
        self.hint.setVisible(not self.batches)
        self.table.setVisible(bool(self.batches))
        for button in (self.restore_button, self.empty_button, self.empty_all_button):
            button.setEnabled(bool(self.batches))

    def selected_batch(self) -> int | None:
        row = self.table.currentRow()
        return self.batches[row].id if 0 <= row < len(self.batches) else None

    def restore_selected(self) -> None:
        batch_id = self.selected_batch()
        if batch_id is None:
            self.message.setText("Select a batch to restore.")
            return
        self.message.setText(f"Restoring batch {batch_id}…")
        self._run_write(f"Restoring batch {batch_id}", _restore_job, batch_id, on_done=self._on_restored,
                        on_error=self.message.setText)

    def _on_restored(self, result: RestoreResult) -> None:
        self.message.setText(result.describe() + ".")

    def empty(self, batch_id: int | None) -> None:
        if batch_id is None and not self.batches:
            return
        count = (sum(b.sample_count for b in self.batches) if batch_id is None
                 else next(b.sample_count for b in self.batches if b.id == batch_id))
        what = "the whole Trash" if batch_id is None else f"batch {batch_id}"
        answer = QMessageBox.question(
            self, "Empty the Trash",
            f"Delete {count_noun(count, 'sample')} in {what} for good? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self._run_write("Emptying the Trash", _empty_job, batch_id, cancellable=False, on_done=self._on_emptied,
                        on_error=self.message.setText)

    def _on_emptied(self, gone: int) -> None:
        self.message.setText(f"Deleted {count_noun(gone, 'sample')} for good.")
