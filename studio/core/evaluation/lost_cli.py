"""``distill-studio eval lost ID [--system S] [--to-seeds] [--nearest K] [--json]``.

Lists the prompts a system (the student: A by default) lost, with the winner; ``--to-seeds``
makes them seed tasks and says that the prompts left their evaluation set; ``--nearest K``
lists (and stores, for Curate's filter) the K training samples nearest to each.
"""
from __future__ import annotations

import argparse
import json

from studio.core.errors import StudioError
from studio.core.evaluation import lost as lost_module
from studio.core.evaluation.model import Evaluation
from studio.core.wording import count_noun

PREVIEW = 72


def resolve_system(evaluation: Evaluation, text: str) -> int:
    """``a``/``b``/... (position), a number (index) or a system's label, as an index into the systems."""
    text = str(text).strip()
    count = len(evaluation.systems)
    if len(text) == 1 and text.isalpha() and ord(text.lower()) - ord("a") < count:
        return ord(text.lower()) - ord("a")
    if text.isdigit() and int(text) < count:
        return int(text)
    for index, system in enumerate(evaluation.systems):
        if text and text in (system.label, system.key):
            return index
    names = ", ".join(f"{chr(ord('a') + i)} = {s.label or s.key}" for i, s in enumerate(evaluation.systems))
    raise StudioError(f"--system {text!r} is not a system of {evaluation.label}; use one of: {names}.")


def _preview(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW else line[:PREVIEW - 1] + "…"


def cmd_eval_lost(args: argparse.Namespace) -> int:
    from studio.cli import _open

    if not hasattr(args, "project"):
        args.project = None
    if not str(args.evaluation).strip().isdigit():
        raise StudioError(f"{args.evaluation!r} is not an evaluation id; `distill-studio eval results` lists them.")
    writes = bool(args.to_seeds or args.nearest)
    project = _open(args, exclusive=writes)
    try:
        evaluation = project.evaluations.get(int(args.evaluation))
        system = resolve_system(evaluation, args.system)
        outcomes = lost_module.evaluation_outcomes(project, evaluation)
        lost = lost_module.lost_prompts(outcomes, system)
        ids = [p.prompt_id for p in lost]
        prompts = lost_module.prompts_by_id(project, ids)
        nearest: dict[int, list[tuple[int, float]]] = {}
        if args.nearest and ids:
            for sample_id, prompt_id, score in lost_module.nearest_samples(project, evaluation, ids, k=args.nearest,
                                                                           system=system):
                nearest.setdefault(prompt_id, []).append((sample_id, score))
        texts = project.curation.texts([s for found in nearest.values() for s, _ in found]) if nearest else {}
        seed_ids: list[int] = []
        if args.to_seeds and ids:
            seed_ids = lost_module.to_seeds(project, evaluation, ids, system=system, outcomes=outcomes)
        student = evaluation.systems[system].label or evaluation.systems[system].key
        rows = []
        for item in lost:
            prompt = prompts.get(item.prompt_id)
            winner = evaluation.systems[item.winner_index]
            rows.append({
                "prompt_id": item.prompt_id, "category": item.category,
                "instruction": prompt.instruction if prompt else "", "input": prompt.input if prompt else "",
                "winner_index": item.winner_index, "winner": winner.label or winner.key,
                "nearest": [{"sample_id": s, "score": round(score, 4),
                             "instruction": texts.get(s, {}).get("instruction", "")}
                            for s, score in nearest.get(item.prompt_id, [])],
            })
        if args.json:
            print(json.dumps({"evaluation_id": evaluation.id, "system": system, "system_label": student,
                              "compared": len({o.prompt_id for o in outcomes if system in (o.system_a, o.system_b)}),
                              "lost": rows, "seed_ids": seed_ids, "released": len(ids) if args.to_seeds else 0},
                             ensure_ascii=False, indent=2))
            return 0
        _print_human(evaluation, student, outcomes, system, rows, seed_ids, bool(args.to_seeds))
        return 0
    finally:
        project.close()


def _print_human(evaluation: Evaluation, student: str, outcomes, system: int, rows: list[dict], seed_ids: list[int],
                 to_seeds: bool) -> None:
    compared = len({o.prompt_id for o in outcomes if system in (o.system_a, o.system_b)})
    if not compared:
        print(f"{evaluation.label}: nothing judged or voted yet, so no prompt is lost. "
              "Run `distill-studio eval run` with --judge, or vote in the Evaluate panel.")
        return
    print(f"{evaluation.label}: {student} lost {len(rows)} of {count_noun(compared, 'prompt')}.")
    for row in rows:
        category = f" [{row['category']}]" if row["category"] else ""
        print(f"  #{row['prompt_id']}{category} {_preview(row['instruction'])}  — won by {row['winner']}")
        for near in row["nearest"]:
            print(f"      sample #{near['sample_id']}  ROUGE-L {near['score']:.2f}  {_preview(near['instruction'])}")
    if any(row["nearest"] for row in rows):
        print(f"Curate shows these samples with the filter \"nearest to evaluation {evaluation.id}\".")
    if to_seeds and rows:
        already = len(rows) - len(seed_ids)
        known = f"; {already} were seeds already" if already else ""
        print(f"Made {count_noun(len(seed_ids), 'seed task')} with the winning answers as outputs (tagged "
              f"{lost_module.FROM_EVAL_TAG}, {lost_module.eval_tag(evaluation.id)}{known}).")
        print(f"The {count_noun(len(rows), 'prompt')} left the evaluation set: they are training data now, "
              "so later evaluations of that set no longer include them.")
