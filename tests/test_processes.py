"""One liveness check for the training job, the model server and the server's parent."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from studio.core.processes import pid_alive


def test_a_running_process_is_alive_and_a_reaped_one_is_not() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0) and not pid_alive(-1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)


def test_an_exited_child_not_yet_reaped_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while pid_alive(child.pid) and time.monotonic() < deadline:  # a zombie until wait() below
            time.sleep(0.02)
        assert not pid_alive(child.pid)
        assert child.poll() == 0
    finally:
        child.wait()


def test_a_reused_pid_is_told_apart_by_its_command_line() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid, command_contains=b"time.sleep")
        if sys.platform.startswith("linux"):
            assert not pid_alive(child.pid, command_contains=b"studio-job-that-is-not-this")
    finally:
        child.kill()
        child.wait()
