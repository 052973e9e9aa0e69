"""Words the app shows, shared by the CLI and every panel so they read the same everywhere."""
from __future__ import annotations


def count_noun(count: int, noun: str, plural: str | None = None) -> str:
    """A count that reads right: "1 sample", "52,002 samples"."""
    return f"{count:,} {noun if count == 1 else (plural or noun + 's')}"


def format_duration(seconds: float) -> str:
    """``3 h 20 min``-style wording for an estimate (no false precision)."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{round(minutes)} min"
    hours = minutes / 60
    if hours < 48:
        return f"{int(hours)} h {round(minutes - int(hours) * 60)} min"
    return f"{hours / 24:.1f} days"
