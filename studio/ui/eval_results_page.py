"""The Evaluate panel's Results page: B's summary and plots, every prompt's verdicts, and the way back.

The statistics and the per-prompt rows are computed on a worker (``eval_work.read_results``):
the page only shows them. Export writes CSV or JSON; "Lost prompts → Seeds" turns the prompts
the student (system A) lost into seed tasks with the winner's answer (after a confirmation
saying that those prompts leave the evaluation-only set), and "Nearest in Curate" stores the
training samples nearest to them and opens Curate filtered to them.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.evaluation.model import Evaluation
from studio.core.wording import count_noun
from studio.ui import eval_work as work
from studio.ui.elided_label import ElidedLabel
from studio.ui.eval_results_view import EvalResultsView
from studio.ui.hinted_view import HintedView
from studio.ui.eval_widgets import (
    Dialogs,
    heading,
    item,
    make_action,
    muted,
    read_only_table,
    tool_button,
)
from studio.ui.jobs import JobRunner
from studio.ui.message_area import MessageArea
from studio.ui.project_context import ProjectContext

ALL, LOST, INCONSISTENT, TIES, DISAGREE = "all", "lost", "inconsistent", "ties", "disagree"
FILTERS = ((ALL, "Every prompt"), (LOST, "Prompts A lost"), (INCONSISTENT, "Judge inconsistent"),
           (TIES, "Ties"), (DISAGREE, "Judge and human disagree"))
WINNER_TEXT = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both bad", None: "—", "": "—"}


def _get(row: dict, *names: str, default: object = None) -> object:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    return default


def _set_text(edit: QPlainTextEdit, text: str) -> None:
    """Replace the text only when it changed: a refresh must not scroll an answer being read back to its top."""
    if edit.toPlainText() != text:
        edit.setPlainText(text)


def verdict_text(value: object) -> str:
    return WINNER_TEXT.get(value if isinstance(value, str) or value is None else str(value), str(value))


class ResultsPage(QWidget):
    """One evaluation's results. ``show_nearest(evaluation_id)`` asks the panel to open Curate on them."""

    show_nearest = Signal(int)

    def __init__(self, jobs: JobRunner, messages: MessageArea, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs, self.messages = jobs, messages
        self.context: ProjectContext | None = None
        self.dialogs = Dialogs(self)
        self.evaluation_id: int | None = None
        self.data: work.ResultsData | None = None
        self.rows: list[dict] = []
        self._shown_rows: list[dict] = []
        self._read_job: object | None = None  # the read computing now, and of which evaluation
        self._read_id: int | None = None
        self._read_again = False
        self._build()

    def _build(self) -> None:
        self.export_action = make_action(self, "Export…", "Ctrl+E", self.export,
                                         "Write the result and every prompt's verdicts as CSV or JSON")
        self.seeds_action = make_action(self, "Lost prompts → Seeds…", "Ctrl+Shift+L", self.lost_to_seeds,
                                        "New seed tasks from the prompts the student (A) lost, with the winner's answer")
        self.nearest_action = make_action(self, "Nearest training samples in Curate", "Ctrl+Shift+C",
                                          self.nearest_in_curate,
                                          "Open Curate on the training samples nearest to the lost prompts (ROUGE-L)")
        self.refresh_action = make_action(self, "Refresh", "F5", self.refresh, "Compute the results again")
        self.title = heading("Results")
        self.meta = muted("")
        self.meta.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.view = EvalResultsView()
        self.filter = QComboBox(toolTip="Which prompts the table lists")
        for key, label in FILTERS:
            self.filter.addItem(label, key)
        self.filter.currentIndexChanged.connect(self._fill_table)
        self.table = read_only_table(["#", "Category", "Instruction", "Pair", "A first", "B first", "Judge", "Human"])
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        for column, width in enumerate((40, 84, 260, 150, 54, 54, 84, 64)):
            self.table.setColumnWidth(column, width)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for column, tip in ((4, "The judge's verdict with A's answer shown first"),
                            (5, "The judge's verdict with B's answer shown first"),
                            (6, "Counts only when both orders agree; otherwise an inconsistent tie"),
                            (7, "Your blind vote on the Compare page")):
            self.table.horizontalHeaderItem(column).setToolTip(tip)
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        self.table_view = HintedView(self.table, "Every prompt's verdicts appear here once the evaluation has answers.")
        self.prompt_text = QPlainTextEdit(readOnly=True, placeholderText="The selected prompt")
        self.answer_a = QPlainTextEdit(readOnly=True, placeholderText="Answer of A")
        self.answer_b = QPlainTextEdit(readOnly=True, placeholderText="Answer of B")
        self.answer_a_label = ElidedLabel("A")  # a long endpoint label must not widen the pane
        self.answer_b_label = ElidedLabel("B")
        for label in (self.answer_a_label, self.answer_b_label):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.raw_judge = QPlainTextEdit(readOnly=True, placeholderText="The judge's raw output, both orders")
        for edit in (self.prompt_text, self.answer_a, self.answer_b, self.raw_judge):
            edit.setMinimumHeight(60)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.title)
        bar.addStretch(1)
        for action in (self.refresh_action, self.export_action, self.seeds_action, self.nearest_action):
            bar.addWidget(tool_button(action))

        table_box = QWidget()
        tl = QVBoxLayout(table_box)
        tl.setContentsMargins(0, 0, 0, 0)
        filter_row = QHBoxLayout()
        filter_row.addWidget(QLabel("Show"))
        filter_row.addWidget(self.filter)
        self.table_count = muted("", wrap=False)
        filter_row.addWidget(self.table_count)
        filter_row.addStretch(1)
        tl.addLayout(filter_row)
        tl.addWidget(self.table_view, 1)
        answers = QWidget()
        al = QVBoxLayout(answers)
        al.setContentsMargins(0, 0, 0, 0)
        al.addWidget(self.prompt_text, 1)
        pair = QHBoxLayout()
        for label, edit in ((self.answer_a_label, self.answer_a), (self.answer_b_label, self.answer_b)):
            column = QVBoxLayout()
            column.addWidget(label)
            column.addWidget(edit, 1)
            pair.addLayout(column, 1)
        al.addLayout(pair, 4)
        al.addWidget(self.raw_judge, 2)
        lower = QSplitter(Qt.Orientation.Horizontal, childrenCollapsible=False)
        lower.addWidget(table_box)
        lower.addWidget(answers)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        lower.setSizes([600, 440])
        # The summary and plots get the whole page, and so does the table with both answers: at 1280 x 800
        # they do not fit one above the other. Alt+S / Alt+P switch (the tabs' mnemonics).
        self.inner = QTabWidget(documentMode=True)
        self.inner.addTab(self.view, "&Summary")
        self.inner.addTab(lower, "&Per prompt")
        self.inner.setTabToolTip(0, "Win rates with intervals, lengths, position consistency, plots (Alt+S)")
        self.inner.setTabToolTip(1, "Every prompt's verdicts and both answers (Alt+P)")
        self.empty = HintedView(self.inner, "Select an evaluation on the left to see its results.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.meta)
        layout.addWidget(self.empty, 1)
        self._update_actions()

    # -- the project -------------------------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        self.context = context
        self._read_job, self._read_id, self._read_again = None, None, False
        self.set_evaluation(None)

    def set_evaluation(self, evaluation_id: int | None) -> None:
        changed = evaluation_id != self.evaluation_id
        self.evaluation_id = evaluation_id
        if changed:
            self.data = None
            self.rows = []
            self._fill_table()
            self.view.show_result(None)
            self.title.setText("Results")
            self.meta.setText("")
        self.empty.show_hint(evaluation_id is None)
        self._update_actions()
        if evaluation_id is not None:
            self.refresh()

    def is_reading(self) -> bool:
        return self._read_job is not None

    def refresh(self) -> None:
        """Read the results again; while a read of this evaluation is computing, one more runs when it ends
        (submitting now would cancel it, and with many prompts no read would ever finish)."""
        if self.context is None or self.evaluation_id is None:
            return
        if self._read_job is not None and self._read_id == self.evaluation_id:
            self._read_again = True
            return
        self._read_again = False
        job = self.jobs.submit("Computing the evaluation's results", work.read_results, self.evaluation_id,
                               key="eval-results", project=self.context, quiet=True, on_done=self._show,
                               on_error=self._on_error)
        self._read_job, self._read_id = job, self.evaluation_id
        job.finished.connect(lambda j=job: self._on_read_end(j))

    def _on_read_end(self, job: object) -> None:
        if job is not self._read_job:  # a read of another evaluation, cancelled by this one
            return
        self._read_job = None
        if self._read_again:
            self.refresh()

    def _show(self, data: work.ResultsData) -> None:
        if data.evaluation.id != self.evaluation_id:
            return
        self.data = data
        evaluation = data.evaluation
        self.title.setText(f"Results — {evaluation.label}")
        self.meta.setText(describe(evaluation, data))
        if data.judge is None:  # votes only: they are the result (the view then hides its human card)
            self.view.show_result(data.human)
        else:
            self.view.show_result(data.judge, human=data.human, agreement=data.agreement)
        self.rows = list(data.rows)
        self._fill_table()
        self._update_actions()

    def _on_error(self, message: str) -> None:
        self.messages.show_error(message)

    # -- the table ---------------------------------------------------------------------------------------
    def _keep(self, row: dict) -> bool:
        key = self.filter.currentData()
        winner = _get(row, "winner")
        human = _get(row, "human")
        if key == LOST:  # the prompts counted as lost (a human vote over the judge), in the pairs with A
            lost = self.data.lost_ids if self.data is not None else frozenset()
            return _get(row, "prompt_id") in lost and 0 in (row.get("system_a"), row.get("system_b"))
        if key == INCONSISTENT:
            return bool(_get(row, "inconsistent", default=False))
        if key == TIES:
            return winner == "tie"
        if key == DISAGREE:
            return human in ("a", "b", "tie") and winner in ("a", "b", "tie") and human != winner
        return True

    @staticmethod
    def _row_key(row: dict) -> tuple:
        return _get(row, "prompt_id"), row.get("system_a"), row.get("system_b")

    def _fill_table(self) -> None:
        index = self.table.currentRow()
        # A refresh (every RESULTS_REFRESH_MS while a run commits) keeps the prompt being read selected.
        keep = self._row_key(self._shown_rows[index]) if 0 <= index < len(self._shown_rows) else None
        rows = [row for row in self.rows if self._keep(row)]
        self._shown_rows = rows
        pairs = {(row.get("system_a"), row.get("system_b")) for row in self.rows}
        self.table.setColumnHidden(3, len(pairs) <= 1)  # two systems: one pair, the labels are above the answers
        self.table.setRowCount(len(rows))
        for n, row in enumerate(rows):
            pair = f"{_get(row, 'label_a', 'system_a_label', default='A')} vs " \
                   f"{_get(row, 'label_b', 'system_b_label', default='B')}"
            winner = _get(row, "winner")
            judge = verdict_text(winner)
            if _get(row, "inconsistent", default=False):
                judge = "inconsistent"
            cells = (item(n + 1, _get(row, "prompt_id"), align_right=True), item(_get(row, "category", default="")),
                     item(_get(row, "instruction", default="")), item(pair), item(verdict_text(_get(row, "ab"))),
                     item(verdict_text(_get(row, "ba"))), item(judge), item(verdict_text(_get(row, "human"))))
            for column, cell in enumerate(cells):
                self.table.setItem(n, column, cell)
        self.table_view.show_hint(not rows, "Every prompt's verdicts appear here once the evaluation has answers."
                                  if not self.rows else "No prompt matches this filter.")
        self.table_count.setText(f"{len(rows)} of {len(self.rows)}" if self.rows else "")
        self.inner.setTabText(1, f"&Per prompt ({len(self.rows)})" if self.rows else "&Per prompt")
        if rows:
            keys = [self._row_key(row) for row in rows]
            self.table.selectRow(keys.index(keep) if keep in keys else 0)
            self._on_row_selected()  # the same row selected again emits nothing, and its answers may have come
        else:
            for edit in (self.prompt_text, self.answer_a, self.answer_b, self.raw_judge):
                edit.clear()

    def _on_row_selected(self) -> None:
        index = self.table.currentRow()
        if not 0 <= index < len(self._shown_rows):
            return
        row = self._shown_rows[index]
        text = str(_get(row, "instruction", default=""))
        if _get(row, "input"):
            text += f"\n\nInput:\n{_get(row, 'input')}"
        _set_text(self.prompt_text, text)
        self.answer_a_label.setText(f"A — {_get(row, 'label_a', 'system_a_label', default='A')}")
        self.answer_b_label.setText(f"B — {_get(row, 'label_b', 'system_b_label', default='B')}")
        _set_text(self.answer_a, str(_get(row, "answer_a", default="(no answer)")))
        _set_text(self.answer_b, str(_get(row, "answer_b", default="(no answer)")))
        raw = [f"With A shown first — verdict {verdict_text(_get(row, 'ab'))}:\n"
               + str(_get(row, "judge_raw_ab", default="")).strip(),
               f"With B shown first — verdict {verdict_text(_get(row, 'ba'))}:\n"
               + str(_get(row, "judge_raw_ba", default="")).strip()]
        _set_text(self.raw_judge, "\n\n".join(part.strip() for part in raw))

    # -- actions -----------------------------------------------------------------------------------------
    def export(self) -> None:
        if self.context is None or self.evaluation_id is None:
            return
        suggested = str(self.context.root / "exports" / f"evaluation-{self.evaluation_id}.csv")
        path = self.dialogs.save_file("Export the evaluation's results", suggested,
                                      "CSV, one row per prompt (*.csv);;JSON (*.json)")
        if not path:
            return
        self.jobs.submit("Exporting the evaluation", work.export_results, self.evaluation_id, path,
                         key="eval-export", project=self.context,
                         on_done=lambda written: self.messages.show_message(f"Exported to {written}.", "info"),
                         on_error=self._on_error)

    def lost_to_seeds(self) -> None:
        if self.context is None or self.evaluation_id is None or self.data is None:
            return
        lost, student = self.data.lost_unsent, self.data.evaluation.systems[0].label
        if not lost:
            self.messages.show_message(
                f"The prompts the student ({student}) lost are seed tasks already: nothing more to send."
                if self.data.lost else f"The student ({student}) lost no prompt here: nothing to send to the seeds.",
                "info")
            return
        if not self.dialogs.confirm(
                "Lost prompts → Seeds",
                f"Make {count_noun(lost, 'new seed task')} from the prompts {student} lost, each with the winning "
                f"answer as its output and tagged eval-{self.evaluation_id}?\n\nThose prompts then leave the "
                "evaluation-only set: they become training material, and later evaluations on this set no longer "
                "include them.", "Make seed tasks"):
            return
        self.jobs.submit("Sending lost prompts to the seeds", work.lost_to_seeds, self.evaluation_id,
                         key="eval-seeds", project=self.context, on_done=self._on_seeds_made, on_error=self._on_error)

    def _on_seeds_made(self, seed_ids: list[int]) -> None:
        self.messages.show_message(f"{count_noun(len(seed_ids), 'seed task')} added in Seeds (tagged "
                                   f"eval-{self.evaluation_id}); those prompts left the evaluation-only set.", "info")
        self.refresh()

    def nearest_in_curate(self) -> None:
        if self.context is None or self.evaluation_id is None:
            return
        evaluation_id = self.evaluation_id
        self.jobs.submit("Finding the training samples nearest to the lost prompts", work.nearest_to_lost,
                         evaluation_id, key="eval-nearest", project=self.context,
                         on_done=lambda count, e=evaluation_id: self._on_nearest(e, count), on_error=self._on_error)

    def _on_nearest(self, evaluation_id: int, count: int) -> None:
        if not count:
            self.messages.show_message("No training samples near the lost prompts were found.", "info")
            return
        self.show_nearest.emit(evaluation_id)

    def _update_actions(self) -> None:
        chosen = self.context is not None and self.evaluation_id is not None
        has_data = chosen and self.data is not None
        self.refresh_action.setEnabled(chosen)
        self.export_action.setEnabled(has_data and (self.data.judge is not None or self.data.human is not None))
        self.seeds_action.setEnabled(has_data and self.data.lost_unsent > 0)
        self.nearest_action.setEnabled(has_data and self.data.lost > 0)
        if has_data:
            self.seeds_action.setText(f"Lost prompts → Seeds ({self.data.lost_unsent})…")
            if self.data.lost_sent:
                self.seeds_action.setToolTip(f"{count_noun(self.data.lost_sent, 'lost prompt')} of this evaluation "
                                             "are seed tasks already (tagged "
                                             f"eval-{self.data.evaluation.id} in Seeds)")


def describe(evaluation: Evaluation, data: work.ResultsData) -> str:
    """The line that says what this result is, so it can be repeated."""
    systems = " · ".join(f"{chr(65 + i)}: {s.label}" for i, s in enumerate(evaluation.systems))
    judge = evaluation.judge.label or evaluation.judge.endpoint.get("model", "") if evaluation.judge else "none"
    decided, total = data.votes
    votes = f" · human votes {decided} / {total}" if decided else ""
    return (f"{systems} · {count_noun(len(evaluation.prompt_ids), 'prompt')} (set hash "
            f"{evaluation.set_hash[:12]}) · judge {judge} · {evaluation.status} · ${evaluation.cost:.4f}{votes}")
