"""Desktop launchers (installer/shortcut.py, `bootstrap.py shortcut [--remove]`), in a temporary home."""
from __future__ import annotations

import configparser
import importlib.util
import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("shortcut", REPO / "installer" / "shortcut.py")
shortcut = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shortcut)  # type: ignore[union-attr]


def test_the_linux_launcher_starts_the_bootstrap_with_its_icon_and_is_removed(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    entry, icon = shortcut.install(system="linux", env=env, python="/opt/py 3/bin/python3")
    assert entry == tmp_path / "data" / "applications" / "distill-studio.desktop"
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.optionxform = str  # keys are case-sensitive in desktop entries
    parsed.read_string(entry.read_text(encoding="utf-8"))
    desktop = parsed["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Name"] == "Distill Studio"
    assert desktop["Exec"] == f'"/opt/py 3/bin/python3" "{REPO / "installer" / "bootstrap.py"}"'  # quoted: spaces
    assert desktop["Icon"] == "distill-studio" and desktop["Terminal"] == "false"
    assert icon.read_bytes() == (REPO / "resources" / "icons" / "app.svg").read_bytes()
    assert shortcut.install(system="linux", env=env, python="/usr/bin/python3")[0] == entry  # again: rewritten
    assert '"/usr/bin/python3"' in entry.read_text(encoding="utf-8")
    assert shortcut.remove(system="linux", env=env) == [entry, icon]
    assert not entry.exists() and not icon.exists()
    assert shortcut.remove(system="linux", env=env) == []  # nothing left: nothing to say


def test_the_macos_bundle_runs_the_bootstrap(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    (bundle,) = shortcut.install(system="darwin", env=env, python="/usr/local/bin/python3")
    assert bundle == tmp_path / "Applications" / "Distill Studio.app"
    info = plistlib.loads((bundle / "Contents" / "Info.plist").read_bytes())
    launcher = bundle / "Contents" / "MacOS" / info["CFBundleExecutable"]
    assert info["CFBundlePackageType"] == "APPL" and os.access(launcher, os.X_OK)
    assert f'exec "/usr/local/bin/python3" "{REPO / "installer" / "bootstrap.py"}"' in launcher.read_text()
    assert shortcut.remove(system="darwin", env=env) == [bundle] and not bundle.exists()


def test_the_windows_shortcut_is_made_by_powershell_pointing_at_pythonw(tmp_path: Path) -> None:
    link = shortcut.windows_link({"APPDATA": str(tmp_path)})
    assert link == tmp_path / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Distill Studio.lnk"
    command = shortcut.windows_command(link, r"C:\venv\Scripts\python.exe", Path(r"C:\studio\installer\bootstrap.py"))
    assert command[:2] == ["powershell", "-NoProfile"]
    assert r"TargetPath = 'C:\venv\Scripts\pythonw.exe'" in command[-1] and str(link) in command[-1]
    assert r"""Arguments = '"C:\studio\installer\bootstrap.py"'""" in command[-1]
    assert r"WorkingDirectory = 'C:\studio'" in command[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux launcher")
def test_bootstrap_shortcut_and_remove_need_no_environment(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "DISTILL_STUDIO_VENV": str(tmp_path / "no-venv")}  # would be created if the action set anything up
    bootstrap = [sys.executable, str(REPO / "installer" / "bootstrap.py")]
    made = subprocess.run([*bootstrap, "shortcut"], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and "Added Distill Studio to the desktop's menu" in made.stdout
    assert (tmp_path / "data" / "applications" / "distill-studio.desktop").is_file()
    assert not (tmp_path / "no-venv").exists()
    gone = subprocess.run([*bootstrap, "shortcut", "--remove"], env=env, capture_output=True, text=True, timeout=60)
    assert gone.returncode == 0 and "Removed" in gone.stdout
    assert not (tmp_path / "data" / "applications" / "distill-studio.desktop").exists()
    wrong = subprocess.run([*bootstrap, "shortcut", "--bogus"], env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "use: shortcut [--remove]" in wrong.stderr
