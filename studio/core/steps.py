"""Helpers for step generators: core operations that yield ``Progress`` and return a result.

A long operation is written once, as a generator, so the UI's job runner can show its
progress and cancel it between steps; scripts and the CLI run the same generator to its
end with :func:`drain`.
"""
from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
Steps = Generator[object, None, T]

# Rows per statement in the bulk paths: ~1,000 rows of samples take 10-25 ms to trash,
# restore or update on a 2-core machine, so a generator yields at least that often.
CHUNK = 1000


def drain(steps: Steps[T]) -> T:
    """Run a step generator to its end on this thread and return what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
