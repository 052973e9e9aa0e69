"""Evaluation-only prompt sets: the file formats, the store (``project.prompt_sets``), the validation
split taken exactly as the training job takes it, and the ``eval prompts`` commands."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from studio.cli import main as cli_main
from studio.core.changes import PROMPT_SETS
from studio.core.evaluation.model import EvalPrompt, EvaluationError, prompt_hash
from studio.core.evaluation.prompt_files import read_prompt_file
from studio.core.llm.pricing import Usage
from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.core.training.settings import TrainSettings


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


USER_ORIENTED = [  # the shape of the Self-Instruct paper's user_oriented_instructions.jsonl
    {"id": "user_oriented_task_0", "motivation_app": "Grammarly",
     "instruction": "The sentence you are given might be too wordy. Simplify it.",
     "instances": [{"input": "If you have any questions, please do not hesitate to ask.", "output": "Ask away."}]},
    {"id": "user_oriented_task_1", "motivation_app": "Gmail", "instruction": "Write a polite reply.",
     "instances": [{"input": "Can we meet on Monday?", "output": "Monday works."},
                   {"input": "Can we meet on Friday?", "output": "Friday works."}]},
    {"id": "user_oriented_task_2", "motivation_app": "Grammarly",
     "instruction": "Fix the spelling.", "instances": [{"input": "Teh cat.", "output": "The cat."}]},
]


# -- the file formats -------------------------------------------------------------------------------
def test_self_instruct_jsonl_gives_one_prompt_per_instance_with_category_and_reference(tmp_path: Path) -> None:
    parsed = read_prompt_file(write_lines(tmp_path / "user.jsonl", *USER_ORIENTED))
    assert parsed.format == "self-instruct" and parsed.duplicates_dropped == 0
    assert [(p.instruction, p.input, p.reference, p.category, p.ext_id) for p in parsed.prompts] == [
        (USER_ORIENTED[0]["instruction"], "If you have any questions, please do not hesitate to ask.", "Ask away.",
         "Grammarly", "user_oriented_task_0"),
        ("Write a polite reply.", "Can we meet on Monday?", "Monday works.", "Gmail", "user_oriented_task_1#1"),
        ("Write a polite reply.", "Can we meet on Friday?", "Friday works.", "Gmail", "user_oriented_task_1#2"),
        ("Fix the spelling.", "Teh cat.", "The cat.", "Grammarly", "user_oriented_task_2"),
    ]
    assert all(p.messages is None for p in parsed.prompts)


def test_alpaca_json_and_prompt_and_messages_jsonl(tmp_path: Path) -> None:
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([
        {"instruction": "Name a colour.", "input": "", "output": "Blue.", "category": "brainstorm"},
        {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    ], indent=2), encoding="utf-8")
    parsed = read_prompt_file(alpaca)
    assert parsed.format == "alpaca"
    assert [(p.instruction, p.input, p.reference, p.category) for p in parsed.prompts] == [
        ("Name a colour.", "", "Blue.", "brainstorm"), ("Add the numbers.", "2 and 3", "5", "")]

    mixed = write_lines(
        tmp_path / "mixed.jsonl",
        {"prompt": "Tell me a joke.", "category": "fun", "reference": "Knock knock."},
        {"prompt": "Translate to French.", "input": "cat", "output": "chat"},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there."},
                      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Name a planet."},
                      {"role": "assistant", "content": "Mars."}]},
    )
    parsed = read_prompt_file(mixed)
    assert parsed.formats == ("prompt", "messages")
    joke, french, chat = parsed.prompts
    assert (joke.instruction, joke.category, joke.reference) == ("Tell me a joke.", "fun", "Knock knock.")
    assert (french.instruction, french.input, french.reference) == ("Translate to French.", "cat", "chat")
    # The last user message is the instruction; the trailing answer is the reference, not sent.
    assert (chat.instruction, chat.reference) == ("Name a planet.", "Mars.")
    assert [m["role"] for m in chat.messages] == ["system", "user", "assistant", "user"]
    assert chat.hash == prompt_hash("", "", chat.messages)


@pytest.mark.parametrize(("records", "line", "problem"), [
    (['{"prompt": "ok"}', '{"prompt": 3}'], 2, 'field "prompt" must be text'),
    (['{"prompt": "ok"}', '', '{"instruction": "x", "instances": []}'], 3, '"instances" must be a non-empty list'),
    (['{"prompt": "ok"}', '{not json'], 2, "invalid JSON"),
    (['{"title": "no prompt here"}'], 1, "not a prompt"),
    (['{"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}'], 1, "message 2"),
    (['{"instruction": "x", "instances": [{"input": "", "output": 7}]}'], 1, "instance 1"),
])
def test_a_malformed_record_names_the_file_and_line(tmp_path: Path, records: list[str], line: int,
                                                    problem: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", *records)
    with pytest.raises(EvaluationError, match=rf"bad\.jsonl, line {line}: .*{problem}"):
        read_prompt_file(path)


def test_a_malformed_element_of_an_alpaca_array_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "",\n   "output": "c"}\n]\n')
    with pytest.raises(EvaluationError, match=r"bad\.json, line 3: field \"instruction\" is empty"):
        read_prompt_file(path)


def test_repeated_prompts_collapse_to_the_first(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "dupes.jsonl", {"prompt": "Name a colour."}, {"prompt": "  Name a colour.\n"},
                       {"prompt": "Name a fruit."}, {"instruction": "Name a colour.", "input": "", "output": "x"})
    parsed = read_prompt_file(path)
    assert [p.instruction for p in parsed.prompts] == ["Name a colour.", "Name a fruit."]
    assert parsed.duplicates_dropped == 2


def test_case_and_inner_spacing_make_a_different_prompt(project: Project, tmp_path: Path) -> None:
    # Case and indentation can be the task itself: neither prompt may stand in for the other.
    title = "Convert to title case: the cat"
    code = "Fix this Python:\ndef f():\n    return 1"
    path = write_lines(tmp_path / "cases.jsonl", {"prompt": title}, {"prompt": "Convert to title case: The Cat"},
                       {"prompt": code}, {"prompt": code.replace("    ", "  ")})
    prompt_set = project.prompt_sets.import_file(path, name="cases")
    assert prompt_set.prompt_count == 4 and prompt_set.meta["duplicates_dropped"] == 0
    stored = project.prompt_sets.prompts("cases")
    assert len({p.hash for p in stored}) == 4
    # ...so the answer cache keeps one answer each.
    project.evaluations.store_answer("sys", stored[0].hash, "s", "Convert To Title Case: The Cat", finish_reason="stop",
                                     usage=Usage(), cost=0.0, latency_s=None, attempts=1)
    assert project.evaluations.cached_answer("sys", stored[1].hash, "s") is None


# -- the store ------------------------------------------------------------------------------------
def test_import_stores_an_evaluation_only_set_and_nothing_on_error(project: Project, tmp_path: Path) -> None:
    seen: list[frozenset[str]] = []
    project.changes.subscribe(seen.append)
    good = write_lines(tmp_path / "user_oriented.jsonl", *USER_ORIENTED)
    prompt_set = project.prompt_sets.import_file(good)
    assert seen == [frozenset({PROMPT_SETS})]
    assert (prompt_set.name, prompt_set.prompt_count, prompt_set.released_count) == ("user_oriented", 4, 0)
    assert prompt_set.categories == ("Gmail", "Grammarly")
    assert prompt_set.source == str(good.resolve()) and prompt_set.meta["format"] == "self-instruct"
    assert prompt_set.meta["duplicates_dropped"] == 0
    expected = hashlib.sha256("".join(p.hash + "\n" for p in read_prompt_file(good).prompts).encode()).hexdigest()
    assert prompt_set.content_hash == expected

    bad = write_lines(tmp_path / "bad.jsonl", *USER_ORIENTED, '{"prompt": ""}')
    with pytest.raises(EvaluationError, match="bad.jsonl, line 4"):
        project.prompt_sets.import_file(bad)
    with pytest.raises(EvaluationError, match="already exists"):
        project.prompt_sets.import_file(good)
    assert [s.name for s in project.prompt_sets.list()] == ["user_oriented"]
    assert project.conn.execute("SELECT count(*) FROM eval_prompts").fetchone()[0] == 4


def test_get_prompts_rename_delete(project: Project) -> None:
    first = project.prompt_sets.create("first", [EvalPrompt("One?"), EvalPrompt("Two?", "in", "ref", "cat"),
                                                 EvalPrompt(" One?\n")])
    assert first.meta["duplicates_dropped"] == 1 and first.prompt_count == 2
    by_id, by_name = project.prompt_sets.get(first.id), project.prompt_sets.get("first")
    assert by_id == by_name == project.prompt_sets.get(str(first.id))
    prompts = project.prompt_sets.prompts("first")
    assert [(p.instruction, p.input, p.reference, p.category, p.position, p.set_id) for p in prompts] == [
        ("One?", "", "", "", 0, first.id), ("Two?", "in", "ref", "cat", 1, first.id)]
    assert project.prompt_sets.prompts_by_id([prompts[1].id, 999]) == {prompts[1].id: prompts[1]}
    with pytest.raises(EvaluationError, match="No prompt set 'nope'"):
        project.prompt_sets.get("nope")
    with pytest.raises(EvaluationError, match="no prompts"):
        project.prompt_sets.create("empty", [])
    second = project.prompt_sets.create("second", [EvalPrompt("Three?")])
    with pytest.raises(EvaluationError, match="already exists"):
        project.prompt_sets.rename("second", "first")
    project.prompt_sets.rename("second", "renamed")
    assert project.prompt_sets.get(second.id).name == "renamed"
    project.prompt_sets.delete("first")
    assert [s.name for s in project.prompt_sets.list()] == ["renamed"]
    assert [p.instruction for p in project.prompt_sets.active_prompts()] == ["Three?"]


def test_release_takes_prompts_out_of_the_set_and_rehashes_it(project: Project) -> None:
    prompt_set = project.prompt_sets.create("s", [EvalPrompt(f"Question {i}?") for i in range(4)])
    prompts = project.prompt_sets.prompts(prompt_set.id)
    seen: list[frozenset[str]] = []
    project.changes.subscribe(seen.append)
    assert project.prompt_sets.release([prompts[1].id, prompts[3].id], "seeds (evaluation 7)") == 2
    assert project.prompt_sets.release([prompts[1].id], "again") == 0  # already out
    assert seen == [frozenset({PROMPT_SETS})]
    after = project.prompt_sets.get(prompt_set.id)
    assert (after.prompt_count, after.released_count) == (2, 2)
    active = project.prompt_sets.prompts(prompt_set.id)
    assert [p.instruction for p in active] == ["Question 0?", "Question 2?"]
    assert after.content_hash == hashlib.sha256("".join(p.hash + "\n" for p in active).encode()).hexdigest()
    every = project.prompt_sets.prompts(prompt_set.id, include_released=True)
    assert [p.released_to for p in every] == [None, "seeds (evaluation 7)", None, "seeds (evaluation 7)"]
    assert not project.prompt_sets.prompts_by_id([prompts[1].id])[prompts[1].id].active
    assert [p.instruction for p in project.prompt_sets.active_prompts()] == ["Question 0?", "Question 2?"]


# -- the validation split ---------------------------------------------------------------------------
def _snapshot(project: Project, n: int = 40, name: str = "v1"):
    for i in range(n):
        project.samples.add(Sample(f"Instruction number {i}.", f"input {i}" if i % 3 else "", f"Output {i}.",
                                   status=Status.ACCEPTED))
    return project.snapshots.create(name)


def test_the_validation_split_is_exactly_what_the_training_job_holds_out(project: Project) -> None:
    from studio.core.training import split
    from studio.train.data import read_snapshot
    from studio.train.job import (
        split_records,  # the job's own import, moved to core and imported back
    )

    assert split_records is split.split_records  # one split: the job's is the core one
    snap = _snapshot(project)
    prompt_set = project.prompt_sets.from_validation_split(snap.id, seed=7, validation_fraction=0.2)
    settings = TrainSettings()
    settings.seed, settings.validation_fraction = 7, 0.2
    _train, held = split_records(read_snapshot(project.root / snap.path), settings)  # what the job reads
    prompts = project.prompt_sets.prompts(prompt_set.id)
    assert len(held) == 8
    assert [(p.instruction, p.input, p.reference, p.ext_id) for p in prompts] == [
        (r.instruction, r.input, r.output, f"sample:{r.sample_id}") for r in held]
    assert prompt_set.name == "v1-validation" and prompt_set.source == f"snapshot:{snap.id}"
    assert prompt_set.meta == {"kind": "validation_split", "snapshot_id": snap.id, "snapshot_name": "v1",
                               "snapshot_hash": snap.content_hash, "seed": 7, "validation_fraction": 0.2,
                               "max_validation_samples": TrainSettings().max_validation_samples,
                               "also_in_training": 0, "duplicates_dropped": 0}
    capped = project.prompt_sets.from_validation_split("v1", name="capped", validation_fraction=0.5,
                                                       max_validation_samples=3)
    assert capped.prompt_count == 3
    with pytest.raises(EvaluationError, match="holds out none"):
        project.prompt_sets.from_validation_split("v1", name="none", validation_fraction=0.0)
    with pytest.raises(EvaluationError, match="validation_fraction"):
        project.prompt_sets.from_validation_split("v1", name="too-much", validation_fraction=0.9)


# -- the shared data files (skipped when ../shared is absent) ---------------------------------------
def test_import_the_self_instruct_seed_file(project: Project, shared_data: Path) -> None:
    path = shared_data / "seed_tasks.jsonl"
    tasks = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    prompt_set = project.prompt_sets.import_file(path)
    instances = sum(len(t["instances"]) for t in tasks)
    assert prompt_set.prompt_count + prompt_set.meta["duplicates_dropped"] == instances
    assert prompt_set.meta["format"] == "self-instruct"
    first = project.prompt_sets.prompts(prompt_set.id)[0]
    assert (first.instruction, first.reference, first.ext_id) == (
        tasks[0]["instruction"], tasks[0]["instances"][0]["output"], tasks[0]["id"])


def test_import_the_alpaca_sample(project: Project, shared_data: Path) -> None:
    path = shared_data / "alpaca_sample_2000.json"
    records = json.loads(path.read_text(encoding="utf-8"))
    prompt_set = project.prompt_sets.import_file(path, name="alpaca")
    distinct = {prompt_hash(r["instruction"], r.get("input", "")) for r in records}
    assert prompt_set.prompt_count == len(distinct)
    assert prompt_set.meta["duplicates_dropped"] == len(records) - len(distinct)
    stored = project.prompt_sets.prompts("alpaca")
    assert (stored[0].instruction, stored[0].input, stored[0].reference) == (
        records[0]["instruction"], records[0]["input"], records[0]["output"])


# -- the commands ------------------------------------------------------------------------------------
def test_eval_prompts_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "p"
    with Project.create(root) as project:
        _snapshot(project, 20, name="snap")
    path = write_lines(tmp_path / "user_oriented.jsonl", *USER_ORIENTED)
    assert cli_main(["--project", str(root), "eval", "prompts", "import", str(path), "--name", "uo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Imported 4 prompts into set uo (id 1, hash ") and "2 categories" in out
    assert "evaluation-only" in out

    assert cli_main(["--project", str(root), "eval", "prompts", "from-snapshot", "snap", "--val-fraction", "0.1",
                     "--max-val", "200", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["name"], record["prompts"], record["source"]) == ("snap-validation", 2, "snapshot:1")

    assert cli_main(["--project", str(root), "eval", "prompts", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["name"], r["prompts"], r["released"], r["categories"]) for r in listed] == [
        (1, "uo", 4, 0, ["Gmail", "Grammarly"]), (2, "snap-validation", 2, 0, [])]
    assert all(len(r["hash"]) == 64 and r["source"] for r in listed)
    assert cli_main(["--project", str(root), "eval", "prompts", "list"]) == 0
    captured = capsys.readouterr()
    assert "uo" in captured.out and "snap-validation" in captured.out and "2 prompt sets" in captured.err

    bad = write_lines(tmp_path / "bad.jsonl", {"prompt": "fine"}, {"messages": []})
    assert cli_main(["--project", str(root), "eval", "prompts", "import", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.jsonl, line 2" in err and len(err.splitlines()) == 1


def test_eval_prompts_a_taken_name_says_how_to_choose_another(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "p"
    with Project.create(root) as project:
        _snapshot(project, 20, name="snap")
    path = write_lines(tmp_path / "user_oriented.jsonl", *USER_ORIENTED)
    assert cli_main(["--project", str(root), "eval", "prompts", "import", str(path)]) == 0
    assert cli_main(["--project", str(root), "eval", "prompts", "import", str(path)]) == 1
    assert "'user_oriented' already exists; choose another name with --name NAME." in capsys.readouterr().err
    assert cli_main(["--project", str(root), "eval", "prompts", "from-snapshot", "snap"]) == 0
    assert cli_main(["--project", str(root), "eval", "prompts", "from-snapshot", "snap"]) == 1
    assert "'snap-validation' already exists; choose another name with --name NAME." in capsys.readouterr().err
