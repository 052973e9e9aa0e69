"""Where an LLM is and how to call it: :class:`EndpointConfig`, and the presets users pick from.

A config serialises without its key (the key is resolved at call time, see :mod:`keys`),
so it can be saved with a run, exported and shown in logs. Presets are data: the
``ENDPOINT_KINDS`` registry lists them (``studio.core.builtins``), and a plugin adds one
with one entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from studio.core.llm.keys import DEFAULT_KEY_ENV


@dataclass(frozen=True)
class EndpointPreset:
    """A kind of endpoint with its usual address and model; ``needs_key`` says whether a key matters."""

    title: str
    base_url: str
    model: str = ""
    needs_key: bool = False
    help: str = ""


OPENAI = EndpointPreset("OpenAI", "https://api.openai.com/v1", "gpt-4o-mini", True, "The OpenAI API (needs a key).")
VLLM = EndpointPreset("vLLM (local)", "http://127.0.0.1:8000/v1", "", False, "`vllm serve MODEL` on this machine.")
OLLAMA = EndpointPreset("Ollama", "http://127.0.0.1:11434/v1", "llama3.1", False, "Ollama's OpenAI-compatible API.")
LLAMA_CPP = EndpointPreset("llama.cpp server", "http://127.0.0.1:8080/v1", "", False, "`llama-server -m model.gguf`.")
LM_STUDIO = EndpointPreset("LM Studio", "http://127.0.0.1:1234/v1", "", False, "LM Studio's local server.")
DISTILL_STUDIO = EndpointPreset("Distill Studio server", "http://127.0.0.1:8765/v1", "", False,
                                "This app's own local server for trained models.")


@dataclass
class EndpointConfig:
    """An OpenAI-compatible endpoint, its model and how to find its key. Serialises without the key."""

    base_url: str = OPENAI.base_url
    model: str = OPENAI.model
    api_key_env: str = DEFAULT_KEY_ENV
    extra_headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold a credential
    timeout_s: float = 120.0
    # Set from the GUI's key field or by tests; never serialised.
    api_key: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
            "extra_headers": {k: v for k, v in self.extra_headers.items() if not is_secret_header(k)},
            "timeout_s": self.timeout_s,
        }

    @classmethod
    def from_dict(cls, data: dict) -> EndpointConfig:
        known = {k: data[k] for k in ("base_url", "model", "api_key_env", "extra_headers", "timeout_s") if k in data}
        return cls(**known)

    @classmethod
    def from_preset(cls, preset: EndpointPreset, **overrides: object) -> EndpointConfig:
        return cls(base_url=preset.base_url, model=preset.model, **overrides)  # type: ignore[arg-type]


def is_secret_header(name: str) -> bool:
    """Headers that may carry a credential never reach a saved config."""
    lowered = name.lower()
    return lowered in {"authorization", "api-key", "x-api-key"} or "key" in lowered or "token" in lowered


def preset(key: str) -> EndpointPreset:
    """One registered preset; a plugin's broken entry raises ``RegistryError`` naming it."""
    from studio.core.registry import ENDPOINT_KINDS, RegistryError

    loaded = ENDPOINT_KINDS.load(key)
    if not isinstance(loaded, EndpointPreset):
        entry = ENDPOINT_KINDS.get(key)
        message = (f"{ENDPOINT_KINDS.name} {key!r} from {entry.source} ({entry.target}) is a "
                   f"{type(loaded).__name__}, not an EndpointPreset")
        if not entry.built_in:
            from studio.core.plugins.boundary import record_failure

            record_failure(entry, message)
        raise RegistryError(message + ".")
    return loaded


def presets() -> dict[str, EndpointPreset]:
    """The registered presets by key, in registry order (built-ins first, then plugins').

    A plugin's preset that cannot be loaded is left out (and recorded for *Help > Plugins*), so
    a broken plugin never takes the built-in presets with it; asking for it by name says why.
    """
    from studio.core.registry import ENDPOINT_KINDS, RegistryError

    found: dict[str, EndpointPreset] = {}
    for entry in ENDPOINT_KINDS:
        try:
            found[entry.key] = preset(entry.key)
        except RegistryError:
            if entry.built_in:
                raise
    return found
