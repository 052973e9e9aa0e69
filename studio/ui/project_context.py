"""The project context: the one object panels subscribe to, one per open project, owned by the window.

It wraps the core :class:`~studio.core.project.Project` and turns the project's change feed
(which every repository publishes to after it commits, on whatever thread) into Qt signals on
the GUI thread. Changes are coalesced: everything published within one short window — a bulk
edit, an import, a burst of generated samples — reaches the views as ONE signal per kind, so a
view refreshes once however many rows changed. Worker threads reach the project through
:meth:`worker`, and only through it.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from studio.core import changes
from studio.core.project import Project

COALESCE_MS = 40  # long enough to fold a burst into one signal, short enough to feel instant


class ProjectContext(QObject):
    """Typed change signals for one open project; ``notify`` and writes from any thread reach them."""

    changed = Signal(object)  # frozenset[str] of change kinds, once per coalesced burst
    seeds_changed = Signal()
    samples_changed = Signal()
    generation_runs_changed = Signal()
    snapshots_changed = Signal()
    training_runs_changed = Signal()
    comparisons_changed = Signal()
    views_changed = Signal()
    trash_changed = Signal()
    conversations_changed = Signal()
    prompt_sets_changed = Signal()
    evaluations_changed = Signal()
    problem = Signal(str)  # something the user must read (a failed undo...): the window's message area shows it

    _published = Signal(object)  # internal: feed listener (any thread) -> GUI thread, queued by Qt

    def __init__(self, project: Project, parent: QObject | None = None):
        super().__init__(parent)
        self.project = project
        self._pending: set[str] = set()
        self._timer = QTimer(self, singleShot=True, interval=COALESCE_MS)
        self._timer.timeout.connect(self._flush)
        self._published.connect(self._on_published)
        self._relay = _Relay(self)
        self._unsubscribe = project.changes.subscribe(self._relay)
        self._by_kind = {
            changes.SEEDS: self.seeds_changed,
            changes.SAMPLES: self.samples_changed,
            changes.GENERATION_RUNS: self.generation_runs_changed,
            changes.SNAPSHOTS: self.snapshots_changed,
            changes.TRAINING_RUNS: self.training_runs_changed,
            changes.COMPARISONS: self.comparisons_changed,
            changes.VIEWS: self.views_changed,
            changes.TRASH: self.trash_changed,
            changes.CONVERSATIONS: self.conversations_changed,
            changes.PROMPT_SETS: self.prompt_sets_changed,
            changes.EVALUATIONS: self.evaluations_changed,
        }

    # -- facts -----------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def db_path(self) -> Path:
        return self.project.db_path

    @property
    def name(self) -> str:
        return self.project.name

    # -- the documented ways in ------------------------------------------------------------
    def worker(self) -> Project:
        """A project handle for a worker thread (own connection, shared change feed); close it after."""
        return self.project.worker()

    def notify(self, *kinds: str) -> None:
        """Say that something changed without a repository having said it (undo of a core change)."""
        self.project.changes.publish(*kinds)

    def report_problem(self, text: str) -> None:
        """Show ``text`` in the window's message area (the one place errors appear)."""
        self.problem.emit(text)

    def flush(self) -> None:
        """Deliver pending signals now (tests; the window before it reads counts)."""
        self._timer.stop()
        self._flush()

    def close(self) -> None:
        """Stop listening; the window closes the project itself."""
        self._relay.context = None
        self._unsubscribe()
        self._timer.stop()
        self._pending.clear()

    # -- coalescing ------------------------------------------------------------------------
    def _on_published(self, kinds: frozenset[str]) -> None:
        self._pending.update(kinds)
        if not self._timer.isActive():
            self._timer.start()

    def _flush(self) -> None:
        if not self._pending:
            return
        kinds, self._pending = frozenset(self._pending), set()
        for kind in changes.KINDS:  # a fixed order: seeds before samples before runs...
            if kind in kinds:
                self._by_kind[kind].emit()
        self.changed.emit(kinds)



class _Relay:
    """The feed's listener: forwards to the context until :meth:`ProjectContext.close` cuts it.

    A plain Python object on purpose: the feed lives in core, and a weak reference to a Qt
    wrapper held there crashed the interpreter at exit once Qt had freed the wrapper.
    """

    def __init__(self, context: ProjectContext):
        self.context: ProjectContext | None = context

    def __call__(self, kinds: frozenset[str]) -> None:
        context = self.context
        if context is None:
            return
        try:
            context._published.emit(kinds)
        except RuntimeError:  # its Qt side is already gone
            self.context = None
