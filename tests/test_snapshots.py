"""Snapshots are frozen and content-hashed; exports load back with Hugging Face datasets."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from studio.cli import main
from studio.core import exports
from studio.core.curation import SampleQuery
from studio.core.formats import Record
from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.core.snapshots import SnapshotError


def add(project: Project, n: int, status: Status = Status.ACCEPTED) -> list[int]:
    return [project.samples.add(Sample(f"Instruction {i}.", f"in {i}" if i % 2 else "", f"Out {i}.", status=status))
            for i in range(n)]


def test_snapshot_is_immutable_and_its_hash_depends_on_content_only(project: Project) -> None:
    ids = add(project, 5)
    add(project, 0)
    first = project.snapshots.create("v1")
    assert first.sample_count == 5 and (project.root / first.path).is_file()
    lines = (project.root / first.path).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["sample_id"] for line in lines] == ids

    project.curation.edit_text(ids[0], "Changed instruction.", "", "Changed.")
    assert project.snapshots.items("v1")[0].instruction == "Instruction 0."  # copied, not referenced
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        project.conn.execute("UPDATE snapshot_items SET output = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        project.conn.execute("UPDATE snapshots SET content_hash = 'x'")
    with pytest.raises(SnapshotError, match="already exists"):
        project.snapshots.create("v1")

    project.curation.edit_text(ids[0], "Instruction 0.", "", "Out 0.")  # back to the same content
    again = project.snapshots.create("v1 again")
    assert again.content_hash == first.content_hash and again.created_at != first.created_at
    project.curation.set_status([ids[4]], "rejected")
    assert project.snapshots.create("v2").content_hash != first.content_hash


def test_diff_matches_items_by_sample_id(project: Project) -> None:
    ids = add(project, 4)
    project.snapshots.create("a")
    project.curation.set_status([ids[0]], "rejected")
    project.curation.edit_text(ids[1], "Instruction one, edited.", "", "Out 1.")
    new_id = project.samples.add(Sample("Brand new.", "", "Yes.", status=Status.ACCEPTED))
    project.snapshots.create("b")
    diff = project.snapshots.diff("a", "b")
    assert [i.sample_id for i in diff.added] == [new_id]
    assert [i.sample_id for i in diff.removed] == [ids[0]]
    assert [(a.instruction, b.instruction) for a, b in diff.changed] == [("Instruction 1.", "Instruction one, edited.")]
    assert diff.unchanged == 2


def test_snapshot_of_a_query_and_of_nothing(project: Project) -> None:
    add(project, 6, Status.PENDING)
    snapshot = project.snapshots.create("odd inputs", SampleQuery(search="in", statuses=("pending",)))
    assert snapshot.sample_count == 3
    with pytest.raises(SnapshotError, match="Nothing to freeze"):
        project.snapshots.create("empty")


def test_split_is_seeded_and_complete() -> None:
    records = [Record(f"i{n}", "", f"o{n}") for n in range(100)]
    parts = exports.split(records, 0.1, seed=3)
    assert len(parts["validation"]) == 10 and len(parts["train"]) == 90
    assert set(parts["train"]) | set(parts["validation"]) == set(records)
    assert exports.split(records, 0.1, seed=3) == parts != exports.split(records, 0.1, seed=4)


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return tmp_path / "hf-cache"


def test_cli_snapshot_create_list_diff_export_load_with_datasets(tmp_path: Path, capsys, hf_offline: Path) -> None:
    import datasets

    root = tmp_path / "p"
    with Project.create(root) as project:
        add(project, 20)
        add(project, 0)
    assert main(["snapshot", "create", "all", "--project", str(root)]) == 0
    assert main(["data", "mark", "rejected", "--search", "Instruction 3.", "--project", str(root)]) == 0
    assert main(["snapshot", "create", "fewer", "--status", "accepted", "--project", str(root)]) == 0
    capsys.readouterr()
    assert main(["snapshot", "list", "--json", "--project", str(root)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["name"], s["sample_count"]) for s in listed] == [("all", 20), ("fewer", 19)]
    assert main(["snapshot", "diff", "all", "fewer", "--json", "--project", str(root)]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == [4]

    hf_dir = tmp_path / "out" / "hf"
    assert main(["snapshot", "export", "fewer", str(hf_dir), "--format", "hf", "--val-fraction", "0.2",
                 "--project", str(root)]) == 0
    loaded = datasets.load_from_disk(str(hf_dir))
    assert (loaded["train"].num_rows, loaded["validation"].num_rows) == (15, 4)
    assert set(loaded["train"].column_names) == {"instruction", "input", "output"}

    alpaca = tmp_path / "out" / "data.json"
    assert main(["snapshot", "export", "fewer", str(alpaca), "--format", "alpaca", "--project", str(root)]) == 0
    as_json = datasets.load_dataset("json", data_files=str(alpaca), split="train", cache_dir=str(hf_offline))
    assert as_json.num_rows == 19 and as_json[0]["instruction"] == "Instruction 0."

    parquet = tmp_path / "out" / "data.parquet"
    assert main(["data", "export", str(parquet), "--format", "parquet", "--status", "accepted",
                 "--project", str(root)]) == 0
    as_parquet = datasets.load_dataset("parquet", data_files=str(parquet), split="train", cache_dir=str(hf_offline))
    assert as_parquet.num_rows == 19

    for fmt in ("jsonl", "messages"):
        target = tmp_path / "out" / f"{fmt}.jsonl"
        assert main(["snapshot", "export", "all", str(target), "--format", fmt, "--val-fraction", "0.25",
                     "--project", str(root)]) == 0
        lines = [target.with_name(f"{fmt}-{part}.jsonl").read_text().splitlines() for part in ("train", "validation")]
        assert [len(p) for p in lines] == [15, 5]


def test_cli_filters_tag_list_view_and_errors(tmp_path: Path, capsys) -> None:
    root = tmp_path / "p"
    with Project.create(root) as project:
        add(project, 10, Status.PENDING)
    assert main(["data", "tag", "odd", "--search", "in", "--project", str(root)]) == 0
    assert main(["view", "save", "odd ones", "--tag", "odd", "--project", str(root)]) == 0
    assert main(["data", "mark", "accepted", "--view", "odd ones", "--project", str(root)]) == 0
    capsys.readouterr()
    assert main(["data", "list", "--status", "accepted", "--sort", "id", "--desc", "--project", str(root)]) == 0
    captured = capsys.readouterr()
    assert "5 samples match" in captured.err and captured.out.split()[0] == "10"
    assert main(["data", "delete", "--project", str(root)]) == 1
    assert "No filter" in capsys.readouterr().err
    assert main(["snapshot", "diff", "nope", "also-nope", "--project", str(root)]) == 1
    assert "No snapshot 'nope'" in capsys.readouterr().err
