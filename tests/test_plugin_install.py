"""``plugins install``: the conflict check runs before pip, real pip installs the rest with the app pinned."""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from studio.core.errors import StudioError
from studio.core.plugins import install as plugin_install
from studio.core.plugins.discovery import discover
from studio.core.plugins.model import ENABLED

REPO = Path(__file__).resolve().parents[1]
PACKAGING = importlib.metadata.version("packaging")


def write_plugin(folder: Path, name: str, dependencies: list[str], *, entry_point: bool = True) -> Path:
    """A one-format plugin distribution (hatchling, like the template) in ``folder``."""
    package = name.replace("-", "_")
    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text("")
    (folder / package / "manifest.py").write_text(
        f'MANIFEST = {{"name": "{name}", "version": "1.0.0", "studio": ">=0.1", "contributions": '
        f'{{"dataset_formats": [{{"key": "{package}", "target": "{package}.fmt:FORMAT", "title": "Test"}}]}}}}\n')
    (folder / package / "fmt.py").write_text("raise RuntimeError('discovery must not import this')\n")
    points = f'[project.entry-points."distill_studio.plugins"]\n{name} = "{package}.manifest:MANIFEST"\n' if entry_point else ""
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling>=1.25"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{name}"\nversion = "1.0.0"\ndependencies = [{deps}]\n\n{points}\n'
        f'[tool.hatch.build.targets.wheel]\npackages = ["{package}"]\n')
    return folder


@pytest.fixture(autouse=True)
def offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # everything these tests install is local


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(plugin_install, "_pip", lambda args, **_: calls.append(args) or 1)
    return calls


def test_a_plugin_pinning_an_older_packaging_is_refused_naming_both_sides_before_pip_runs(
        tmp_path: Path, no_pip: list[list[str]]) -> None:
    folder = write_plugin(tmp_path / "old", "old-packaging-plugin", ["packaging<1"])
    site = tmp_path / "site"
    assert plugin_install.plugin_requirements(folder) == ("old-packaging-plugin", [Requirement("packaging<1")])
    with pytest.raises(StudioError) as caught:
        plugin_install.install(folder, target=site)
    message = str(caught.value)
    assert "cannot install old-packaging-plugin" in message and "nothing was changed" in message
    assert f"old-packaging-plugin needs packaging<1; the app has packaging {PACKAGING}" in message
    assert "distill-studio needs packaging>=23.0" in message  # the app's side of the conflict
    assert no_pip == [] and not site.exists()


def test_the_cli_refuses_a_conflict_with_one_error_line_and_installs_nothing(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path / "old", "old-packaging-plugin", ["packaging<1"])
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "studio", "plugins", "install", str(folder), "--target", str(site)],
                          capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot install old-packaging-plugin")
    assert "Processing" not in done.stdout + done.stderr  # pip never ran
    assert not site.exists()


def test_conflicts_follow_markers_the_app_s_transitive_needs_and_the_app_itself() -> None:
    assert plugin_install.conflicts([Requirement("packaging<1; python_version < '3'")]) == []  # marker false here
    assert plugin_install.conflicts([Requirement("no-such-distribution-h6<1")]) == []  # new: pip may install it
    assert plugin_install.conflicts([Requirement("pip<1")]) == []  # installed, but nothing of the app's needs it
    assert plugin_install.conflicts([Requirement(f"packaging>={PACKAGING}")]) == []
    openai_needs = [Requirement(r) for r in importlib.metadata.distribution("openai").requires or []]
    dependency = next(r for r in openai_needs if r.marker is None and plugin_install._installed_version(r.name))
    held = plugin_install.app_requirements()[canonicalize_name(dependency.name)]
    assert ("openai", dependency) in held  # the app needs it through openai: followed through installed metadata
    found = plugin_install.conflicts([Requirement(f"{dependency.name}<0.0.1")], plugin="p")
    assert len(found) == 1 and f"p needs {dependency.name}<0.0.1; the app has {dependency.name} " in found[0]
    assert plugin_install.conflicts([Requirement("distill-studio>=99")], plugin="p") == [
        f"p needs distill-studio>=99; the app has distill-studio {importlib.metadata.version('distill-studio')} "
        "(it is part of the app)"]


def test_a_plugin_needing_nothing_new_installs_into_a_target_and_is_discovered_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_plugin(tmp_path / "good", "install-test-plugin", ["packaging>=20", "torch<1; python_version < '3'"])
    site = tmp_path / "site"
    args = argparse.Namespace(spec=str(folder), dry_run=False, target=site)
    assert plugin_install.cmd_install(args) == 0
    out = capsys.readouterr().out
    assert "installed plugin install-test-plugin 1.0.0 (install-test-plugin 1.0.0): enabled" in out
    assert "contributes dataset_formats: install_test_plugin" in out
    assert (site / "install_test_plugin" / "manifest.py").is_file()
    assert [p.name for p in site.glob("*.dist-info")] == ["install_test_plugin-1.0.0.dist-info"]  # --no-deps
    assert "install-test-plugin" not in [r.name for r in discover()]  # the target is not on this path
    monkeypatch.syspath_prepend(str(site))
    record = next(r for r in discover() if r.name == "install-test-plugin")
    assert record.state == ENABLED and record.distribution == "install-test-plugin"
    assert [(c.point, c.key) for c in record.contributions] == [("dataset_formats", "install_test_plugin")]
    assert "install_test_plugin.fmt" not in sys.modules  # found, never imported


def test_dry_run_checks_with_pip_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_plugin(tmp_path / "good", "dry-run-plugin", ["packaging>=20"])
    site = tmp_path / "site"
    args = argparse.Namespace(spec=str(folder), dry_run=True, target=site)
    assert plugin_install.cmd_install(args) == 0
    captured = capsys.readouterr().out
    assert "dry-run-plugin needs packaging>=20: no conflict" in captured and "nothing was changed" in captured
    assert not site.exists()


def test_a_dry_run_prints_only_its_verdict_and_shows_pips_output_when_pip_fails(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder = write_plugin(tmp_path / "good", "quiet-dry-run-plugin", ["packaging>=20"])
    args = argparse.Namespace(spec=str(folder), dry_run=True, target=None)  # into the environment: pip resolves
    assert plugin_install.cmd_install(args) == 0
    out, err = capfd.readouterr()
    assert out.splitlines() == [
        "quiet-dry-run-plugin needs packaging>=20: no conflict with the app's packages. Dry run: nothing was changed."]
    assert "Requirement already satisfied" not in out + err

    folder = write_plugin(tmp_path / "bad", "unresolvable-plugin", ["distill-no-such-package>=1"])
    with pytest.raises(StudioError, match="pip could not install unresolvable-plugin"):
        plugin_install.install(folder, dry_run=True)
    out, err = capfd.readouterr()
    assert "distill-no-such-package" in out + err  # pip's own reason, shown because it failed


def test_a_wheel_and_a_requirement_name_are_read_like_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pip: list[list[str]]) -> None:
    folder = write_plugin(tmp_path / "src", "wheel-test-plugin", ["packaging>=20", "numpy>=1.0"])
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(folder)], check=True, timeout=120)
    expected = ("wheel-test-plugin", ["numpy>=1.0", "packaging>=20"])

    def read(spec: str | Path) -> tuple[str, list[str]]:
        name, requirements = plugin_install.plugin_requirements(spec)
        return name, sorted(str(r) for r in requirements)  # METADATA's order is the build backend's

    wheel = next(wheels.glob("*.whl"))
    assert read(folder) == expected and read(wheel) == expected
    assert plugin_install.read_spec(wheel).entry_points == ["wheel-test-plugin"]
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    assert read("wheel-test-plugin==1.0.0") == expected  # pip --dry-run --report
    with pytest.raises(StudioError, match="pip cannot find the plugin 'no-such-plugin-h6'"):
        plugin_install.plugin_requirements("no-such-plugin-h6")
    assert no_pip == []  # reading never installs


def test_a_distribution_without_a_plugin_entry_point_is_refused(tmp_path: Path, no_pip: list[list[str]]) -> None:
    folder = write_plugin(tmp_path / "lib", "just-a-library", [], entry_point=False)
    with pytest.raises(StudioError, match=r"just-a-library declares no .*distill_studio.plugins.*not a Distill Studio plugin"):
        plugin_install.install(folder, target=tmp_path / "site")
    with pytest.raises(StudioError, match="has no pyproject.toml"):
        plugin_install.install(tmp_path, target=tmp_path / "site")
    assert no_pip == []


def test_the_constraint_file_pins_every_installed_distribution_but_the_plugin() -> None:
    lines = plugin_install.pins(leave_out="Packaging")
    assert f"openai=={importlib.metadata.version('openai')}" in lines
    assert not any(line.startswith("packaging==") for line in lines)
    assert f"packaging=={PACKAGING}" in plugin_install.pins()


def test_bootstrap_installs_the_first_party_plugins_with_the_app_and_reinstalls_when_their_pyproject_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bootstrap_under_test", REPO / "installer" / "bootstrap.py")
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)  # type: ignore[union-attr]
    root = tmp_path / "checkout"
    for folder in ("", *bootstrap.FIRST_PARTY_PLUGINS):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "pyproject.toml").write_text(f"# {folder or 'app'}\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(bootstrap, "ROOT", root)
    monkeypatch.setattr(bootstrap, "VENV", venv)
    monkeypatch.setattr(bootstrap, "STAMP", venv / ".distill-studio-stamp")
    monkeypatch.setattr(bootstrap, "venv_python", lambda: venv / "bin" / "python")
    monkeypatch.setattr(bootstrap, "install_torch", lambda: None)
    monkeypatch.setattr(bootstrap, "pip", lambda *args, check=True: calls.append(args) or 0)
    bootstrap.ensure_environment()
    assert calls == [("install", "-q", "-e", f"{root}[{bootstrap.EXTRAS}]",
                      "-e", str(root / "plugins" / "openai-batch"), "-e", str(root / "plugins" / "vllm-serve"))]
    bootstrap.ensure_environment()
    assert len(calls) == 1  # the fingerprint matches: nothing to do
    (root / "plugins" / "vllm-serve" / "pyproject.toml").write_text("# vllm-serve, a new dependency\n")
    bootstrap.ensure_environment()
    assert len(calls) == 2  # a plugin's requirements changed: installed again
