"""Reading a prompt set from a file: self-instruct JSONL, Alpaca JSON, JSONL of prompt or messages.

The shapes, each record on its own (a JSONL file may mix them):

* self-instruct: ``instruction`` and ``instances: [{input, output}]`` (the Self-Instruct paper's
  252 user-oriented instructions, our own seed files): one prompt per instance, its output the
  reference; the category from ``motivation_app`` or ``category``; ``id`` kept as ``ext_id``.
* Alpaca (a JSON array, or one record a line): ``instruction``, ``input``, ``output`` (the
  reference), ``category`` if present.
* ``prompt`` (+ optional ``input``, ``category``, ``reference`` / ``output`` / ``completion``).
* ``messages`` (an OpenAI chat list): what a system is sent; the instruction shown is the last
  user message. A trailing assistant message is the reference, not part of what is sent.

A malformed record is an :class:`EvaluationError` naming the file and line; nothing is
returned then, so the caller stores nothing. Prompts that are the same (``prompt_hash``:
case and runs of whitespace do not count) collapse to the first; the count is returned.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import FormatError
from studio.core.evaluation.model import EvalPrompt, EvaluationError
from studio.core.formats import _iter_array, _iter_jsonl, read_text

SELF_INSTRUCT, ALPACA, PROMPT, MESSAGES = "self-instruct", "alpaca", "prompt", "messages"
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ParsedPrompts:
    """What a file holds: its prompts in file order, the shapes found, the duplicates left out."""

    prompts: list[EvalPrompt]
    formats: tuple[str, ...]
    duplicates_dropped: int

    @property
    def format(self) -> str:
        """One word for the file: its shape, or the shapes joined with '+' when it mixes them."""
        return "+".join(self.formats)


class _Problem(Exception):
    """A record that is not a prompt; the reader adds the file and line."""


def read_prompt_file(path: Path | str) -> ParsedPrompts:
    """Every prompt of ``path`` (see the module docstring); EvaluationError naming file and line."""
    path = Path(path)
    try:
        text = read_text(path)
        array = text.lstrip("\ufeff \t\r\n").startswith("[")
        items = _iter_array(path, text) if array else _iter_jsonl(path, text)
        prompts: list[EvalPrompt] = []
        formats: list[str] = []
        line, counted = 1, 0  # an array's elements come as offsets: count newlines as we go
        for where, value in items:
            if array:
                line += text.count("\n", counted, where)
                counted = where
            else:
                line = where
            try:
                shape, parsed = _parse_record(value)
            except _Problem as exc:
                raise EvaluationError(f"{path}, line {line}: {exc}") from None
            if shape not in formats:
                formats.append(shape)
            prompts.extend(parsed)
    except FormatError as exc:
        raise EvaluationError(str(exc)) from None
    if not prompts:
        raise EvaluationError(f"{path}: the file holds no prompts")
    unique, dropped = dedupe(prompts)
    return ParsedPrompts(unique, tuple(formats), dropped)


def dedupe(prompts: list[EvalPrompt]) -> tuple[list[EvalPrompt], int]:
    """The first of each prompt (by ``prompt_hash``), in order, and how many repeats were left out."""
    seen: set[str] = set()
    unique = []
    for prompt in prompts:
        if prompt.hash not in seen:
            seen.add(prompt.hash)
            unique.append(prompt)
    return unique, len(prompts) - len(unique)


def _parse_record(value: object) -> tuple[str, list[EvalPrompt]]:
    if not isinstance(value, dict):
        raise _Problem(f"expected a JSON object, found {type(value).__name__}")
    category = _text(value, "motivation_app") or _text(value, "category")
    ext_id = value.get("id")
    ext_id = None if ext_id is None else str(ext_id)
    if "instances" in value:
        return SELF_INSTRUCT, list(_self_instruct(value, category, ext_id))
    if "messages" in value:
        return MESSAGES, [_messages(value, category, ext_id)]
    if "instruction" in value:
        instruction = _text(value, "instruction", required=True)
        return ALPACA, [EvalPrompt(instruction, _text(value, "input"), _reference(value), category, ext_id=ext_id)]
    if "prompt" in value:
        instruction = _text(value, "prompt", required=True)
        return PROMPT, [EvalPrompt(instruction, _text(value, "input"), _reference(value), category, ext_id=ext_id)]
    raise _Problem('not a prompt: give "instruction" (with "instances", or "input"/"output"), "prompt" or "messages"')


def _self_instruct(value: dict, category: str, ext_id: str | None) -> Iterator[EvalPrompt]:
    instruction = _text(value, "instruction", required=True)
    instances = value["instances"]
    if not isinstance(instances, list) or not instances:
        raise _Problem('"instances" must be a non-empty list of {"input", "output"} objects')
    for number, instance in enumerate(instances, start=1):
        if not isinstance(instance, dict):
            raise _Problem(f"instance {number} must be an object with input and output")
        try:
            input_text, output = _text(instance, "input"), _text(instance, "output")
        except _Problem as exc:
            raise _Problem(f"instance {number}: {exc}") from None
        this_id = ext_id if ext_id is None or len(instances) == 1 else f"{ext_id}#{number}"
        yield EvalPrompt(instruction, input_text, output, category, ext_id=this_id)


def _messages(value: dict, category: str, ext_id: str | None) -> EvalPrompt:
    messages = value["messages"]
    if not isinstance(messages, list) or not messages:
        raise _Problem('"messages" must be a non-empty list of {"role", "content"} objects')
    clean: list[dict] = []
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _Problem(f"message {number} must be an object with a role ({', '.join(_ROLES)}) and content")
        content = message.get("content")
        if not isinstance(content, str):
            raise _Problem(f"message {number}: content must be text, not {type(content).__name__}")
        clean.append({"role": message["role"], "content": content})
    reference = _reference(value)
    if clean[-1]["role"] == "assistant":  # an answered conversation: the answer is the reference
        reference = reference or clean[-1]["content"]
        clean = clean[:-1]
    users = [m["content"] for m in clean if m["role"] == "user"]
    if not users or clean[-1]["role"] != "user" or not users[-1].strip():
        raise _Problem("the messages must end with a user message for the systems to answer")
    return EvalPrompt(users[-1], "", reference, category, messages=clean, ext_id=ext_id)


def _reference(value: dict) -> str:
    for key in ("reference", "output", "completion"):
        text = _text(value, key)
        if text:
            return text
    return ""


def _text(record: dict, key: str, *, required: bool = False) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise _Problem(f'missing field "{key}"')
        return ""
    if not isinstance(value, str):
        raise _Problem(f'field "{key}" must be text, not {type(value).__name__}')
    if required and not value.strip():
        raise _Problem(f'field "{key}" is empty')
    return value
