"""Errors the user sees. Each says what went wrong and where, in words a person can act on."""
from __future__ import annotations

from pathlib import Path


class StudioError(Exception):
    """Base class: the message is shown to the user as is."""


class FormatError(StudioError):
    """A file could not be read; names the file, the line or record, and the problem."""

    def __init__(self, path: Path | str, problem: str, *, line: int | None = None, record: int | None = None):
        self.path = Path(path)
        self.problem = problem
        self.line = line
        self.record = record
        where = str(self.path)
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f" (record {record})" if line is not None else f", record {record}"
        super().__init__(f"{where}: {problem}")


class ProjectLockedError(StudioError):
    """Another Distill Studio process has this project open."""


class ProjectError(StudioError):
    """The folder is not a usable project (missing, newer schema, not a database...)."""
