"""Near-duplicate clusters, largest first, with the members side by side.

Clustering (pairwise ROUGE-L) runs in a worker thread on its own connection; the result is
remembered in the project, so the table's "duplicates" filter works without recomputing.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton,
    QScrollArea, QSplitter, QVBoxLayout, QWidget,
)
from superqt.utils import create_worker

from studio.core.curation import Cluster, Curation, SampleQuery


def compute_clusters(db_path: Path, query: SampleQuery, threshold: float) -> list[list[int]]:
    from studio.core.curation import find_clusters
    from studio.core.db import connect

    conn = connect(db_path)
    try:
        return find_clusters(conn, query, threshold)
    finally:
        conn.close()


class DuplicatesWidget(QWidget):
    """Emits ``keep_requested(cluster ids, kept id)``; the panel makes the undoable change."""

    keep_requested = Signal(list, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._curation: Curation | None = None
        self._db_path: Path | None = None
        self._query = SampleQuery()
        self._worker = None
        self.find_button = QPushButton("Find near-duplicates")
        self.find_button.clicked.connect(self.find)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.3, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(0.7)
        self.threshold.setPrefix("ROUGE-L > ")
        self.status = QLabel("Clusters of instructions whose ROUGE-L similarity passes the threshold.")
        top = QHBoxLayout()
        top.addWidget(self.find_button)
        top.addWidget(self.threshold)
        top.addWidget(self.status, 1)
        self.clusters = QListWidget()
        self.clusters.currentItemChanged.connect(self._on_clusters_current_changed)
        self.members = QWidget()
        self.members_layout = QHBoxLayout(self.members)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.members)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.clusters)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(1, 4)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)

    def set_source(self, curation: Curation | None, db_path: Path | None, query: SampleQuery) -> None:
        self._curation, self._db_path, self._query = curation, db_path, query

    def find(self) -> None:
        if self._db_path is None or self._worker is not None:
            return
        self.find_button.setEnabled(False)
        self.status.setText("Comparing instructions…")
        worker = create_worker(compute_clusters, self._db_path, self._query, self.threshold.value(), _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_worker_returned)
        worker.errored.connect(self._on_worker_errored)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        worker.start()

    def _on_worker_returned(self, clusters: list[list[int]]) -> None:
        if self._curation is None:
            return
        self._curation.store_clusters(clusters)
        self.show_clusters()

    def _on_worker_errored(self, exc: Exception) -> None:
        self.status.setText(f"Could not find duplicates: {exc}")

    def _on_worker_finished(self) -> None:
        self._worker = None
        self.find_button.setEnabled(True)

    def show_clusters(self) -> None:
        """List the remembered clusters (also after a keep/undo changed statuses)."""
        current = self.clusters.currentRow()
        self.clusters.clear()
        if self._curation is None:
            return
        found: list[Cluster] = self._curation.clusters()
        for cluster in found:
            item = QListWidgetItem(f"{len(cluster.sample_ids)} samples · cluster {cluster.number}")
            item.setData(Qt.ItemDataRole.UserRole, cluster.sample_ids)
            self.clusters.addItem(item)
        members = sum(len(c.sample_ids) for c in found)
        self.status.setText(f"{len(found)} clusters, {members} samples.")
        if found:
            self.clusters.setCurrentRow(min(max(current, 0), len(found) - 1))
        else:
            self._show_members([])

    def _on_clusters_current_changed(self, item: QListWidgetItem | None, _previous=None) -> None:
        self._show_members(item.data(Qt.ItemDataRole.UserRole) if item else [])

    def _show_members(self, ids: list[int]) -> None:
        while self.members_layout.count():
            widget = self.members_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        if self._curation is None:
            return
        for sample_id in ids:
            sample = self._curation_sample(sample_id)
            if sample is None:
                continue
            column = QWidget()
            box = QVBoxLayout(column)
            box.addWidget(QLabel(f"#{sample_id} · {sample['status']}"))
            text = QPlainTextEdit(f"{sample['instruction']}\n\n{sample['input']}\n\n→ {sample['output']}".replace("\n\n\n\n", "\n\n"))
            text.setReadOnly(True)
            box.addWidget(text, 1)
            keep = QPushButton("Keep this one, reject the rest")
            keep.clicked.connect(lambda _=False, sid=sample_id, all_ids=list(ids): self.keep_requested.emit(all_ids, sid))
            box.addWidget(keep)
            column.setMinimumWidth(260)
            self.members_layout.addWidget(column)

    def _curation_sample(self, sample_id: int) -> dict | None:
        row = self._curation.conn.execute(
            "SELECT status, instruction, input, output FROM samples WHERE id = ?", (sample_id,)
        ).fetchone()
        return dict(row) if row else None

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.quit()
