"""``distill-studio plugins list|enable|disable``: the CLI twin of *Help > Plugins*.

``list`` prints what discovery found (the records :func:`~studio.core.plugins.discovery.load_plugins`
made for this process, so the table is exactly what the app would load) and exits 0 even when
some plugins have errors: a broken plugin is a fact to show, not a failure of the command.
``enable`` / ``disable`` only write the remembered choice: code already imported cannot be
unloaded, so the change applies from the next start, and the command says so.
"""
from __future__ import annotations

import argparse
import json

from studio.core.errors import StudioError
from studio.core.plugins.model import DISABLED, ENABLED, PluginRecord

RESTART_NOTE = "this takes effect the next time Distill Studio starts"


def contributes(record: PluginRecord, empty: str = "-") -> str:
    """``dataset_formats: csv, tsv; sample_filters: short`` (``empty`` when nothing could be read)."""
    points: dict[str, list[str]] = {}
    for c in record.contributions:
        points.setdefault(c.point, []).append(c.key)
    return "; ".join(f"{point}: {', '.join(keys)}" for point, keys in points.items()) or empty


def state_label(record: PluginRecord) -> str:
    """The state as a person reads it: an enabled plugin whose code failed this session says so."""
    return "failed on use" if record.state == ENABLED and record.runtime_errors else record.state


def format_table(records: list[PluginRecord]) -> str:
    """NAME VERSION STATE CONTRIBUTES, then an indented ``error:`` line under each broken plugin."""
    if not records:
        return ("No plugins are installed. A plugin is a Python distribution with a 'distill_studio.plugins' "
                "entry point: see plugins/README.md, or `distill-studio plugins install FOLDER`.")
    rows = [("NAME", "VERSION", "STATE", "CONTRIBUTES")]
    rows += [(r.name, r.version or r.dist_version or "?", state_label(r), contributes(r)) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for number, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
        if number == 0:
            continue
        record = records[number - 1]
        for error in ([record.error] if record.error else []) + record.runtime_errors:
            lines.append(f"    error: {' '.join(error.split())}")
    return "\n".join(line.rstrip() for line in lines)


def cmd_list(args: argparse.Namespace) -> int:
    from studio.core.plugins.discovery import loaded_plugins

    from studio.core.plugins.settings import SAFE_MODE_ENV, safe_mode

    records = loaded_plugins()
    if getattr(args, "json", False):
        print(json.dumps({"plugins": [r.to_dict() for r in records], "safe_mode": safe_mode()},
                         ensure_ascii=False, indent=2))
        return 0
    print(format_table(records))
    if safe_mode() and records:
        print(f"Every plugin is off in this process: {SAFE_MODE_ENV} is set (safe mode).")
    return 0


def _set(name: str, enabled: bool) -> str:
    """Remember ``name`` on or off; the sentence to print. An unknown name is refused, naming the known ones."""
    from studio.core.plugins.discovery import loaded_plugins
    from studio.core.plugins.settings import disabled_plugins, safe_mode, set_enabled

    records = {r.name: r for r in loaded_plugins()}
    disabled = disabled_plugins()
    # A remembered name whose distribution is gone can still be turned back on (that only forgets it).
    if name not in records and not (enabled and name in disabled):
        known = ", ".join(sorted(records)) or "none are installed"
        raise StudioError(f"No plugin is named {name!r}; the installed plugins are: {known}.")
    if enabled == (name not in disabled):
        sentence = f"{name} is already {'enabled' if enabled else DISABLED}."
    else:
        set_enabled(name, enabled)
        sentence = f"{'Enabled' if enabled else 'Disabled'} {name}; {RESTART_NOTE}."
    if enabled and safe_mode():
        sentence += " (Plugins are off in this process: DISTILL_STUDIO_NO_PLUGINS is set.)"
    return sentence


def cmd_enable(args: argparse.Namespace) -> int:
    print(_set(args.name, True))
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    print(_set(args.name, False))
    return 0
