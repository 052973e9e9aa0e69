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
