"""What discovery found: one :class:`PluginRecord` per ``distill_studio.plugins`` entry point (plain data)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PLUGIN_GROUP = "distill_studio.plugins"

# A record's state. ENABLED: its contributions are in the registries. DISABLED: the user turned it
# off (nothing registered, nothing imported). ERROR: it could not be registered (see ``error``).
ENABLED, DISABLED, ERROR = "enabled", "disabled", "error"


@dataclass(frozen=True)
class Contribution:
    """One manifest item: an entry for extension point ``point`` (a key of ``registry.ALL``)."""

    point: str
    key: str
    target: str  # "module:attr", imported on first use
    title: str = ""
    help: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PluginRecord:
    """A plugin as *Help > Plugins* and ``plugins list`` show it."""

    name: str                     # the entry point's name: the plugin's id (settings, errors, Entry.source)
    distribution: str = ""        # the installed distribution that declares it
    dist_version: str = ""
    entry_point: str = ""         # "package.manifest:MANIFEST"
    version: str = ""             # the manifest's version
    title: str = ""
    description: str = ""
    studio_versions: str = ""     # PEP 440 specifier the running studio must satisfy
    contributions: list[Contribution] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)  # the distribution's Requires-Dist
    location: str = ""            # where the manifest was read from
    state: str = ENABLED
    error: str = ""               # why it could not be registered (state ERROR)
    runtime_errors: list[str] = field(default_factory=list)  # caught at the registry boundary this session

    @property
    def label(self) -> str:
        return self.title or self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON for ``plugins list --json``."""
        data = asdict(self)
        data["contributions"] = [asdict(c) for c in self.contributions]
        return data
