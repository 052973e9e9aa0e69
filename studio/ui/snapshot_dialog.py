"""Snapshots: freeze, list, compare and export (twin of ``distill-studio snapshot ...``).

Freezing, comparing and writing snapshots touch every row (50K+), so each runs as a job on
the window's runner, on a worker's own project handle. (The old dialog's superqt workers
shared Qt's global thread pool, two threads on a 2-core machine, with the Curate tabs'
chart and clustering workers, which a newer filter never stopped: a freeze queued behind
them for seconds. The runner gives every job its own thread, and stale chart jobs cancel.)
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QPlainTextEdit, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
)

from studio.core import exports, registry
from studio.core.errors import StudioError
from studio.core.curation import SampleQuery
from studio.core.wording import count_noun
from studio.core.project import Project
from studio.ui.jobs import Job, JobRunner
from studio.ui.project_context import ProjectContext

EMPTY_HINT = ("No snapshots yet: name one above and press Freeze to copy the accepted samples "
              "(or the current filter's) into a frozen, hashed dataset for training.")


def _freeze_job(project: Project, name: str, query: SampleQuery | None):
    return project.snapshots.create_steps(name, query)


def _diff_job(project: Project, first: str, second: str):
    return project.snapshots.diff(first, second)


def _export_job(project: Project, key: int, path: Path, fmt: str, val_fraction: float):
    return project.snapshots.export_steps(key, path, fmt, val_fraction=val_fraction)


class SnapshotDialog(QDialog):
    def __init__(self, context: ProjectContext, jobs: JobRunner, current_query: SampleQuery, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Snapshots")
        self.resize(820, 560)
        self._context = context
        self._jobs = jobs
        self._query = current_query
        self.job: Job | None = None  # the latest job started here

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
        # Columns as wide as their contents, one line each (the date wrapped onto two lines);
        # the name takes what is left.
        header = self.table.horizontalHeader()
        for column in range(5):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(False)
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

        self.format = QComboBox()  # every exporter in the registry, a plugin's too (listed without importing it)
        for entry in registry.DATASET_EXPORTERS:
            self.format.addItem(entry.label, entry.key)
            tip = entry.help if entry.built_in else f"{entry.help} (from the plugin {entry.source})".strip()
            self.format.setItemData(self.format.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
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
        self.hint = QLabel(EMPTY_HINT)
        self.hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(create_row)
        layout.addWidget(self.hint)
        layout.addWidget(self.table, 2)
        layout.addLayout(export_form)
        layout.addLayout(diff_row)
        layout.addWidget(self.diff_view, 1)
        layout.addWidget(self.message)
        context.snapshots_changed.connect(self.reload)
        self.reload()

    def reload(self) -> None:
        if self._context.project.conn is None:
            return  # the project closed before the coalesced signal arrived
        snapshots = self._context.project.snapshots.list()
        self.hint.setVisible(not snapshots)
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

    def create_snapshot(self, name: str, use_filter: bool) -> Job:
        query = self._query if use_filter else None
        self.message.setText(f"Freezing {name!r}…")

        def done(snapshot) -> None:
            self.message.setText(f"Froze {count_noun(snapshot.sample_count, 'sample')} as {snapshot.name!r} ({snapshot.path}).")

        return self._start(f"Freezing snapshot {name!r}", _freeze_job, name, query, on_done=done)

    def _start(self, title: str, fn, *args, on_done) -> Job:
        """Run ``fn(handle, *args)`` as a job; its result goes to ``on_done``, errors to the message line."""
        self.job = self._jobs.submit(title, fn, *args, project=self._context, on_done=on_done,
                                     on_error=self.message.setText)
        return self.job

    def _on_create_clicked(self) -> None:
        self.create_snapshot(self.name.text(), self.scope.currentIndex() == 1)

    def _on_diff_clicked(self) -> None:
        first, second = self.first.currentText(), self.second.currentText()
        if first and second:
            self.diff_view.setPlainText("Comparing…")
            self._start("Comparing snapshots", _diff_job, first, second, on_done=self._show_diff)

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
        fmt = self.format.currentData()
        try:
            exporter = exports.get_exporter(fmt)  # a plugin's exporter is imported here, on first use
        except StudioError as exc:
            self.message.setText(str(exc))
            return
        start = self._context.root / "exports"
        name = self.table.item(row, 1).text()
        if exporter.writes_folder:
            path = QFileDialog.getExistingDirectory(self, "Export folder", str(start))
            path = str(Path(path) / name) if path else ""
        else:
            # The filter comes from the exporter, so the dialog suggests and shows its files.
            patterns = " ".join("*" + e for e in exporter.extensions) or "*"
            suggested = start / (name + (exporter.extensions[0] if exporter.extensions else ""))
            path, _ = QFileDialog.getSaveFileName(self, "Export to", str(suggested),
                                                  f"{self.format.currentText()} ({patterns});;All files (*)")
        if path:
            self.export_to(int(self.table.item(row, 0).text()), Path(path), fmt, self.val_fraction.value())

    def export_to(self, snapshot_id: int, path: Path, fmt: str, val_fraction: float) -> Job:
        self.message.setText(f"Exporting to {path}…")

        def done(written: dict) -> None:
            self.message.setText("Exported: " + ", ".join(dict.fromkeys(str(p) for p in written.values())))

        return self._start(f"Exporting snapshot {snapshot_id}", _export_job, snapshot_id, path, fmt, val_fraction,
                           on_done=done)
