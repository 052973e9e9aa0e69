"""Long work as plain functions or generators, so any runner (the GUI's, the CLI, a test) can drive it.

A long operation is a generator that yields :class:`Progress` now and then and ``return``s its
result. The runner checks for cancellation between yields and, to cancel, closes the generator:
``GeneratorExit`` is raised at the ``yield``, so a ``with transaction(...)`` around the work rolls
back and nothing half-done is committed. Anything else a generator yields is a partial result
(a chart's running counts, say). Plain functions are jobs too; they just cannot be interrupted.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """How far a job is: ``done`` of ``total`` units (``total`` None: unknown), and what it is doing."""

    done: int
    total: int | None = None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


Steps = Generator[Any, None, T]


def run_to_end(
    work: T | Steps,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_yield: Callable[[Any], None] | None = None,
) -> T:
    """Drive ``work`` to its result on this thread (the CLI's runner): a plain value passes through."""
    if not inspect.isgenerator(work):
        return work  # type: ignore[return-value]
    while True:
        try:
            value = next(work)
        except StopIteration as stop:
            return stop.value
        if isinstance(value, Progress):
            if on_progress is not None:
                on_progress(value)
        elif on_yield is not None:
            on_yield(value)
