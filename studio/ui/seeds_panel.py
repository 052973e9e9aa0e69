"""Seeds panel: the list of seed tasks on the left, the editor of the selected one on the right.

Every user action is a seed-repository call that commits at once and returns a core change
record (closing or killing the app never loses an edit); the change goes on the undo stack as
the same :class:`ChangeCommand` Curate uses, so Ctrl+Z / Ctrl+Shift+Z replay it through core.
The list follows the project context's ``seeds_changed``: an import job, an undo or any other
writer reaches it the same way.
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QEvent, QItemSelectionModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QFont, QFontMetrics, QKeySequence, QPainter, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QCheckBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QListView,
    QPlainTextEdit, QPushButton, QScrollArea, QSplitter, QStackedWidget, QStyle, QStyledItemDelegate,
    QStyleOptionViewItem, QToolButton, QVBoxLayout, QWidget,
)

from studio.core.wording import count_noun
from studio.core.project import Project
from studio.core.seed_changes import SeedChange, SeedRows
from studio.core.seeds import Instance, SeedTask
from studio.ui.change_command import ChangeCommand
from studio.ui.flow_layout import FlowLayout
from studio.ui.jobs import Job, JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.panels import Panel
from studio.ui.project_context import ProjectContext
from studio.ui.seed_commands import SeedEditCommand

SEARCH_DEBOUNCE_MS = 150
LIST_MIN_WIDTH = 180  # px: room for a seed name and the search box
EDITOR_MIN_WIDTH = 300  # px: the form's labels and a usable instruction box, even at 720 px


class UndoKeysToWindow(QObject):
    """Lets Ctrl+Z / Ctrl+Shift+Z reach the window's undo stack instead of a text field's own undo."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ShortcutOverride:
            if event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo):
                event.ignore()
                return True
        return False


class SeedListModel(QAbstractListModel):
    """The seeds shown in the list (the search result), in display order."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._seeds: list[SeedTask] = []
        self._warning_icon = None

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._seeds)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        seed = self._seeds[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            title = seed.name or seed.instruction.split("\n", 1)[0][:60] or "(new seed task)"
            detail = seed.instruction.replace("\n", " ")[:70]
            kind = "classification · " if seed.is_classification else ""
            return f"{title}\n{kind}{detail}" if seed.name else f"{title}\n{kind}{count_noun(len(seed.instances), 'instance')}"
        if role == Qt.ItemDataRole.ToolTipRole:
            problems = seed.problems()
            return seed.instruction + ("\n\n⚠ " + " ".join(problems) if problems else "")
        if role == Qt.ItemDataRole.DecorationRole and seed.problems():
            if self._warning_icon is None:
                self._warning_icon = QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            return self._warning_icon
        if role == Qt.ItemDataRole.UserRole:
            return seed.id
        return None

    def set_seeds(self, seeds: list[SeedTask]) -> None:
        """Show ``seeds``; the same ids in the same order update in place (selection and scroll stay)."""
        if [s.id for s in seeds] == [s.id for s in self._seeds]:
            changed = [row for row, (old, new) in enumerate(zip(self._seeds, seeds)) if old != new]
            self._seeds = seeds
            if changed:
                self.dataChanged.emit(self.index(min(changed)), self.index(max(changed)))
            return
        self.beginResetModel()
        self._seeds = seeds
        self.endResetModel()

    def row_of(self, seed_id: int | None) -> int:
        return next((row for row, seed in enumerate(self._seeds) if seed.id == seed_id), -1)

    def seed_at(self, row: int) -> SeedTask | None:
        return self._seeds[row] if 0 <= row < len(self._seeds) else None

    def replace(self, seed: SeedTask) -> None:
        row = self.row_of(seed.id)
        if row >= 0:
            self._seeds[row] = seed
            index = self.index(row)
            self.dataChanged.emit(index, index)


class SeedItemDelegate(QStyledItemDelegate):
    """Two lines per seed: the name in bold, then the instruction, elided, in a muted colour."""

    PADDING = 6

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 - Qt's name
        line = option.fontMetrics.lineSpacing()
        return QSize(200, 2 * line + 2 * self.PADDING + 2)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        style_option = QStyleOptionViewItem(option)
        self.initStyleOption(style_option, index)
        style_option.text = ""
        style = style_option.widget.style() if style_option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, style_option, painter, style_option.widget)
        title, _, detail = (index.data(Qt.ItemDataRole.DisplayRole) or "").partition("\n")
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        palette = option.palette
        rect = option.rect.adjusted(self.PADDING + 2, self.PADDING, -self.PADDING, -self.PADDING)
        if index.data(Qt.ItemDataRole.DecorationRole) is not None:
            rect.setLeft(rect.left() + 20)
            index.data(Qt.ItemDataRole.DecorationRole).paint(painter, option.rect.left() + 4, rect.top() + 2, 16, 16)
        line = option.fontMetrics.lineSpacing()
        painter.save()
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(palette.highlightedText().color() if selected else palette.text().color())
        painter.drawText(rect.left(), rect.top(), rect.width(), line, Qt.AlignmentFlag.AlignLeft,
                         QFontMetrics(bold).elidedText(title, Qt.TextElideMode.ElideRight, rect.width()))
        painter.setFont(option.font)
        if not selected:
            painter.setPen(palette.placeholderText().color())
        painter.drawText(rect.left(), rect.top() + line, rect.width(), line, Qt.AlignmentFlag.AlignLeft,
                         option.fontMetrics.elidedText(detail, Qt.TextElideMode.ElideRight, rect.width()))
        painter.restore()


class InstanceCard(QFrame):
    """Input and output of one instance."""

    changed = Signal(str)  # the field that changed: "input" or "output"
    remove_requested = Signal()

    def __init__(self, number: int, undo_keys: UndoKeysToWindow, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("InstanceCard")
        layout = QVBoxLayout(self)
        header = QHBoxLayout()
        self.title = QLabel(f"Instance {number}")
        self.title.setProperty("role", "muted")
        self.remove_button = QToolButton(text="Remove")
        self.remove_button.setToolTip("Remove this instance")
        self.remove_button.clicked.connect(self.remove_requested)
        header.addWidget(self.title)
        header.addStretch()
        header.addWidget(self.remove_button)
        layout.addLayout(header)
        self.input_edit = _text_edit("Optional: the text the instruction works on", 56, undo_keys, 120)
        self.output_edit = _text_edit("The answer a good model gives", 72, undo_keys, 200)
        self.input_edit.setAccessibleName(f"Instance {number} input")
        self.output_edit.setAccessibleName(f"Instance {number} output")
        for caption, edit in (("Input", self.input_edit), ("Output", self.output_edit)):
            label = QLabel(caption)
            label.setBuddy(edit)
            layout.addWidget(label)
            layout.addWidget(edit)
        self.input_edit.textChanged.connect(lambda: self.changed.emit("input"))
        self.output_edit.textChanged.connect(lambda: self.changed.emit("output"))

    def value(self) -> Instance:
        return Instance(self.input_edit.toPlainText(), self.output_edit.toPlainText())


def _text_edit(placeholder: str, height: int, undo_keys: UndoKeysToWindow, max_height: int = 160) -> QPlainTextEdit:
    edit = QPlainTextEdit()
    edit.setPlaceholderText(placeholder)
    edit.setTabChangesFocus(True)  # Tab moves on, as in a form
    edit.setUndoRedoEnabled(False)  # the panel's undo stack owns undo
    edit.installEventFilter(undo_keys)
    edit.setMinimumHeight(height)
    edit.setMaximumHeight(max_height)
    return edit


def _set_invalid(widget: QWidget, invalid: bool) -> None:
    if widget.property("invalid") != invalid:
        widget.setProperty("invalid", invalid)
        widget.style().unpolish(widget)
        widget.style().polish(widget)


class SeedEditor(QWidget):
    """The form for one seed task. Emits ``edited(field, seed)`` on every user change."""

    edited = Signal(str, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._undo_keys = UndoKeysToWindow(self)
        self._seed: SeedTask | None = None
        self._loading = False
        self._cards: list[InstanceCard] = []

        self.name_edit = QLineEdit(placeholderText="short_snake_case_name")
        self.instruction_edit = _text_edit("What should the model do? e.g. “Summarise the email below in one sentence.”",
                                           80, self._undo_keys)
        self.classification_box = QCheckBox("Classification task")
        self.classification_box.setToolTip("The output is one of a few labels")
        self.tags_edit = QLineEdit(placeholderText="comma, separated, tags")
        for line_edit in (self.name_edit, self.tags_edit):
            line_edit.installEventFilter(self._undo_keys)
        self.problems_label = QLabel()
        self.problems_label.setProperty("role", "error")
        self.problems_label.setWordWrap(True)

        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow editor puts fields under labels
        form.addRow("&Name", self.name_edit)
        form.addRow("&Instruction", self.instruction_edit)
        form.addRow("", self.classification_box)
        form.addRow("&Tags", self.tags_edit)

        self.instances_box = QVBoxLayout()
        self.instances_box.setSpacing(8)
        self.add_instance_button = QPushButton("Add instance")
        self.add_instance_button.setToolTip("Add another input/output example (Ctrl+Shift+A)")
        self.add_instance_button.clicked.connect(self.add_instance)
        instances_header = QHBoxLayout()
        heading = QLabel("Instances")
        heading.setProperty("role", "heading")
        instances_header.addWidget(heading)
        instances_header.addStretch()
        instances_header.addWidget(self.add_instance_button)

        inner = QWidget()
        column = QVBoxLayout(inner)
        column.addLayout(form)
        column.addWidget(self.problems_label)
        column.addLayout(instances_header)
        column.addLayout(self.instances_box)
        column.addStretch()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # scrolls down, never sideways
        scroll.setMinimumWidth(inner.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self.name_edit.textEdited.connect(lambda: self._emit("name"))
        self.instruction_edit.textChanged.connect(lambda: self._emit("instruction"))
        self.classification_box.toggled.connect(lambda: self._emit("structure"))
        self.tags_edit.textEdited.connect(lambda: self._emit("tags"))
        self.setEnabled(False)

    # -- showing ----------------------------------------------------------------------------
    def load(self, seed: SeedTask | None) -> None:
        """Show ``seed`` (None: nothing selected), keeping the cursor where it was if possible."""
        focus = self.focusWidget()
        cursor_position = focus.textCursor().position() if isinstance(focus, QPlainTextEdit) else None
        self._loading = True
        try:
            self._seed = seed.copy() if seed else None
            self.setEnabled(seed is not None)
            seed = seed or SeedTask(instances=[])
            _set_text(self.name_edit, seed.name)
            _set_text(self.instruction_edit, seed.instruction)
            self.classification_box.setChecked(seed.is_classification)
            _set_text(self.tags_edit, ", ".join(seed.tags))
            while len(self._cards) > len(seed.instances):
                self._cards.pop().deleteLater()
            while len(self._cards) < len(seed.instances):
                self._append_card()
            for card, instance in zip(self._cards, seed.instances):
                _set_text(card.input_edit, instance.input)
                _set_text(card.output_edit, instance.output)
                card.remove_button.setEnabled(len(seed.instances) > 1)
        finally:
            self._loading = False
        self._show_problems()
        if isinstance(focus, QPlainTextEdit) and cursor_position is not None and focus.isVisible():
            cursor = focus.textCursor()
            cursor.setPosition(min(cursor_position, len(focus.toPlainText())))
            focus.setTextCursor(cursor)

    def current(self) -> SeedTask | None:
        if self._seed is None:
            return None
        return SeedTask(
            id=self._seed.id, ext_id=self._seed.ext_id, name=self.name_edit.text().strip(),
            instruction=self.instruction_edit.toPlainText(),
            instances=[card.value() for card in self._cards],
            is_classification=self.classification_box.isChecked(),
            tags=[t.strip() for t in self.tags_edit.text().split(",") if t.strip()],
        )

    def _append_card(self) -> InstanceCard:
        card = InstanceCard(len(self._cards) + 1, self._undo_keys)
        index = len(self._cards)
        card.changed.connect(lambda field, i=index: self._emit(f"instance{i}.{field}"))
        card.remove_requested.connect(lambda i=index: self.remove_instance(i))
        self._cards.append(card)
        self.instances_box.addWidget(card)
        return card

    # -- editing ----------------------------------------------------------------------------
    def add_instance(self) -> None:
        seed = self.current()
        if seed is None:
            return
        seed.instances.append(Instance())
        self._seed = seed
        self.edited.emit("structure", seed)
        self.load(seed)
        self._cards[-1].input_edit.setFocus()

    def remove_instance(self, index: int) -> None:
        seed = self.current()
        if seed is None or len(seed.instances) <= 1:
            return
        del seed.instances[index]
        self.edited.emit("structure", seed)
        self.load(seed)

    def _emit(self, field: str) -> None:
        if self._loading or self._seed is None:
            return
        seed = self.current()
        self._seed = seed
        self._show_problems()
        self.edited.emit(field, seed)

    def _show_problems(self) -> None:
        seed = self.current()
        problems = seed.problems() if seed else []
        self.problems_label.setText("  ".join(f"⚠ {p}" for p in problems))
        self.problems_label.setVisible(bool(problems))
        _set_invalid(self.instruction_edit, bool(seed) and not seed.instruction.strip())
        for card, instance in zip(self._cards, seed.instances if seed else []):
            _set_invalid(card.output_edit, not instance.output.strip())


def _set_text(widget: QLineEdit | QPlainTextEdit, text: str) -> None:
    current = widget.text() if isinstance(widget, QLineEdit) else widget.toPlainText()
    if current != text:
        widget.setText(text) if isinstance(widget, QLineEdit) else widget.setPlainText(text)


EMPTY_PROJECT_HINT = "No seed tasks yet —\nCtrl+N adds one,\nFile ▸ Import Seed Tasks reads a file."


class SeedsPanel(Panel):
    """List, search, add, duplicate, delete and edit seed tasks, with undo/redo."""

    title = "Seeds"
    icon = "seeds.svg"

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        self._undo_stack = QUndoStack(self)
        self.model = SeedListModel(self)

        self.search_edit = QLineEdit(placeholderText="Search seed tasks  (Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(lambda: self.reload())
        self.search_edit.textChanged.connect(self._search_timer.start)
        self.search_edit.installEventFilter(self)

        self.list_view = QListView()
        self.list_view.setModel(self.model)
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list_view.setAlternatingRowColors(True)
        self.list_view.setItemDelegate(SeedItemDelegate(self.list_view))
        self.list_view.setUniformItemSizes(True)
        self.list_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list_view.selectionModel().currentChanged.connect(self._on_list_current_changed)
        # The empty state takes the list's place (same size: nothing around it moves).
        self.empty_label = QLabel(EMPTY_PROJECT_HINT)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setProperty("role", "muted")
        self.list_stack = QStackedWidget()
        self.list_stack.addWidget(self.list_view)
        self.list_stack.addWidget(self.empty_label)
        self.count_label = QLabel()
        self.count_label.setProperty("role", "muted")
        # On its own line under the list: beside the buttons its room for the longest count
        # made the list at least ~400 px wide and squeezed the editor at the minimum window size.
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.editor = SeedEditor()
        self.editor.edited.connect(self._on_editor_edited)

        self.add_action = self._action("New seed task", "Ctrl+N", self.add_seed, "Add an empty seed task")
        self.duplicate_action = self._action("Duplicate", "Ctrl+D", self.duplicate_selected, "Copy the selected seed tasks")
        self.delete_action = self._action("Delete", QKeySequence.StandardKey.Delete, self.delete_selected,
                                          "Delete the selected seed tasks (undo with Ctrl+Z)")
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # not while typing
        self.list_view.addAction(self.delete_action)
        self.add_instance_action = self._action("Add instance", "Ctrl+Shift+A", self.editor.add_instance,
                                                "Add an input/output example to this seed task")
        self.find_action = self._action("Find", QKeySequence.StandardKey.Find, self.focus_search, "Search seed tasks")
        # Window-wide while the panel is shown (wherever the focus is, the sidebar included): the
        # window shows only the current panel's menu, so no other panel's Ctrl+F competes.
        for action in (self.add_action, self.duplicate_action, self.add_instance_action, self.find_action):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(action)

        buttons = FlowLayout()  # wraps under a narrow list instead of holding the list wide
        for action in (self.add_action, self.duplicate_action, self.delete_action):
            button = QToolButton()
            button.setDefaultAction(action)
            buttons.addWidget(button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(8, 8, 4, 8)
        left_layout.addWidget(self.search_edit)
        left_layout.addWidget(self.list_stack)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.count_label)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 8, 8, 8)
        heading = QLabel("Seed task")
        heading.setProperty("role", "heading")
        right_layout.addWidget(heading)
        right_layout.addWidget(self.editor)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setChildrenCollapsible(False)
        # The editor's form needs the room more than the list's one-line summaries do.
        left.setMinimumWidth(LIST_MIN_WIDTH)
        right.setMinimumWidth(EDITOR_MIN_WIDTH)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([360, 640])
        self.splitter = splitter
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self._update_enabled()

    def _action(self, text: str, shortcut, slot, tip: str) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})")
        action.triggered.connect(slot)
        return action

    # -- panel contract -----------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        if self.context is not None:
            self.context.seeds_changed.disconnect(self._on_seeds_changed)
        super().set_context(context)
        self._undo_stack.clear()
        self.search_edit.blockSignals(True)
        self.search_edit.clear()
        self.search_edit.blockSignals(False)
        if context is not None:
            context.seeds_changed.connect(self._on_seeds_changed)
        self.reload()
        if self.model.rowCount():
            self.select_seed(self.model.seed_at(0).id)
        self._update_enabled()

    def undo_stack(self) -> QUndoStack:
        return self._undo_stack

    def menu_actions(self) -> list[QAction]:
        return [self.add_action, self.duplicate_action, self.delete_action, self.add_instance_action, self.find_action]

    def shutdown(self) -> None:
        self._search_timer.stop()

    # -- list ---------------------------------------------------------------------------------
    def reload(self, select_id: int | None = None, *, keep_current: bool = False) -> None:
        """Re-read the (searched) list from the project; keeps or sets the selection.

        ``keep_current``: the selected seed stays listed even when it no longer matches the
        search — an edit that takes out the searched word must not move the editor away.
        """
        keep = select_id if select_id is not None else self.current_seed_id()
        search = self.search_edit.text().strip()
        seeds = self.project.seeds.list(search) if self.project else []
        if search and keep_current and keep is not None and all(seed.id != keep for seed in seeds):
            matching = {seed.id for seed in seeds}
            seeds = [seed for seed in self.project.seeds.list() if seed.id in matching or seed.id == keep]
        self.model.set_seeds(seeds)
        total = self.project.seeds.count() if self.project else 0
        shown = f"{len(seeds)} of {total}" if len(seeds) != total else f"{total}"
        self.count_label.setText(f"{shown} seed tasks")
        if seeds:
            self.list_stack.setCurrentWidget(self.list_view)
        else:
            self.empty_label.setText(f"No seed task matches “{search}”.\nEsc clears the search."
                                     if search and total else EMPTY_PROJECT_HINT)
            self.list_stack.setCurrentWidget(self.empty_label)
        row = self.model.row_of(keep)
        if row >= 0:
            self._make_current(row)
            self._show_in_editor(self.model.seed_at(row))
        else:
            self.editor.load(None)
        self._update_enabled()

    def _on_seeds_changed(self) -> None:
        """Someone changed the seeds (this panel included): show the list as it is now."""
        row = self.list_view.currentIndex().row()
        had_current = self.current_seed_id() is not None
        self.reload(keep_current=True)
        if had_current and self.current_seed_id() is None:  # the shown seed went away
            self._select_row_near(row)

    def current_seed_id(self) -> int | None:
        index = self.list_view.currentIndex()
        return index.data(Qt.ItemDataRole.UserRole) if index.isValid() else None

    def select_seed(self, seed_id: int | None) -> None:
        row = self.model.row_of(seed_id)
        if row < 0 and self.search_edit.text():
            self._clear_search_quietly()
            self.reload(seed_id)
            row = self.model.row_of(seed_id)
        if row >= 0:
            self._make_current(row)
            self.list_view.scrollTo(self.model.index(row))

    def _clear_search_quietly(self) -> None:
        self.search_edit.blockSignals(True)
        self.search_edit.clear()
        self.search_edit.blockSignals(False)

    def _select_row_near(self, row: int) -> None:
        neighbour = self.model.seed_at(min(max(row, 0), self.model.rowCount() - 1))
        if neighbour is not None:
            self.select_seed(neighbour.id)

    def _make_current(self, row: int) -> None:
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.list_view.selectionModel().setCurrentIndex(self.model.index(row), flags)

    def _show_in_editor(self, seed: SeedTask | None) -> None:
        """Load ``seed`` unless the editor already shows it: a refresh after the user's own
        keystroke must not rewrite what is being typed (a trailing space, "alpha, " in tags)."""
        if seed is None or self.editor.current() != seed:
            self.editor.load(seed)

    def selected_seeds(self) -> list[SeedTask]:
        rows = sorted(index.row() for index in self.list_view.selectionModel().selectedIndexes())
        if not rows and self.list_view.currentIndex().isValid():
            rows = [self.list_view.currentIndex().row()]
        return [self.model.seed_at(row) for row in rows]

    def focus_search(self) -> None:
        self.search_edit.setFocus()
        self.search_edit.selectAll()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.search_edit and event.type() == QEvent.Type.KeyPress:
            if event.key() == Qt.Key.Key_Escape:
                self.search_edit.clear()
                self.list_view.setFocus()
                return True
            if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.list_view.setFocus()
                return True
        return super().eventFilter(watched, event)

    def _on_list_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_in_editor(self.model.seed_at(current.row()) if current.isValid() else None)
        self._update_enabled()

    def _update_enabled(self) -> None:
        has_project = self.project is not None
        has_current = self.list_view.currentIndex().isValid()
        self.add_action.setEnabled(has_project)
        self.search_edit.setEnabled(has_project)
        for action in (self.duplicate_action, self.delete_action, self.add_instance_action):
            action.setEnabled(has_project and has_current)

    # -- user actions: each a committed core change on the shared undo command ------------------
    def add_seed(self) -> None:
        if self.project is None:
            return
        self._record(self.project.seeds.create())
        self.editor.instruction_edit.setFocus()

    def duplicate_selected(self) -> None:
        seeds = self.selected_seeds()
        if not seeds or self.project is None:
            return
        self._record(self.project.seeds.duplicate([seed.id for seed in seeds]))

    def delete_selected(self) -> None:
        seeds = self.selected_seeds()
        if not seeds or self.project is None:
            return
        change = self.project.seeds.delete([seed.id for seed in seeds])
        self._record(change)
        self.status_message.emit(f"{change.description}: undo with Ctrl+Z")

    def import_seeds(self, seeds: list[SeedTask], source: str) -> Job | None:
        """Add parsed seeds as one undoable step; the write runs as a job (a file may be big).

        Seeds identical to one already in the project are skipped (a file imported twice adds
        nothing the second time), and the message says how many.
        """
        context = self.context
        if context is None:
            return None
        if not seeds:
            self.status_message.emit(f"{source} holds no seed tasks")
            return None

        def done(change: SeedRows) -> None:
            if self.context is not context:  # the project was closed meanwhile: its undo stack is gone
                return
            if len(change):  # nothing added: nothing to undo
                self._record(change)
            skipped = len(seeds) - len(change)
            identical = "" if not skipped else (
                "; 1 identical one was already there" if skipped == 1 else f"; {skipped} identical ones were already there")
            self.status_message.emit(f"Imported {count_noun(len(change), 'seed task')} from {source}{identical}")

        def job(project: Project) -> SeedRows:  # on a worker thread; the list hears of it by the feed
            return project.seeds.import_many(seeds, skip_identical=True)

        return self.jobs.submit("Importing seed tasks", job, project=context, on_done=done, cancellable=False)

    def _on_editor_edited(self, field: str, seed: SeedTask) -> None:
        before = self.project.seeds.get(seed.id) if self.project else None
        if before is None or before == seed:
            return
        change = self.project.seeds.edit(seed, field=field)
        # The editor already shows the text: only the list row needs it now.
        self._undo_stack.push(SeedEditCommand(self.context, change, lambda: self._show_result(change)))
        self.model.replace(seed)

    def _record(self, change: SeedChange) -> None:
        """Put a committed change on the undo stack and show its result at once."""
        self._undo_stack.push(ChangeCommand(self.context, change, lambda: self._show_result(change)))
        self._show_result(change)

    def _show_result(self, change: SeedChange) -> None:
        """After a change is made, undone or redone: select what it touched, or a neighbour of what went."""
        ids = change.ids
        if not ids or self.project is None:
            return
        old_rows = [row for row in map(self.model.row_of, ids) if row >= 0]  # the list still shows the old state
        if self.project.seeds.get(ids[0]) is not None:  # added, restored or edited
            self.reload(select_id=ids[0])
            self.select_seed(ids[0])  # clears a search that hides it
            return
        self.reload()
        if self.current_seed_id() is None:
            self._select_row_near(min(old_rows, default=0))
