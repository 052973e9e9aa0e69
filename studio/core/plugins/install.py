"""``plugins install``: a plugin goes into the app's own environment, never over the app's pins.

CONTRACT (issue 12, helper H6): read the plugin's requirements before anything changes (a
folder's pyproject.toml, a wheel's METADATA, or a requirement resolved by ``pip install
--dry-run --report``), refuse one that conflicts with a version the app's environment holds for
a requirement of Distill Studio (message names both sides), else ``pip install`` with every
installed distribution pinned as a constraint; then rediscover and report the new record.
"""
from __future__ import annotations

import argparse

from studio.core.errors import StudioError


def cmd_install(args: argparse.Namespace) -> int:
    raise StudioError("plugins install is not built yet")
