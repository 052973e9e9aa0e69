"""Seed edits as core change records (apply/undo/redo on a real database) and their CLI twins."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from studio.cli import main
from studio.core.changes import SEEDS
from studio.core.project import Project
from studio.core.seed_changes import SEED_COLUMNS, SeedChangeError, SeedEdit, SeedRows, select_rows
from studio.core.seeds import Instance, SeedTask, UnknownSeedError


def seed(text: str, output: str = "ok", **fields) -> SeedTask:
    return SeedTask(instruction=text, instances=[Instance("", output)], **fields)


def table(project: Project) -> list[tuple]:
    """Every seed row, every column: what a round trip must restore exactly."""
    return [tuple(r) for r in project.conn.execute(f"SELECT {', '.join(SEED_COLUMNS)} FROM seed_tasks ORDER BY id")]


@pytest.fixture
def three(project: Project) -> list[int]:
    return project.seeds.add_many([seed("First task."), seed("Second task."), seed("Third task.")])


def test_add_undo_redo_restores_the_same_id_and_position(project: Project, three: list[int]) -> None:
    before = table(project)
    change = project.seeds.create(seed("Fourth task.", name="fourth"))
    assert isinstance(change, SeedRows) and change.kinds == frozenset({SEEDS})
    assert change.description == "New seed task" and len(change) == 1
    after = table(project)
    change.apply(project.conn, undo=True)
    assert table(project) == before
    change.apply(project.conn)
    assert table(project) == after
    assert project.seeds.get(change.ids[0]).name == "fourth"
    assert [s.instruction for s in project.seeds.list()][-1] == "Fourth task."


def test_delete_undo_puts_rows_back_with_ids_and_positions(project: Project, three: list[int]) -> None:
    before = table(project)
    order = [s.id for s in project.seeds.list()]
    change = project.seeds.delete([three[2], three[0]])
    assert change.description == "Delete 2 seed tasks" and change.ids == [three[2], three[0]]
    assert [s.id for s in project.seeds.list()] == [three[1]]
    change.apply(project.conn, undo=True)
    assert table(project) == before
    assert [s.id for s in project.seeds.list()] == order
    change.apply(project.conn)
    assert [s.id for s in project.seeds.list()] == [three[1]]


def test_edit_undo_redo_and_merging_keystrokes(project: Project, three: list[int]) -> None:
    original = table(project)
    first = project.seeds.require(three[0])
    first.instruction = "First task, edited"
    typed = project.seeds.edit(first, field="instruction")
    first.instruction = "First task, edited twice"
    more = project.seeds.edit(first, field="instruction")
    assert isinstance(typed, SeedEdit) and typed.description == "Edit instruction"
    assert typed.absorb(more)  # one undo step: first before, last after
    typed.apply(project.conn, undo=True)
    assert table(project) == original  # content and updated_at
    typed.apply(project.conn)
    assert project.seeds.get(three[0]).instruction == "First task, edited twice"

    first.name = "renamed"
    renamed = project.seeds.edit(first, field="name")
    assert not typed.absorb(renamed)  # another field is another step
    other = project.seeds.require(three[1])
    other.instruction = "Second, edited"
    assert not typed.absorb(project.seeds.edit(other, field="instruction"))  # another seed too
    structure = project.seeds.edit(first)  # default field: a structural edit
    assert not structure.absorb(project.seeds.edit(first))


def test_duplicate_goes_right_after_its_original_and_round_trips(project: Project, three: list[int]) -> None:
    project.seeds.edit(_named(project, three[0], "greet"))
    change = project.seeds.duplicate([three[0], three[1]])
    assert change.description == "Duplicate 2 seed tasks"
    listed = project.seeds.list()
    assert [s.id for s in listed] == [three[0], change.ids[0], three[1], change.ids[1], three[2]]
    assert listed[1].name == "greet_copy" and listed[1].instances == listed[0].instances
    after = table(project)
    change.apply(project.conn, undo=True)
    assert [s.id for s in project.seeds.list()] == three
    change.apply(project.conn)
    assert table(project) == after


def _named(project: Project, seed_id: int, name: str) -> SeedTask:
    found = project.seeds.require(seed_id)
    found.name = name
    return found


def test_every_action_publishes_seeds_after_its_commit(project: Project, three: list[int]) -> None:
    seen: list[tuple[frozenset[str], int]] = []
    reader = project.new_connection()  # another connection sees only committed rows
    project.changes.subscribe(lambda kinds: seen.append((kinds, reader.execute("SELECT COUNT(*) FROM seed_tasks").fetchone()[0])))
    project.seeds.create(seed("Fourth."))
    project.seeds.duplicate(three[0])
    project.seeds.import_many([seed("Fifth."), seed("Sixth.")])
    project.seeds.delete(three[1])
    project.seeds.edit(_named(project, three[2], "third"))
    project.seeds.import_many([])  # nothing changed: nothing said
    reader.close()
    assert seen == [(frozenset({SEEDS}), n) for n in (4, 5, 7, 6, 6)]


def test_unknown_ids_change_nothing_and_name_the_ids(project: Project, three: list[int]) -> None:
    before = table(project)
    with pytest.raises(UnknownSeedError, match=r"No seed tasks #998, #999 in this project\."):
        project.seeds.delete([three[0], 998, 999])
    with pytest.raises(UnknownSeedError, match=r"No seed task #998 "):
        project.seeds.duplicate([three[0], 998])
    with pytest.raises(UnknownSeedError):
        project.seeds.edit(seed("Nothing", id=998))
    assert table(project) == before


def test_replaying_against_changes_made_elsewhere_fails_whole(project: Project, three: list[int]) -> None:
    edit = project.seeds.edit(_named(project, three[0], "renamed"))
    project.seeds.delete(three[0])  # e.g. from the command line
    with pytest.raises(SeedChangeError, match=f"#{three[0]} was deleted since"):
        edit.apply(project.conn, undo=True)

    deletion = project.seeds.delete([three[1], three[2]])
    project.seeds.create(seed("Took the id back.", id=three[2]))
    kept = table(project)
    with pytest.raises(SeedChangeError, match=f"#{three[2]} exists again"):
        deletion.apply(project.conn, undo=True)
    assert table(project) == kept  # #three[1] was not put back alone: all or nothing


def test_import_is_all_or_nothing(project: Project, three: list[int]) -> None:
    before = table(project)
    with pytest.raises(sqlite3.IntegrityError):
        project.seeds.import_many([seed("New."), seed("Clashes.", id=three[0])])
    assert table(project) == before
    assert [row[0] for row in select_rows(project.conn, [three[2], 998, three[0]])] == [three[2], three[0]]


# -- the command line --------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def listed(capsys: pytest.CaptureFixture, root: Path) -> list[dict]:
    code, out, _ = run(capsys, "seeds", "list", "--json", "--project", root)
    assert code == 0
    return json.loads(out)


@pytest.fixture
def root(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    assert run(capsys, "init", tmp_path / "p", "--empty")[0] == 0
    return tmp_path / "p"


def test_cli_add_edit_duplicate_delete(root: Path, capsys) -> None:
    code, out, _ = run(capsys, "seeds", "add", "--instruction", "Classify the mood.", "--input", "I won!",
                       "--output", "happy", "--name", "mood", "--classification", "--tag", "a", "--tag", "b",
                       "--project", root)
    assert (code, out) == (0, "Added seed task #1.\n")
    assert listed(capsys, root) == [{
        "id": 1, "ext_id": None, "name": "mood", "instruction": "Classify the mood.",
        "instances": [{"input": "I won!", "output": "happy"}], "is_classification": True, "tags": ["a", "b"],
    }]
    code, out, _ = run(capsys, "seeds", "edit", "1", "--instance", "2", "--input", "Rain.", "--output", "sad",
                       "--no-classification", "--project", root)
    assert code == 0 and "instance 2 input, instance 2 output" in out
    code, out, _ = run(capsys, "seeds", "edit", "1", "--name", "mood2", "--output", "glad", "--no-tags", "--project", root)
    assert code == 0
    (edited,) = listed(capsys, root)
    assert edited["name"] == "mood2" and "tags" not in edited and edited["is_classification"] is False
    assert edited["instances"] == [{"input": "I won!", "output": "glad"}, {"input": "Rain.", "output": "sad"}]

    run(capsys, "seeds", "add", "--instruction", "Last.", "--output", "x", "--project", root)
    code, out, _ = run(capsys, "seeds", "duplicate", "1", "--project", root)
    assert (code, out) == (0, "Duplicated seed task #1 as #3.\n")
    assert [(s["id"], s["name"]) for s in listed(capsys, root)] == [(1, "mood2"), (3, "mood2_copy"), (2, "")]
    code, out, _ = run(capsys, "seeds", "delete", "1", "2", "--project", root)
    assert (code, out) == (0, "Deleted 2 seed tasks (#1, #2).\n")
    assert [s["id"] for s in listed(capsys, root)] == [3]


@pytest.mark.parametrize("argv, message", [
    (["add", "--instruction", " ", "--output", "x"], "Seed task not saved: The instruction is empty."),
    (["add", "--instruction", "Do it."], "Seed task not saved: Instance 1 has no output."),
    (["edit", "1", "--instruction", ""], "Seed task not saved: The instruction is empty."),
    (["edit", "7", "--name", "x"], "No seed task #7 in this project."),
    (["edit", "1"], "Nothing to change: give --instruction"),
    (["edit", "1", "--instance", "3", "--output", "x"], "has 1 instance(s): --instance takes 1 to 2"),
    (["duplicate", "7"], "No seed task #7 in this project."),
    (["delete", "1", "7", "8"], "No seed tasks #7, #8 in this project."),
])
def test_cli_errors_exit_1_and_change_nothing(root: Path, capsys, argv: list[str], message: str) -> None:
    run(capsys, "seeds", "add", "--instruction", "Keep me.", "--output", "kept", "--project", root)
    before = listed(capsys, root)
    code, out, err = run(capsys, "seeds", *argv, "--project", root)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err
    assert listed(capsys, root) == before


# -- importing a file again: identical seed tasks are skipped ---------------------------------
def test_an_import_skips_tasks_already_in_the_project_as_one_undo_step(project: Project) -> None:
    first = project.seeds.import_many([seed("Task A."), seed("Task B."), seed("Task B.")], skip_identical=True)
    assert len(first) == 3  # repeats within one file are the file's own business
    rows = table(project)
    again = [seed("  Task A. ", name="renamed"), SeedTask("Task B.", [Instance(" ", "ok ")]), seed("Task C.")]
    change = project.seeds.import_many(again, skip_identical=True)
    assert [s.instruction for s in project.seeds.list()][-1] == "Task C."
    assert len(change) == 1 and change.description == "Import seed task"
    change.apply(project.conn, undo=True)
    assert table(project) == rows
    different = [seed("Task A.", output="another output"), SeedTask("Task A.", [Instance("x", "ok")])]
    assert len(project.seeds.import_many(different, skip_identical=True)) == 2


def test_import_many_without_skipping_adds_every_seed(project: Project) -> None:
    project.seeds.import_many([seed("Task A.")])
    assert len(project.seeds.import_many([seed("Task A.")])) == 1


def test_cli_seeds_import_twice_says_how_many_were_already_there(tmp_path: Path, capsys) -> None:
    root = tmp_path / "proj"
    assert main(["init", str(root), "--empty"]) == 0
    path = tmp_path / "seed_tasks.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{n}", "name": f"n{n}", "instruction": f"Task {n}.",
                                        "instances": [{"input": "", "output": "ok"}]}) + "\n" for n in range(4)))
    assert main(["seeds", "import", str(path), "--project", str(root)]) == 0
    assert f"Imported 4 seed tasks from {path} (4 in the project)." in capsys.readouterr().out
    assert main(["seeds", "import", str(path), "--project", str(root)]) == 0
    assert (f"Imported 0 seed tasks from {path}; 4 identical ones were already there (4 in the project)."
            in capsys.readouterr().out)
