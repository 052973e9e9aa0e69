"""The Evaluate panel: Alpaca's blind pairwise test on your own models, with honest statistics.

A composition root: the project's evaluations on the left, four pages on the right —
**Prompt sets** (import / validation split / preview; evaluation-only), **New evaluation**
(systems, judge, settings, estimate, Start / Stop; :mod:`studio.ui.eval_setup`), **Compare**
(the blind human comparison, :class:`~studio.ui.eval_compare_view.BlindCompareView`) and
**Results** (win rates with intervals, per prompt, export, lost prompts → Seeds / Curate;
:mod:`studio.ui.eval_results_page`). Every read, write and run is a job
(:mod:`studio.ui.eval_work`); the list and the visible page follow the context's
``evaluations_changed`` / ``prompt_sets_changed`` / ``comparisons_changed``, throttled while a
run commits answers many times a second.

Keys: Ctrl+1…4 the pages; Ctrl+N new evaluation; Ctrl+D a new one set up like the selected one;
Ctrl+Shift+Return continue the selected one;
F2 / Del rename / delete (in the list); Ctrl+I / Ctrl+Shift+I import a prompt set / take a
validation split; Ctrl+Return start; Esc stop; Ctrl+E export; Ctrl+Shift+L lost prompts →
seeds; Ctrl+Shift+C nearest samples in Curate. While the focus is in this panel, Ctrl+I,
Ctrl+Shift+I and Ctrl+E are this panel's (the window's File menu uses them for seeds and
samples elsewhere).
"""
from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QModelIndex, QRect, QSize, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
)
from PySide6.QtWidgets import (
    QGridLayout,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.evaluation.model import DONE, FAILED, STOPPED, Evaluation
from studio.core.wording import count_noun
from studio.ui import eval_work as work
from studio.ui.eval_compare_view import BlindCompareView
from studio.ui.eval_prompt_sets import PromptSetsPage
from studio.ui.eval_results_page import ResultsPage
from studio.ui.eval_setup import NewEvaluationPage
from studio.ui.hinted_view import HintedView
from studio.ui.eval_widgets import (
    ID_ROLE,
    Dialogs,
    heading,
    make_action,
    tool_button,
)
from studio.ui.jobs import JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.panels import Panel
from studio.ui.project_context import ProjectContext

SETS, NEW, COMPARE, RESULTS = range(4)
PAGE_TITLES = ("Prompt sets", "New evaluation", "Compare", "Results")
LIST_REFRESH_MS = 250  # a burst of committed answers refreshes the list once
RESULTS_REFRESH_MS = 1500  # while a run commits, the visible results are recomputed at this pace
STATUS_TEXT = {"created": "created", "answering": "answering…", "judging": "judging…", "done": "done",
               "stopped": "stopped", "failed": "failed"}


DETAIL_ROLE = Qt.ItemDataRole.UserRole + 1
PAD = 6


class EvaluationDelegate(QStyledItemDelegate):
    """Two lines per evaluation: its name in bold, then systems, prompts, status and cost, muted and wrapped."""

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        bold = QFont(option.font)
        bold.setBold(True)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() - 1))
        return bold, small

    def _detail_rect(self, option: QStyleOptionViewItem, index: QModelIndex, title_height: int) -> QRect:
        _bold, small = self._fonts(option)
        width = max(40, option.rect.width() - 2 * PAD)
        bound = QFontMetrics(small).boundingRect(QRect(0, 0, width, 10_000), int(Qt.TextFlag.TextWordWrap),
                                                 str(index.data(DETAIL_ROLE) or ""))
        return QRect(option.rect.left() + PAD, option.rect.top() + PAD + title_height + 2, width, bound.height())

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        self.initStyleOption(option, index)
        bold, _small = self._fonts(option)
        title_height = QFontMetrics(bold).height()
        detail = self._detail_rect(option, index, title_height)
        return QSize(option.rect.width(), title_height + detail.height() + 2 * PAD + 2)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        self.initStyleOption(option, index)
        title = option.text
        option.text = ""
        style = option.widget.style() if option.widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        bold, small = self._fonts(option)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        palette = option.palette
        text_color = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        muted_color = text_color if selected else palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        title_height = QFontMetrics(bold).height()
        painter.save()
        painter.setFont(bold)
        painter.setPen(text_color)
        title_rect = QRect(option.rect.left() + PAD, option.rect.top() + PAD, option.rect.width() - 2 * PAD,
                           title_height)
        painter.drawText(title_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         QFontMetrics(bold).elidedText(title, Qt.TextElideMode.ElideRight, title_rect.width()))
        painter.setFont(small)
        painter.setPen(muted_color)
        painter.drawText(self._detail_rect(option, index, title_height), int(Qt.TextFlag.TextWordWrap),
                         str(index.data(DETAIL_ROLE) or ""))
        painter.restore()


def evaluation_text(row: work.EvaluationRow) -> tuple[str, str]:
    """The list's two lines: name and status; systems, prompts, votes and cost."""
    evaluation = row.evaluation
    systems = " vs ".join(s.label for s in evaluation.systems)
    status = STATUS_TEXT.get(evaluation.status, evaluation.status)
    votes = f" · votes {row.votes_decided}/{row.votes_total}" if row.votes_decided else ""
    judge = "" if evaluation.judge is not None else " · no judge"
    first = f"#{evaluation.id} {evaluation.name}" if evaluation.name else f"#{evaluation.id} {systems}"
    second = (f"{systems} · " if evaluation.name else "") + \
        f"{count_noun(len(evaluation.prompt_ids), 'prompt')} · {status}{judge}{votes} · ${evaluation.cost:.2f}"
    return first, second


class EvaluatePanel(Panel):
    title = "Evaluate"
    icon = "evaluate.svg"

    def __init__(self, parent: QWidget | None = None, *, jobs: JobRunner | None = None,
                 messages: MessageArea | None = None):
        super().__init__(parent, jobs=jobs, messages=messages)
        self.dialogs = Dialogs(self)
        self.rows: list[work.EvaluationRow] = []
        self._select_after: int | None = None
        self._compare_shown: tuple | None = None  # (context, id, created_at) Compare was last given
        self._build()
        self._list_timer = QTimer(self, singleShot=True, interval=LIST_REFRESH_MS)
        self._list_timer.timeout.connect(self.refresh_list)
        self._results_timer = QTimer(self, singleShot=True, interval=RESULTS_REFRESH_MS)
        self._results_timer.timeout.connect(self._refresh_visible)
        self._update_actions()

    # -- layout ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.sets_page = PromptSetsPage(self.jobs, self.messages)
        self.new_page = NewEvaluationPage(self.jobs, self.messages)
        self.compare_view = BlindCompareView(self.jobs)
        self.results_page = ResultsPage(self.jobs, self.messages)
        self.sets_page.sets_loaded.connect(self.new_page.set_prompt_sets)
        self.sets_page.sets_loaded.connect(self._on_sets_loaded)
        self.sets_page.evaluate_requested.connect(self._on_evaluate_set)
        self.new_page.run_started.connect(self._on_run_started)
        self.new_page.run_finished.connect(self._on_run_finished)
        self.new_page.busy_changed.connect(lambda _busy: self._update_actions())
        self.results_page.show_nearest.connect(self.show_nearest_in_curate)
        self.compare_view.voted.connect(self._on_voted)
        self.compare_view.finished.connect(self._on_voted)

        compare = QWidget()
        cl = QVBoxLayout(compare)
        cl.setContentsMargins(0, 0, 0, 0)
        self.compare_hint = HintedView(self.compare_view, "Select an evaluation on the left to compare its answers "
                                                      "blind: two answers side by side, the systems hidden until "
                                                      "every vote is in.")
        cl.addWidget(self.compare_hint)

        self.tabs = QTabWidget(documentMode=True)
        for page, title in zip((self.sets_page, self.new_page, compare, self.results_page), PAGE_TITLES, strict=True):
            self.tabs.addTab(page, title)
        self.tabs.currentChanged.connect(self._on_page_changed)
        self.page_actions = []
        for index, title in enumerate(PAGE_TITLES):
            action = make_action(self, title, f"Ctrl+{index + 1}", lambda i=index: self.show_page(i),
                                 f"Show the {title} page", context=Qt.ShortcutContext.WindowShortcut)
            self.tabs.setTabToolTip(index, action.toolTip())
            self.page_actions.append(action)

        self.list = QListWidget()
        self.list.setObjectName("EvaluationList")
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setItemDelegate(EvaluationDelegate(self.list))
        self.list.setUniformItemSizes(False)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)  # the wrapped second line follows the width
        self.list.currentRowChanged.connect(self._on_selected)
        self.list.itemActivated.connect(lambda _item: self._open_selected())
        self.list_view = HintedView(self.list, "No evaluations yet.\nImport a prompt set (Ctrl+1, then Ctrl+I), then set "
                                           "one up on New evaluation (Ctrl+N).")
        self.new_action = make_action(self, "New", "Ctrl+N", self.new_evaluation, "Set up a new evaluation",
                                      context=Qt.ShortcutContext.WindowShortcut)
        self.continue_action = make_action(self, "Continue", "Ctrl+Shift+Return", self.continue_selected,
                                           "Run the selected evaluation again: only missing answers and verdicts "
                                           "are asked for", context=Qt.ShortcutContext.WindowShortcut)
        self.like_action = make_action(self, "Duplicate", "Ctrl+D", self.set_up_like_selected,
                                       "A new evaluation with the selected one's set, systems, judge and settings: "
                                       "change the judge, say, and the cached answers are reused",
                                       context=Qt.ShortcutContext.WindowShortcut)
        self.rename_action = make_action(self.list, "Rename", "F2", self.rename_selected,
                                         "Rename the selected evaluation", context=Qt.ShortcutContext.WidgetShortcut)
        self.delete_action = make_action(self.list, "Delete", QKeySequence.StandardKey.Delete, self.delete_selected,
                                         "Delete the selected evaluation (its cached answers stay for others)",
                                         context=Qt.ShortcutContext.WidgetShortcut)
        buttons = QGridLayout()  # two rows: five buttons do not fit the list's width on one
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.setSpacing(4)
        for n, action in enumerate((self.new_action, self.like_action, self.continue_action, self.rename_action,
                                    self.delete_action)):
            button = tool_button(action)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            buttons.addWidget(button, n // 3, n % 3)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 4, 0)
        ll.addWidget(heading("Evaluations"))
        ll.addWidget(self.list_view, 1)
        ll.addLayout(buttons)
        left.setMinimumWidth(220)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, childrenCollapsible=False)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([240, 1000])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 6)
        layout.addWidget(self.splitter, 1)
        # Keys the window's File menu also has (seeds / samples import, seeds export): here they are ours.
        self._claimed: list[tuple[QAction, int]] = [(self.sets_page.import_action, SETS),
                                                    (self.sets_page.split_action, SETS),
                                                    (self.results_page.export_action, RESULTS)]

    def menu_actions(self) -> list[QAction]:
        return [self.new_action, self.like_action, self.continue_action, self.sets_page.import_action, self.sets_page.split_action,
                self.new_page.start_action, self.new_page.stop_action, self.results_page.export_action,
                self.results_page.seeds_action, self.results_page.nearest_action]

    # -- the panel contract ------------------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        if self.context is not None:
            for signal, slot in self._subscriptions(self.context):
                signal.disconnect(slot)
        super().set_context(context)
        self.rows = []
        self._fill([])
        self.sets_page.set_context(context)
        self.new_page.set_context(context)
        self.results_page.set_context(context)
        self._compare_shown = None
        self.compare_view.set_evaluation(context, None)
        if context is not None:
            for signal, slot in self._subscriptions(context):
                signal.connect(slot)
            self.refresh_list()
        self._update_actions()

    def _subscriptions(self, context: ProjectContext) -> list:
        return [(context.evaluations_changed, self._on_evaluations_changed),
                (context.comparisons_changed, self._on_evaluations_changed),
                (context.prompt_sets_changed, self._on_evaluations_changed)]

    def shutdown(self) -> None:
        self._list_timer.stop()
        self._results_timer.stop()
        self.new_page.shutdown()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            for action, page in self._claimed:
                if self.tabs.currentIndex() == page and action.isEnabled() and \
                        QKeySequence(event.keyCombination()) == action.shortcut():
                    event.accept()
                    action.trigger()
                    return True
        return super().event(event)

    # -- pages -------------------------------------------------------------------------------------------
    def show_page(self, index: int) -> None:
        self.tabs.setCurrentIndex(index)
        target = {SETS: self.sets_page.table, NEW: self.new_page.prompt_set, COMPARE: self.compare_view,
                  RESULTS: self.results_page.inner}[index]
        target.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _on_page_changed(self, index: int) -> None:
        self._sync_pages(force=True)

    def selected_id(self) -> int | None:
        current = self.list.currentItem()
        return current.data(ID_ROLE) if current is not None else None

    def selected(self) -> Evaluation | None:
        chosen = self.selected_id()
        return next((row.evaluation for row in self.rows if row.evaluation.id == chosen), None)

    def select_evaluation(self, evaluation_id: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(ID_ROLE) == evaluation_id:
                self.list.setCurrentRow(row)
                return
        self._select_after = evaluation_id

    def _sync_pages(self, *, force: bool = False) -> None:
        """The visible page shows the selected evaluation (the hidden ones catch up when shown: ``force``)."""
        chosen = self.selected_id()
        index = self.tabs.currentIndex()
        if index == COMPARE:
            self.compare_hint.show_hint(chosen is None)
            shown = self._compare_key(chosen)
            if self._compare_shown != shown:
                self._compare_shown = shown
                self.compare_view.set_evaluation(self.context, chosen)
        # Results: only a change of evaluation (or showing the page) reads again here. While a run commits, the
        # list refreshes every LIST_REFRESH_MS and the results follow RESULTS_REFRESH_MS (a read per list refresh
        # was cancelled by the next one and never shown).
        elif index == RESULTS and (force or chosen != self.results_page.evaluation_id):
            self.results_page.set_evaluation(chosen)

    def _compare_key(self, chosen: int | None) -> tuple | None:
        """What Compare shows: ids are reused after a delete, so the project and the creation time are in it."""
        if chosen is None:
            return None
        created = next((row.evaluation.created_at for row in self.rows if row.evaluation.id == chosen), None)
        return (id(self.context), chosen, created)

    # -- the list ----------------------------------------------------------------------------------------
    def refresh_list(self) -> None:
        if self.context is not None:
            self.jobs.submit("Reading evaluations", work.read_evaluations, key="eval-list", project=self.context,
                             quiet=True, on_done=self._fill, on_error=lambda message: self.messages.show_error(message))

    def _fill(self, rows: list[work.EvaluationRow]) -> None:
        keep = self._select_after if self._select_after is not None else self.selected_id()
        self.rows = list(rows)
        self.list.blockSignals(True)
        self.list.clear()
        for row in rows:
            first, second = evaluation_text(row)
            entry = QListWidgetItem(first)
            entry.setData(DETAIL_ROLE, second)
            entry.setData(ID_ROLE, row.evaluation.id)
            entry.setToolTip(f"{first}\n{second}" + (f"\n{row.evaluation.error}" if row.evaluation.error else ""))
            self.list.addItem(entry)
        chosen = next((n for n, row in enumerate(rows) if row.evaluation.id == keep), -1)
        if chosen < 0 and rows and keep is None:
            chosen = 0
        self.list.setCurrentRow(chosen)
        self.list.blockSignals(False)
        if self._select_after is not None and chosen >= 0:
            self._select_after = None
        self.list_view.show_hint(not rows, self._list_hint())
        self._update_actions()
        self._sync_pages()

    def _list_hint(self) -> str:
        """The empty list's next step: import a set first, or (once there is one) set an evaluation up."""
        if getattr(self, "_has_sets", False):
            return "No evaluations yet.\nSet one up on New evaluation (Ctrl+N)."
        return "No evaluations yet.\nImport a prompt set (Ctrl+1, then Ctrl+I), then set one up on New evaluation " \
               "(Ctrl+N)."

    def _on_sets_loaded(self, sets: list) -> None:
        self._has_sets = bool(sets)
        self.list_view.show_hint(not self.rows, self._list_hint())

    def _on_selected(self, _row: int) -> None:
        self._update_actions()
        self._sync_pages()

    def _on_evaluations_changed(self) -> None:
        if not self._list_timer.isActive():
            self._list_timer.start()
        if self.tabs.currentIndex() == RESULTS and not self._results_timer.isActive():
            self._results_timer.start()

    def _refresh_visible(self) -> None:
        if self.tabs.currentIndex() == RESULTS:
            self.results_page.refresh()

    def _open_selected(self) -> None:
        evaluation = self.selected()
        if evaluation is None:
            return
        self.show_page(RESULTS if evaluation.judge is not None else COMPARE)

    # -- actions -----------------------------------------------------------------------------------------
    def new_evaluation(self) -> None:
        if self.context is None:
            return
        chosen = self.sets_page.selected_set()
        if chosen is not None:
            self.new_page.choose_set(chosen.id)
        self.show_page(NEW)

    def _on_evaluate_set(self, set_id: int) -> None:
        self.new_page.choose_set(set_id)
        self.show_page(NEW)

    def set_up_like_selected(self) -> None:
        evaluation = self.selected()
        if evaluation is None or self.new_page.is_busy():
            return
        self.new_page.load_from(evaluation)
        self.show_page(NEW)

    def continue_selected(self) -> None:
        evaluation = self.selected()
        if evaluation is None or self.new_page.is_busy():
            return
        if evaluation.status == DONE:
            self.messages.show_message(f"{evaluation.label} is finished; Continue runs a stopped or failed one. "
                                       "A new evaluation with other settings reuses its cached answers.", "info")
            return
        self.show_page(NEW)
        self.new_page.continue_evaluation(evaluation)

    def rename_selected(self) -> None:
        evaluation = self.selected()
        if evaluation is None or self.context is None:
            return
        name = self.dialogs.text("Rename evaluation", "Name:", evaluation.name)
        if name is None or name.strip() == evaluation.name:
            return
        self.jobs.submit("Renaming an evaluation", work.rename_evaluation, evaluation.id, name.strip(),
                         key="eval-edit", project=self.context, on_done=lambda _r: self.refresh_list(),
                         on_error=lambda message: self.messages.show_error(message))

    def delete_selected(self) -> None:
        evaluation = self.selected()
        if evaluation is None or self.context is None:
            return
        if self.new_page.busy_with(evaluation.id):  # running, or its Continue waits for the local server
            self.messages.show_error(f"{evaluation.label} is running: stop it (Esc on New evaluation) first.")
            return
        if not self.dialogs.confirm("Delete evaluation", f"Delete {evaluation.label} and its human votes? Its "
                                    "answers and verdicts stay cached for other evaluations.", "Delete"):
            return
        self.jobs.submit("Deleting an evaluation", work.delete_evaluation, evaluation.id, key="eval-edit",
                         project=self.context, on_done=lambda _r: self.refresh_list(),
                         on_error=lambda message: self.messages.show_error(message))

    def _on_run_started(self, evaluation_id: int) -> None:
        self._select_after = evaluation_id
        self.refresh_list()

    def _on_run_finished(self, evaluation_id: int) -> None:
        if self.selected_id() in (None, evaluation_id):  # someone voting on another evaluation stays there
            self._select_after = evaluation_id
        self.refresh_list()
        self.status_message.emit(f"Evaluation {evaluation_id} ended at {time.strftime('%H:%M')}.")

    def _on_voted(self, _evaluation_id: int) -> None:
        if not self._list_timer.isActive():
            self._list_timer.start()

    def show_nearest_in_curate(self, evaluation_id: int) -> None:
        curate = self.open_panel("curate")
        if curate is None:  # the panel outside a window (or Curate switched off)
            self.messages.show_message(f"The nearest samples are stored: `distill-studio eval lost {evaluation_id} "
                                       "--nearest 5` lists them, Curate filters by them.", "info")
            return
        curate.show_eval_nearest(evaluation_id)

    def _update_actions(self) -> None:
        has_project = self.context is not None
        evaluation = self.selected()
        self.new_action.setEnabled(has_project)
        # While a run is going, Continue did nothing at all (one run at a time): it is off until the run ends.
        self.continue_action.setEnabled(evaluation is not None and not self.new_page.is_busy()
                                        and evaluation.status in (STOPPED, FAILED, "created", "answering", "judging"))
        self.rename_action.setEnabled(evaluation is not None)
        self.delete_action.setEnabled(evaluation is not None)
        self.like_action.setEnabled(evaluation is not None)
