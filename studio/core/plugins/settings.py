"""Which plugins the user turned off: ``config_dir()/plugins.json``, shared by the app and the CLI.

The file holds names only (``{"disabled": ["csv-format"]}``); it is written atomically. A
missing or unreadable file means every plugin is on (a broken settings file must not hide
the app's own panels). ``DISTILL_STUDIO_NO_PLUGINS=1`` turns every plugin off for one process
(a safe mode for a plugin that breaks the start).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.paths import config_dir

SETTINGS_FILE = "plugins.json"
SAFE_MODE_ENV = "DISTILL_STUDIO_NO_PLUGINS"


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def safe_mode() -> bool:
    return os.environ.get(SAFE_MODE_ENV, "") not in ("", "0")


def disabled_plugins() -> set[str]:
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    names = data.get("disabled", []) if isinstance(data, dict) else []
    return {name for name in names if isinstance(name, str)} if isinstance(names, list) else set()


def set_enabled(name: str, enabled: bool) -> None:
    """Remember the choice (it takes effect at the next start: imported code cannot be unloaded)."""
    disabled = disabled_plugins()
    (disabled.discard if enabled else disabled.add)(name)
    path = settings_path()
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"disabled": sorted(disabled)}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StudioError(f"cannot save the plugin settings to {path}: {exc.strerror or exc}; "
                          "check that the folder is writable") from None
