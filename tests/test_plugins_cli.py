"""The must-show: the four test plugins installed with real pip, seen through the real CLI in subprocesses."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.project import Project
from tests.plugin_support import plugin_env

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(test_plugins: Path, tmp_path: Path):
    """Run ``distill-studio ARGS`` in a fresh process that sees the test plugins; its own config folder."""
    env = {**plugin_env(test_plugins), "DISTILL_STUDIO_HOME": str(tmp_path / "home")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "studio", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    run.env = env  # type: ignore[attr-defined]
    return run


def _records(cli) -> dict:
    done = cli("plugins", "list", "--json")
    assert done.returncode == 0, done.stderr
    return {r["name"]: r for r in json.loads(done.stdout)["plugins"]}


def test_plugins_list_json_shows_all_four_with_states_and_errors(cli) -> None:
    records = _records(cli)
    assert {"csv-format", "broken-manifest", "raises-on-import", "newer-studio", "openai-batch", "vllm-serve"} <= set(records)
    good = records["csv-format"]
    assert (good["state"], good["error"], good["distribution"]) == ("enabled", "", "distill-studio-csv-format")
    assert good["contributions"][0]["key"] == "csv" and good["location"].endswith("manifest.py")
    broken = records["broken-manifest"]
    assert broken["state"] == "error" and "not plain data" in broken["error"]
    assert broken["location"].endswith("manifest.py")  # where to look, even though it could not be read
    assert records["raises-on-import"]["state"] == "enabled"  # its module is only imported when tsv is used
    newer = records["newer-studio"]
    assert newer["state"] == "error" and ">=99" in newer["error"] and "0.1.0" in newer["error"]


def test_plugins_list_table_puts_each_error_under_its_plugin(cli) -> None:
    done = cli("plugins", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "STATE", "CONTRIBUTES"]
    row = next(i for i, line in enumerate(lines) if line.startswith("csv-format "))
    assert lines[row].split() == ["csv-format", "1.0.0", "enabled", "dataset_formats:", "csv"]
    broken = next(i for i, line in enumerate(lines) if line.startswith("broken-manifest "))
    assert lines[broken].split()[2] == "error"
    assert lines[broken + 1].startswith("    error: ") and "not plain data" in lines[broken + 1]


def test_the_good_plugin_imports_csv_and_a_broken_one_fails_with_its_name(cli, tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    tasks = tmp_path / "tasks.csv"
    tasks.write_text("instruction,input,output\nSay hi,,Hi\nAdd,2 2,4\n", encoding="utf-8")
    done = cli("seeds", "import", str(tasks), "--format", "csv", "--project", str(tmp_path / "p"))
    assert done.returncode == 0, done.stderr
    assert "Imported 2 seed tasks" in done.stdout
    listed = cli("seeds", "list", "--json", "--project", str(tmp_path / "p"))
    assert [t["instruction"] for t in json.loads(listed.stdout)] == ["Say hi", "Add"]

    helped = cli("data", "import", "--help")
    assert "csv: CSV" in " ".join(helped.stdout.split())

    tsv = tmp_path / "tasks.tsv"
    tsv.write_text("instruction\tinput\toutput\nNew\t\tOne\n", encoding="utf-8")
    failed = cli("seeds", "import", str(tsv), "--format", "tsv", "--project", str(tmp_path / "p"))
    assert failed.returncode == 1
    errors = failed.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and "raises-on-import" in errors[0], failed.stderr
    assert "Traceback" not in failed.stderr
    listed = cli("seeds", "list", "--json", "--project", str(tmp_path / "p"))
    assert len(json.loads(listed.stdout)) == 2  # nothing imported


def test_a_disabled_plugin_is_not_registered_and_its_module_never_imported(cli, tmp_path: Path) -> None:
    done = cli("plugins", "disable", "csv-format")
    assert done.returncode == 0, done.stderr
    assert "Disabled csv-format; this takes effect the next time Distill Studio starts." in done.stdout
    assert json.loads((tmp_path / "home" / "config" / "plugins.json").read_text())["disabled"] == ["csv-format"]
    assert _records(cli)["csv-format"]["state"] == "disabled"

    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps([{"instruction": "Say hi", "input": "", "output": "Hi"}]), encoding="utf-8")
    script = (
        "import sys, json\n"
        "from studio.core.plugins.discovery import load_plugins\n"
        "from studio.core import formats, registry\n"
        "load_plugins()\n"
        f"seeds = formats.read_seeds({str(seeds)!r})\n"
        "print(json.dumps({'seeds': len(seeds), 'csv': 'csv' in registry.DATASET_FORMATS,"
        " 'formats': formats.sample_formats(), 'modules': sorted(sys.modules)}))\n"
    )
    child = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=cli.env, capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)
    assert seen["seeds"] == 1 and seen["csv"] is False and "csv" not in seen["formats"]
    assert "tsv" not in seen["formats"]  # the broken one is left out of the choices, the rest work
    assert not [m for m in seen["modules"] if m.startswith("distill_csv_format")]

    again = cli("plugins", "disable", "csv-format")
    assert "csv-format is already disabled." in again.stdout
    on = cli("plugins", "enable", "csv-format")
    assert "Enabled csv-format; this takes effect the next time Distill Studio starts." in on.stdout
    assert _records(cli)["csv-format"]["state"] == "enabled"


def test_importing_a_csv_with_the_csv_plugin_disabled_says_to_enable_it(cli, tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    assert cli("plugins", "disable", "csv-format").returncode == 0
    tasks = tmp_path / "tasks.csv"
    tasks.write_text("instruction,input,output\nSay hi,,Hi\n", encoding="utf-8")
    for command in (("seeds", "import"), ("data", "import")):
        failed = cli(*command, str(tasks), "--project", str(tmp_path / "p"))
        assert failed.returncode == 1, failed.stdout
        assert failed.stderr.strip() == (
            f"error: {tasks}: no enabled format reads .csv files; the plugin 'csv-format' (disabled) has one: "
            "distill-studio plugins enable csv-format"), failed.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")  # a built-in format's extension: the JSON error stands
    failed = cli("seeds", "import", str(broken), "--project", str(tmp_path / "p"))
    assert "csv-format" not in failed.stderr and "JSON" in failed.stderr, failed.stderr


def test_enable_or_disable_of_an_unknown_plugin_names_the_installed_ones(cli) -> None:
    done = cli("plugins", "disable", "no-such-plugin")
    assert done.returncode == 1
    assert done.stderr.startswith("error: No plugin is named 'no-such-plugin'; the installed plugins are: ")
    assert "csv-format" in done.stderr and "broken-manifest" in done.stderr


def test_safe_mode_lists_every_plugin_disabled_and_says_why(cli) -> None:
    done = subprocess.run([sys.executable, "-m", "studio", "plugins", "list"], env={**cli.env, "DISTILL_STUDIO_NO_PLUGINS": "1"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *table, note = done.stdout.splitlines()
    rows = [line.split() for line in table[1:] if not line.startswith(" ")]  # not the error lines
    assert len(rows) >= 6 and {row[2] for row in rows} == {"disabled"}
    assert note == "Every plugin is off in this process: DISTILL_STUDIO_NO_PLUGINS is set (safe mode)."
