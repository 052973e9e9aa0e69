"""Back into the loop: the prompts the student lost become seed tasks, and point Curate at what it learned from.

* :func:`lost_prompts` reads outcomes (the judge's, a human's, or both merged by
  :func:`evaluation_outcomes`) and lists the prompts where the student lost, with the winner.
* :func:`to_seeds` makes each one a seed task: the prompt's instruction and input, the WINNING
  system's answer as the instance output, tagged ``from-eval`` and ``eval-<id>``, with a
  ``seed_origins`` row saying which evaluation, prompt and system it came from. The prompts then
  leave their set (``project.prompt_sets.release``): a prompt that is a seed is training data, and an
  evaluation-only prompt must never be, so it stops counting in later evaluations of that set.
* :func:`nearest_samples` finds, by ROUGE-L (:mod:`studio.core.dedup`, the same score the
  near-duplicate filter uses), the training samples closest to each lost prompt and stores
  them in ``eval_nearest``, which Curate's ``SampleQuery.nearest_eval`` filter shows.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.core.changes import EVALUATIONS
from studio.core.db import transaction
from studio.core.dedup import NearDuplicateIndex
from studio.core.evaluation.model import (
    RUN,
    EvalPrompt,
    Evaluation,
    EvaluationError,
    Outcome,
    SystemSpec,
)
from studio.core.seed_changes import SeedRows
from studio.core.seeds import Instance, SeedTask

if TYPE_CHECKING:
    from studio.core.project import Project

FROM_EVAL_TAG = "from-eval"
# Thresholds tried in turn until a prompt has k neighbours: the index scores exactly only the
# samples whose bound can pass, so a high first threshold keeps a 52K-sample search short.
_NEAREST_THRESHOLDS = (0.5, 0.3, 0.15, 0.0)


@dataclass(frozen=True)
class LostPrompt:
    prompt_id: int
    winner_index: int
    category: str = ""


def eval_tag(evaluation_id: int) -> str:
    return f"eval-{evaluation_id}"


def release_label(evaluation_id: int) -> str:
    """What a released prompt says it was released to."""
    return f"seeds (evaluation {evaluation_id})"


# -- which prompts were lost -------------------------------------------------------------------
def judge_outcomes(project: Project, evaluation: Evaluation) -> list[Outcome]:
    """The judge's outcomes (none without a judge)."""
    if evaluation.judge is None:
        return []
    from studio.core.evaluation import engine  # reads the answer and verdict caches

    return engine.outcomes(project, evaluation)


def evaluation_outcomes(project: Project, evaluation: Evaluation) -> list[Outcome]:
    """The outcomes lost prompts are read from: a human vote where there is one, else the judge's.

    A human vote is the ground truth a judge is measured against, so it wins where both exist;
    an evaluation without a judge has only the votes.
    """
    merged = {(o.prompt_id, o.system_a, o.system_b): o for o in judge_outcomes(project, evaluation)}
    for outcome in project.votes.outcomes(evaluation):
        merged[(outcome.prompt_id, outcome.system_a, outcome.system_b)] = outcome
    return list(merged.values())


def lost_prompts(outcomes: Iterable[Outcome], system: int = 0) -> list[LostPrompt]:
    """The prompts where ``system`` lost (ties do not count), each once, in the order of ``outcomes``.

    With more than two systems a prompt lost to several is listed once, with the first winner.
    """
    found: dict[int, LostPrompt] = {}
    for outcome in outcomes:
        if outcome.prompt_id in found:
            continue
        if outcome.system_a == system and outcome.winner == "b":
            found[outcome.prompt_id] = LostPrompt(outcome.prompt_id, outcome.system_b, outcome.category)
        elif outcome.system_b == system and outcome.winner == "a":
            found[outcome.prompt_id] = LostPrompt(outcome.prompt_id, outcome.system_a, outcome.category)
    return list(found.values())


def prompts_by_id(project: Project, prompt_ids: Iterable[int]) -> dict[int, EvalPrompt]:
    """The prompts (released ones too), through the prompt-set repository."""
    return project.prompt_sets.prompts_by_id([int(i) for i in prompt_ids])


def _instruction(prompt: EvalPrompt) -> str:
    """A chat prompt's seed instruction is its last user message when the prompt has no instruction."""
    if prompt.instruction.strip() or not prompt.messages:
        return prompt.instruction
    users = [m for m in prompt.messages if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


# -- lost prompts -> seed tasks ---------------------------------------------------------------------
def to_seeds_change(project: Project, evaluation: Evaluation, prompt_ids: Iterable[int], *, system: int = 0,
                    outcomes: Sequence[Outcome] | None = None) -> SeedRows:
    """:func:`to_seeds` returning the seed change (one undo step in the Seeds panel).

    All or nothing: seeds, lineage rows and the release commit together. A prompt whose task is
    already a seed (the same instruction and instance) adds no second copy but is released all the same.
    """
    ids = list(dict.fromkeys(int(i) for i in prompt_ids))
    if outcomes is not None:
        lost = {p.prompt_id: p for p in lost_prompts(outcomes, system)}
    else:
        # Human votes over the judge (evaluation_outcomes); a prompt only the judge's outcomes call
        # lost is still taken when asked for by id: the caller went by the judge, so its winner counts.
        lost = {p.prompt_id: p for p in lost_prompts(judge_outcomes(project, evaluation), system)}
        lost.update({p.prompt_id: p for p in lost_prompts(evaluation_outcomes(project, evaluation), system)})
    not_lost = [i for i in ids if i not in lost]
    if not_lost:
        raise EvaluationError(f"{evaluation.label}: {_system_label(evaluation, system)} did not lose prompt"
                              f"{'s' if len(not_lost) > 1 else ''} {', '.join(map(str, not_lost))}; "
                              "`distill-studio eval lost ID` lists the ones it lost.")
    prompts = prompts_by_id(project, ids)
    settings_hash = evaluation.settings.answers.hash()
    tags = [FROM_EVAL_TAG, eval_tag(evaluation.id)]
    seeds: list[tuple[int, int, SeedTask]] = []
    for prompt_id in ids:
        prompt = prompts.get(prompt_id)
        if prompt is None:
            raise EvaluationError(f"Prompt {prompt_id} of {evaluation.label} is gone (was its set deleted?).")
        winner = lost[prompt_id].winner_index
        answer = project.evaluations.cached_answer(evaluation.systems[winner].key, prompt.hash, settings_hash)
        if answer is None or not answer.text.strip():
            raise EvaluationError(f"{evaluation.label}: prompt {prompt_id} has no answer from "
                                  f"{_system_label(evaluation, winner)} to use as the seed's output.")
        # Named after where it came from, so `seeds list` and the Seeds panel say it without the tags.
        name = f"eval-{evaluation.id}-{prompt.ext_id or f'prompt-{prompt_id}'}"
        seeds.append((prompt_id, winner, SeedTask(instruction=_instruction(prompt), name=name,
                                                  instances=[Instance(prompt.input, answer.text)], tags=list(tags))))
    with transaction(project.conn):
        change = project.seeds.import_many([s for _, _, s in seeds], skip_identical=True,
                                           description=f"Seeds from {len(seeds)} lost prompts of {evaluation.label}")
        now, added = time.time(), set(change.ids)
        project.conn.executemany(
            "INSERT OR REPLACE INTO seed_origins (seed_id, evaluation_id, prompt_id, system, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(seed.id, evaluation.id, prompt_id, _system_label(evaluation, winner), now)
             for prompt_id, winner, seed in seeds if seed.id in added])
        project.prompt_sets.release(ids, release_label(evaluation.id))
    return change


def to_seeds(project: Project, evaluation: Evaluation, prompt_ids: Iterable[int], *, system: int = 0,
             outcomes: Sequence[Outcome] | None = None) -> list[int]:
    """New seed tasks from lost prompts (the winner's answer as the output); the ids of the seeds added.

    The prompts leave their evaluation set: they are training data from now on.
    """
    return to_seeds_change(project, evaluation, prompt_ids, system=system, outcomes=outcomes).ids


def seed_origin(conn: sqlite3.Connection, seed_id: int) -> dict | None:
    """Where a seed came from: evaluation id and name, prompt id, the system whose answer it holds."""
    row = conn.execute(
        "SELECT o.seed_id, o.evaluation_id, o.prompt_id, o.system, o.created_at, e.name AS evaluation_name"
        " FROM seed_origins o LEFT JOIN evaluations e ON e.id = o.evaluation_id WHERE o.seed_id = ?",
        (int(seed_id),)).fetchone()
    return dict(row) if row is not None else None


def _system_label(evaluation: Evaluation, index: int) -> str:
    system = evaluation.systems[index]
    return system.label or system.key or f"system {index}"


# -- lost prompts -> the nearest training samples -----------------------------------------------------
def training_samples(project: Project, evaluation: Evaluation, *, system: int = 0,
                     snapshot: int | str | None = None) -> list[tuple[int, str]]:
    """(sample id, text) of what the student learned from, else every accepted sample.

    A student run: its snapshot less the validation records the run held out (the job's own
    split): a held-out record is often the lost prompt itself (a validation-split prompt set),
    and showing it as "what the student learned from" would be false. A given ``snapshot``: all
    of its items.
    """
    items = None
    if snapshot is None:
        spec = evaluation.systems[system]
        if spec.kind == RUN:
            from studio.core.training.runs import TrainingRunError
            from studio.core.training.split import split_records

            try:
                run = project.training.get(_run_key(spec))
            except TrainingRunError:
                raise EvaluationError(
                    f"The student, {_system_label(evaluation, system)}, was training run "
                    f"{_run_key(spec)}, which is deleted: what it learned from is unknown, so there "
                    "are no nearest training samples to show (the lost prompts list without --nearest).") from None
            if run.snapshot_id is not None:
                items, _ = split_records(project.snapshots.items(run.snapshot_id), run.settings)
    elif snapshot is not None:
        items = project.snapshots.items(snapshot)
    if items is not None:
        return [(i.sample_id, _text(i.instruction, i.input)) for i in items if i.sample_id is not None]
    rows = project.conn.execute("SELECT id, instruction, input FROM samples WHERE status = 'accepted' ORDER BY id")
    return [(r[0], _text(r[1], r[2])) for r in rows]


def _run_key(spec: SystemSpec) -> str:
    """The run of a system: its id (:func:`~studio.core.evaluation.systems.run_id_of`), else its name as typed."""
    from studio.core.evaluation.systems import run_id_of

    run_id = run_id_of(spec)
    return str(run_id) if run_id is not None else spec.run


def _text(instruction: str, input: str) -> str:
    return f"{instruction}\n{input}" if input else instruction


def nearest_samples(project: Project, evaluation: Evaluation, prompt_ids: Iterable[int], *, k: int = 5,
                    snapshot: int | str | None = None, system: int = 0) -> list[tuple[int, int, float]]:
    """The ``k`` training samples nearest to each prompt by ROUGE-L: (sample id, prompt id, score).

    Best first within each prompt. Replaces what ``eval_nearest`` held for this evaluation (a
    sample near several prompts keeps its best score there), so Curate's filter shows exactly
    the latest answer. Reads every training sample once: run it on a worker.
    """
    if k < 1:
        raise EvaluationError(f"--nearest {k}: ask for at least one sample per prompt.")
    ids = list(dict.fromkeys(int(i) for i in prompt_ids))
    prompts = prompts_by_id(project, ids)
    index = NearDuplicateIndex()
    for sample_id, text in training_samples(project, evaluation, system=system, snapshot=snapshot):
        index.add(text, key=sample_id)
    found: list[tuple[int, int, float]] = []
    for prompt_id in ids:
        prompt = prompts.get(prompt_id)
        if prompt is None or not len(index):
            continue
        text = _text(_instruction(prompt), prompt.input)
        matches = []
        for threshold in _NEAREST_THRESHOLDS:
            matches = index.matches_above(text, threshold)
            if len(matches) >= k:
                break
        best = sorted(matches, key=lambda m: (-m.score, m.key))[:k]
        found.extend((m.key, prompt_id, m.score) for m in best)
    best_per_sample: dict[int, tuple[int, float]] = {}
    for sample_id, prompt_id, score in found:
        if sample_id not in best_per_sample or score > best_per_sample[sample_id][1]:
            best_per_sample[sample_id] = (prompt_id, score)
    with transaction(project.conn):
        project.conn.execute("DELETE FROM eval_nearest WHERE evaluation_id = ?", (evaluation.id,))
        project.conn.executemany(
            "INSERT INTO eval_nearest (evaluation_id, sample_id, prompt_id, score) VALUES (?, ?, ?, ?)",
            [(evaluation.id, s, p, score) for s, (p, score) in best_per_sample.items()])
    project.changes.publish(EVALUATIONS)
    return found


def stored_nearest(conn: sqlite3.Connection, evaluation_id: int) -> list[tuple[int, int, float]]:
    """What :func:`nearest_samples` stored for Curate: (sample id, prompt id, score), best first."""
    rows = conn.execute("SELECT sample_id, prompt_id, score FROM eval_nearest WHERE evaluation_id = ?"
                        " ORDER BY score DESC, sample_id", (int(evaluation_id),))
    return [tuple(r) for r in rows]
