#!/usr/bin/env python3
"""Set up Distill Studio in a private virtual environment, then start it or test it.

    python3 installer/bootstrap.py            # set up, then open the app on the default project
    python3 installer/bootstrap.py test       # set up, then run the test suite
    python3 installer/bootstrap.py run ARGS   # set up, then run `distill-studio ARGS`
    python3 installer/bootstrap.py shortcut [--remove]   # add (or remove) the app in the desktop's menu

Standard library only, so it runs on a fresh Python 3.10+ on Linux, macOS and Windows.
torch is installed before everything else: once a torch is present, transformers/peft/trl
accept it, so a machine without an NVIDIA GPU never downloads the multi-GB CUDA build.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("DISTILL_STUDIO_VENV", ROOT / ".venv"))
STAMP = VENV / ".distill-studio-stamp"
TORCH_VERSION = "2.13.0"
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
EXTRAS = "train,serve,export-gguf,test"
# First-party plugins ship with the app, installed editable in the same pip call (one resolution:
# pip cannot pick a version of a shared dependency that one of them refuses).
FIRST_PARTY_PLUGINS = ("plugins/openai-batch", "plugins/vllm-serve")


def log(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def pip(*args: str, check: bool = True) -> int:
    command = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, check=check).returncode


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


def torch_installed() -> bool:
    probe = [str(venv_python()), "-c", "import importlib.util,sys; sys.exit(importlib.util.find_spec('torch') is None)"]
    return subprocess.run(probe).returncode == 0


def install_torch() -> None:
    """Pick the torch build for this machine without ever pulling CUDA wheels on a CPU box."""
    if torch_installed():
        return
    # A wheel already on this machine (pip's find-links) wins: fast and offline.
    log(f"installing torch {TORCH_VERSION} (looking for a local wheel first)")
    if pip("install", "-q", "--no-index", "--no-deps", f"torch=={TORCH_VERSION}", check=False) == 0:
        pip("install", "-q", f"torch=={TORCH_VERSION}")  # torch's own dependencies, from the index
        return
    if platform.system() == "Darwin" or has_nvidia_gpu():
        # macOS wheels are CPU/MPS builds; with an NVIDIA GPU the default CUDA build is wanted.
        pip("install", "-q", "torch>=2.3")
    else:
        log("no NVIDIA GPU found: installing the CPU build of torch")
        pip("install", "-q", "torch>=2.3", "--index-url", PYTORCH_CPU_INDEX)


def requirements_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", *(ROOT / p / "pyproject.toml" for p in FIRST_PARTY_PLUGINS), Path(__file__)):
        digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_environment() -> None:
    if not venv_python().exists():
        log(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    fingerprint = requirements_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    install_torch()
    log("installing Distill Studio, its dependencies and its first-party plugins")
    plugins = [arg for p in FIRST_PARTY_PLUGINS for arg in ("-e", str(ROOT / p))]
    pip("install", "-q", "-e", f"{ROOT}[{EXTRAS}]", *plugins)
    STAMP.write_text(fingerprint)
    log("environment ready")


def warn_about_display() -> None:
    """Qt's own error for a missing xcb library is misleading; say what to install instead."""
    if platform.system() != "Linux" or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        log("no DISPLAY or WAYLAND_DISPLAY is set: the window needs a desktop session (or Xvfb)")
        return
    import ctypes.util

    missing = [lib for lib in ("xcb-cursor", "xkbcommon-x11", "EGL") if ctypes.util.find_library(lib) is None]
    if missing:
        log("Qt needs system libraries that seem to be missing: " + ", ".join(missing) + ". On Debian/Ubuntu: "
            "sudo apt-get install libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1")


def main(argv: list[str]) -> int:
    action, rest = (argv[0], argv[1:]) if argv else ("app", [])
    if action == "shortcut":  # no environment needed: the launcher runs this script, which sets up on first use
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import shortcut

        return shortcut.main(rest)
    ensure_environment()
    python = str(venv_python())
    if action == "app":
        warn_about_display()
        return subprocess.call([python, "-m", "studio", *rest])
    if action == "run":
        return subprocess.call([python, "-m", "studio", *rest])
    if action == "test":
        env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
        return subprocess.call([python, "-m", "pytest", *rest], cwd=ROOT, env=env)
    if action == "setup":
        return 0
    print(f"unknown action {action!r}; use: app | test | run ARGS | setup | shortcut [--remove]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
