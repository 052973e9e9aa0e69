"""Fails at import on purpose: the registry must report it as this plugin's error."""

raise RuntimeError("the tsv format module of raises-on-import fails at import (a test fixture)")
