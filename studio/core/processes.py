"""Whether a process is alive, the same way everywhere (the training job, the model server, its parent).

``os.kill(pid, 0)`` is the POSIX probe, but on Windows any signal other than the two console
events *terminates* the process, so Windows asks ``OpenProcess``/``GetExitCodeProcess``
instead. On Linux a zombie (exited, not yet reaped) is not alive, and a caller that knows what
the process runs can reject a reused pid by its command line.
"""
from __future__ import annotations

import os
import sys
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
