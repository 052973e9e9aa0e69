"""The seed tasks a new project starts with (written for Distill Studio, shipped in resources/)."""
from __future__ import annotations

from studio.core.formats import SEED, read_seeds
from studio.core.paths import resource
from studio.core.seeds import SeedTask


def default_seeds_path():
    return resource("seeds", "default_seeds.jsonl")


def load_default_seeds() -> list[SeedTask]:
    # Our own file in our own format: no sniffing, which would import every plugin's formats (plugin
    # code on the GUI thread at File ▸ New Project, and a broken one "failed on use" that nobody used).
    return read_seeds(default_seeds_path(), SEED)
