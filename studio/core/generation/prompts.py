"""Alpaca-mode prompts: k example tasks in, a numbered batch of new tasks out.

The template is a data file (``resources/templates/generate_alpaca.txt``) with ``$num_tasks``
and ``$examples`` placeholders; the run stores the exact text it used, so an edited template
never changes what an old run meant. The parser is deliberately forgiving: teachers add
preambles, markdown bold, ``1.``-style numbering or stray separators, and a batch cut off
by the token limit still holds many good tasks.
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from string import Template

from studio.core.paths import resource

NO_INPUT = "<noinput>"
_EMPTY_INPUTS = {"<noinput>", "<no input>", "noinput", "none", "n/a", "na", "-", "(none)", "no input", "empty"}


def default_template(mode: str = "alpaca") -> str:
    """The shipped template of a mode (self-instruct's is a JSON object of four stage prompts)."""
    name = "self_instruct.json" if mode == "self-instruct" else "generate_alpaca.txt"
    return resource("templates", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Example:
    """One task shown to the teacher; ``seed_id`` is None for an accepted sample mixed in."""

    instruction: str
    input: str
    output: str
    seed_id: int | None = None


@dataclass(frozen=True)
class SeedExample(Example):
    """A seed task as a mode shows it; self-instruct asks classification tasks output-first."""

    is_classification: bool = False


def format_task(number: int, instruction: str, input: str, output: str) -> str:
    return f"Task {number}\nInstruction: {instruction.strip()}\nInput: {input.strip() or NO_INPUT}\nOutput: {output.strip()}"


def build_prompt(template: str, examples: Sequence[Example], num_tasks: int) -> str:
    shown = "\n\n".join(format_task(n, e.instruction, e.input, e.output) for n, e in enumerate(examples, start=1))
    return Template(template).safe_substitute(num_tasks=num_tasks, examples=shown)


def pick_examples(
    rng: random.Random, seeds: Sequence[Example], accepted: Sequence[Example], k: int, accepted_share: float,
) -> list[Example]:
    """``k`` distinct examples: mostly seeds, ``accepted_share`` of them (rounded down) from accepted samples."""
    from_accepted = min(len(accepted), int(k * accepted_share)) if accepted else 0
    chosen = rng.sample(list(accepted), from_accepted) if from_accepted else []
    chosen += rng.sample(list(seeds), min(len(seeds), k - from_accepted))
    rng.shuffle(chosen)
    return chosen


# -- parsing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    instruction: str
    input: str
    output: str
    raw: str = field(default="", compare=False)


@dataclass(frozen=True)
class ParseFailure:
    reason: str  # "parse_error" or "truncated"
    detail: str
    raw: str


@dataclass
class ParseResult:
    candidates: list[Candidate] = field(default_factory=list)
    failures: list[ParseFailure] = field(default_factory=list)


_BOLD = r"[*_]{0,2}"
_BLOCK_START = re.compile(
    rf"^[ \t]*(?:#+[ \t]*)?{_BOLD}Task[ \t]*#?[ \t]*\d+{_BOLD}[ \t]*[:.)]?{_BOLD}[ \t]*$"  # "Task 3", "### Task 3:"
    rf"|^[ \t]*(?:#+[ \t]*)?\d+[ \t]*[.)][ \t]*{_BOLD}Instruction{_BOLD}[ \t]*:",  # "3. Instruction:"
    re.IGNORECASE | re.MULTILINE,
)
_LABEL = re.compile(
    rf"^[ \t]*(?:\d+[ \t]*[.)][ \t]*)?{_BOLD}(Instruction|Input|Output){_BOLD}[ \t]*:{_BOLD}[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_TRAILING_SEPARATOR = re.compile(r"(?:\n[ \t]*(?:#{2,}|-{3,}|\*{3,}|={3,})[ \t]*)+\s*$")


def parse_tasks(text: str, finish_reason: str | None = None) -> ParseResult:
    """Every well-formed task in ``text``; a block cut by the token limit is dropped, not guessed at."""
    result = ParseResult()
    starts = [m.start() for m in _BLOCK_START.finditer(text)]
    if not starts:
        if text.strip():
            result.failures.append(ParseFailure("parse_error", "no numbered tasks found", text))
        return result
    blocks: list[str] = []
    carry = ""
    for a, b in zip(starts, starts[1:] + [len(text)]):
        block = carry + text[a:b]
        # "Task 3" on its own line followed by "3. Instruction:" is one task, not two
        carry = block if not _LABEL.search(block) and b < len(text) else ""
        if not carry:
            blocks.append(block)
    if finish_reason == "length":
        result.failures.append(ParseFailure("truncated", "cut off by the token limit", blocks.pop().strip()))
    for block in blocks:
        parsed = _parse_block(block)
        if isinstance(parsed, Candidate):
            result.candidates.append(parsed)
        else:
            result.failures.append(ParseFailure("parse_error", parsed, block.strip()))
    return result


def _parse_block(block: str) -> Candidate | str:
    """A candidate, or why the block is not one."""
    fields: dict[str, str] = {}
    labels = list(_LABEL.finditer(block))
    for label, following in zip(labels, labels[1:] + [None]):
        name = label.group(1).lower()
        end = following.start() if following else len(block)
        if name not in fields:  # a repeated label belongs to the text of the field before it
            fields[name] = block[label.end():end]
    if "instruction" not in fields:
        return "no Instruction field"
    if "output" not in fields:
        return "no Output field"
    instruction = _clean(fields["instruction"])
    input_text = _clean(fields.get("input", ""))
    if input_text.strip().lower() in _EMPTY_INPUTS:
        input_text = ""
    output = _clean(fields["output"])
    if not instruction:
        return "empty instruction"
    return Candidate(instruction, input_text, output, raw=block.strip())


def _clean(value: str) -> str:
    return _TRAILING_SEPARATOR.sub("", value).strip()
