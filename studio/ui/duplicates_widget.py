"""Near-duplicate clusters, largest first, with the members side by side.

A view: "Find near-duplicates" asks the Curate panel (``find_requested(threshold)``), which
runs the clustering as a job on the window's runner; the result is remembered in the
project, so the table's "duplicates" filter works without recomputing. Reads go through
the panel's :class:`~studio.core.curation.CurationRepository` (no SQL here).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton,
    QScrollArea, QSplitter, QVBoxLayout, QWidget,
)

from studio.core.curation import Cluster, CurationRepository, SampleQuery
from studio.core.wording import count_noun

BEFORE_FIRST_SEARCH = ("No search yet: press “Find near-duplicates” to group the current filter's instructions "
                       "whose ROUGE-L similarity passes the threshold.")
NONE_FOUND = ("No near-duplicates in the current filter at this threshold: lower the threshold to group looser "
              "matches, or widen the filter.")
NO_SAMPLES = ("No samples to compare yet: import a file (File ▸ Import Samples) or generate some on the Generate "
              "page, then press “Find near-duplicates”.")


class DuplicatesWidget(QWidget):
    """Emits ``find_requested(threshold)`` and ``keep_requested(cluster ids, kept id)``; the panel acts."""

    find_requested = Signal(float)
    keep_requested = Signal(list, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._curation: CurationRepository | None = None
        self._searched = False
        self.find_button = QPushButton("Find near-duplicates")
        self.find_button.clicked.connect(lambda: self.find_requested.emit(self.threshold.value()))
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.3, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(0.7)
        self.threshold.setPrefix("ROUGE-L > ")
        self.status = QLabel(BEFORE_FIRST_SEARCH)
        self.status.setWordWrap(True)
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

    def set_curation(self, curation: CurationRepository | None) -> None:
        self._curation = curation
        self._searched = bool(curation and curation.clusters())  # a project remembers its last search
        self.show_clusters()

    def set_busy(self, busy: bool) -> None:
        """A search or a write is running: no second search, no keep."""
        self.find_button.setEnabled(not busy)
        self.members.setEnabled(not busy)

    def show_searching(self) -> None:
        self.status.setText("Comparing instructions…")

    def show_error(self, message: str) -> None:
        self.status.setText(f"Could not find duplicates: {message}")

    def search_finished(self) -> None:
        self._searched = True
        self.show_clusters()

    def show_clusters(self) -> None:
        """List the remembered clusters (also after a keep/undo changed statuses)."""
        current = self.clusters.currentRow()
        self.clusters.clear()
        found: list[Cluster] = self._curation.clusters() if self._curation is not None else []
        for cluster in found:
            item = QListWidgetItem(f"{count_noun(len(cluster.sample_ids), 'sample')} · cluster {cluster.number}")
            item.setData(Qt.ItemDataRole.UserRole, cluster.sample_ids)
            self.clusters.addItem(item)
        members = sum(len(c.sample_ids) for c in found)
        if found:
            self.status.setText(f"{count_noun(len(found), 'cluster')}, {count_noun(members, 'sample')}.")
            self.clusters.setCurrentRow(min(max(current, 0), len(found) - 1))
        else:
            self.status.setText(self._nothing_found_hint())
            self._show_members([])

    def _nothing_found_hint(self) -> str:
        """Why the list is empty; with no samples at all, threshold and filter advice would not help."""
        if self._curation is not None and self._curation.count(SampleQuery(), cap=1) == 0:
            return NO_SAMPLES
        return NONE_FOUND if self._searched else BEFORE_FIRST_SEARCH

    def _on_clusters_current_changed(self, item: QListWidgetItem | None, _previous=None) -> None:
        self._show_members(item.data(Qt.ItemDataRole.UserRole) if item else [])

    def _show_members(self, ids: list[int]) -> None:
        while self.members_layout.count():
            widget = self.members_layout.takeAt(0).widget()
            if widget is not None:
                # Out of the layout it would still paint until deleted, under the new columns.
                widget.hide()
                widget.deleteLater()
        if self._curation is None or not ids:
            return
        texts = self._curation.texts(ids)
        for sample_id in ids:
            sample = texts.get(sample_id)
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
