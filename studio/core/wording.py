"""Words the app shows, shared by the CLI and every panel so they read the same everywhere."""
from __future__ import annotations


def count_noun(count: int, noun: str, plural: str | None = None) -> str:
    """A count that reads right: "1 sample", "52,002 samples"."""
    return f"{count:,} {noun if count == 1 else (plural or noun + 's')}"
