"""Whether a process is alive, the same way everywhere (the training job, the model server, its parent).

``os.kill(pid, 0)`` is the POSIX probe, but on Windows any signal other than the two console
events *terminates* the process, so Windows asks ``OpenProcess``/``GetExitCodeProcess``
instead. On Linux a zombie (exited, not yet reaped) is not alive, and a caller that knows what
the process runs can reject a reused pid by its command line.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def pid_alive(pid: int, *, command_contains: bytes | None = None) -> bool:
    """The process exists and has not exited; with ``command_contains``, its command line has that text."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process by that pid: it exists
    except OSError:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no /proc (macOS): os.kill said it exists
    try:
        if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        if command_contains is None:
            return True
        return command_contains in proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, IndexError):
        return True


def _alive_windows(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def python_child_env(threads: int = 0, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one of our Python children (training job, model server, export).

    Unbuffered UTF-8 lines (each is an event or a log line read as it comes); the libraries'
    progress bars and advisories off (their carriage returns are not events); ``threads`` > 0
    caps OpenMP/MKL (on a busy 2-core machine an uncapped child runs many times slower);
    ``PYTHONPATH`` names the folder holding ``studio`` so a child started from any folder finds it.
    """
    import studio

    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    env["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    env["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    if threads > 0:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(int(threads))
    code_root = str(Path(studio.__file__).resolve().parents[1])
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if code_root not in parts:
        env["PYTHONPATH"] = os.pathsep.join([code_root, *parts])
    return env
