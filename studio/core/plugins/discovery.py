"""Entry points -> manifests -> :class:`PluginRecord` s, without importing any plugin's code.

A plugin's entry point (group ``distill_studio.plugins``) names its manifest as
``"package.module:NAME"``. The module's source file is found by walking the import path by
hand (``PathFinder`` on each level: no ``__init__`` runs), parsed with :mod:`ast`, and the
top-level ``NAME = {...}`` is read with :func:`ast.literal_eval`: plain data or an error.
Each contribution's module is found the same way (found, not imported). Every problem turns
the record into state ERROR with a message naming the plugin; discovery never raises, so a
broken plugin can never keep the window from opening. :func:`load_plugins` registers the
contributions of the enabled, valid plugins (all or nothing per plugin).
"""
from __future__ import annotations

import ast
import importlib.machinery
import importlib.metadata
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from studio.core.plugins.model import DISABLED, ENABLED, ERROR, PLUGIN_GROUP, Contribution, PluginRecord

_records: list[PluginRecord] | None = None
_lock = threading.Lock()
REQUIRED_FIELDS = {"name": str, "version": str, "studio": str, "contributions": dict}
ITEM_FIELDS = ("key", "target", "title", "help")


class ManifestError(ValueError):
    """A manifest problem, said in words (becomes the record's ``error``)."""


# -- finding source without importing ---------------------------------------------------------------
def _find_spec(fullname: str, locations: list[str] | None, finders: list[Any]) -> Any:
    """The first finder's spec for ``fullname`` (``locations``: the parent package's folders, None: top level)."""
    for finder in finders:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(fullname, locations)
        except Exception:  # noqa: BLE001 - an odd finder is no answer, not a crash
            continue
        if spec is not None:
            return spec
    return None


def module_source(module: str, path: list[str] | None = None) -> Path | None:
    """The file that ``import module`` would run, found without running it (or its parents).

    Each level is looked up with the finders ``import`` uses (``sys.meta_path``: the path finder,
    and e.g. setuptools' finder for ``pip install -e`` projects) asking for a spec only, so no
    package's ``__init__`` runs. With ``path``, only those folders are searched.
    """
    finders: list[Any] = list(sys.meta_path) if path is None else [importlib.machinery.PathFinder]
    search: list[str] | None = None if path is None else list(path)
    parts = module.split(".")
    location: Path | None = None
    for depth, part in enumerate(parts):
        fullname = ".".join(parts[:depth + 1])
        spec = _find_spec(fullname, search, finders)
        if spec is None:
            return None
        last = depth == len(parts) - 1
        if spec.submodule_search_locations is not None:  # a package (regular or namespace)
            if last:
                origin = spec.origin
                return Path(origin) if origin and origin not in ("namespace", None) else Path(
                    list(spec.submodule_search_locations)[0])
            search = list(spec.submodule_search_locations)
            continue
        if not last:
            return None  # a plain module cannot have submodules
        location = Path(spec.origin) if spec.origin and spec.has_location else None
    return location


def read_manifest(entry_value: str) -> tuple[dict[str, Any], Path]:
    """The manifest dict an entry point names, read as plain data from the module's source."""
    module, sep, attr = entry_value.partition(":")
    module, attr = module.strip(), attr.strip()
    if not (module and sep and attr) or "." in attr:
        raise ManifestError(f"the entry point {entry_value!r} must name a manifest as 'package.module:NAME'")
    source = module_source(module)
    if source is None:
        raise ManifestError(f"its manifest module {module!r} is not installed (no file found on the path)")
    if source.suffix != ".py":
        raise ManifestError(f"its manifest module {module!r} is {source.name}, not Python source")
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ManifestError(f"its manifest {source} cannot be read: {exc}") from None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == attr for t in targets) and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise ManifestError(f"{attr} in {source.name} (line {node.lineno}) is not plain data "
                                    "(dicts, lists, strings, numbers only: it is read, never run)") from None
            if not isinstance(value, dict):
                raise ManifestError(f"{attr} in {source.name} is a {type(value).__name__}, not a dict")
            return value, source
    raise ManifestError(f"{source.name} has no top-level {attr} = {{...}}")


# -- checking ------------------------------------------------------------------------------------------
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # keys appear on command lines and in saved configs
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_ATTR = _MODULE  # "CLASS" or "OBJECT.attr"
RESERVED_META = ("source", "replace", "point")  # Registry.register's own arguments: a manifest cannot set them


def _check_target(point: str, key: str, target: str) -> None:
    module, sep, attr = target.partition(":")
    if not (sep and _MODULE.match(module.strip()) and _ATTR.match(attr.strip())):
        raise ManifestError(f"its {point} {key!r}: target {target!r} is not 'package.module:attribute'")


def _contributions(manifest: Mapping[str, Any]) -> list[Contribution]:
    from studio.core.registry import ALL

    found: list[Contribution] = []
    seen: set[tuple[str, str]] = set()
    for point, items in manifest["contributions"].items():
        if point not in ALL:
            raise ManifestError(f"it contributes to {point!r}, which is no extension point; known: {', '.join(ALL)}")
        if not isinstance(items, list):
            raise ManifestError(f"contributions[{point!r}] must be a list of entries")
        for number, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise ManifestError(f"{point} entry {number} must be a dict")
            for name in ("key", "target"):
                if not isinstance(item.get(name), str) or not item[name].strip():
                    raise ManifestError(f"{point} entry {number} has no {name!r} string")
            key, target = item["key"], item["target"].strip()
            if not _KEY.match(key):
                raise ManifestError(f"{point} entry {number}: key {key!r} must be letters, digits, '-', '_' or '.'")
            if (point, key) in seen:
                raise ManifestError(f"it contributes the {point} {key!r} twice")
            seen.add((point, key))
            _check_target(point, key, target)
            for name in ("title", "help"):
                if name in item and not isinstance(item[name], str):
                    raise ManifestError(f"{point} {key!r}: {name!r} must be a string")
            reserved = [name for name in RESERVED_META if name in item]
            if reserved:
                raise ManifestError(f"{point} {key!r}: {', '.join(map(repr, reserved))} cannot be set by a manifest")
            meta = {k: v for k, v in item.items() if k not in ITEM_FIELDS}
            found.append(Contribution(point, key, target, item.get("title", ""), item.get("help", ""), meta))
    return found


def _check_modules(contributions: list[Contribution]) -> None:
    for c in contributions:
        module = c.target.partition(":")[0]
        if module_source(module) is None:
            raise ManifestError(f"its {c.point} {c.key!r} names the module {module!r}, which is not installed")


def _check_studio(spec_text: str) -> None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import Version

    import studio

    if not spec_text.strip():
        raise ManifestError("its manifest's 'studio' is empty; say which versions it works with (e.g. '>=0.1,<0.2')")
    try:
        spec = SpecifierSet(spec_text)
    except InvalidSpecifier:
        raise ManifestError(f"its studio versions {spec_text!r} are not a version specifier (e.g. '>=0.1,<0.2')") from None
    if not spec.contains(Version(studio.__version__), prereleases=True):
        raise ManifestError(f"it needs Distill Studio {spec_text}; this is {studio.__version__}")


def _dist_fields(entry: importlib.metadata.EntryPoint) -> dict[str, Any]:
    """The declaring distribution's name, version and requirements ("" where its metadata is odd)."""
    dist = getattr(entry, "dist", None)
    if dist is None:
        return {}
    try:
        return {"distribution": dist.metadata["Name"] or "", "dist_version": dist.version or "",
                "requires": list(dist.requires or [])}
    except Exception:  # noqa: BLE001 - unreadable METADATA: still a record, just without these
        return {}


def _record(entry: importlib.metadata.EntryPoint) -> PluginRecord:
    record = PluginRecord(name=entry.name, entry_point=entry.value, **_dist_fields(entry))
    try:
        module = entry.value.partition(":")[0].strip()
        found = module_source(module) if _MODULE.match(module) else None
        record.location = str(found) if found is not None else ""  # where to look, even if it cannot be read
        manifest, source = read_manifest(entry.value)
        record.location = str(source)
        for name, kind in REQUIRED_FIELDS.items():
            if not isinstance(manifest.get(name), kind) or (kind is str and not manifest[name].strip()):
                raise ManifestError(f"its manifest has no {name!r} ({kind.__name__}) in {source.name}")
        record.version = manifest["version"]
        record.title = str(manifest.get("title", ""))
        record.description = str(manifest.get("description", ""))
        record.studio_versions = manifest["studio"]
        if manifest["name"] != entry.name:
            raise ManifestError(f"its manifest is named {manifest['name']!r} but its entry point {entry.name!r}; "
                                "they must be the same")
        _check_studio(record.studio_versions)  # first: a newer plugin may use points this version lacks
        record.contributions = _contributions(manifest)
        _check_modules(record.contributions)
    except ManifestError as exc:
        record.state, record.error = ERROR, str(exc)
    except Exception as exc:  # noqa: BLE001 - discovery never raises: an odd installation is a record's error
        record.state, record.error = ERROR, f"{type(exc).__name__}: {exc}"
    return record


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _same_distribution(a: str, b: str) -> bool:
    return _normal(a) == _normal(b)


def _entry_points() -> tuple[list[importlib.metadata.EntryPoint], list[PluginRecord]]:
    """Every ``distill_studio.plugins`` entry point, one distribution at a time (path order).

    ``importlib.metadata.entry_points()`` fails as a whole when any installed distribution has a
    malformed ``entry_points.txt``; here that distribution alone is skipped, or, if it declares
    a plugin, becomes an ERROR record saying what to fix.
    """
    entries: list[importlib.metadata.EntryPoint] = []
    broken: list[PluginRecord] = []
    seen: set[str] = set()
    try:
        dists = list(importlib.metadata.distributions())
    except Exception:  # noqa: BLE001 - an unreadable path entry must not stop the app
        return entries, broken
    for dist in dists:
        try:
            name = getattr(dist, "_normalized_name", None) or _normal(dist.metadata["Name"] or "")
            if name in seen:
                continue  # shadowed by the same distribution earlier on the path (what Python imports)
            seen.add(name)
            entries.extend(e for e in dist.entry_points if e.group == PLUGIN_GROUP)
        except Exception as exc:  # noqa: BLE001 - one odd distribution, not the app's problem
            try:
                text = dist.read_text("entry_points.txt") or ""
                where = str(getattr(dist, "_path", "")) or "an installed distribution"
            except Exception:  # noqa: BLE001
                continue
            if PLUGIN_GROUP in text:
                broken.append(PluginRecord(name=f"({where})", state=ERROR, location=where, error=(
                    f"its entry_points.txt cannot be read ({type(exc).__name__}: {exc}); reinstall the plugin")))
    return entries, broken


def discover(*, disabled: set[str] | None = None) -> list[PluginRecord]:
    """Every plugin installed, by name, checked; never imports plugin code, never raises.

    Entry points come in ``sys.path`` order, so when two distributions declare one plugin name
    the first (the one Python would import from) is used and the other is an ERROR record.
    """
    from studio.core.plugins.settings import disabled_plugins, safe_mode

    try:
        off = disabled_plugins() if disabled is None else disabled
    except Exception:  # noqa: BLE001 - unreadable settings: every plugin on, as settings.py says
        off = set()
    entries, records = _entry_points()
    seen: dict[str, PluginRecord] = {}
    for entry in sorted(entries, key=lambda e: e.name):  # stable: path order within one name
        try:
            if entry.name in seen:
                first = seen[entry.name]
                fields = _dist_fields(entry)
                if _same_distribution(fields.get("distribution", ""), first.distribution):
                    continue  # one distribution found twice on the path
                record = PluginRecord(name=entry.name, entry_point=entry.value, state=ERROR, **fields, error=(
                    f"{first.distribution or 'another distribution'} already provides a plugin named {entry.name!r} "
                    f"(that one is used); uninstall one of {fields.get('distribution') or '?'} and {first.distribution}"))
            else:
                record = seen[entry.name] = _record(entry)
        except Exception as exc:  # noqa: BLE001 - discovery never raises
            record = PluginRecord(name=str(getattr(entry, "name", "?")), state=ERROR, error=f"{type(exc).__name__}: {exc}")
        if record.name in off or safe_mode():  # the user's choice wins: a disabled broken plugin stays quiet
            record.state = DISABLED  # (its error, if any, is kept for the details)
        records.append(record)
    return records


# -- registering ----------------------------------------------------------------------------------------
def _register(record: PluginRecord) -> None:
    """All of a plugin's entries, or none (a key already taken makes the record an ERROR)."""
    from studio.core.registry import ALL

    for c in record.contributions:
        registry = ALL[c.point]
        if c.key in registry:
            holder = registry.get(c.key)
            by = "Distill Studio itself" if holder.built_in else f"the plugin {holder.source!r}"
            record.state = ERROR
            record.error = f"its {registry.name} {c.key!r} is already registered by {by}; nothing of it was loaded"
            return
    try:
        for c in record.contributions:
            ALL[c.point].register(c.key, c.target, title=c.title, help=c.help, source=record.name, **c.meta)
    except Exception as exc:  # noqa: BLE001 - all or nothing, and never a crash
        for registry in ALL.values():
            registry.unregister_source(record.name)
        record.state, record.error = ERROR, f"it could not be registered: {exc}"


def _unregister_all(records: list[PluginRecord]) -> None:
    from studio.core.registry import ALL

    for record in records:
        for registry in ALL.values():
            registry.unregister_source(record.name)


def load_plugins(*, reload: bool = False) -> list[PluginRecord]:
    """Discover and register the enabled plugins (once per process; ``reload`` starts over, for tests)."""
    global _records
    with _lock:
        if _records is not None and not reload:
            return list(_records)
        if _records is not None:
            _unregister_all(_records)
        importlib.invalidate_caches()
        records = discover()
        for record in records:
            if record.state == ENABLED:
                _register(record)
        _records = records
        return list(records)


def loaded_plugins() -> list[PluginRecord]:
    """The records :func:`load_plugins` made, with this session's runtime errors filled in."""
    from studio.core.plugins.boundary import failures

    records = load_plugins()
    for record in records:
        record.runtime_errors = failures(record.name)
    return records


def plugin_named(name: str) -> PluginRecord | None:
    return next((r for r in loaded_plugins() if r.name == name), None)
