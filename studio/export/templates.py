"""The run's prompt format as the templates other tools read: Jinja (HF/GGUF), Ollama's Go template, a model card.

Pure Python (no torch), so it is tested without a model. A text format (alpaca, alpaca-lora) has
no chat template of its own; tools that format chats through one (transformers' pipelines, vLLM,
llama.cpp, LM Studio, Ollama) would otherwise prompt the student in a format it never saw. The
templates below render a conversation the way ``studio.core.serving.render`` does (contract §6):
a system message first, then each earlier turn as ``render_prompt(user, input)`` + answer +
``"\\n\\n"``, then the last user turn's prompt — one turn is exactly the training prompt.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.core.training.prompt_format import load_format, render_prompt, stop_strings

_INSTRUCTION, _INPUT = "{instruction}", "{input}"
EXAMPLE_INSTRUCTION = "Give three tips for staying healthy."


def _jinja_literal(text: str) -> str:
    # json.dumps escapes quotes, backslashes, newlines and non-ASCII the way Jinja's lexer unescapes them
    return "{{ " + json.dumps(text) + " }}" if text else ""


def _fill(template: str, parts: dict[str, str]) -> str:
    """A format string with ``{instruction}``/``{input}`` as a sequence of literal and variable pieces."""
    out, rest = [], template
    while rest:
        hits = [(rest.find(key), key) for key in parts if rest.find(key) >= 0]
        if not hits:
            out.append(("lit", rest))
            break
        at, key = min(hits)
        out.append(("lit", rest[:at]))
        out.append(("var", parts[key]))
        rest = rest[at + len(key):]
    return "".join(_jinja_literal(v) if kind == "lit" else "{{ " + v + " }}" for kind, v in out)


def jinja_chat_template(fmt_name: str) -> str | None:
    """A Hugging Face chat template (Jinja) rendering the format's prompt; None for the chat format.

    A user message may carry ``input`` (the Alpaca form's optional input, as the studio server
    takes it); the template then uses the format's with-input prompt.
    """
    fmt = load_format(fmt_name)
    if fmt.kind != "text":
        return None
    with_input = _fill(fmt.spec["prompt_input"], {_INSTRUCTION: "message['content']", _INPUT: "message['input']"})
    no_input = _fill(fmt.spec["prompt_no_input"], {_INSTRUCTION: "message['content']"})
    return (
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ message['content'] }}{{ '\\n\\n' }}"
        "{% elif message['role'] == 'user' %}"
        "{% if message['input'] is defined and message['input'] %}" + with_input + "{% else %}" + no_input
        + "{% endif %}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] }}{{ '\\n\\n' }}"
        "{% endif %}{% endfor %}"
    )


def _go_literal(text: str) -> str:
    # Go templates have no escape for "{{" in text; our prompts contain none, so text goes in as is
    if "{{" in text or "}}" in text:
        raise ValueError("a prompt format containing '{{' cannot be written as an Ollama template")
    return text


def ollama_template(fmt_name: str) -> str | None:
    """Ollama's TEMPLATE (Go text/template over ``.Messages``) for a text format; None for chat.

    No ``{{-``/``-}}`` trim markers: alpaca-lora's prompt ends in a newline that must stay.
    Ollama's messages have no separate input field, so the no-input prompt is used.
    """
    fmt = load_format(fmt_name)
    if fmt.kind != "text":
        return None
    before, _, after = fmt.spec["prompt_no_input"].partition(_INSTRUCTION)
    return (
        "{{ range .Messages }}"
        '{{ if eq .Role "system" }}{{ .Content }}\n\n'
        '{{ else if eq .Role "user" }}' + _go_literal(before) + "{{ .Content }}" + _go_literal(after)
        + '{{ else if eq .Role "assistant" }}{{ .Content }}\n\n'
        "{{ end }}{{ end }}"
    )


def ollama_stops(fmt_name: str, eos_token: str | None) -> list[str]:
    """The format's stop strings as Modelfile PARAMETER values (leading newlines dropped: still a stop)."""
    stops = []
    for stop in stop_strings(fmt_name, eos_token=eos_token):
        stop = stop.strip("\n")
        if stop and stop not in stops:
            stops.append(stop)
    return stops


# -- a chat-format run: its tokenizer's Jinja template as Ollama's Go template -----------------------
ChatRender = Callable[[list[dict], bool], str]   # (messages, add_generation_prompt) -> the prompt text
SYSTEM_MARK, PROMPT_MARK, RESPONSE_MARK = "QXSYSTEMQX", "QXPROMPTQX", "QXRESPONSEQX"


@dataclass(frozen=True)
class OllamaChat:
    """A Modelfile TEMPLATE (``.System`` / ``.Prompt`` / ``.Response``) and the stops, from a chat template."""

    template: str
    stops: tuple[str, ...]


def ollama_from_chat_template(render: ChatRender, *, eos_token: str | None,
                              bos_token: str | None = None) -> OllamaChat | None:
    """Ollama does not run a GGUF's Jinja template, so derive its Go template by rendering the Jinja one.

    The chat template is rendered with marker strings as the system prompt, the user's prompt
    and an answer; the markers become ``{{ .System }}``, ``{{ .Prompt }}`` and ``{{ .Response }}``,
    the system turn is wrapped in ``{{ if .System }}…{{ end }}`` (with ``{{ else }}`` what the
    template writes without one, such as a default system prompt), and the text after the
    answer (the end-of-turn string) plus EOS become the stops. A leading ``bos_token`` is
    dropped (llama.cpp adds BOS itself). None when the template cannot be read this way.
    """
    def rendered(messages: list[dict], generation: bool) -> str | None:
        try:
            text = render(messages, generation)
        except Exception:  # noqa: BLE001 - a template may refuse a role (e.g. no system turn): try without
            return None
        if bos_token and text.startswith(bos_token):
            text = text[len(bos_token):]
        return text

    user = {"role": "user", "content": PROMPT_MARK}
    system = {"role": "system", "content": SYSTEM_MARK}
    with_system = rendered([system, user], True)
    without = rendered([user], True)
    if without is None or without.count(PROMPT_MARK) != 1:
        return None
    head, tail = without.split(PROMPT_MARK)
    if with_system is not None and with_system.count(SYSTEM_MARK) == 1 and with_system.count(PROMPT_MARK) == 1:
        before_prompt, tail = with_system.split(PROMPT_MARK)
        head = _system_block(*before_prompt.split(SYSTEM_MARK), head)
    else:
        head = _go_text(head)
    answered = rendered([*([system] if with_system else []), user,
                         {"role": "assistant", "content": RESPONSE_MARK}], False)
    end_of_turn = answered.split(RESPONSE_MARK, 1)[1] if answered and RESPONSE_MARK in answered else ""
    try:
        template = head + "{{ .Prompt }}" + _go_text(tail) + "{{ .Response }}" + _go_text(end_of_turn)
    except ValueError:
        return None
    stops = []
    for stop in (end_of_turn.strip(), eos_token or ""):
        if stop and stop not in stops:
            stops.append(stop)
    return OllamaChat(template, tuple(stops))


def _system_block(before: str, after: str, without: str) -> str:
    """``{{ if .System }}before{{ .System }}after{{ end }}`` with what the system-less prompt shares factored out.

    ``without`` (the text before the prompt with no system message) is split where its start
    is the start of ``before`` and its end the end of ``after`` (the first such split: BOS-like
    prefixes stay outside); if it cannot be, it becomes the ``{{ else }}`` branch.
    """
    for k in range(len(without) + 1):
        prefix, suffix = without[:k], without[k:]
        if before.startswith(prefix) and after.endswith(suffix) and len(prefix) + len(suffix) <= len(before + after):
            inner_before, inner_after = before[len(prefix):], after[:len(after) - len(suffix)]
            return (_go_text(prefix) + "{{ if .System }}" + _go_text(inner_before) + "{{ .System }}"
                    + _go_text(inner_after) + "{{ end }}" + _go_text(suffix))
    return ("{{ if .System }}" + _go_text(before) + "{{ .System }}" + _go_text(after) + "{{ else }}"
            + _go_text(without) + "{{ end }}")


def _go_text(text: str) -> str:
    if "{{" in text or "}}" in text:
        raise ValueError("a chat template whose text contains '{{' cannot be written as an Ollama template")
    return text


def modelfile(gguf_name: str, fmt_name: str, *, eos_token: str | None, system: str = "",
              chat: OllamaChat | None = None) -> str:
    """An Ollama Modelfile for ``ollama create NAME -f Modelfile`` in the export folder.

    A text format gets its own template; a chat-format run the one derived from its tokenizer's
    chat template (``chat``, see :func:`ollama_from_chat_template`): Ollama does not run the
    GGUF's Jinja template, and without a TEMPLATE would prompt the model with the bare text.
    """
    lines = ["# Ollama: ollama create <name> -f Modelfile   (in this folder)", f"FROM ./{gguf_name}", ""]
    template = ollama_template(fmt_name)
    stops = ollama_stops(fmt_name, eos_token)
    if template is None and chat is not None:
        template = chat.template
        stops = list(chat.stops)
    if template is None:
        lines += ["# The run used the base model's own chat template (in the GGUF metadata,",
                  "# tokenizer.chat_template); it could not be written as an Ollama template.", ""]
    else:
        lines += [f'TEMPLATE """{template}"""', ""]
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    for stop in stops:
        lines.append(f"PARAMETER stop {json.dumps(stop)}")
    return "\n".join(lines).rstrip("\n") + "\n"


def example_prompt(fmt_name: str, tokenizer: Any = None) -> str:
    """The training prompt of one example instruction (the chat format needs the tokenizer)."""
    return render_prompt(fmt_name, EXAMPLE_INSTRUCTION, "", tokenizer=tokenizer)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def model_card(*, title: str, fmt: str, base_model: str, snapshot_name: str, snapshot_hash: str,
               settings: dict[str, Any], example: str, how_to_load: str, files: list[str],
               extra: str = "") -> str:
    """README.md for an export: what it is, where it came from (snapshot hash), how it was trained and prompted."""
    rows = "\n".join(f"| `{name}` | {_cell(value)} |" for name, value in settings.items())
    fence = "````" if "```" in example else "```"
    return f"""---
base_model: {json.dumps(base_model)}
library_name: {"peft" if fmt == "adapter" else "transformers" if fmt == "merged" else "gguf"}
tags: [distill-studio, lora, alpaca]
---

# {title}

A model distilled with Distill Studio: a LoRA fine-tune of **{base_model}** on the frozen
snapshot **{snapshot_name or "(unnamed)"}** (content hash `{snapshot_hash or "unknown"}`).
Export format: **{fmt}**. Files: {", ".join(f"`{f}`" for f in files)}.

## Prompt format

The model was trained on the `{settings.get("prompt_format", "alpaca")}` prompt format, and should be
prompted exactly so. An example prompt (the answer follows it directly):

{fence}text
{example}
{fence}

{extra}
## How to load

{how_to_load}

## Training settings

| setting | value |
|---|---|
{rows}
"""
