"""Snapshots: freeze, list, compare and export (twin of ``distill-studio snapshot ...``)."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox, QDialog, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
    QPlainTextEdit, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
)
from superqt.utils import create_worker

from studio.core import exports
from studio.core.curation import SampleQuery
from studio.core.errors import StudioError
from studio.core.project import Project


def _with_snapshots(db_path: Path, root: Path, work):
    """Worker body: run ``work(SnapshotStore)`` on a connection of the worker's own thread.

    Freezing, comparing and writing snapshots touch every row (50K+), so none of it runs
    on the GUI thread.
    """
    from studio.core.db import connect
    from studio.core.snapshots import SnapshotStore

    conn = connect(db_path)
    try:
        return work(SnapshotStore(conn, root))
    finally:
        conn.close()


def export_snapshot(db_path: Path, root: Path, key: int, path: Path, fmt: str, val_fraction: float) -> dict:
    records = _with_snapshots(db_path, root, lambda store: store.records(key))
    return exports.export(path, records, fmt, val_fraction=val_fraction)


class SnapshotDialog(QDialog):
    def __init__(self, project: Project, current_query: SampleQuery, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Snapshots")
        self.resize(820, 560)
        self._project = project
        self._query = current_query
        self._worker = None

        self.name = QLineEdit()
        self.name.setPlaceholderText("name, e.g. v1-accepted")
        self.scope = QComboBox()
        self.scope.addItems(["Accepted samples", "Current filter"])
        create = QPushButton("Freeze")
        create.clicked.connect(self._on_create_clicked)
        create_row = QHBoxLayout()
        for widget in (QLabel("New snapshot:"), self.name, self.scope, create):
            create_row.addWidget(widget)

        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Id", "Name", "Samples", "Hash", "Created"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)

        self.first, self.second = QComboBox(), QComboBox()
        diff = QPushButton("Compare")
        diff.clicked.connect(self._on_diff_clicked)
        diff_row = QHBoxLayout()
        for widget in (QLabel("Compare"), self.first, QLabel("→"), self.second, diff):
            diff_row.addWidget(widget)
        self.diff_view = QPlainTextEdit()
        self.diff_view.setReadOnly(True)

        self.format = QComboBox()
        self.format.addItems(list(exports.EXPORT_FORMATS))
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.5)
        self.val_fraction.setSingleStep(0.05)
        export = QPushButton("Export selected…")
        export.clicked.connect(self._on_export_clicked)
        export_form = QFormLayout()
        export_form.addRow("Format", self.format)
        export_form.addRow("Validation fraction", self.val_fraction)
        export_form.addRow(export)

        self.message = QLabel("")
        self.message.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(create_row)
        layout.addWidget(self.table, 2)
        layout.addLayout(export_form)
        layout.addLayout(diff_row)
        layout.addWidget(self.diff_view, 1)
        layout.addWidget(self.message)
        self.reload()

    def reload(self) -> None:
        snapshots = self._project.snapshots.list()
        self.table.setRowCount(len(snapshots))
        for row, s in enumerate(snapshots):
            values = (str(s.id), s.name, f"{s.sample_count:,}", s.content_hash[:16],
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at)))
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        for combo in (self.first, self.second):
            combo.clear()
            combo.addItems([s.name for s in snapshots])
        if len(snapshots) > 1:
            self.first.setCurrentIndex(len(snapshots) - 2)
            self.second.setCurrentIndex(len(snapshots) - 1)

    def create_snapshot(self, name: str, use_filter: bool) -> None:
        query = self._query if use_filter else None
        self.message.setText(f"Freezing {name!r}…")

        def done(snapshot) -> None:
            self.message.setText(f"Froze {snapshot.sample_count:,} samples as {snapshot.name!r} ({snapshot.path}).")
            self.reload()

        self._start(lambda store: store.create(name, query), done)

    def _start(self, work, done) -> None:
        """Run ``work(SnapshotStore)`` in a worker; its result goes to ``done``, errors to the message line."""
        worker = create_worker(_with_snapshots, self._project.db_path, self._project.root, work,
                               _start_thread=False, _ignore_errors=True)
        worker.returned.connect(done)
        worker.errored.connect(lambda exc: self.message.setText(str(exc) if isinstance(exc, StudioError)
                                                                else f"{type(exc).__name__}: {exc}"))
        self._worker = worker
        worker.start()

    def _on_create_clicked(self) -> None:
        self.create_snapshot(self.name.text(), self.scope.currentIndex() == 1)

    def _on_diff_clicked(self) -> None:
        first, second = self.first.currentText(), self.second.currentText()
        if first and second:
            self.diff_view.setPlainText("Comparing…")
            self._start(lambda store: store.diff(first, second), self._show_diff)

    def _show_diff(self, diff) -> None:
        lines = [f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
                 f"{diff.unchanged} unchanged", ""]
        lines += [f"+ #{i.sample_id} {i.instruction[:100]}" for i in diff.added[:500]]
        lines += [f"- #{i.sample_id} {i.instruction[:100]}" for i in diff.removed[:500]]
        lines += [f"~ #{a.sample_id} {a.instruction[:50]} → {b.instruction[:50]}" for a, b in diff.changed[:500]]
        self.diff_view.setPlainText("\n".join(lines))

    def _on_export_clicked(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            self.message.setText("Select a snapshot to export.")
            return
        fmt = self.format.currentText()
        start = str(self._project.root / "exports")
        if fmt == exports.HF:
            path = QFileDialog.getExistingDirectory(self, "Export folder", start)
            path = str(Path(path) / self.table.item(row, 1).text()) if path else ""
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Export to", start)
        if path:
            self.export_to(int(self.table.item(row, 0).text()), Path(path), fmt, self.val_fraction.value())

    def export_to(self, snapshot_id: int, path: Path, fmt: str, val_fraction: float) -> None:
        self.message.setText(f"Exporting to {path}…")
        worker = create_worker(export_snapshot, self._project.db_path, self._project.root, snapshot_id, path, fmt,
                               val_fraction, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda written: self.message.setText(
            "Exported: " + ", ".join(dict.fromkeys(str(p) for p in written.values()))))
        worker.errored.connect(lambda exc: self.message.setText(f"Export failed: {exc}"))
        self._worker = worker
        worker.start()
