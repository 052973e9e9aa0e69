"""``distill-studio serve``: the model server in the CLI's own process (it imports torch only once it starts).

The server's options are defined once, here: :func:`add_serve_arguments` is used by the lead's
studio/cli.py (which takes ``--project`` globally) and by ``python -m studio.serve``'s own
parser (which adds ``--project``), so the two cannot drift apart.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from studio.core.serving.server_info import DEFAULT_HOST, DEFAULT_PORT


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Every server option except ``--project``."""
    parser.add_argument("--run", action="append", default=None, dest="runs", metavar="RUN",
                        help="serve only this run (id or name); repeat for several (default: every run with an adapter)")
    parser.add_argument("--base-model", help="base model folder (default: the newest run's base)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--info-file", type=Path, help="where to write the server's info file "
                        "(default <project>/serve/server.json)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's own)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto: cuda when available)")
    parser.add_argument("--max-queue", type=int, default=16, help="requests that may wait before 429 (default 16)")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="waiting requests for the same model and settings generated together (default 8; 1: one at a time)")
    parser.add_argument("--stream-interval-ms", type=float, default=25.0, metavar="MS",
                        help="tokens that come faster than this are streamed as one chunk (default 25; 0: every token "
                             "alone, which costs a fast small model ~0.5 ms of server CPU per token)")
    parser.add_argument("--quiet", action="store_true",
                        help="do not log a line per request on stderr (the log never holds prompt or answer text)")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C / SIGTERM: 0 on a clean exit, 2 when the server cannot start."""
    from studio.core.paths import default_project_dir
    from studio.serve.process import build_parser, serve

    options = build_parser().parse_args([])  # every option at its default, then the CLI's values
    for name in vars(options):
        given = getattr(args, name, None)
        if given is not None:
            setattr(options, name, given)
    if options.project is None and not options.base_model:
        options.project = default_project_dir()
    return serve(options)
