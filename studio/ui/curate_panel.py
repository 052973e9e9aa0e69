"""Curate: review tens of thousands of samples by keyboard, filter, fix, dedupe, freeze.

The panel only gathers input and calls :mod:`studio.core.curation`. Small changes (a review
key, an edit, a few selected rows) commit at once on the GUI thread and go on the undo stack
as a :class:`ChangeCommand`. Big ones ("Every filter result", selections above
``BIG_CHANGE`` rows) run as jobs on the window's runner, on a worker's own project handle,
and so do their undo and redo (:class:`JobChangeCommand`); while one runs, the panel's write
actions are off (a GUI write would wait on SQLite's write lock) and the table says why.
Deleting moves samples to the project's Trash (Curate ▸ Trash…), so a delete can be undone
after a restart too. Views refresh from the project context's signals, whoever wrote.

The panel's current query (``current_query()``) is its one source of truth: the table model
shows it, and the Duplicates and Data shape jobs are handed it when they start.

Review keys on the table: A accept, R reject, S/Space skip, J/K or Down/Up move,
E edit, 1-5 rate, 0 clear rating.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFormLayout, QFrame, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit,
    QMenu, QMessageBox, QPlainTextEdit, QPushButton, QScrollArea, QSizePolicy, QSpinBox, QSplitter, QTableView, QTabWidget, QToolButton,
    QVBoxLayout, QWidget,
)

from studio.core.curation import Change, SampleQuery
from studio.core.wording import count_noun
from studio.core.errors import StudioError
from studio.core.project import Project
from studio.core.samples import Origin, Status
from studio.ui.elided_label import ElidedLabel
from studio.ui.change_command import ChangeCommand, JobChangeCommand
from studio.ui.data_shape_widget import DataShapeWidget, root_verb_pairs
from studio.ui.duplicates_widget import DuplicatesWidget
from studio.ui.flow_layout import FlowLayout
from studio.ui.jobs import Job, JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.panels import Panel
from studio.ui.project_context import ProjectContext
from studio.ui.sample_table_model import COLUMN_KEYS, COLUMNS, SampleTableModel

SEARCH_DEBOUNCE_MS = 200
EXTERNAL_REFRESH_MS = 500
ROW_HEIGHT = 22
HIDDEN_BY_DEFAULT = {"input", "teacher_model", "tags"}
ANY = "Any"
BIG_CHANGE = 500  # rows: above this a change, its undo and its redo run as jobs
CONFIRM_DELETE_ABOVE = 10  # deleting more samples than this asks first
READ_JOBS = ("curate-shape", "curate-duplicates", "curate-verbs", "curate-choices")  # latest wins; cancelled on shutdown
NO_SAMPLES_HINT = "No samples yet: import a file (File ▸ Import Samples) or generate some on the Generate page."
NO_MATCH_HINT = "No sample matches these filters: loosen them, or clear the search."

KEYS_HINT = "Keys: A accept · R reject · S skip · J/K move · E edit · 1–5 rate"
KEYS_TIP = ("Review keys on the table: A accept, R reject, S or Space skip, J/K or Down/Up move, "
            "E edit, 1–5 rate, 0 clear the rating")
COMPACT_HEIGHT = 560  # px: a shorter panel starts with its filter rows folded away, so the table keeps room

Ids = list[int] | Callable[[Project], list[int]]  # ids, or how a job finds them on its own handle


def _combo(items: list[tuple[str, object]]) -> QComboBox:
    combo = QComboBox()
    for label, value in items:
        combo.addItem(label, value)
    return combo


def _group(*widgets: QWidget) -> QWidget:
    """Widgets that wrap as one (a label stays with its box)."""
    group = QWidget()
    row = QHBoxLayout(group)
    row.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        row.addWidget(widget)
    return group


def _length_box(tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(-1, 100_000)
    box.setValue(-1)
    box.setSpecialValueText("–")  # -1: no limit
    box.setToolTip(tip)
    # Room for five digits, not for the range's six and a sign: the filter rows stay compact.
    box.setMaximumWidth(box.fontMetrics().horizontalAdvance("99999") + 40)
    return box


# -- job bodies: each runs on a worker thread with its own project handle ------------------
def _resolve(project: Project, ids: Ids) -> list[int]:
    return ids(project) if callable(ids) else ids


def _status_job(project: Project, ids: Ids, status: str):
    return project.curation.set_status_steps(_resolve(project, ids), status)


def _tag_job(project: Project, ids: Ids, tag: str):
    return project.curation.add_tag_steps(_resolve(project, ids), tag)


def _delete_job(project: Project, ids: Ids):
    return project.curation.delete_steps(_resolve(project, ids))


def _apply_job(project: Project, change: Change, undo: bool):
    return project.curation.apply_steps(change, undo=undo)


def _choices_job(project: Project) -> tuple[list[int], list[str]]:
    return project.curation.run_ids(), project.curation.tags()


def _nearest_revision_job(project: Project, evaluation_id: int) -> tuple:
    """What Curate's nearest filter shows for ``evaluation_id`` (its stored rows): compared, not shown."""
    from studio.core.evaluation.lost import stored_nearest

    return evaluation_id, tuple(stored_nearest(project.conn, evaluation_id))


def _shape_job(project: Project, query: SampleQuery):
    return project.curation.shape_steps(query)


def _duplicates_job(project: Project, query: SampleQuery, threshold: float):
    return project.curation.find_duplicates_steps(query, threshold)


class _RowsOf:
    """Job-side ids of table rows: the query's ids at those positions (no paging on the GUI thread)."""

    def __init__(self, query: SampleQuery, ranges: list[tuple[int, int]]):
        self.query, self.ranges = query, ranges

    def __call__(self, project: Project) -> list[int]:
        ids = project.curation.ids(self.query)
        return [ids[row] for top, bottom in self.ranges for row in range(top, min(bottom, len(ids) - 1) + 1)]


FIRST_PAGE_ROWS = 200  # where select_sample looks


class CuratePanel(Panel):
    title = "Curate"
    icon = "curate.svg"

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        self._undo = QUndoStack(self)
        self.model = SampleTableModel(parent=self)
        self.model.sort_changed.connect(self._on_model_sort_changed)
        self.model.modelReset.connect(lambda: self._update_filters_button())  # a new query: recount the filters
        self._query = SampleQuery()
        self._nearest_revision: tuple | None = None  # the nearest filter's stored rows last shown
        self._current_id: int | None = None
        self._write_job: Job | None = None
        self._undo_was_active = False  # the undo stack's state before a write job made it inactive
        self._seen_state: tuple[int, int] | None = None  # the data the views last showed
        self._shape_stale = True
        self._connections: list[tuple[object, Callable]] = []
        self.trash_dialog = None
        self.snapshot_dialog = None
        # Others' writes (a generation run commits many times a second) refresh the views at
        # most this often, and only while the panel is shown; a hidden panel catches up on show.
        self._external_timer = QTimer(self, singleShot=True, interval=EXTERNAL_REFRESH_MS)
        self._external_timer.timeout.connect(self._refresh_from_store)
        self._external_pending = False
        self._keep_detail = False  # a refresh re-selects the row it showed: keep the editors as they are
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self.apply_filters)
        self._build_filters()
        self._build_table()
        self._build_detail()
        self._build_actions()

        self.duplicates = DuplicatesWidget()
        self.duplicates.find_requested.connect(self.find_duplicates)
        self.duplicates.keep_requested.connect(self._on_duplicates_keep_requested)
        self.shape = DataShapeWidget()
        self.shape.filter_requested.connect(self._on_shape_filter_requested)
        self.shape.verbs_requested.connect(self.parse_root_verbs)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.table_holder)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([600, 400])  # the table gets the larger share from the start, not only on resize
        table_page = QWidget()
        table_layout = QVBoxLayout(table_page)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addLayout(self.bulk_row)
        table_layout.addWidget(self.busy_label)
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
        self._save_view_button = save_view
        self.columns_button = QToolButton()
        self.columns_button.setText("Columns")
        self.columns_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        snapshots = QPushButton("Snapshots…")
        snapshots.clicked.connect(self.open_snapshots)
        trash = QPushButton("Trash…")
        trash.setToolTip("Deleted samples: restore them, or empty the Trash")
        trash.clicked.connect(self.open_trash)

        # Three rows (search and tools; categories; lengths and checks), each a flow that wraps
        # its groups onto another line when narrow: at 1280 px each row is one line, at the
        # window's minimum size (720 px) no label or box is cut.
        # "Filters" folds the category, length and check rows away; a short window starts folded
        # (see resizeEvent) until the user chooses.
        self.filters_button = QToolButton(checkable=True, checked=True, text="Filters")
        self.filters_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.filters_button.setArrowType(Qt.ArrowType.DownArrow)
        self.filters_button.setToolTip("Show or hide the status, origin, run, tag, rating, length and check filters")
        self.filters_button.clicked.connect(self._on_filters_button_clicked)
        self._filters_chosen = False  # the user toggled the filter rows: no more automatic folding
        # Set by the Train panel's "Hardest samples": only that run's scored samples, worst loss first.
        self.hardest_button = QToolButton(text="", toolTip="Showing one training run's hardest samples, worst "
                                          "first; click to show every sample again")
        self.hardest_button.clicked.connect(self.clear_hardest_run)
        self.hardest_button.hide()
        # Set by the Evaluate panel: the training samples nearest to an evaluation's lost prompts.
        self.nearest_button = QToolButton(text="", toolTip="Showing the training samples nearest (ROUGE-L) to the "
                                          "prompts the student lost, nearest first; click to show every sample again")
        self.nearest_button.clicked.connect(self.clear_eval_nearest)
        self.nearest_button.hide()
        first = FlowLayout()
        self.search.setMinimumWidth(self.search.fontMetrics().horizontalAdvance("Search instruction") + 40)
        self.search.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        for widget in (self.search, self.count_label, self.hardest_button, self.nearest_button, self.filters_button, self.views, save_view, self.columns_button,
                       snapshots, trash):
            first.addWidget(widget)
        second = FlowLayout()
        for label, widget in (("Status", self.status_filter), ("Origin", self.origin_filter), ("Run", self.run_filter),
                              ("Tag", self.tag_filter), ("Rating", self.rating_filter)):
            second.addWidget(_group(QLabel(label), widget))
        third = FlowLayout()
        third.addWidget(_group(QLabel("Instruction words"), self.min_instruction, QLabel("to"), self.max_instruction))
        third.addWidget(_group(QLabel("Output words"), self.min_output, QLabel("to"), self.max_output))
        third.addWidget(self.blacklist_filter)
        third.addWidget(self.duplicate_filter)
        self.filters_box = QWidget()
        folding = QVBoxLayout(self.filters_box)
        folding.setContentsMargins(0, 0, 0, 0)
        folding.addLayout(second)
        folding.addLayout(third)
        self.filter_rows = QVBoxLayout()
        self.filter_rows.addLayout(first)
        self.filter_rows.addWidget(self.filters_box)

    def set_filters_shown(self, shown: bool) -> None:
        """Show or fold away the filter rows below the search (the filters stay in force)."""
        self.filters_box.setVisible(shown)
        self.filters_button.setChecked(shown)
        self.filters_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _update_filters_button(self) -> None:
        """Say how many folded-away filters are in force, so a hidden filter is never a surprise."""
        default, query = SampleQuery(), self._query
        fields = ("statuses", "origins", "run_ids", "tag", "ratings", "instruction_words", "output_words",
                  "blacklisted", "duplicates")
        active = sum(getattr(query, name) != getattr(default, name) for name in fields)
        self.filters_button.setText(f"Filters ({active})" if active else "Filters")

    def _on_filters_button_clicked(self, checked: bool) -> None:
        self._filters_chosen = True
        self.set_filters_shown(checked)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if not self._filters_chosen:
            self.set_filters_shown(event.size().height() >= COMPACT_HEIGHT)

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
        # What an empty table means, and what to do about it.
        self.empty_hint = QLabel("")
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setProperty("role", "muted")
        self.empty_hint.hide()
        self.table_holder = QWidget()
        holder = QVBoxLayout(self.table_holder)
        holder.setContentsMargins(0, 0, 0, 0)
        holder.addWidget(self.empty_hint)
        holder.addWidget(self.table, 1)

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
        for edit in (self.instruction_edit, self.input_edit, self.output_edit):
            edit.setMinimumHeight(edit.fontMetrics().lineSpacing() * 3 + 12)  # three lines, even when short
        self.detail_form = QWidget()
        form = QFormLayout(self.detail_form)
        form.setContentsMargins(6, 0, 4, 0)
        # Short windows scroll the form (never sideways) instead of squeezing its editors to nothing.
        scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.detail_form)
        self.detail_scroll = scroll
        detail_layout = QVBoxLayout(self.detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(scroll)
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
        self.bulk_row = FlowLayout()
        self.bulk_row.addWidget(_group(QLabel("Apply to"), self.scope))
        self._write_widgets: list[QWidget | QAction] = [self.save_button, self._save_view_button]
        for text, slot in (("Accept", lambda: self.bulk_status(Status.ACCEPTED)),
                           ("Reject", lambda: self.bulk_status(Status.REJECTED)),
                           ("Pending", lambda: self.bulk_status(Status.PENDING)),
                           ("Tag…", self._on_tag_clicked), ("Delete", self.bulk_delete)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            self.bulk_row.addWidget(button)
            self._write_widgets.append(button)
        # The keys hint takes what the line has left, elided when narrow; the tooltip has all of it.
        self.keys_hint = ElidedLabel(KEYS_HINT, KEYS_TIP)
        self.keys_hint.setProperty("role", "muted")
        self.bulk_row.addWidget(self.keys_hint)
        self.busy_label = QLabel("")
        self.busy_label.setProperty("role", "muted")
        self.busy_label.hide()
        # Undo/redo shortcuts belong to the window's Edit menu (it drives undo_stack()); a
        # second Ctrl+Z here would make the shortcut ambiguous and neither would fire.
        save = QAction("Save edits", self, shortcut=QKeySequence.StandardKey.Save, triggered=self.save_detail)
        save.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addAction(save)
        self.trash_action = QAction("Trash…", self, triggered=self.open_trash)
        self.trash_action.setToolTip("Deleted samples: restore them, or empty the Trash")
        self.find_duplicates_action = QAction("Find Duplicates", self, triggered=self._on_find_duplicates_triggered)
        self.snapshots_action = QAction("Snapshots…", self, triggered=self.open_snapshots)
        self.find_action = QAction("Find", self, shortcut=QKeySequence.StandardKey.Find, triggered=self.focus_search)
        self.find_action.setToolTip("Search instruction, input and output")
        self.addAction(self.find_action)

    # -- panel contract --------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections = []
        for key in READ_JOBS:
            self.jobs.cancel(key)
        if self._write_job is not None:  # a cancellable write rolls back; an undo or redo ends on its own
            self._write_job.cancel()
            self._write_job = None
            self._show_busy(None)
        for dialog in (self.trash_dialog, self.snapshot_dialog):
            if dialog is not None:  # they belong to the project that is going
                dialog.close()
                dialog.deleteLater()
        self.trash_dialog = self.snapshot_dialog = None
        super().set_context(context)
        self._undo.clear()
        curation = self.project.curation if self.project else None
        self.model.set_curation(curation)
        self.duplicates.set_curation(curation)
        if context is not None:
            for signal, slot in ((context.samples_changed, self._on_samples_changed),
                                 (context.views_changed, self._reload_views),
                                 (context.trash_changed, self._on_trash_changed),
                                 (context.evaluations_changed, self._on_evaluations_changed)):
                signal.connect(slot)
                self._connections.append((signal, slot))
        self._reload_choices()
        self._reload_views()
        # another project's run and evaluation ids mean nothing here
        self._query = replace(self._query, hardest_run=None, nearest_eval=None)
        self.hardest_button.hide()
        self.nearest_button.hide()
        self.apply_filters()
        self.setEnabled(context is not None)

    def undo_stack(self) -> QUndoStack:
        return self._undo

    def menu_actions(self) -> list[QAction]:
        return [self.find_action, self.trash_action, self.find_duplicates_action, self.snapshots_action]

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def shutdown(self) -> None:
        """Cancel this panel's jobs and return at once (a cancelled write rolls back)."""
        self._search_timer.stop()
        for key in READ_JOBS:
            self.jobs.cancel(key)
        if self._write_job is not None:
            self._write_job.cancel()

    # -- one write at a time ---------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A write job is running: the panel's write actions wait for it."""
        return self._write_job is not None

    def run_write(self, title: str, fn: Callable, *args, on_done: Callable | None = None,
                  on_error: Callable[[str], None] | None = None, cancellable: bool = True) -> Job | None:
        """Run a write ``fn(handle, *args)`` as a job, the panel read-only meanwhile; None if one runs."""
        if self.context is None:
            return None
        if self._write_job is not None:
            self.status_message.emit(f"Wait for “{self._write_job.title}” to finish.")
            return None
        job = self.jobs.submit(title, fn, *args, project=self.context, on_done=on_done, on_error=on_error,
                               cancellable=cancellable)
        self._write_job = job
        job.finished.connect(lambda: self._on_write_finished(job))
        self._show_busy(title)
        return job

    def _on_write_finished(self, job: Job) -> None:
        if self._write_job is job:
            self._write_job = None
            self._show_busy(None)

    def _show_busy(self, title: str | None) -> None:
        busy = title is not None
        for widget in self._write_widgets:
            widget.setEnabled(not busy)
        for action in (self.trash_action, self.find_duplicates_action):
            action.setEnabled(not busy)
        self.table.setEnabled(not busy)
        self.detail.setEnabled(not busy and self._current_id is not None)
        self.duplicates.set_busy(busy or self.jobs.is_busy("curate-duplicates"))
        if self.trash_dialog is not None:
            self.trash_dialog.setEnabled(not busy)
        # The window's Edit ▸ Undo/Redo follow the active stack: none while a write runs.
        if busy:
            self._undo_was_active = self._undo.isActive()
            self._undo.setActive(False)
        elif self._undo_was_active and self.isVisible():  # not if the user moved to another panel meanwhile
            self._undo.setActive(True)
        self.busy_label.setText(f"{title}… The table is read-only until it finishes." if busy else "")
        self.busy_label.setVisible(busy)

    # -- refreshing from the project's change signals -------------------------------------
    def _mark_seen(self) -> None:
        self._seen_state = self.project.curation.data_state() if self.project else None

    def _on_samples_changed(self) -> None:
        """Someone wrote samples (this panel, a job, an import, the generator): show the new data."""
        if self.project is None or self.project.conn is None:
            return  # the project closed before the coalesced signal arrived
        if self._seen_state == self.project.curation.data_state():
            return  # this panel already showed its own change
        if not self.isVisible():
            self._external_pending = True  # refreshed when shown
            return
        if not self._external_timer.isActive():
            self._external_timer.start()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._external_pending:
            self._external_timer.start(0)

    def _refresh_from_store(self) -> None:
        """Show what others wrote, keeping the reviewer's place: same row, same scroll, same editors."""
        self._external_pending = False
        if self.project is None or self.project.conn is None:
            return
        row = self.table.currentIndex().row()
        shown = self._current_id
        scroll = self.table.verticalScrollBar().value()
        self.model.refresh()
        self._show_count()
        if not self.model.rowCount():
            self._show_sample(None)
        elif row >= 0 and self.model.sample_id(row) == shown:
            self._keep_detail = True  # the same sample: an edit in progress stays
            try:
                index = self.model.index(row, 0)
                self.table.selectionModel().setCurrentIndex(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
            finally:
                self._keep_detail = False
            self.table.verticalScrollBar().setValue(scroll)
        else:
            self._select_row(max(row, 0))
        self._reload_choices()
        self._shape_stale = True
        if self.tabs.currentWidget() is self.duplicates:
            self.duplicates.show_clusters()
        elif self.tabs.currentWidget() is self.shape:
            self.refresh_shape()
        self._mark_seen()

    # -- filtering -------------------------------------------------------------------------
    def current_query(self) -> SampleQuery:
        """The one query the table, the charts, duplicates, snapshots and bulk actions use."""
        return self._query

    def _query_from_controls(self) -> SampleQuery:
        def limit(box: QSpinBox) -> int | None:
            return None if box.value() < 0 else box.value()

        return replace(
            self._query,
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
        self._query = self._query_from_controls()
        if self.project is None:
            self.count_label.setText("")
            self.empty_hint.hide()
            return
        self.model.set_query(self._query)
        self._after_reset()
        self._shape_stale = True
        if self.tabs.currentWidget() is self.shape:
            self.refresh_shape()

    def _on_model_sort_changed(self, sort: str, descending: bool) -> None:
        """A header click sorted the model: the panel's query follows."""
        self._query = replace(self._query, sort=sort, descending=descending)
        self._after_reset()

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
        self._query = replace(self._query, sort=query.sort, descending=query.descending)
        header = self.table.horizontalHeader()
        header.blockSignals(True)  # show the view's order without the header re-sorting
        order = Qt.SortOrder.DescendingOrder if query.descending else Qt.SortOrder.AscendingOrder
        header.setSortIndicator(COLUMN_KEYS.index(query.sort) if query.sort in COLUMN_KEYS else -1, order)
        header.blockSignals(False)
        self.apply_filters()

    def show_hardest_run(self, run_id: int) -> None:
        """Only the samples training run ``run_id`` scored, by its per-sample loss, worst first."""
        self._query = SampleQuery(hardest_run=run_id)
        self.nearest_button.hide()
        self.hardest_button.setText(f"Hardest of run #{run_id} ✕")
        self.hardest_button.show()
        self.set_filters(SampleQuery(hardest_run=run_id))

    def show_eval_nearest(self, evaluation_id: int) -> None:
        """Only the training samples nearest to evaluation ``evaluation_id``'s lost prompts, nearest first."""
        self._query = SampleQuery(nearest_eval=evaluation_id)
        self.hardest_button.hide()
        self.nearest_button.setText(f"Nearest to evaluation #{evaluation_id}'s lost prompts ✕")
        self.nearest_button.show()
        self._nearest_revision = None
        self.set_filters(SampleQuery(nearest_eval=evaluation_id))
        self._check_nearest(apply=False)

    def _on_evaluations_changed(self) -> None:
        # A run publishes EVALUATIONS for every answer: the table is reset only when the nearest samples of the
        # evaluation shown were found again (its stored rows changed), read on a worker.
        if self._query.nearest_eval is not None:
            self._check_nearest(apply=True)

    def _check_nearest(self, *, apply: bool) -> None:
        if self.context is None or self._query.nearest_eval is None:
            return
        self.jobs.submit("Checking the nearest samples", _nearest_revision_job, self._query.nearest_eval,
                         project=self.context, key="curate-nearest", quiet=True,
                         on_done=lambda revision, a=apply: self._on_nearest_revision(revision, a),
                         on_error=lambda _message: self.apply_filters())  # cannot tell: show it again

    def _on_nearest_revision(self, revision: tuple, apply: bool) -> None:
        if revision[0] != self._query.nearest_eval:
            return  # the filter changed meanwhile
        changed = self._nearest_revision is not None and revision != self._nearest_revision
        self._nearest_revision = revision
        if apply and changed:
            self.apply_filters()

    def clear_eval_nearest(self) -> None:
        self._query = replace(self._query, nearest_eval=None, sort="id", descending=False)
        self.nearest_button.hide()
        self.set_filters(self._query)

    def select_sample(self, sample_id: int) -> None:
        """Show every sample, newest first, with this one selected. A sample just sent here is on the first
        page; only that page is searched (the model reads pages lazily: no 52K-row scan on the GUI thread)."""
        self.set_filters(SampleQuery(sort="id", descending=True))
        first_page = range(min(self.model.rowCount(), FIRST_PAGE_ROWS))
        row = next((r for r in first_page if self.model.sample_id(r) == sample_id), None)
        if row is not None:
            self._select_row(row)

    def clear_hardest_run(self) -> None:
        self._query = replace(self._query, hardest_run=None, sort="id", descending=False)
        self.hardest_button.hide()
        self.set_filters(self._query)

    def _reload_choices(self) -> Job | None:
        """Refill the run and tag lists as a job: the tag list reads every tagged sample (30 ms at 52K)."""
        if self.context is None:
            self._fill_choices(([], []))
            return None
        return self.jobs.submit("Listing runs and tags", _choices_job, project=self.context, key="curate-choices",
                                quiet=True, on_done=self._fill_choices)

    def _fill_choices(self, choices: tuple[list[int], list[str]]) -> None:
        run_ids, tags = choices
        for combo, items in (
            (self.run_filter, [("no run", (0,))] + [(f"run {r}", (r,)) for r in run_ids]),
            (self.tag_filter, [(t, t) for t in tags]),
        ):
            current = combo.currentData()
            combo.blockSignals(True)
            while combo.count() > 1:
                combo.removeItem(1)
            for label, value in items:
                combo.addItem(label, value)
            if combo.findData(current) < 0:  # the filter in force stays shown, even if nothing has it now
                combo.addItem(str(current), current)
            combo.setCurrentIndex(combo.findData(current))
            combo.blockSignals(False)

    def _reload_views(self) -> None:
        self.views.clear()
        if self.project is not None:
            for name in self.project.curation.views():
                self.views.addItem(name)

    def _show_count(self) -> None:
        total = self.model.rowCount()
        self.count_label.setText(count_noun(total, "sample"))
        if total:
            self.empty_hint.hide()
        else:
            self.empty_hint.setText(self._empty_hint())
            self.empty_hint.show()

    def _on_trash_changed(self) -> None:
        if self.model.rowCount() == 0:  # the empty table's hint counts what the Trash holds
            self._show_count()

    def _empty_hint(self) -> str:
        if self.project is not None and not self.project.samples.is_empty():
            return NO_MATCH_HINT
        trashed = sum(batch.sample_count for batch in self.project.trash.batches()) if self.project else 0
        if trashed:
            return (f"No samples: {count_noun(trashed, 'sample')} in the Trash. "
                    "Curate ▸ Trash… restores them; Ctrl+Z undoes the last delete.")
        return NO_SAMPLES_HINT

    def _after_reset(self) -> None:
        self._show_count()
        if self.model.rowCount():
            self._select_row(0)
        else:
            self._show_sample(None)
        self._mark_seen()

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
        sample_id = self.model.sample_id(current.row()) if current.isValid() else None
        if self._keep_detail and sample_id == self._current_id:
            return
        self._show_sample(sample_id)

    def _show_sample(self, sample_id: int | None) -> None:
        self._current_id = sample_id
        sample = self.project.samples.get(sample_id) if (self.project and sample_id is not None) else None
        self.detail.setEnabled(sample is not None and not self.busy)
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
        if self.project is None or self._current_id is None or self.busy:
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
    def _command(self, change: Change) -> ChangeCommand:
        if len(change) > BIG_CHANGE:
            return JobChangeCommand(self.context, change, self._apply_as_job)
        return ChangeCommand(self.context, change, self._refresh_after_undo)

    def _push(self, changes: list[Change], text: str, *, keep_rows: bool = False, new_tags: bool = False) -> None:
        """Record small, already-committed changes on the undo stack as one step, and show them now."""
        if len(changes) == 1:
            self._undo.push(self._command(changes[0]))
        else:
            self._undo.beginMacro(text)
            for change in changes:
                self._undo.push(self._command(change))
            self._undo.endMacro()
        if keep_rows:
            self.model.refresh_rows()
        else:
            self.model.refresh()
            self._show_count()
        if new_tags:  # the tag list is a query of its own: only when tags may have changed
            self._reload_choices()
        self._mark_seen()  # the change signal that follows finds nothing new to show

    def _refresh_after_undo(self) -> None:
        row = self.table.currentIndex().row()
        self.model.refresh()
        self._show_count()
        self._select_row(max(row, 0))
        if self.tabs.currentWidget() is self.duplicates:
            self.duplicates.show_clusters()
        self._mark_seen()

    def _apply_as_job(self, change: Change, undo: bool, on_error: Callable[[str], None]) -> None:
        """Undo or redo of a big change: a job (not cancellable: the undo stack has moved already)."""
        verb = "Undoing" if undo else "Redoing"
        if self.run_write(f"{verb} “{change.description}”", _apply_job, change, undo, cancellable=False,
                          on_error=on_error) is None:
            on_error("another change is still being written")

    def _on_job_change_done(self, change: Change) -> None:
        """A big change committed in a job: onto the undo stack (its rows refresh from the signal)."""
        if len(change):  # a delete of rows gone meanwhile changed nothing: nothing to undo
            self._undo.push(self._command(change))

    def _targets(self) -> tuple[int, Ids]:
        """How many samples a bulk action touches, and their ids (or how a job finds them)."""
        if self.project is None:
            return 0, []
        query = self._query
        if self.scope.currentData() == "all":
            total = self.model.rowCount()
            if total <= BIG_CHANGE:
                return total, self.project.curation.ids(query)
            return total, lambda project: project.curation.ids(query)
        # Selection ranges, not selectedRows(): Ctrl+A on 52K rows must not build 52K indexes.
        ranges = [(r.top(), r.bottom()) for r in self.table.selectionModel().selection()]
        if not ranges and self.table.currentIndex().isValid():  # nothing selected: the current sample
            row = self.table.currentIndex().row()
            ranges = [(row, row)]
        ranges = _merged(ranges)
        total = sum(bottom - top + 1 for top, bottom in ranges)
        if total <= BIG_CHANGE:
            ids = [self.model.sample_id(row) for top, bottom in ranges for row in range(top, bottom + 1)]
            return total, [i for i in ids if i is not None]
        return total, _RowsOf(query, ranges)

    def target_ids(self) -> list[int]:
        """The ids a bulk action would touch now (resolved here: for tests and small scopes)."""
        _count, ids = self._targets()
        return _resolve(self.project, ids) if self.project else []

    def bulk_status(self, status: Status) -> None:
        if self.busy:
            return
        count, ids = self._targets()
        if not count:
            return
        if callable(ids):
            self.run_write(f"Marking {count_noun(count, 'sample')} {status.value}", _status_job, ids, status.value,
                           on_done=self._on_job_change_done)
            return
        row = self.table.currentIndex().row()
        self._push([self.project.curation.set_status(ids, status)], "status")
        self._select_row(max(row, 0))

    def bulk_tag(self, tag: str) -> None:
        tag = tag.strip()
        if self.busy or not tag:
            return
        count, ids = self._targets()
        if not count:
            return
        if callable(ids):
            self.run_write(f"Tagging {count_noun(count, 'sample')} '{tag}'", _tag_job, ids, tag,
                           on_done=self._on_job_change_done)
            return
        self._push([self.project.curation.add_tag(ids, tag)], "tag", keep_rows=True, new_tags=True)

    def confirm_delete(self, count: int) -> bool:
        """More than a handful: ask, naming the count and where the samples go."""
        answer = QMessageBox.question(
            self, "Delete samples",
            f"Delete {count_noun(count, 'sample')}? They go to the Trash (Curate ▸ Trash…) and can be restored.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def bulk_delete(self) -> None:
        if self.busy:
            return
        count, ids = self._targets()
        if not count or (count > CONFIRM_DELETE_ABOVE and not self.confirm_delete(count)):
            return
        if callable(ids):
            self.run_write(f"Deleting {count_noun(count, 'sample')}", _delete_job, ids,
                           on_done=lambda change: (self._on_job_change_done(change), self._say_deleted(change)))
            return
        row = self.table.currentIndex().row()
        deletion = self.project.curation.delete(ids)
        self._push([deletion], "delete")
        self._select_row(max(row, 0))
        self._say_deleted(deletion)

    def _say_deleted(self, deletion: Change) -> None:
        if len(deletion):
            self.status_message.emit(f"Moved {count_noun(len(deletion), 'sample')} to the Trash: Ctrl+Z undoes, "
                                     "Curate ▸ Trash… restores.")

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
        writes = key in (Qt.Key.Key_A, Qt.Key.Key_R) or Qt.Key.Key_0 <= key <= Qt.Key.Key_5
        if writes and self.busy:
            return True  # swallowed: the write waits for the running job
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

    # -- duplicates, charts, views, snapshots, trash -----------------------------------------
    def _on_tabs_current_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.shape and self._shape_stale:
            self.refresh_shape()
        elif self.tabs.currentWidget() is self.duplicates:
            self.duplicates.show_clusters()

    def refresh_shape(self) -> Job | None:
        """Recount the charts for the current query as a job; a newer one replaces it."""
        if self.context is None:
            return None
        self._shape_stale = False
        self.shape.show_counting()
        return self.jobs.submit("Counting the data's shape", _shape_job, self._query, project=self.context,
                                key="curate-shape", quiet=True, on_done=self.shape.show_shape,
                                on_error=self.shape.show_error)

    def parse_root_verbs(self) -> Job | None:
        if self.context is None:
            return None
        self.shape.show_verbs_started()
        return self.jobs.submit("Parsing root verbs", root_verb_pairs, self._query, project=self.context,
                                key="curate-verbs", on_yield=self.shape.show_verbs,
                                on_done=lambda _result: self.shape.show_verbs_finished(),
                                on_error=self.shape.show_verbs_error)

    def find_duplicates(self, threshold: float = 0.7) -> Job | None:
        """Cluster the current query's instructions as a job and remember the clusters."""
        if self.context is None or self.jobs.is_busy("curate-duplicates"):
            return None
        self.duplicates.set_busy(True)
        self.duplicates.show_searching()
        job = self.jobs.submit("Finding near-duplicates", _duplicates_job, self._query, threshold,
                               project=self.context, key="curate-duplicates",
                               on_done=lambda _count: self.duplicates.search_finished(),
                               on_error=self.duplicates.show_error)
        job.finished.connect(lambda: self.duplicates.set_busy(self.busy))
        return job

    def _on_find_duplicates_triggered(self) -> None:
        self.tabs.setCurrentWidget(self.duplicates)
        self.find_duplicates(self.duplicates.threshold.value())

    def _on_duplicates_keep_requested(self, ids: list, keep: int) -> None:
        if self.busy or self.project is None:
            return
        self._push([self.project.curation.keep_one(ids, keep)], "keep one")
        self.duplicates.show_clusters()

    def _on_shape_filter_requested(self, field: str, value: object) -> None:
        query = self._query
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
            self.project.curation.save_view(name.strip(), self._query)  # the views list follows views_changed

    def open_snapshots(self):
        from studio.ui.snapshot_dialog import SnapshotDialog

        if self.context is None:
            return None
        self.snapshot_dialog = SnapshotDialog(self.context, self.jobs, self._query, self)
        self.snapshot_dialog.show()
        return self.snapshot_dialog

    def open_trash(self):
        from studio.ui.trash_dialog import TrashDialog

        if self.context is None:
            return None
        if self.trash_dialog is None:
            self.trash_dialog = TrashDialog(self.context, self.run_write, self)
        self.trash_dialog.setEnabled(not self.busy)
        self.trash_dialog.show()
        self.trash_dialog.raise_()
        return self.trash_dialog


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping row ranges (a selection may list a row twice)."""
    merged: list[tuple[int, int]] = []
    for top, bottom in sorted(ranges):
        if merged and top <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], bottom))
        else:
            merged.append((top, bottom))
    return merged
