"""API keys: found at call time (typed in, OS keyring, environment variable), never stored in a project.

Headless Linux usually has no keyring backend (``keyring.errors.NoKeyringError``); that is
not an error: the environment variable is used, and every message says where the key came
from, or why there is none, in words a user understands.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.core.llm.endpoint import EndpointConfig

KEYRING_SERVICE = "distill-studio"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
NO_KEY = "not-needed"  # local servers ignore the key, but the client insists on one

# Where a key came from (ResolvedKey.origin).
TYPED, KEYRING, ENVIRONMENT, NONE = "typed", "keyring", "environment", "none"


@dataclass(frozen=True)
class ResolvedKey:
    value: str
    origin: str  # TYPED, KEYRING, ENVIRONMENT or NONE
    source: str  # said to the user, e.g. "the OS keyring" or "No API key (...) — fine for local servers"

    @property
    def found(self) -> bool:
        return self.origin != NONE

    def describe(self) -> str:
        """One phrase for a status line: "API key from $OPENAI_API_KEY", or why there is none."""
        return f"API key from {self.source}" if self.found else self.source

    def __repr__(self) -> str:  # never the key itself
        return f"ResolvedKey(origin={self.origin!r}, source={self.source!r})"


def resolve_key(config: EndpointConfig) -> ResolvedKey:
    """The key for ``config``: the typed one, then the OS keyring, then the environment variable."""
    variable = config.api_key_env or DEFAULT_KEY_ENV
    if config.api_key:
        return ResolvedKey(config.api_key, TYPED, "the key field")
    stored, keyring_state = _keyring_get(config.base_url)
    if stored:
        return ResolvedKey(stored, KEYRING, "the OS keyring")
    env_value = os.environ.get(variable)
    if env_value:
        return ResolvedKey(env_value, ENVIRONMENT, f"${variable}")
    return ResolvedKey(NO_KEY, NONE, f"No API key ({keyring_state}, ${variable} unset) — fine for local servers")


def _keyring_get(base_url: str) -> tuple[str | None, str]:
    """(the stored key or None, what to say when there is none)."""
    try:
        import keyring
        from keyring.errors import KeyringError, NoKeyringError
    except ImportError:
        return None, "the keyring package is not installed"
    try:
        return keyring.get_password(KEYRING_SERVICE, base_url), "none in the OS keyring"
    except NoKeyringError:
        return None, "no OS keyring on this system"
    except (KeyringError, RuntimeError):
        return None, "the OS keyring could not be read"


def store_key(base_url: str, key: str) -> str | None:
    """Save the key in the OS keyring; None on success, else why it could not be saved (plain words)."""
    try:
        import keyring
        from keyring.errors import KeyringError, NoKeyringError
    except ImportError:
        return "The keyring package is not installed; set the key variable instead."
    try:
        keyring.set_password(KEYRING_SERVICE, base_url, key)
        return None
    except NoKeyringError:
        return "No OS keyring is available on this system; set the key variable (e.g. $OPENAI_API_KEY) instead."
    except (KeyringError, RuntimeError) as exc:
        return f"The OS keyring refused the key ({type(exc).__name__}); set the key variable instead."
