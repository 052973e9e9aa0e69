"""Long core operations as generators: they yield Progress and return their result."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None = None
    message: str = ""
