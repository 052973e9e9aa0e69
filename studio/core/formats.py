"""Reading and writing the dataset formats practitioners already have.

* ``seed``       self-instruct seed JSONL: ``id``, ``name``, ``instruction``,
                 ``instances[{input, output}]``, ``is_classification``
* ``alpaca``     Alpaca JSON: an array of ``{instruction, input, output}``
                 (``.jsonl`` with the same keys is read too)
* ``jsonl``      prompt/completion JSONL; the prompt is the Alpaca prompt template
* ``messages``   chat JSONL: ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}``

Readers validate the whole file before returning anything, so an import is all or nothing;
a problem raises :class:`FormatError` naming the file, the line or record, and the problem.
Writers are atomic (temporary file, then rename). Round trips are lossless: where a chat or
prompt/completion record could not be split back into the same instruction and input, the
writer adds explicit ``instruction`` and ``input`` keys, which the reader prefers.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from studio.core.errors import FormatError
from studio.core.paths import resource
from studio.core.seeds import Instance, SeedTask

SEED, ALPACA, JSONL, MESSAGES = "seed", "alpaca", "jsonl", "messages"
SAMPLE_FORMATS = (ALPACA, JSONL, MESSAGES)
SEED_FORMATS = (SEED, ALPACA)


class Record(NamedTuple):
    """One instruction-following example, as every sample format sees it (a tuple: cheap in bulk)."""

    instruction: str
    input: str = ""
    output: str = ""


# -- reading raw text ----------------------------------------------------------------------
def read_text(path: Path) -> str:
    """The file as text; empty files and non-UTF-8 bytes are errors with a line number."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except OSError as exc:
        raise FormatError(path, f"cannot read the file ({exc.strerror})") from None
    if not data.strip():
        raise FormatError(path, "the file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(
            path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded); save the file as UTF-8",
            line=line,
        ) from None


def _iter_jsonl(path: Path, text: str) -> Iterator[tuple[int, object]]:
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield line_number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=line_number) from None


def _load_json(path: Path, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None


def _array_record_lines(text: str) -> list[int]:
    """Line number where each element of a top-level JSON array starts (only on the error path)."""
    decoder = json.JSONDecoder()
    lines, position = [], text.index("[") + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return lines
        lines.append(text.count("\n", 0, position) + 1)
        _, position = decoder.raw_decode(text, position)


# -- field validation ----------------------------------------------------------------------
class _RecordProblem(Exception):
    pass


def _string(record: dict, key: str, *, required: bool, non_empty: bool = False) -> str:
    if key not in record or record[key] is None:
        if required:
            raise _RecordProblem(f'missing field "{key}"')
        return ""
    value = record[key]
    if not isinstance(value, str):
        raise _RecordProblem(f'field "{key}" must be text, not {type(value).__name__}')
    if non_empty and not value.strip():
        raise _RecordProblem(f'field "{key}" is empty')
    return value


def _require_object(value: object) -> dict:
    if not isinstance(value, dict):
        raise _RecordProblem(f"expected a JSON object, found {type(value).__name__}")
    return value


def _parse_records(
    path: Path, text: str, parse_one: Callable[[dict], object], *, array: bool
) -> list:
    """Apply ``parse_one`` to every record of a JSON array or JSONL file, naming the failing one."""
    results = []
    if array:
        data = _load_json(path, text)
        if not isinstance(data, list):
            raise FormatError(path, f"expected a JSON array of records, found a {type(data).__name__}")
        for index, item in enumerate(data):
            try:
                results.append(parse_one(_require_object(item)))
            except _RecordProblem as exc:
                line = _array_record_lines(text)[index]
                raise FormatError(path, str(exc), line=line, record=index + 1) from None
    else:
        for number, (line, item) in enumerate(_iter_jsonl(path, text), start=1):
            try:
                results.append(parse_one(_require_object(item)))
            except _RecordProblem as exc:
                raise FormatError(path, str(exc), line=line, record=number) from None
    if not results:
        raise FormatError(path, "the file holds no records")
    return results


# -- prompt templates ----------------------------------------------------------------------
@lru_cache(maxsize=1)
def alpaca_template() -> dict[str, str]:
    return json.loads(resource("templates", "alpaca.json").read_text(encoding="utf-8"))


def alpaca_prompt(instruction: str, input: str) -> str:
    template = alpaca_template()
    if input:
        return template["prompt_input"].format(instruction=instruction, input=input)
    return template["prompt_no_input"].format(instruction=instruction)


def split_alpaca_prompt(prompt: str) -> tuple[str, str]:
    """Inverse of :func:`alpaca_prompt`; a prompt in any other shape is all instruction."""
    template = alpaca_template()
    with_input_head, _, _ = template["prompt_input"].partition("{instruction}")
    between, _, tail = template["prompt_input"].partition("{instruction}")[2].partition("{input}")
    no_input_head, _, no_input_tail = template["prompt_no_input"].partition("{instruction}")
    if prompt.startswith(with_input_head) and prompt.endswith(tail) and between in prompt:
        body = prompt[len(with_input_head): len(prompt) - len(tail)]
        instruction, _, input = body.partition(between)
        return instruction, input
    if prompt.startswith(no_input_head) and prompt.endswith(no_input_tail):
        return prompt[len(no_input_head): len(prompt) - len(no_input_tail)], ""
    return prompt, ""


def chat_user_content(instruction: str, input: str) -> str:
    return f"{instruction}\n\n{input}" if input else instruction


def split_chat_user_content(content: str) -> tuple[str, str]:
    instruction, _, input = content.partition("\n\n")
    return instruction, input


# -- sample formats ------------------------------------------------------------------------
def _alpaca_record(record: dict) -> Record:
    return Record(
        instruction=_string(record, "instruction", required=True, non_empty=True),
        input=_string(record, "input", required=False),
        output=_string(record, "output", required=True),
    )


def _explicit_fields(record: dict) -> tuple[str, str] | None:
    if "instruction" in record:
        return _string(record, "instruction", required=True, non_empty=True), _string(record, "input", required=False)
    return None


def _prompt_completion_record(record: dict) -> Record:
    prompt = _string(record, "prompt", required=True, non_empty=True)
    completion = _string(record, "completion", required=True)
    instruction, input = _explicit_fields(record) or split_alpaca_prompt(prompt)
    return Record(instruction, input, completion)


def _messages_record(record: dict) -> Record:
    messages = record.get("messages", record.get("conversations"))
    if not isinstance(messages, list) or not messages:
        raise _RecordProblem('missing field "messages" (a list of {role, content} objects)')
    user = assistant = None
    for turn in messages:
        if not isinstance(turn, dict):
            raise _RecordProblem("each message must be an object with role and content")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if not isinstance(content, str):
            raise _RecordProblem(f"message content must be text, not {type(content).__name__}")
        if role in ("user", "human") and user is None:
            user = content
        elif role in ("assistant", "gpt") and user is not None and assistant is None:
            assistant = content
    if user is None or not user.strip():
        raise _RecordProblem("no user message")
    if assistant is None:
        raise _RecordProblem("no assistant message after the user message")
    instruction, input = _explicit_fields(record) or split_chat_user_content(user)
    return Record(instruction, input, assistant)


def read_samples(path: Path | str, fmt: str | None = None) -> list[Record]:
    """Every record of a sample file, validated; raises FormatError on the first problem."""
    path = Path(path)
    text = read_text(path)
    fmt = fmt or detect_format(path, text)
    if fmt == ALPACA:
        return _parse_records(path, text, _alpaca_record, array=_is_json_array(text))
    if fmt == JSONL:
        return _parse_records(path, text, _prompt_completion_record, array=False)
    if fmt == MESSAGES:
        return _parse_records(path, text, _messages_record, array=_is_json_array(text))
    if fmt == SEED:
        return [Record(seed.instruction, i.input, i.output) for seed in _seeds_from_text(path, text) for i in seed.instances]
    raise FormatError(path, f"unknown format {fmt!r}; use one of {', '.join(SAMPLE_FORMATS)}")


def _prompt_completion_json(record: Record) -> dict:
    out = {"prompt": alpaca_prompt(record.instruction, record.input), "completion": record.output}
    if split_alpaca_prompt(out["prompt"]) != (record.instruction, record.input):
        out.update(instruction=record.instruction, input=record.input)
    return out


def _messages_json(record: Record) -> dict:
    content = chat_user_content(record.instruction, record.input)
    out: dict = {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": record.output}]}
    if split_chat_user_content(content) != (record.instruction, record.input):
        out.update(instruction=record.instruction, input=record.input)
    return out


def write_samples(path: Path | str, records: Iterable[Record], fmt: str) -> int:
    """Write records atomically in ``fmt``; returns how many were written."""
    records = list(records)
    if fmt == ALPACA:
        payload = [{"instruction": r.instruction, "input": r.input, "output": r.output} for r in records]
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    elif fmt == JSONL:
        atomic_write_lines(path, (json.dumps(_prompt_completion_json(r), ensure_ascii=False) for r in records))
    elif fmt == MESSAGES:
        atomic_write_lines(path, (json.dumps(_messages_json(r), ensure_ascii=False) for r in records))
    else:
        raise ValueError(f"unknown sample format {fmt!r}; use one of {', '.join(SAMPLE_FORMATS)}")
    return len(records)


# -- seed formats --------------------------------------------------------------------------
def _seed_record(record: dict) -> SeedTask:
    instruction = _string(record, "instruction", required=True, non_empty=True)
    raw_instances = record.get("instances")
    if not isinstance(raw_instances, list) or not raw_instances:
        raise _RecordProblem('field "instances" must be a non-empty list of {input, output}')
    instances = []
    for number, item in enumerate(raw_instances, start=1):
        if not isinstance(item, dict):
            raise _RecordProblem(f"instance {number} must be an object with input and output")
        try:
            instances.append(Instance(input=_string(item, "input", required=False), output=_string(item, "output", required=True)))
        except _RecordProblem as exc:
            raise _RecordProblem(f"instance {number}: {exc}") from None
    is_classification = record.get("is_classification", False)
    if not isinstance(is_classification, bool):
        raise _RecordProblem('field "is_classification" must be true or false')
    tags = record.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _RecordProblem('field "tags" must be a list of text')
    ext_id = record.get("id")
    return SeedTask(
        instruction=instruction, instances=instances, name=_string(record, "name", required=False),
        is_classification=is_classification, tags=tags, ext_id=None if ext_id is None else str(ext_id),
    )


def _seeds_from_text(path: Path, text: str) -> list[SeedTask]:
    return _parse_records(path, text, _seed_record, array=_is_json_array(text))


def read_seeds(path: Path | str, fmt: str | None = None) -> list[SeedTask]:
    """Seed tasks from a seed JSONL file, or from any sample file (one instance per record)."""
    path = Path(path)
    text = read_text(path)
    fmt = fmt or detect_format(path, text)
    if fmt == SEED:
        return _seeds_from_text(path, text)
    return [
        SeedTask(instruction=r.instruction, instances=[Instance(r.input, r.output)])
        for r in read_samples(path, fmt)
    ]


def seed_to_json(seed: SeedTask, fallback_id: str) -> dict:
    out = {
        "id": seed.ext_id or fallback_id,
        "name": seed.name,
        "instruction": seed.instruction,
        "instances": [{"input": i.input, "output": i.output} for i in seed.instances],
        "is_classification": seed.is_classification,
    }
    if seed.tags:
        out["tags"] = seed.tags
    return out


def write_seeds(path: Path | str, seeds: Iterable[SeedTask], fmt: str = SEED) -> int:
    seeds = list(seeds)
    if fmt == SEED:
        lines = (json.dumps(seed_to_json(s, f"seed_task_{n}"), ensure_ascii=False) for n, s in enumerate(seeds))
        atomic_write_lines(path, lines)
        return len(seeds)
    records = [Record(s.instruction, i.input, i.output) for s in seeds for i in s.instances]
    return write_samples(path, records, fmt)


# -- detection -----------------------------------------------------------------------------
def _is_json_array(text: str) -> bool:
    return text.lstrip("\ufeff \t\r\n").startswith("[")


def detect_format(path: Path, text: str) -> str:
    """Guess the format from the first record's keys."""
    try:
        if _is_json_array(text):
            decoder = json.JSONDecoder()
            start = text.index("[") + 1
            while start < len(text) and text[start] in " \t\r\n":
                start += 1
            if text[start:start + 1] == "]":
                raise FormatError(path, "the file holds no records")
            first, _ = decoder.raw_decode(text, start)
        else:
            first_line = next(line for line in text.splitlines() if line.strip())
            first = json.loads(first_line)
    except (json.JSONDecodeError, StopIteration, ValueError):
        # Let the real parser produce the precise error with a line number.
        if _is_json_array(text):
            _load_json(path, text)
        list(_iter_jsonl(path, text))
        raise FormatError(path, "cannot tell the format of this file") from None
    if isinstance(first, dict):
        if "instances" in first:
            return SEED
        if "messages" in first or "conversations" in first:
            return MESSAGES
        if "prompt" in first:
            return JSONL
        if "instruction" in first:
            return ALPACA
    raise FormatError(
        path, "cannot tell the format: expected records with instruction/input/output, "
        "instances, prompt/completion or messages", line=1,
    )


# -- atomic writes -------------------------------------------------------------------------
def atomic_write_lines(path: Path | str, lines: Iterable[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
