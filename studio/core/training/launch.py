"""Starting, stopping and finding training jobs, and moving them to another machine.

The job is ``python -m studio.train CONFIG.json``, a child process; the panel starts it with
QProcess, the CLI with ``subprocess``, a rented GPU box with ``torchrun``/``accelerate launch``
(``export_job``). All three get the command and environment from here. Stop is a flag file the
job checks every step (it works the same on Windows); the job writes ``job.pid`` while it runs,
so a restarted app can tell a live job from a dead one. No torch, no Qt.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import studio
from studio.core.processes import pid_alive, python_child_env
from studio.core.errors import StudioError
from studio.core.formats import atomic_write_text
from studio.core.paths import resources_dir
from studio.core.training import events as ev
from studio.core.training.run_config import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EVENTS_FILE,
    PID_FILE,
    STOP_FILE,
    RunConfig,
    RunConfigError,
    RunFolder,
)
from studio.core.training.runs import RUNS_DIR, TrainingRun
from studio.core.training.settings import DEFAULT_TRAINER, TrainSettings

if TYPE_CHECKING:
    from studio.core.project import Project

TRAIN_MODULE = "studio.train"
PREFLIGHT_MODULE = "studio.train.preflight"
HARDEST_MODULE = "studio.train.hardest"
IMPORT_MARKER = "imported.json"     # in an imported run's folder: the far side's run id and the source
EXPORT_DATA = "data/train.jsonl"
EXPORT_CODE = "code"
# What a machine needs to run an exported job (the versions this project is tested with).
EXPORT_REQUIREMENTS = ("torch>=2.3", "transformers>=5.0", "peft>=0.15", "accelerate>=1.0", "trl>=1.0",
                       "datasets>=3.0", "safetensors>=0.4")


# -- the child's command line and environment ------------------------------------------------
def child_command(config_path: Path, *, module: str = TRAIN_MODULE) -> list[str]:
    """The training job's argv: the run's trainer's command (``TRAINERS``), for the job module.

    Other modules (pre-flight, hardest) are ``[python, -m, MODULE, CONFIG]`` with this interpreter.
    """
    if module == TRAIN_MODULE:
        return trainer_command(config_path)
    return [sys.executable, "-m", module, str(config_path)]


def peft_lora_command(config_path: Path) -> list[str]:
    """The built-in trainer ``peft-lora``: ``[python, -m, studio.train, CONFIG]`` (the app's own environment)."""
    return [sys.executable, "-m", TRAIN_MODULE, str(config_path)]


def trainer_command(config_path: Path, trainer: str | None = None) -> list[str]:
    """The argv of ``trainer`` (default: the one the config's settings name) for the run at ``config_path``.

    A plugin trainer's code is imported here, on first use, and called at the registry boundary:
    its exception, or an answer that is not a list of strings, is an error naming the plugin.
    """
    from studio.core.registry import TRAINERS

    key = trainer or configured_trainer(config_path)
    build = TRAINERS.load(key)
    with TRAINERS.guard(key, f"building the command for {config_path}"):
        argv = build(Path(config_path))
        if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, (str, Path)) for a in argv):
            raise TypeError(f"its command must be a non-empty list of strings, not {argv!r}")
    return [str(part) for part in argv]


def configured_trainer(config_path: Path) -> str:
    """The trainer a config's settings name; ``peft-lora`` for one without (or a file not yet written)."""
    try:
        settings = json.loads(Path(config_path).read_text(encoding="utf-8")).get("settings") or {}
    except (OSError, ValueError, AttributeError):
        return DEFAULT_TRAINER
    trainer = settings.get("trainer") if isinstance(settings, dict) else None
    return trainer if isinstance(trainer, str) and trainer else DEFAULT_TRAINER


def preflight_command(config_path: Path) -> list[str]:
    """The pre-flight check as a child: it loads the tokenizer, which the GUI process must not."""
    return [*child_command(config_path, module=PREFLIGHT_MODULE), "--json"]


def hardest_command(config_path: Path, adapter: Path | None = None) -> list[str]:
    """Per-sample losses under the run's adapter (or ``adapter``), written to ``hardest.jsonl``."""
    command = child_command(config_path, module=HARDEST_MODULE)
    return [*command, "--adapter", str(adapter)] if adapter is not None else command


def scoring_adapter(run: TrainingRun, adapter: Path | None = None) -> Path:
    """The adapter ``train hardest`` would score under: ``adapter``, the run's, or its newest checkpoint's.

    Checked here, before the child starts, so a run with nothing to score says so at once.
    """
    if adapter is not None:
        adapter = Path(adapter).expanduser().absolute()
        if not (adapter / "adapter_config.json").is_file():
            raise StudioError(f"{adapter}: not a LoRA adapter (it has no adapter_config.json); "
                              "name an adapter/ or checkpoint-N folder")
        return adapter
    if run.has_adapter:
        return run.adapter_dir
    checkpoints = [p for p in (run.run_dir / CHECKPOINTS_DIR).glob("checkpoint-*")
                   if p.name[11:].isdigit() and (p / "adapter_config.json").is_file()]
    if checkpoints:
        return max(checkpoints, key=lambda p: int(p.name[11:]))
    raise StudioError(f"training run {run.label} has no adapter and no checkpoint yet; train it first "
                      "(or name one with --adapter DIR)")


def child_env(settings: TrainSettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a training child: unbuffered lines, quiet libraries, our threads.

    ``torch_threads`` > 0 caps OpenMP/MKL (a busy 2-core machine otherwise runs 40× slower);
    progress bars are off because their carriage returns are not events; ``PYTHONPATH``
    names the folder holding ``studio`` so a child started from any folder finds it.
    """
    return python_child_env(settings.torch_threads, base)


# -- stop and liveness ------------------------------------------------------------------------
def request_stop(run: TrainingRun) -> None:
    """Ask the job to checkpoint and stop at its next step (a flag file: works on every OS)."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    run.stop_path.write_text(f"{time.time():.3f}\n", encoding="utf-8")


def stop_job(run: TrainingRun, *, wait_s: float | None = 0.0, kill_after_s: float | None = None,
             poll_s: float = 0.2) -> str:
    """Ask the job to stop; wait up to ``wait_s`` (None: as long as it takes) for it to end.

    With ``kill_after_s`` a job still alive after that long is killed outright (the stop
    file is the polite way; a job stuck in a step, or a hung GPU, needs the other). Returns
    what happened: ``"ended"``, ``"killed"``, ``"requested"`` (still running) or
    ``"not running"``.
    """
    pid = live_pid(run)
    if pid is None:
        return "not running"
    request_stop(run)
    limit = kill_after_s if kill_after_s is not None else wait_s
    start = time.monotonic()
    while live_pid(run) is not None:
        waited = time.monotonic() - start
        if limit is not None and waited >= limit:
            if kill_after_s is None:
                return "requested"
            _kill(pid)
            end = time.monotonic() + 10.0
            while live_pid(run) is not None and time.monotonic() < end:
                time.sleep(poll_s)
            return "killed"
        time.sleep(poll_s)
    return "ended"


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # Windows: SIGTERM is TerminateProcess
    except (ProcessLookupError, PermissionError, OSError):
        pass


def write_preflight_config(project: Project, snapshot: int | str, base_model: str, settings: TrainSettings,
                           folder: Path, *, name: str = "preflight") -> Path:
    """A throwaway config naming the snapshot's data, so a pre-flight check needs no run row.

    It carries the checks only the project can make (evaluation prompts in the training split,
    ``studio.core.evaluation.guard.preflight_checks``); blocking: call off the GUI thread.
    """
    from studio.core.evaluation.guard import preflight_checks

    snap = project.snapshots.get(snapshot)
    base = Path(base_model).expanduser()
    config = RunConfig(run_id="preflight", run_name=name, run_dir=str(folder),
                       base_model=str(base.resolve()) if base.exists() else base_model,
                       data_path=str((project.root / snap.path).resolve()), snapshot_hash=snap.content_hash,
                       snapshot_name=snap.name, settings=settings,
                       project_checks=preflight_checks(project.conn, snap.id, settings))
    return config.write()


def write_run_preflight_config(project: Project, run: TrainingRun, folder: Path) -> Path:
    """A stored run's config for its pre-flight check: the run's own file when the project has nothing
    to add, else a copy in ``folder`` with the project's checks (the run's file is never changed)."""
    from studio.core.evaluation.guard import preflight_checks

    checks = preflight_checks(project.conn, run.snapshot_id, run.settings)
    if not checks:
        return run.config_path
    config = run.read_config()
    config.project_checks = checks
    return config.write(Path(folder) / CONFIG_FILE)


def stderr_tail(run: RunFolder, limit: int = 4096) -> str:
    """The end of the job's stderr (its last warning or traceback), read from the end of the file."""
    try:
        with open(run.stderr_path, "rb") as handle:
            handle.seek(max(0, run.stderr_path.stat().st_size - limit))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def live_pid(run: TrainingRun) -> int | None:
    """The job's pid from ``<run_dir>/job.pid`` if that process is alive, else None.

    The job removes the file when it exits; one left by a killed job names a dead (or, on
    Linux, another program's) process, which is not taken for the job.
    """
    try:
        pid = int(run.pid_path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid, command_contains=b"studio") else None  # a reused pid is another program


# -- run elsewhere -------------------------------------------------------------------------------
def export_job(run: TrainingRun, target: Path, *, gpus: int = 1, include_model: bool = False) -> Path:
    """A self-contained folder that trains ``run`` on another machine; returns the folder.

    It holds a copy of the snapshot data, the resolved config with paths relative to the
    folder, the job's own code (``code/studio``, no GUI), ``launch.sh`` (torchrun, accelerate
    launch or plain python on N GPUs), ``job.sbatch`` for SLURM and a README. With
    ``include_model`` a local base model folder is copied too; otherwise the far side names
    its own copy with ``BASE_MODEL=...``. Copy the folder back and ``train import-run`` it.
    """
    if gpus < 1:
        raise StudioError(f"--gpus must be at least 1, not {gpus}")
    if run.settings.trainer != DEFAULT_TRAINER:  # the folder carries the studio's own job code, not a plugin's
        raise StudioError(f"training run {run.label} uses the trainer {run.settings.trainer!r}; an exported job "
                          f"runs only {DEFAULT_TRAINER!r} (install that trainer's plugin on the other machine instead)")
    target = Path(target).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StudioError(f"{target}: the folder exists and is not empty; name a new folder")
    config = run.read_config()
    data = Path(config.data_path)
    if not data.is_file():
        raise StudioError(f"{data}: the run's snapshot data is missing; it cannot be exported")
    base_model, base_is_local = config.base_model, Path(config.base_model).is_dir()
    work = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        (work / EXPORT_DATA).parent.mkdir(parents=True)
        shutil.copyfile(data, work / EXPORT_DATA)
        if include_model and base_is_local:
            shutil.copytree(base_model, work / "base_model", ignore=shutil.ignore_patterns(".cache"))
            base_model = "base_model"
        _copy_code(work / EXPORT_CODE)
        exported = RunConfig(
            run_id=config.run_id, run_name=config.run_name, run_dir=".", base_model=base_model,
            data_path=EXPORT_DATA, snapshot_hash=config.snapshot_hash, snapshot_name=config.snapshot_name,
            base_model_revision=config.base_model_revision, resume=False, settings=config.settings,
        )
        exported.write(work / CONFIG_FILE)
        _write_script(work / "launch.sh", _launch_sh(gpus))
        _write_script(work / "job.sbatch", _sbatch(run, gpus))
        (work / "requirements.txt").write_text("\n".join(EXPORT_REQUIREMENTS) + "\n", encoding="utf-8")
        (work / "README.txt").write_text(
            _readme(run, gpus, base_model if not base_is_local or include_model else None, config.base_model),
            encoding="utf-8")
        if target.exists():
            target.rmdir()
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def import_run(project: Project, source: Path) -> TrainingRun:
    """A run trained elsewhere (an ``export_job`` folder copied back) as a run of this project.

    The folder must hold ``config.json`` and ``events.jsonl``; ``adapter/``, checkpoints and
    the tokenizer come along when present. The run links to the local snapshot with the same
    content hash, when there is one, and otherwise keeps its own copy of the data.
    """
    source = Path(source).expanduser().absolute()
    if not source.is_dir():
        raise StudioError(f"{source}: not a folder; give the folder the job ran in")
    if not (source / CONFIG_FILE).is_file():
        raise StudioError(f"{source}: no {CONFIG_FILE}; this is not a training job folder")
    events = ev.read_all(source / EVENTS_FILE)
    if not events:
        raise StudioError(f"{source}: no {EVENTS_FILE} with events; the job has not run there yet "
                          "(copy the folder back after it trained)")
    try:
        config = RunConfig.read(source / CONFIG_FILE)
    except RunConfigError as exc:
        raise StudioError(str(exc)) from None
    store = project.training
    first_time = next((e["time"] for e in events if isinstance(e.get("time"), (int, float))), None)
    identity = {"original_run_id": config.run_id, "snapshot_hash": config.snapshot_hash,
                "first_event_time": first_time}
    for existing in store.list():
        marker = _read_marker(existing.run_dir / IMPORT_MARKER)
        if marker is not None and all(marker.get(k) == v for k, v in identity.items()):
            raise StudioError(f"{source}: this job was already imported as training run {existing.label}; "
                              f"delete that run (`distill-studio train delete {existing.id}`) to import it again")
    snapshot_id, local_data = None, None
    if config.snapshot_hash:
        row = project.conn.execute("SELECT id, path FROM snapshots WHERE content_hash = ? ORDER BY id LIMIT 1",
                                   (config.snapshot_hash,)).fetchone()
        if row is not None:
            snapshot_id, local_data = row[0], (project.root / row[1]).resolve()
    run_id = store.next_id()
    runs = project.root / RUNS_DIR
    final = runs / str(run_id)
    work = runs / f".import-{run_id}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(EXPORT_CODE, "__pycache__", PID_FILE, STOP_FILE,
                                                                   IMPORT_MARKER))
        config.run_id = run_id
        config.run_dir = str(final.resolve())
        config.resume = False
        if local_data is not None:
            config.data_path = str(local_data)
        else:
            data = Path(config.data_path)
            config.data_path = str((final / data).resolve()) if not data.is_absolute() else str(data)
        base = Path(config.base_model)
        if not base.is_absolute() and (source / base).is_dir():
            config.base_model = str((final / base).resolve())
        # The far side's run id (in its config event) and where it came from: a second import is refused.
        atomic_write_text(work / IMPORT_MARKER, json.dumps(
            {**identity, "run_id": run_id, "source": str(source), "imported_at": time.time()}, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    created = first_time if first_time is not None else time.time()
    try:
        store.insert_imported(config, snapshot_id=snapshot_id, status="created", created_at=float(created))
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    run = store.sync(run_id)
    if run.status == "running":  # copied back mid-run: nothing here will ever finish it
        run = store.record_events(run_id, [{
            "type": ev.ERROR, "time": time.time(), "kind": "incomplete",
            "message": "the job had not ended when its folder was copied back (no final event)",
            "hint": (f"once the job has finished, delete this run (`distill-studio train delete {run_id}`) and "
                     "import the folder again, or Resume here from its last checkpoint"),
        }])
    return run


def _read_marker(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _copy_code(target: Path) -> None:
    """The job's code without the GUI: the ``studio`` package and the prompt templates."""
    package = Path(studio.__file__).resolve().parent
    shutil.copytree(package, target / "studio",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "ui", "resources"))
    shutil.copytree(resources_dir() / "templates", target / "resources" / "templates")


def _write_script(path: Path, text: str) -> None:
    atomic_write_text(path, text)
    path.chmod(0o755)


def _launch_sh(gpus: int) -> str:
    return f"""#!/usr/bin/env bash
# Train this job: ./launch.sh [GPUS] [torchrun|accelerate|python]   (default: {gpus} GPU(s), torchrun)
# BASE_MODEL=/path/or/hub-id overrides the base model; RESUME=1 continues from the newest checkpoint.
# Stop with a checkpoint: touch stop.request (the job checks it every step).
set -euo pipefail
cd "$(dirname "$0")"
GPUS="${{1:-${{GPUS:-{gpus}}}}}"
LAUNCHER="${{2:-${{LAUNCHER:-torchrun}}}}"
PYTHON="${{PYTHON:-python3}}"
export PYTHONPATH="$PWD/{EXPORT_CODE}${{PYTHONPATH:+:$PYTHONPATH}}"
export PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8 TOKENIZERS_PARALLELISM=false
export HF_HUB_DISABLE_PROGRESS_BARS=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1
if [ -n "${{BASE_MODEL:-}}" ] || [ "${{RESUME:-0}}" = "1" ]; then
  "$PYTHON" - <<'EOF'
import json, os
with open("{CONFIG_FILE}", encoding="utf-8") as f:
    config = json.load(f)
if os.environ.get("BASE_MODEL"):
    config["base_model"] = os.environ["BASE_MODEL"]
if os.environ.get("RESUME") == "1":
    config["resume"] = True
with open("{CONFIG_FILE}", "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, ensure_ascii=False)
EOF
fi
case "$LAUNCHER" in
  torchrun)
    exec torchrun --standalone --nproc_per_node "$GPUS" -m {TRAIN_MODULE} {CONFIG_FILE} ;;
  accelerate)
    if [ "$GPUS" -gt 1 ]; then MULTI=--multi_gpu; else MULTI=; fi
    exec accelerate launch $MULTI --num_processes "$GPUS" -m {TRAIN_MODULE} {CONFIG_FILE} ;;
  python)
    exec "$PYTHON" -m {TRAIN_MODULE} {CONFIG_FILE} ;;
  *)
    echo "launch.sh: unknown launcher '$LAUNCHER'; use torchrun, accelerate or python" >&2; exit 2 ;;
esac
"""


def _sbatch(run: TrainingRun, gpus: int) -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"distill-{run.name or run.id}")
    return f"""#!/bin/bash
# Submit from this folder: sbatch job.sbatch   (then: tail -f events.jsonl)
#SBATCH --job-name={name}
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --cpus-per-task={max(4, 8 * gpus)}
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
cd "${{SLURM_SUBMIT_DIR:-$PWD}}"
srun --ntasks=1 ./launch.sh {gpus} torchrun
"""


def _readme(run: TrainingRun, gpus: int, portable_base: str | None, base_model: str) -> str:
    base_line = (f"Base model: {portable_base}" if portable_base is not None else
                 f"Base model: {base_model} is a folder on the machine that exported this job. Give this\n"
                 "machine's copy (a folder or a Hugging Face hub id) when launching:\n"
                 "    BASE_MODEL=/path/to/model ./launch.sh")
    return f"""Distill Studio training job: run {run.label} (snapshot {run.snapshot_name!r})

Everything the job needs is in this folder:
  config.json       the resolved run config (paths relative to this folder)
  data/train.jsonl  a copy of the snapshot it trains on
  code/             the training job's code (python -m {TRAIN_MODULE}; no GUI)
  launch.sh         torchrun / accelerate launch / python on N GPUs
  job.sbatch        the same under SLURM (sbatch job.sbatch, from this folder)
  requirements.txt  what the Python environment needs: pip install -r requirements.txt

{base_line}

Run on {gpus} GPU(s):
    ./launch.sh {gpus}               # torchrun --nproc_per_node {gpus}
    ./launch.sh {gpus} accelerate    # accelerate launch --num_processes {gpus}
Watch it: tail -f events.jsonl (one JSON event per line). Stop with a checkpoint:
touch stop.request. Continue after a stop: RESUME=1 ./launch.sh {gpus}.

Bring the result home: copy this whole folder back (events.jsonl, adapter/, tokenizer/,
checkpoints/ are written here), then
    distill-studio train import-run FOLDER
and the run shows in the Train panel like a local one.
"""


__all__ = [
    "child_command",
    "configured_trainer",
    "peft_lora_command",
    "trainer_command",
    "child_env",
    "export_job",
    "hardest_command",
    "scoring_adapter",
    "import_run",
    "live_pid",
    "preflight_command",
    "request_stop",
    "stop_job",
]
