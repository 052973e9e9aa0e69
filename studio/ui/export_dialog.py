"""Export a trained run: the adapter alone, a merged model or GGUF (twin of ``distill-studio export``).

The export is the child process ``python -m studio.export`` started on the window's job runner
(``jobs.start_process``): the GUI never imports torch, the progress bar follows the child's JSON
events, and Cancel stops the child (stop file, then SIGTERM), which removes its temp folder, so a
cancelled export leaves nothing behind.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QStandardItemModel
from PySide6.QtWidgets import (
    QButtonGroup, QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
    QPushButton, QRadioButton, QVBoxLayout, QWidget,
)

from studio.core import exporting
from studio.core.training.runs import TrainingRun
from studio.ui.jobs import JobRunner, ProcessJob, ProcessResult
from studio.ui.message_area import INFO, MessageArea
from studio.ui.project_context import ProjectContext

PROGRESS_STEPS = 1000
STOP_TIMEOUT_S = 6.0   # the stop file is seen between tensors; SIGTERM after half of this, a kill after all


class ExportDialog(QDialog):
    """``ExportDialog(context, jobs, run_id)``: choose format, quant and folder; Export; watch; Open folder."""

    def __init__(self, context: ProjectContext, jobs: JobRunner, run_id: int, parent: QWidget | None = None):
        super().__init__(parent)
        self._context, self._jobs = context, jobs
        self.run: TrainingRun = context.project.training.get(run_id)   # one row: a small read
        self.job: ProcessJob | None = None
        self.result_path: Path | None = None
        self._target_edited = False
        self._target: Path | None = None
        self._pid = 0
        self._final: exporting.ExportEvent | None = None
        self._plan: tuple[str, ...] = ()
        self._fraction = 0.0
        self.setWindowTitle(f"Export run {self.run.label}")
        self.resize(640, 320)

        self.messages = MessageArea()
        self.format_buttons = QButtonGroup(self)
        formats = QHBoxLayout()
        for fmt in exporting.EXPORT_FORMATS:
            button = QRadioButton({"adapter": "Adapter", "merged": "Merged model", "gguf": "GGUF"}[fmt])
            button.setProperty("format", fmt)
            button.setToolTip(exporting.FORMAT_HELP[fmt])
            self.format_buttons.addButton(button)
            formats.addWidget(button)
        formats.addStretch(1)
        self.quant = QComboBox()
        for quant in exporting.QUANTS:
            self.quant.addItem(quant, quant)
            self.quant.setItemData(self.quant.count() - 1, exporting.QUANT_HELP[quant], Qt.ItemDataRole.ToolTipRole)
        self.quant.setCurrentIndex(exporting.QUANTS.index(exporting.DEFAULT_QUANT))
        self.kquants = exporting.kquants_available()
        if not self.kquants:
            model = self.quant.model()
            assert isinstance(model, QStandardItemModel)
            for quant in exporting.KQUANTS:
                item = model.item(exporting.QUANTS.index(quant))
                item.setEnabled(False)
                item.setToolTip(exporting.KQUANTS_MISSING)
        self.quant.setToolTip("GGUF tensor type" + ("" if self.kquants else f"; {exporting.KQUANTS_MISSING}"))
        self.target = QLineEdit()
        self.target.textEdited.connect(self._on_target_edited)
        self.choose_button = QPushButton("Choose…", clicked=self._on_choose_clicked)
        target_row = QHBoxLayout()
        target_row.addWidget(self.target, 1)
        target_row.addWidget(self.choose_button)

        form = QFormLayout()
        form.addRow("Format:", formats)
        form.addRow("GGUF type:", self.quant)
        form.addRow("Folder:", target_row)

        self.stage = QLabel("")
        self.stage.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.export_button = QPushButton("Export", clicked=self.start, default=True)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel)
        self.open_button = QPushButton("Open folder", clicked=self.open_folder, enabled=False)
        self.close_button = QPushButton("Close", clicked=self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.open_button, self.export_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.messages)
        layout.addWidget(QLabel(f"Run {self.run.label}: {self.run.settings.prompt_format} format, "
                                f"base {self.run.base_model}"))
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage)
        layout.addStretch(1)
        layout.addLayout(buttons)

        self.format_buttons.buttonToggled.connect(self._on_format_toggled)
        self.gguf = exporting.gguf_available()
        gguf_button = self.format_buttons.buttons()[exporting.EXPORT_FORMATS.index("gguf")]
        if not self.gguf:
            gguf_button.setToolTip(exporting.GGUF_MISSING)
        self.set_format("gguf" if self.gguf else "merged")
        self._update_buttons()

    # -- choices ------------------------------------------------------------------------------------
    def format(self) -> str:
        button = self.format_buttons.checkedButton()
        return button.property("format") if button is not None else "adapter"

    def set_format(self, fmt: str) -> None:
        self.format_buttons.buttons()[exporting.EXPORT_FORMATS.index(fmt)].setChecked(True)

    def selected_quant(self) -> str | None:
        return self.quant.currentData() if self.format() == "gguf" else None

    def _on_format_toggled(self, _button, checked: bool) -> None:
        if not checked:
            return
        self.quant.setEnabled(self.format() == "gguf" and not self.running)
        if not self._target_edited:
            self.target.setText(str(exporting.default_export_dir(self._context.root, self.run, self.format())))

    def _on_target_edited(self, _text: str) -> None:
        self._target_edited = True

    def _on_choose_clicked(self) -> None:
        current = Path(self.target.text() or self._context.root)
        chosen = QFileDialog.getExistingDirectory(self, "Export into folder", str(current.parent))
        if not chosen:
            return
        folder = Path(chosen)
        if folder.is_dir() and any(folder.iterdir()) and not (folder / "export.json").is_file():
            folder = folder / current.name       # a folder with other things in it: export beside them
        self.target.setText(str(folder))
        self._target_edited = True

    # -- running ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self) -> None:
        if self.running:
            return
        fmt, quant = self.format(), self.selected_quant()
        text = self.target.text().strip()
        if not text:
            self.messages.show_error("Choose the folder to export into")
            return
        self._target = Path(text).expanduser()
        try:
            quant = exporting.check_choice(fmt, quant)
            exporting.check_run(self.run, fmt, quant)
            argv = exporting.export_command(self.run, self._target, fmt, quant)
        except exporting.ExportError as exc:
            self.messages.show_error(str(exc))
            return
        self.messages.clear()
        self.result_path = None
        self._final = None
        self.open_button.setEnabled(False)
        self._plan, self._fraction = exporting.stage_plan(fmt, quant), 0.0
        self.progress.setRange(0, 0)             # busy until the first event says how far
        self.stage.setText("Starting the export…")
        self.job = self._jobs.start_process(
            f"Exporting run {self.run.label} ({fmt}{' ' + quant if quant else ''})", argv,
            key=f"export-{self.run.id}", env=exporting.export_env(self.run), on_line=self._on_line,
            on_exit=self._on_exit, stop_timeout_s=STOP_TIMEOUT_S)
        self._pid = int(self.job.process.processId())
        self._update_buttons()

    def cancel(self) -> None:
        """Stop a running export (the child removes what it wrote)."""
        if self.running:
            self.stage.setText("Cancelling…")
            self.job.stop()
            self._update_buttons()

    def _on_line(self, line: str) -> None:
        event = exporting.parse_event(line)
        if event is None:
            return
        if event.kind == "progress":
            self._fraction = exporting.overall_fraction(self._plan, event, self._fraction)
            self.progress.setRange(0, PROGRESS_STEPS)
            self.progress.setValue(round(self._fraction * PROGRESS_STEPS))
            self.stage.setText(event.describe())
        else:
            self._final = event

    def _on_exit(self, result: ProcessResult) -> None:
        final, self._final = self._final, None
        self.progress.setRange(0, PROGRESS_STEPS)
        if final is not None and final.kind == "done" and result.exit_code == 0:
            self.result_path = Path(final.path)
            self.progress.setValue(PROGRESS_STEPS)
            self.stage.setText(final.describe())
            self.messages.show_message(f"Exported run {self.run.label} to {final.path}", INFO)
        elif result.stopped:
            self._remove_leftovers()
            self.progress.setValue(0)
            self.stage.setText("Export cancelled; nothing was written.")
        elif final is not None and final.kind == "error":
            self.progress.setValue(0)
            self.stage.setText("")
            self.messages.show_error(f"Export failed: {final.describe()}", result.stderr_tail)
        else:
            tail = [line for line in result.stderr_tail.strip().splitlines() if line.strip()]
            self._remove_leftovers()
            self.progress.setValue(0)
            self.messages.show_error(f"The export process ended with status {result.exit_code}"
                                     + (f": {tail[-1]}" if tail else ""), result.stderr_tail)
        self._update_buttons()

    def _remove_leftovers(self) -> None:
        """A child killed before it could clean up leaves its temp folder: remove exactly that one."""
        if self._target is not None and self._pid:  # gigabytes of merged weights, maybe: not on the GUI thread
            leftover = self._target.parent / f".{self._target.name}.partial-{self._pid}"
            self._jobs.submit("Removing a cancelled export's files", shutil.rmtree, leftover, True, quiet=True)

    def open_folder(self) -> None:
        if self.result_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result_path)))

    def _update_buttons(self) -> None:
        running = self.running
        self.export_button.setEnabled(not running)
        self.cancel_button.setEnabled(running and not self.job.stopping)
        self.close_button.setEnabled(not running)
        self.choose_button.setEnabled(not running)
        for button in self.format_buttons.buttons():
            button.setEnabled(not running and (self.gguf or button.property("format") != "gguf"))
        self.quant.setEnabled(self.format() == "gguf" and not running)
        self.target.setEnabled(not running)
        self.open_button.setEnabled(self.result_path is not None and not running)

    def reject(self) -> None:  # Esc and the window's close button: a running export is cancelled first
        if self.running:
            self.cancel()
            return
        super().reject()
