"""The change feed: every write to a project says what kind of thing it changed.

Repositories publish after they commit; the UI's project context subscribes and turns the
kinds into coalesced Qt signals, so every view learns of a change whoever made it — a panel,
a menu, an import worker, an undo, the generation engine. Pure Python and thread-safe:
publishers may be on any thread; subscribers are called on the publishing thread and must
hand work to their own thread themselves.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

# The kinds of thing that change. Views subscribe to the kinds they show.
SEEDS = "seeds"
SAMPLES = "samples"
GENERATION_RUNS = "generation_runs"
SNAPSHOTS = "snapshots"
TRAINING_RUNS = "training_runs"
COMPARISONS = "comparisons"  # human votes of a blind comparison
VIEWS = "views"  # saved Curate views
TRASH = "trash"  # deleted samples that can still be restored
CONVERSATIONS = "conversations"  # saved Chat conversations
PROMPT_SETS = "prompt_sets"  # evaluation-only prompt sets
EVALUATIONS = "evaluations"  # evaluations, their answers and judge verdicts
KINDS = (SEEDS, SAMPLES, GENERATION_RUNS, SNAPSHOTS, TRAINING_RUNS, COMPARISONS, VIEWS, TRASH, CONVERSATIONS,
         PROMPT_SETS, EVALUATIONS)

Listener = Callable[[frozenset[str]], None]


class ChangeFeed:
    """Publish/subscribe of change kinds; one per open project, shared by its worker handles."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(kinds)`` after every published change; returns the unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, *kinds: str | Iterable[str]) -> None:
        flat: set[str] = set()
        for kind in kinds:
            flat.update([kind] if isinstance(kind, str) else kind)
        unknown = flat.difference(KINDS)
        if unknown:
            raise ValueError(f"unknown change kinds {sorted(unknown)}; use {', '.join(KINDS)}")
        if not flat:
            return
        with self._lock:
            listeners = list(self._listeners)
        frozen = frozenset(flat)
        for listener in listeners:
            listener(frozen)
