"""`distill-studio train`: start/stop/resume a real job on the tiny model, errors, the pre-flight and
hardest-samples children (stand-ins here; their own tests cover the real ones), list, export and
import. Real training is kept to two tiny runs on one thread."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from studio.cli import main
from studio.core.curation import SampleQuery
from studio.core.project import Project
from studio.core.training import launch
from studio.core.training.events import read_all
from studio.core.training.settings import TrainSettings, setting_names

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "torch_threads=1", "--set", "per_device_train_batch_size=2", "--set",
        "gradient_accumulation_steps=1", "--set", "validation_fraction=0.2", "--set", "sample_prompts=1",
        "--set", "sample_max_new_tokens=8"]


def cli(project_dir: Path, *args: str) -> int:
    return main([*args, "--project", str(project_dir)])


def studio_process(project_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "studio", *args, "--project", str(project_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_help_lists_every_setting_with_its_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "start", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in setting_names():
        assert f"{name} = " in text
    assert "LoRA scaling: the update is multiplied by lora_alpha / lora_r." in text
    assert "alpaca-lora: tloen/alpaca-lora's defaults" in text


def test_unknown_setting_is_an_error_listing_the_known_ones(project_dir: Path, tmp_path: Path, capsys) -> None:
    code = cli(project_dir, "train", "start", "--snapshot", "s1", "--base-model", str(tmp_path),
               "--set", "learning_rat=1e-4")
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("error: unknown training setting 'learning_rat'; known settings: prompt_format,")
    assert "learning_rate" in err
    assert cli(project_dir, "train", "start", "--snapshot", "nope", "--base-model", str(tmp_path)) == 1
    assert "No snapshot 'nope'" in capsys.readouterr().err
    assert cli(project_dir, "train", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_folder_without_config_json_is_refused_before_a_run_exists(project_dir: Path, tmp_path: Path, capsys) -> None:
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    code = cli(project_dir, "train", "start", "--snapshot", "s1", "--base-model", str(not_a_model), "--name", "bad",
               "--max-steps", "2", *TINY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "not a model folder (it has no config.json)" in err[0]
    with Project.open(project_dir) as project:
        assert project.training.list() == []


def test_a_folder_that_is_no_model_gives_an_error_event_and_exit_1(project_dir: Path, tmp_path: Path, capsys) -> None:
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text("{}", encoding="utf-8")   # passes the check; the job finds out
    code = cli(project_dir, "train", "start", "--snapshot", "s1", "--base-model", str(not_a_model), "--name", "bad",
               "--max-steps", "2", *TINY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: ") and str(not_a_model) in err[-1]
    with Project.open(project_dir) as project:
        run = project.training.get("bad")
        assert run.status == "failed" and run.error and err[-1] == f"error: {run.error}"
        assert [e["type"] for e in read_all(run.events_path)][-1] == "error"


def test_start_stop_with_ctrl_c_then_resume_continues_the_steps(project_dir: Path, tiny_base: Path, capsys,
                                                                 default_sigint) -> None:
    start = studio_process(project_dir, "train", "start", "--snapshot", "s1", "--base-model", str(tiny_base),
                           "--name", "tiny", "--max-steps", "10", "--set", "save_steps=100", "--set", "eval_steps=0",
                           "--json", *TINY)
    assert start.stdout is not None
    stopped_at = None
    for line in start.stdout:
        event = json.loads(line)
        if event["type"] == "progress" and event["step"] >= 2 and stopped_at is None:
            start.send_signal(signal.SIGINT)  # what Ctrl-C does: the CLI asks the job to stop
            stopped_at = event["step"]
        if event["type"] == "stopped":
            stopped_at = event["step"]
    assert start.wait(timeout=300) == 0, start.stderr.read() if start.stderr else ""
    assert "Stopping at the next step" in (start.stderr.read() if start.stderr else "")
    with Project.open(project_dir) as project:
        run = project.training.get("tiny")
        assert run.status == "stopped" and run.last_step == stopped_at < 10 and run.has_adapter

    assert cli(project_dir, "train", "resume", "tiny") == 0
    out = capsys.readouterr().out
    assert "Done at step 10" in out and "over 2 legs (stopped and resumed)" in out   # loss and time: the whole run
    with Project.open(project_dir) as project:
        run = project.training.get("tiny")
        assert (run.status, run.last_step, run.max_steps) == ("done", 10, 10)
        steps = [e["step"] for e in read_all(run.events_path) if e["type"] == "progress"]
        logs = [e["step"] for e in read_all(run.events_path) if e["type"] == "log"]
    assert steps == list(range(1, 11)) and logs == list(range(1, 11))  # no step twice, none skipped

    assert cli(project_dir, "train", "list") == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split()[:4] == ["1", "tiny", "done", "10/10"]
    assert cli(project_dir, "train", "stop", "tiny") == 1
    assert "is not running (done)" in capsys.readouterr().err
    assert cli(project_dir, "train", "resume", "tiny") == 1        # a done run has nothing left to train
    assert "training run #1 tiny is done; nothing to resume" in capsys.readouterr().err
    assert cli(project_dir, "train", "show", "tiny") == 0
    shown = capsys.readouterr().out
    assert "Training run #1 tiny: done at step 10/10" in shown and "8 manual" in shown and "max_steps=10" in shown


def test_stop_touches_the_flag_of_a_running_job(project_dir: Path, tmp_path: Path, capsys) -> None:
    with Project.open(project_dir) as project:
        run = project.training.create(snapshot="s1", base_model="org/model", settings=TrainSettings())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # studio.train"])
    try:
        run.pid_path.write_text(str(child.pid))
        holder = Project.open(project_dir)  # `train start` holds the project meanwhile
        try:
            assert cli(project_dir, "train", "stop", str(run.id)) == 0
            assert run.stop_path.is_file() and "stop at its next step" in capsys.readouterr().out
            assert cli(project_dir, "train", "list", "--json") == 0  # read-only beside the holder
            assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [run.id]
        finally:
            holder.close()
    finally:
        child.kill()
        child.wait()


FAKE_PREFLIGHT = """
import json, sys
from studio.core.training.run_config import RunConfig
config = RunConfig.read(sys.argv[1])
report = {"base_model": config.base_model, "prompt_format": config.settings.prompt_format,
          "max_length": config.settings.max_length,
          "sample": {"sample_id": 1, "prompt_tokens": 1, "eos_ok": True, "tokens": [{"id": 1, "text": "### Response:", "masked": True},
                                                 {"id": 2, "text": "Word", "masked": False},
                                                 {"id": 3, "text": "</s>", "masked": False}]},
          "checks": [{"level": "ok", "code": "eos", "message": "every target ends in EOS"},
                     {"level": "error", "code": "pad", "message": "EOS is the pad token"}],
          "lengths": {"edges": [0, 10, 20], "counts": [3, 5], "p50": 9, "p95": 15, "max": 18,
                      "max_length": config.settings.max_length, "cut": 2, "samples": 8},
          "estimates": {"device": "cpu", "parameters": 5e5, "lora_parameters": 7e4,
                        "memory": {"total_gb": 1.5, "weights_gb": 1.0, "lora_and_optimizer_gb": 0.2,
                                   "activations_gb": 0.2, "overhead_gb": 0.1, "method": {"total": "the sum"}},
                        "time": {"seconds": 90, "steps": 10, "method": "6 N tokens at 1 TFLOP/s"}}}
print(json.dumps(report))
sys.exit(1)
"""

FAKE_HARDEST = """
import json, sys
from studio.core.training.run_config import RunConfig
config = RunConfig.read(sys.argv[1])
records = [json.loads(line) for line in open(config.data_path, encoding="utf-8")]
losses = {records[2]["sample_id"]: 9.0}
with open(config.dir / "hardest.jsonl", "w", encoding="utf-8") as f:
    for r in records:
        f.write(json.dumps({"sample_id": r["sample_id"], "loss": losses.get(r["sample_id"], 1.0 + r["sample_id"] / 100),
                            "tokens": 5, "instruction": r["instruction"]}) + "\\n")
print(json.dumps({"type": "progress", "phase": "hardest", "step": 1, "max_steps": 1, "time": 0}))
print(json.dumps({"type": "hardest", "count": len(records), "path": "x", "time": 0}))
(config.dir / "argv.json").write_text(json.dumps(sys.argv[2:]))
"""


@pytest.fixture
def fake_children(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "fakes"
    folder.mkdir()
    (folder / "fake_preflight.py").write_text(textwrap.dedent(FAKE_PREFLIGHT))
    (folder / "fake_hardest.py").write_text(textwrap.dedent(FAKE_HARDEST))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(REPO)]))
    monkeypatch.setattr(launch, "PREFLIGHT_MODULE", "fake_preflight")
    monkeypatch.setattr(launch, "HARDEST_MODULE", "fake_hardest")


def test_preflight_prints_the_childs_report(project_dir: Path, tmp_path: Path, fake_children, capsys) -> None:
    code = cli(project_dir, "train", "preflight", "--snapshot", "s1", "--base-model", str(tmp_path),
               "--preset", "alpaca-lora")
    out = capsys.readouterr().out
    assert code == 1  # the child found an error-level check
    assert "[### Response:]|Word||</s>|" in out and "ERROR   pad: EOS is the pad token" in out
    assert "max_length 256 cuts 2" in out and "memory 1.50 GB" in out and "for 10 steps" in out
    assert cli(project_dir, "train", "preflight", "--snapshot", "s1", "--base-model", str(tmp_path), "--json") == 1
    assert json.loads(capsys.readouterr().out)["lengths"]["max_length"] == 512
    with Project.open(project_dir) as project:
        assert project.training.list() == []  # a pre-flight creates no run
        run = project.training.create(snapshot="s1", base_model="org/model", settings=TrainSettings(max_length=64))
    assert cli(project_dir, "train", "preflight", str(run.id), "--json") == 1
    assert json.loads(capsys.readouterr().out)["lengths"]["max_length"] == 64
    assert cli(project_dir, "train", "preflight", str(run.id), "--set", "lora_r=4") == 1
    assert "RUN or the run options, not both (--set given)" in capsys.readouterr().err


def test_preflight_without_its_module_is_one_error_line(project_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(launch, "PREFLIGHT_MODULE", "no_such_preflight_module")
    assert cli(project_dir, "train", "preflight", "--snapshot", "s1", "--base-model", str(tmp_path)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the pre-flight check failed" in err and "no_such_preflight_module" in err


def test_hardest_scores_then_lists_worst_first(project_dir: Path, fake_children, capsys) -> None:
    with Project.open(project_dir) as project:
        run = project.training.create(snapshot="s1", base_model="org/model", settings=TrainSettings(), name="h")
        ids = [item.sample_id for item in project.snapshots.items("s1")]
    # Nothing to score yet: one clear line, before any "Scoring…", and no child started.
    assert cli(project_dir, "train", "hardest", "h") == 1
    err = capsys.readouterr().err
    assert "has no adapter and no checkpoint yet" in err and "--adapter DIR" in err and "Scoring" not in err
    assert not (run.run_dir / "argv.json").exists()
    elsewhere = project_dir / "other-adapter"
    elsewhere.mkdir()
    assert cli(project_dir, "train", "hardest", "h", "--adapter", str(elsewhere)) == 1
    assert "not a LoRA adapter" in capsys.readouterr().err
    (elsewhere / "adapter_config.json").write_text("{}")
    assert cli(project_dir, "train", "hardest", "h", "--adapter", str(elsewhere), "--top", "1") == 0
    assert json.loads((run.run_dir / "argv.json").read_text()) == ["--adapter", str(elsewhere)]
    capsys.readouterr()
    run.adapter_dir.mkdir()
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    assert cli(project_dir, "train", "hardest", "h", "--top", "3", "--json", "--rescore") == 0
    assert json.loads((run.run_dir / "argv.json").read_text()) == ["--adapter", str(run.adapter_dir)]
    rows = json.loads(capsys.readouterr().out)
    assert [r["sample_id"] for r in rows] == [ids[2], ids[7], ids[6]] and rows[0]["loss"] == 9.0
    assert rows[0]["instruction"] == "Say the word number 2."
    assert cli(project_dir, "train", "hardest", "h", "--top", "1") == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].split()[:3] == ["1", str(ids[2]), "9.0000"]
    with Project.open(project_dir) as project:
        assert project.curation.ids(SampleQuery(hardest_run=run.id))[0] == ids[2]
    assert cli(project_dir, "data", "list", "--hardest-run", "h", "--limit", "2") == 0
    assert [int(line.split()[0]) for line in capsys.readouterr().out.splitlines()] == [ids[2], ids[7]]
    assert cli(project_dir, "view", "save", "worst", "--hardest-run", str(run.id)) == 0
    assert cli(project_dir, "snapshot", "create", "worst-only", "--view", "worst") == 0
    with Project.open(project_dir) as project:
        assert project.snapshots.get("worst-only").sample_count == 8
    capsys.readouterr()
    assert cli(project_dir, "train", "delete", "h") == 0
    assert "Deleted training run #1 h" in capsys.readouterr().out and not run.run_dir.exists()
    assert cli(project_dir, "data", "list", "--hardest-run", "h") == 1
    assert "no training run 'h'" in capsys.readouterr().err


def test_export_job_and_import_run_from_the_command_line(project_dir: Path, tmp_path: Path, capsys) -> None:
    with Project.open(project_dir) as project:
        project.training.create(snapshot="s1", base_model="org/model", settings=TrainSettings(), name="far")
    job = tmp_path / "job"
    assert cli(project_dir, "train", "export-job", "far", str(job), "--gpus", "2") == 0
    assert (job / "launch.sh").is_file() and "./launch.sh 2" in capsys.readouterr().err
    assert cli(project_dir, "train", "import-run", str(job)) == 1
    assert "no events.jsonl" in capsys.readouterr().err
    (job / "events.jsonl").write_text(json.dumps({"type": "done", "step": 4, "time": 1.0}) + "\n")
    assert cli(project_dir, "train", "import-run", str(job)) == 0
    assert "Imported training run #2 far-imported-2: done at step 4" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None
                    or shutil.which("bash") is None, reason="needs torchrun and bash")
def test_an_exported_job_trains_from_its_own_folder_and_comes_back(project_dir: Path, tiny_base: Path,
                                                                   tmp_path: Path, capsys) -> None:
    with Project.open(project_dir) as project:
        settings = TrainSettings().with_overrides({"max_steps": 3, "torch_threads": 1, "eval_steps": 0,
                                                   "per_device_train_batch_size": 2, "sample_prompts": 1,
                                                   "sample_max_new_tokens": 4, "gradient_accumulation_steps": 1})
        project.training.create(snapshot="s1", base_model=str(tiny_base), settings=settings, name="away")
    job = tmp_path / "elsewhere" / "job"
    assert cli(project_dir, "train", "export-job", "away", str(job)) == 0
    # The far machine: no checkout of ours on the path, only the folder and a Python with the stack.
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHON": sys.executable, "BASE_MODEL": str(tiny_base), "OMP_NUM_THREADS": "1",
           "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", str(job / "launch.sh"), "1", "torchrun"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [json.loads(line)["type"] for line in done.stdout.splitlines()][-1] == "done"
    assert (job / "adapter" / "adapter_config.json").is_file()
    capsys.readouterr()
    assert cli(project_dir, "train", "import-run", str(job)) == 0
    assert "#2 away-imported-2: done at step 3/3, trained on snapshot 's1'" in capsys.readouterr().out
    with Project.open(project_dir) as project:
        run = project.training.get(2)
        assert run.has_adapter and run.snapshot_id == project.snapshots.get("s1").id


POLITE_JOB = """
import json, os, sys, time
from pathlib import Path
run_dir = Path(sys.argv[1])
(run_dir / "job.pid").write_text(str(os.getpid()))
step = 0
while not (run_dir / "stop.request").exists() and step < 600:
    time.sleep(0.05)
    step += 1
with open(run_dir / "events.jsonl", "a") as f:
    f.write(json.dumps({"type": "stopped", "step": step, "checkpoint": "c", "time": time.time()}) + "\\n")
(run_dir / "job.pid").unlink()
"""

STUCK_JOB = """
import json, os, sys, time
from pathlib import Path
run_dir = Path(sys.argv[1])
with open(run_dir / "events.jsonl", "a") as f:
    f.write(json.dumps({"type": "config", "time": time.time()}) + "\\n")
(run_dir / "job.pid").write_text(str(os.getpid()))
time.sleep(120)
"""


@pytest.mark.parametrize(("script", "options", "expected"), [
    (POLITE_JOB, ["--wait"], "stopped at step"),
    (STUCK_JOB, ["--kill-after", "0.5"], "did not stop within 0.5 s and was killed"),
])
def test_stop_waits_for_the_job_or_kills_it_after_a_timeout(project_dir: Path, tmp_path: Path, capsys,
                                                            script: str, options: list[str], expected: str) -> None:
    with Project.open(project_dir) as project:
        run = project.training.create(snapshot="s1", base_model="org/model", settings=TrainSettings())
    fake = tmp_path / "studio_fake_job.py"  # "studio" in its command line, like the real job's
    fake.write_text(textwrap.dedent(script))
    child = subprocess.Popen([sys.executable, str(fake), str(run.run_dir)])
    try:
        for _ in range(100):
            if launch.live_pid(run) is not None:
                break
            time.sleep(0.05)
        assert cli(project_dir, "train", "stop", str(run.id), *options) == 0
        assert expected in capsys.readouterr().out
        assert child.wait(timeout=20) is not None and launch.live_pid(run) is None
    finally:
        child.kill()
        child.wait()
    if "--kill-after" in options:
        with Project.open(project_dir) as project:  # the killed job's row: failed, resumable
            killed = project.training.sync(run.id)
            assert killed.status == "failed" and "Resume continues from the last checkpoint" in killed.error
