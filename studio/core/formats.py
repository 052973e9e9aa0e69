"""Dataset formats: how seed tasks and samples are read from and written to files.

Each format is a :class:`DatasetFormat` registered in ``registry.DATASET_FORMATS``, the
built-ins exactly as a plugin's will be, so adding a format is one registry entry: the
functions below (reading, writing, detection, the choices a CLI or a file dialog offers)
dispatch through the registry and name no format themselves. The built-ins:

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

import codecs
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from studio.core import registry
from studio.core.errors import FormatError, StudioError
from studio.core.jobs import Progress, Steps, run_to_end
from studio.core.paths import resource
from studio.core.plugins.boundary import PluginError
from studio.core.plugins.model import DISABLED
from studio.core.registry import RegistryError
from studio.core.seeds import Instance, SeedTask

# Keys of the built-in formats (they appear in saved settings and on command lines).
SEED, ALPACA, JSONL, MESSAGES = "seed", "alpaca", "jsonl", "messages"
# What a file holds.
SEEDS, SAMPLES = "seeds", "samples"


class Record(NamedTuple):
    """One instruction-following example, as every sample format sees it (a tuple: cheap in bulk)."""

    instruction: str
    input: str = ""
    output: str = ""


@dataclass(frozen=True)
class DatasetFormat:
    """One file format. ``key`` must equal its registry key.

    Every format reads both kinds: a sample file gives one seed task per record, and a seed
    file gives each of its instances as a sample. Writing needs ``write_samples`` (which also
    writes seed tasks, one record per instance) or ``write_seeds``; a format without
    ``write_samples`` is offered only where seed tasks are written.
    """

    key: str
    title: str  # what a chooser shows, e.g. "Alpaca JSON"
    extensions: tuple[str, ...]  # the first is the one a save dialog suggests
    sniff: Callable[[Path, str], bool]  # (path, text) -> "this file is mine"; must not raise
    read_samples: Callable[[Path, str], list[Record]]  # validates everything or raises FormatError
    write_samples: Callable[[Path, list[Record]], None] | None = None  # atomic
    read_seeds: Callable[[Path, str], list[SeedTask]] | None = None
    write_seeds: Callable[[Path, list[SeedTask]], None] | None = None  # atomic
    shape: str = ""  # the record's keys, for the "cannot tell the format" message
    generic: bool = False  # sniff accepts a wide shape, so detection tries it after the specific ones
    # read_samples as a job (yields Progress, returns the records), so an import shows progress and
    # can be cancelled; None: read_samples runs in one piece
    read_samples_steps: Callable[[Path, str], Steps[list[Record]]] | None = None

    @property
    def holds(self) -> str:
        """The kind one record of this format is."""
        return SEEDS if self.read_seeds is not None else SAMPLES

    @property
    def reads(self) -> frozenset[str]:
        return frozenset((SEEDS, SAMPLES))

    @property
    def writes(self) -> frozenset[str]:
        kinds = set()
        if self.write_samples is not None:
            kinds.update((SAMPLES, SEEDS))
        if self.write_seeds is not None:
            kinds.add(SEEDS)
        return frozenset(kinds)


# -- reading raw text ----------------------------------------------------------------------
def read_text(path: Path) -> str:
    """The file as text; empty files and non-UTF-8 bytes are errors with a line number.

    Decoded in slices: one ``bytes.decode`` of a 30 MB file holds the GIL for tens of
    milliseconds, long enough to stall the window while an import runs on a worker thread.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except OSError as exc:
        raise FormatError(path, f"cannot read the file ({exc.strerror})") from None
    if not data or data.isspace():  # what data.strip() tested, without copying the file
        raise FormatError(path, "the file is empty")
    try:
        return "".join(_decoded_slices(data))
    except UnicodeDecodeError:
        pass  # the error path: decode again in one piece for the exact offset
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(
            path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded); save the file as UTF-8",
            line=line,
        ) from None


_SLICE = 1 << 20  # bytes or characters one C call handles: a millisecond or so of GIL at a time


def _decoded_slices(data: bytes) -> Iterator[str]:
    """UTF-8 ``data`` (less a leading BOM) decoded a slice at a time, each cut before a character's first byte."""
    view = memoryview(data)
    start = 3 if data.startswith(codecs.BOM_UTF8) else 0
    while start < len(data):
        end = min(start + _SLICE, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte: not a character's start
            end += 1
        yield str(view[start:end], "utf-8")
        start = end


def _lines(text: str) -> Iterator[str]:
    """``text.splitlines()`` a megabyte at a time (cut after a newline), so no one call holds the GIL long."""
    start = 0
    while start < len(text):
        cut = text.find("\n", start + _SLICE)
        end = len(text) if cut < 0 else cut + 1
        yield from text[start:end].splitlines()
        start = end


def _iter_jsonl(path: Path, text: str) -> Iterator[tuple[int, object]]:
    for line_number, line in enumerate(_lines(text), start=1):
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


_JSON_SPACE = re.compile(r"[ \t\n\r]*")  # what json's own scanner skips


def _iter_array(path: Path, text: str) -> Iterator[tuple[int, object]]:
    """(offset, value) of each element of the JSON array ``text``, decoded one element per call.

    ``json.loads`` of a whole 30 MB array is one C call that holds the GIL for ~150 ms, freezing
    the window while an import runs on a worker thread; between these calls the GIL can switch.
    Errors are the ones ``json.loads`` raises, at the same line and column.
    """
    def fail(message: str, position: int) -> FormatError:
        exc = json.JSONDecodeError(message, text, position)
        return FormatError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)

    if text.startswith("\ufeff"):
        raise fail("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0)
    position = _JSON_SPACE.match(text).end()
    if not text.startswith("[", position):
        data = _load_json(path, text)  # not an array: json's own message, or this one
        raise FormatError(path, f"expected a JSON array of records, found a {type(data).__name__}")
    position = _JSON_SPACE.match(text, position + 1).end()
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            try:
                value, end = _DECODER.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                raise fail(exc.msg, exc.pos) from None
            yield position, value
            position = _JSON_SPACE.match(text, end).end()
            if text.startswith("]", position):
                position += 1
                break
            if not text.startswith(",", position):
                raise fail("Expecting ',' delimiter", position)
            position = _JSON_SPACE.match(text, position + 1).end()
    position = _JSON_SPACE.match(text, position).end()
    if position != len(text):
        raise fail("Extra data", position)


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


RECORDS_PER_PROGRESS = 2000  # a Progress (and a chance to cancel) this often while validating


def _parse_records_steps(
    path: Path, text: str, parse_one: Callable[[dict], object], *, array: bool
) -> Steps[list]:
    """Apply ``parse_one`` to every record of a JSON array or JSONL file, naming the failing one.

    A job: yields :class:`Progress` in characters of ``text`` read (the record count is not
    known until the end) and returns the parsed records.
    """
    results: list = []
    items = _iter_array(path, text) if array else _iter_jsonl(path, text)  # JSONL: (line number, value)
    message = f"Reading {path.name}"
    for number, (where, item) in enumerate(items, start=1):
        try:
            results.append(parse_one(_require_object(item)))
        except _RecordProblem as exc:
            line = text.count("\n", 0, where) + 1 if array else where
            raise FormatError(path, str(exc), line=line, record=number) from None
        if number % RECORDS_PER_PROGRESS == 0:
            yield Progress(where if array else number, len(text) if array else None, message)
    if not results:
        raise FormatError(path, "the file holds no records")
    return results


def _parse_records(path: Path, text: str, parse_one: Callable[[dict], object], *, array: bool) -> list:
    """:func:`_parse_records_steps` run to its end, for callers that are not jobs."""
    return run_to_end(_parse_records_steps(path, text, parse_one, array=array))


# -- prompt templates ----------------------------------------------------------------------
@lru_cache(maxsize=1)
def alpaca_template() -> dict[str, str]:
    """The prompt/completion exports' Alpaca text: alpaca-lora's variant (a newline after "### Response:"),
    which most instruction-tuning tools read; the training formats live in ``core/training/prompt_format``."""
    return json.loads(resource("templates", "alpaca-lora.json").read_text(encoding="utf-8"))


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


# -- the built-in record shapes -------------------------------------------------------------
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



# -- the first record, for detection ----------------------------------------------------------
_LEADING_SPACE = re.compile(r"[\ufeff \t\r\n]*")
_DECODER = json.JSONDecoder()


def _is_json_array(text: str) -> bool:
    return text.startswith("[", _LEADING_SPACE.match(text).end())


def _first_record_at(text: str) -> tuple[int, Any]:
    """(offset, value) of the first record of a JSON array or JSONL text, without parsing the rest."""
    start = _LEADING_SPACE.match(text).end()
    if text.startswith("[", start):
        start = _LEADING_SPACE.match(text, start + 1).end()
        if text.startswith("]", start):
            raise ValueError("empty array")
        return start, _DECODER.raw_decode(text, start)[0]
    end = text.find("\n", start)
    return start, json.loads(text[start:] if end < 0 else text[start:end])


def first_record(text: str) -> Any:
    """The first record of a JSON array or JSONL file, or None if it does not parse: for sniffers."""
    try:
        return _first_record_at(text)[1]
    except ValueError:  # json.JSONDecodeError is a ValueError
        return None


def _first_keys(text: str) -> frozenset[str]:
    record = first_record(text)
    return frozenset(record) if isinstance(record, dict) else frozenset()


# -- the built-in formats ---------------------------------------------------------------------
def _alpaca_steps(path: Path, text: str) -> Steps[list[Record]]:
    return _parse_records_steps(path, text, _alpaca_record, array=_is_json_array(text))


def _read_alpaca(path: Path, text: str) -> list[Record]:
    return run_to_end(_alpaca_steps(path, text))


def _write_alpaca(path: Path, records: list[Record]) -> None:
    payload = [{"instruction": r.instruction, "input": r.input, "output": r.output} for r in records]
    atomic_write_text(path, json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


def _prompt_completion_steps(path: Path, text: str) -> Steps[list[Record]]:
    return _parse_records_steps(path, text, _prompt_completion_record, array=False)


def _read_prompt_completion(path: Path, text: str) -> list[Record]:
    return run_to_end(_prompt_completion_steps(path, text))


def _write_prompt_completion(path: Path, records: list[Record]) -> None:
    atomic_write_lines(path, (json.dumps(_prompt_completion_json(r), ensure_ascii=False) for r in records))


def _messages_steps(path: Path, text: str) -> Steps[list[Record]]:
    return _parse_records_steps(path, text, _messages_record, array=_is_json_array(text))


def _read_messages(path: Path, text: str) -> list[Record]:
    return run_to_end(_messages_steps(path, text))


def _write_messages(path: Path, records: list[Record]) -> None:
    atomic_write_lines(path, (json.dumps(_messages_json(r), ensure_ascii=False) for r in records))


def _read_seed_tasks(path: Path, text: str) -> list[SeedTask]:
    return _parse_records(path, text, _seed_record, array=_is_json_array(text))


def _seed_instance_steps(path: Path, text: str) -> Steps[list[Record]]:
    seeds = yield from _parse_records_steps(path, text, _seed_record, array=_is_json_array(text))
    return [Record(seed.instruction, i.input, i.output) for seed in seeds for i in seed.instances]


def _read_seed_instances(path: Path, text: str) -> list[Record]:
    return run_to_end(_seed_instance_steps(path, text))


def _write_seed_tasks(path: Path, seeds: list[SeedTask]) -> None:
    atomic_write_lines(path, (json.dumps(seed_to_json(s, f"seed_task_{n}"), ensure_ascii=False) for n, s in enumerate(seeds)))


SEED_FORMAT = DatasetFormat(
    key=SEED, title="Self-instruct seed JSONL", extensions=(".jsonl",),
    sniff=lambda _path, text: "instances" in _first_keys(text),
    read_samples=_read_seed_instances, read_seeds=_read_seed_tasks, write_seeds=_write_seed_tasks,
    read_samples_steps=_seed_instance_steps,
    shape="instruction, instances",
)
ALPACA_FORMAT = DatasetFormat(
    key=ALPACA, title="Alpaca JSON", extensions=(".json",),
    sniff=lambda _path, text: "instruction" in _first_keys(text),
    read_samples=_read_alpaca, write_samples=_write_alpaca, read_samples_steps=_alpaca_steps,
    shape="instruction, input, output", generic=True,  # seed, chat and prompt records may carry "instruction" too
)
PROMPT_COMPLETION_FORMAT = DatasetFormat(
    key=JSONL, title="Prompt/completion JSONL", extensions=(".jsonl",),
    sniff=lambda _path, text: "prompt" in _first_keys(text),
    read_samples=_read_prompt_completion, write_samples=_write_prompt_completion,
    read_samples_steps=_prompt_completion_steps,
    shape="prompt, completion",
)
MESSAGES_FORMAT = DatasetFormat(
    key=MESSAGES, title="Chat messages JSONL", extensions=(".jsonl",),
    sniff=lambda _path, text: bool(_first_keys(text) & {"messages", "conversations"}),
    read_samples=_read_messages, write_samples=_write_messages, read_samples_steps=_messages_steps,
    shape="messages",
)


# -- the registry's formats -------------------------------------------------------------------
def get_format(key: str) -> DatasetFormat:
    """The registered format ``key`` (imported on first use); RegistryError if unknown or broken."""
    return registry.DATASET_FORMATS.load_instance(key, DatasetFormat)


def registered_formats() -> list[DatasetFormat]:
    """Every format that loads, in registration order. A broken plugin is left out here (so the
    rest keep working) and reported when it is asked for by name."""
    return _load_formats()[0]


def _load_formats() -> tuple[list[DatasetFormat], list[str]]:
    """The formats that load, and for each plugin format that does not, its error (naming the plugin)."""
    loaded, broken = [], []
    for entry in registry.DATASET_FORMATS.entries():
        try:
            loaded.append(get_format(entry.key))
        except RegistryError as exc:  # recorded for Help > Plugins by the registry
            broken.append(str(exc))
    return loaded, broken


def format_keys(kind: str, *, writing: bool = False) -> tuple[str, ...]:
    """Keys of the formats that read (or, with ``writing``, write) ``kind``: SEEDS or SAMPLES."""
    return tuple(f.key for f in registered_formats() if kind in (f.writes if writing else f.reads))


def sample_formats() -> tuple[str, ...]:
    """Formats samples can be written in (and read back from)."""
    return format_keys(SAMPLES, writing=True)


def seed_formats() -> tuple[str, ...]:
    """Formats seed tasks can be written in."""
    return format_keys(SEEDS, writing=True)


def __getattr__(name: str) -> tuple[str, ...]:
    # The old constants, computed on each use so a format registered later shows up.
    if name == "SAMPLE_FORMATS":
        return sample_formats()
    if name == "SEED_FORMATS":
        return seed_formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _guard(dataset_format: DatasetFormat, action: str):
    """The registry boundary around a call into a format's code: a plugin's bug becomes a PluginError naming it."""
    return registry.DATASET_FORMATS.guard(dataset_format.key, action)


def _chosen(path: Path, key: str) -> DatasetFormat:
    try:
        return get_format(key)
    except RegistryError as exc:
        raise FormatError(path, str(exc)) from None


def detect_format(path: Path | str, text: str) -> str:
    """The key of the first format whose sniff accepts the file: specific shapes first, generic last."""
    path = Path(path)
    candidates, broken = _load_formats()
    try:
        return _detect(path, text, candidates)
    except FormatError as exc:
        disabled = _disabled_format_hint(path, candidates)
        if disabled:
            raise FormatError(path, disabled) from None  # not "invalid JSON": the file is in that plugin's format
        if not broken:
            raise
        # The file may well be in a broken plugin's format (a .tsv for a TSV plugin that fails at import):
        # say so, naming the plugin, rather than only "invalid JSON".
        raise FormatError(path, f"{exc.problem}. Not tried: {'; '.join(b.rstrip('.') for b in broken)}",
                          line=exc.line, record=exc.record) from None


def _disabled_format_hint(path: Path, candidates: list[DatasetFormat]) -> str:
    """"The plugin X (disabled) has one" for a file no enabled format claims by extension, from the
    records discovery made (plain data: no plugin code is imported); "" when none fits."""
    from studio.core.plugins import discovery  # late: discovery imports the registry

    suffix = path.suffix.lower()
    if not suffix or any(suffix in f.extensions for f in candidates):
        return ""
    names = []
    for record in discovery._records or ():
        for contribution in record.contributions:
            declared = contribution.meta.get("extensions")
            declared = [str(e).lower() for e in declared] if isinstance(declared, (list, tuple)) else None
            if (record.state == DISABLED and contribution.point == "dataset_formats"
                    and (declared is None or suffix in declared) and record.name not in names):
                names.append(record.name)
    if not names:
        return ""
    plugins = ", ".join(f"the plugin {n!r} (disabled)" for n in names)
    return (f"no enabled format reads {suffix} files; {plugins} has one: "
            f"{'; '.join(f'distill-studio plugins enable {n}' for n in names)}")


def _detect(path: Path, text: str, candidates: list[DatasetFormat]) -> str:
    for dataset_format in sorted(candidates, key=lambda f: f.generic):  # stable: registration order otherwise
        try:
            with _guard(dataset_format, f"detecting the format of {path}"):
                if dataset_format.sniff(path, text):
                    return dataset_format.key
        except PluginError:
            continue  # a broken plugin's sniff is skipped (and recorded): the other formats still decide
    try:
        offset, _ = _first_record_at(text)
    except ValueError:
        _raise_first_record_error(path, text)
        raise FormatError(path, "cannot tell the format of this file") from None
    shapes = "; ".join(f"{f.shape} ({f.key})" for f in candidates if f.shape)
    raise FormatError(path, f"cannot tell the format: expected records with {shapes}", line=text.count("\n", 0, offset) + 1)


def _raise_first_record_error(path: Path, text: str) -> None:
    """The precise error (line, column) for a file whose first record does not parse."""
    if _is_json_array(text):
        if _load_json(path, text) == []:
            raise FormatError(path, "the file holds no records")
    else:
        next(_iter_jsonl(path, text), None)


def read_samples(path: Path | str, fmt: str | None = None) -> list[Record]:
    """Every record of a file (``fmt``, or detected), validated; raises FormatError on the first problem."""
    path = Path(path)
    text = read_text(path)
    dataset_format = _chosen(path, fmt or detect_format(path, text))
    with _guard(dataset_format, f"reading {path}"):
        return dataset_format.read_samples(path, text)


def read_samples_steps(path: Path | str, fmt: str | None = None) -> Steps[list[Record]]:
    """:func:`read_samples` as a job: yields Progress while reading and validating, returns the records."""
    path = Path(path)
    yield Progress(0, None, f"Reading {path.name}")
    text = read_text(path)
    dataset_format = _chosen(path, fmt or detect_format(path, text))
    with _guard(dataset_format, f"reading {path}"):
        if dataset_format.read_samples_steps is None:
            return dataset_format.read_samples(path, text)
        return (yield from dataset_format.read_samples_steps(path, text))


def write_samples(path: Path | str, records: Iterable[Record], fmt: str) -> int:
    """Write records atomically in ``fmt``; returns how many were written."""
    path = Path(path)
    dataset_format = _chosen(path, fmt)
    if dataset_format.write_samples is None:
        raise StudioError(
            f"{path}: the {fmt} format holds seed tasks, not samples; write samples as one of "
            f"{', '.join(sample_formats())}."
        )
    records = list(records)
    with _guard(dataset_format, f"writing {path}"):
        dataset_format.write_samples(path, records)
    return len(records)


def read_seeds(path: Path | str, fmt: str | None = None) -> list[SeedTask]:
    """Seed tasks from a seed file, or from any sample file (one task per record)."""
    path = Path(path)
    text = read_text(path)
    dataset_format = _chosen(path, fmt or detect_format(path, text))
    with _guard(dataset_format, f"reading {path}"):
        if dataset_format.read_seeds is not None:
            return dataset_format.read_seeds(path, text)
        records = dataset_format.read_samples(path, text)
    return [SeedTask(instruction=r.instruction, instances=[Instance(r.input, r.output)]) for r in records]


def write_seeds(path: Path | str, seeds: Iterable[SeedTask], fmt: str = SEED) -> int:
    """Write seed tasks atomically; a sample format gets one record per instance. Returns records written."""
    path = Path(path)
    dataset_format = _chosen(path, fmt)
    seeds = list(seeds)
    if dataset_format.write_seeds is not None:
        with _guard(dataset_format, f"writing {path}"):
            dataset_format.write_seeds(path, seeds)
        return len(seeds)
    return write_samples(path, (Record(s.instruction, i.input, i.output) for s in seeds for i in s.instances), fmt)


# -- what a file dialog offers ----------------------------------------------------------------
@dataclass(frozen=True)
class _Choice:
    """What a file dialog shows of one format: read from a plugin's manifest when it declares its
    ``extensions``, so opening the dialog (on the GUI thread) imports no plugin code."""

    key: str
    title: str
    extensions: tuple[str, ...]
    reads: frozenset[str]
    writes: frozenset[str]


def _choices() -> list[_Choice]:
    choices = []
    for entry in registry.DATASET_FORMATS.entries():
        declared = entry.meta.get("extensions")
        if not entry.built_in and isinstance(declared, (list, tuple)) and declared:
            # A declared plugin format is offered for both kinds; what it cannot write is said by the export job.
            both = frozenset((SEEDS, SAMPLES))
            choices.append(_Choice(entry.key, entry.label, tuple(str(e).lower() for e in declared), both, both))
            continue
        try:
            f = get_format(entry.key)
        except RegistryError:  # recorded for Help > Plugins by the registry
            continue
        choices.append(_Choice(f.key, f.title, f.extensions, f.reads, f.writes))
    return choices


def _dialog_label(choice: _Choice) -> str:
    return f"{choice.title} ({' '.join('*' + e for e in choice.extensions)})"


def file_dialog_filter(kind: str, *, writing: bool = False) -> str:
    """A Qt file-dialog filter string listing the registered formats for ``kind`` (SEEDS or SAMPLES).

    Open dialogs start with every known extension at once; :func:`format_for_filter` maps the
    chosen entry of a save dialog back to a format key.
    """
    chosen = [f for f in _choices() if kind in (f.writes if writing else f.reads)]
    items = [_dialog_label(f) for f in chosen]
    if not writing:
        patterns = dict.fromkeys("*" + e for f in chosen for e in f.extensions)
        items.insert(0, f"All supported files ({' '.join(patterns)})")
    items.append("All files (*)")
    return ";;".join(items)


def format_for_filter(selected_filter: str) -> str | None:
    """The key behind an entry of :func:`file_dialog_filter` (None for the catch-all entries)."""
    for choice in _choices():
        if _dialog_label(choice) == selected_filter:
            return choice.key
    return None


def format_for_path(path: Path | str, kind: str) -> str | None:
    """The first format writing ``kind`` whose extensions include the file's (None if none does)."""
    suffix = Path(path).suffix.lower()
    for choice in _choices():
        if kind in choice.writes and suffix in choice.extensions:
            return choice.key
    return None



# -- atomic writes -------------------------------------------------------------------------
class FileWriteError(StudioError):
    """A file could not be written; whatever was at ``path`` before is left as it was."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot write {self.path}: {reason}")


def _new_file_mode() -> int:
    """The mode a plainly created file gets (0o644 under the usual umask); read once, at import."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()  # mkstemp makes 0o600 files: exports must stay readable by other tools


def atomic_write_lines(path: Path | str, lines: Iterable[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename over it.

    An operating-system failure (no such folder, read-only disk, disk full) becomes a
    :class:`FileWriteError` naming ``path`` rather than the temporary file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FileWriteError(path, os_reason(exc)) from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, NEW_FILE_MODE)
        os.replace(temp_name, path)
    except BaseException as exc:
        Path(temp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise FileWriteError(path, os_reason(exc)) from exc
        raise


def os_reason(exc: OSError) -> str:
    """The operating system's words for a failure, without errno numbers or temporary names."""
    return exc.strerror or str(exc) or type(exc).__name__
