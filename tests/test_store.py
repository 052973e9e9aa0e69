"""The project store: schema, migrations, repositories, and the one-app-per-project lock."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from studio.core import schema
from studio.core.errors import ProjectError, ProjectLockedError, StudioError
from studio.core.jobs import Progress
from studio.core.project import Project
from studio.core.samples import Origin, Sample, Status
from studio.core.seeds import Instance, SeedTask


def test_new_project_has_folders_latest_schema_wal_and_foreign_keys(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as project:
        assert {p.name for p in project.root.iterdir()} >= {"project.sqlite", "snapshots", "runs", "exports"}
        assert schema.current_version(project.conn) == schema.LATEST_VERSION
        assert project.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert project.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        tables = {r[0] for r in project.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"seed_tasks", "samples", "generation_runs", "snapshots", "snapshot_items",
                "training_runs", "evaluations", "eval_prompt_sets", "eval_votes"} <= tables


def test_open_missing_project_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="distill-studio init"):
        Project.open(tmp_path / "nothing-here")


def test_creating_over_an_existing_project_is_refused(project: Project) -> None:
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(project.root)


def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    with sqlite3.connect(tmp_path / "p" / "project.sqlite") as conn:
        conn.execute(f"PRAGMA user_version = {schema.LATEST_VERSION + 5}")
    with pytest.raises(ProjectError, match="newer Distill Studio"):
        Project.open(tmp_path / "p")


def test_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "project.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ProjectError, match="not a readable Distill Studio database"):
        Project.open(tmp_path / "p")


def test_migration_backs_up_and_applies_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Project.create(tmp_path / "p") as project:
        project.seeds.add(SeedTask(instruction="Keep me", instances=[Instance("", "ok")]))
    extra = schema.Migration(schema.LATEST_VERSION + 1, "test column", "ALTER TABLE seed_tasks ADD COLUMN extra TEXT;")
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, extra])
    monkeypatch.setattr(schema, "LATEST_VERSION", extra.version)
    with Project.open(tmp_path / "p") as project:
        assert schema.current_version(project.conn) == extra.version
        columns = [r[1] for r in project.conn.execute("PRAGMA table_info(seed_tasks)")]
        assert "extra" in columns
        assert project.seeds.list()[0].instruction == "Keep me"
    backup = tmp_path / "p" / f"project.sqlite.v{extra.version - 1}.bak"
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == extra.version - 1
        assert conn.execute("SELECT instruction FROM seed_tasks").fetchone()[0] == "Keep me"


def test_a_failing_migration_leaves_the_old_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Project.create(tmp_path / "p").close()
    broken = schema.Migration(schema.LATEST_VERSION + 1, "broken", "ALTER TABLE seed_tasks ADD COLUMN x TEXT; SELECT * FROM no_such_table;")
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    monkeypatch.setattr(schema, "LATEST_VERSION", broken.version)
    with pytest.raises(ProjectError):
        Project.open(tmp_path / "p")
    with sqlite3.connect(tmp_path / "p" / "project.sqlite") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == broken.version - 1
        assert "x" not in [r[1] for r in conn.execute("PRAGMA table_info(seed_tasks)")]


def test_seed_crud_and_restoring_a_deleted_seed_keeps_its_id(project: Project) -> None:
    seed = SeedTask(name="t", instruction="Say hi", instances=[Instance("", "hi"), Instance("x", "y")], tags=["a"])
    seed_id = project.seeds.add(seed)
    stored = project.seeds.get(seed_id)
    assert stored == seed
    stored.instruction = "Say hello"
    stored.is_classification = True
    project.seeds.update(stored)
    assert project.seeds.get(seed_id).instruction == "Say hello"
    assert project.seeds.get(seed_id).is_classification is True
    position = project.seeds.position_of(seed_id)
    project.seeds.delete(seed_id)
    assert project.seeds.get(seed_id) is None
    project.seeds.add(stored, position=position)
    assert project.seeds.get(seed_id) == stored
    assert [s.id for s in project.seeds.list("hello")] == [seed_id]
    assert project.seeds.list("no such words") == []


def test_samples_skip_exact_duplicates_and_count_by_status(project: Project) -> None:
    batch = [Sample("a", "", "1", status=Status.ACCEPTED, origin=Origin.IMPORTED), Sample("b", "x", "2"), Sample("a", "", "1")]
    result = project.samples.add_many(batch)
    assert (result.inserted, result.duplicates) == (2, 1)
    assert project.samples.add(Sample(" a ", "", "1 ")) is None  # same text once trimmed
    stats = project.stats()
    assert stats["samples"] == 2
    assert stats["by_status"] == {"pending": 1, "accepted": 1, "rejected": 0}
    assert [s.instruction for s in project.samples.iter([Status.ACCEPTED])] == ["a"]


def test_bulk_import_stores_the_same_row_as_a_sample_and_quotes_the_source_literally(project: Project) -> None:
    """import_texts writes shared values as SQL literals; a hostile file name stays plain text."""
    source = "bob's \"data\"'); DROP TABLE samples; --.json"
    texts = [("a", "", "one two"), ("b", "x", "three"), ("a", "", "one two")]
    result = project.samples.import_texts(texts, status=Status.ACCEPTED, origin=Origin.IMPORTED, source=source)
    assert (result.inserted, result.duplicates) == (2, 1)
    project.samples.add(Sample("c", "", "four five six", status=Status.ACCEPTED, origin=Origin.IMPORTED, source=source))
    imported, added = project.samples.get(1), project.samples.get(3)
    assert imported is not None and added is not None
    assert imported.source == source
    skip = {"id", "instruction", "input", "output", "created_at", "updated_at"}
    assert {k: v for k, v in vars(imported).items() if k not in skip} == {k: v for k, v in vars(added).items() if k not in skip}
    words = project.conn.execute("SELECT instruction_words, output_words FROM samples ORDER BY id").fetchall()
    assert [tuple(w) for w in words] == [(1, 2), (1, 1), (1, 3)]
    assert imported.created_at == imported.updated_at and imported.created_at is not None


def test_the_search_index_buffers_four_mib_before_writing_a_segment(project: Project) -> None:
    config = dict(project.conn.execute("SELECT k, v FROM samples_fts_config").fetchall())
    assert config["hashsize"] == 4 * 1024 * 1024


def test_rating_outside_one_to_five_is_rejected_by_the_database(project: Project) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        project.samples.add(Sample("a", "", "b", rating=9))
    assert project.samples.count() == 0


def test_second_open_in_the_same_process_is_refused_clearly(project: Project) -> None:
    with pytest.raises(ProjectLockedError, match=f"already open in another Distill Studio process \\(pid {os.getpid()}"):
        Project.open(project.root)
    with Project.open(project.root, exclusive=False) as reader:  # read-only commands still work
        assert reader.seeds.count() == 0


HOLD_PROJECT = textwrap.dedent(
    """
    import sys, time
    from studio.core.project import Project
    project = Project.open(sys.argv[1])
    print("holding", flush=True)
    time.sleep(60)
    """
)


def test_second_instance_in_another_process_gets_a_message_and_kill_9_frees_the_lock(tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_PROJECT, str(tmp_path / "p")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(ProjectLockedError, match=f"pid {holder.pid}"):
            Project.open(tmp_path / "p")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the OS drops the dead holder's lock
        try:
            Project.open(tmp_path / "p").close()
            break
        except ProjectLockedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


# -- the trash -------------------------------------------------------------------------------
def _rows(project: Project, where: str = "1") -> dict[int, tuple]:
    return {r[0]: tuple(r) for r in project.conn.execute(f"SELECT * FROM samples WHERE {where}")}


def _search_ids(project: Project, word: str) -> list[int]:
    return [r[0] for r in project.conn.execute("SELECT rowid FROM samples_fts WHERE samples_fts MATCH ? ORDER BY 1", (word,))]


def _check_index(project: Project) -> None:
    project.conn.execute("INSERT INTO samples_fts(samples_fts) VALUES ('integrity-check')")
    assert project.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    triggers = {r[0] for r in project.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {"samples_fts_insert", "samples_fts_delete", "samples_fts_update"} <= triggers


def test_the_trash_keeps_every_column_of_a_sample(project: Project) -> None:
    sample_columns = [r[1] for r in project.conn.execute("PRAGMA table_info(samples)")]
    trash_columns = [r[1] for r in project.conn.execute("PRAGMA table_info(trashed_samples)")]
    assert trash_columns[:2] == ["entry", "batch_id"] and trash_columns[2:] == sample_columns


@pytest.mark.parametrize("total,deleted", [(30, 12), (3000, 2500), (6000, 2100)],
                         ids=["small: triggers", "most rows: FTS rebuilt", "a minority: FTS told per chunk"])
def test_deleted_samples_survive_a_restart_in_the_trash_and_come_back_with_their_ids(
    tmp_path: Path, total: int, deleted: int
) -> None:
    with Project.create(tmp_path / "p") as project:
        project.samples.add_many(
            Sample(f"Describe walrus number {i}.", "", f"Walrus {i} is {'big' if i % 2 else 'small'}.",
                   tags=["t"] if i % 3 else [], rating=i % 5 + 1) for i in range(total)
        )
        before = _rows(project)
        ids = sorted(before)[::2][:deleted] if deleted < total // 2 else sorted(before)[:deleted]
        deletion = project.curation.delete(ids)
        assert len(deletion) == deleted and project.samples.count() == total - deleted
        assert _search_ids(project, "walrus") == sorted(set(before) - set(ids))
        _check_index(project)
    with Project.open(tmp_path / "p") as project:  # the app was closed: the batch is still there
        [batch] = project.trash.batches()
        assert (batch.id, batch.sample_count, batch.description) == (deletion.batch_id, deleted,
                                                                    f"delete {deleted:,} samples")
        result = project.trash.restore(batch.id)
        assert sorted(result.ids) == sorted(ids) and (result.renumbered, result.skipped) == (0, 0)
        assert _rows(project) == before
        assert _search_ids(project, "walrus") == sorted(before)
        assert project.trash.batches() == []
        assert project.conn.execute("SELECT count(*) FROM trashed_samples").fetchone()[0] == 0
        _check_index(project)


def test_the_deletions_undo_restores_its_batch_and_redo_trashes_again(project: Project) -> None:
    ids = [project.samples.add(Sample(f"Name a river {i}.", "", "Nile.")) for i in range(5)]
    seen: list[frozenset] = []
    project.changes.subscribe(seen.append)
    deletion = project.curation.delete(ids[1:3])
    assert seen == [frozenset({"samples", "trash"})] and deletion.kinds == frozenset({"samples", "trash"})
    deletion.apply(project.conn, undo=True)
    assert sorted(_rows(project)) == ids and project.trash.batches() == []
    deletion.apply(project.conn)
    assert sorted(_rows(project)) == [ids[0], ids[3], ids[4]]
    assert [b.id for b in project.trash.batches()] == [deletion.batch_id]


def test_restoring_around_samples_added_since(project: Project) -> None:
    ids = [project.samples.add(Sample(f"Count to {i}.", "", str(i))) for i in range(4)]
    batch = project.trash.move(ids[2:], "delete 2 samples")  # the two newest: their ids get reused
    reused = project.samples.add(Sample("A new sample after the delete.", "", "x"))
    again = project.samples.add(Sample("Count to 3.", "", "3"))  # the same text as a trashed one
    assert reused == ids[2]
    result = project.trash.restore(batch.id)
    assert (result.restored, result.renumbered, result.skipped) == (1, 1, 1)
    texts = {r["instruction"] for r in project.conn.execute("SELECT instruction FROM samples")}
    assert texts == {"Count to 0.", "Count to 1.", "Count to 2.", "Count to 3.", "A new sample after the delete."}
    assert project.samples.get(again).instruction == "Count to 3."
    assert result.ids[0] not in ids and project.samples.get(result.ids[0]).instruction == "Count to 2."
    _check_index(project)


def test_emptying_one_batch_or_all_of_them(project: Project) -> None:
    ids = [project.samples.add(Sample(f"Spell word {i}.", "", "w")) for i in range(6)]
    trash = project.trash
    first, second = trash.move(ids[:2], "a"), trash.move(ids[2:5], "b")
    assert trash.sample_count() == 5 and [b.id for b in trash.batches()] == [second.id, first.id]
    seen: list[frozenset] = []
    project.changes.subscribe(seen.append)
    assert trash.empty(first.id) == 2 and [b.id for b in trash.batches()] == [second.id]
    with pytest.raises(StudioError, match=f"No trash batch {first.id}"):
        trash.restore(first.id)
    assert trash.empty() == 3 and trash.batches() == [] and trash.sample_count() == 0
    assert seen == [frozenset({"trash"})] * 2
    assert project.samples.count() == 1


def test_a_cancelled_bulk_delete_or_restore_changes_nothing(project: Project) -> None:
    project.samples.add_many(Sample(f"Paint fence {i}.", "", "ok") for i in range(2500))
    before = _rows(project)
    steps = project.curation.delete_steps(sorted(before))
    assert isinstance(next(steps), Progress) and isinstance(next(steps), Progress)
    steps.close()  # what the job runner does on Cancel
    assert _rows(project) == before and project.trash.batches() == []
    _check_index(project)
    marking = project.curation.set_status_steps(sorted(before), "accepted")
    for _ in range(4):  # past the reading, into the writing
        next(marking)
    marking.close()
    assert _rows(project) == before
    deletion = project.curation.delete(sorted(before))
    steps = project.curation.apply_steps(deletion, undo=True)
    next(steps), next(steps)
    steps.close()
    assert project.samples.count() == 0 and project.trash.sample_count() == 2500
    _check_index(project)


def test_deleting_nothing_leaves_no_empty_batch(project: Project) -> None:
    project.samples.add(Sample("Stay here.", "", "ok"))
    for ids in ([], [999]):
        deletion = project.curation.delete(ids)
        assert deletion.ids == [] and project.trash.batches() == []
        deletion.apply(project.conn, undo=True)  # undoing nothing does nothing
    assert project.samples.count() == 1
