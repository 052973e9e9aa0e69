"""The four test plugins of ``tests/plugin_fixtures/``, installed with real pip into a site folder.

``build_plugin_site`` runs ``pip install --target`` once per session (no index, no build
isolation: hatchling comes from the test environment). ``with_test_plugins`` puts that folder
first on ``sys.path`` and rediscovers, so a test sees the plugins exactly as an installed app
would; ``plugin_env`` gives a subprocess (the CLI) the same view.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "plugin_fixtures"
# folder -> (entry point name = plugin id, top-level package)
TEST_PLUGINS = {
    "good-csv": ("csv-format", "distill_csv_format"),
    "broken-manifest": ("broken-manifest", "distill_broken_manifest"),
    "raises-on-import": ("raises-on-import", "distill_raises_on_import"),
    "newer-studio": ("newer-studio", "distill_newer_studio"),
}
PLUGIN_NAMES = tuple(name for name, _ in TEST_PLUGINS.values())
PACKAGES = tuple(package for _, package in TEST_PLUGINS.values())


def build_plugin_site(tmp: Path, fixtures: tuple[str, ...] = tuple(TEST_PLUGINS)) -> Path:
    """Install ``fixtures`` (folders of tests/plugin_fixtures) into ``tmp/site`` with real pip; returns it."""
    site = Path(tmp) / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
               "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(site),
               *(str(FIXTURES / name) for name in fixtures)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install the test plugins into {site}:\n{done.stdout}{done.stderr}")
    return site


def forget_modules(packages: tuple[str, ...] = PACKAGES) -> None:
    """Drop the test plugins' imported modules, so the next test's ``sys.modules`` checks start clean."""
    for module in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[module]


def plugin_env(site: Path) -> dict[str, str]:
    """``os.environ`` for a subprocess that sees the test plugins (the caller sets DISTILL_STUDIO_HOME)."""
    env = dict(os.environ)
    paths = [str(site), str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.pop("DISTILL_STUDIO_NO_PLUGINS", None)
    return env


@pytest.fixture(scope="session")
def test_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site folder holding the four test plugins (installed once per test run)."""
    return build_plugin_site(tmp_path_factory.mktemp("plugin_site"))


@pytest.fixture
def with_test_plugins(test_plugins: Path, isolated_home: Path) -> Iterator[list]:
    """The four test plugins discovered and registered in this process (the records); undone after."""
    from studio.core.plugins.boundary import clear_failures
    from studio.core.plugins.discovery import load_plugins

    sys.path.insert(0, str(test_plugins))
    importlib.invalidate_caches()
    try:
        yield load_plugins(reload=True)
    finally:
        sys.path.remove(str(test_plugins))
        importlib.invalidate_caches()
        forget_modules()
        load_plugins(reload=True)
        clear_failures()


@contextlib.contextmanager
def registered_as_plugins() -> Iterator[Callable[..., None]]:
    """``add(point, key, target, source, **meta)``: an entry registered in-process as the plugin ``source``
    would add it; every such entry, and the failures recorded meanwhile, is gone on leaving."""
    from studio.core import registry
    from studio.core.plugins.boundary import clear_failures

    sources: set[str] = set()

    def add(point: registry.Registry, key: str, target: str, source: str, **meta) -> None:
        sources.add(source)
        point.register(key, target, source=source, **meta)

    clear_failures()
    try:
        yield add
    finally:
        for point in registry.ALL.values():
            for source in sources:
                point.unregister_source(source)
        clear_failures()
