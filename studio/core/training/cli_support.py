"""The ``distill-studio train`` commands' bodies: start/resume a job and follow it, the pre-flight
report, stop, list, hardest samples, export and import of jobs.

Kept beside the run store (not in ``studio/cli.py``) so the CLI module stays cheap to import.
The job is a child process (``python -m studio.train``) in its own process group: Ctrl-C here
asks it to stop through the stop file (it checkpoints first) instead of killing it mid-step.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from studio.core.errors import ProjectLockedError, StudioError
from studio.core.project import Project
from studio.core.training import events as ev
from studio.core.training import launch
from studio.core.training.runs import DONE, RUNNING, STOPPED, TrainingRun
from studio.core.wording import format_duration
from studio.core.training.settings import (
    PRESETS,
    TrainSettings,
    help_by_name,
    parse_assignments,
    preset_settings,
    setting_groups,
    setting_meta,
)

EXIT_OK, EXIT_ERROR = 0, 1
SYNC_EVERY_S = 0.5           # how often a followed job's events file is folded into the store
KILL_AFTER_S = 30.0          # a second Ctrl-C: terminate, then kill after this long


# -- --help -----------------------------------------------------------------------------------
def settings_epilog() -> str:
    """Every setting with its default and help, by group, then the presets: ``train start --help``."""
    lines = ["settings (--set KEY=VALUE; the names of the saved config.json):"]
    helps = help_by_name()
    for group, names in setting_groups().items():
        lines.append(f"  {group}:")
        for name in names:
            meta = setting_meta(name)
            default = meta["default"]
            shown = ",".join(default) if isinstance(default, list) else default
            choices = f" [{'|'.join(meta['choices'])}]" if meta.get("choices") else ""
            lines.append(f"    {name} = {shown}{choices}")
            lines.extend(textwrap.wrap(helps[name], 96, initial_indent=" " * 8, subsequent_indent=" " * 8))
    lines.append("presets (--preset NAME):")
    for preset in PRESETS.values():
        lines.extend(textwrap.wrap(f"{preset.name}: {preset.description}", 96, initial_indent="  ",
                                   subsequent_indent="    "))
    return "\n".join(lines)


# -- settings from the command line ------------------------------------------------------------
def settings_from_args(args: argparse.Namespace, base: TrainSettings | None = None) -> TrainSettings:
    """Preset, then --format and --max-steps, then every --set (later wins); validated."""
    settings = base if base is not None else preset_settings(getattr(args, "preset", None))
    overrides: dict[str, Any] = {}
    if getattr(args, "format", None):
        overrides["prompt_format"] = args.format
    if getattr(args, "max_steps", None) is not None:
        overrides["max_steps"] = args.max_steps
    if getattr(args, "trainer", None):
        overrides["trainer"] = args.trainer
    overrides.update(parse_assignments(getattr(args, "set", None) or []))
    return settings.with_overrides(overrides) if overrides else settings


# -- start, resume, follow ----------------------------------------------------------------------
def cmd_start(project: Project, args: argparse.Namespace) -> int:
    if not args.snapshot or not args.base_model:
        raise StudioError("train start needs --snapshot NAME and --base-model PATH")
    settings = settings_from_args(args)
    run = project.training.create(snapshot=args.snapshot, base_model=args.base_model, settings=settings,
                                  name=args.name or "")
    _say(f"Created training run {run.label} in {run.run_dir}")
    return follow(project, run, as_json=args.json)


def cmd_resume(project: Project, args: argparse.Namespace) -> int:
    run = project.training.sync(args.run)
    if run.status == RUNNING:
        raise StudioError(f"training run {run.label} is still running; `train stop {run.id}` first")
    if run.status == "done":
        raise StudioError(f"training run {run.label} is done; nothing to resume (start a new run to train more)")
    run = project.training.prepare_resume(run.id)
    _say(f"Resuming training run {run.label} from its newest checkpoint (step {run.last_step})")
    return follow(project, run, as_json=args.json)


def follow(project: Project, run: TrainingRun, *, as_json: bool = False, out: TextIO | None = None) -> int:
    """Run the job for ``run``, print its events as they come, keep the store in step.

    Exit status 0 when the job ends ``done`` or ``stopped``, 1 with the job's error on stderr.
    """
    out = out or sys.stdout
    store = project.training
    command = launch.child_command(run.config_path)
    env = launch.child_env(run.settings)
    stderr_path = run.stderr_path
    extra: dict[str, Any] = {}
    if os.name == "nt":  # pragma: no cover - Windows: no Ctrl-C for the child either
        extra["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        extra["start_new_session"] = True
    with open(stderr_path, "ab") as stderr:
        try:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env, **extra)
        except OSError as exc:
            store.record_events(run.id, [_error_event(f"cannot start the training job ({exc})",
                                                      f"check the Python at {sys.executable}")])
            raise StudioError(f"cannot start the training job: {exc}") from None
        printer = EventPrinter(out, as_json=as_json)
        interrupts = 0
        previous = _sigterm_as_interrupt()
        last_sync = 0.0
        assert child.stdout is not None
        while True:
            try:
                raw = child.stdout.readline()
                if not raw:
                    break
                printer.line(raw.decode("utf-8", "replace"))
                if time.monotonic() - last_sync >= SYNC_EVERY_S:
                    store.sync(run.id)
                    last_sync = time.monotonic()
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts == 1:
                    launch.request_stop(run)
                    _say("Stopping at the next step (it saves a checkpoint and the adapter first); "
                         "Ctrl-C again to kill the job.")
                else:
                    _say("Killing the training job.")
                    _terminate(child)
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:
                _terminate(child)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    final = store.sync(run.id)
    if final.status == RUNNING:  # it exited without a final event: a crash the store must know of
        lines = launch.stderr_tail(run).splitlines()
        detail = lines[-1].strip()[:300] if lines else f"exit status {code}"
        final = store.record_events(run.id, [_error_event(
            f"the training job ended without a final event ({detail})", f"its stderr is in {stderr_path}")])
    if final.status in (DONE, STOPPED):
        if final.status == STOPPED and not as_json:
            _say(f"Resume with: distill-studio train resume {final.id}")
        return EXIT_OK
    _say(f"error: {final.error or 'the training job failed'}")
    return EXIT_ERROR


def _sigterm_as_interrupt():
    """A ``kill`` of this command stops the job like Ctrl-C (it runs in a session of its own)."""
    if os.name == "nt" or threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _terminate(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(timeout=KILL_AFTER_S)
    except subprocess.TimeoutExpired:
        child.kill()


def _error_event(message: str, hint: str = "") -> dict[str, Any]:
    return {"type": ev.ERROR, "time": time.time(), "message": message, "hint": hint, "kind": "launch"}


class EventPrinter:
    """Events as readable one-liners (or the raw JSON lines with ``as_json``)."""

    def __init__(self, out: TextIO, *, as_json: bool = False) -> None:
        self.out, self.as_json = out, as_json
        self.max_steps: int | None = None
        self.eta_s: float | None = None

    def line(self, text: str) -> None:
        event = ev.parse_line(text)
        if event is None:
            if text.strip():
                print(text.rstrip("\n"), file=sys.stderr)  # a stray print of a library
            return
        if self.as_json:
            print(json.dumps(event, ensure_ascii=False), file=self.out, flush=True)
            return
        message = self.describe(event)
        if message:
            print(message, file=self.out, flush=True)

    def describe(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        step = event.get("step")
        if kind == ev.CONFIG:
            device = event.get("device")
            if isinstance(device, dict):
                device = device.get("name") or device.get("type")
            where = " on the CPU" if device == "cpu" else (f" on {device}" if device else "")
            return f"Training run {event.get('run_id', '?')}{where}"
        if kind == ev.PROGRESS:
            if isinstance(event.get("max_steps"), int):
                self.max_steps = event["max_steps"]
            self.eta_s = event.get("eta_s")
            return None  # every step; the log lines carry the step and the ETA
        if kind == ev.LOG:
            parts = [f"step {_of(step, self.max_steps)}"]
            for key, label, fmt in (("loss", "loss", "{:.4f}"), ("learning_rate", "lr", "{:.2e}"),
                                    ("grad_norm", "grad", "{:.3f}"), ("tokens_per_s", "tok/s", "{:,.0f}"),
                                    ("gpu_memory_gb", "GPU GB", "{:.1f}")):
                value = event.get(key)
                if isinstance(value, (int, float)):
                    parts.append(f"{label} {fmt.format(value)}")
            if isinstance(self.eta_s, (int, float)):
                parts.append(f"ETA {format_duration(self.eta_s)}")
            return "  ".join(parts)
        if kind == ev.EVAL:
            value = event.get("eval_loss")
            return f"step {_of(step, self.max_steps)}  eval loss {value:.4f}" if isinstance(value, (int, float)) else None
        if kind == ev.SAMPLES:
            lines = [f"step {_of(step, self.max_steps)}  sample answers:"]
            for sample in event.get("samples") or []:
                question = _short(sample.get("instruction", ""), 60)
                lines.append(f"  Q: {question}\n  A: {_short(sample.get('answer', ''), 160)}")
            return "\n".join(lines)
        if kind == ev.CHECKPOINT:
            return f"step {_of(step, self.max_steps)}  checkpoint {event.get('path', '')}"
        if kind == ev.STOPPED:
            return f"Stopped at step {step}; checkpoint {event.get('checkpoint', '')}"
        if kind == ev.DONE:
            loss = event.get("train_loss")
            loss_text = f", train loss {loss:.4f}" if isinstance(loss, (int, float)) else ""
            runtime = event.get("runtime_s")
            took = f" in {format_duration(runtime)}" if isinstance(runtime, (int, float)) else ""
            legs = event.get("legs")
            over = f" over {legs} legs (stopped and resumed)" if isinstance(legs, int) and legs > 1 else ""
            return f"Done at step {step}{loss_text}{took}{over}; adapter in {event.get('adapter', '')}"
        if kind == ev.ERROR:
            return None  # said once, on stderr, when the job has ended
        if kind == ev.HARDEST:
            return f"Scored {event.get('count', 0):,} samples: {event.get('path', '')}"
        return None


def _of(step: Any, total: int | None) -> str:
    return f"{step}/{total}" if total else f"{step}"


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- pre-flight --------------------------------------------------------------------------------
def cmd_preflight(project: Project, args: argparse.Namespace) -> int:
    """The pre-flight report for a run (RUN) or for the run the options would start."""
    if args.run:
        given = [flag for flag, value in (("--snapshot", args.snapshot), ("--base-model", args.base_model),
                                          ("--preset", args.preset), ("--format", args.format),
                                          ("--max-steps", args.max_steps), ("--set", args.set)) if value]
        if given:
            raise StudioError(f"train preflight takes RUN or the run options, not both ({', '.join(given)} given); "
                              "a run's settings are in its config.json")
        run = project.training.get(args.run)
        with tempfile.TemporaryDirectory(prefix="preflight-") as folder:
            return _preflight(launch.write_run_preflight_config(project, run, Path(folder)), run.settings,
                              as_json=args.json)
    if not args.snapshot or not args.base_model:
        raise StudioError("train preflight needs RUN, or --snapshot NAME and --base-model PATH")
    settings = settings_from_args(args)
    with tempfile.TemporaryDirectory(prefix="preflight-") as folder:
        config_path = launch.write_preflight_config(project, args.snapshot, args.base_model, settings, Path(folder),
                                                    name=args.name or "preflight")
        return _preflight(config_path, settings, as_json=args.json)


def _preflight(config_path: Path, settings: TrainSettings, *, as_json: bool) -> int:
    done = subprocess.run(launch.preflight_command(config_path), capture_output=True,
                          env=launch.child_env(settings))
    text = done.stdout.decode("utf-8", "replace")
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        detail = _last_text_line(done.stderr.decode("utf-8", "replace")) or _last_text_line(text)
        raise StudioError(f"the pre-flight check failed: {detail or f'exit status {done.returncode}'}")
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        from studio.train.preflight import format_text  # torch-free; the child's own wording

        print(format_text(report))
    return EXIT_OK if done.returncode == 0 else EXIT_ERROR


def _last_text_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# -- stop, list ------------------------------------------------------------------------------
def cmd_stop(project: Project, args: argparse.Namespace) -> int:
    run = project.training.get(args.run)
    if launch.live_pid(run) is None and run.status != RUNNING:
        raise StudioError(f"training run {run.label} is not running ({run.status})")
    wait = None if args.wait else 0.0
    if args.wait or args.kill_after is not None:
        _say(f"Asked training run {run.label} to stop; waiting for it to save a checkpoint and its adapter…")
    outcome = launch.stop_job(run, wait_s=wait, kill_after_s=args.kill_after)
    if outcome == "not running":  # it ended a moment ago, or the row says running for a job gone elsewhere
        launch.request_stop(run)
        outcome = "requested"
    if outcome == "requested":
        print(f"Asked training run {run.label} to stop at its next step; it saves a checkpoint and its adapter first.")
        return EXIT_OK
    if outcome == "killed":
        print(f"Training run {run.label} did not stop within {args.kill_after:g} s and was killed; "
              "its last checkpoint is kept (Resume continues from it).")
        return EXIT_OK
    # The command that started the job holds the project and records the end; read it from the file.
    tail = ev.EventTail(run.events_path, project.training.events_offset(run.id))
    new_events = []
    while batch := tail.read_new():
        new_events.extend(batch)
    final = ev.final_event(new_events)
    if final is None or final.get("type") == ev.ERROR:
        detail = f": {final.get('message')}" if final else " without a final event"
        print(f"Training run {run.label} ended{detail}.")
        return EXIT_ERROR
    print(f"Training run {run.label} {final['type']} at step {final.get('step')}.")
    return EXIT_OK


def run_json(run: TrainingRun) -> dict[str, Any]:
    return {
        "id": run.id, "name": run.name, "status": run.status, "last_step": run.last_step,
        "max_steps": run.max_steps, "snapshot_id": run.snapshot_id, "snapshot": run.snapshot_name,
        "base_model": run.base_model, "created_at": run.created_at, "finished_at": run.finished_at,
        "error": run.error, "run_dir": str(run.run_dir), "has_adapter": run.has_adapter,
        "settings": run.settings.to_dict(),
    }


def cmd_list(project: Project, args: argparse.Namespace, *, synced: bool) -> int:
    runs = [project.training.sync(r.id) for r in project.training.list()] if synced else project.training.list()
    if args.json:
        print(json.dumps([run_json(r) for r in runs], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not runs:
        print("No training runs yet; start one with `distill-studio train start --snapshot NAME --base-model PATH`.",
              file=sys.stderr)
        return EXIT_OK
    print(f"{'id':>4}  {'name':<20} {'status':<8} {'step':>11}  {'snapshot':<16} {'base model':<28} created")
    for r in runs:
        created = datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M")
        print(f"{r.id:>4}  {_short(r.name, 20):<20} {r.status:<8} {_of(r.last_step, r.max_steps):>11}  "
              f"{_short(r.snapshot_name, 16):<16} {_short(_model_name(r.base_model), 28):<28} {created}")
    return EXIT_OK


def cmd_show(project: Project, args: argparse.Namespace, *, synced: bool) -> int:
    """One run: status, where it is, what it was trained on (lineage) and how (settings)."""
    run = project.training.sync(args.run) if synced else project.training.get(args.run)
    lineage = project.training.lineage(run.id)
    if args.json:
        print(json.dumps({**run_json(run), "lineage": lineage}, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"Training run {run.label}: {run.status} at step {_of(run.last_step, run.max_steps)}")
    if run.error:
        print(f"  error: {run.error}")
    print(f"  folder      {run.run_dir}{'' if run.has_adapter else ' (no adapter yet)'}")
    print(f"  base model  {run.base_model}")
    snap = lineage["snapshot"]
    if snap is None:
        print(f"  snapshot    {run.snapshot_name or '?'} (not in this project)")
    else:
        print(f"  snapshot    {snap['name']} (#{snap['id']}, {snap['sample_count']:,} samples, "
              f"hash {snap['content_hash'][:16]})")
        origins = ", ".join(f"{count:,} {origin}" for origin, count in lineage["origins"].items()) or "none"
        print(f"  samples     {origins}" + (f"; {lineage['missing']:,} since deleted" if lineage["missing"] else ""))
        for generated in lineage["generation_runs"]:
            print(f"    generation run #{generated['id']} ({generated['teacher_model'] or 'teacher ?'}): "
                  f"{generated['samples']:,} samples")
        if lineage["seed_tasks"]:
            print(f"  seed tasks  {lineage['seed_tasks']:,} prompted the generated samples")
    defaults = TrainSettings().to_dict()
    changed = {k: v for k, v in run.settings.to_dict().items() if defaults.get(k) != v}
    print("  settings    " + (", ".join(f"{k}={v}" for k, v in changed.items()) or "the defaults"))
    return EXIT_OK


def _model_name(base_model: str) -> str:
    path = Path(base_model)
    return path.name if path.is_absolute() else base_model


# -- hardest samples -------------------------------------------------------------------------------
def cmd_hardest(project: Project, args: argparse.Namespace) -> int:
    run = project.training.get(args.run)
    if args.rescore or not run.hardest_path.is_file() or getattr(args, "adapter", None):
        _score(run, launch.scoring_adapter(run, Path(args.adapter) if getattr(args, "adapter", None) else None))
    count = project.training.import_hardest(run.id)
    top = project.training.hardest(run.id, top=args.top)
    instructions = _instructions(run.hardest_path)
    if args.json:
        print(json.dumps([{"rank": n, "sample_id": sid, "loss": loss, "instruction": instructions.get(sid, "")}
                          for n, (sid, loss) in enumerate(top, 1)], ensure_ascii=False, indent=2))
    else:
        for n, (sid, loss) in enumerate(top, 1):
            print(f"{n:>4}  {sid:>7}  {loss:8.4f}  {_short(instructions.get(sid, ''), 90)}")
        _say(f"{count:,} samples scored under run {run.label}, worst first; all of them: "
             f"`distill-studio data list --hardest-run {run.id}`, or Hardest samples in the Train panel")
    return EXIT_OK


def _score(run: TrainingRun, adapter: Path) -> None:
    """Run the hardest-samples child; its progress goes to stderr, a failure is one error line."""
    _say(f"Scoring every training sample under run {run.label}'s adapter ({adapter})…")
    done = subprocess.run(launch.hardest_command(run.config_path, adapter), capture_output=True,
                          env=launch.child_env(run.settings))
    error = None
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        event = ev.parse_line(line)
        if event is not None and event.get("type") == ev.ERROR:
            error = str(event.get("message") or "")
            if event.get("hint"):
                error += f" — {event['hint']}"
    if done.returncode != 0 or error:
        detail = error or _last_text_line(done.stderr.decode("utf-8", "replace")) or f"exit status {done.returncode}"
        raise StudioError(f"scoring the samples failed: {detail}")


def _instructions(path: Path) -> dict[int, str]:
    found: dict[int, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("sample_id"), int):
            found[record["sample_id"]] = str(record.get("instruction") or "")
    return found


# -- run elsewhere -----------------------------------------------------------------------------------
def cmd_export_job(project: Project, args: argparse.Namespace) -> int:
    run = project.training.refuse_eval_prompts(args.run)  # the far side trains on what the folder holds
    target = launch.export_job(run, args.dir, gpus=args.gpus, include_model=args.include_model)
    print(f"Wrote the job for run {run.label} to {target}.")
    _say(f"There: ./launch.sh {args.gpus} (or sbatch job.sbatch); then copy the folder back and "
         f"`distill-studio train import-run {target.name}`.")
    return EXIT_OK


def cmd_import_run(project: Project, args: argparse.Namespace) -> int:
    run = launch.import_run(project, args.dir)
    linked = f"snapshot {run.snapshot_name!r}" if run.snapshot_id is not None else \
        f"its own copy of snapshot {run.snapshot_name!r} (not in this project)"
    print(f"Imported training run {run.label}: {run.status} at step {_of(run.last_step, run.max_steps)}, "
          f"trained on {linked}{'' if run.has_adapter else '; no adapter came back'}.")
    return EXIT_OK


def open_for_list(opener) -> tuple[Project, bool]:
    """The project with its lock when free (statuses are synced first), else read-only as recorded."""
    try:
        return opener(exclusive=True), True
    except ProjectLockedError:
        return opener(exclusive=False), False


def _say(message: str) -> None:
    print(" ".join(message.split("\n")), file=sys.stderr)


__all__ = [
    "EventPrinter",
    "cmd_export_job",
    "cmd_hardest",
    "cmd_import_run",
    "cmd_list",
    "cmd_preflight",
    "cmd_resume",
    "cmd_start",
    "cmd_stop",
    "follow",
    "settings_epilog",
    "settings_from_args",
]
