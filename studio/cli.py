"""The `distill-studio` command: the GUI when called bare, headless twins of every GUI action otherwise.

Errors go to stderr as one line with exit status 1 (2 for a wrong command line, 130 when
interrupted); results go to stdout. ``--format`` choices come from the registries, so a
registered format or exporter is on the command line without an edit here.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from studio.core import exports, formats, registry
from studio.core.curation import SampleQuery
from studio.core.wording import count_noun
from studio.core.errors import StudioError
from studio.core.paths import default_project_dir
from studio.core.project import Project
from studio.core.samples import Origin, Status
from studio.core.seeds import Instance, SeedTask

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


def _project_arg(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    # Sub-commands must not overwrite a --project given before the command name.
    parser.add_argument(
        "--project", type=Path, default=None if top_level else argparse.SUPPRESS, metavar="DIR",
        help="project folder (default: the default project in your user data folder)",
    )


def _open(args: argparse.Namespace, *, exclusive: bool = True) -> Project:
    root = args.project or default_project_dir()
    try:
        if args.project is None and not (root / "project.sqlite").exists():
            return Project.create(root, with_default_seeds=True)
        return Project.open(root, exclusive=exclusive)
    except OSError as exc:
        raise StudioError(f"cannot open the project at {root}: {formats.os_reason(exc)}") from exc


def _say(message: str) -> None:
    """One line on stderr: a multi-line message is folded so scripts can read it as one."""
    print(" ".join(message.split("\n")), file=sys.stderr)


def _os_error_line(exc: OSError) -> str:
    """``error: <path>: <reason>`` for an operating-system failure that escaped a command."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = f"{' -> '.join(paths)}: " if paths else ""
    return f"error: {where}{formats.os_reason(exc)}"


# -- commands ------------------------------------------------------------------------------
def cmd_gui(args: argparse.Namespace) -> int:
    from studio.ui.app import run_app  # Qt is imported only when the GUI is wanted

    return run_app(args.project)


def cmd_init(args: argparse.Namespace) -> int:
    root = Path(args.dir).expanduser().absolute()
    first_new = _first_missing_folder(root)
    existing = set(root.iterdir()) if first_new is None and root.is_dir() else set()
    try:
        with Project.create(root, with_default_seeds=not args.empty) as project:
            print(f"Created project {project.root} with {project.seeds.count()} seed tasks.")
    except BaseException as exc:
        _remove_created(root, first_new, existing)  # a failed init leaves no half project behind
        if isinstance(exc, OSError):
            raise StudioError(f"cannot create the project at {root}: {formats.os_reason(exc)}") from exc
        raise
    return EXIT_OK


def _first_missing_folder(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None if ``path`` exists)."""
    missing = None
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            return missing
        missing = folder
    return missing


def _remove_created(root: Path, first_new: Path | None, existing: set[Path]) -> None:
    """Undo a failed init: the folders it made, or what it added to a folder that was there."""
    if first_new is not None:
        shutil.rmtree(first_new, ignore_errors=True)
        return
    if not root.is_dir():
        return
    for entry in set(root.iterdir()) - existing:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def cmd_seeds_import(args: argparse.Namespace) -> int:
    seeds = formats.read_seeds(args.file, args.format)
    with _open(args) as project:
        change = project.seeds.import_many(seeds, skip_identical=True)
        skipped = len(seeds) - len(change)
        identical = "" if not skipped else (
            "; 1 identical one was already there" if skipped == 1 else f"; {skipped} identical ones were already there")
        print(f"Imported {count_noun(len(change), 'seed task')} from {args.file}{identical} ({project.seeds.count()} in the project).")
    return EXIT_OK


def cmd_seeds_export(args: argparse.Namespace) -> int:
    fmt = args.format or (formats.SEED if args.file.suffix == ".jsonl" else formats.ALPACA)
    with _open(args, exclusive=False) as project:
        count = formats.write_seeds(args.file, project.seeds.list(), fmt)
    print(f"Exported {count} {'seed tasks' if fmt == formats.SEED else 'records'} to {args.file} ({fmt}).")
    return EXIT_OK


def cmd_seeds_list(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        seeds = project.seeds.list(args.search or "")
    if args.json:
        # "id" is the project's id (what `seeds edit ID` takes); the id from an imported file stays as "ext_id".
        listed = [{**formats.seed_to_json(s, str(s.id)), "id": s.id, "ext_id": s.ext_id} for s in seeds]
        print(json.dumps(listed, ensure_ascii=False, indent=2))
        return EXIT_OK
    for seed in seeds:
        flag = "C" if seed.is_classification else " "
        name = seed.name or "(unnamed)"
        print(f"{seed.id:>5} {flag} {name[:28]:<28} {seed.instruction[:80].replace(chr(10), ' ')}")
    print(f"{len(seeds)} seed tasks", file=sys.stderr)
    return EXIT_OK


def _require_usable(seed: SeedTask) -> None:
    """The editor's own problem list, as the command line's error (nothing is stored)."""
    problems = seed.problems()
    if problems:
        raise StudioError(f"Seed task not saved: {' '.join(problems)}")


def cmd_seeds_add(args: argparse.Namespace) -> int:
    seed = SeedTask(instruction=args.instruction, instances=[Instance(args.input, args.output)], name=args.name,
                    is_classification=args.classification, tags=_clean_tags(args.tag))
    _require_usable(seed)
    with _open(args) as project:
        change = project.seeds.create(seed)
    print(f"Added seed task #{change.ids[0]}.")
    return EXIT_OK


def _clean_tags(tags: list[str] | None) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in tags or [] if t.strip()))


def cmd_seeds_edit(args: argparse.Namespace) -> int:
    with _open(args) as project:
        seed = project.seeds.require(args.id)
        changed = _apply_edit_options(seed, args)
        if not changed:
            raise StudioError("Nothing to change: give --instruction, --name, --input, --output, "
                              "--classification/--no-classification, --tag or --no-tags.")
        _require_usable(seed)
        project.seeds.edit(seed)
    print(f"Edited seed task #{seed.id}: {', '.join(changed)}.")
    return EXIT_OK


def _apply_edit_options(seed: SeedTask, args: argparse.Namespace) -> list[str]:
    """Change ``seed`` as the options say; the names of the fields given."""
    changed = []
    for option in ("instruction", "name"):
        value = getattr(args, option)
        if value is not None:
            setattr(seed, option, value)
            changed.append(option)
    if args.classification is not None:
        seed.is_classification = args.classification
        changed.append("classification")
    if args.tag is not None or args.no_tags:
        seed.tags = [] if args.no_tags else _clean_tags(args.tag)
        changed.append("tags")
    if args.input is not None or args.output is not None:
        count = len(seed.instances)
        if not 1 <= args.instance <= count + 1:
            raise StudioError(f"Seed task #{seed.id} has {count} instance(s): --instance takes 1 to {count + 1} "
                              f"({count + 1} adds one).")
        if args.instance == count + 1:
            seed.instances.append(Instance())
        instance = seed.instances[args.instance - 1]
        for option in ("input", "output"):
            value = getattr(args, option)
            if value is not None:
                setattr(instance, option, value)
                changed.append(f"instance {args.instance} {option}")
    elif args.instance != 1:
        raise StudioError("--instance says which instance --input/--output change; give one of them too.")
    return changed


def cmd_seeds_duplicate(args: argparse.Namespace) -> int:
    with _open(args) as project:
        change = project.seeds.duplicate(args.id)
    print(f"Duplicated seed task #{args.id} as #{change.ids[0]}.")
    return EXIT_OK


def cmd_seeds_delete(args: argparse.Namespace) -> int:
    with _open(args) as project:
        change = project.seeds.delete(args.ids)
    noun = "seed task" if len(change) == 1 else "seed tasks"
    print(f"Deleted {len(change)} {noun} ({', '.join(f'#{i}' for i in change.ids)}).")
    return EXIT_OK


def cmd_data_import(args: argparse.Namespace) -> int:
    records = formats.read_samples(args.file, args.format)
    with _open(args) as project:
        result = project.samples.import_texts(records, status=args.status, origin=Origin.IMPORTED, source=args.file.name)
    note = f"; {result.duplicates} exact duplicates skipped" if result.duplicates else ""
    print(f"Imported {count_noun(result.inserted, 'sample')} from {args.file} as {args.status}{note}.")
    return EXIT_OK


def cmd_data_export(args: argparse.Namespace) -> int:
    fmt = args.format or _export_format(args.file) or formats.JSONL
    exports.get_exporter(fmt)  # an unusable exporter fails before the samples are read
    statuses = args.status or None
    with _open(args, exclusive=False) as project:
        records = [formats.Record(s.instruction, s.input, s.output) for s in project.samples.iter(statuses)]
    written = exports.export(args.file, records, fmt, val_fraction=args.val_fraction, seed=args.seed)
    print(f"Exported {len(records)} samples to {_parts(written)} ({fmt}).")
    return EXIT_OK


def _parts(written: dict[str, Path]) -> str:
    paths = dict.fromkeys(str(p) for p in written.values())
    return ", ".join(paths)


# -- curation ------------------------------------------------------------------------------
def _filter_args(parser: argparse.ArgumentParser) -> None:
    """The table's filters, as options: the CLI twin of the Curate panel's filter bar."""
    group = parser.add_argument_group("filters (all must hold)")
    group.add_argument("--search", default="", help="full-text search: every word must appear")
    group.add_argument("--status", action="append", choices=[s.value for s in Status], help="repeatable")
    group.add_argument("--origin", action="append", choices=[o.value for o in Origin], help="repeatable")
    group.add_argument("--run", action="append", type=int, help="generation run id (0: none); repeatable")
    group.add_argument("--tag", default="", help="samples carrying this tag")
    group.add_argument("--rating", action="append", type=int, choices=range(6), help="1-5, 0 unrated; repeatable")
    group.add_argument("--min-instruction-words", type=int)
    group.add_argument("--max-instruction-words", type=int)
    group.add_argument("--min-output-words", type=int)
    group.add_argument("--max-output-words", type=int)
    group.add_argument("--blacklisted", choices=("yes", "no"), help="instruction has a blacklisted word")
    group.add_argument("--duplicates", choices=("yes", "no"), help="member of a near-duplicate cluster")
    group.add_argument("--hardest-run", metavar="RUN",
                       help="only the samples training run RUN scored (`train hardest`), worst first")
    group.add_argument("--view", help="start from this saved view")


def _yes_no(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


def _query(args: argparse.Namespace, project: Project) -> SampleQuery:
    base = SampleQuery()
    if getattr(args, "view", None):
        views = project.curation.views()
        if args.view not in views:
            raise StudioError(f"No saved view {args.view!r}; saved views: {', '.join(views) or 'none'}.")
        base = views[args.view]
    changes = {
        "search": args.search or base.search,
        "statuses": tuple(args.status or base.statuses),
        "origins": tuple(args.origin or base.origins),
        "run_ids": tuple(args.run or base.run_ids),
        "tag": args.tag or base.tag,
        "ratings": tuple(args.rating or base.ratings),
        "instruction_words": (
            args.min_instruction_words if args.min_instruction_words is not None else base.instruction_words[0],
            args.max_instruction_words if args.max_instruction_words is not None else base.instruction_words[1],
        ),
        "output_words": (
            args.min_output_words if args.min_output_words is not None else base.output_words[0],
            args.max_output_words if args.max_output_words is not None else base.output_words[1],
        ),
        "blacklisted": _yes_no(args.blacklisted) if args.blacklisted else base.blacklisted,
        "duplicates": _yes_no(args.duplicates) if args.duplicates else base.duplicates,
        "hardest_run": project.training.get(args.hardest_run).id if args.hardest_run else base.hardest_run,
    }
    return SampleQuery(**{**base.__dict__, **changes})


def cmd_data_list(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        query = _query(args, project)
        query.sort, query.descending = args.sort, args.desc
        total = project.curation.count(query)
        rows = project.curation.page(query, 0, args.limit)
    for row in rows:
        print(f"{row[0]:>7} {row[1]:<9} {row[2][:90].replace(chr(10), ' ')}")
    print(f"{count_noun(total, 'sample')} match" + ("" if total else "; loosen the filters"), file=sys.stderr)
    return EXIT_OK


def cmd_data_mark(args: argparse.Namespace) -> int:
    with _open(args) as project:
        ids = project.curation.ids(_query(args, project))
        change = project.curation.set_status(ids, args.to)
    print(f"Marked {count_noun(len(change), 'sample')} {args.to}.")
    return EXIT_OK


def cmd_data_tag(args: argparse.Namespace) -> int:
    with _open(args) as project:
        ids = project.curation.ids(_query(args, project))
        if args.remove:
            change = project.curation.remove_tag(ids, args.tag_name)
        else:
            change = project.curation.add_tag(ids, args.tag_name)
    print(f"{'Untagged' if args.remove else 'Tagged'} {count_noun(len(change), 'sample')} '{args.tag_name}'.")
    return EXIT_OK


def cmd_data_delete(args: argparse.Namespace) -> int:
    with _open(args) as project:
        query = _query(args, project)
        if query == SampleQuery() and not args.all:
            raise StudioError("No filter given: add filters, or --all to delete every sample.")
        change = project.curation.delete(project.curation.ids(query))
    if not change.ids:
        print("No sample matches those filters; nothing was deleted.")
        return EXIT_OK
    print(f"Moved {count_noun(len(change), 'sample')} to the Trash (batch {change.batch_id}); "
          f"`data trash restore {change.batch_id}` brings them back.")
    return EXIT_OK


def cmd_data_trash_list(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        batches = project.trash.batches()
    if args.json:
        print(json.dumps([b.__dict__ for b in batches], indent=2))
        return EXIT_OK
    for b in batches:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(b.created_at))
        print(f"{b.id:>5} {when} {b.sample_count:>8} {b.description}")
    _say(f"{count_noun(len(batches), 'batch', 'batches')} in the Trash"
         + ("" if batches else " (deleted samples land here)"))
    return EXIT_OK


def cmd_data_trash_restore(args: argparse.Namespace) -> int:
    with _open(args) as project:
        result = project.trash.restore(args.batch)
    print(result.describe(f"from batch {args.batch}") + ".")
    return EXIT_OK


def cmd_data_trash_empty(args: argparse.Namespace) -> int:
    with _open(args) as project:
        gone = project.trash.empty(args.batch)
    print(f"Deleted {count_noun(gone, 'sample')} for good" + (f" (batch {args.batch})." if args.batch else "."))
    return EXIT_OK


def cmd_data_dedup(args: argparse.Namespace) -> int:
    from studio.core.curation import find_clusters

    with _open(args) as project:
        clusters = find_clusters(project.conn, _query(args, project), threshold=args.threshold)
        found = project.curation.store_clusters(clusters)
        members = sum(len(c) for c in clusters)
        if args.keep_first:
            for cluster in clusters:
                project.curation.keep_one(cluster, min(cluster))
    action = "; kept the oldest of each, rejected the rest" if args.keep_first else ""
    print(f"Found {count_noun(found, 'near-duplicate cluster')} ({count_noun(members, 'sample')}){action}.")
    return EXIT_OK


def cmd_view_save(args: argparse.Namespace) -> int:
    with _open(args) as project:
        project.curation.save_view(args.name, _query(args, project))
    print(f"Saved view {args.name!r}.")
    return EXIT_OK


def cmd_view_list(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        for name, query in project.curation.views().items():
            print(f"{name}\t{query.to_json()}")
    return EXIT_OK


# -- snapshots -----------------------------------------------------------------------------
def cmd_snapshot_create(args: argparse.Namespace) -> int:
    with _open(args) as project:
        query = _query(args, project)
        if query == SampleQuery():
            query = SampleQuery(statuses=("accepted",))
        snapshot = project.snapshots.create(args.name, query, note=args.note)
        from studio.core.evaluation.guard import snapshot_note

        note = snapshot_note(project.conn, snapshot.id)  # Train will refuse it: say so now, not at the start
    print(f"Snapshot {snapshot.id} {snapshot.name!r}: {snapshot.sample_count} samples, hash {snapshot.content_hash[:16]}, "
          f"{snapshot.path}")
    if note:
        _say(f"warning: {note}")
    return EXIT_OK


def cmd_snapshot_list(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        snapshots = project.snapshots.list()
    if args.json:
        print(json.dumps([s.__dict__ for s in snapshots], indent=2))
        return EXIT_OK
    for s in snapshots:
        print(f"{s.id:>4} {s.name:<24} {s.sample_count:>8} {s.content_hash[:16]} {s.path}")
    print(count_noun(len(snapshots), "snapshot") + ("" if snapshots else " (`snapshot create NAME` freezes the accepted samples)"), file=sys.stderr)
    return EXIT_OK


def cmd_snapshot_diff(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        diff = project.snapshots.diff(args.first, args.second)
    if args.json:
        print(json.dumps({
            "added": [i.sample_id for i in diff.added], "removed": [i.sample_id for i in diff.removed],
            "changed": [a.sample_id for a, _ in diff.changed], "unchanged": diff.unchanged,
        }))
        return EXIT_OK
    for item in diff.added:
        print(f"+ {item.sample_id:>7} {item.instruction[:90]}")
    for item in diff.removed:
        print(f"- {item.sample_id:>7} {item.instruction[:90]}")
    for before, _after in diff.changed:
        print(f"~ {before.sample_id:>7} {before.instruction[:90]}")
    print(f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
          f"{diff.unchanged} unchanged", file=sys.stderr)
    return EXIT_OK


def cmd_snapshot_export(args: argparse.Namespace) -> int:
    fmt = args.format or _export_format(args.path) or formats.ALPACA
    exports.get_exporter(fmt)  # an unusable exporter fails before the snapshot is read
    with _open(args, exclusive=False) as project:
        records = project.snapshots.records(args.snapshot)
    written = exports.export(args.path, records, fmt, val_fraction=args.val_fraction, seed=args.seed)
    print(f"Exported {len(records)} samples to {_parts(written)} ({fmt}).")
    return EXIT_OK


def cmd_data_stats(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        stats = project.stats()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"Project      {stats['project']}")
        print(f"Seed tasks   {stats['seed_tasks']}")
        print(f"Samples      {stats['samples']}")
        for status, count in stats["by_status"].items():
            print(f"  {status:<10} {count}")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from studio.core.generation.cli_support import run_generate  # the openai client loads only here

    with _open(args) as project:
        return run_generate(project, args)


def cmd_endpoints(args: argparse.Namespace) -> int:
    from studio.core.llm import presets

    for key, preset in presets().items():
        print(f"{key:<16} {preset.base_url:<34} {preset.title}{' (needs a key)' if preset.needs_key else ''}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from studio.core.llm import EndpointConfig, list_models, resolve_key  # openai loads only here
    from studio.core.llm.endpoint import preset

    if not (args.base_url or args.preset):
        raise StudioError("models needs --base-url or --preset.")
    base_url = args.base_url or preset(args.preset).base_url  # a broken plugin's preset: an error naming it
    endpoint = EndpointConfig(base_url=base_url, api_key_env=args.api_key_env or "OPENAI_API_KEY")
    key = resolve_key(endpoint)
    _say(f"{base_url}: {key.describe()}")
    for model in list_models(endpoint, key=key, timeout_s=args.timeout):
        print(model)
    return EXIT_OK


# -- training ------------------------------------------------------------------------------
# The bodies live in studio/core/training/cli_support.py (imported when a train command runs).
def cmd_train_start(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    with _open(args) as project:
        return cli_support.cmd_start(project, args)


def cmd_train_resume(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    with _open(args) as project:
        return cli_support.cmd_resume(project, args)


def cmd_train_preflight(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    with _open(args, exclusive=False) as project:
        return cli_support.cmd_preflight(project, args)


def cmd_train_stop(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    with _open(args, exclusive=False) as project:  # the job's own command holds the project
        return cli_support.cmd_stop(project, args)


def cmd_train_list(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    project, synced = cli_support.open_for_list(lambda exclusive: _open(args, exclusive=exclusive))
    with project:
        return cli_support.cmd_list(project, args, synced=synced)


def cmd_train_show(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    project, synced = cli_support.open_for_list(lambda exclusive: _open(args, exclusive=exclusive))
    with project:
        return cli_support.cmd_show(project, args, synced=synced)


def cmd_train_hardest(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    with _open(args) as project:
        return cli_support.cmd_hardest(project, args)


def cmd_train_delete(args: argparse.Namespace) -> int:
    with _open(args) as project:
        run = project.training.get(args.run)
        project.training.delete(run.id)
    print(f"Deleted training run {run.label} and its folder {run.run_dir}.")
    return EXIT_OK


def cmd_train_export_job(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    with _open(args, exclusive=False) as project:
        return cli_support.cmd_export_job(project, args)


def cmd_train_import_run(args: argparse.Namespace) -> int:
    from studio.core.training import cli_support

    with _open(args) as project:
        return cli_support.cmd_import_run(project, args)


# -- parser --------------------------------------------------------------------------------
def _at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1, refused with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distill-studio",
        description="Distill a teacher LLM into a small local model. Without a command, opens the app.",
    )
    _project_arg(parser, top_level=True)
    parser.set_defaults(handler=cmd_gui)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    gui = commands.add_parser("gui", help="open the app (the default)")
    _project_arg(gui)
    gui.set_defaults(handler=cmd_gui)

    init = commands.add_parser("init", help="create a new project folder")
    init.add_argument("dir", type=Path, metavar="DIR")
    init.add_argument("--empty", action="store_true", help="start without the default seed tasks")
    init.set_defaults(handler=cmd_init)

    seeds = commands.add_parser("seeds", help="seed tasks: add, edit, duplicate, delete, import, export, list")
    seed_commands = seeds.add_subparsers(title="seed commands", metavar="ACTION", required=True)
    s_import = seed_commands.add_parser("import", help="add seed tasks from a file")
    s_import.add_argument("file", type=Path, metavar="FILE")
    s_import.add_argument("--format", choices=_format_choices(), help="default: detected")
    _project_arg(s_import)
    s_import.set_defaults(handler=cmd_seeds_import)
    s_export = seed_commands.add_parser("export", help="write the seed tasks to a file")
    s_export.add_argument("file", type=Path, metavar="FILE")
    s_export.add_argument("--format", choices=_format_choices(),
                          help="default: seed for .jsonl, alpaca otherwise")
    _project_arg(s_export)
    s_export.set_defaults(handler=cmd_seeds_export)
    s_list = seed_commands.add_parser("list", help="print the seed tasks")
    s_list.add_argument("--search", help="only tasks containing this text")
    s_list.add_argument("--json", action="store_true", help="print seed JSON records")
    _project_arg(s_list)
    s_list.set_defaults(handler=cmd_seeds_list)
    _seed_edit_parsers(seed_commands)

    data = commands.add_parser("data", help="samples: import, export, stats")
    data_commands = data.add_subparsers(title="data commands", metavar="ACTION", required=True)
    d_import = data_commands.add_parser("import", help="add samples from a file")
    d_import.add_argument("file", type=Path, metavar="FILE")
    d_import.add_argument("--format", choices=_format_choices(), help=f"{_titles(registry.DATASET_FORMATS)}; "
                          "default: detected from the first record")
    d_import.add_argument("--status", choices=[s.value for s in Status], default=Status.PENDING.value,
                          help="status given to imported samples (default: pending)")
    _project_arg(d_import)
    d_import.set_defaults(handler=cmd_data_import)
    d_export = data_commands.add_parser("export", help="write samples to a file")
    d_export.add_argument("file", type=Path, metavar="FILE")
    d_export.add_argument("--format", choices=_exporter_choices(),
                          help=f"{_titles(registry.DATASET_EXPORTERS)}; default: from FILE's extension, else jsonl")
    _split_args(d_export)
    d_export.add_argument("--status", choices=[s.value for s in Status], action="append",
                          help="only samples with this status (repeatable; default: all)")
    _project_arg(d_export)
    d_export.set_defaults(handler=cmd_data_export)
    d_stats = data_commands.add_parser("stats", help="count seed tasks and samples")
    d_stats.add_argument("--json", action="store_true", help="print a JSON object")
    _project_arg(d_stats)
    d_stats.set_defaults(handler=cmd_data_stats)

    from studio.core.registry import ENDPOINT_KINDS, GENERATION_BACKENDS, GENERATION_MODES  # data only: no code

    modes = GENERATION_MODES.choices()
    kinds = ENDPOINT_KINDS.choices()
    backends = GENERATION_BACKENDS.choices()
    backend_options = "; ".join(f"{e.key}: " + ", ".join(f"{o['key']} ({_option_kind(o)}, default {o.get('default')})"
                                                          for o in e.meta.get("options", ()))
                                for e in GENERATION_BACKENDS if e.meta.get("options"))
    gen = commands.add_parser(
        "generate", help="expand the seed tasks into samples with a teacher LLM",
        epilog="modes: " + "; ".join(f"{key} ({label})" for key, label in modes)
               + ". presets: " + "; ".join(f"{key} ({label})" for key, label in kinds)
               + ". backends: " + "; ".join(f"{key} ({label})" for key, label in backends)
               + (f". backend options: {backend_options}" if backend_options else "") + ".")
    gen.add_argument("--preset", choices=ENDPOINT_KINDS.accepts(),
                     help="fill --base-url and --model from a known kind of endpoint")
    gen.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    gen.add_argument("--model", help="teacher model name")
    gen.add_argument("--target", type=_at_least_one, help="stop once this many samples are kept")
    gen.add_argument("--mode", choices=GENERATION_MODES.accepts(), default="alpaca")
    gen.add_argument("--concurrency", type=_at_least_one, help="requests in flight at once (default 8)")
    gen.add_argument("--budget", type=_positive_float, metavar="USD", help="hard spending cap in US dollars")
    gen.add_argument("--max-requests", type=_at_least_one, help="stop after this many finished requests")
    gen.add_argument("--timeout", type=_positive_float, metavar="S", help="seconds per request attempt (default 120)")
    gen.add_argument("--num-tasks", type=_at_least_one, help="tasks asked for per request (default 20)")
    gen.add_argument("--price", nargs=2, type=float, metavar=("IN", "OUT"),
                     help="USD per 1M input and output tokens for this model (overrides the table)")
    gen.add_argument("--backend", choices=GENERATION_BACKENDS.accepts(),
                     help="how requests are sent (default live; openai-batch: the Batch API at half the price)")
    gen.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                     help="a setting of the backend (repeatable; see the backend options below)")
    gen.add_argument("--resume", action="store_true", help="continue the project's latest run (or --run)")
    gen.add_argument("--run", type=_at_least_one, metavar="ID", help="the run to resume")
    gen.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the key (default OPENAI_API_KEY)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    _project_arg(gen)
    gen.set_defaults(handler=cmd_generate)
    endpoints = commands.add_parser("endpoints", help="list the known kinds of LLM endpoints (presets)")
    endpoints.set_defaults(handler=cmd_endpoints)
    models = commands.add_parser("models", help="list the models an OpenAI-compatible endpoint offers")
    models.add_argument("--preset", choices=[key for key, _ in kinds], help="a known kind of endpoint")
    models.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    models.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the key (default OPENAI_API_KEY)")
    models.add_argument("--timeout", type=_positive_float, default=10.0, metavar="S", help="seconds to wait (default 10)")
    models.set_defaults(handler=cmd_models)
    d_list = data_commands.add_parser("list", help="print the samples a filter selects")
    d_list.add_argument("--sort", default="id",
                        help="id, status, instruction_words, output_words, rating, updated_at ...; "
                             "loss with --hardest-run")
    d_list.add_argument("--desc", action="store_true", help="largest first")
    d_list.add_argument("--limit", type=int, default=50)
    d_mark = data_commands.add_parser("mark", help="set the status of every sample a filter selects")
    d_mark.add_argument("to", choices=[s.value for s in Status], metavar="STATUS", help="pending, accepted or rejected")
    d_tag = data_commands.add_parser("tag", help="tag (or --remove the tag from) every sample a filter selects")
    d_tag.add_argument("tag_name", metavar="TAG")
    d_tag.add_argument("--remove", action="store_true")
    d_delete = data_commands.add_parser("delete", help="move every sample a filter selects to the Trash")
    d_delete.add_argument("--all", action="store_true", help="allow deleting with no filter")
    d_dedup = data_commands.add_parser("dedup", help="find near-duplicate clusters (ROUGE-L on instructions)")
    d_dedup.add_argument("--threshold", type=float, default=0.7)
    d_dedup.add_argument("--keep-first", action="store_true", help="accept the oldest of each cluster, reject the rest")
    for sub, handler in ((d_list, cmd_data_list), (d_mark, cmd_data_mark), (d_tag, cmd_data_tag),
                         (d_delete, cmd_data_delete), (d_dedup, cmd_data_dedup)):
        _filter_args(sub)
        _project_arg(sub)
        sub.set_defaults(handler=handler)

    trash = data_commands.add_parser("trash", help="deleted samples: list, restore or empty the Trash")
    trash_commands = trash.add_subparsers(title="trash commands", metavar="ACTION", required=True)
    t_list = trash_commands.add_parser("list", help="print the batches of deleted samples, newest first")
    t_list.add_argument("--json", action="store_true")
    t_restore = trash_commands.add_parser("restore", help="put a batch's samples back (same ids)")
    t_restore.add_argument("batch", type=int, metavar="ID")
    t_empty = trash_commands.add_parser("empty", help="delete one batch (or every batch) for good")
    t_empty.add_argument("batch", type=int, nargs="?", default=None, metavar="ID")
    for sub, handler in ((t_list, cmd_data_trash_list), (t_restore, cmd_data_trash_restore),
                         (t_empty, cmd_data_trash_empty)):
        _project_arg(sub)
        sub.set_defaults(handler=handler)

    view = commands.add_parser("view", help="saved filters of the Curate table")
    view_commands = view.add_subparsers(title="view commands", metavar="ACTION", required=True)
    v_save = view_commands.add_parser("save", help="save the given filters under a name")
    v_save.add_argument("name", metavar="NAME")
    _filter_args(v_save)
    _project_arg(v_save)
    v_save.set_defaults(handler=cmd_view_save)
    v_list = view_commands.add_parser("list", help="print the saved views")
    _project_arg(v_list)
    v_list.set_defaults(handler=cmd_view_list)

    snapshot = commands.add_parser("snapshot", help="frozen datasets: create, list, diff, export")
    snap_commands = snapshot.add_subparsers(title="snapshot commands", metavar="ACTION", required=True)
    sn_create = snap_commands.add_parser("create", help="freeze the accepted samples (or a filter's) under a name")
    sn_create.add_argument("name", metavar="NAME")
    sn_create.add_argument("--note", default="")
    _filter_args(sn_create)
    _project_arg(sn_create)
    sn_create.set_defaults(handler=cmd_snapshot_create)
    sn_list = snap_commands.add_parser("list", help="print the snapshots")
    sn_list.add_argument("--json", action="store_true")
    _project_arg(sn_list)
    sn_list.set_defaults(handler=cmd_snapshot_list)
    sn_diff = snap_commands.add_parser("diff", help="samples added, removed and changed from A to B")
    sn_diff.add_argument("first", metavar="A")
    sn_diff.add_argument("second", metavar="B")
    sn_diff.add_argument("--json", action="store_true")
    _project_arg(sn_diff)
    sn_diff.set_defaults(handler=cmd_snapshot_diff)
    sn_export = snap_commands.add_parser("export", help="write a snapshot as a training dataset")
    sn_export.add_argument("snapshot", metavar="NAME", help="snapshot name or id")
    sn_export.add_argument("path", type=Path, metavar="PATH")
    sn_export.add_argument("--format", choices=_exporter_choices(),
                           help=f"{_titles(registry.DATASET_EXPORTERS)}; default: from PATH's extension, else alpaca")
    _split_args(sn_export)
    _project_arg(sn_export)
    sn_export.set_defaults(handler=cmd_snapshot_export)
    _train_parsers(commands)
    _model_parsers(commands)
    return parser


def _train_parsers(commands: argparse._SubParsersAction) -> None:
    """``train start|preflight|stop|resume|list|hardest|export-job|import-run``."""
    from studio.core.training.settings import PRESETS, PROMPT_FORMATS  # pure data, no torch

    train = commands.add_parser("train", help="LoRA fine-tuning of a base model on a snapshot, as a child process")
    train_commands = train.add_subparsers(title="train commands", metavar="ACTION", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    def run_options(sub: argparse.ArgumentParser, *, required: bool) -> None:
        sub.add_argument("--snapshot", required=required, metavar="NAME", help="the snapshot to train on (name or id)")
        sub.add_argument("--base-model", required=required, metavar="PATH",
                         help="a local model folder, or a Hugging Face hub id (org/name)")
        sub.add_argument("--preset", choices=list(PRESETS), help="start from a preset's settings (see below)")
        sub.add_argument("--format", choices=PROMPT_FORMATS, help="prompt format (the setting prompt_format)")
        sub.add_argument("--max-steps", type=_at_least_one, metavar="N", help="stop after N optimiser steps")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="any setting by its config name (repeatable; see below)")
        sub.add_argument("--name", help="a name for the run (default run-<id>)")

    from studio.core.training.cli_support import settings_epilog

    epilog = settings_epilog()
    t_start = train_commands.add_parser(
        "start", help="create a run and train it, printing its events (exit 0 on done or stopped)",
        description="Create a training run and run `python -m studio.train` on it. Ctrl-C stops it "
                    "with a checkpoint (a second Ctrl-C kills it).", epilog=epilog, formatter_class=raw)
    run_options(t_start, required=True)
    t_start.add_argument("--trainer", choices=registry.TRAINERS.accepts(), metavar="KEY",
                         help="which trainer runs the job (the setting trainer; default peft-lora): "
                              + ", ".join(registry.TRAINERS.keys()))
    t_start.add_argument("--json", action="store_true", help="print the raw event lines")
    _project_arg(t_start)
    t_start.set_defaults(handler=cmd_train_start)

    t_pre = train_commands.add_parser(
        "preflight", help="one sample as the model sees it, EOS and template checks, lengths, estimates",
        epilog=epilog, formatter_class=raw)
    t_pre.add_argument("run", nargs="?", metavar="RUN", help="an existing run (id or name) instead of the options")
    run_options(t_pre, required=False)
    t_pre.add_argument("--json", action="store_true", help="print the report as JSON")
    _project_arg(t_pre)
    t_pre.set_defaults(handler=cmd_train_preflight)

    t_stop = train_commands.add_parser("stop", help="ask a running job to checkpoint and stop")
    t_stop.add_argument("run", metavar="RUN", help="run id or name")
    t_stop.add_argument("--wait", action="store_true", help="wait until the job has checkpointed and ended")
    t_stop.add_argument("--kill-after", type=_positive_float, metavar="S",
                        help="wait, and kill the job if it has not ended after S seconds")
    _project_arg(t_stop)
    t_stop.set_defaults(handler=cmd_train_stop)

    t_resume = train_commands.add_parser("resume", help="continue a stopped or failed run from its newest checkpoint")
    t_resume.add_argument("run", metavar="RUN", help="run id or name")
    t_resume.add_argument("--json", action="store_true", help="print the raw event lines")
    _project_arg(t_resume)
    t_resume.set_defaults(handler=cmd_train_resume)

    t_list = train_commands.add_parser("list", help="the training runs, newest first")
    t_list.add_argument("--json", action="store_true", help="print JSON records")
    _project_arg(t_list)
    t_list.set_defaults(handler=cmd_train_list)

    t_show = train_commands.add_parser("show", help="one run: status, folder, lineage (seeds → samples → snapshot), settings")
    t_show.add_argument("run", metavar="RUN", help="run id or name")
    t_show.add_argument("--json", action="store_true", help="print a JSON object")
    _project_arg(t_show)
    t_show.set_defaults(handler=cmd_train_show)

    t_hard = train_commands.add_parser("hardest", help="the training samples the adapter fits worst (flawed ones, often)")
    t_hard.add_argument("run", metavar="RUN", help="run id or name")
    t_hard.add_argument("--top", type=_at_least_one, default=20, metavar="N", help="how many to print (default 20)")
    t_hard.add_argument("--rescore", action="store_true", help="score again even if the run has scores")
    t_hard.add_argument("--adapter", metavar="DIR",
                        help="score under this adapter folder (default: the run's adapter/, else its newest "
                             "checkpoint); implies --rescore")
    t_hard.add_argument("--json", action="store_true", help="print JSON records")
    _project_arg(t_hard)
    t_hard.set_defaults(handler=cmd_train_hardest)

    t_delete = train_commands.add_parser("delete", help="delete a run: its row, adapter, checkpoints and events")
    t_delete.add_argument("run", metavar="RUN", help="run id or name")
    _project_arg(t_delete)
    t_delete.set_defaults(handler=cmd_train_delete)

    t_export = train_commands.add_parser(
        "export-job", help="a self-contained folder to train a run elsewhere (torchrun, accelerate, SLURM)")
    t_export.add_argument("run", metavar="RUN", help="run id or name")
    t_export.add_argument("dir", type=Path, metavar="DIR", help="a new folder")
    t_export.add_argument("--gpus", type=_at_least_one, default=1, metavar="N", help="GPUs to launch on (default 1)")
    t_export.add_argument("--include-model", action="store_true", help="copy a local base model folder too")
    _project_arg(t_export)
    t_export.set_defaults(handler=cmd_train_export_job)

    t_import = train_commands.add_parser("import-run", help="bring a job folder trained elsewhere back as a run")
    t_import.add_argument("dir", type=Path, metavar="DIR", help="the job folder, copied back after training")
    _project_arg(t_import)
    t_import.set_defaults(handler=cmd_train_import_run)


def _seed_edit_parsers(seed_commands: argparse._SubParsersAction) -> None:
    """`seeds add|edit|duplicate|delete`: the Seeds panel's actions, one committed change each."""
    s_add = seed_commands.add_parser("add", help="add one seed task")
    s_add.add_argument("--instruction", default="", metavar="TEXT", help="what the model should do (required)")
    s_add.add_argument("--input", default="", metavar="TEXT", help="the first instance's input (optional)")
    s_add.add_argument("--output", default="", metavar="TEXT", help="the first instance's output (required)")
    s_add.add_argument("--name", default="", metavar="NAME", help="short_snake_case_name")
    s_add.add_argument("--classification", action="store_true", help="the output is one of a few labels")
    s_add.add_argument("--tag", action="append", metavar="TAG", help="repeatable")
    s_add.set_defaults(handler=cmd_seeds_add)
    s_edit = seed_commands.add_parser("edit", help="change fields of one seed task (the others stay)")
    s_edit.add_argument("id", type=int, metavar="ID", help="the seed task's id (see `seeds list`)")
    s_edit.add_argument("--instruction", metavar="TEXT")
    s_edit.add_argument("--name", metavar="NAME")
    s_edit.add_argument("--input", metavar="TEXT", help="new input of instance --instance")
    s_edit.add_argument("--output", metavar="TEXT", help="new output of instance --instance")
    s_edit.add_argument("--instance", type=int, default=1, metavar="N",
                        help="which instance --input/--output change (default 1; one past the last adds one)")
    s_edit.add_argument("--classification", action=argparse.BooleanOptionalAction, default=None,
                        help="mark (or --no-classification: unmark) as a classification task")
    s_edit.add_argument("--tag", action="append", metavar="TAG", help="replace the tags (repeatable)")
    s_edit.add_argument("--no-tags", action="store_true", help="remove every tag")
    s_edit.set_defaults(handler=cmd_seeds_edit)
    s_duplicate = seed_commands.add_parser("duplicate", help="copy a seed task; the copy goes right after it")
    s_duplicate.add_argument("id", type=int, metavar="ID")
    s_duplicate.set_defaults(handler=cmd_seeds_duplicate)
    s_delete = seed_commands.add_parser("delete", help="delete seed tasks (all the ids must exist)")
    s_delete.add_argument("ids", type=int, nargs="+", metavar="ID")
    s_delete.set_defaults(handler=cmd_seeds_delete)
    for sub in (s_add, s_edit, s_duplicate, s_delete):
        _project_arg(sub)


# -- serving and chatting with the models (issue 10) -----------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from studio.serve.cli_support import cmd_serve as serve  # torch loads once the server starts

    return serve(args)


def cmd_chat(args: argparse.Namespace) -> int:
    from studio.core.chat.cli_support import cmd_chat as chat

    return chat(args)


def cmd_export(args: argparse.Namespace) -> int:
    from studio.core.exporting import cmd_export as export_run

    return export_run(args)


def _model_parsers(commands: argparse._SubParsersAction) -> None:
    from studio.core.chat.cli_support import add_chat_arguments
    from studio.core.exporting import add_export_arguments
    from studio.serve.cli_support import add_serve_arguments

    serve = commands.add_parser(
        "serve", help="serve the base model and the project's trained adapters with the OpenAI API (127.0.0.1)",
        description="An OpenAI-compatible server (/v1/models, /v1/chat/completions, /v1/completions) for one "
                    "base model and the LoRA adapters trained on it; the first line printed names the URL and "
                    "the models. Ctrl+C or SIGTERM stops it.")
    add_serve_arguments(serve)
    _project_arg(serve)
    serve.set_defaults(handler=cmd_serve)

    chat = commands.add_parser("chat", help="send one prompt to a model and stream the answer to stdout",
                               description="Without --base-url, the project's own running server is used.")
    add_chat_arguments(chat)
    _project_arg(chat)
    chat.set_defaults(handler=cmd_chat)

    export = commands.add_parser(
        "export", help="export a trained run: its adapter, a merged Hugging Face model, or GGUF with an Ollama Modelfile",
        description="The base model is read from where it already is (never downloaded); progress goes to stderr, "
                    "the export folder to stdout. Ctrl+C cancels and leaves nothing behind.")
    add_export_arguments(export)
    _project_arg(export)
    export.set_defaults(handler=cmd_export)
    _eval_parsers(commands)
    _plugin_parsers(commands)


def _eval_handler(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A handler imported when the command runs, so ``--help`` imports no evaluation code."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), name)(args)

    return handler


def _eval_parsers(commands: argparse._SubParsersAction) -> None:
    """``eval prompts import|list``, ``eval run``, ``eval results``, ``eval export``, ``eval lost``."""
    ev = commands.add_parser("eval", help="blind pairwise evaluation: prompt sets, answers, an LLM judge, results")
    ev_commands = ev.add_subparsers(title="eval commands", metavar="ACTION", required=True)
    spec_help = "URL#MODEL (any OpenAI-compatible endpoint), run:RUN (a trained run) or base (the studio's base model)"

    prompts = ev_commands.add_parser("prompts", help="evaluation-only prompt sets")
    p_commands = prompts.add_subparsers(title="prompt set commands", metavar="ACTION", required=True)
    p_import = p_commands.add_parser(
        "import", help="import a prompt set (self-instruct JSONL, Alpaca JSON, JSONL of prompt or messages)",
        description="The prompts become evaluation-only: Generate and Train refuse them.")
    p_import.add_argument("file", type=Path, metavar="FILE")
    p_import.add_argument("--name", help="the set's name (default: the file's name)")
    p_import.add_argument("--json", action="store_true", help="print the new set as JSON")
    _project_arg(p_import)
    p_import.set_defaults(handler=_eval_handler("studio.core.evaluation.prompt_cli", "cmd_prompts_import"))
    p_split = p_commands.add_parser("from-snapshot", help="a snapshot's validation split as a prompt set")
    p_split.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot name or id")
    p_split.add_argument("--name", help="the set's name (default: <snapshot>-validation)")
    p_split.add_argument("--val-fraction", type=float, default=0.05, metavar="F",
                         help="the training setting validation_fraction (default 0.05)")
    p_split.add_argument("--max-val", type=int, default=200, metavar="N",
                         help="the training setting max_validation_samples (default 200)")
    p_split.add_argument("--seed", type=int, default=42, help="the training setting seed (default 42)")
    p_split.add_argument("--json", action="store_true", help="print the new set as JSON")
    _project_arg(p_split)
    p_split.set_defaults(handler=_eval_handler("studio.core.evaluation.prompt_cli", "cmd_prompts_from_snapshot"))
    p_list = p_commands.add_parser("list", help="the prompt sets, with their sizes and hashes")
    p_list.add_argument("--json", action="store_true", help="print JSON records")
    _project_arg(p_list)
    p_list.set_defaults(handler=_eval_handler("studio.core.evaluation.prompt_cli", "cmd_prompts_list"))

    run = ev_commands.add_parser(
        "run", help="answer a prompt set with two systems and let a judge compare them in both orders",
        description="Answers and verdicts are cached: a rerun pays only for what is missing. run:RUN and base are "
                    "answered by the project's own server, started for the run when none is running. Keys come "
                    "from the keyring or the environment, as in Generate.")
    run.add_argument("--prompts", required=True, metavar="NAME", help="the prompt set (name or id)")
    run.add_argument("--a", required=True, metavar="SPEC", help=f"system A: {spec_help}")
    run.add_argument("--b", required=True, metavar="SPEC", help=f"system B: {spec_help}")
    run.add_argument("--judge", metavar="SPEC", help="the judge, URL#MODEL (default: no judge, answers only)")
    run.add_argument("--template", type=Path, metavar="FILE",
                     help="a pairwise judge template ({instruction} {input} {answer_a} {answer_b})")
    from studio.core.registry import JUDGES  # data only: no plugin code

    judges = JUDGES.choices()
    run.add_argument("--judge-kind", choices=[key for key, _ in judges], metavar="KEY",
                     help=("how the judge decides (default pairwise): "
                           + "; ".join(f"{key} ({label})" for key, label in judges)) if len(judges) > 1
                     else argparse.SUPPRESS)  # one kind only: nothing to choose
    run.add_argument("--max-tokens", type=_at_least_one, default=512, metavar="N", help="most tokens per answer")
    run.add_argument("--temperature", type=float, default=0.0, metavar="T", help="sampling temperature of answers")
    run.add_argument("--concurrency", type=_at_least_one, default=32, metavar="N", help="requests in flight")
    run.add_argument("--budget", type=_positive_float, metavar="USD",
                     help="hard cap on the spend of answers and judgments together (models without a price "
                          "count as free: give them --price)")
    run.add_argument("--price", nargs=3, action="append", metavar=("MODEL", "IN", "OUT"),
                     help="USD per 1M input and output tokens of MODEL (repeatable; known without it: "
                          "gpt-4o, gpt-4o-mini, gpt-4.1, gpt-4.1-mini, gpt-3.5-turbo)")
    run.add_argument("--name", help="a name for the evaluation")
    run.add_argument("--api-key-env", metavar="VAR", help="environment variable with the endpoints' key")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _project_arg(run)
    run.set_defaults(handler=_eval_handler("studio.core.evaluation.cli_support", "cmd_eval_run"))

    results = ev_commands.add_parser("results", help="an evaluation's result (default: list the evaluations)")
    results.add_argument("evaluation", nargs="?", metavar="ID", help="evaluation id")
    results.add_argument("--human", action="store_true", help="the blind human votes instead of the judge")
    results.add_argument("--json", action="store_true", help="print JSON")
    _project_arg(results)
    results.set_defaults(handler=_eval_handler("studio.core.evaluation.cli_support", "cmd_eval_results"))

    export = ev_commands.add_parser("export", help="write an evaluation's result and per-prompt rows (.json or .csv)")
    export.add_argument("evaluation", metavar="ID", help="evaluation id")
    export.add_argument("path", type=Path, metavar="PATH", help="a .json or .csv file")
    export.add_argument("--human", action="store_true", help="the blind human votes instead of the judge")
    _project_arg(export)
    export.set_defaults(handler=_eval_handler("studio.core.evaluation.cli_support", "cmd_eval_export"))

    lost = ev_commands.add_parser("lost", help="the prompts a system lost; --to-seeds makes seed tasks of them")
    lost.add_argument("evaluation", metavar="ID", help="evaluation id")
    lost.add_argument("--system", default="a", metavar="S",
                      help="the student: a, b, a system's index or label (default a)")
    lost.add_argument("--to-seeds", action="store_true",
                      help="make each lost prompt a seed task with the winning answer as its output; the "
                           "prompts then leave their evaluation set (they are training data from then on)")
    lost.add_argument("--nearest", type=int, default=0, metavar="K",
                      help="also list the K training samples nearest to each lost prompt (ROUGE-L)")
    lost.add_argument("--json", action="store_true", help="print JSON")
    _project_arg(lost)
    lost.set_defaults(handler=_eval_handler("studio.core.evaluation.lost_cli", "cmd_eval_lost"))


def _option_kind(option: dict) -> str:
    """A backend option's type for ``--help``: a choice lists its values (``batch|live``)."""
    if option.get("type") == "choice":
        return "|".join(str(c[0]) for c in option.get("choices", ()))
    return str(option.get("type", "str"))


def _format_choices() -> list[str]:
    """Every registered dataset format (each reads samples and seed tasks); listing imports none."""
    return registry.DATASET_FORMATS.accepts()


def _exporter_choices() -> list[str]:
    """The exporters, then the dataset formats that are not one (a format's writer is checked when used)."""
    return registry.DATASET_EXPORTERS.accepts(registry.DATASET_FORMATS)


def _export_format(path: Path) -> str | None:
    """The exporter for ``path``'s extension, else a sample-writing format's (``.csv`` with a CSV plugin)."""
    return exports.exporter_for_path(path) or formats.format_for_path(path, formats.SAMPLES)


def _titles(points: registry.Registry) -> str:
    return ", ".join(f"{e.key}: {e.label}" for e in points)


def _split_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                        help="hold out this fraction as a validation split (default: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split's shuffle")


def _plugin_parsers(commands: argparse._SubParsersAction) -> None:
    """``plugins list [--json]``, ``plugins enable|disable NAME``, ``plugins install SPEC``."""
    module = "studio.core.plugins.cli"
    plugins = commands.add_parser("plugins", help="installed plugins: list, enable, disable, install")
    p_commands = plugins.add_subparsers(title="plugin commands", metavar="ACTION", required=True)
    p_list = p_commands.add_parser("list", help="every plugin found, its version, contributions and errors")
    p_list.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p_list.set_defaults(handler=_eval_handler(module, "cmd_list"))
    for action, verb in (("enable", "turn a plugin on"), ("disable", "turn a plugin off; its code is never imported")):
        parser = p_commands.add_parser(action, help=f"{verb} (from the next start)")
        parser.add_argument("name", metavar="NAME", help="the plugin's name (see plugins list)")
        parser.set_defaults(handler=_eval_handler(module, f"cmd_{action}"))
    p_install = p_commands.add_parser(
        "install", help="install a plugin into the app's environment (refused when it conflicts with the app's pins)")
    p_install.add_argument("spec", metavar="SPEC", help="a plugin folder, a wheel, or a requirement (name, name==1.2)")
    p_install.add_argument("--dry-run", action="store_true", help="check the plugin's requirements, change nothing")
    p_install.add_argument("--target", type=Path, metavar="DIR", help=argparse.SUPPRESS)  # tests: install elsewhere
    p_install.set_defaults(handler=_eval_handler("studio.core.plugins.install", "cmd_install"))


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure a user can cause or fix is one ``error:`` line on stderr, never a traceback."""
    from studio.core.plugins.discovery import load_plugins

    load_plugins()  # before the parser: plugins' formats, modes and backends are choices of it
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except StudioError as exc:
        _say(f"error: {exc}")
        return EXIT_ERROR
    except sqlite3.Error as exc:  # disk full, read-only folder...: every committed write is kept
        _say(f"error: the project database failed ({exc}); what was saved before it stays saved")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `distill-studio seeds list | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except OSError as exc:  # a path the user gave that cannot be read or written
        _say(_os_error_line(exc))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
