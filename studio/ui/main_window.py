"""The main window: a composition root that wires panels, menus, the status bar and the project.

It holds no feature logic: panels do the work, core does the data, the job runner does the
waiting. It owns the one :class:`ProjectContext` of the open project (every panel subscribes
to it; the status bar's counts follow its change signals) and the one :class:`JobRunner`
(whose progress shows in the status bar and whose errors show in the window's message area).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QUndoGroup
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow, QMenu, QMessageBox,
    QStackedWidget, QVBoxLayout, QWidget,
)

from studio import __version__
from studio.core import changes, formats
from studio.core.errors import StudioError
from studio.core.jobs import Steps
from studio.core.paths import default_project_dir
from studio.core.project import Project, is_project, project_stats
from studio.core.samples import Origin, Status
from studio.core.wording import count_noun
from studio.ui import theme
from studio.ui.elided_label import ElidedLabel
from studio.ui.job_status import JobStatus
from studio.ui.jobs import Job, JobRunner
from studio.ui.message_area import WARNING, MessageArea
from studio.ui.panels import Panel, PanelSpec, panel_specs
from studio.ui.project_context import ProjectContext

if TYPE_CHECKING:
    from studio.ui.plugins_dialog import PluginsDialog

MAX_RECENT = 8


COUNT_CHANGES = {changes.SEEDS, changes.SAMPLES, changes.TRASH}  # what the status bar's counts show
WIDE_STATUS_BAR = 1100  # px: below this the status bar's counts take their short form
COUNT_INTERVAL_MS = 1000  # a running generation changes samples 25 times a second: recount at most once a second


# Jobs: each runs on a worker thread with a project handle of its own (``project=context``).
def _import_samples_job(project: Project, path: Path, status: str) -> Steps[tuple[int, int]]:
    """Read, validate, insert: a generator, so the status bar shows each phase and Cancel works.

    Cancelling closes it at a yield; the insert is one transaction, so nothing is imported.
    """
    records = yield from formats.read_samples_steps(path)
    result = yield from project.samples.import_texts_steps(records, status=status, origin=Origin.IMPORTED,
                                                           source=path.name)
    return result.inserted, result.duplicates


def _count_job(project: Project) -> dict:
    """Counts for the status bar: GROUP BYs that take ~0.1 s on a million samples, so not on the GUI thread."""
    return project_stats(project.conn, project.root)


def _export_samples_job(project: Project, path: Path, fmt: str) -> int:
    records = [formats.Record(s.instruction, s.input, s.output) for s in project.samples.iter()]
    return formats.write_samples(path, records, fmt)


def _export_seeds_job(project: Project, path: Path, fmt: str) -> int:
    return formats.write_seeds(path, project.seeds.list(), fmt)


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings):
        super().__init__()
        self.settings = settings
        self.project: Project | None = None
        self.context: ProjectContext | None = None
        self.jobs = JobRunner(self)
        self.jobs.job_failed.connect(self._on_job_failed)
        self.jobs.job_succeeded.connect(self._on_job_succeeded)
        self._error_job_title = ""  # the job whose failure the message area shows
        self._count_timer = QTimer(self, singleShot=True)
        self._count_timer.timeout.connect(self._start_count)
        self._count_clock = QElapsedTimer()
        self.setWindowTitle("Distill Studio")
        self.setWindowIcon(theme.icon("app.svg"))
        self.setMinimumSize(720, 480)

        self.nav = QListWidget(objectName="PanelNav")
        self.nav.setFixedWidth(168)
        self.stack = QStackedWidget()
        self.specs = panel_specs()
        # Panels are built on first visit, so start-up imports none of their heavy libraries.
        self.panels: list[Panel | None] = [None] * len(self.specs)
        # Only the shown panel's menu is in the menu bar: its shortcuts then never compete with a hidden panel's.
        self.panel_menus: dict[int, QMenu] = {}
        self.undo_group = QUndoGroup(self)
        for spec in self.specs:
            item = QListWidgetItem(theme.icon(spec.icon), spec.title, self.nav)
            if not spec.built_in:
                item.setToolTip(f"{spec.title}: a panel of the plugin {spec.source}")
        self.relaunch = _launch_detached  # Help ▸ Plugins ▸ Restart now (tests put a recorder here)
        self.plugins_dialog: PluginsDialog | None = None

        self.no_project_label = QLabel("No project is open.\nUse File ▸ New Project or File ▸ Open Project.")
        self.no_project_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_project_label.setProperty("role", "muted")
        self.stack.addWidget(self.no_project_label)

        # The one message area: what went wrong in any job, panel or undo. Its line is always
        # reserved, so nothing jumps when a message appears.
        self.messages = MessageArea()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 4, 6, 0)
        right_layout.setSpacing(4)
        right_layout.addWidget(self.messages)
        right_layout.addWidget(self.stack, 1)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(right, 1)
        self.setCentralWidget(central)

        self.project_label = ElidedLabel("")  # the path gives way first when the window is narrow
        self.counts_label = QLabel()
        self.job_status = JobStatus(self.jobs)
        self.statusBar().addWidget(self.project_label)
        # A temporary message is drawn over the normal widgets; hide the path meanwhile, not overlap it.
        self.statusBar().messageChanged.connect(lambda text: self.project_label.setVisible(not text))
        self.statusBar().addPermanentWidget(self.job_status)
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
        spec = self.specs[row]
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            panel = spec.create(self.jobs, self.messages)  # a plugin's failure: a placeholder page, not a crash
        finally:
            QApplication.restoreOverrideCursor()
        self.panels[row] = panel
        self.stack.addWidget(panel)
        actions = self._call(spec, panel, "menu_actions", default=[])
        if actions:
            panel_menu = QMenu(f"&{spec.title}", self)
            for action in actions:
                panel_menu.addAction(action)
            self.menuBar().insertMenu(self.view_menu.menuAction(), panel_menu)
            self.panel_menus[row] = panel_menu
            panel_menu.menuAction().setVisible(row == self.nav.currentRow())
        if self.context is not None:
            self._call(spec, panel, "set_context", self.context)
        stack = self._call(spec, panel, "undo_stack")
        if stack is not None:
            self.undo_group.addStack(stack)
        panel.status_message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        return panel

    def _call(self, spec: PanelSpec, panel: Panel, hook: str, *args, default=None):
        """A panel hook; a plugin panel's exception is caught at the boundary and shown, naming the plugin."""
        return spec.call(panel, hook, *args, default=default, on_error=self.messages.show_error)

    def _call_live(self, hook: str, *args) -> None:
        for spec, panel in zip(self.specs, self.panels):
            if panel is not None:
                self._call(spec, panel, hook, *args)

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
        # Ctrl+Shift+Z everywhere, plus the platform's own redo keys; each key once (on Linux the
        # standard Redo is Ctrl+Shift+Z itself, and a key listed twice makes Qt refuse it as ambiguous).
        redo_keys = [QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y"),
                     *QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)]
        redo.setShortcuts(list({key.toString(): key for key in redo_keys if not key.isEmpty()}.values()))
        edit_menu.addAction(undo)
        edit_menu.addAction(redo)

        view_menu = self.view_menu = self.menuBar().addMenu("&View")
        for number, spec in enumerate(self.specs, start=1):
            self._menu_action(view_menu, spec.title, lambda _=False, n=number - 1: self.nav.setCurrentRow(n),
                              f"Ctrl+{number}" if number <= 9 else None)
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
        self._menu_action(help_menu, "&Plugins…", lambda: self.show_plugins(), tip="Installed plugins: state, errors, enable/disable")
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
        self.context = ProjectContext(project, self)
        self.context.changed.connect(self._on_project_changed)
        self.context.problem.connect(self.messages.show_error)
        self._call_live("set_context", self.context)
        self._remember(project.root)
        self._show_project_state()
        self.statusBar().showMessage(f"Opened {project.root}", 4000)
        self._show_plugin_notice()
        return True

    def close_project(self) -> None:
        if self.project is None:
            return
        self._call_live("set_context", None)
        self.context.close()
        self.context.deleteLater()
        self.context = None
        self.project.close()
        self.project = None
        self.messages.clear()
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
            self.project_label.setToolTip(str(self.project.root))
            self.stack.setCurrentWidget(self._ensure_panel(max(self.nav.currentRow(), 0)))
        else:
            self.setWindowTitle("Distill Studio")
            self.project_label.setText("No project")
            self.stack.setCurrentWidget(self.no_project_label)
        self.refresh_counts()

    def _on_project_changed(self, kinds: frozenset[str]) -> None:
        if kinds & COUNT_CHANGES:
            self.refresh_counts()

    def refresh_counts(self) -> None:
        """Recount soon: at once after a quiet second, else at the end of it (one count per burst)."""
        if self.context is None:
            self._count_timer.stop()
            self.counts_label.setText("")
            return
        if not self._count_timer.isActive():
            since = self._count_clock.elapsed() if self._count_clock.isValid() else COUNT_INTERVAL_MS
            self._count_timer.start(max(0, COUNT_INTERVAL_MS - since))

    def _start_count(self) -> None:
        """Count in a worker; "latest wins", so only the newest count reaches the label."""
        if self.context is None:
            return
        self._count_clock.restart()
        root = self.context.root
        self.jobs.submit("Counting samples", _count_job, project=self.context, key="status-bar-counts", quiet=True,
                         on_done=lambda stats: self._show_counts(root, stats),
                         on_error=lambda message: self.statusBar().showMessage(f"Could not count the samples: {message}", 8000))

    def _show_counts(self, root: Path, stats: dict) -> None:
        if self.project is None or self.project.root != root:
            return  # another project was opened meanwhile
        self._counts = stats
        self._render_counts()

    def _render_counts(self) -> None:
        """The counts, in full when the window is wide, in short when it is not (the tooltip is always full)."""
        stats = getattr(self, "_counts", None)
        if stats is None:
            return
        by_status = stats["by_status"]
        full = (f"{count_noun(stats['seed_tasks'], 'seed task')}  ·  {count_noun(stats['samples'], 'sample')} "
                f"({by_status['accepted']:,} accepted, {by_status['pending']:,} pending, {by_status['rejected']:,} rejected)")
        short = (f"{stats['seed_tasks']:,} seeds · {stats['samples']:,} samples "
                 f"({by_status['accepted']:,} ✓ {by_status['rejected']:,} ✗)")
        self.counts_label.setToolTip(full)
        self.counts_label.setText(full if self.width() >= WIDE_STATUS_BAR else short)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._render_counts()

    def _on_nav_row_changed(self, row: int) -> None:
        if not 0 <= row < len(self.panels):
            return
        panel = self._ensure_panel(row)
        for menu_row, menu in self.panel_menus.items():
            menu.menuAction().setVisible(menu_row == row)
        self.undo_group.setActiveStack(panel.undo_stack())
        if self.project is not None:
            self.stack.setCurrentWidget(panel)

    # -- jobs' outcomes ---------------------------------------------------------------------------
    def _on_job_failed(self, title: str, message: str) -> None:
        """Every job without its own error handling ends up here: one place, one look."""
        self._error_job_title = title
        self.messages.show_error(f"{title} failed: {message}", detail=message)

    def _on_job_succeeded(self, job: Job) -> None:
        # The message goes away when the next action of the same kind succeeds.
        if self.messages.is_shown() and not job.quiet and job.title == self._error_job_title:
            self.messages.clear()

    # -- files (parsing and big writes run as jobs) ---------------------------------------------
    def import_seeds(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import seed tasks", "", formats.file_dialog_filter(formats.SEEDS))
        if path:
            self.import_seeds_from(Path(path))

    def import_seeds_from(self, path: Path) -> Job:
        seeds_panel = self.panel("seeds")
        return self.jobs.submit("Importing seed tasks", formats.read_seeds, path,
                                on_done=lambda seeds: seeds_panel.import_seeds(seeds, path.name))

    def import_samples(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import samples", "", formats.file_dialog_filter(formats.SAMPLES))
        if path:
            self.import_samples_from(Path(path))

    def import_samples_from(self, path: Path) -> Job | None:
        """Import as pending; every view learns of the new samples through the project context."""
        if self.context is None:
            return None

        def done(result: tuple[int, int]) -> None:
            inserted, duplicates = result
            skipped = f", {count_noun(duplicates, 'exact duplicate')} skipped" if duplicates else ""
            self.statusBar().showMessage(f"Imported {count_noun(inserted, 'sample')} from {path.name}{skipped}", 8000)

        return self.jobs.submit("Importing samples", _import_samples_job, path, Status.PENDING.value,
                                project=self.context, on_done=done)

    def export_seeds(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(self, "Export seed tasks", "seed_tasks.jsonl",
                                                   formats.file_dialog_filter(formats.SEEDS, writing=True))
        if path and self.context:
            fmt = formats.format_for_filter(chosen) or formats.format_for_path(path, formats.SEEDS) or formats.ALPACA
            self.jobs.submit("Exporting seed tasks", _export_seeds_job, Path(path), fmt, project=self.context,
                             on_done=lambda n: self.statusBar().showMessage(f"Exported {count_noun(n, 'seed task')} to {path}", 6000))

    def export_samples(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(self, "Export samples", "samples.json",
                                                   formats.file_dialog_filter(formats.SAMPLES, writing=True))
        if path and self.context:
            fmt = formats.format_for_filter(chosen) or formats.format_for_path(path, formats.SAMPLES) or formats.ALPACA
            self.jobs.submit("Exporting samples", _export_samples_job, Path(path), fmt, project=self.context,
                             on_done=lambda n: self.statusBar().showMessage(f"Exported {count_noun(n, 'sample')} to {path}", 8000))

    def panel(self, key: str) -> Panel:
        return self._ensure_panel([spec.key for spec in self.specs].index(key))

    def show_panel(self, key: str) -> Panel:
        """Switch to panel ``key`` (built on first visit) and return it: how one panel leads to another."""
        panel = self.panel(key)
        self.nav.setCurrentRow([spec.key for spec in self.specs].index(key))
        return panel

    # -- plugins ------------------------------------------------------------------------------------
    def show_plugins(self, select: str | None = None) -> PluginsDialog:
        """Help ▸ Plugins: the records discovery made at start, with this session's runtime errors."""
        from studio.core.plugins.discovery import loaded_plugins
        from studio.ui.plugins_dialog import PluginsDialog

        if self.plugins_dialog is not None:
            self.plugins_dialog.deleteLater()
        self.plugins_dialog = dialog = PluginsDialog(loaded_plugins(), self, restart=self.restart_app)
        if select:
            dialog.select(select)
        dialog.open()
        return dialog

    def _show_plugin_notice(self) -> None:
        """One notice when a plugin could not be loaded or failed in use (ones the user turned off excepted)."""
        from studio.core.plugins.discovery import loaded_plugins
        from studio.ui.plugins_dialog import problem_notice

        text = problem_notice(loaded_plugins())
        if text:
            self.messages.show_message(text, WARNING, action=("Show plugins", self.show_plugins))

    def restart_app(self) -> None:
        """Close this window (its project lock with it: the new process must take it), then start again."""
        from studio.ui.plugins_dialog import restart_argv

        root = self.project.root if self.project is not None else None
        if self.close():
            self.relaunch(restart_argv(root))

    # -- look and feel ------------------------------------------------------------------------
    def set_theme(self, name: str) -> None:
        self.settings.setValue("theme", name)
        theme.apply_theme(QApplication.instance(), name)

    def show_about(self) -> None:
        # Only what this version does: the panels that exist, read from the registry.
        panels = ", ".join(spec.title for spec in self.specs if spec.built_in)
        QMessageBox.about(
            self, "About Distill Studio",
            f"<b>Distill Studio {__version__}</b><p>Distill a capable teacher model into a small local one. "
            f"This version has: {panels} — write seed tasks, expand them into samples with a teacher "
            f"LLM, curate and freeze them, fine-tune a local model with LoRA, chat with it beside its base "
            f"and teacher, serve and export it, and compare it blind, pair by pair, with a human or an LLM "
            f"judge.</p>",
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
        self._call_live("shutdown")
        self.jobs.shutdown()
        self.close_project()
        self.settings.sync()
        super().closeEvent(event)


def _launch_detached(argv: list[str]) -> None:
    from studio.ui.plugins_dialog import launch_detached

    launch_detached(argv)


def startup_probe() -> None:
    """For benchmarks/startup.py: once the event loop has shown the window, say so and quit."""

    def report() -> None:
        print("window-shown", flush=True)
        QApplication.instance().quit()

    QTimer.singleShot(0, report)
