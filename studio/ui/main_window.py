"""The main window: a composition root that wires panels, menus, the status bar and the project.

It holds no feature logic: panels do the work, core does the data, workers do the waiting.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QUndoGroup
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow, QMenu, QMessageBox,
    QStackedWidget, QWidget,
)
from superqt.utils import create_worker

from studio import __version__
from studio.core import db, formats
from studio.core.default_seeds import load_default_seeds
from studio.core.errors import StudioError
from studio.core.paths import default_project_dir
from studio.core.project import Project, is_project, project_stats
from studio.core.samples import Origin, Status
from studio.ui import theme
from studio.ui.panels import Panel, panel_specs

MAX_RECENT = 8
SEED_FILTER = "Seed tasks (*.jsonl *.json);;All files (*)"
SAMPLE_FILTER = "Alpaca JSON (*.json);;JSONL prompt/completion or chat messages (*.jsonl);;All files (*)"


def _import_samples_job(db_root: Path, path: Path, status: str) -> tuple[int, int]:
    """Runs in a worker thread, with its own connection (SQLite connections are per thread)."""
    records = formats.read_samples(path)
    with Project.open(db_root, exclusive=False) as project:
        result = project.samples.import_texts(records, status=status, origin=Origin.IMPORTED, source=path.name)
    return result.inserted, result.duplicates


def _count_job(db_path: Path, root: Path) -> dict:
    """Counts for the status bar: GROUP BYs that take ~0.1 s on a million samples, so not on the GUI thread."""
    conn = db.connect(db_path)
    try:
        return project_stats(conn, root)
    finally:
        conn.close()


def _export_samples_job(db_root: Path, path: Path, fmt: str) -> int:
    with Project.open(db_root, exclusive=False) as project:
        records = [formats.Record(s.instruction, s.input, s.output) for s in project.samples.iter()]
    return formats.write_samples(path, records, fmt)


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings):
        super().__init__()
        self.settings = settings
        self.project: Project | None = None
        self._workers: set = set()
        self._counting = False  # a count is running in a worker
        self._recount = False  # asked again meanwhile: count once more when it ends
        self.setWindowTitle("Distill Studio")
        self.setWindowIcon(theme.icon("app.svg"))
        self.setMinimumSize(720, 480)

        self.nav = QListWidget(objectName="PanelNav")
        self.nav.setFixedWidth(168)
        self.stack = QStackedWidget()
        self.specs = panel_specs()
        # Panels are built on first visit, so start-up imports none of their heavy libraries.
        self.panels: list[Panel | None] = [None] * len(self.specs)
        self.undo_group = QUndoGroup(self)
        for spec in self.specs:
            QListWidgetItem(theme.icon(spec.icon), spec.title, self.nav)

        self.no_project_label = QLabel("No project is open.\nUse File ▸ New Project or File ▸ Open Project.")
        self.no_project_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_project_label.setProperty("role", "muted")
        self.stack.addWidget(self.no_project_label)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.project_label = QLabel()
        self.counts_label = QLabel()
        self.statusBar().addWidget(self.project_label)
        self.statusBar().addPermanentWidget(self.counts_label)
        self._build_menus()
        self._restore_geometry()
        self._ensure_panel(0)
        self.nav.currentRowChanged.connect(self._on_nav_row_changed)
        self.nav.setCurrentRow(0)
        self._show_project_state()

    # -- construction ---------------------------------------------------------------------------
    def _ensure_panel(self, row: int) -> Panel:
        """The panel at ``row``, built (and given the open project) on first use."""
        panel = self.panels[row]
        if panel is not None:
            return panel
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            panel = self.specs[row].create()
        finally:
            QApplication.restoreOverrideCursor()
        self.panels[row] = panel
        self.stack.addWidget(panel)
        if hasattr(panel, "actions_for_menu"):
            panel_menu = QMenu(f"&{self.specs[row].title}", self)
            for action in panel.actions_for_menu():
                panel_menu.addAction(action)
            self.menuBar().insertMenu(self.view_menu.menuAction(), panel_menu)
        if self.project is not None:
            panel.set_project(self.project)
        stack = panel.undo_stack()
        if stack is not None:
            self.undo_group.addStack(stack)
        if hasattr(panel, "status_message"):
            panel.status_message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        for signal_name in ("seeds_changed", "data_changed"):
            if hasattr(panel, signal_name):
                getattr(panel, signal_name).connect(self.refresh_counts)
        return panel

    def live_panels(self) -> list[Panel]:
        return [panel for panel in self.panels if panel is not None]

    def _menu_action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = menu.addAction(text)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        return action

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._menu_action(file_menu, "&New Project…", self.new_project, "Ctrl+Shift+N", "Create a project folder")
        self._menu_action(file_menu, "&Open Project…", self.choose_project, QKeySequence.StandardKey.Open)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self.project_actions = [
            self._menu_action(file_menu, "&Import Seed Tasks…", self.import_seeds, "Ctrl+I",
                              "Seed JSONL, Alpaca JSON, prompt/completion or chat JSONL"),
            self._menu_action(file_menu, "Import &Samples…", self.import_samples, "Ctrl+Shift+I",
                              "Add samples from a dataset file, as pending"),
            self._menu_action(file_menu, "&Export Seed Tasks…", self.export_seeds, "Ctrl+E"),
            self._menu_action(file_menu, "Export Sa&mples…", self.export_samples, "Ctrl+Shift+E"),
        ]
        file_menu.addSeparator()
        self._menu_action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit_menu = self.menuBar().addMenu("&Edit")
        undo = self.undo_group.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.undo_group.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)])
        edit_menu.addAction(undo)
        edit_menu.addAction(redo)

        view_menu = self.view_menu = self.menuBar().addMenu("&View")
        for number, spec in enumerate(self.specs, start=1):
            self._menu_action(view_menu, spec.title, lambda _=False, n=number - 1: self.nav.setCurrentRow(n),
                              f"Ctrl+{number}")
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("&Theme")
        group = QActionGroup(self)
        current = self.settings.value("theme", "system")
        for name in theme.THEMES:
            action = theme_menu.addAction(name.capitalize())
            action.setCheckable(True)
            action.setChecked(name == current)
            action.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            group.addAction(action)

        help_menu = self.menuBar().addMenu("&Help")
        self._menu_action(help_menu, "&About Distill Studio", self.show_about)

    # -- project lifecycle ------------------------------------------------------------------
    def open_initial_project(self, requested: Path | None) -> None:
        """The project given on the command line, else the last one, else the default project."""
        if requested is not None:
            self.open_project(requested, create_if_missing=True)
            return
        last = self.settings.value("last_project", "")
        if last and is_project(last):
            self.open_project(Path(last))
        else:
            self.open_project(default_project_dir(), create_if_missing=True)

    def open_project(self, root: Path, *, create_if_missing: bool = False) -> bool:
        root = Path(root).expanduser()
        try:
            if is_project(root):
                project = Project.open(root)
            elif create_if_missing:
                project = Project.create(root, with_default_seeds=True)
            else:
                raise StudioError(f"{root} is not a Distill Studio project (it has no project.sqlite).")
        except StudioError as exc:
            QMessageBox.warning(self, "Cannot open project", str(exc))
            return False
        self.close_project()
        self.project = project
        for panel in self.live_panels():
            panel.set_project(project)
        self._remember(project.root)
        self._show_project_state()
        self.statusBar().showMessage(f"Opened {project.root}", 4000)
        return True

    def close_project(self) -> None:
        if self.project is None:
            return
        for panel in self.live_panels():
            panel.set_project(None)
        self.project.close()
        self.project = None
        self._show_project_state()

    def new_project(self) -> None:
        start = str(default_project_dir().parent / "my-project")
        path, _ = QFileDialog.getSaveFileName(self, "New project: choose a folder name", start)
        if not path:
            return
        try:
            project = Project.create(Path(path), with_default_seeds=True)
        except StudioError as exc:
            QMessageBox.warning(self, "Cannot create project", str(exc))
            return
        project.close()
        self.open_project(Path(path))

    def choose_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open project folder", str(default_project_dir().parent))
        if path:
            self.open_project(Path(path))

    def _remember(self, root: Path) -> None:
        recent = [p for p in self.settings.value("recent_projects", [], type=list) if p != str(root)]
        self.settings.setValue("recent_projects", [str(root), *recent][:MAX_RECENT])
        self.settings.setValue("last_project", str(root))

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = [p for p in self.settings.value("recent_projects", [], type=list) if is_project(p)]
        for number, path in enumerate(recent, start=1):
            action = self.recent_menu.addAction(f"&{number} {Path(path).name}   —   {path}")
            action.triggered.connect(lambda _=False, p=path: self.open_project(Path(p)))
        if not recent:
            self.recent_menu.addAction("No recent projects").setEnabled(False)

    def _show_project_state(self) -> None:
        has_project = self.project is not None
        self.nav.setEnabled(has_project)
        for action in getattr(self, "project_actions", []):
            action.setEnabled(has_project)
        if has_project:
            self.setWindowTitle(f"{self.project.name} — Distill Studio")
            self.project_label.setText(str(self.project.root))
            self.stack.setCurrentWidget(self._ensure_panel(max(self.nav.currentRow(), 0)))
        else:
            self.setWindowTitle("Distill Studio")
            self.project_label.setText("No project")
            self.stack.setCurrentWidget(self.no_project_label)
        self.refresh_counts()

    def refresh_counts(self) -> None:
        """Recount in a worker; requests that arrive while one runs are folded into one more count."""
        if self.project is None:
            self.counts_label.setText("")
            return
        if self._counting:
            self._recount = True
            return
        self._counting, self._recount = True, False
        root = self.project.root
        worker = create_worker(_count_job, self.project.db_path, root, _start_thread=False)
        worker.returned.connect(lambda stats: self._show_counts(root, stats))
        worker.errored.connect(lambda exc: self.statusBar().showMessage(f"Could not count the samples: {exc}", 8000))
        worker.finished.connect(lambda: self._on_count_finished(worker))
        self._workers.add(worker)
        worker.start()

    def _show_counts(self, root: Path, stats: dict) -> None:
        if self.project is None or self.project.root != root:
            return  # another project was opened meanwhile
        by_status = stats["by_status"]
        self.counts_label.setText(
            f"{stats['seed_tasks']} seed tasks  ·  {stats['samples']} samples "
            f"({by_status['accepted']} accepted, {by_status['pending']} pending, {by_status['rejected']} rejected)"
        )

    def _on_count_finished(self, worker: object) -> None:
        self._workers.discard(worker)
        self._counting = False
        if self._recount:
            self.refresh_counts()

    def _on_nav_row_changed(self, row: int) -> None:
        if not 0 <= row < len(self.panels):
            return
        panel = self._ensure_panel(row)
        self.undo_group.setActiveStack(panel.undo_stack())
        self.refresh_counts()  # another panel may have added or reviewed samples
        if self.project is not None:
            self.stack.setCurrentWidget(panel)

    # -- files (parsing and big writes run in worker threads) ---------------------------------
    def _run_in_worker(self, job, *args, done, what: str) -> None:
        worker = create_worker(job, *args, _start_thread=False)
        worker.returned.connect(done)
        worker.errored.connect(lambda exc: self._show_error(what, exc))
        worker.finished.connect(lambda: self._workers.discard(worker))
        self._workers.add(worker)
        self.statusBar().showMessage(f"{what}…")
        worker.start()

    def _show_error(self, what: str, exc: BaseException) -> None:
        self.statusBar().clearMessage()
        message = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
        QMessageBox.warning(self, f"{what} failed", f"{message}\n\nNothing was changed.")

    def import_seeds(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import seed tasks", "", SEED_FILTER)
        if path:
            seeds_panel = self.panel("seeds")
            self._run_in_worker(formats.read_seeds, Path(path), what="Importing seed tasks",
                                done=lambda seeds: seeds_panel.import_seeds(seeds, Path(path).name))

    def import_samples(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import samples", "", SAMPLE_FILTER)
        if path and self.project:
            def done(result: tuple[int, int]) -> None:
                inserted, duplicates = result
                skipped = f", {duplicates} exact duplicates skipped" if duplicates else ""
                self.statusBar().showMessage(f"Imported {inserted} samples from {Path(path).name}{skipped}", 8000)
                self.refresh_counts()
                for panel in self.live_panels():
                    if hasattr(panel, "samples_changed_externally"):
                        panel.samples_changed_externally()

            self._run_in_worker(_import_samples_job, self.project.root, Path(path), Status.PENDING.value,
                                what="Importing samples", done=done)

    def export_seeds(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export seed tasks", "seed_tasks.jsonl", SEED_FILTER)
        if path and self.project:
            fmt = formats.SEED if path.endswith(".jsonl") else formats.ALPACA
            count = formats.write_seeds(Path(path), self.project.seeds.list(), fmt)
            self.statusBar().showMessage(f"Exported {count} seed tasks to {path}", 6000)

    def export_samples(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export samples", "samples.json",
            "Alpaca JSON (*.json);;JSONL prompt/completion (*.jsonl);;Chat messages JSONL (*.jsonl)",
        )
        if path and self.project:
            fmt = formats.MESSAGES if chosen.startswith("Chat") else formats.JSONL if path.endswith(".jsonl") else formats.ALPACA
            self._run_in_worker(_export_samples_job, self.project.root, Path(path), fmt, what="Exporting samples",
                                done=lambda n: self.statusBar().showMessage(f"Exported {n} samples to {path}", 8000))

    def panel(self, key: str) -> Panel:
        return self._ensure_panel([spec.key for spec in self.specs].index(key))

    # -- look and feel ------------------------------------------------------------------------
    def set_theme(self, name: str) -> None:
        self.settings.setValue("theme", name)
        theme.apply_theme(QApplication.instance(), name)

    def show_about(self) -> None:
        QMessageBox.about(
            self, "About Distill Studio",
            f"<b>Distill Studio {__version__}</b><p>Distill a capable teacher model into a small local one: "
            f"seed tasks, generation, curation, LoRA training and evaluation on your own workstation.</p>"
            f"<p>{len(load_default_seeds())} default seed tasks ship with the app.</p>",
        )

    def _restore_geometry(self) -> None:
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1180, 760)
        state = self.settings.value("window_state")
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        for panel in self.live_panels():
            panel.shutdown()
        for worker in list(self._workers):
            worker.quit()
        self.close_project()
        self.settings.sync()
        super().closeEvent(event)


def startup_probe() -> None:
    """For benchmarks/startup.py: once the event loop has shown the window, say so and quit."""

    def report() -> None:
        print("window-shown", flush=True)
        QApplication.instance().quit()

    QTimer.singleShot(0, report)
