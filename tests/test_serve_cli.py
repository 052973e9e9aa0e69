"""``distill-studio serve`` (cmd_serve): startup failures are one clear line and exit status 2."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from studio.core.project import Project
from studio.serve.cli_support import add_serve_arguments, cmd_serve


def parse(*argv: str, project: Path | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    args.project = project
    return args


def test_defaults_are_local(tmp_path: Path) -> None:
    args = parse()
    assert (args.host, args.port, args.runs, args.device) == ("127.0.0.1", 8765, None, "auto")


def test_a_missing_base_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_serve(parse("--base-model", str(tmp_path / "nowhere"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]


def test_a_project_without_trained_runs_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Project.create(tmp_path / "p").close()
    assert cmd_serve(parse(project=tmp_path / "p")) == 2
    assert "no trained run" in capsys.readouterr().err
    assert cmd_serve(parse("--run", "7", project=tmp_path / "p")) == 2
    assert "no training run named 7" in capsys.readouterr().err
