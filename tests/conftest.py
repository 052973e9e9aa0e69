"""Shared fixtures. Qt runs offscreen; every test gets its own user folders (never the real ones)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DISTILL_STUDIO_HOME", str(home))
    return home


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
