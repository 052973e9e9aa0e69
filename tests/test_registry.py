"""Registries: lazy "module:attr" entries, built-ins registered like plugins, clear errors."""
from __future__ import annotations

import subprocess
import sys

import pytest

from studio.core import registry
from studio.core.registry import Registry, RegistryError


def test_an_entry_is_imported_only_when_loaded() -> None:
    reg = Registry("thing", "for the test")
    reg.register("json-dumps", "json:dumps", title="JSON")
    assert reg.choices() == [("json-dumps", "JSON")]
    import json

    assert reg.load("json-dumps") is json.dumps


def test_listing_the_built_ins_imports_none_of_their_modules() -> None:
    code = (
        "import sys; from studio.core import registry as r; "
        "keys = {n: reg.keys() for n, reg in r.ALL.items()}; "
        "assert 'alpaca' in keys['generation_modes'] and 'curate' in keys['panels'], keys; "
        "bad = [m for m in ('studio.core.generation.self_instruct', 'studio.ui.curate_panel', 'PySide6') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_keys_and_broken_targets_say_what_and_where() -> None:
    reg = Registry("widget", "for the test")
    reg.register("broken", "no_such_module_anywhere:thing", source="plugin-x")
    with pytest.raises(RegistryError, match="Unknown widget 'nope'; known: broken"):
        reg.get("nope")
    with pytest.raises(RegistryError, match="plugin-x"):
        reg.load("broken")
    with pytest.raises(RegistryError, match="module:attribute"):
        reg.register("bad", "no-colon")


def test_a_key_cannot_be_taken_twice_without_saying_so() -> None:
    with pytest.raises(RegistryError, match="already registered by built-in"):
        registry.GENERATION_MODES.register("alpaca", "json:dumps", source="plugin-y")


def test_manifest_contributions_fill_the_named_extension_points() -> None:
    added = registry.register_contributions({"judges": [{"key": "test-judge", "target": "json:loads", "title": "T"}]},
                                            source="plugin-z")
    try:
        assert [e.source for e in added] == ["plugin-z"]
        assert registry.JUDGES.get("test-judge").label == "T"
        with pytest.raises(RegistryError, match="no extension point 'widgets'"):
            registry.register_contributions({"widgets": []}, source="plugin-z")
    finally:
        registry.JUDGES.unregister("test-judge")


def test_every_built_in_entry_loads() -> None:
    """A typo in builtins.py would otherwise surface only when a user picks that entry."""
    for reg in registry.ALL.values():
        for entry in reg:
            if entry.source == registry.BUILT_IN:
                assert reg.load(entry.key) is not None, f"{reg.name} {entry.key}"
