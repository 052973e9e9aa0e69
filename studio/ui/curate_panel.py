"""Curate: review tens of thousands of samples by keyboard, filter, fix, dedupe, freeze.

The panel only gathers input and calls :mod:`studio.core.curation`; every change is
committed at once and pushed on the undo stack as a :class:`ChangeCommand`. The table is a
paged model over SQL, so its size never shows in memory or in the time to open.

Review keys on the table: A accept, R reject, S/Space skip, J/K or Down/Up move,
E edit, 1-5 rate, 0 clear rating.
"""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit,
    QMenu, QPlainTextEdit, QPushButton, QSpinBox, QSplitter, QTableView, QTabWidget, QToolButton,
    QVBoxLayout, QWidget,
)

from studio.core.curation import Change, SampleQuery
from studio.core.errors import StudioError
from studio.core.project import Project
from studio.core.samples import Origin, Status
from studio.ui.change_command import ChangeCommand
from studio.ui.data_shape_widget import DataShapeWidget
from studio.ui.duplicates_widget import DuplicatesWidget
from studio.ui.jobs import JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.panels import Panel
from studio.ui.project_context import ProjectContext
from studio.ui.sample_table_model import COLUMN_KEYS, COLUMNS, SampleTableModel

SEARCH_DEBOUNCE_MS = 200
ROW_HEIGHT = 22
HIDDEN_BY_DEFAULT = {"input", "teacher_model", "tags"}
ANY = "Any"


def _combo(items: list[tuple[str, object]]) -> QComboBox:
    combo = QComboBox()
    for label, value in items:
        combo.addItem(label, value)
    return combo


def _length_box(tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(-1, 100_000)
    box.setValue(-1)
    box.setSpecialValueText("–")  # -1: no limit
    box.setToolTip(tip)
    return box


class CuratePanel(Panel):
    title = "Curate"
    icon = "curate.svg"

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        self._undo = QUndoStack(self)
        self.model = SampleTableModel(parent=self)
        self._current_id: int | None = None
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self.apply_filters)
        self._build_filters()
        self._build_table()
        self._build_detail()
        self._build_actions()

        self.duplicates = DuplicatesWidget()
        self.duplicates.keep_requested.connect(self._on_duplicates_keep_requested)
        self.shape = DataShapeWidget()
        self.shape.filter_requested.connect(self._on_shape_filter_requested)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.table)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([600, 400])  # the table gets the larger share from the start, not only on resize
        table_page = QWidget()
        table_layout = QVBoxLayout(table_page)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addLayout(self.bulk_row)
        table_layout.addWidget(splitter, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(table_page, "Samples")
        self.tabs.addTab(self.duplicates, "Duplicates")
        self.tabs.addTab(self.shape, "Data shape")
        self.tabs.currentChanged.connect(self._on_tabs_current_changed)

        layout = QVBoxLayout(self)
        layout.addLayout(self.filter_rows)
        layout.addWidget(self.tabs, 1)
        self.set_context(None)

    # -- building --------------------------------------------------------------------------
    def _build_filters(self) -> None:
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search instruction, input and output (every word must appear; word* for prefixes)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.status_filter = _combo([(ANY, ())] + [(s.value, (s.value,)) for s in Status])
        self.origin_filter = _combo([(ANY, ())] + [(o.value, (o.value,)) for o in Origin])
        self.run_filter = _combo([(ANY, ())])
        self.tag_filter = _combo([(ANY, "")])
        self.rating_filter = _combo([(ANY, ()), ("unrated", (0,))] + [("★" * n, (n,)) for n in range(1, 6)])
        self.blacklist_filter = _combo([("Blacklist: any", None), ("blacklisted words", True), ("no blacklisted words", False)])
        self.duplicate_filter = _combo([("Duplicates: any", None), ("in a duplicate cluster", True), ("not duplicated", False)])
        self.min_instruction = _length_box("minimum instruction words")
        self.max_instruction = _length_box("maximum instruction words")
        self.min_output = _length_box("minimum output words")
        self.max_output = _length_box("maximum output words")
        for combo in (self.status_filter, self.origin_filter, self.run_filter, self.tag_filter, self.rating_filter,
                      self.blacklist_filter, self.duplicate_filter):
            combo.currentIndexChanged.connect(self.apply_filters)
        for box in (self.min_instruction, self.max_instruction, self.min_output, self.max_output):
            box.valueChanged.connect(lambda _value: self._search_timer.start())
        self.count_label = QLabel("")
        self.views = QComboBox()
        self.views.setPlaceholderText("Saved views")
        self.views.activated.connect(self._on_views_activated)
        save_view = QPushButton("Save view…")
        save_view.clicked.connect(self._on_save_view_clicked)
        self.columns_button = QToolButton()
        self.columns_button.setText("Columns")
        self.columns_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        snapshots = QPushButton("Snapshots…")
        snapshots.clicked.connect(self.open_snapshots)

        first = QHBoxLayout()
        first.addWidget(self.search, 1)
        first.addWidget(self.count_label)
        first.addWidget(self.views)
        first.addWidget(save_view)
        first.addWidget(self.columns_button)
        first.addWidget(snapshots)
        # Categories on one row, lengths and quality checks on the next: one row of all of
        # them needs ~1,450 px and clipped its labels on a 1280 px screen.
        second = QHBoxLayout()
        for label, widget in (("Status", self.status_filter), ("Origin", self.origin_filter), ("Run", self.run_filter),
                              ("Tag", self.tag_filter), ("Rating", self.rating_filter)):
            second.addWidget(QLabel(label))
            second.addWidget(widget)
        second.addStretch(1)
        third = QHBoxLayout()
        third.addWidget(QLabel("Instruction words"))
        third.addWidget(self.min_instruction)
        third.addWidget(QLabel("to"))
        third.addWidget(self.max_instruction)
        third.addSpacing(12)
        third.addWidget(QLabel("Output words"))
        third.addWidget(self.min_output)
        third.addWidget(QLabel("to"))
        third.addWidget(self.max_output)
        third.addSpacing(12)
        third.addWidget(self.blacklist_filter)
        third.addWidget(self.duplicate_filter)
        third.addStretch(1)
        self.filter_rows = QVBoxLayout()
        self.filter_rows.addLayout(first)
        self.filter_rows.addLayout(second)
        self.filter_rows.addLayout(third)

    def _build_table(self) -> None:
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # No sort indicator at first: the store's own order (id) until a header is clicked.
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # Fixed heights and widths: Qt then never measures 50,000 rows' contents.
        vertical = self.table.verticalHeader()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(ROW_HEIGHT)
        vertical.setVisible(False)
        horizontal = self.table.horizontalHeader()
        horizontal.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {"status": 90, "instruction": 320, "input": 160, "output": 320, "updated_at": 120}
        for column, key in enumerate(COLUMN_KEYS):
            self.table.setColumnWidth(column, widths.get(key, 80))
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_changed)
        self.table.installEventFilter(self)
        menu = QMenu(self)
        for column, (key, header) in enumerate(COLUMNS):
            action = menu.addAction(header)
            action.setCheckable(True)
            action.setChecked(key not in HIDDEN_BY_DEFAULT)
            self.table.setColumnHidden(column, key in HIDDEN_BY_DEFAULT)
            action.toggled.connect(lambda on, column=column: self.table.setColumnHidden(column, not on))
        self.columns_button.setMenu(menu)

    def _build_detail(self) -> None:
        self.detail = QWidget()
        self.instruction_edit = QPlainTextEdit()
        self.input_edit = QPlainTextEdit()
        self.output_edit = QPlainTextEdit()
        self.note_edit = QLineEdit()
        self.tags_edit = QLineEdit()
        self.tags_edit.setPlaceholderText("comma-separated")
        self.rating_edit = _combo([("unrated", None)] + [("★" * n, n) for n in range(1, 6)])
        self.save_button = QPushButton("Save edits (Ctrl+S)")
        self.save_button.clicked.connect(self.save_detail)
        self.detail_message = QLabel("")
        self.detail_message.setWordWrap(True)
        self.detail_header = QLabel("No sample selected")
        form = QFormLayout(self.detail)
        form.addRow(self.detail_header)
        form.addRow("Instruction", self.instruction_edit)
        form.addRow("Input", self.input_edit)
        form.addRow("Output", self.output_edit)
        form.addRow("Note", self.note_edit)
        form.addRow("Tags", self.tags_edit)
        form.addRow("Rating", self.rating_edit)
        form.addRow(self.save_button)
        form.addRow(self.detail_message)

    def _build_actions(self) -> None:
        self.scope = _combo([("Selected rows", "selection"), ("Every filter result", "all")])
        self.bulk_row = QHBoxLayout()
        self.bulk_row.addWidget(QLabel("Apply to"))
        self.bulk_row.addWidget(self.scope)
        for text, slot in (("Accept", lambda: self.bulk_status(Status.ACCEPTED)),
                           ("Reject", lambda: self.bulk_status(Status.REJECTED)),
                           ("Pending", lambda: self.bulk_status(Status.PENDING)),
                           ("Tag…", self._on_tag_clicked), ("Delete", self.bulk_delete)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            self.bulk_row.addWidget(button)
        self.bulk_row.addStretch(1)
        self.bulk_row.addWidget(QLabel("Keys: A accept · R reject · S skip · J/K move · E edit · 1–5 rate"))
        # Undo/redo shortcuts belong to the window's Edit menu (it drives undo_stack()); a
        # second Ctrl+Z here would make the shortcut ambiguous and neither would fire.
        save = QAction("Save edits", self, shortcut=QKeySequence.StandardKey.Save, triggered=self.save_detail)
        save.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addAction(save)

    # -- panel contract --------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        super().set_context(context)
        project = self.project
        self._undo.clear()
        self.model.set_curation(project.curation if project else None)
        self._reload_choices()
        self.apply_filters()
        self.setEnabled(project is not None)

    def undo_stack(self) -> QUndoStack:
        return self._undo

    def shutdown(self) -> None:
        self._search_timer.stop()
        self.duplicates.shutdown()
        self.shape.shutdown()

    # -- filtering -------------------------------------------------------------------------
    def current_query(self) -> SampleQuery:
        def limit(box: QSpinBox) -> int | None:
            return None if box.value() < 0 else box.value()

        return replace(
            self.model.query,
            search=self.search.text(),
            statuses=self.status_filter.currentData(), origins=self.origin_filter.currentData(),
            run_ids=self.run_filter.currentData(), tag=self.tag_filter.currentData(),
            ratings=self.rating_filter.currentData(),
            instruction_words=(limit(self.min_instruction), limit(self.max_instruction)),
            output_words=(limit(self.min_output), limit(self.max_output)),
            blacklisted=self.blacklist_filter.currentData(), duplicates=self.duplicate_filter.currentData(),
        )

    def apply_filters(self) -> None:
        self._search_timer.stop()
        query = self.current_query()
        if self.project is None:
            self.count_label.setText("")
            return
        self.model.set_query(query)
        self._after_reset()
        self.duplicates.set_source(self.project.curation, self.project.db_path, query)
        self.shape.set_source(self.project.db_path, query)
        if self.tabs.currentWidget() is self.shape:
            self.shape.refresh()

    def set_filters(self, query: SampleQuery) -> None:
        """Put a query (a saved view, a chart click) into the filter controls and apply it."""
        widgets = [self.search, self.status_filter, self.origin_filter, self.run_filter, self.tag_filter,
                   self.rating_filter, self.blacklist_filter, self.duplicate_filter, self.min_instruction,
                   self.max_instruction, self.min_output, self.max_output]
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.search.setText(query.search)
            for combo, value in ((self.status_filter, query.statuses), (self.origin_filter, query.origins),
                                 (self.run_filter, query.run_ids), (self.tag_filter, query.tag),
                                 (self.rating_filter, query.ratings), (self.blacklist_filter, query.blacklisted),
                                 (self.duplicate_filter, query.duplicates)):
                index = combo.findData(value)
                if index < 0:
                    combo.addItem(str(value), value)
                    index = combo.count() - 1
                combo.setCurrentIndex(index)
            for box, value in ((self.min_instruction, query.instruction_words[0]),
                               (self.max_instruction, query.instruction_words[1]),
                               (self.min_output, query.output_words[0]), (self.max_output, query.output_words[1])):
                box.setValue(-1 if value is None else value)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.model.set_sort_key(query.sort, query.descending)
        header = self.table.horizontalHeader()
        header.blockSignals(True)  # show the view's order without the header re-sorting
        order = Qt.SortOrder.DescendingOrder if query.descending else Qt.SortOrder.AscendingOrder
        header.setSortIndicator(COLUMN_KEYS.index(query.sort) if query.sort in COLUMN_KEYS else -1, order)
        header.blockSignals(False)
        self.apply_filters()

    def _reload_choices(self) -> None:
        curation = self.project.curation if self.project else None
        for combo, items in (
            (self.run_filter, [("no run", (0,))] + [(f"run {r}", (r,)) for r in (curation.run_ids() if curation else [])]),
            (self.tag_filter, [(t, t) for t in (curation.tags() if curation else [])]),
        ):
            current = combo.currentData()
            combo.blockSignals(True)
            while combo.count() > 1:
                combo.removeItem(1)
            for label, value in items:
                combo.addItem(label, value)
            combo.setCurrentIndex(max(0, combo.findData(current)))
            combo.blockSignals(False)
        self.views.clear()
        if curation:
            for name in curation.views():
                self.views.addItem(name)

    def _after_reset(self) -> None:
        total = self.model.rowCount()
        self.count_label.setText(f"{total:,} samples")
        if total:
            self._select_row(0)
        else:
            self._show_sample(None)

    # -- the current sample ----------------------------------------------------------------
    def _select_row(self, row: int) -> None:
        row = max(0, min(row, self.model.rowCount() - 1))
        if self.model.rowCount() == 0:
            self._show_sample(None)
            return
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index)
        self._show_sample(self.model.sample_id(row))

    def _on_table_current_changed(self, current, _previous) -> None:
        self._show_sample(self.model.sample_id(current.row()) if current.isValid() else None)

    def _show_sample(self, sample_id: int | None) -> None:
        self._current_id = sample_id
        sample = self.project.samples.get(sample_id) if (self.project and sample_id is not None) else None
        self.detail.setEnabled(sample is not None)
        self.detail_message.setText("")
        if sample is None:
            self.detail_header.setText("No sample selected")
            for edit in (self.instruction_edit, self.input_edit, self.output_edit):
                edit.setPlainText("")
            self.note_edit.setText("")
            self.tags_edit.setText("")
            return
        origin = sample.origin.value + (f" · run {sample.run_id}" if sample.run_id else "")
        self.detail_header.setText(f"#{sample.id} · {sample.status.value} · {origin}")
        self.instruction_edit.setPlainText(sample.instruction)
        self.input_edit.setPlainText(sample.input)
        self.output_edit.setPlainText(sample.output)
        self.note_edit.setText(sample.note)
        self.tags_edit.setText(", ".join(sample.tags))
        self.rating_edit.setCurrentIndex(max(0, self.rating_edit.findData(sample.rating)))

    def save_detail(self) -> None:
        """Write every field of the detail pane that differs, as one undoable step."""
        if self.project is None or self._current_id is None:
            return
        sample = self.project.samples.get(self._current_id)
        if sample is None:
            return
        curation = self.project.curation
        text = (self.instruction_edit.toPlainText(), self.input_edit.toPlainText(), self.output_edit.toPlainText())
        tags = [t.strip() for t in self.tags_edit.text().split(",") if t.strip()]
        changes: list[Change] = []
        try:
            if text != (sample.instruction, sample.input, sample.output):
                changes.append(curation.edit_text(sample.id, *text))
            if self.note_edit.text() != sample.note:
                changes.append(curation.set_note(sample.id, self.note_edit.text()))
            if tags != sample.tags:
                changes.append(curation.set_tags(sample.id, tags))
            if self.rating_edit.currentData() != sample.rating:
                changes.append(curation.set_rating([sample.id], self.rating_edit.currentData()))
        except StudioError as exc:
            self.detail_message.setText(str(exc))
        if changes:
            self._push(changes, "edit sample", keep_rows=True, new_tags=tags != sample.tags)
            if not self.detail_message.text():
                self.detail_message.setText("Saved.")

    # -- changes ---------------------------------------------------------------------------
    def _push(self, changes: list[Change], text: str, *, keep_rows: bool = False, new_tags: bool = False) -> None:
        """Record already-committed changes on the undo stack, as one step."""
        refresh = self._refresh_after_undo
        if len(changes) == 1:
            self._undo.push(ChangeCommand(self.context, changes[0], refresh))
        else:
            self._undo.beginMacro(text)
            for change in changes:
                self._undo.push(ChangeCommand(self.context, change, refresh))
            self._undo.endMacro()
        if keep_rows:
            self.model.refresh_rows()
        else:
            self.model.refresh()
            self.count_label.setText(f"{self.model.rowCount():,} samples")
        if new_tags:  # the tag list is a query of its own: only when tags may have changed
            self._reload_choices()

    def _refresh_after_undo(self) -> None:
        row = self.table.currentIndex().row()
        self.model.refresh()
        self.count_label.setText(f"{self.model.rowCount():,} samples")
        self._select_row(max(row, 0))
        if self.tabs.currentWidget() is self.duplicates:
            self.duplicates.show_clusters()

    def target_ids(self) -> list[int]:
        if self.project is None:
            return []
        if self.scope.currentData() == "all":
            return self.project.curation.ids(self.model.query)
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        if not rows and self.table.currentIndex().isValid():  # nothing selected: the current sample
            rows = [self.table.currentIndex().row()]
        return [i for i in (self.model.sample_id(r) for r in rows) if i is not None]

    def bulk_status(self, status: Status) -> None:
        ids = self.target_ids()
        if ids:
            row = self.table.currentIndex().row()
            self._push([self.project.curation.set_status(ids, status)], "status")
            self._select_row(max(row, 0))

    def bulk_tag(self, tag: str) -> None:
        ids = self.target_ids()
        if ids and tag.strip():
            self._push([self.project.curation.add_tag(ids, tag.strip())], "tag", keep_rows=True, new_tags=True)

    def bulk_delete(self) -> None:
        ids = self.target_ids()
        if ids:
            row = self.table.currentIndex().row()
            self._push([self.project.curation.delete(ids)], "delete")
            self._select_row(max(row, 0))

    def _on_tag_clicked(self) -> None:
        tag, ok = QInputDialog.getText(self, "Tag samples", "Tag:")
        if ok:
            self.bulk_tag(tag)

    # -- keyboard review -------------------------------------------------------------------
    def review_key(self, key: int) -> bool:
        """Handle one review key on the current row; True when it was one."""
        if self.project is None:
            return False
        row = self.table.currentIndex().row()
        if key in (Qt.Key.Key_J, Qt.Key.Key_Down, Qt.Key.Key_S, Qt.Key.Key_Space):
            self._select_row(row + 1)
        elif key in (Qt.Key.Key_K, Qt.Key.Key_Up):
            self._select_row(row - 1)
        elif key == Qt.Key.Key_E:
            self.instruction_edit.setFocus()
        elif key in (Qt.Key.Key_A, Qt.Key.Key_R) and self._current_id is not None:
            status = Status.ACCEPTED if key == Qt.Key.Key_A else Status.REJECTED
            sample_id = self._current_id
            self._push([self.project.curation.set_status([sample_id], status)], "review")
            # The row stays when the filter still shows it; otherwise the next one slid into its place.
            self._select_row(row + 1 if self.model.sample_id(row) == sample_id else row)
        elif Qt.Key.Key_0 <= key <= Qt.Key.Key_5 and self._current_id is not None:
            rating = key - Qt.Key.Key_0 or None
            self._push([self.project.curation.set_rating([self._current_id], rating)], "rate", keep_rows=True)
            self._show_sample(self._current_id)
        else:
            return False
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table and event.type() == QEvent.Type.KeyPress:
            key_event: QKeyEvent = event  # type: ignore[assignment]
            plain = key_event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
            if plain and self.review_key(key_event.key()):
                return True
        return super().eventFilter(watched, event)

    # -- duplicates, charts, views, snapshots ----------------------------------------------
    def _on_tabs_current_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.shape:
            self.shape.refresh()
        elif self.tabs.currentWidget() is self.duplicates:
            self.duplicates.show_clusters()

    def _on_duplicates_keep_requested(self, ids: list, keep: int) -> None:
        self._push([self.project.curation.keep_one(ids, keep)], "keep one")
        self.duplicates.show_clusters()

    def _on_shape_filter_requested(self, field: str, value: object) -> None:
        query = self.current_query()
        if field == "status":
            query = replace(query, statuses=(value,))
        elif field == "origin":
            query = replace(query, origins=(value,))
        elif field == "run_id":
            query = replace(query, run_ids=(value or 0,))
        elif field in ("instruction_words", "output_words"):
            query = replace(query, **{field: tuple(value)})
        self.set_filters(query)
        self.tabs.setCurrentIndex(0)

    def _on_views_activated(self, _index: int) -> None:
        if self.project is not None:
            view = self.project.curation.views().get(self.views.currentText())
            if view is not None:
                self.set_filters(view)

    def _on_save_view_clicked(self) -> None:
        name, ok = QInputDialog.getText(self, "Save view", "Name of this view:")
        if ok and name.strip() and self.project is not None:
            self.project.curation.save_view(name.strip(), self.current_query())
            self._reload_choices()

    def open_snapshots(self) -> None:
        from studio.ui.snapshot_dialog import SnapshotDialog

        if self.project is not None:
            SnapshotDialog(self.project, self.current_query(), self).exec()
