"""A server started by the app stops itself when the app's process is gone (no orphan holding the model)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from studio.serve.parent_watch import PARENT_ENV, parent_alive, watch_parent

ROOT = Path(__file__).resolve().parents[1]


def test_the_app_names_itself_as_the_servers_parent() -> None:
    from studio.core.serving.launch import serve_env

    assert serve_env(0, base={})[PARENT_ENV] == str(os.getpid())


def test_no_parent_named_means_no_watcher() -> None:
    assert watch_parent({}) is None
    assert watch_parent({PARENT_ENV: "not-a-pid"}) is None


def test_the_watcher_calls_back_once_the_parent_is_gone() -> None:
    gone = threading.Event()
    states = iter([True, True, False])
    thread = watch_parent({PARENT_ENV: "4242"}, interval_s=0.01, on_gone=gone.set, alive=lambda pid: next(states))
    assert thread is not None
    assert gone.wait(5)
    thread.join(5)
    assert not thread.is_alive()


def test_our_own_parent_is_alive_and_a_dead_pid_is_not() -> None:
    assert parent_alive(os.getppid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not parent_alive(child.pid)


def test_a_child_whose_parent_is_killed_terminates_itself(tmp_path: Path) -> None:
    """Parent → grandchild with the variable set to the parent's pid; kill -9 the parent; the grandchild exits."""
    marker = tmp_path / "grandchild.pid"
    grandchild = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from studio.serve.parent_watch import watch_parent
        signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r} + ".term", "w").close(), os._exit(0)))
        watch_parent(interval_s=0.05)
        open({str(marker)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """)
    parent = textwrap.dedent(f"""
        import os, subprocess, sys, time
        env = dict(os.environ, {PARENT_ENV}=str(os.getpid()))
        subprocess.Popen([sys.executable, "-c", {grandchild!r}], env=env)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the grandchild never started"
        proc.kill()
        proc.wait()
        term = Path(str(marker) + ".term")
        deadline = time.monotonic() + 30
        while not term.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert term.exists(), "the orphaned child did not stop itself"
    finally:
        proc.kill()


def test_the_real_server_started_for_a_dead_app_stops_itself(tiny_base: Path, tmp_path: Path) -> None:
    """python -m studio.serve told that its app is a process that is not its parent (gone): it exits on its own."""
    info = tmp_path / "server.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **{PARENT_ENV: "1"})
    proc = subprocess.Popen([sys.executable, "-m", "studio.serve", "--base-model", str(tiny_base), "--port", "0",
                             "--info-file", str(info), "--threads", "1", "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the server kept running although its app was gone") from None
    finally:
        if proc.stderr is not None:
            proc.stderr.close()
    assert not info.exists()
