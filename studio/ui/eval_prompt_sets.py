"""The Evaluate panel's Prompt sets page: import, take a validation split, rename, delete, preview.

A prompt set is evaluation-only (Generate and Train refuse its prompts), so the page says so
where sets are made. Reading, importing and deleting are jobs; the list follows
``prompt_sets_changed`` (coalesced by the context), so a set imported from the CLI shows up too.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.evaluation.model import EvalPrompt, PromptSet
from studio.core.wording import count_noun
from studio.ui import eval_work as work
from studio.ui.hinted_view import HintedView
from studio.ui.eval_widgets import (
    ID_ROLE,
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

IMPORT_FILTERS = "Prompt files (*.jsonl *.json);;All files (*)"
WALL_NOTE = ("Evaluation only: the prompts of these sets are never used as generation examples or training "
             "samples (Generate and Train refuse them).")


class SnapshotSplitDialog(QDialog):
    """Which snapshot, and the split settings the training job uses (so a run on it is not refused)."""

    def __init__(self, snapshots: list[tuple[int, str, int]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Prompt set from a validation split")
        self.snapshot = QComboBox()
        for snapshot_id, name, count in snapshots:
            self.snapshot.addItem(f"#{snapshot_id} {name} ({count_noun(count, 'sample')})", snapshot_id)
        self.name = QLineEdit(placeholderText="default: the snapshot's name + \"validation\"")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=42, toolTip="The split's seed (training's default)")
        self.fraction = QDoubleSpinBox(minimum=0.001, maximum=0.5, singleStep=0.01, decimals=3, value=0.05,
                                       toolTip="The share held out (training's default)")
        self.max_samples = QSpinBox(minimum=1, maximum=1_000_000, value=1000,
                                    toolTip="The most held-out samples (training's default)")
        form = QFormLayout()
        form.addRow("Snapshot", self.snapshot)
        form.addRow("Name", self.name)
        form.addRow("Split seed", self.seed)
        form.addRow("Validation share", self.fraction)
        form.addRow("At most", self.max_samples)
        note = muted("The prompts are exactly the records a training run with these settings holds out, so "
                     "training on this snapshot with the same split stays allowed.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create set")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def values(self) -> tuple[int, str, int, float, int]:
        return (int(self.snapshot.currentData()), self.name.text().strip(), self.seed.value(), self.fraction.value(),
                self.max_samples.value())


class PromptSetsPage(QWidget):
    """Prompt sets of the project; ``evaluate_requested(set_id)`` asks the panel for a new evaluation on one."""

    evaluate_requested = Signal(int)
    sets_loaded = Signal(object)  # list[PromptSet], after every refresh (the New evaluation page's combo)

    def __init__(self, jobs: JobRunner, messages: MessageArea, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs, self.messages = jobs, messages
        self.context: ProjectContext | None = None
        self.dialogs = Dialogs(self)
        self.split_dialog = SnapshotSplitDialog  # tests replace it with one that answers at once
        self.sets: list[PromptSet] = []
        self._preview_set: int | None = None
        self._preview_key: tuple | None = None  # (id, content_hash, released_count, prompt_count) last read
        self._prompts: list[EvalPrompt] = []
        self._select_after: int | None = None
        self._build()

    def _build(self) -> None:
        self.import_action = make_action(self, "Import…", "Ctrl+I", self.import_file,
                                         "Import a prompt file: self-instruct JSONL, Alpaca JSON, or JSONL of "
                                         "prompt / messages")
        self.split_action = make_action(self, "From validation split…", "Ctrl+Shift+I", self.from_snapshot,
                                        "Make a set of a snapshot's validation split")
        self.evaluate_action = make_action(self, "Evaluate with this set", "Ctrl+Return", self._on_evaluate,
                                           "Set up a new evaluation on the selected set")
        self.rename_action = make_action(self, "Rename", "F2", self.rename_selected, "Rename the selected set")
        self.delete_action = make_action(self, "Delete", QKeySequence.StandardKey.Delete, self.delete_selected,
                                         "Delete the selected set")
        self.table = read_only_table(["Name", "Prompts", "Released", "Categories", "Hash", "Source", "Created"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for column, width in enumerate((210, 64, 70, 200, 100, 150, 120)):
            self.table.setColumnWidth(column, width)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.table.itemActivated.connect(lambda _item: self._on_evaluate())
        self.sets_view = HintedView(self.table, "No prompt sets yet.\nImport a prompt file (Ctrl+I), e.g. the Self-Instruct "
                                            "user-oriented instructions, or take a snapshot's validation split "
                                            "(Ctrl+Shift+I).")
        self.preview = read_only_table(["#", "Category", "Instruction", "Input"])
        pheader = self.preview.horizontalHeader()
        pheader.setStretchLastSection(False)
        for column, width in enumerate((40, 110, 300, 150)):
            self.preview.setColumnWidth(column, width)
        pheader.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.preview.itemSelectionChanged.connect(self._on_prompt_selected)
        self.preview_view = HintedView(self.preview, "Select a set to see its prompts.")
        self.preview_label = muted("")
        self.detail = QPlainTextEdit(readOnly=True, placeholderText="The selected prompt in full")
        self.detail.setMinimumHeight(80)

        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for action in (self.import_action, self.split_action, self.rename_action, self.delete_action):
            buttons.addWidget(tool_button(action))
        buttons.addStretch(1)
        evaluate = tool_button(self.evaluate_action)
        buttons.addWidget(evaluate)

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        title = QHBoxLayout()
        title.addWidget(heading("Prompt sets"))
        title.addStretch(1)
        tl.addLayout(title)
        tl.addWidget(muted(WALL_NOTE))
        tl.addLayout(buttons)
        tl.addWidget(self.sets_view, 1)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.preview_label)
        inner = QSplitter(Qt.Orientation.Horizontal, childrenCollapsible=False)
        inner.addWidget(self.preview_view)
        inner.addWidget(self.detail)
        inner.setStretchFactor(0, 3)
        inner.setStretchFactor(1, 2)
        inner.setSizes([620, 380])
        bl.addWidget(inner, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical, childrenCollapsible=False)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setSizes([200, 460])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self._update_actions()

    # -- the project -----------------------------------------------------------------------------------
    def set_context(self, context: ProjectContext | None) -> None:
        if self.context is not None:
            self.context.prompt_sets_changed.disconnect(self.refresh)
        self.context = context
        self.sets = []
        self._fill([])
        if context is not None:
            context.prompt_sets_changed.connect(self.refresh)
            self.refresh()

    def refresh(self) -> None:
        if self.context is not None:
            self.jobs.submit("Reading prompt sets", work.read_prompt_sets, key="eval-sets", project=self.context,
                             quiet=True, on_done=self._fill, on_error=self._on_error)

    def selected_set(self) -> PromptSet | None:
        row = self.table.currentRow()
        cell = self.table.item(row, 0) if row >= 0 else None
        if cell is None:
            return None
        set_id = cell.data(ID_ROLE)
        return next((s for s in self.sets if s.id == set_id), None)

    def select_set(self, set_id: int) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(ID_ROLE) == set_id:
                self.table.selectRow(row)
                return
        self._select_after = set_id  # not listed yet: once it is

    # -- actions ---------------------------------------------------------------------------------------
    def import_file(self) -> None:
        if self.context is None:
            return
        path = self.dialogs.open_file("Import an evaluation prompt set", IMPORT_FILTERS)
        if not path:
            return
        self.jobs.submit("Importing a prompt set", work.import_prompt_set, path, None, key="eval-import",
                         project=self.context, on_done=self._on_created, on_error=self._on_error)

    def from_snapshot(self) -> None:
        if self.context is None:
            return
        self.jobs.submit("Reading snapshots", work.read_snapshots, key="eval-snapshots", project=self.context,
                         quiet=True, on_done=self._ask_split, on_error=self._on_error)

    def _ask_split(self, snapshots: list[tuple[int, str, int]]) -> None:
        if not snapshots:
            self.messages.show_message("No snapshots yet: freeze one in Curate (Snapshots…) to take its validation "
                                       "split as a prompt set.", "info")
            return
        dialog = self.split_dialog(snapshots, self)
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return
            snapshot_id, name, seed, fraction, max_samples = dialog.values()
        finally:
            if hasattr(dialog, "deleteLater"):  # parented for its position: each Ctrl+Shift+I would keep one
                dialog.deleteLater()
        self.jobs.submit("Taking a validation split as a prompt set", work.prompt_set_from_snapshot, snapshot_id,
                         name, seed, fraction, max_samples, key="eval-split", project=self.context,
                         on_done=self._on_created, on_error=self._on_error)

    def _on_created(self, prompt_set: PromptSet) -> None:
        dropped = int((prompt_set.meta or {}).get("duplicates_dropped") or 0)
        categories = len(prompt_set.categories)
        text = (f"Prompt set {prompt_set.name!r}: {count_noun(prompt_set.prompt_count, 'prompt')}"
                + (f" in {count_noun(categories, 'category', 'categories')}" if categories else "")
                + (f", {count_noun(dropped, 'duplicate')} dropped" if dropped else "")
                + "; evaluation only (never generation examples or training samples).")
        self.messages.show_message(text, "info")
        self._select_after = prompt_set.id
        self.refresh()

    def rename_selected(self) -> None:
        chosen = self.selected_set()
        if chosen is None or self.context is None:
            return
        name = self.dialogs.text("Rename prompt set", "Name:", chosen.name)
        if name is None or not name.strip() or name.strip() == chosen.name:
            return
        self.jobs.submit("Renaming a prompt set", work.rename_prompt_set, chosen.id, name.strip(), key="eval-set-edit",
                         project=self.context, on_done=lambda _r: self.refresh(), on_error=self._on_error)

    def delete_selected(self) -> None:
        chosen = self.selected_set()
        if chosen is None or self.context is None:
            return
        if not self.dialogs.confirm("Delete prompt set",
                                    f"Delete prompt set {chosen.name!r} ({count_noun(chosen.prompt_count, 'prompt')})?"
                                    " Its prompts may then be used for generation and training again. A set that "
                                    "evaluations use cannot be deleted (delete those evaluations first).", "Delete"):
            return
        self.jobs.submit("Deleting a prompt set", work.delete_prompt_set, chosen.id, key="eval-set-edit",
                         project=self.context, on_done=lambda _r: self.refresh(), on_error=self._on_error)

    def _on_evaluate(self) -> None:
        chosen = self.selected_set()
        if chosen is not None:
            self.evaluate_requested.emit(chosen.id)

    def _on_error(self, message: str) -> None:
        self.messages.show_error(message)

    # -- showing ---------------------------------------------------------------------------------------
    def _fill(self, sets: list[PromptSet]) -> None:
        keep = self._select_after
        current = self.selected_set()
        if keep is None and current is not None:
            keep = current.id
        self.sets = list(sets)
        self.table.blockSignals(True)
        self.table.setRowCount(len(sets))
        for row, prompt_set in enumerate(sets):
            categories = ", ".join(prompt_set.categories[:6]) + ("…" if len(prompt_set.categories) > 6 else "")
            cells = (item(prompt_set.name, prompt_set.id),
                     item(prompt_set.prompt_count, align_right=True),
                     item(prompt_set.released_count or "", align_right=True,
                          tip="Prompts sent to the seeds: no longer evaluation-only" if prompt_set.released_count
                          else ""),
                     item(f"{len(prompt_set.categories)}: {categories}" if prompt_set.categories else "—",
                          tip=", ".join(prompt_set.categories)),
                     item(prompt_set.content_hash[:12], tip=f"sha256 over the active prompts: {prompt_set.content_hash}"),
                     item(prompt_set.source),
                     item(time.strftime("%Y-%m-%d %H:%M", time.localtime(prompt_set.created_at))))
            for column, cell in enumerate(cells):
                self.table.setItem(row, column, cell)
        self.table.blockSignals(False)
        self.sets_view.show_hint(not sets)
        if keep is not None:
            for row in range(len(sets)):
                if sets[row].id == keep:
                    self.table.selectRow(row)
                    self._select_after = None if keep == self._select_after else self._select_after
                    break
        if self.table.currentRow() < 0 and sets:
            self.table.selectRow(0)
        self._on_selection_changed()
        self.sets_loaded.emit(self.sets)

    def _on_selection_changed(self) -> None:
        self._update_actions()
        chosen = self.selected_set()
        if chosen is None:
            self._preview_set, self._preview_key = None, None
            self._prompts = []
            self.preview.setRowCount(0)
            self.preview_label.setText("")
            self.preview_view.show_hint(True, "Select a set to see its prompts.")
            self.detail.clear()
            return
        # Keyed on what the preview shows: after prompts are sent to the seeds (released) the same set must
        # be read again, or its preview keeps them as evaluation-only.
        if self._preview_key == (chosen.id, chosen.content_hash, chosen.released_count, chosen.prompt_count):
            return
        self._preview_set = chosen.id
        self._preview_key = (chosen.id, chosen.content_hash, chosen.released_count, chosen.prompt_count)
        self.preview_label.setText(f"{chosen.name}: reading prompts…")
        self.jobs.submit("Reading a prompt set", work.read_prompts, chosen.id, key="eval-preview",
                         project=self.context, quiet=True,
                         on_done=lambda result, s=chosen: self._fill_preview(s, *result), on_error=self._on_error)

    def _fill_preview(self, prompt_set: PromptSet, prompts: list[EvalPrompt], total: int) -> None:
        if prompt_set.id != self._preview_set:
            return
        self._prompts = prompts
        self.preview.setRowCount(len(prompts))
        for row, prompt in enumerate(prompts):
            instruction = prompt.instruction + ("  (sent to the seeds)" if not prompt.active else "")
            cells = (item(row + 1, prompt.id, align_right=True), item(prompt.category), item(instruction),
                     item(prompt.input))
            for column, cell in enumerate(cells):
                self.preview.setItem(row, column, cell)
        shown = f"the first {len(prompts)} of " if total > len(prompts) else ""
        self.preview_label.setText(f"{prompt_set.name}: {shown}{count_noun(total, 'prompt')}"
                                   + (f" · {count_noun(len(prompt_set.categories), 'category', 'categories')}"
                                      if prompt_set.categories else "")
                                   + f" · hash {prompt_set.content_hash[:12]}")
        self.preview_view.show_hint(not prompts, "This set has no prompts.")
        if prompts:
            self.preview.selectRow(0)

    def _on_prompt_selected(self) -> None:
        row = self.preview.currentRow()
        if not 0 <= row < len(self._prompts):
            self.detail.clear()
            return
        prompt = self._prompts[row]
        parts = [f"Instruction\n{prompt.instruction}"]
        if prompt.messages:
            parts = ["Messages\n" + "\n".join(f"[{m.get('role', '')}] {m.get('content', '')}" for m in prompt.messages)]
        if prompt.input:
            parts.append(f"Input\n{prompt.input}")
        if prompt.reference:
            parts.append(f"Reference answer\n{prompt.reference}")
        if prompt.category:
            parts.append(f"Category: {prompt.category}")
        if not prompt.active:
            parts.append(f"Sent to {prompt.released_to}: no longer evaluation-only.")
        self.detail.setPlainText("\n\n".join(parts))

    def _update_actions(self) -> None:
        has_project = self.context is not None
        chosen = self.selected_set() is not None
        self.import_action.setEnabled(has_project)
        self.split_action.setEnabled(has_project)
        for action in (self.rename_action, self.delete_action, self.evaluate_action):
            action.setEnabled(has_project and chosen)
