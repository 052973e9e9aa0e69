"""The headless CLI: every command, its output, and its errors (one stderr line, non-zero exit)."""
from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import pytest

from studio import cli
from studio.cli import main
from studio.core import formats, schema
from studio.core.project import Project
from test_formats import BUILT_IN_SAMPLE_FORMATS, MALFORMED, TRICKY, csv_plugin, write_malformed  # noqa: F401 - fixture

LINUX_PROC = Path("/proc/self").exists()


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stats(capsys: pytest.CaptureFixture, root: Path) -> dict:
    code, out, _ = run(capsys, "data", "stats", "--json", "--project", root)
    assert code == 0
    return json.loads(out)


def test_init_creates_a_project_with_the_default_seeds(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "init", tmp_path / "p")
    assert code == 0 and "Created project" in out
    assert stats(capsys, tmp_path / "p")["seed_tasks"] >= 40


def test_project_option_before_the_command_is_honoured(tmp_path: Path, capsys) -> None:
    run(capsys, "init", tmp_path / "p", "--empty")
    code, out, _ = run(capsys, "--project", tmp_path / "p", "data", "stats", "--json")
    assert code == 0 and json.loads(out)["seed_tasks"] == 0


def test_seeds_and_data_import_export_stats(tmp_path: Path, capsys) -> None:
    root = tmp_path / "p"
    run(capsys, "init", root, "--empty")
    seeds_file = tmp_path / "seeds.jsonl"
    seeds_file.write_text(
        '{"id": "s0", "name": "greet", "instruction": "Greet.", "instances": [{"input": "", "output": "Hi"}], "is_classification": false}\n'
    )
    assert run(capsys, "seeds", "import", seeds_file, "--project", root)[0] == 0
    code, out, _ = run(capsys, "seeds", "list", "--project", root)
    assert code == 0 and "greet" in out
    data_file = tmp_path / "data.json"
    formats.write_samples(data_file, [formats.Record("a", "", "1"), formats.Record("b", "in", "2")], formats.ALPACA)
    code, out, _ = run(capsys, "data", "import", data_file, "--status", "accepted", "--project", root)
    assert code == 0 and "Imported 2 samples" in out
    code, out, _ = run(capsys, "data", "import", data_file, "--project", root)
    assert "0 samples" in out and "2 exact duplicates skipped" in out
    assert stats(capsys, root) | {"project": None} == {
        "project": None, "seed_tasks": 1, "samples": 2,
        "by_status": {"pending": 0, "accepted": 2, "rejected": 0}, "by_origin": {"imported": 2},
    }
    for fmt in BUILT_IN_SAMPLE_FORMATS:
        out_file = tmp_path / f"out-{fmt}.jsonl"
        assert run(capsys, "data", "export", out_file, "--format", fmt, "--status", "accepted", "--project", root)[0] == 0
        assert formats.read_samples(out_file) == formats.read_samples(data_file)
    assert run(capsys, "seeds", "export", tmp_path / "seeds-out.jsonl", "--project", root)[0] == 0
    assert formats.read_seeds(tmp_path / "seeds-out.jsonl") == formats.read_seeds(seeds_file)


def _project_fingerprint(root: Path) -> str:
    with Project.open(root, exclusive=False) as project:
        rows = project.conn.execute(
            "SELECT 's', id, instruction, instances FROM seed_tasks UNION ALL "
            "SELECT 'x', id, instruction, output FROM samples ORDER BY 1, 2"
        ).fetchall()
    return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("command", ["seeds", "data"])
def test_malformed_import_changes_nothing_and_reports_on_stderr(tmp_path: Path, capsys, case: str, command: str) -> None:
    root = tmp_path / "p"
    run(capsys, "init", root)
    good = tmp_path / "good.json"
    formats.write_samples(good, [formats.Record("kept", "", "yes")], formats.ALPACA)
    run(capsys, "data", "import", good, "--project", root)
    before = _project_fingerprint(root)
    path = write_malformed(tmp_path, case)
    code, out, err = run(capsys, command, "import", path, "--project", root)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and str(path) in err and err.count("\n") == 1
    assert _project_fingerprint(root) == before


def test_export_error_and_missing_project_are_reported(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "data", "stats", "--project", tmp_path / "none")
    assert code == 1 and "No project at" in err
    with pytest.raises(SystemExit) as exited:
        main(["data", "export", "x.json", "--format", "parquet-nope"])
    assert exited.value.code == 2


def test_shared_seed_tasks_and_alpaca_sample_import(tmp_path: Path, capsys, shared_data: Path) -> None:
    root = tmp_path / "p"
    run(capsys, "init", root, "--empty")
    assert run(capsys, "seeds", "import", shared_data / "seed_tasks.jsonl", "--project", root)[0] == 0
    assert run(capsys, "data", "import", shared_data / "alpaca_sample_2000.json", "--project", root)[0] == 0
    result = stats(capsys, root)
    assert result["seed_tasks"] == 175
    assert result["samples"] == 2000 and result["by_status"]["pending"] == 2000
    with Project.open(root, exclusive=False) as project:
        seeds = project.seeds.list()
    assert sum(s.is_classification for s in seeds) == 26
    assert sum(1 for s in seeds if s.instances[0].input == "") == 50


def test_a_failing_database_is_a_one_line_error_not_a_traceback(tmp_path: Path, capsys, monkeypatch) -> None:
    import sqlite3

    from studio.core.samples import SampleRepository

    run(capsys, "init", tmp_path / "p", "--empty")
    source = tmp_path / "a.json"
    source.write_text(json.dumps([{"instruction": "Name a colour.", "input": "", "output": "Red."}]))

    def disk_full(*_args, **_kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SampleRepository, "import_texts", disk_full)
    code, _out, err = run(capsys, "data", "import", source, "--project", tmp_path / "p")
    assert code == 1
    assert "project database failed (database or disk is full)" in err and "Traceback" not in err


def test_a_registered_format_and_exporter_are_in_help_and_work(tmp_path: Path, capsys, csv_plugin: str) -> None:
    for command in (["data", "import"], ["data", "export"], ["snapshot", "export"]):
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0
        assert "csv: CSV (plugin)" in capsys.readouterr().out
    root = tmp_path / "p"
    run(capsys, "init", root, "--empty")
    source = tmp_path / "in.csv"
    formats.write_samples(source, TRICKY, csv_plugin)
    code, out, _ = run(capsys, "data", "import", source, "--status", "accepted", "--project", root)
    assert code == 0 and f"Imported {len(TRICKY)} samples" in out
    code, out, _ = run(capsys, "data", "import", source, "--format", "csv", "--project", root)
    assert code == 0 and f"{len(TRICKY)} exact duplicates skipped" in out

    code, out, _ = run(capsys, "data", "export", tmp_path / "out.csv", "--project", root)  # chosen by extension
    assert code == 0 and out.endswith("(csv).\n")
    assert formats.read_samples(tmp_path / "out.csv") == TRICKY
    assert run(capsys, "snapshot", "create", "v1", "--project", root)[0] == 0
    code, out, _ = run(capsys, "snapshot", "export", "v1", tmp_path / "snap.csv", "--format", "csv",
                       "--val-fraction", "0.25", "--project", root)
    assert code == 0
    parts = [formats.read_samples(tmp_path / f"snap-{part}.csv", "csv") for part in ("train", "validation")]
    assert [len(p) for p in parts] == [6, 2] and sorted(parts[0] + parts[1]) == sorted(TRICKY)

    from studio.core import registry

    registry.DATASET_EXPORTERS.unregister(csv_plugin)  # the format alone still writes samples, as File > Export does
    assert run(capsys, "data", "export", tmp_path / "f.csv", "--format", "csv", "--project", root)[0] == 0
    registry.DATASET_FORMATS.unregister(csv_plugin)
    with pytest.raises(SystemExit) as exited:
        main(["data", "export", str(tmp_path / "x.csv"), "--format", "csv", "--project", str(root)])
    assert exited.value.code == 2 and "invalid choice: 'csv'" in capsys.readouterr().err


def _unwritable(tmp_path: Path, where: str, name: str) -> Path:
    if where == "proc":
        if not LINUX_PROC:
            pytest.skip("/proc exists on Linux only")
        return Path("/proc") / name
    (tmp_path / "a-file").write_text("a file, not a folder")
    return tmp_path / "a-file" / name


def assert_one_error_line(err: str, path: Path) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert str(path) in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["proc", "under-a-file"])
def test_unwritable_paths_are_one_line_errors_and_write_nothing(tmp_path: Path, capsys, where: str) -> None:
    target = _unwritable(tmp_path, where, "new-project")
    code, out, err = run(capsys, "init", target)
    assert code == 1 and out == ""
    assert_one_error_line(err, target)
    assert not target.exists()

    root = tmp_path / "p"
    run(capsys, "init", root, "--empty")
    source = tmp_path / "in.json"
    formats.write_samples(source, TRICKY, formats.ALPACA)
    run(capsys, "data", "import", source, "--status", "accepted", "--project", root)
    assert run(capsys, "snapshot", "create", "v1", "--project", root)[0] == 0
    file_target, folder_target = _unwritable(tmp_path, where, "x.json"), _unwritable(tmp_path, where, "x")
    for target, argv in ((file_target, ["data", "export", file_target]),
                         (file_target, ["data", "export", file_target, "--val-fraction", "0.5"]),
                         (folder_target, ["snapshot", "export", "v1", folder_target]),
                         (folder_target, ["snapshot", "export", "v1", folder_target, "--format", "hf"])):
        code, out, err = run(capsys, *argv, "--project", root)
        assert code == 1 and out == "", argv
        assert_one_error_line(err, target)
    leftovers = [] if where == "proc" else list((tmp_path / "a-file").parent.glob(".*"))
    assert leftovers == []


def test_a_failed_init_removes_what_it_created(tmp_path: Path, capsys, monkeypatch) -> None:
    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(schema, "migrate", disk_full)
    target = tmp_path / "new" / "deeper" / "p"
    code, out, err = run(capsys, "init", target)
    assert code == 1 and out == ""
    assert err == f"error: cannot create the project at {target}: No space left on device\n"
    assert list(tmp_path.iterdir()) == []
    adopted = tmp_path / "empty-folder"
    adopted.mkdir()
    (adopted / "notes.txt").write_text("mine")
    assert run(capsys, "init", adopted)[0] == 1
    assert [p.name for p in adopted.iterdir()] == ["notes.txt"]


def test_interrupting_any_command_is_one_line_and_exit_130(tmp_path: Path, capsys, monkeypatch) -> None:
    run(capsys, "init", tmp_path / "p", "--empty")

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.formats, "read_samples", interrupted)
    code, out, err = run(capsys, "data", "import", tmp_path / "whatever.json", "--project", tmp_path / "p")
    assert (code, out, err) == (130, "", "Interrupted.\n")


def test_an_os_error_escaping_a_command_names_its_path(tmp_path: Path, capsys, monkeypatch) -> None:
    run(capsys, "init", tmp_path / "p", "--empty")

    def denied(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/data.json")

    monkeypatch.setattr(cli.exports, "export", denied)
    code, out, err = run(capsys, "data", "export", tmp_path / "x.json", "--project", tmp_path / "p")
    assert (code, out, err) == (1, "", "error: /somewhere/data.json: Permission denied\n")


def test_a_default_project_that_cannot_be_made_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "a-file").write_text("a file, not a folder")
    monkeypatch.setenv("DISTILL_STUDIO_HOME", str(tmp_path / "a-file"))
    code, out, err = run(capsys, "data", "stats")
    assert code == 1 and out == ""
    assert err.startswith(f"error: cannot open the project at {tmp_path / 'a-file'}") and err.count("\n") == 1


@pytest.mark.skipif(not LINUX_PROC, reason="/proc exists on Linux only")
def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "studio", "init", "/proc/x"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: cannot create the project at /proc/x: No such file or directory\n"
