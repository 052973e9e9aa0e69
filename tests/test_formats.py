"""Every format round-trips losslessly; every malformed file is refused whole, with file and line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core import formats
from studio.core.errors import FormatError
from studio.core.formats import Record
from studio.core.seeds import Instance, SeedTask

TRICKY = [
    Record("Summarise the text.", "A long text.\n\nWith a second paragraph.", "Short."),
    Record("No input here", "", "Answer"),
    Record("Instruction with\n\na blank line inside", "and an input", "out"),
    Record("Instruction with a blank line\n\nbut no input", "", "out"),
    Record("Mentions ### Input:\n in the instruction", "x", "y"),
    Record("Unicode: café, 東京, emoji 🙂", "ünïcödé input", "réponse"),
    Record("Empty output is allowed", "", ""),
    Record("Trailing whitespace ", " input with spaces ", " output\n"),
]


@pytest.mark.parametrize("fmt", formats.SAMPLE_FORMATS)
def test_sample_formats_round_trip_losslessly(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"data.{fmt}"
    assert formats.write_samples(path, TRICKY, fmt) == len(TRICKY)
    assert formats.read_samples(path) == TRICKY  # detected, not told
    assert formats.read_samples(path, fmt) == TRICKY


def test_plain_records_carry_no_extra_keys(tmp_path: Path) -> None:
    """Extra instruction/input keys appear only where the text alone would be ambiguous."""
    formats.write_samples(tmp_path / "m.jsonl", TRICKY[:2], formats.MESSAGES)
    formats.write_samples(tmp_path / "p.jsonl", TRICKY[:2], formats.JSONL)
    for name in ("m.jsonl", "p.jsonl"):
        for line in (tmp_path / name).read_text().splitlines():
            assert "instruction" not in json.loads(line)
    prompt = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])["prompt"]
    assert prompt.startswith("Below is an instruction") and prompt.endswith("### Response:\n")


def test_seed_jsonl_round_trip(tmp_path: Path) -> None:
    seeds = [
        SeedTask(name="a", instruction="Classify", instances=[Instance("x", "yes"), Instance("y", "no")],
                 is_classification=True, tags=["cls"], ext_id="seed_task_0"),
        SeedTask(name="b", instruction="Tell me a fact.", instances=[Instance("", "Water is wet.")], ext_id="seed_task_1"),
    ]
    formats.write_seeds(tmp_path / "s.jsonl", seeds)
    assert formats.read_seeds(tmp_path / "s.jsonl") == seeds


def test_seeds_from_alpaca_records(tmp_path: Path) -> None:
    formats.write_samples(tmp_path / "a.json", TRICKY[:2], formats.ALPACA)
    seeds = formats.read_seeds(tmp_path / "a.json")
    assert [(s.instruction, s.instances) for s in seeds] == [
        (TRICKY[0].instruction, [Instance(TRICKY[0].input, TRICKY[0].output)]),
        (TRICKY[1].instruction, [Instance("", "Answer")]),
    ]


def test_foreign_chat_files_read_sharegpt_and_system_turns(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello"}]}) + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}) + "\n"
    )
    assert formats.read_samples(path) == [Record("Hi", "", "Hello"), Record("Q", "", "A")]


MALFORMED = {
    "bad_json_array": ('[{"instruction": "a", "output": "b"},\n {"instruction": "c", "output": }]', 2, "invalid JSON"),
    "bad_json_line": ('{"instruction": "a", "output": "b"}\n{"instruction": "c" "output": "d"}\n', 2, "invalid JSON"),
    "missing_output": ('[{"instruction": "a", "output": "b"},\n {"instruction": "c"}]', 2, 'missing field "output"'),
    "mistyped_input": ('{"instruction": "a", "output": "b"}\n\n{"instruction": "c", "input": 5, "output": "d"}\n', 3,
                       'field "input" must be text, not int'),
    "empty_instruction": ('[\n  {"instruction": "   ", "output": "b"}\n]', 2, 'field "instruction" is empty'),
    "not_an_object": ('[{"instruction": "a", "output": "b"}, 7]', 1, "expected a JSON object"),
    "not_utf8": (b'[{"instruction": "a", "output": "b"},\n{"instruction": "caf\xe9", "output": "b"}]', 2, "not UTF-8"),
    "empty_file": ("", None, "the file is empty"),
    "whitespace_only": ("  \n\n ", None, "the file is empty"),
    "empty_array": ("[]", None, "holds no records"),
    "not_an_array": ('{"instruction": "a", "output": "b", "x": [1,', 1, "invalid JSON"),
    "unknown_shape": ('{"question": "a", "answer": "b"}\n', 1, "cannot tell the format"),
    "messages_without_assistant": ('{"messages": [{"role": "user", "content": "hi"}]}\n', 1, "no assistant message"),
    "seed_without_instances": ('{"instruction": "a", "instances": []}\n', 1, '"instances" must be a non-empty list'),
    "seed_instance_without_output": ('{"instruction": "a", "instances": [{"input": "x"}]}\n', 1,
                                     'instance 1: missing field "output"'),
    "seed_bad_flag": ('{"instruction": "a", "instances": [{"input": "", "output": "o"}], "is_classification": "yes"}\n',
                      1, "is_classification"),
}


def write_malformed(tmp_path: Path, case: str) -> Path:
    content = MALFORMED[case][0]
    suffix = ".json" if content[:1] in ("[", b"[") else ".jsonl"
    path = tmp_path / f"{case}{suffix}"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_name_file_line_and_problem(tmp_path: Path, case: str) -> None:
    _, line, problem = MALFORMED[case]
    path = write_malformed(tmp_path, case)
    reader = formats.read_seeds if case.startswith("seed_") else formats.read_samples
    with pytest.raises(FormatError) as caught:
        reader(path)
    message = str(caught.value)
    assert str(path) in message and problem in message
    assert caught.value.line == line
    if line is not None:
        assert f"line {line}" in message


def test_record_number_is_reported_for_arrays(tmp_path: Path) -> None:
    path = write_malformed(tmp_path, "missing_output")
    with pytest.raises(FormatError, match=r"line 2 \(record 2\)"):
        formats.read_samples(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="file not found"):
        formats.read_samples(tmp_path / "absent.json")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")

    def exploding():
        yield "first line"
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        formats.atomic_write_lines(target, exploding())
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_real_alpaca_data_round_trips_through_every_format(tmp_path: Path, shared_data: Path) -> None:
    records = formats.read_samples(shared_data / "alpaca_sample_2000.json")
    assert len(records) == 2000
    for fmt in formats.SAMPLE_FORMATS:
        formats.write_samples(tmp_path / f"out-{fmt}", records, fmt)
        assert formats.read_samples(tmp_path / f"out-{fmt}") == records
