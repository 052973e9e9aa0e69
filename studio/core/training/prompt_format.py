"""Prompt formats: how a sample becomes the text a model is trained on and later prompted with.

The formats are data files (``resources/templates/<name>.json``). Training, the pre-flight
check and the model server all render through :func:`render_prompt` / :func:`render_target`,
so what the user chats with is byte for byte what the model learned. A ``text`` format is
plain string substitution; the ``chat`` format uses the tokenizer's own chat template (any
object with ``apply_chat_template``, so this module imports no ML library).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from studio.core.errors import StudioError
from studio.core.paths import resource
from studio.core.training.settings import PROMPT_FORMATS


class PromptFormatError(StudioError):
    """A format is unknown, or cannot be rendered with this tokenizer."""


class ChatTokenizer(Protocol):
    eos_token: str | None
    chat_template: str | None

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class PromptFormat:
    name: str
    kind: str                     # "text" or "chat"
    description: str
    spec: dict[str, str]


@lru_cache(maxsize=None)
def load_format(name: str) -> PromptFormat:
    if name not in PROMPT_FORMATS:
        raise PromptFormatError(f"unknown prompt format {name!r}; formats: {', '.join(PROMPT_FORMATS)}")
    spec = json.loads(resource("templates", f"{name}.json").read_text(encoding="utf-8"))
    return PromptFormat(name=name, kind=spec["kind"], description=spec["description"], spec=spec)


def user_message(fmt: PromptFormat, instruction: str, input: str) -> str:
    """The chat format's user turn: the instruction, then a blank line and the input if any."""
    key = "user" if input else "user_no_input"
    return fmt.spec[key].format(instruction=instruction, input=input)


def render_prompt(name: str, instruction: str, input: str = "", *, tokenizer: ChatTokenizer | None = None) -> str:
    """The prompt text up to where the model's answer starts."""
    fmt = load_format(name)
    if fmt.kind == "text":
        key = "prompt_input" if input else "prompt_no_input"
        return fmt.spec[key].format(instruction=instruction, input=input)
    chat = _chat_tokenizer(tokenizer)
    return chat.apply_chat_template(
        [{"role": "user", "content": user_message(fmt, instruction, input)}],
        tokenize=False, add_generation_prompt=True,
    )


def render_target(name: str, instruction: str, input: str, output: str, *, eos_token: str,
                  tokenizer: ChatTokenizer | None = None) -> str:
    """The text the model must learn to produce after the prompt, its end-of-sequence included.

    Text formats: the output followed by ``eos_token`` (Stanford's train.py appends the
    tokenizer's EOS string). Chat: whatever the chat template writes after the generation
    prompt for the assistant turn; if the template does not end the turn with ``eos_token``,
    it is appended, because a model that never sees EOS never stops.
    """
    fmt = load_format(name)
    if fmt.kind == "text":
        return fmt.spec["target"].format(output=output, eos=eos_token)
    chat = _chat_tokenizer(tokenizer)
    prompt = render_prompt(name, instruction, input, tokenizer=chat)
    full = chat.apply_chat_template(
        [{"role": "user", "content": user_message(fmt, instruction, input)},
         {"role": "assistant", "content": output}],
        tokenize=False,
    )
    if not full.startswith(prompt):
        raise PromptFormatError(
            "the chat template writes the assistant turn differently from the generation prompt, "
            "so prompt and target cannot be split; use the alpaca format with this model")
    target = full[len(prompt):]
    stripped = target.rstrip("\n")
    if eos_token and not stripped.endswith(eos_token):
        target = stripped + eos_token
    return target


def stop_strings(name: str, *, eos_token: str | None) -> list[str]:
    """Strings after which generation should stop for this format (the server uses them)."""
    fmt = load_format(name)
    stops = [eos_token] if eos_token else []
    if fmt.kind == "text":
        stops.append("\n### Instruction:")
    return stops


def _chat_tokenizer(tokenizer: ChatTokenizer | None) -> ChatTokenizer:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise PromptFormatError(
            "the 'chat' format needs a base model whose tokenizer has a chat template; "
            "this one has none — choose 'alpaca' or 'alpaca-lora'")
    return tokenizer
