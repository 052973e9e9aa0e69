"""The `distill-studio` command: the GUI when called bare, headless twins of every GUI action otherwise.

Errors go to stderr with exit status 1 (2 for a wrong command line); results go to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from studio.core import formats
from studio.core.errors import StudioError
from studio.core.paths import default_project_dir
from studio.core.project import Project
from studio.core.samples import Origin, Sample, Status

EXIT_OK, EXIT_ERROR = 0, 1


def _project_arg(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    # Sub-commands must not overwrite a --project given before the command name.
    parser.add_argument(
        "--project", type=Path, default=None if top_level else argparse.SUPPRESS, metavar="DIR",
        help="project folder (default: the default project in your user data folder)",
    )


def _open(args: argparse.Namespace, *, exclusive: bool = True) -> Project:
    root = args.project or default_project_dir()
    if args.project is None and not (root / "project.sqlite").exists():
        return Project.create(root, with_default_seeds=True)
    return Project.open(root, exclusive=exclusive)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


# -- commands ------------------------------------------------------------------------------
def cmd_gui(args: argparse.Namespace) -> int:
    from studio.ui.app import run_app  # Qt is imported only when the GUI is wanted

    return run_app(args.project)


def cmd_init(args: argparse.Namespace) -> int:
    with Project.create(args.dir, with_default_seeds=not args.empty) as project:
        print(f"Created project {project.root} with {project.seeds.count()} seed tasks.")
    return EXIT_OK


def cmd_seeds_import(args: argparse.Namespace) -> int:
    seeds = formats.read_seeds(args.file, args.format)
    with _open(args) as project:
        project.seeds.add_many(seeds)
        print(f"Imported {len(seeds)} seed tasks from {args.file} ({project.seeds.count()} in the project).")
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
        print(json.dumps([formats.seed_to_json(s, str(s.id)) for s in seeds], ensure_ascii=False, indent=2))
        return EXIT_OK
    for seed in seeds:
        flag = "C" if seed.is_classification else " "
        name = seed.name or "(unnamed)"
        print(f"{seed.id:>5} {flag} {name[:28]:<28} {seed.instruction[:80].replace(chr(10), ' ')}")
    print(f"{len(seeds)} seed tasks", file=sys.stderr)
    return EXIT_OK


def cmd_data_import(args: argparse.Namespace) -> int:
    records = formats.read_samples(args.file, args.format)
    samples = (
        Sample(r.instruction, r.input, r.output, status=Status(args.status), origin=Origin.IMPORTED, source=args.file.name)
        for r in records
    )
    with _open(args) as project:
        result = project.samples.add_many(samples)
    note = f"; {result.duplicates} exact duplicates skipped" if result.duplicates else ""
    print(f"Imported {result.inserted} samples from {args.file} as {args.status}{note}.")
    return EXIT_OK


def cmd_data_export(args: argparse.Namespace) -> int:
    fmt = args.format or (formats.ALPACA if args.file.suffix == ".json" else formats.JSONL)
    statuses = args.status or None
    with _open(args, exclusive=False) as project:
        records = [formats.Record(s.instruction, s.input, s.output) for s in project.samples.iter(statuses)]
    count = formats.write_samples(args.file, records, fmt)
    print(f"Exported {count} samples to {args.file} ({fmt}).")
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


# -- parser --------------------------------------------------------------------------------
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

    seeds = commands.add_parser("seeds", help="seed tasks: import, export, list")
    seed_commands = seeds.add_subparsers(title="seed commands", metavar="ACTION", required=True)
    s_import = seed_commands.add_parser("import", help="add seed tasks from a file")
    s_import.add_argument("file", type=Path, metavar="FILE")
    s_import.add_argument("--format", choices=(formats.SEED, *formats.SAMPLE_FORMATS), help="default: detected")
    _project_arg(s_import)
    s_import.set_defaults(handler=cmd_seeds_import)
    s_export = seed_commands.add_parser("export", help="write the seed tasks to a file")
    s_export.add_argument("file", type=Path, metavar="FILE")
    s_export.add_argument("--format", choices=(formats.SEED, *formats.SAMPLE_FORMATS),
                          help="default: seed for .jsonl, alpaca otherwise")
    _project_arg(s_export)
    s_export.set_defaults(handler=cmd_seeds_export)
    s_list = seed_commands.add_parser("list", help="print the seed tasks")
    s_list.add_argument("--search", help="only tasks containing this text")
    s_list.add_argument("--json", action="store_true", help="print seed JSON records")
    _project_arg(s_list)
    s_list.set_defaults(handler=cmd_seeds_list)

    data = commands.add_parser("data", help="samples: import, export, stats")
    data_commands = data.add_subparsers(title="data commands", metavar="ACTION", required=True)
    d_import = data_commands.add_parser("import", help="add samples from a file")
    d_import.add_argument("file", type=Path, metavar="FILE")
    d_import.add_argument("--format", choices=(*formats.SAMPLE_FORMATS, formats.SEED), help="default: detected")
    d_import.add_argument("--status", choices=[s.value for s in Status], default=Status.PENDING.value,
                          help="status given to imported samples (default: pending)")
    _project_arg(d_import)
    d_import.set_defaults(handler=cmd_data_import)
    d_export = data_commands.add_parser("export", help="write samples to a file")
    d_export.add_argument("file", type=Path, metavar="FILE")
    d_export.add_argument("--format", choices=formats.SAMPLE_FORMATS,
                          help="default: alpaca for .json, jsonl otherwise")
    d_export.add_argument("--status", choices=[s.value for s in Status], action="append",
                          help="only samples with this status (repeatable; default: all)")
    _project_arg(d_export)
    d_export.set_defaults(handler=cmd_data_export)
    d_stats = data_commands.add_parser("stats", help="count seed tasks and samples")
    d_stats.add_argument("--json", action="store_true", help="print a JSON object")
    _project_arg(d_stats)
    d_stats.set_defaults(handler=cmd_data_stats)

    gen = commands.add_parser("generate", help="expand the seed tasks into samples with a teacher LLM")
    gen.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    gen.add_argument("--model", help="teacher model name")
    gen.add_argument("--target", type=int, help="stop once this many samples are kept")
    gen.add_argument("--mode", choices=("alpaca", "self-instruct"), default="alpaca")
    gen.add_argument("--concurrency", type=int, help="requests in flight at once (default 8)")
    gen.add_argument("--budget", type=float, metavar="USD", help="hard spending cap in US dollars")
    gen.add_argument("--max-requests", type=int, help="stop after this many finished requests")
    gen.add_argument("--timeout", type=float, metavar="S", help="seconds per request attempt (default 120)")
    gen.add_argument("--num-tasks", type=int, help="tasks asked for per request (default 20)")
    gen.add_argument("--price", nargs=2, type=float, metavar=("IN", "OUT"),
                     help="USD per 1M input and output tokens for this model (overrides the table)")
    gen.add_argument("--resume", action="store_true", help="continue the project's latest run (or --run)")
    gen.add_argument("--run", type=int, metavar="ID", help="the run to resume")
    gen.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the key (default OPENAI_API_KEY)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    _project_arg(gen)
    gen.set_defaults(handler=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except StudioError as exc:
        _say(f"error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:  # `distill-studio seeds list | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
