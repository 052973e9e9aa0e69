"""``distill-studio eval prompts import|from-snapshot|list``: evaluation-only prompt sets from the command line.

Imported by ``studio.cli`` when the command runs. Each handler takes the parsed arguments and
returns the exit code; a user error is a StudioError (``main`` prints it as one ``error:`` line).
"""
from __future__ import annotations

import argparse
import json
import sys

from studio.core.evaluation.model import PromptSet
from studio.core.project import Project
from studio.core.wording import count_noun

EXIT_OK = 0


def _open(args: argparse.Namespace, *, exclusive: bool = True) -> Project:
    from studio.cli import _open as open_project  # the CLI's own rules (default project, errors)

    if not hasattr(args, "project"):
        args = argparse.Namespace(**vars(args), project=None)
    return open_project(args, exclusive=exclusive)


def set_record(prompt_set: PromptSet) -> dict:
    """A set as the JSON the commands print (and scripts read)."""
    return {"id": prompt_set.id, "name": prompt_set.name, "prompts": prompt_set.prompt_count,
            "released": prompt_set.released_count, "categories": list(prompt_set.categories),
            "hash": prompt_set.content_hash, "source": prompt_set.source, "meta": prompt_set.meta,
            "created_at": prompt_set.created_at}


def summary(prompt_set: PromptSet, verb: str = "Imported") -> str:
    """"Imported 252 prompts into set NAME (id 1, hash 3f2a…, 0 categories); they are evaluation-only"."""
    dropped = int(prompt_set.meta.get("duplicates_dropped", 0) or 0)
    repeats = f"; {count_noun(dropped, 'repeated prompt')} left out" if dropped else ""
    return (f"{verb} {count_noun(prompt_set.prompt_count, 'prompt')} into set {prompt_set.name} "
            f"(id {prompt_set.id}, hash {prompt_set.content_hash[:12]}…, "
            f"{count_noun(len(prompt_set.categories), 'category', 'categories')}{repeats}); "
            "they are evaluation-only: Generate and Train refuse them")


def cmd_prompts_import(args: argparse.Namespace) -> int:
    with _open(args) as project:
        prompt_set = project.prompt_sets.import_file(args.file, name=args.name)
    _print_set(prompt_set, args, "Imported")
    return EXIT_OK


def cmd_prompts_from_snapshot(args: argparse.Namespace) -> int:
    with _open(args) as project:
        prompt_set = project.prompt_sets.from_validation_split(
            args.snapshot, name=args.name, seed=args.seed, validation_fraction=args.val_fraction,
            max_validation_samples=args.max_val)
    _print_set(prompt_set, args, "Took")
    if not getattr(args, "json", False):
        print(f"A training run on this snapshot with seed {args.seed}, validation_fraction {args.val_fraction:g} "
              f"and max_validation_samples {args.max_val} holds exactly these out; any other split is refused.",
              file=sys.stderr)
    return EXIT_OK


def cmd_prompts_list(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        sets = project.prompt_sets.list()
    if getattr(args, "json", False):
        print(json.dumps([set_record(s) for s in sets], indent=2, ensure_ascii=False))
        return EXIT_OK
    if sets:
        print(f"{'id':>4} {'name':<28} {'prompts':>8} {'released':>8} {'categories':>10}  {'hash':<12}  source")
    for s in sets:
        print(f"{s.id:>4} {s.name:<28} {s.prompt_count:>8} {s.released_count:>8} {len(s.categories):>10}  "
              f"{s.content_hash[:12]}  {s.source}")
    print(count_noun(len(sets), "prompt set") + ("" if sets else " (`eval prompts import FILE` makes one)"),
          file=sys.stderr)
    return EXIT_OK


def _print_set(prompt_set: PromptSet, args: argparse.Namespace, verb: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(set_record(prompt_set), indent=2, ensure_ascii=False))
    else:
        print(summary(prompt_set, verb))
