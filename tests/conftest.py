"""Shared fixtures. Qt runs offscreen; every test gets its own user folders (never the real ones)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugin_support import test_plugins  # noqa: F401 - the installed test plugins (site folder)
from tests.plugin_support import with_test_plugins  # noqa: F401 - ...discovered in this process

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DISTILL_STUDIO_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def fresh_plugin_failures() -> Iterator[None]:
    """Plugin failures caught at the registry boundary are per session: one test's must not reach the
    next (a window opening a project shows a notice for an installed plugin that failed in use)."""
    from studio.core.plugins.boundary import clear_failures

    yield
    clear_failures()


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "seed_tasks.jsonl").exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def project(tmp_path: Path):
    from studio.core.project import Project

    with Project.create(tmp_path / "project") as opened:
        yield opened


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A closed project folder with eight accepted samples in the snapshot ``s1`` (ready to train)."""
    from studio.core.project import Project
    from studio.core.samples import Sample, Status

    root = tmp_path / "project"
    with Project.create(root) as project:
        for i in range(8):
            project.samples.add(Sample(f"Say the word number {i}.", "", f"Word {i}.", status=Status.ACCEPTED))
        project.snapshots.create("s1")
    return root


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pre-trained tiny Llama (tests/tiny_model.py) folder, built once per test run on one thread."""
    import torch

    from tests.tiny_model import build_tiny_llama

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_tiny_llama(tmp_path_factory.mktemp("tiny_base") / "tiny-llama")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def default_sigint():
    """Ctrl+C as a fresh process has it (handled, not blocked: KeyboardInterrupt), for the tests that send one.

    In full runs these tests' Ctrl+C was sometimes lost (never in a single file's run): the signal
    was ignored or blocked in the main thread by then, and a CLI child inherits both. Found state
    is reported as a warning, so the run says which it was.
    """
    import signal
    import warnings

    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handler = signal.getsignal(signal.SIGINT)
    if blocked or handler is not signal.default_int_handler:
        warnings.warn(f"SIGINT was {'blocked' if blocked else 'not blocked'} with handler {handler!r} "
                      "before this test; reset to the default", stacklevel=1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
