"""``distill-studio serve``: the model server in the CLI's own process (it imports torch only once it starts).

The lead's studio/cli.py adds the sub-command with :func:`add_serve_arguments` (the same options
as ``python -m studio.serve``, less ``--project``, which the CLI takes globally) and calls
:func:`cmd_serve`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from studio.core.serving.server_info import DEFAULT_HOST, DEFAULT_PORT


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", action="append", default=None, dest="runs", metavar="RUN",
                        help="serve only this run (id or name); repeat for several (default: every run with an adapter)")
    parser.add_argument("--base-model", help="base model folder (default: the newest run's base)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    parser.add_argument("--info-file", type=Path, help="info file (default <project>/serve/server.json)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's own)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--max-queue", type=int, default=16, help="requests that may wait before 429 (default 16)")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="waiting requests for the same model and settings generated together (default 8; 1: one at a time)")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C / SIGTERM: 0 on a clean exit, 2 when the server cannot start."""
    from studio.core.paths import default_project_dir
    from studio.serve.process import serve

    project = getattr(args, "project", None)
    if project is None and not getattr(args, "base_model", None):
        project = default_project_dir()
    options = argparse.Namespace(
        project=project, runs=getattr(args, "runs", None), base_model=getattr(args, "base_model", None),
        host=getattr(args, "host", DEFAULT_HOST), port=getattr(args, "port", DEFAULT_PORT),
        info_file=getattr(args, "info_file", None), threads=getattr(args, "threads", 0) or 0,
        device=getattr(args, "device", "auto") or "auto", max_queue=getattr(args, "max_queue", 16) or 16,
        max_batch=getattr(args, "max_batch", 8) or 8)
    return serve(options)
