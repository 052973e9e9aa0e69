"""``plugins install``: a plugin goes into the app's own environment, never over the app's pins.

Order matters: the plugin's requirements are read first (a folder's ``pyproject.toml``, a
wheel's ``METADATA``, or a requirement resolved by ``pip install --dry-run --report``), and a
plugin that needs a different version of something the app runs on is refused with every
conflict named, before pip changes anything (napari's shared environment is broken exactly
that way by a plugin's pins). Only then does pip run, with every installed distribution pinned
in a constraint file, so a transitive dependency cannot move the app's packages either; then
discovery runs again and the new plugin's record is printed.
"""
from __future__ import annotations

import argparse
import configparser
import email.parser
import importlib
import importlib.metadata
import json
import subprocess
import sys
import tempfile
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from studio.core.errors import StudioError
from studio.core.plugins.model import PLUGIN_GROUP, PluginRecord

APP = "distill-studio"
# Shipped with the app (installer/bootstrap.py installs them with it): their needs are the app's.
FIRST_PARTY = ("distill-studio-openai-batch", "distill-studio-vllm-serve")
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class PluginSpec:
    """What ``plugins install SPEC`` would install, read before anything changes."""

    name: str                       # the distribution's name
    requirements: list[Requirement]
    kind: str                       # "folder" | "wheel" | "requirement"
    argument: str                   # what pip is given
    entry_points: list[str] | None  # its distill_studio.plugins names; None: unknown before installing
    build_requires: list[Requirement] | None = None  # a folder's [build-system] requires


# -- reading a plugin's requirements -------------------------------------------------------------------
def _parse(lines: list[str], where: str) -> list[Requirement]:
    try:
        return [Requirement(line) for line in lines]
    except InvalidRequirement as exc:
        raise StudioError(f"{where} has a requirement pip cannot read: {exc}") from None


def _toml(path: Path) -> dict:
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StudioError(f"{path} cannot be read: {exc}") from None


def _read_folder(folder: Path) -> PluginSpec:
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        raise StudioError(f"{folder} has no pyproject.toml: a plugin folder is a Python distribution (see plugins/README.md)")
    data = _toml(pyproject)
    project = data.get("project", {})
    if not isinstance(project.get("name"), str) or "dependencies" in project.get("dynamic", []):
        spec = _read_requirement(str(folder.resolve()))  # let the build backend say (setup.py, dynamic)
        spec.kind, spec.entry_points = "folder", None
        return spec
    entry_points = project.get("entry-points", {}).get(PLUGIN_GROUP, {})
    build = data.get("build-system", {}).get("requires")
    return PluginSpec(
        name=project["name"], requirements=_parse(list(project.get("dependencies", [])), str(pyproject)),
        kind="folder", argument=str(folder.resolve()), entry_points=sorted(entry_points),
        build_requires=_parse(list(build), str(pyproject)) if isinstance(build, list) else None)


def _read_wheel(wheel: Path) -> PluginSpec:
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            info = next((n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
            if info is None:
                raise StudioError(f"{wheel} has no *.dist-info/METADATA: it is not a wheel")
            metadata = email.parser.Parser().parsestr(archive.read(info).decode("utf-8"))
            points_file = info.replace("METADATA", "entry_points.txt")
            points = archive.read(points_file).decode("utf-8") if points_file in names else ""
    except (OSError, zipfile.BadZipFile) as exc:
        raise StudioError(f"{wheel} cannot be read as a wheel: {exc}") from None
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # entry point names are case-sensitive
    parser.read_string(points)
    entry_points = sorted(parser[PLUGIN_GROUP]) if parser.has_section(PLUGIN_GROUP) else []
    return PluginSpec(name=metadata["Name"] or wheel.name, kind="wheel", argument=str(wheel.resolve()),
                      requirements=_parse(metadata.get_all("Requires-Dist") or [], str(wheel)),
                      entry_points=entry_points)


def _read_requirement(spec: str) -> PluginSpec:
    """What pip would install for ``spec`` (downloads or builds its metadata; installs nothing)."""
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run", "--quiet",
         "--report", "-", "--no-deps", "--ignore-installed", spec],
        capture_output=True, text=True)
    if completed.returncode != 0:
        last = next((line for line in reversed(completed.stderr.splitlines()) if line.strip()), "no message")
        raise StudioError(f"pip cannot find the plugin {spec!r}: {last.strip()}")
    try:
        install = json.loads(completed.stdout)["install"]
        metadata = install[0]["metadata"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise StudioError(f"pip's report for {spec!r} names nothing to install") from None
    return PluginSpec(name=metadata["name"], kind="requirement", argument=spec, entry_points=None,
                      requirements=_parse(list(metadata.get("requires_dist", [])), f"the plugin {spec!r}"))


def read_spec(spec: str | Path) -> PluginSpec:
    """A folder, a ``.whl`` file, or anything else pip accepts as a requirement (``name``, ``name==1.2``)."""
    path = Path(spec)
    if path.is_dir():
        return _read_folder(path)
    if path.suffix == ".whl":
        if not path.is_file():
            raise StudioError(f"the wheel {path} does not exist")
        return _read_wheel(path)
    text = str(spec)
    if "://" not in text and "@" not in text and ("/" in text or "\\" in text or text.startswith(".")):
        # a path, not a requirement: say so here rather than pass pip's "Hint: It looks like a path"
        if path.is_file():
            raise StudioError(f"{text} is a file, not a plugin folder or a wheel: give the folder that holds "
                              "the plugin's pyproject.toml, or a .whl file")
        raise StudioError(f"there is no folder or wheel at {text}: give a plugin folder, a .whl file "
                          "or a requirement (name, name==1.2)")
    return _read_requirement(text)


def plugin_requirements(spec: str | Path) -> tuple[str, list[Requirement]]:
    """The distribution's name and what it requires, read before anything is installed."""
    found = read_spec(spec)
    return found.name, found.requirements


# -- the app's environment -------------------------------------------------------------------------------
def _applies(requirement: Requirement, extras: set[str] | frozenset[str] = frozenset()) -> bool:
    """Its marker holds here (an ``extra == 'x'`` marker counts when ``x`` is one of ``extras``)."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _dist_requirements(name: str, extras: set[str] | frozenset[str] | None) -> list[Requirement] | None:
    """What installed ``name`` requires with ``extras`` (None: every extra it has); None if not installed."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    wanted = set(dist.metadata.get_all("Provides-Extra") or []) if extras is None else set(extras)
    found = []
    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if _applies(requirement, wanted):
            found.append(requirement)
    return found


def _app_roots() -> list[tuple[str, list[Requirement]]]:
    """What distill-studio needs (every extra: which are in use shows in what is installed) and the first-party plugins."""
    pyproject = REPO_ROOT / "pyproject.toml"
    own: list[Requirement] | None = None
    if pyproject.is_file():  # a source checkout: its pyproject is what runs, not a stale dist-info
        project = _toml(pyproject).get("project", {})
        if project.get("name") == APP:
            lines = list(project.get("dependencies", []))
            for extra in project.get("optional-dependencies", {}).values():
                lines.extend(extra)
            own = [r for r in _parse(lines, str(pyproject)) if _applies(r)]
    if own is None:
        own = _dist_requirements(APP, None) or []
    roots = [(APP, own)]
    for name in FIRST_PARTY:
        needs = _dist_requirements(name, None)
        if needs is not None:
            roots.append((name, needs))
    return roots


def app_requirements() -> dict[str, list[tuple[str, Requirement]]]:
    """Canonical name -> who in the app needs it and how: the app's requirements, followed through installed metadata."""
    held: dict[str, list[tuple[str, Requirement]]] = {}
    todo = deque(_app_roots())
    followed: set[tuple[str, frozenset[str]]] = set()
    while todo:
        who, requirements = todo.popleft()
        for requirement in requirements:
            key = canonicalize_name(requirement.name)
            held.setdefault(key, []).append((who, requirement))
            step = (key, frozenset(requirement.extras))
            if step in followed:
                continue
            followed.add(step)
            needs = _dist_requirements(requirement.name, requirement.extras)
            if needs is not None:
                todo.append((requirement.name, needs))
    return held


def _said(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


def conflicts(requirements: list[Requirement], *, plugin: str = "the plugin") -> list[str]:
    """One sentence per requirement the app's installed version of a package it needs does not satisfy."""
    held = app_requirements()
    app_itself = {canonicalize_name(n) for n in (APP, *FIRST_PARTY)}
    found = []
    for requirement in requirements:
        if not _applies(requirement):
            continue
        key = canonicalize_name(requirement.name)
        version = _installed_version(requirement.name)
        if version is None or (key not in held and key not in app_itself):
            continue  # new to this environment, or nothing of the app's: pip may install or move it
        try:
            if requirement.specifier.contains(Version(version), prereleases=True):
                continue
        except InvalidVersion:
            continue
        if key in app_itself:
            why = "it is part of the app"
        else:
            needs = [f"{who} needs {_said(need)}" for who, need in held[key]]  # the app's own first
            why = ", ".join(needs[:2]) + (f" and {len(needs) - 2} more" if len(needs) > 2 else "")
        found.append(f"{plugin} needs {_said(requirement)}; the app has {requirement.name} {version} ({why})")
    return found


def pins(*, leave_out: str = "") -> list[str]:
    """``name==version`` for every distribution this environment holds (the first found on the path wins)."""
    seen = {canonicalize_name(leave_out)} if leave_out else set()
    lines = []
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or canonicalize_name(name) in seen:
            continue
        seen.add(canonicalize_name(name))
        try:
            Version(dist.version)
        except (InvalidVersion, TypeError):
            continue
        lines.append(f"{canonicalize_name(name)}=={dist.version}")
    return sorted(lines)


# -- installing ----------------------------------------------------------------------------------------------
def _pip(args: list[str], *, quiet: bool = False) -> int:
    """pip in the app's interpreter; its output goes to the user's terminal (a download can take a while).

    ``quiet`` (a dry run, whose answer is one line): pip runs with -q and its output is shown only if it fails.
    """
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    if not quiet:
        return subprocess.call(command)
    done = subprocess.run([*command, "--quiet"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
    return done.returncode


def _satisfied(requirement: Requirement) -> bool:
    version = _installed_version(requirement.name)
    if version is None:
        return False
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _records_of(distribution: str, target: Path | None) -> list[PluginRecord]:
    from studio.core.plugins.discovery import discover, load_plugins

    if target is None:
        records = load_plugins(reload=True)
    else:  # installed elsewhere (tests): look there without keeping it on this process's path
        sys.path.insert(0, str(target))
        importlib.invalidate_caches()
        try:
            records = discover()
        finally:
            sys.path.remove(str(target))
            importlib.invalidate_caches()
    return [r for r in records if canonicalize_name(r.distribution or "") == canonicalize_name(distribution)]


def _names_taken(found: PluginSpec) -> list[tuple[str, str]]:
    """(plugin name, "distribution version") for each of ``found``'s names another installed distribution declares.

    Two distributions with one plugin name leave only one usable (discovery reports the other),
    so a new plugin must not shadow an installed one; reinstalling the same distribution is fine.
    """
    from studio.core.plugins.discovery import discover

    names = set(found.entry_points or ())
    mine = canonicalize_name(found.name)
    return [(r.name, f"{r.distribution} {r.dist_version}".strip()) for r in discover(disabled=set())
            if r.name in names and r.distribution and canonicalize_name(r.distribution) != mine]


def install(spec: str | Path, *, dry_run: bool = False, target: Path | None = None) -> list[PluginRecord]:
    """Check, then ``pip install`` a plugin with the app's packages pinned; its records after (none on a dry run).

    Raises StudioError naming every conflict before pip runs; ``target`` installs into that folder
    instead of the environment (tests: the app's environment must already hold its requirements).
    """
    return install_spec(read_spec(spec), dry_run=dry_run, target=target)


def install_spec(found: PluginSpec, *, dry_run: bool = False, target: Path | None = None) -> list[PluginRecord]:
    """:func:`install` for a spec already read (the CLI reads it once, to print what it needs)."""
    if found.entry_points == []:
        raise StudioError(f"{found.name} declares no [project.entry-points.\"{PLUGIN_GROUP}\"]: it is not a "
                          "Distill Studio plugin (see plugins/README.md)")
    taken = _names_taken(found)
    if taken:
        name, holder = taken[0]
        raise StudioError(f"cannot install {found.name}: its plugin name {name!r} is taken by {holder} (nothing was "
                          f"changed); uninstall {holder.split()[0]} first, or give the plugin's entry point another name")
    clashes = conflicts(found.requirements, plugin=found.name)
    if clashes:
        raise StudioError(f"cannot install {found.name}: it conflicts with the app's packages (nothing was "
                          f"changed): {'; '.join(clashes)}")
    args = ["install"]
    if found.build_requires is not None and all(_satisfied(r) for r in found.build_requires if _applies(r)):
        args.append("--no-build-isolation")  # its build backend is here already: build offline, no download
    if target is not None:
        missing = [_said(r) for r in found.requirements if _applies(r) and not _satisfied(r)]
        if missing:
            raise StudioError(f"--target installs {found.name} alone, but the app's environment lacks "
                              f"{', '.join(missing)}: install without --target")
        args += ["--target", str(target), "--no-deps"]
    if dry_run:
        args.append("--dry-run")
    with tempfile.TemporaryDirectory(prefix="distill-studio-pins-") as tmp:
        constraints = Path(tmp) / "app-pins.txt"
        constraints.write_text("\n".join(pins(leave_out=found.name)) + "\n", encoding="utf-8")
        code = _pip([*args, "--constraint", str(constraints), found.argument], quiet=dry_run)
    if code != 0:
        raise StudioError(f"pip could not install {found.name} (exit {code}); see its message above — "
                          "the app's packages are pinned, so a plugin that needs them moved cannot be installed")
    if dry_run:
        return []
    records = _records_of(found.name, target)
    if not records:
        raise StudioError(f"{found.name} was installed but declares no Distill Studio plugin "
                          f"(no {PLUGIN_GROUP} entry point found); `pip uninstall {found.name}` removes it")
    return records


def cmd_install(args: argparse.Namespace) -> int:
    from studio.core.plugins.cli import contributes

    target = getattr(args, "target", None)
    found = read_spec(args.spec)
    records = install_spec(found, dry_run=args.dry_run, target=target)
    if args.dry_run:
        needs = ", ".join(str(r) for r in found.requirements) or "nothing"
        print(f"{found.name} needs {needs}: no conflict with the app's packages. Dry run: nothing was changed.")
        return 0
    for record in records:
        print(f"installed plugin {record.name} {record.version} ({record.distribution} {record.dist_version}): "
              f"{record.state}; contributes {contributes(record, 'nothing')}")
        if record.error:
            print(f"  error: {record.error}")
    print("It takes effect the next time Distill Studio starts.")
    return 0
