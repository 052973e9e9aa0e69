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


def modelfile(gguf_name: str, fmt_name: str, *, eos_token: str | None, system: str = "") -> str:
    """An Ollama Modelfile for ``ollama create NAME -f Modelfile`` in the export folder."""
    lines = ["# Ollama: ollama create <name> -f Modelfile   (in this folder)", f"FROM ./{gguf_name}", ""]
    template = ollama_template(fmt_name)
    if template is None:
        lines += ["# The run used the base model's own chat template; it is in the GGUF metadata",
                  "# (tokenizer.chat_template), which Ollama reads when no TEMPLATE is given.", ""]
    else:
        lines += [f'TEMPLATE """{template}"""', ""]
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    for stop in ollama_stops(fmt_name, eos_token):
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
