"""A run's resolved config: the one JSON file ``python -m studio.train CONFIG.json`` reads.

It names everything the child needs and nothing it must look up in the project database,
so the same file runs on a rented multi-GPU box (``train export-job``) as it does here.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.formats import atomic_write_text
from studio.core.training.settings import SettingsError, TrainSettings, help_by_name

CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
STOP_FILE = "stop.request"        # its presence asks the job to checkpoint and stop
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
TOKENIZER_DIR = "tokenizer"
HARDEST_FILE = "hardest.jsonl"
PID_FILE = "job.pid"              # written by the job at start, removed at exit
STDERR_FILE = "stderr.log"        # the job's stderr (warnings, a traceback) beside its events
PROVENANCE_FILE = "provenance.json"


class RunFolder:
    """Where a run's files live in its folder: one layout for the job, the run store and the panel."""

    @property
    def folder(self) -> Path:
        raise NotImplementedError

    @property
    def events_path(self) -> Path:
        return self.folder / EVENTS_FILE

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_FILE

    @property
    def stop_path(self) -> Path:
        return self.folder / STOP_FILE

    @property
    def pid_path(self) -> Path:
        return self.folder / PID_FILE

    @property
    def stderr_path(self) -> Path:
        return self.folder / STDERR_FILE

    @property
    def adapter_dir(self) -> Path:
        return self.folder / ADAPTER_DIR

    @property
    def hardest_path(self) -> Path:
        return self.folder / HARDEST_FILE


class RunConfigError(StudioError):
    """A config file cannot be read or is incomplete."""


@dataclass
class RunConfig(RunFolder):
    run_id: int | str
    run_name: str
    run_dir: str                       # absolute; checkpoints/, adapter/, events.jsonl go here
    base_model: str                    # a local folder or a Hugging Face hub id
    data_path: str                     # snapshot JSONL: {"sample_id", "instruction", "input", "output"} per line
    snapshot_hash: str = ""
    snapshot_name: str = ""
    base_model_revision: str | None = None
    resume: bool = False               # continue from the newest checkpoint in run_dir
    settings: TrainSettings = field(default_factory=TrainSettings)
    # Pre-flight checks only the project can make (the child never opens its database), e.g.
    # evaluation prompts in the snapshot; the parent fills them, the check reports them first.
    project_checks: list[dict[str, str]] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return Path(self.run_dir)

    @property
    def folder(self) -> Path:
        return self.dir

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = self.settings.to_dict()
        if not self.project_checks:  # a run's own config never carries them
            data.pop("project_checks")
        data["help"] = help_by_name()
        return data

    def write(self, path: Path | None = None) -> Path:
        target = path or self.dir / CONFIG_FILE
        atomic_write_text(target, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return target

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        data.pop("help", None)
        missing = [key for key in ("run_id", "run_dir", "base_model", "data_path") if not data.get(key)]
        if missing:
            raise RunConfigError(f"the config lacks {', '.join(missing)}")
        try:
            settings = TrainSettings.from_dict(data.pop("settings", {}) or {})
            return cls(settings=settings, **{k: v for k, v in data.items() if k in _FIELDS})
        except SettingsError:
            raise
        except TypeError as exc:
            raise RunConfigError(f"the config is malformed: {exc}") from None

    @classmethod
    def read(cls, path: Path | str) -> RunConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RunConfigError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise RunConfigError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise RunConfigError(f"{path}: the config must be a JSON object")
        return cls.from_dict(data)


_FIELDS = {"run_id", "run_name", "run_dir", "base_model", "data_path", "snapshot_hash", "snapshot_name",
           "base_model_revision", "resume", "project_checks"}
