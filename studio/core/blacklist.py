"""The blacklist: words that mark a task a text-only model cannot do (Stanford Alpaca's list)."""
from __future__ import annotations

DEFAULT_BLACKLIST: tuple[str, ...] = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)
