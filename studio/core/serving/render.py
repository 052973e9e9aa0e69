"""A chat conversation as the prompt text a model was trained on, through the trainer's own prompt formats.

The server renders every chat request here, with the prompt format recorded in the run, so a
one-turn chat is byte for byte the training prompt (contract §6). Text formats (alpaca,
alpaca-lora) have no roles: earlier turns are chained as prompt + answer + a blank line, a
system message goes first. The chat format hands the whole message list to the tokenizer's
chat template. Pure Python: the tokenizer is any object with ``apply_chat_template``.
"""
from __future__ import annotations

from collections.abc import Sequence

from studio.core.errors import StudioError
from studio.core.training.prompt_format import ChatTokenizer, load_format, render_prompt, stop_strings, user_message


class RenderError(StudioError):
    """A conversation this prompt format cannot express."""


def render_chat(prompt_format: str, messages: Sequence[dict[str, str]], tokenizer: ChatTokenizer | None) -> str:
    """The prompt for the next assistant turn of ``messages`` ({"role", "content"[, "input"]})."""
    fmt = load_format(prompt_format)
    if not messages or messages[-1].get("role") != "user":
        raise RenderError("the last message must be the user's (the model answers it)")
    if fmt.kind == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise RenderError("the 'chat' format needs a tokenizer with a chat template")
        turns = []
        for message in messages:
            content = message["content"]
            if message["role"] == "user":
                content = user_message(fmt, content, message.get("input", ""))
            turns.append({"role": message["role"], "content": content})
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m["content"])
    parts = [system + "\n\n"] if system else []
    pending: dict[str, str] | None = None
    for message in messages:
        role = message["role"]
        if role == "user":
            if pending is not None:  # two user turns in a row: the first went unanswered
                parts.append(render_prompt(prompt_format, pending["content"], pending.get("input", "")) + "\n\n")
            pending = message
        elif role == "assistant":
            if pending is None:
                parts.append(message["content"] + "\n\n")
            else:
                parts.append(render_prompt(prompt_format, pending["content"], pending.get("input", ""))
                             + message["content"] + "\n\n")
                pending = None
    assert pending is not None  # the last message is the user's
    parts.append(render_prompt(prompt_format, pending["content"], pending.get("input", "")))
    return "".join(parts)


def adds_special_tokens(prompt_format: str) -> bool:
    """Whether the rendered prompt is tokenized with the tokenizer's BOS (text formats), as training did.

    A chat template writes its own BOS, so the chat format is tokenized without special tokens.
    """
    return load_format(prompt_format).kind == "text"


def format_stops(prompt_format: str, eos_token: str | None, extra: Sequence[str] = ()) -> list[str]:
    """The format's stop strings (the next "### Instruction:" of a text format) plus the request's own."""
    stops = [stop for stop in stop_strings(prompt_format, eos_token=eos_token) if stop]
    return stops + [stop for stop in extra if stop and stop not in stops]
