"""A server started by the app ends with the app, even when the app is killed.

The Chat panel's server is a child process holding the model in memory and a port; if the GUI
dies without stopping it (a crash, ``kill -9``), nothing else would. The app sets
``DISTILL_STUDIO_PARENT_PID`` in the child's environment; a daemon thread here polls it, and
when that process is gone the server stops itself the way SIGTERM stops it (open streams end
cleanly, the info file is removed). A server started from a shell has no such variable and
serves until told otherwise.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping

from studio.core.processes import pid_alive
from studio.core.serving.launch import PARENT_ENV


def parent_alive(pid: int) -> bool:
    """The watched parent still runs and is still our parent (a reparented child is orphaned)."""
    if os.name == "posix" and os.getppid() != pid:
        return False
    return pid_alive(pid)


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def watch_parent(environ: Mapping[str, str] | None = None, *, interval_s: float = 1.0,
                 on_gone: Callable[[], None] = _terminate_self,
                 alive: Callable[[int], bool] = parent_alive) -> threading.Thread | None:
    """Start the watcher if the environment names a parent; returns the thread (None when not asked)."""
    value = (environ if environ is not None else os.environ).get(PARENT_ENV, "").strip()
    if not value.isdigit() or int(value) <= 0:
        return None
    pid = int(value)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            if not alive(pid):
                on_gone()
                return

    thread = threading.Thread(target=run, name="parent-watch", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]  # tests end it early
    thread.start()
    return thread
