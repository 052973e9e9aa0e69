"""Trainers as registry entries: the built-in ``peft-lora`` and a plugin's trainer (registered in-process).

A trainer is a function returning the argv of a child process that trains the run its
config.json describes and speaks the training events protocol. Here a tiny script stands in for
a plugin's trainer; ``train start --trainer KEY`` runs it through the same launcher, follow loop
and store as the studio's own job, so the run ends done with its loss events stored.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from studio.cli import main
from studio.core.errors import StudioError
from studio.core.plugins.boundary import PluginError, failures
from studio.core.project import Project
from studio.core.registry import TRAINERS
from studio.core.samples import Sample, Status
from studio.core.training import launch
from studio.core.training.events import read_all
from studio.core.training.settings import TrainSettings

SOURCE = "test-trainer"
# A trainer child: reads the config, writes events to events.jsonl and stdout, three steps, then done.
SCRIPT = """
import json, sys, time
from pathlib import Path

config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
run_dir = Path(config["run_dir"])
(run_dir / "argv.json").write_text(json.dumps(sys.argv[1:]), encoding="utf-8")

def emit(kind, **fields):
    line = json.dumps({"type": kind, "time": time.time(), **fields})
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line + "\\n")
    print(line, flush=True)

emit("config", run_id=config["run_id"], config=config, versions={"tiny-trainer": "1"}, device="cpu",
     train_samples=4, eval_samples=0)
for step in (1, 2, 3):
    emit("log", step=step, loss=4.0 / step, learning_rate=1e-4, grad_norm=1.0, tokens_per_s=100.0,
         gpu_memory_gb=None)
    emit("progress", step=step, max_steps=3, epoch=step / 3, eta_s=0.0)
(run_dir / "adapter").mkdir(exist_ok=True)
(run_dir / "adapter" / "adapter_config.json").write_text('{"r": 8}', encoding="utf-8")
emit("done", step=3, adapter=str(run_dir / "adapter"), train_loss=2.0, runtime_s=0.1)
"""
SCRIPT_ENV = "TINY_TRAINER_SCRIPT"  # where the script is (the registry imports this module anew by its name)


def tiny_trainer(config_path: Path) -> list[str]:
    """The in-process entry's target: a trainer is a function from the config's path to an argv."""
    return [sys.executable, os.environ[SCRIPT_ENV], str(config_path), "--from-tiny-trainer"]


def broken_trainer(config_path: Path) -> list[str]:
    raise ZeroDivisionError("division by zero")


def not_a_command(config_path: Path) -> str:
    return f"python train.py {config_path}"


@pytest.fixture
def trainers(tmp_path: Path, monkeypatch) -> Path:
    script = tmp_path / "tiny_trainer.py"
    script.write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    monkeypatch.setenv(SCRIPT_ENV, str(script))
    for key, target in (("tiny", "tiny_trainer"), ("broken", "broken_trainer"), ("not-argv", "not_a_command")):
        TRAINERS.register(key, f"tests.test_trainers_registry:{target}", title=f"Test {key}", source=SOURCE)
    yield script
    TRAINERS.unregister_source(SOURCE)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


def start(project_dir: Path, model: Path, *args: str) -> int:
    return main(["train", "start", "--snapshot", "s1", "--base-model", str(model), "--name", "r",
                 *args, "--project", str(project_dir)])


def test_peft_lora_is_the_built_in_trainer_and_the_default(tmp_path: Path) -> None:
    entry = TRAINERS.get("peft-lora")
    assert entry.built_in and entry.target == "studio.core.training.launch:peft_lora_command"
    assert TrainSettings().trainer == "peft-lora" and launch.DEFAULT_TRAINER == "peft-lora"
    config = tmp_path / "config.json"
    assert launch.child_command(config) == [sys.executable, "-m", "studio.train", str(config)]  # no file yet
    config.write_text(json.dumps({"settings": {"learning_rate": 1e-4}}), encoding="utf-8")  # before trainers
    assert launch.configured_trainer(config) == "peft-lora"
    assert launch.child_command(config) == [sys.executable, "-m", "studio.train", str(config)]
    assert TrainSettings.from_dict({"learning_rate": 1e-4}).trainer == "peft-lora"  # an old run's settings


def test_a_plugin_trainer_runs_from_train_start_and_its_loss_events_are_stored(trainers, project_dir: Path,
                                                                               model: Path, capsys) -> None:
    code = start(project_dir, model, "--trainer", "tiny", "--json")
    out = capsys.readouterr().out
    assert code == 0, out
    with Project.open(project_dir) as project:
        run = project.training.get("r")
        assert run.status == "done" and run.last_step == 3 and run.settings.trainer == "tiny"
        assert json.loads(run.config_path.read_text())["settings"]["trainer"] == "tiny"
        events = read_all(run.events_path)
        assert [e["loss"] for e in events if e["type"] == "log"] == [4.0, 2.0, 4.0 / 3]
        assert json.loads((run.run_dir / "argv.json").read_text()) == [str(run.config_path), "--from-tiny-trainer"]
        assert launch.child_command(run.config_path)[1] == str(trainers)  # the panel's and resume's command too
    assert '"type": "done"' in out
    with Project.open(project_dir) as project, pytest.raises(StudioError, match="uses the trainer 'tiny'; an exported"):
        launch.export_job(project.training.get("r"), project_dir.parent / "job")


def test_the_trainer_setting_and_an_unknown_trainer(trainers, project_dir: Path, model: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        start(project_dir, model, "--trainer", "nope")  # argparse: the choices are the registry's keys
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    code = start(project_dir, model, "--set", "trainer=nope")
    err = capsys.readouterr().err
    assert code == 1 and "Unknown trainer 'nope'; known: peft-lora, tiny" in err
    with Project.open(project_dir) as project:
        assert project.training.list() == []  # refused before a run was made


def test_a_trainer_that_raises_or_answers_no_argv_names_its_plugin(trainers, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    with pytest.raises(PluginError, match=r"The plugin 'test-trainer' failed in its trainer 'broken'.*ZeroDivisionError"):
        launch.trainer_command(config, "broken")
    with pytest.raises(PluginError, match=r"trainer 'not-argv'.*must be a non-empty list of strings"):
        launch.trainer_command(config, "not-argv")
    assert any("ZeroDivisionError" in message for message in failures(SOURCE))
    config.write_text(json.dumps({"settings": {"trainer": "tiny"}}), encoding="utf-8")
    assert launch.child_command(config) == [sys.executable, str(trainers), str(config), "--from-tiny-trainer"]


# -- the Train panel: a plugin's trainer is imported and called on a worker --------------------------------
@pytest.fixture
def panel_on_project(qtbot, project: Project, tmp_path: Path):
    pytest.importorskip("pytestqt")
    from studio.ui.project_context import ProjectContext
    from studio.ui.train_panel import TrainPanel

    for i in range(6):
        project.samples.add(Sample(f"Instruction {i}.", "", f"Out {i}.", status=Status.ACCEPTED))
    project.snapshots.create("v1")
    base = tmp_path / "tiny-base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    context = ProjectContext(project)
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.set_context(context)
    qtbot.waitUntil(lambda: panel.snapshot.count() == 1, timeout=5_000)
    panel.base_model.setCurrentText(str(base))
    yield panel
    panel.shutdown()
    context.close()


@pytest.mark.parametrize("key", ["tiny", "broken"])
def test_the_train_panel_builds_a_plugin_trainers_command_on_a_worker(qtbot, trainers, panel_on_project,
                                                                      key: str) -> None:
    import threading

    panel = panel_on_project
    on_gui_thread: list[bool] = []

    def command(config_path: Path) -> list[str]:
        on_gui_thread.append(threading.current_thread() is threading.main_thread())
        return launch.trainer_command(config_path, key)

    panel.child_command = command
    panel.start_run()
    qtbot.waitUntil(lambda: bool(on_gui_thread), timeout=20_000)
    assert on_gui_thread == [False]
    if key == "tiny":
        qtbot.waitUntil(lambda: panel.live is not None and panel.live.status == "done", timeout=20_000)
    else:  # the plugin's exception is the start's failure, naming the plugin; the panel can start again
        qtbot.waitUntil(lambda: "did not start" in panel.messages.message(), timeout=20_000)
        assert "The plugin 'test-trainer' failed in its trainer 'broken'" in panel.messages.message()
        qtbot.waitUntil(lambda: panel._launching is None and not panel.jobs.is_busy("train-create"), timeout=5_000)
