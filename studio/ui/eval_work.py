"""The Evaluate panel's work for the job runner: plain functions on a worker's project handle.

Every read and write the panel makes goes through here, on a worker thread with a project
handle of its own (``JobRunner.submit(..., project=context)``): the panel's slots only gather
parameters and show answers. The core modules (prompt sets, systems, engine, stats, votes,
lost prompts) are imported inside the functions, so building the panel costs no import of
the ``openai`` client or numpy until an evaluation is run or shown.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.evaluation.model import (
    CREATED,
    EvalPrompt,
    EvalSettings,
    Evaluation,
    EvaluationError,
    JudgeSpec,
    PromptSet,
    SystemSpec,
)
from studio.core.jobs import Progress
from studio.core.project import Project

PREVIEW_LIMIT = 500  # prompts a set's preview shows (the rest are counted, not read)


# -- prompt sets -------------------------------------------------------------------------------------
def read_prompt_sets(project: Project) -> list[PromptSet]:
    return project.prompt_sets.list()


def read_prompts(project: Project, set_id: int, limit: int = PREVIEW_LIMIT) -> tuple[list[EvalPrompt], int]:
    """The first ``limit`` prompts of a set (in order) and how many it has, released ones included."""
    prompts = project.prompt_sets.prompts(set_id, include_released=True)
    return prompts[:limit], len(prompts)


def import_prompt_set(project: Project, path: str, name: str | None) -> PromptSet:
    return project.prompt_sets.import_file(Path(path), name or None)


def read_snapshots(project: Project) -> list[tuple[int, str, int]]:
    """(id, name, samples) of every snapshot, newest first."""
    return [(s.id, s.name, s.sample_count) for s in project.snapshots.list()]


def prompt_set_from_snapshot(project: Project, snapshot_id: int, name: str | None, seed: int, fraction: float,
                             max_samples: int) -> PromptSet:
    return project.prompt_sets.from_validation_split(snapshot_id, name=name or None, seed=seed,
                                                     validation_fraction=fraction,
                                                     max_validation_samples=max_samples)


def rename_prompt_set(project: Project, set_id: int, name: str) -> None:
    project.prompt_sets.rename(set_id, name)


def delete_prompt_set(project: Project, set_id: int) -> None:
    project.prompt_sets.delete(set_id)


# -- evaluations --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationRow:
    """One line of the evaluations list: the evaluation and its human-vote progress."""

    evaluation: Evaluation
    votes_decided: int = 0
    votes_total: int = 0


def read_evaluations(project: Project) -> list[EvaluationRow]:
    rows = []
    for evaluation in project.evaluations.list():
        decided, total = _vote_progress(project, evaluation.id)
        rows.append(EvaluationRow(evaluation, decided, total))
    return rows


def _vote_progress(project: Project, evaluation_id: int) -> tuple[int, int]:
    return project.votes.progress(evaluation_id)


def rename_evaluation(project: Project, evaluation_id: int, name: str) -> None:
    project.evaluations.rename(evaluation_id, name)


def delete_evaluation(project: Project, evaluation_id: int) -> None:
    project.evaluations.delete(evaluation_id)


def read_sources(project: Project, server: Any) -> list:
    """What the system pickers offer: Chat's list (teachers of generation runs, the base, trained runs),
    then the endpoints earlier evaluations compared or judged with (newest first), each once."""
    from studio.core.chat.sources import ENDPOINT as SOURCE_ENDPOINT
    from studio.core.chat.sources import ModelSource, endpoint_label, list_sources
    from studio.core.llm.keys import DEFAULT_KEY_ENV

    sources = list_sources(project, server)
    seen = {(s.base_url.rstrip("/"), s.model) for s in sources if s.kind == SOURCE_ENDPOINT}
    for evaluation in project.evaluations.list():
        endpoints = [(s.base_url, s.model, s.api_key_env) for s in evaluation.systems if s.kind == "endpoint"]
        if evaluation.judge is not None:
            e = evaluation.judge.endpoint
            endpoints.append((str(e.get("base_url", "")), str(e.get("model", "")), str(e.get("api_key_env", ""))))
        for base_url, model, key_env in endpoints:
            if not base_url or not model or (base_url.rstrip("/"), model) in seen:
                continue
            seen.add((base_url.rstrip("/"), model))
            sources.append(ModelSource(SOURCE_ENDPOINT, endpoint_label(base_url, model), base_url=base_url,
                                       model=model, api_key_env="" if key_env == DEFAULT_KEY_ENV else key_env))
    return sources


# -- a new evaluation --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Draft:
    """What the New evaluation page asks for, before the systems are resolved."""

    name: str
    set_id: int
    systems: list[SystemSpec]
    judge: JudgeSpec | None
    settings: EvalSettings


def _resolved(project: Project, draft: Draft, server: Any) -> tuple[PromptSet, list[EvalPrompt], list[SystemSpec]]:
    from studio.core.evaluation.systems import resolve_systems

    prompt_set = project.prompt_sets.get(draft.set_id)
    prompts = project.prompt_sets.prompts(draft.set_id)
    if not prompts:
        raise EvaluationError(f"Prompt set {prompt_set.name!r} has no prompts left (all were sent to the seeds).")
    return prompt_set, prompts, resolve_systems(project, draft.systems, server=server)


def _draft_evaluation(prompt_set: PromptSet, prompts: list[EvalPrompt], systems: list[SystemSpec],
                      draft: Draft) -> Evaluation:
    return Evaluation(id=0, name=draft.name, set_id=prompt_set.id, set_hash=prompt_set.content_hash,
                      prompt_ids=[int(p.id) for p in prompts if p.id is not None], systems=systems,
                      judge=draft.judge, settings=draft.settings, status=CREATED, error="", cost=0.0,
                      created_at=0.0, updated_at=0.0)


def estimate_draft(project: Project, draft: Draft, server: Any = None) -> str:
    """The cost estimate of a draft, as one line (cached answers and verdicts cost nothing)."""
    from studio.core.evaluation.engine import estimate

    prompt_set, prompts, systems = _resolved(project, draft, server)
    found = estimate(project, _draft_evaluation(prompt_set, prompts, systems, draft))
    return describe_estimate(found)


def describe_estimate(found: Any) -> str:
    describe = getattr(found, "describe", None)
    if callable(describe):
        return str(describe())
    return str(found)


def create_evaluation(project: Project, draft: Draft, server: Any = None) -> Evaluation:
    prompt_set, prompts, systems = _resolved(project, draft, server)
    return project.evaluations.create(set_id=prompt_set.id, set_hash=prompt_set.content_hash,
                                      prompt_ids=[int(p.id) for p in prompts if p.id is not None],
                                      systems=systems, judge=draft.judge, settings=draft.settings,
                                      name=draft.name)


# -- running ------------------------------------------------------------------------------------------
class RunHandle:
    """The GUI's way to stop an engine that lives on a worker thread (thread-safe, may come before it exists)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Any = None
        self.stop_requested = False

    def attach(self, engine: Any) -> None:
        with self._lock:
            self._engine = engine
            stop = self.stop_requested
        if stop:
            engine.stop()

    def stop(self) -> None:
        with self._lock:
            self.stop_requested = True
            engine = self._engine
        if engine is not None:
            engine.stop()


@dataclass(frozen=True)
class Created:
    """Reported by a run job once its evaluation exists (the list selects it at once)."""

    evaluation_id: int


ClientFactoryMaker = Callable[[Path, Any], Callable]


def _judge_client(judge: JudgeSpec | None, settings: EvalSettings) -> Any:
    """An LLM client for the judge's endpoint; its key comes from the OS keyring or its variable (never stored)."""
    if judge is None:
        return None
    from studio.core.llm.client import LLMClient

    return LLMClient(judge.endpoint_config(), prices=settings.prices, role="the judge")


def run_evaluation(project: Project, draft: Draft | None, evaluation_id: int | None, server: Any, handle: RunHandle,
                   *, report: Callable[[object], None],
                   client_factory: ClientFactoryMaker | None = None,
                   judge_client_factory: Callable[[JudgeSpec | None, EvalSettings], Any] | None = None) -> Any:
    """Create the evaluation (from ``draft``) or continue ``evaluation_id``, and run it to its end or a Stop.

    Everything the engine stores is committed as it arrives, so a stop or a crash keeps every
    answer and verdict: running the same evaluation again pays only for what is missing.
    """
    from studio.core.evaluation.engine import EvalEngine

    if draft is not None:
        evaluation = create_evaluation(project, draft, server)
        evaluation_id = evaluation.id
        report(Created(evaluation.id))
    assert evaluation_id is not None
    evaluation = project.evaluations.get(evaluation_id)
    if client_factory is None:
        from studio.core.evaluation.systems import client_factory as make_factory

        client_factory = make_factory
    clients = client_factory(project.root, server)
    judge_client = (judge_client_factory or _judge_client)(evaluation.judge, evaluation.settings)

    def on_progress(progress: Any) -> None:
        report(progress)  # the panel's counters
        total = getattr(progress, "total", None)
        phase = getattr(progress, "phase", "")
        report(Progress(int(getattr(progress, "done", 0)), int(total) if total else None,
                        f"{phase} {getattr(progress, 'done', 0)}/{total or '?'}".strip()))

    engine = EvalEngine(project, evaluation_id, clients=clients, judge_client=judge_client, on_progress=on_progress)
    handle.attach(engine)
    return engine.run_blocking()


# -- results ------------------------------------------------------------------------------------------
@dataclass
class ResultsData:
    """Everything the Results page shows for one evaluation, read and computed on a worker."""

    evaluation: Evaluation
    judge: Any = None  # EvalResult of the LLM judge (None: no judged pair yet)
    human: Any = None  # EvalResult of the human votes (None: no vote yet)
    agreement: tuple[float | None, int] | None = None
    rows: list[dict] = field(default_factory=list)
    lost_ids: frozenset[int] = frozenset()  # prompts the student (system 0) lost: a human vote over the judge
    lost_sent: int = 0  # of those, the ones already sent to the seeds (released from their set)
    votes: tuple[int, int] = (0, 0)

    @property
    def lost(self) -> int:
        return len(self.lost_ids)

    @property
    def lost_unsent(self) -> int:
        """Lost prompts not yet seed tasks: what "Lost prompts → Seeds" would send."""
        return max(self.lost - self.lost_sent, 0)


def read_results(project: Project, evaluation_id: int) -> ResultsData:
    """The judge's and the votes' results, per-prompt rows and lost prompts — the same results and meta the CLI
    shows and exports (``cli_support.evaluation_result``)."""
    from studio.core.evaluation import engine, stats
    from studio.core.evaluation.cli_support import result_meta
    from studio.core.evaluation.cli_support import evaluation_result

    evaluation = project.evaluations.get(evaluation_id)
    judge_result, judged, human = evaluation_result(project, evaluation)  # judged: both orders (unreadable: tie)
    data = ResultsData(evaluation, votes=_vote_progress(project, evaluation.id))
    if judged:
        data.judge = judge_result
    if human:  # what evaluation_result(..., human=True) gives, without reading the outcomes again
        data.human = stats.summarise(human, [s.label for s in evaluation.systems])
        data.human.meta.update(result_meta(project, evaluation, human=True))
    if judged and human:
        data.agreement = stats.agreement(judged, human)
    data.rows = engine.prompt_rows(project, evaluation, judged, human=human or None)  # judge_raw_ab / _ba too
    data.lost_ids = frozenset(_lost_ids(judged, human))
    data.lost_sent = len(data.lost_ids) - len(_unreleased(project, data.lost_ids))
    return data


def _lost_ids(judged: list, human: list) -> set[int]:
    """The prompts the student (system 0) lost: a human vote where there is one, else the judge — the rule of
    ``lost.evaluation_outcomes`` (shared with the CLI), on outcomes already read."""
    from studio.core.evaluation.lost import lost_prompts

    merged = {(o.prompt_id, o.system_a, o.system_b): o for o in judged}
    merged.update({(o.prompt_id, o.system_a, o.system_b): o for o in human})
    return {lost.prompt_id for lost in lost_prompts(merged.values(), system=0)}


def _unreleased(project: Project, prompt_ids: set[int] | list[int]) -> list[int]:
    """The prompts still in their evaluation set (a released one was sent to the seeds already)."""
    prompts = project.prompt_sets.prompts_by_id(list(prompt_ids))
    return sorted(i for i in prompt_ids if i in prompts and prompts[i].released_to is None)


def export_results(project: Project, evaluation_id: int, path: str) -> str:
    """Write what ``distill-studio eval export`` writes: the judge's result (the votes' when there is no judge
    and someone voted), with every prompt's row; the first path written."""
    from studio.core.evaluation import results_io
    from studio.core.evaluation.cli_support import evaluation_result
    from studio.core.evaluation.engine import prompt_rows

    evaluation = project.evaluations.get(evaluation_id)
    human = evaluation.judge is None and _vote_progress(project, evaluation.id)[0] > 0  # the CLI's rule
    if evaluation.judge is None and not human:
        raise EvaluationError(f"{evaluation.label} has no judge and no votes yet: vote on Compare first.")
    result, judged, votes = evaluation_result(project, evaluation, human=human)
    rows = prompt_rows(project, evaluation, judged, human=votes or None)
    target = Path(path)
    if target.suffix.lower() not in (".csv", ".json"):
        target = target.with_suffix(".json")
    write = results_io.write_csv if target.suffix.lower() == ".csv" else results_io.write_json
    return str(write(result, rows, target)[0])


def lost_prompt_ids(project: Project, evaluation_id: int) -> list[int]:
    """The prompts the student lost (a human vote over the judge: ``lost.evaluation_outcomes``, as the CLI)."""
    from studio.core.evaluation.lost import evaluation_outcomes, lost_prompts

    evaluation = project.evaluations.get(evaluation_id)
    return sorted({lost.prompt_id for lost in lost_prompts(evaluation_outcomes(project, evaluation), system=0)})


def lost_to_seeds(project: Project, evaluation_id: int) -> list[int]:
    """New seed tasks from every prompt the student lost (the winner's answer as output); their ids."""
    from studio.core.evaluation.lost import to_seeds

    evaluation = project.evaluations.get(evaluation_id)
    lost = lost_prompt_ids(project, evaluation_id)
    if not lost:
        raise EvaluationError(f"The student ({evaluation.systems[0].label}) lost no prompt in {evaluation.label}.")
    ids = _unreleased(project, lost)  # a second click must not offer the same prompts again
    if not ids:
        raise EvaluationError(f"The {len(lost)} prompts the student lost in {evaluation.label} are seed tasks "
                              "already (tagged eval-" + str(evaluation.id) + " in Seeds).")
    return to_seeds(project, evaluation, ids, system=0)


def nearest_to_lost(project: Project, evaluation_id: int, k: int = 5) -> int:
    """Store the training samples nearest to the lost prompts (Curate's filter reads them); how many."""
    from studio.core.evaluation.lost import nearest_samples

    evaluation = project.evaluations.get(evaluation_id)
    ids = lost_prompt_ids(project, evaluation_id)
    if not ids:
        raise EvaluationError(f"The student ({evaluation.systems[0].label}) lost no prompt in {evaluation.label}.")
    return len(nearest_samples(project, evaluation, ids, k=k))
