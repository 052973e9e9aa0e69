"""Which models a studio server offers: one base model and the LoRA adapters trained on it.

The catalog is computed from the project's training runs, so the server, the Chat panel and
the CLI agree on names. A run's model id is its name (``run-3`` or what the user called it);
the base model's id is its folder or hub name. Each model carries the prompt format its run
was trained with, so the server renders chat exactly as training did.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from studio.core.errors import StudioError

if TYPE_CHECKING:
    from studio.core.project import Project
    from studio.core.training.runs import TrainingRun

BASE, ADAPTER = "base", "adapter"
BASE_ALIAS = "base"  # clients may always ask for the base model by this id


class CatalogError(StudioError):
    """No model to serve, or the requested runs cannot share one base model."""


@dataclass(frozen=True)
class ServedModel:
    id: str                        # the `model` field a client sends
    kind: str                      # BASE or ADAPTER
    parent: str | None             # the base model's id, for adapters
    prompt_format: str             # the format the run was trained with; the base's default below
    adapter_path: str | None = None
    run_id: int | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "parent": self.parent, "prompt_format": self.prompt_format,
                "adapter_path": self.adapter_path, "run_id": self.run_id}

    @classmethod
    def from_dict(cls, data: dict) -> ServedModel:
        return cls(id=data["id"], kind=data["kind"], parent=data.get("parent"),
                   prompt_format=data.get("prompt_format") or "alpaca", adapter_path=data.get("adapter_path"),
                   run_id=data.get("run_id"))


@dataclass(frozen=True)
class Catalog:
    base_model: str                               # a local folder (never downloaded by the server)
    models: tuple[ServedModel, ...]               # the base first, then adapters in run order
    skipped: tuple[str, ...] = field(default=())  # why a run is not offered ("run-2 was trained on X")

    @property
    def base(self) -> ServedModel:
        return self.models[0]

    @property
    def adapters(self) -> tuple[ServedModel, ...]:
        return self.models[1:]

    def ids(self) -> list[str]:
        return [model.id for model in self.models]

    def find(self, model_id: str) -> ServedModel | None:
        """The model a request names; ``base`` always means the base model."""
        if model_id == BASE_ALIAS:
            return self.base
        return next((model for model in self.models if model.id == model_id), None)

    def to_dict(self) -> dict:
        return {"base_model": self.base_model, "models": [m.to_dict() for m in self.models],
                "skipped": list(self.skipped)}

    @classmethod
    def from_dict(cls, data: dict) -> Catalog:
        return cls(base_model=data["base_model"], models=tuple(ServedModel.from_dict(m) for m in data["models"]),
                   skipped=tuple(data.get("skipped", ())))


def base_model_id(base_model: str) -> str:
    """A readable id for a base model: a hub id as is, a folder by its name."""
    path = Path(base_model)
    return path.name if path.is_absolute() or path.exists() else base_model


def run_model_id(run: TrainingRun) -> str:
    """The id a run's adapter is served under (its name, else ``run-<id>``)."""
    return run.name or f"run-{run.id}"


def no_adapter_hint(run: TrainingRun) -> str:
    """What to do about a run without an adapter: a stopped or failed run is resumed, any other trained."""
    from studio.core.training.runs import FAILED, STOPPED

    if run.status in (STOPPED, FAILED):
        return f"resume it (distill-studio train resume {run.id}) or train it"
    return "train it first"


def adapter_model(model_id: str, adapter_path: Path | str, parent: str, prompt_format: str | None = None) -> ServedModel:
    """An adapter folder loaded at run time: its prompt format and run id from the run's ``config.json``
    beside it (``runs/<id>/adapter`` → ``runs/<id>/config.json``), else ``alpaca`` and none."""
    from studio.core.training.run_config import RunConfig, RunConfigError
    from studio.core.training.settings import SettingsError

    path = Path(adapter_path).resolve()
    try:
        config = RunConfig.read(path.parent / "config.json")
        run_format, run_id = config.settings.prompt_format, config.run_id
    except (RunConfigError, SettingsError):
        run_format, run_id = "alpaca", None
    return ServedModel(id=model_id, kind=ADAPTER, parent=parent, prompt_format=prompt_format or run_format,
                       adapter_path=str(path), run_id=run_id if isinstance(run_id, int) else None)


def local_base_folder(base_model: str) -> str:
    """The base model's folder on this machine; a hub id must already be in the cache."""
    from studio.core.training.base_models import HUB, BaseModelError, resolve

    try:
        info = resolve(base_model)
    except BaseModelError as exc:  # e.g. the folder it was trained on has moved
        raise CatalogError(f"{str(exc).rstrip('.')}; if it has moved, give --base-model PATH") from None
    if info.source == HUB:
        raise CatalogError(f"{base_model} is not on this machine (neither a folder nor in the Hugging Face "
                           "cache); the server never downloads — train on it once or give --base-model PATH")
    return str(Path(info.path_or_id).resolve())


def base_default_format(base_folder: str, adapters: Iterable[ServedModel]) -> str:
    """How the untrained base is prompted: its chat template if it has one, else the students' format."""
    from studio.core.training.base_models import model_has_chat_template

    if model_has_chat_template(Path(base_folder)):
        return "chat"
    return next((model.prompt_format for model in adapters), "alpaca")


def build_catalog(runs: Iterable[TrainingRun], *, base_model: str | None = None,
                  only: Iterable[int | str] | None = None) -> Catalog:
    """The base model and every run with an adapter trained on it.

    ``base_model`` picks the base (default: the newest run's base); ``only`` restricts to the
    named runs (ids or names), which must then all share that base. Runs on another base are
    listed in ``skipped`` with the reason.
    """
    runs = [run for run in runs]
    wanted = {str(key) for key in only} if only is not None else None
    chosen = [run for run in runs if wanted is None or str(run.id) in wanted or run.name in wanted]
    if wanted is not None:
        found = {str(run.id) for run in chosen} | {run.name for run in chosen}
        unknown = sorted(wanted - found)
        if unknown:
            raise CatalogError(f"no training run named {', '.join(unknown)}")
        without = [run for run in chosen if not run.has_adapter]
        if without:
            raise CatalogError("; ".join(f"{run.label} has no adapter yet: {no_adapter_hint(run)}" for run in without))
    with_adapter = [run for run in chosen if run.has_adapter]
    if base_model is None:
        if not with_adapter:
            raise CatalogError("no trained run with an adapter, and no base model given (--base-model PATH)")
        base_model = max(with_adapter, key=lambda run: run.id).base_model
    folder = local_base_folder(base_model)
    base_id = base_model_id(base_model)
    adapters: list[ServedModel] = []
    skipped: list[str] = []
    for run in sorted(with_adapter, key=lambda r: r.id):
        if _same_base(run.base_model, base_model, folder):
            adapters.append(ServedModel(id=run_model_id(run), kind=ADAPTER, parent=base_id,
                                        prompt_format=run.settings.prompt_format,
                                        adapter_path=str(run.adapter_dir), run_id=run.id))
        else:
            skipped.append(f"{run.label} was trained on {run.base_model}, not {base_model}")
    if wanted is not None and skipped:
        raise CatalogError("the runs do not share one base model: " + "; ".join(skipped))
    base = ServedModel(id=base_id, kind=BASE, parent=None, prompt_format=base_default_format(folder, adapters))
    return Catalog(base_model=folder, models=(base, *adapters), skipped=tuple(skipped))


def project_catalog(project: Project, *, base_model: str | None = None,
                    only: Iterable[int | str] | None = None) -> Catalog:
    return build_catalog(project.training.list(), base_model=base_model, only=only)


def _same_base(run_base: str, base_model: str, folder: str) -> bool:
    if run_base == base_model:
        return True
    try:
        return local_base_folder(run_base) == folder
    except CatalogError:
        return False
