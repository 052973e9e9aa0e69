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
