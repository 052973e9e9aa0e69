"""Entry points -> manifests -> :class:`PluginRecord` s, without importing any plugin's code.

CONTRACT (issue 12; the discovery helper fills the bodies):

* :func:`discover` reads every ``distill_studio.plugins`` entry point
  (``importlib.metadata.entry_points(group=PLUGIN_GROUP)``), finds the manifest module's source
  file without executing it or its parent packages (``importlib.machinery.PathFinder`` walked
  by hand), parses it with :mod:`ast` and reads the named top-level assignment with
  :func:`ast.literal_eval`. Checks, each turning the record into state ERROR with a message
  that names the plugin and the problem: not plain data, a missing/ill-typed field (name,
  version, studio, contributions), a name that differs from the entry point's, an unknown
  extension point, a contribution without key/target or with a target that is not
  ``module:attr``, a contribution whose module cannot be found (found, never imported), a studio
  version outside ``studio`` (``packaging.specifiers``), a key another plugin or a built-in has,
  two plugins with one name. Never raises.
* :func:`load_plugins` (once per process; ``reload=True`` for tests): discover, then register
  the contributions of every ENABLED record (``source=record.name``), all or nothing per plugin.
  Disabled (settings) or safe mode: state DISABLED, nothing registered.
* :func:`loaded_plugins`: the records of this process, with ``runtime_errors`` filled from
  :mod:`boundary` at call time.
"""
from __future__ import annotations

from studio.core.plugins.model import PluginRecord

_records: list[PluginRecord] | None = None


def discover(*, disabled: set[str] | None = None) -> list[PluginRecord]:
    """Every plugin installed, in entry-point order, checked; never imports plugin code, never raises."""
    return []  # filled by the discovery helper


def load_plugins(*, reload: bool = False) -> list[PluginRecord]:
    """Discover and register the enabled plugins (once per process)."""
    global _records
    if _records is None or reload:
        _records = discover()
    return list(_records)


def loaded_plugins() -> list[PluginRecord]:
    """The records :func:`load_plugins` made (discovering first if it has not run)."""
    return load_plugins()
