"""benchmarks/startup.py --plugins: the generated plugins are real, valid and discovered without importing them."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("startup_benchmark", REPO_ROOT / "benchmarks" / "startup.py")
startup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(startup)  # type: ignore[union-attr]


def test_the_generated_plugins_install_and_are_discovered_enabled_without_being_imported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.core.plugins.discovery import discover

    site = startup.build_plugin_site(tmp_path, 2)  # real pip, as the benchmark runs it
    seconds, found = startup.time_discovery(site, 2)
    assert found == 2 and seconds > 0
    assert str(site) not in sys.path  # the benchmark's process path is left as it was
    monkeypatch.syspath_prepend(str(site))
    records = {r.name: r for r in discover(disabled=set()) if r.name.startswith("bench-plugin-")}
    assert sorted(records) == ["bench-plugin-01", "bench-plugin-02"]
    assert [(c.point, c.key) for c in records["bench-plugin-02"].contributions] == [
        ("dataset_formats", "bench02"), ("sample_filters", "bench02")]
    assert not [m for m in sys.modules if m.startswith("distill_bench_plugin")]  # read, never imported
