"""The seed tasks a new project starts with (written for Distill Studio, shipped in resources/)."""
from __future__ import annotations

from studio.core.formats import SEED, read_seeds
from studio.core.paths import resource
from studio.core.seeds import SeedTask


def default_seeds_path():
    return resource("seeds", "default_seeds.jsonl")


def load_default_seeds() -> list[SeedTask]:
    # The format is known: detecting it would load every dataset format, plugins' included, on each new project.
    return read_seeds(default_seeds_path(), fmt=SEED)
