"""``distill-studio plugins ...``: the CLI twin of *Help > Plugins*.

CONTRACT (issue 12): ``cmd_list`` (table; ``--json``: ``{"plugins": [record.to_dict(), ...]}``,
exit 0 even when some plugins have errors), ``cmd_enable`` / ``cmd_disable`` (an unknown name
is an error naming the known ones; says the change applies at the next start), ``plugins install``
is :func:`studio.core.plugins.install.cmd_install`.
"""
from __future__ import annotations

import argparse

from studio.core.errors import StudioError


def cmd_list(args: argparse.Namespace) -> int:
    raise StudioError("plugins list is not built yet")


def cmd_enable(args: argparse.Namespace) -> int:
    raise StudioError("plugins enable is not built yet")


def cmd_disable(args: argparse.Namespace) -> int:
    raise StudioError("plugins disable is not built yet")
