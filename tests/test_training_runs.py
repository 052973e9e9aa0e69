"""The run store: rows linked to snapshots, statuses from the job's events, hardest samples,
resume bookkeeping, the launcher's command and environment, export and import of jobs.
No training here: events are scripted; the real job is exercised in tests/test_train_cli.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.core import changes, db, schema
from studio.core.curation import SampleQuery
from studio.core.errors import StudioError
from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.core.training import launch
from studio.core.training.events import EventTail
from studio.core.training.run_config import RunConfig
from studio.core.training.runs import RUN_STATUSES, TrainingRunError
from studio.core.training.settings import SettingsError, TrainSettings, preset_settings


def add(project: Project, n: int) -> list[int]:
    return [project.samples.add(Sample(f"Instruction {i}.", f"in {i}" if i % 2 else "", f"Out {i}.",
                                       status=Status.ACCEPTED)) for i in range(n)]


@pytest.fixture
def snap(project: Project):
    add(project, 6)
    return project.snapshots.create("v1")


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-base"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


def append_events(path: Path, *events: dict, partial: str = "") -> None:
    with open(path, "a", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps({"time": time.time(), **event}) + "\n")
        handle.write(partial)


def test_create_writes_the_row_and_a_config_the_job_reads(project: Project, snap, base_dir: Path) -> None:
    seen: list[frozenset[str]] = []
    project.changes.subscribe(seen.append)
    settings = preset_settings("alpaca-lora").with_overrides({"max_steps": 7})
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=settings, name="first")
    assert seen == [frozenset({changes.TRAINING_RUNS})]
    assert (run.id, run.name, run.status, run.snapshot_id, run.snapshot_name) == (1, "first", "created", snap.id, "v1")
    assert run.run_dir == (project.root / "runs" / "1").resolve() and run.run_dir.is_absolute()
    assert run.max_steps == 7 and run.last_step == 0 and run.error == "" and not run.has_adapter
    config = RunConfig.read(run.config_path)
    assert config.run_dir == str(run.run_dir) and config.base_model == str(base_dir.resolve())
    assert Path(config.data_path).is_absolute() and Path(config.data_path) == (project.root / snap.path).resolve()
    assert config.snapshot_hash == snap.content_hash and config.settings == settings and not config.resume
    assert json.loads(run.config_path.read_text())["help"]["lora_r"]  # the help travels with the config
    assert project.training.get(1) == project.training.get("first") == project.training.get("1") == run
    assert project.training.for_snapshot(snap.id) == [run]
    second = project.training.create(snapshot=snap.id, base_model="org/model", settings=TrainSettings())
    assert second.name == "run-2" and second.base_model == "org/model"  # a hub id stays as given
    assert [r.id for r in project.training.list()] == [2, 1]  # newest first


def test_create_refuses_what_would_not_run(project: Project, snap, base_dir: Path) -> None:
    store = project.training
    with pytest.raises(StudioError, match="No snapshot 'nope'"):
        store.create(snapshot="nope", base_model=str(base_dir), settings=TrainSettings())
    bad = TrainSettings()
    bad.lora_r = 0
    with pytest.raises(SettingsError, match="lora_r must be at least 1"):
        store.create(snapshot="v1", base_model=str(base_dir), settings=bad)
    with pytest.raises(TrainingRunError, match="needs a base model"):
        store.create(snapshot="v1", base_model=" ", settings=TrainSettings())
    with pytest.raises(TrainingRunError, match="no such model folder"):
        store.create(snapshot="v1", base_model=str(base_dir / "missing"), settings=TrainSettings())
    # What the job would fail on at once is refused before a run (and a failed row) exists.
    no_config = base_dir.parent / "no-config"
    no_config.mkdir()
    with pytest.raises(TrainingRunError, match=r"not a model folder \(it has no config.json\)"):
        store.create(snapshot="v1", base_model=str(no_config), settings=TrainSettings())
    (no_config / "config.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(TrainingRunError, match=r"config.json: line 1: not valid JSON"):
        store.create(snapshot="v1", base_model=str(no_config), settings=TrainSettings())
    emptied = project.snapshots.create("emptied")
    (project.root / emptied.path).write_text("\n", encoding="utf-8")
    with pytest.raises(TrainingRunError, match="snapshot 'emptied' has no samples"):
        store.create(snapshot="emptied", base_model=str(base_dir), settings=TrainSettings())
    assert store.list() == []
    store.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings(), name="a")
    with pytest.raises(TrainingRunError, match="already exists"):
        store.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings(), name="a")
    with pytest.raises(TrainingRunError, match="cannot be a number"):
        store.rename("a", "12")
    with pytest.raises(TrainingRunError, match="no training run 'zzz'"):
        store.get("zzz")
    assert len(store.list()) == 1 and sorted(p.name for p in (project.root / "runs").iterdir()) == ["1"]


def test_statuses_follow_the_events_and_sync_tails_from_the_saved_offset(project: Project, snap, base_dir: Path) -> None:
    store = project.training
    run = store.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings())
    append_events(run.events_path, {"type": "config", "run_id": 1, "config": {}},
                  {"type": "progress", "step": 1, "max_steps": 10, "epoch": 0.1, "eta_s": 9},
                  partial='{"type": "log", "step": 2, "lo')  # a half-written line waits for the next read
    run = store.sync(1)
    assert (run.status, run.last_step, run.max_steps) == ("running", 1, 10)
    offset = store.events_offset(1)
    assert offset == len(run.events_path.read_bytes().rsplit(b"\n", 1)[0]) + 1
    with open(run.events_path, "a", encoding="utf-8") as handle:
        handle.write('ss": 1.5}\n')
    append_events(run.events_path, {"type": "checkpoint", "step": 4, "path": "x"},
                  {"type": "stopped", "step": 4, "checkpoint": "x"})
    run = store.sync(1)
    assert (run.status, run.last_step) == ("stopped", 4) and run.finished_at is not None
    assert store.events_offset(1) == run.events_path.stat().st_size
    # The same events again (stdout and file both fed in): a finished run stays finished.
    run = store.record_events(1, [{"type": "progress", "step": 3, "max_steps": 10, "time": run.finished_at - 1}])
    assert run.status == "stopped" and run.last_step == 4
    # A resumed job's events reopen it; its error ends it with the message and the hint.
    append_events(run.events_path, {"type": "config"}, {"type": "progress", "step": 5, "max_steps": 10},
                  {"type": "error", "message": "CUDA out of memory", "hint": "lower per_device_train_batch_size",
                   "kind": "oom"})
    run = store.sync(1)
    assert run.status == "failed" and run.error == "CUDA out of memory — lower per_device_train_batch_size"
    append_events(run.events_path, {"type": "config"})
    assert store.sync(1).status == "running" and store.get(1).error == ""
    append_events(run.events_path, {"type": "done", "step": 10, "adapter": "a", "train_loss": 1.0, "runtime_s": 3})
    run = store.sync(1)
    assert (run.status, run.last_step) == ("done", 10) and run.status in RUN_STATUSES


def test_sync_never_rereads_the_file(project: Project, snap, base_dir: Path, monkeypatch) -> None:
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings())
    append_events(run.events_path, *({"type": "log", "step": n, "loss": 1.0} for n in range(500)))
    project.training.sync(1)
    offsets: list[int] = []
    original = EventTail.read_new

    def spy(self, max_bytes: int = 8 << 20):
        offsets.append(self.offset)
        return original(self, max_bytes)

    monkeypatch.setattr(EventTail, "read_new", spy)
    append_events(run.events_path, {"type": "log", "step": 500, "loss": 1.0})
    assert project.training.sync(1).last_step == 500
    assert offsets[0] > 0 and offsets[0] == project.training.events_offset(1) - len(
        run.events_path.read_bytes().splitlines()[-1]) - 1


def test_a_replaced_events_file_is_read_again(project: Project, snap, base_dir: Path) -> None:
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings())
    append_events(run.events_path, *({"type": "log", "step": n, "loss": 1.0} for n in range(1, 50)))
    assert project.training.sync(1).last_step == 49
    run.events_path.write_text("")
    append_events(run.events_path, {"type": "config"}, {"type": "stopped", "step": 3, "checkpoint": "c"})
    assert (project.training.sync(1).status, project.training.get(1).last_step) == ("stopped", 3)


def test_a_job_that_died_silently_is_marked_failed(project: Project, snap, base_dir: Path) -> None:
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings())
    append_events(run.events_path, {"type": "config"}, {"type": "progress", "step": 2, "max_steps": 9})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # studio"])
    try:
        run.pid_path.write_text(str(child.pid))
        assert launch.live_pid(run) == child.pid
        assert project.training.sync(1).status == "running"
        with pytest.raises(TrainingRunError, match="still running"):
            project.training.delete(1)
        with pytest.raises(TrainingRunError, match="still running"):
            project.training.prepare_resume(1)
    finally:
        child.kill()
        child.wait()
    assert launch.live_pid(run) is None
    run = project.training.sync(1)
    assert run.status == "failed" and "Resume continues" in run.error


def test_live_pid_ignores_another_programs_pid(project: Project, snap, base_dir: Path) -> None:
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings())
    assert launch.live_pid(run) is None
    run.pid_path.write_text(str(os.getpid()))  # pytest's process: alive, but not a studio job
    if Path("/proc/self/cmdline").exists() and b"studio" not in Path("/proc/self/cmdline").read_bytes():
        assert launch.live_pid(run) is None
    run.pid_path.write_text("garbage")
    assert launch.live_pid(run) is None


def test_prepare_resume_sets_resume_and_clears_the_stop_request(project: Project, snap, base_dir: Path) -> None:
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings(), name="r")
    launch.request_stop(run)
    assert run.stop_path.is_file()
    append_events(run.events_path, {"type": "stopped", "step": 3, "checkpoint": "c"})
    project.training.sync("r")
    resumed = project.training.prepare_resume("r")
    assert RunConfig.read(resumed.config_path).resume and not run.stop_path.exists()
    assert resumed.status == "stopped" and resumed.last_step == 3
    append_events(run.events_path, {"type": "config", "run_id": run.id}, {"type": "done", "step": 5})
    assert project.training.sync("r").status == "done"
    with pytest.raises(TrainingRunError, match=r"training run #\d+ r is done; nothing to resume"):
        project.training.prepare_resume("r")


def test_rename_and_delete(project: Project, snap, base_dir: Path) -> None:
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings())
    project.training.rename(run.id, "better")
    assert project.training.get("better").id == run.id and RunConfig.read(run.config_path).run_name == "better"
    (run.run_dir / "hardest.jsonl").write_text('{"sample_id": 1, "loss": 2.0}\n')
    project.training.import_hardest(run.id)
    project.training.delete("better")
    assert not run.run_dir.exists() and project.training.list() == []
    assert project.conn.execute("SELECT COUNT(*) FROM training_sample_losses").fetchone()[0] == 0
    assert list((project.root / "runs").iterdir()) == []


def test_hardest_samples_are_stored_ranked_and_filter_curate(project: Project, snap, base_dir: Path) -> None:
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings())
    ids = [item.sample_id for item in project.snapshots.items("v1")]
    losses = {ids[0]: 0.5, ids[1]: 4.0, ids[2]: 1.5, ids[3]: 4.0}
    lines = [json.dumps({"sample_id": sid, "loss": loss, "tokens": 9, "instruction": "x"}) for sid, loss in losses.items()]
    run.hardest_path.write_text("\n".join([*lines, json.dumps({"sample_id": None, "loss": 9.0})]) + "\n")
    assert project.training.import_hardest(run.id) == 4
    assert project.training.hardest(run.id) == [(ids[1], 4.0), (ids[3], 4.0), (ids[2], 1.5), (ids[0], 0.5)]
    assert project.training.hardest(run.id, top=2) == [(ids[1], 4.0), (ids[3], 4.0)]
    query = SampleQuery(hardest_run=run.id)
    assert project.curation.count(query) == 4
    assert project.curation.ids(query) == [ids[1], ids[3], ids[2], ids[0]]  # worst first
    assert [row[0] for row in project.curation.page(query, 0, 2)] == [ids[1], ids[3]]
    assert project.curation.ids(SampleQuery(hardest_run=run.id, sort="loss")) == [ids[0], ids[2], ids[1], ids[3]]
    assert project.curation.ids(SampleQuery(hardest_run=run.id, sort="output_words", descending=True))  # other sorts work
    assert SampleQuery.from_json(query.to_json()) == query  # a saved view keeps it
    # A re-score replaces the old scores; a broken file is refused whole.
    run.hardest_path.write_text(json.dumps({"sample_id": ids[4], "loss": 2.0}) + "\n")
    assert project.training.import_hardest(run.id) == 1 and project.training.hardest(run.id) == [(ids[4], 2.0)]
    run.hardest_path.write_text("not json\n")
    with pytest.raises(TrainingRunError, match="line 1"):
        project.training.import_hardest(run.id)
    assert project.training.hardest(run.id) == [(ids[4], 2.0)]


def test_v5_project_migrates_to_v6(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "old.sqlite"
    conn = db.connect(path)
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:5])
        patch.setattr(schema, "LATEST_VERSION", 5)
        schema.migrate(conn, path)
    conn.execute("INSERT INTO training_runs (base_model, run_dir, created_at, updated_at) VALUES ('m', 'runs/1', 0, 0)")
    conn.commit()
    assert schema.migrate(conn, path) == list(range(6, schema.LATEST_VERSION + 1))
    row = conn.execute("SELECT error, last_step, max_steps, events_offset FROM training_runs").fetchone()
    assert tuple(row) == ("", 0, None, 0)
    assert (tmp_path / "old.sqlite.v5.bak").is_file()


def test_child_command_and_environment() -> None:
    config = Path("/x/runs/1/config.json")
    assert launch.child_command(config) == [sys.executable, "-m", "studio.train", str(config)]
    assert launch.preflight_command(config) == [sys.executable, "-m", "studio.train.preflight", str(config), "--json"]
    assert launch.hardest_command(config) == [sys.executable, "-m", "studio.train.hardest", str(config)]
    settings = TrainSettings()
    settings.torch_threads = 1
    env = launch.child_env(settings, {"PYTHONPATH": "/elsewhere", "KEEP": "1"})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1" and env["KEEP"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1" and env["TOKENIZERS_PARALLELISM"] == "false"
    assert env["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    root = str(Path(launch.__file__).resolve().parents[3])
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]
    assert "OMP_NUM_THREADS" not in launch.child_env(TrainSettings(), {})  # 0: the library's default
    # The command finds `studio` from any folder.
    out = subprocess.run([sys.executable, "-c", "import studio.core.training.settings as s; print(s.__name__)"],
                         env=launch.child_env(settings, {"PATH": os.environ.get("PATH", "")}), cwd="/",
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "studio.core.training.settings"


def test_export_job_is_self_contained_and_import_brings_the_run_back(project: Project, snap, base_dir: Path,
                                                                     tmp_path: Path) -> None:
    settings = preset_settings("alpaca").with_overrides({"max_steps": 5})
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=settings, name="away")
    target = launch.export_job(run, tmp_path / "job", gpus=4)
    names = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert {"config.json", "data/train.jsonl", "launch.sh", "job.sbatch", "README.txt", "requirements.txt",
            "code/studio/train/data.py", "code/studio/core/training/settings.py",
            "code/resources/templates/alpaca.json"} <= names
    assert not any(name.startswith("code/studio/ui/") for name in names)
    assert (target / "data/train.jsonl").read_bytes() == (project.root / snap.path).read_bytes()
    config = json.loads((target / "config.json").read_text())
    assert (config["run_dir"], config["data_path"], config["resume"]) == (".", "data/train.jsonl", False)
    assert config["settings"] == settings.to_dict()
    launch_sh = (target / "launch.sh").read_text()
    assert "torchrun --standalone --nproc_per_node \"$GPUS\" -m studio.train config.json" in launch_sh
    assert "accelerate launch $MULTI --num_processes \"$GPUS\" -m studio.train config.json" in launch_sh
    assert 'GPUS="${1:-${GPUS:-4}}"' in launch_sh and os.access(target / "launch.sh", os.X_OK)
    sbatch = (target / "job.sbatch").read_text()
    assert "#SBATCH --gpus-per-node=4" in sbatch and "./launch.sh 4 torchrun" in sbatch
    assert "BASE_MODEL=" in (target / "README.txt").read_text()  # the local base folder does not travel
    assert (target / "requirements.txt").read_text().endswith("safetensors>=0.4\n")
    subprocess.run(["bash", "-n", str(target / "launch.sh")], check=True)
    # The exported code reads its config from the folder: the job's own imports work there.
    check = subprocess.run(
        [sys.executable, "-c", "from studio.core.training.run_config import RunConfig;"
         "from studio.core.training.prompt_format import render_prompt;"
         "c = RunConfig.read('config.json'); print(c.settings.max_steps, render_prompt('alpaca', 'Hi')[-13:])"],
        cwd=target, env={"PYTHONPATH": str(target / "code"), "PATH": os.environ.get("PATH", "")},
        capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "5 ### Response:"
    with pytest.raises(StudioError, match="not empty"):
        launch.export_job(run, target)

    # Nothing trained yet: refused. Then as if it had run on the far side.
    with pytest.raises(StudioError, match="no events.jsonl with events"):
        launch.import_run(project, target)
    append_events(target / "events.jsonl", {"type": "config"}, {"type": "progress", "step": 5, "max_steps": 5},
                  {"type": "done", "step": 5, "adapter": "adapter", "train_loss": 1.2, "runtime_s": 60})
    (target / "adapter").mkdir()
    (target / "adapter" / "adapter_config.json").write_text("{}")
    (target / "job.pid").write_text(str(os.getpid()))  # a far machine's pid means nothing here
    imported = launch.import_run(project, target)
    assert (imported.id, imported.name, imported.status, imported.last_step) == (2, "away-imported-2", "done", 5)
    assert imported.snapshot_id == snap.id and imported.has_adapter and not imported.pid_path.exists()
    assert not (imported.run_dir / "code").exists()
    back = RunConfig.read(imported.config_path)
    assert back.run_dir == str(imported.run_dir) and back.data_path == str((project.root / snap.path).resolve())
    assert [r.id for r in project.training.for_snapshot(snap.id)] == [2, 1]  # lineage: snapshot -> both runs
    # The same folder again is refused, naming the run it became; the marker keeps the far side's id.
    marker = json.loads((imported.run_dir / "imported.json").read_text())
    assert (marker["original_run_id"], marker["run_id"], marker["source"]) == (run.id, 2, str(target))
    with pytest.raises(StudioError, match=r"already imported as training run #2 away-imported-2"):
        launch.import_run(project, target)
    assert len(project.training.list()) == 2


def test_import_without_the_local_snapshot_keeps_its_data(project: Project, snap, base_dir: Path, tmp_path: Path) -> None:
    run = project.training.create(snapshot="v1", base_model="org/model", settings=TrainSettings())
    target = launch.export_job(run, tmp_path / "job")
    config = json.loads((target / "config.json").read_text())
    config["snapshot_hash"] = "elsewhere"
    (target / "config.json").write_text(json.dumps(config))
    append_events(target / "events.jsonl", {"type": "error", "message": "no GPU", "hint": ""})
    imported = launch.import_run(project, target)
    assert imported.snapshot_id is None and imported.snapshot_name == "v1" and imported.status == "failed"
    assert Path(RunConfig.read(imported.config_path).data_path) == imported.run_dir / "data" / "train.jsonl"
    assert "Base model: org/model" in (target / "README.txt").read_text()


def test_lineage_goes_from_seed_tasks_through_samples_and_snapshot_to_the_run(project: Project, base_dir: Path) -> None:
    from studio.core.samples import Origin

    gen = project.generation.create_run(name="g", mode="alpaca", teacher_model="teacher-x", base_url="http://t",
                                        config={}, prompt_template="")
    for i in range(4):
        project.samples.add(Sample(f"Generated {i}.", "", f"Answer {i}.", status=Status.ACCEPTED,
                                   origin=Origin.GENERATED, run_id=gen, seed_ids=[i % 3 + 1, 7]))
    doomed = project.samples.add(Sample("Imported.", "", "Yes.", status=Status.ACCEPTED, origin=Origin.IMPORTED))
    project.snapshots.create("mixed")
    run = project.training.create(snapshot="mixed", base_model=str(base_dir), settings=TrainSettings())
    project.curation.delete([doomed])
    lineage = project.training.lineage(run.id)
    assert lineage["snapshot"]["name"] == "mixed" and lineage["snapshot"]["sample_count"] == 5
    assert lineage["origins"] == {"generated": 4} and lineage["missing"] == 1
    assert lineage["generation_runs"] == [{"id": gen, "teacher_model": "teacher-x", "samples": 4}]
    assert lineage["seed_tasks"] == 4  # seeds 1, 2, 3 and 7


def test_export_with_the_model_and_import_of_a_job_copied_mid_run(project: Project, snap, base_dir: Path,
                                                                   tmp_path: Path) -> None:
    run = project.training.create(snapshot="v1", base_model=str(base_dir), settings=TrainSettings())
    target = launch.export_job(run, tmp_path / "job", include_model=True)
    assert (target / "base_model" / "config.json").is_file()
    assert json.loads((target / "config.json").read_text())["base_model"] == "base_model"
    assert "Base model: base_model" in (target / "README.txt").read_text()
    append_events(target / "events.jsonl", {"type": "config"}, {"type": "progress", "step": 2, "max_steps": 9})
    imported = launch.import_run(project, target)
    assert imported.status == "failed" and "had not ended" in imported.error and imported.last_step == 2
    assert RunConfig.read(imported.config_path).base_model == str(imported.run_dir / "base_model")
