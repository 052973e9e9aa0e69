"""cProfile of the server's two busy threads, only when asked: ``STUDIO_SERVE_PROFILE=/tmp/prof``.

The event loop (HTTP, SSE) and the generation worker each write ``<prefix>.loop`` and
``<prefix>.worker`` when they end, for ``python -m pstats``: how the server's per-token cost is
found (``STUDIO_SERVE_PROFILE=/tmp/prof python benchmarks/serve_overhead.py``; the benchmark's
server inherits the environment).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

PROFILE_ENV = "STUDIO_SERVE_PROFILE"


@contextlib.contextmanager
def profiled(name: str) -> Iterator[None]:
    """cProfile this thread into ``$STUDIO_SERVE_PROFILE.<name>`` when that is set, else nothing."""
    prefix = os.environ.get(PROFILE_ENV)
    if not prefix:
        yield
        return
    import cProfile

    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(f"{prefix}.{name}")
