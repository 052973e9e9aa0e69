"""Desktop launchers for Distill Studio: the app in the desktop's menu, with its icon.

    python3 installer/bootstrap.py shortcut            # add the launcher for this user
    python3 installer/bootstrap.py shortcut --remove   # take it away

The launcher runs ``installer/bootstrap.py`` of this checkout with the Python that made it, so
it sets up what is missing and keeps working after ``git pull``. Standard library only (the
bootstrap imports this before any virtual environment exists).

- Linux: ``$XDG_DATA_HOME/applications/distill-studio.desktop`` (default ``~/.local/share``), the
  icon in the user's hicolor theme (scalable SVG).
- macOS: ``~/Applications/Distill Studio.app``, a bundle whose executable starts the bootstrap
  (no icon: the bundle format wants ``.icns``, which we do not ship yet).
- Windows: a Start menu shortcut (``Distill Studio.lnk``) made with PowerShell's WScript.Shell.
"""
from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path, PureWindowsPath

APP_NAME = "Distill Studio"
APP_ID = "distill-studio"
ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = ROOT / "installer" / "bootstrap.py"
ICON_SVG = ROOT / "resources" / "icons" / "app.svg"


def _data_home(env: dict[str, str]) -> Path:
    return Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME", str(Path.home()))) / ".local" / "share")


def desktop_entry(python: str, bootstrap: Path, icon: str) -> str:
    """The freedesktop.org entry (Desktop Entry Specification 1.5); paths quoted for spaces."""
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.5",
        f"Name={APP_NAME}",
        "GenericName=LLM distillation studio",
        "Comment=Distill a teacher LLM into a small local model: seeds, generation, curation, LoRA training, chat, "
        "evaluation",
        f'Exec="{python}" "{bootstrap}"',
        f"Icon={icon}",
        "Terminal=false",
        "Categories=Development;Science;ArtificialIntelligence;",
        "",
    ])


def linux_paths(env: dict[str, str]) -> tuple[Path, Path]:
    data = _data_home(env)
    return (data / "applications" / f"{APP_ID}.desktop",
            data / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg")


def mac_bundle(env: dict[str, str]) -> Path:
    return Path(env.get("HOME", str(Path.home()))) / "Applications" / f"{APP_NAME}.app"


def windows_link(env: dict[str, str]) -> Path:
    appdata = Path(env.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    return appdata / "Microsoft" / "Windows" / "Start Menu" / "Programs" / f"{APP_NAME}.lnk"


def windows_command(link: Path, python: str, bootstrap: Path) -> list[str]:
    """PowerShell that writes the .lnk (pythonw: no console window behind the app)."""
    pythonw = PureWindowsPath(python).with_name("pythonw.exe")
    script_path = PureWindowsPath(bootstrap)
    script = (f"$s = (New-Object -ComObject WScript.Shell).CreateShortcut('{link}'); "
              f"$s.TargetPath = '{pythonw}'; $s.Arguments = '\"{script_path}\"'; "
              f"$s.WorkingDirectory = '{script_path.parent.parent}'; $s.Description = '{APP_NAME}'; $s.Save()")
    return ["powershell", "-NoProfile", "-NonInteractive", "-Command", script]


def install(*, system: str | None = None, env: dict[str, str] | None = None, python: str | None = None) -> list[Path]:
    """Add the launcher; returns what was written. Running it again rewrites the same files."""
    system = system or sys.platform
    env = dict(os.environ if env is None else env)
    python = python or sys.executable
    if system.startswith("linux"):
        entry, icon = linux_paths(env)
        icon.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ICON_SVG, icon)
        entry.parent.mkdir(parents=True, exist_ok=True)
        temporary = entry.with_suffix(".tmp")
        temporary.write_text(desktop_entry(python, BOOTSTRAP, APP_ID), encoding="utf-8")
        os.replace(temporary, entry)
        if shutil.which("update-desktop-database"):
            subprocess.run(["update-desktop-database", str(entry.parent)], check=False)
        return [entry, icon]
    if system == "darwin":
        bundle = mac_bundle(env)
        macos = bundle / "Contents" / "MacOS"
        macos.mkdir(parents=True, exist_ok=True)
        launcher = macos / APP_ID
        launcher.write_text(f'#!/bin/sh\nexec "{python}" "{BOOTSTRAP}" "$@"\n', encoding="utf-8")
        launcher.chmod(0o755)
        info = {"CFBundleName": APP_NAME, "CFBundleDisplayName": APP_NAME, "CFBundleIdentifier": "org.distill-studio",
                "CFBundleExecutable": APP_ID, "CFBundlePackageType": "APPL", "CFBundleVersion": "1"}
        (bundle / "Contents" / "Info.plist").write_bytes(plistlib.dumps(info))
        return [bundle]
    if system.startswith("win"):
        link = windows_link(env)
        link.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(windows_command(link, python, BOOTSTRAP), check=True)
        return [link]
    raise SystemExit(f"no launcher for the platform {system!r}; start the app with: {python} {BOOTSTRAP}")


def remove(*, system: str | None = None, env: dict[str, str] | None = None) -> list[Path]:
    """Take the launcher away; returns what was removed (nothing when there was none)."""
    system = system or sys.platform
    env = dict(os.environ if env is None else env)
    if system.startswith("linux"):
        paths = list(linux_paths(env))
    elif system == "darwin":
        paths = [mac_bundle(env)]
    elif system.startswith("win"):
        paths = [windows_link(env)]
    else:
        return []
    removed = []
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(path)
        elif path.exists():
            path.unlink()
            removed.append(path)
    return removed


def main(argv: list[str]) -> int:
    if argv and argv[0] not in ("--remove",):
        print(f"unknown option {argv[0]!r}; use: shortcut [--remove]", file=sys.stderr)
        return 2
    if argv:
        removed = remove()
        print(f"Removed {', '.join(map(str, removed))}" if removed else "No Distill Studio launcher was installed.")
        return 0
    written = install()
    print(f"Added {APP_NAME} to the desktop's menu: {', '.join(map(str, written))}")
    return 0
