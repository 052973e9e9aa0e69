"""Every format round-trips losslessly; every malformed file is refused whole, with file and line;
a format or exporter registered like a plugin's is read, written, detected and offered like a built-in."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core import exports, formats, registry
from studio.core.errors import FormatError, StudioError
from studio.core.formats import Record
from studio.core.registry import RegistryError
from studio.core.seeds import Instance, SeedTask

BUILT_IN_SAMPLE_FORMATS = (formats.ALPACA, formats.JSONL, formats.MESSAGES)

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


def test_the_built_in_formats_come_from_the_registry() -> None:
    assert formats.SAMPLE_FORMATS == formats.sample_formats() == BUILT_IN_SAMPLE_FORMATS
    assert formats.SEED_FORMATS == (formats.SEED, *BUILT_IN_SAMPLE_FORMATS)
    assert exports.EXPORT_FORMATS == (*BUILT_IN_SAMPLE_FORMATS, exports.HF, exports.PARQUET)
    assert [f.key for f in formats.registered_formats()] == registry.DATASET_FORMATS.keys()
    # Choosers show the entry's title without importing; file dialogs show the object's: the same words.
    for entry in registry.DATASET_FORMATS:
        assert formats.get_format(entry.key).title == entry.title
    for entry in registry.DATASET_EXPORTERS:
        assert exports.get_exporter(entry.key).title == entry.title


@pytest.mark.parametrize("fmt", BUILT_IN_SAMPLE_FORMATS)
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
    for fmt in BUILT_IN_SAMPLE_FORMATS:
        formats.write_samples(tmp_path / f"out-{fmt}", records, fmt)
        assert formats.read_samples(tmp_path / f"out-{fmt}") == records


def test_detection_prefers_the_specific_shape_over_the_generic_one(tmp_path: Path) -> None:
    """Prompt, chat and seed records may carry an "instruction" key too; Alpaca is only the fallback."""
    cases = {
        formats.JSONL: {"prompt": "p", "completion": "c", "instruction": "i", "input": ""},
        formats.MESSAGES: {"messages": [], "instruction": "i"},
        formats.SEED: {"instruction": "i", "instances": []},
        formats.ALPACA: {"instruction": "i", "output": "o"},
    }
    for expected, record in cases.items():
        assert formats.detect_format(tmp_path / "x.jsonl", "\n\n" + json.dumps(record) + "\n") == expected
        assert formats.detect_format(tmp_path / "x.json", " [\n " + json.dumps(record) + "]") == expected


def test_writing_samples_in_the_seed_format_is_refused_in_words(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="holds seed tasks, not samples; write samples as one of alpaca"):
        formats.write_samples(tmp_path / "s.jsonl", TRICKY, formats.SEED)
    assert not (tmp_path / "s.jsonl").exists()


def test_a_write_failure_names_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    target = tmp_path / "a-file" / "out.json"
    with pytest.raises(formats.FileWriteError) as caught:
        formats.write_samples(target, TRICKY, formats.ALPACA)
    assert str(caught.value).startswith(f"cannot write {target}: ") and ".tmp" not in str(caught.value)


def test_a_split_export_is_all_or_nothing(tmp_path: Path) -> None:
    """A failure writing the second part leaves neither part, no temporary file, and the old files."""
    (tmp_path / "data-train.json").write_text("old train")
    calls = []

    def second_fails(target: Path, records) -> None:
        calls.append(target)
        if len(calls) == 2:
            formats.atomic_write_text(target / "under-a-file", "")  # fails, naming the temporary part file
        formats.write_samples(target, records, formats.ALPACA)

    parts = exports.split(TRICKY, 0.25, seed=1)
    with pytest.raises(formats.FileWriteError) as caught:
        exports.write_file_parts(tmp_path / "data.json", parts, second_fails)
    assert str(caught.value).startswith(f"cannot write {tmp_path / 'data.json'}: ")
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data-train.json"]
    assert (tmp_path / "data-train.json").read_text() == "old train"
    written = exports.export(tmp_path / "data.json", TRICKY, formats.ALPACA, val_fraction=0.25, seed=1)
    assert formats.read_samples(written["train"]) == parts["train"]
    assert formats.read_samples(written["validation"]) == parts["validation"]


def test_exported_files_get_the_usual_mode_not_the_temporary_files_0600(tmp_path: Path) -> None:
    written = exports.export(tmp_path / "d.parquet", TRICKY, exports.PARQUET, val_fraction=0.25)
    formats.write_samples(tmp_path / "d.json", TRICKY, formats.ALPACA)
    for path in (*written.values(), tmp_path / "d.json"):
        assert path.stat().st_mode & 0o777 == formats.NEW_FILE_MODE != 0o600


def test_an_unknown_exporter_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="Unknown export format 'nope'; use one of alpaca, jsonl, messages, hf"):
        exports.export(tmp_path / "x", TRICKY, "nope")


# -- a format and an exporter registered the way a plugin registers them ------------------------
CSV_COLUMNS = ["instruction", "input", "output"]


def _read_csv(path: Path, text: str) -> list[Record]:
    rows = csv.reader(io.StringIO(text, newline=""))
    if next(rows) != CSV_COLUMNS:
        raise FormatError(path, f"the first line must be {','.join(CSV_COLUMNS)}", line=1)
    records = []
    for row in rows:
        if len(row) != len(CSV_COLUMNS):
            raise FormatError(path, f"expected 3 columns, found {len(row)}", line=rows.line_num)
        records.append(Record(*row))
    return records


def _write_csv(path: Path, records: list[Record]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(records)
    formats.atomic_write_text(path, buffer.getvalue())


CSV_FORMAT = formats.DatasetFormat(
    key="csv", title="CSV (plugin)", extensions=(".csv",), sniff=lambda path, _text: path.suffix == ".csv",
    read_samples=_read_csv, write_samples=_write_csv, shape="an instruction,input,output header",
)
CSV_EXPORTER = exports.format_exporter("csv", "CSV (plugin)", extensions=(".csv",))


@pytest.fixture
def csv_plugin() -> Iterator[str]:
    """Registers "csv" in both registries, by "module:attr" entries as a plugin manifest would."""
    registry.register_contributions({
        "dataset_formats": [{"key": "csv", "target": "test_formats:CSV_FORMAT", "title": "CSV (plugin)"}],
        "dataset_exporters": [{"key": "csv", "target": "test_formats:CSV_EXPORTER", "title": "CSV (plugin)"}],
    }, source="test-plugin")
    yield "csv"
    registry.DATASET_FORMATS.unregister("csv")
    registry.DATASET_EXPORTERS.unregister("csv")


def test_a_registered_format_is_detected_read_written_and_offered(tmp_path: Path, csv_plugin: str) -> None:
    path = tmp_path / "data.csv"
    assert formats.write_samples(path, TRICKY, csv_plugin) == len(TRICKY)
    assert formats.read_samples(path) == TRICKY  # detected by its sniff
    assert [s.instruction for s in formats.read_seeds(path)] == [r.instruction for r in TRICKY]
    assert formats.SAMPLE_FORMATS == (*BUILT_IN_SAMPLE_FORMATS, "csv")
    assert formats.format_for_path("more.csv", formats.SAMPLES) == "csv"
    save_filter = formats.file_dialog_filter(formats.SAMPLES, writing=True)
    assert save_filter.split(";;") == [
        "Alpaca JSON (*.json)", "Prompt/completion JSONL (*.jsonl)", "Chat messages JSONL (*.jsonl)",
        "CSV (plugin) (*.csv)", "All files (*)",
    ]
    assert formats.format_for_filter("CSV (plugin) (*.csv)") == "csv"
    assert formats.file_dialog_filter(formats.SEEDS).startswith("All supported files (*.jsonl *.json *.csv);;")

    assert "csv" in exports.EXPORT_FORMATS and exports.exporter_for_path(tmp_path / "x.csv") == "csv"
    written = exports.export(tmp_path / "out.csv", TRICKY, "csv", val_fraction=0.25, seed=2)
    assert [p.name for p in written.values()] == ["out-train.csv", "out-validation.csv"]
    assert sorted(formats.read_samples(written["train"]) + formats.read_samples(written["validation"])) == sorted(TRICKY)

    registry.DATASET_FORMATS.unregister(csv_plugin)
    registry.DATASET_EXPORTERS.unregister(csv_plugin)
    assert "csv" not in formats.SAMPLE_FORMATS and "csv" not in exports.EXPORT_FORMATS
    with pytest.raises(FormatError, match="Unknown dataset format 'csv'"):
        formats.read_samples(path, csv_plugin)
    with pytest.raises(FormatError, match="line 1: invalid JSON"):  # no longer anyone's: read as JSON
        formats.read_samples(path)


def test_a_broken_plugin_format_is_named_and_the_rest_keep_working(tmp_path: Path) -> None:
    registry.DATASET_FORMATS.register("broken", "no_such_plugin_module:FORMAT", source="plugin-b")
    registry.DATASET_FORMATS.register("not-a-format", "json:dumps", source="plugin-n")
    try:
        path = tmp_path / "a.json"
        formats.write_samples(path, TRICKY, formats.ALPACA)
        assert formats.read_samples(path) == TRICKY
        assert "broken" not in formats.SAMPLE_FORMATS
        with pytest.raises(FormatError, match="plugin-b"):
            formats.read_samples(path, "broken")
        with pytest.raises(RegistryError, match="plugin-n .*is not a DatasetFormat"):
            formats.get_format("not-a-format")
    finally:
        registry.DATASET_FORMATS.unregister("broken")
        registry.DATASET_FORMATS.unregister("not-a-format")


# -- big files: no single call holds the GIL for the whole file (the window stays responsive) ----
MALFORMED_ARRAYS = [
    '[{"instruction": "a", "output": "x"} {"instruction": "b", "output": "y"}]',  # missing comma
    '[{"instruction": "a", "output": "x"},\n  ]',  # trailing comma
    '[{"instruction": "a", "output": "x"},\n {"instruction": "b", "output": }]',  # bad value
    '[{"instruction": "a", "output": "x"}',  # unterminated
    '[{"instruction": "a", "output": "x"}]\n]',  # extra data
    '[\n{"instruction": "a", "output": "x\n"}]',  # control character in a string
    '  [ ',
]


@pytest.mark.parametrize("text", MALFORMED_ARRAYS)
def test_arrays_decoded_record_by_record_fail_as_json_loads_does(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(text)
    with pytest.raises(FormatError) as ours:
        formats.read_samples(path, formats.ALPACA)
    expected = FormatError(path, f"invalid JSON: {whole.value.msg} (column {whole.value.colno})", line=whole.value.lineno)
    assert str(ours.value) == str(expected)


def test_a_json_array_is_never_parsed_in_one_call(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "many.json"
    records = [{"instruction": f"Task {n}.", "input": "", "output": str(n)} for n in range(50)]
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    real_loads = json.loads

    def loads(s, *args, **kwargs):
        assert s != text, "json.loads of the whole file holds the GIL for ~150 ms on 30 MB"
        return real_loads(s, *args, **kwargs)

    monkeypatch.setattr(formats.json, "loads", loads)
    assert formats.read_samples(path) == [Record(r["instruction"], "", r["output"]) for r in records]


def test_text_is_decoded_and_split_in_slices_with_the_same_result(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(formats, "_SLICE", 7)  # cuts inside multi-byte characters and CRLF pairs
    text = "".join(f'{{"instruction": "Zeile {n} — ü€𝄞", "output": "x"}}\r\n' for n in range(40))
    path = tmp_path / "slices.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert formats.read_text(path) == text
    assert list(formats._lines(text)) == text.splitlines()
    assert len(formats.read_samples(path)) == 40
    path.write_bytes(text.encode("utf-8")[:200] + b"\n\xff" + text.encode("utf-8")[200:])
    with pytest.raises(FormatError, match="byte 0xff") as bad:
        formats.read_text(path)
    assert bad.value.line == text.encode("utf-8")[:200].count(b"\n") + 2


def test_reading_as_a_job_reports_progress_and_returns_the_records(tmp_path: Path) -> None:
    from studio.core.jobs import Progress, run_to_end

    path = tmp_path / "many.json"
    records = [{"instruction": f"Task {n}.", "input": "", "output": str(n)} for n in range(5000)]
    path.write_text(json.dumps(records), encoding="utf-8")
    seen: list[Progress] = []
    result = run_to_end(formats.read_samples_steps(path), on_progress=seen.append)
    assert result == formats.read_samples(path)
    assert len(seen) >= 3 and all(p.message == "Reading many.json" for p in seen)
    assert 0 < seen[-1].fraction < 1


def test_a_bad_record_in_a_big_array_still_names_its_line_and_number(tmp_path: Path) -> None:
    records = [{"instruction": f"Task {n}.", "output": "x"} for n in range(3000)]
    records[2500] = {"output": "no instruction"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    line = text.count("\n", 0, text.index('"no instruction"'))  # the line above: the record's "{"
    with pytest.raises(FormatError, match="instruction") as bad:
        formats.read_samples(path)
    assert (bad.value.line, bad.value.record) == (line, 2501)


def test_hashing_a_long_sample_never_lets_go_of_the_gil(monkeypatch) -> None:
    """hashlib releases the GIL for 2 KB or more and takes it straight back, which starves the GUI thread."""
    import hashlib

    from studio.core import samples

    fed: list[int] = []
    real = hashlib.blake2b

    class Recording:
        def __init__(self, data: bytes = b"", **kwargs):
            fed.append(len(data))
            self._hash = real(data, **kwargs)

        def update(self, data: bytes) -> None:
            fed.append(len(data))
            self._hash.update(data)

        def hexdigest(self) -> str:
            return self._hash.hexdigest()

    monkeypatch.setattr(samples.hashlib, "blake2b", Recording)
    long = "word " * 3000
    digest = samples.content_hash(long, "", "out")
    payload = "\x1f".join((long.strip(), "", "out")).encode("utf-8")
    assert digest == real(payload, digest_size=16).hexdigest()
    assert max(fed) < 2048
