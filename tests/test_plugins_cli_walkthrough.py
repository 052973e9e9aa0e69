"""A key of a disabled plugin on the real CLI: one line naming the plugin and how to turn it on, nothing changed.

``--backend openai-batch`` with the openai-batch plugin disabled used to be argparse's "invalid
choice ... (choose from 'live')", and ``generate --resume`` of a batch run marked the run failed.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.generation.config import RunConfig
from studio.core.generation.engine import create_run
from studio.core.llm import EndpointConfig
from studio.core.project import Project


def cli(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(home), "OPENAI_API_KEY": "sk-unused"}
    env.pop("DISTILL_STUDIO_NO_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "studio", *argv], capture_output=True, text=True, env=env,
                          timeout=120)


def runs(root: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(root / "project.sqlite") as conn:
        return list(conn.execute("SELECT id, status FROM generation_runs ORDER BY id"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = cli(home, "plugins", "disable", "openai-batch")
    assert done.returncode == 0, done.stderr
    return home


def _one_disabled_line(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "usage:" not in done.stderr
    assert "plugin 'openai-batch', which is disabled" in lines[0]
    assert "distill-studio plugins enable openai-batch" in lines[0]


def test_generate_with_a_disabled_backend_plugin_says_so_and_creates_no_run(home: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    assert cli(home, "init", str(root)).returncode == 0
    done = cli(home, "--project", str(root), "generate", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
               "--target", "5", "--backend", "openai-batch")
    _one_disabled_line(done)
    assert runs(root) == []


def test_resuming_a_batch_run_while_its_plugin_is_disabled_refuses_and_leaves_the_run_as_it_was(
        home: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    with Project.create(root) as project:
        config = RunConfig(teacher=EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m"), target=5,
                           backend="openai-batch")
        run_id = create_run(project.generation, config)
    before = runs(root)
    done = cli(home, "--project", str(root), "generate", "--resume", "--run", str(run_id))
    _one_disabled_line(done)
    assert runs(root) == before and before[0][1] != "failed"


def test_an_unknown_key_is_still_argparses_invalid_choice_and_help_lists_a_choice_options_values(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = cli(home, "generate", "--backend", "openai-bach")
    assert done.returncode == 2 and "invalid choice: 'openai-bach'" in done.stderr
    helped = cli(home, "generate", "--help")
    assert helped.returncode == 0 and "retry_failed (batch|live, default batch)" in " ".join(helped.stdout.split())


def test_the_template_csv_plugin_exports_samples_and_snapshots_with_data_export(test_plugins: Path,
                                                                                tmp_path: Path) -> None:
    """The README's plugin contributes a dataset format only (no exporter); File > Export samples offers
    it, so ``data export`` (by --format or by the .csv extension) and ``snapshot export`` write it too."""
    from tests.plugin_support import plugin_env

    env = {**plugin_env(test_plugins), "DISTILL_STUDIO_HOME": str(tmp_path / "home")}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "studio", *argv, "--project", str(tmp_path / "p")], env=env,
                              capture_output=True, text=True, timeout=120)

    Project.create(tmp_path / "p").close()
    source = tmp_path / "in.csv"
    source.write_text('instruction,input,output\nSay hi,,Hi\n"Add, please","2,2",4\n', encoding="utf-8")
    assert run("data", "import", str(source), "--format", "csv", "--status", "accepted").returncode == 0
    by_extension = run("data", "export", str(tmp_path / "out.csv"))
    assert by_extension.returncode == 0 and by_extension.stdout.endswith("(csv).\n"), by_extension.stderr
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == source.read_text(encoding="utf-8")
    split = run("data", "export", str(tmp_path / "split.txt"), "--format", "csv", "--val-fraction", "0.5")
    assert split.returncode == 0, split.stderr
    assert (tmp_path / "split-train.txt").read_text().startswith("instruction,input,output\n")
    assert run("snapshot", "create", "v1").returncode == 0
    snap = run("snapshot", "export", "v1", str(tmp_path / "snap.csv"))
    assert snap.returncode == 0 and (tmp_path / "snap.csv").read_text().count("\n") == 3, snap.stderr
    seeds_only = run("data", "export", str(tmp_path / "x.jsonl"), "--format", "seed")
    assert seeds_only.returncode == 1 and len(seeds_only.stderr.strip().splitlines()) == 1
    assert "writes seed tasks only" in seeds_only.stderr and not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("typo", ["./csv-formt", "plugins/csv-format/pyproject.toml"])
def test_plugins_install_of_a_mistyped_path_says_what_to_give_in_one_line_and_changes_nothing(
        tmp_path: Path, typo: str) -> None:
    (tmp_path / "plugins" / "csv-format").mkdir(parents=True)
    (tmp_path / "plugins" / "csv-format" / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "studio", "plugins", "install", typo, "--target",
                           str(tmp_path / "site")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ")
    assert typo in lines[0] and "pip" not in lines[0] and "Hint" not in lines[0]
    assert ("is a file, not a plugin folder" if typo.endswith(".toml") else "there is no folder or wheel") in lines[0]
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_plugins_install_refuses_a_plugin_named_like_an_installed_one_of_another_distribution(
        tmp_path: Path, dry_run: bool) -> None:
    """A second 'openai-batch' would shadow the first-party plugin (discovery keeps only one): refused first."""
    folder = tmp_path / "evil"
    (folder / "evilp").mkdir(parents=True)
    (folder / "evilp" / "__init__.py").write_text("")
    (folder / "evilp" / "manifest.py").write_text(
        'MANIFEST = {"name": "openai-batch", "version": "9", "studio": ">=0.1", "contributions": {}}\n')
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "evil-batch"\nversion = "1"\n'
        '[project.entry-points."distill_studio.plugins"]\nopenai-batch = "evilp.manifest:MANIFEST"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["evilp"]\n')
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-m", "studio", "plugins", "install", str(folder), "--target", str(tmp_path / "site")]
    done = subprocess.run(argv + (["--dry-run"] if dry_run else []), env=env, capture_output=True, text=True,
                          timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: cannot install evil-batch: its plugin name 'openai-batch' is taken by "
                               "distill-studio-openai-batch") and "nothing was changed" in lines[0]
    assert not (tmp_path / "site").exists()


def test_resume_refuses_a_new_runs_settings_rather_than_ignore_them(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "proj"
    with Project.create(root) as project:
        create_run(project.generation, RunConfig(teacher=EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m"),
                                                 target=5, backend="openai-batch"))
    before = runs(root)
    done = cli(home, "--project", str(root), "generate", "--resume", "--backend", "live", "--base-url", "http://x/v1")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "--base-url, --backend cannot be given with it" in lines[0] and runs(root) == before


def test_data_export_with_the_csv_plugin_disabled_names_it_in_one_line(test_plugins: Path, tmp_path: Path) -> None:
    from tests.plugin_support import plugin_env

    env = {**plugin_env(test_plugins), "DISTILL_STUDIO_HOME": str(tmp_path / "home")}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "studio", *argv], env=env, capture_output=True, text=True,
                              timeout=120)

    Project.create(tmp_path / "p").close()
    assert run("plugins", "disable", "csv-format").returncode == 0
    for command in (["data", "export", str(tmp_path / "out.csv")], ["snapshot", "export", "v1", str(tmp_path / "s.csv")]):
        done = run(*command, "--format", "csv", "--project", str(tmp_path / "p"))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert "plugin 'csv-format', which is disabled" in lines[0] and "plugins enable csv-format" in lines[0]
    assert not list(tmp_path.glob("*.csv"))
