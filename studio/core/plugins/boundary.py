"""The registry boundary: a plugin's exception becomes a :class:`PluginError` that names the plugin.

Every call from the app into a plugin's code (a format reading a file, a filter judging a
candidate, a panel being built) goes through :func:`plugin_boundary` (``Registry.guard``), so
a bug in a plugin is reported as that plugin's, recorded for *Help > Plugins*, and leaves the
rest of the app working. Built-in entries pass straight through: their errors are ours.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from studio.core.errors import StudioError

if TYPE_CHECKING:
    from studio.core.registry import Entry

_lock = threading.Lock()
_failures: dict[str, list[str]] = {}  # plugin name -> messages, this process


class PluginError(StudioError):
    """A plugin's code failed; the message names the plugin and what it was doing."""

    def __init__(self, message: str, plugin: str = ""):
        super().__init__(message)
        self.plugin = plugin


def record_failure(entry_or_plugin: Entry | str, message: str) -> None:
    """Remember a plugin's failure for *Help > Plugins* (the same message at most once)."""
    plugin = entry_or_plugin if isinstance(entry_or_plugin, str) else entry_or_plugin.source
    with _lock:
        messages = _failures.setdefault(plugin, [])
        if message not in messages:
            messages.append(message)


def failures(plugin: str) -> list[str]:
    with _lock:
        return list(_failures.get(plugin, []))


def clear_failures() -> None:
    with _lock:
        _failures.clear()


def describe(entry: Entry, exc: BaseException, action: str = "") -> str:
    doing = f" while {action}" if action else ""
    return (f"The plugin {entry.source!r} failed in its {entry.point or 'entry'} {entry.key!r}{doing}: "
            f"{type(exc).__name__}: {exc}")


@contextmanager
def plugin_boundary(entry: Entry, action: str = "") -> Iterator[None]:
    """Turn a plugin's exception into a recorded :class:`PluginError`; built-ins and StudioErrors pass.

    ``GeneratorExit`` and ``KeyboardInterrupt`` (a cancelled job, Ctrl+C) are not exceptions of
    the plugin's and pass unchanged.
    """
    if entry.built_in:
        yield
        return
    try:
        yield
    except StudioError:
        # A PluginError from a nested guard, or plain words the plugin chose (a bad line in the
        # user's file, a provider refusing a key): the plugin worked, so nothing is recorded.
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary: a plugin's bug must not take the app down
        message = describe(entry, exc, action)
        record_failure(entry, message)
        raise PluginError(message, entry.source) from exc
