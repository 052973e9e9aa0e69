"""Registries: every extension point is a table of ``"module:attr"`` entries, imported on first use.

Built-in entries are registered exactly as plugins will register theirs (plain data, see
:mod:`studio.core.builtins`), so a plugin adds a generation mode, a dataset format or a
trainer with one entry and no edit anywhere else. Nothing is imported until an entry is
loaded: listing the choices for a combo box or ``--help`` never imports torch, Qt or a
plugin's code. A failing import becomes a :class:`RegistryError` that names the entry and
where it came from, so the rest of the app keeps working.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from studio.core.errors import StudioError

BUILT_IN = "built-in"


class RegistryError(StudioError):
    """An entry is unknown, or its code could not be imported."""


@dataclass(frozen=True)
class Entry:
    """One contribution: a key users see in configs and CLIs, and the code behind it."""

    key: str
    target: str  # "package.module:attribute"
    title: str = ""
    help: str = ""
    source: str = BUILT_IN  # "built-in" or the contributing plugin's name
    meta: Mapping[str, Any] = field(default_factory=dict)
    point: str = ""  # the registry's name ("dataset format"), set by Registry.register: errors say it

    def __post_init__(self) -> None:
        module, sep, attr = self.target.partition(":")
        if not (module and sep and attr):
            raise RegistryError(f"Entry {self.key!r} ({self.source}): target {self.target!r} is not 'module:attribute'.")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def label(self) -> str:
        return self.title or self.key

    @property
    def built_in(self) -> bool:
        return self.source == BUILT_IN


class Registry:
    """Entries of one kind, in registration order; ``load`` imports an entry's target once."""

    def __init__(self, name: str, description: str):
        self.name = name
        self.description = description
        self._entries: dict[str, Entry] = {}
        self._loaded: dict[str, Any] = {}

    def register(self, key: str, target: str, *, title: str = "", help: str = "", source: str = BUILT_IN,
                 replace: bool = False, **meta: Any) -> Entry:
        if key in self._entries and not replace:
            raise RegistryError(
                f"{self.name}: {key!r} is already registered by {self._entries[key].source}; "
                f"{source} cannot register it again."
            )
        entry = Entry(key, target, title, help, source, meta, self.name)
        self._entries[key] = entry
        self._loaded.pop(key, None)
        return entry

    def unregister(self, key: str) -> None:
        self._entries.pop(key, None)
        self._loaded.pop(key, None)

    def unregister_source(self, source: str) -> None:
        """Remove every entry ``source`` (a plugin) registered: a rediscovery or a disable."""
        for key in [k for k, e in self._entries.items() if e.source == source]:
            self.unregister(key)

    def get(self, key: str) -> Entry:
        try:
            return self._entries[key]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            why = self.unavailable(key)
            if why:
                raise RegistryError(f"The {self.name} {key!r} is not available: {why}.") from None
            raise RegistryError(f"Unknown {self.name} {key!r}; known: {known}.") from None

    def unavailable(self, key: str) -> str:
        """Why an installed plugin's ``key`` is not registered (disabled, or in error); "" if none offers it.

        Reads the records discovery already made (plain data, nothing imported), so "unknown" is
        only said of a key no installed plugin declares.
        """
        from studio.core.plugins import discovery  # late: discovery imports this module
        from studio.core.plugins.model import DISABLED, ENABLED

        for record in discovery._records or ():
            if record.state == ENABLED or not any(
                    ALL.get(c.point) is self and c.key == key for c in record.contributions):
                continue
            if record.state == DISABLED:
                return (f"it comes from the plugin {record.name!r}, which is disabled "
                        f"(`distill-studio plugins enable {record.name}` turns it on from the next start)")
            return f"it comes from the plugin {record.name!r}, which could not be loaded: {record.error}"
        return ""

    def accepts(self, *more: Registry) -> _Choices:
        """The keys for an argparse ``choices=``: ``--help`` lists the registered ones (also ``more``'s), and
        a key of a disabled plugin gets past argparse so that :meth:`get` can say why it is not there."""
        return _Choices(self, dict.fromkeys([*self._entries, *(k for r in more for k in r.keys())]), *more)

    def load(self, key: str) -> Any:
        """The entry's object (class, function, instance), imported on first use."""
        if key in self._loaded:
            return self._loaded[key]
        entry = self.get(key)
        module_name, _, attr_path = entry.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr_path.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - a plugin's broken import must not take the app down
            error = RegistryError(
                f"{self.name} {key!r} from {entry.source} could not be loaded ({entry.target}): "
                f"{type(exc).__name__}: {exc}"
            )
            _record(entry, error)
            raise error from exc
        self._loaded[key] = obj
        return obj

    def guard(self, key: str, action: str = ""):
        """A context manager around a call into entry ``key``'s code: the registry boundary.

        A plugin's exception (anything but a :class:`StudioError`, which already speaks plainly)
        becomes a :class:`~studio.core.plugins.boundary.PluginError` naming the plugin, the
        entry and ``action``, and is recorded for *Help > Plugins*; built-in entries pass through.
        """
        from studio.core.plugins.boundary import plugin_boundary

        return plugin_boundary(self.get(key), action)

    def load_instance(self, key: str, cls: type) -> Any:
        """:meth:`load`, checked: an instance of ``cls`` whose ``key`` is the entry's (a plugin's typo says so,
        recorded for *Help > Plugins* like an import failure)."""
        loaded = self.load(key)
        if not isinstance(loaded, cls) or getattr(loaded, "key", key) != key:
            entry = self.get(key)
            error = RegistryError(
                f"{self.name} {key!r} from {entry.source} ({entry.target}) is not a {cls.__name__} with key {key!r}."
            )
            _record(entry, error)
            raise error
        return loaded

    def keys(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def choices(self) -> list[tuple[str, str]]:
        """(key, label) pairs for a combo box or a CLI ``choices=``."""
        return [(e.key, e.label) for e in self._entries.values()]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)


def _record(entry: Entry, error: RegistryError) -> None:
    """A plugin's entry that cannot be used is recorded for *Help > Plugins*; a built-in's error is ours."""
    if not entry.built_in:
        from studio.core.plugins.boundary import record_failure

        record_failure(entry, str(error))


class _Choices(list):
    """Registered keys (what argparse shows); membership also admits keys installed plugins declare."""

    def __init__(self, registry: Registry, keys: Iterable[str], *more: Registry):
        super().__init__(keys)
        self._registries = (registry, *more)

    def __contains__(self, key: object) -> bool:
        return list.__contains__(self, key) or (
            isinstance(key, str) and any(r.unavailable(key) for r in self._registries))


# The extension points. Their keys appear in saved configs, so a key never changes meaning.
GENERATION_MODES = Registry("generation mode", "How a run turns seed tasks into teacher prompts and answers into samples.")
DATASET_FORMATS = Registry("dataset format", "File formats for importing and exporting seed tasks and samples.")
DATASET_EXPORTERS = Registry("dataset exporter", "Ways to write a snapshot or a selection for training.")
SAMPLE_FILTERS = Registry("sample filter", "Quality checks a generated candidate must pass, each with a reason code.")
ENDPOINT_KINDS = Registry("endpoint kind", "Kinds of OpenAI-compatible LLM endpoints, with their presets.")
TRAINERS = Registry("trainer", "Child-process commands that fine-tune a model and speak the training events protocol.")
MODEL_EXPORTERS = Registry("model exporter", "Ways to write a trained model for other tools (merged weights, GGUF).")
JUDGES = Registry("judge", "Ways to decide which of two answers is better.")
PANELS = Registry("panel", "Pages of the main window (Qt widgets; only the UI loads them).")
GENERATION_BACKENDS = Registry("generation backend",
                               "How a run's teacher requests are sent: live calls, or a provider's batch API.")
SERVING_BACKENDS = Registry("serving backend",
                            "Servers that serve the base model and the runs' adapters over the OpenAI API.")

ALL: dict[str, Registry] = {
    "generation_modes": GENERATION_MODES,
    "dataset_formats": DATASET_FORMATS,
    "dataset_exporters": DATASET_EXPORTERS,
    "sample_filters": SAMPLE_FILTERS,
    "endpoint_kinds": ENDPOINT_KINDS,
    "trainers": TRAINERS,
    "model_exporters": MODEL_EXPORTERS,
    "judges": JUDGES,
    "panels": PANELS,
    "generation_backends": GENERATION_BACKENDS,
    "serving_backends": SERVING_BACKENDS,
}


def register_contributions(contributions: Mapping[str, list[Mapping[str, Any]]], source: str = BUILT_IN) -> list[Entry]:
    """Register a manifest's contributions: ``{"generation_modes": [{"key": ..., "target": ...}, ...]}``."""
    added = []
    for registry_name, items in contributions.items():
        registry = ALL.get(registry_name)
        if registry is None:
            raise RegistryError(f"{source}: no extension point {registry_name!r}; known: {', '.join(ALL)}.")
        for item in items:
            data = dict(item)
            key, target = data.pop("key"), data.pop("target")
            added.append(registry.register(key, target, source=source, **data))
    return added


def _register_builtins() -> None:
    from studio.core.builtins import CONTRIBUTIONS

    register_contributions(CONTRIBUTIONS)


_register_builtins()
