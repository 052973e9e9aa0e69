"""Where the app uses plugins' entries (QA of issue 12): only the chosen one is imported, a broken one
says so in one line, and every kind of entry a plugin can add is a choice the user can make."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core import registry
from studio.core.plugins.boundary import clear_failures, failures
from tests.plugin_support import PACKAGES, PLUGIN_NAMES

HERE = __name__


@pytest.fixture
def in_process() -> Iterator[callable]:
    """Register entries pointing at this module as a named in-process plugin; all removed after."""
    sources: set[str] = set()

    def add(point: registry.Registry, key: str, attr: str, source: str, **meta) -> None:
        sources.add(source)
        point.register(key, f"{HERE}:{attr}", source=source, **meta)

    clear_failures()
    yield add
    for point in registry.ALL.values():
        for source in sources:
            point.unregister_source(source)
    clear_failures()


# -- 1. a new project's default seeds load no plugin's format --------------------------------------------------
def test_creating_a_project_with_default_seeds_imports_no_plugin(with_test_plugins: list, tmp_path: Path) -> None:
    from studio.core.project import Project

    assert "tsv" in registry.DATASET_FORMATS and "csv" in registry.DATASET_FORMATS
    with Project.create(tmp_path / "p", with_default_seeds=True) as project:
        assert project.seeds.count() > 0
    assert not [m for m in sys.modules if m.split(".")[0] in PACKAGES]
    assert all(not failures(name) for name in PLUGIN_NAMES)


# -- 2. generate --preset with a broken plugin preset: one error line -------------------------------------------
def test_generate_with_a_broken_plugin_preset_says_one_line(in_process, tmp_path: Path, capsys) -> None:
    from studio.cli import main
    from studio.core.project import Project

    in_process(registry.ENDPOINT_KINDS, "gone", "NO_SUCH_PRESET", "test-preset", title="Gone")
    Project.create(tmp_path / "p").close()
    code = main(["generate", "--project", str(tmp_path / "p"), "--preset", "gone", "--model", "m", "--target", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: endpoint kind 'gone' from test-preset could not be loaded")
    assert "Traceback" not in err[0]
