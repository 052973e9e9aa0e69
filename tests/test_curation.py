"""The curation query layer: filters agree with plain SQL, changes undo, edits persist."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate_data import fill
from studio.core.curation import DuplicateSampleError, SampleQuery, fts_phrase
from studio.core.project import Project
from studio.core.samples import Sample


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("curation") / "p"
    with Project.create(root) as project:
        fill(project, 3000)  # above the bulk threshold: exercises the deferred FTS indexing too
        yield project


def sql_count(project: Project, where: str, params: tuple = ()) -> int:
    return project.conn.execute(f"SELECT COUNT(*) FROM samples WHERE {where}", params).fetchone()[0]


CASES = [
    (SampleQuery(search="zebra"), "(instruction LIKE '%zebra%' OR input LIKE '%zebra%' OR output LIKE '%zebra%')"),
    (SampleQuery(search="ZEBRA quartz"),
     "(instruction||' '||input||' '||output) LIKE '%zebra%' AND (instruction||' '||input||' '||output) LIKE '%quartz%'"),
    (SampleQuery(statuses=("accepted", "rejected")), "status IN ('accepted','rejected')"),
    (SampleQuery(origins=("manual",), run_ids=(1, 0)), "origin='manual' AND (run_id=1 OR run_id IS NULL)"),
    (SampleQuery(tag="math"), "tags LIKE '%\"math\"%'"),
    (SampleQuery(ratings=(5, 0)), "(rating=5 OR rating IS NULL)"),
    (SampleQuery(instruction_words=(3, 6), output_words=(None, 10)),
     "length(instruction)-length(replace(instruction,' ',''))+1 BETWEEN 3 AND 6"
     " AND length(output)-length(replace(output,' ',''))+1 <= 10"),
    (SampleQuery(blacklisted=True), "instruction LIKE '%image%'"),
    (SampleQuery(blacklisted=False, statuses=("pending",)), "instruction NOT LIKE '%image%' AND status='pending'"),
    (SampleQuery(search="maple", statuses=("accepted",), tag="style", ratings=(3,)),
     "(instruction||' '||input||' '||output) LIKE '%maple%' AND status='accepted' AND tags LIKE '%\"style\"%' AND rating=3"),
]


@pytest.mark.parametrize("query,where", CASES, ids=[w[:40] for _, w in CASES])
def test_filters_match_a_direct_sql_count(big: Project, query: SampleQuery, where: str) -> None:
    expected = sql_count(big, where)
    assert big.curation.count(query) == expected > 0
    assert len(big.curation.ids(query)) == expected
    assert big.curation.count(query, cap=5) == min(5, expected)


@pytest.mark.parametrize("sort", ["instruction_words", "output_words", "rating", "status", "updated_at", "id"])
def test_sort_in_sql_matches_python_sort(big: Project, sort: str) -> None:
    query = SampleQuery(statuses=("accepted",), sort=sort, descending=True)
    column = {"instruction_words": "instruction_words", "output_words": "output_words"}.get(sort, sort)
    rows = big.conn.execute(f"SELECT id, {column} FROM samples WHERE status='accepted'").fetchall()
    expected = [r[0] for r in sorted(rows, key=lambda r: (r[1] is not None, r[1], r[0]), reverse=True)]
    assert big.curation.ids(query) == expected
    page = big.curation.page(query, 10, 5)
    assert [row[0] for row in page] == expected[10:15]


def test_user_text_cannot_break_the_fts_query(big: Project) -> None:
    for text in ['"', 'zebra AND', "NEAR(", "-maple", "a:b", "*", "(", "task1*"]:
        big.curation.count(SampleQuery(search=text))  # no sqlite3.OperationalError
    assert fts_phrase('say "hi" now*') == '"say" """hi""" "now"*'
    assert big.curation.count(SampleQuery(search="task1*")) == sql_count(big, "instruction LIKE '% task1%'")


def test_bulk_status_on_a_query_then_undo_and_redo(project: Project) -> None:
    fill(project, 300)
    query = SampleQuery(search="zebra", statuses=("pending",))
    ids = project.curation.ids(query)
    before = {r[0]: tuple(r) for r in project.conn.execute("SELECT id, status, updated_at FROM samples")}
    change = project.curation.set_status(ids, "accepted")
    assert project.curation.count(query) == 0 and len(change) == len(ids) > 0
    change.apply(project.conn, undo=True)
    assert {r[0]: tuple(r) for r in project.conn.execute("SELECT id, status, updated_at FROM samples")} == before
    change.apply(project.conn)
    assert project.curation.count(query) == 0


def test_tags_ratings_notes_and_delete_undo(project: Project) -> None:
    fill(project, 50)
    ids = project.curation.ids(SampleQuery(sort="id"))[:10]
    tagged = project.curation.add_tag(ids, "review")
    assert project.curation.count(SampleQuery(tag="review")) == 10
    tagged.apply(project.conn, undo=True)
    assert project.curation.count(SampleQuery(tag="review")) == 0
    project.curation.set_rating(ids[:2], 4)
    project.curation.set_note(ids[0], "check the maths")
    assert project.samples.get(ids[0]).note == "check the maths" and project.samples.get(ids[1]).rating == 4
    total = project.samples.count()
    deletion = project.curation.delete(ids)
    assert project.samples.count() == total - 10
    deletion.apply(project.conn, undo=True)
    assert project.samples.count() == total and project.samples.get(ids[0]).note == "check the maths"
    first = project.samples.get(ids[0])
    assert project.curation.count(SampleQuery(search=first.instruction.split()[-1])) == 1  # back in the index


def test_an_edit_survives_reopening_and_refuses_an_identical_sample(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as project:
        a = project.samples.add(Sample("Name a colour.", "", "Blue."))
        b = project.samples.add(Sample("Name a fruit.", "", "Apple."))
        project.curation.edit_text(a, "Name a warm colour.", "", "Orange.")
        with pytest.raises(DuplicateSampleError, match=f"#{b}"):
            project.curation.edit_text(a, "Name a fruit.", "", "Apple.")
    with Project.open(tmp_path / "p") as project:
        sample = project.samples.get(a)
        assert (sample.instruction, sample.output) == ("Name a warm colour.", "Orange.")
        assert project.curation.ids(SampleQuery(search="warm")) == [a]
        assert project.curation.ids(SampleQuery(search="colour")) == [a]
        # an identical import is now skipped by hash: the hash followed the edit
        assert project.samples.add(Sample("Name a warm colour.", "", "Orange.")) is None


def test_saved_views_round_trip(project: Project) -> None:
    query = SampleQuery(search="zebra", statuses=("accepted",), instruction_words=(2, None), blacklisted=False)
    project.curation.save_view("good zebras", query)
    assert project.curation.views() == {"good zebras": query}
    assert json.loads(query.to_json())["statuses"] == ["accepted"]


def test_duplicate_clusters_stored_filtered_and_resolved(project: Project) -> None:
    ids = [project.samples.add(Sample(f"Describe item {i}.", "", str(i))) for i in range(6)]
    assert project.curation.store_clusters([[ids[0], ids[1], ids[2]], [ids[3], ids[4]], [ids[5]]]) == 2
    clusters = project.curation.clusters()
    assert [c.sample_ids for c in clusters] == [ids[:3], ids[3:5]]
    assert project.curation.count(SampleQuery(duplicates=True)) == 5
    change = project.curation.keep_one(clusters[0].sample_ids, ids[1])
    statuses = [project.samples.get(i).status.value for i in ids[:3]]
    assert statuses == ["rejected", "accepted", "rejected"]
    change.apply(project.conn, undo=True)
    assert {project.samples.get(i).status.value for i in ids[:3]} == {"pending"}


def test_find_clusters_uses_the_dedup_module(project: Project) -> None:
    from studio.core.curation import find_clusters

    project.samples.add_many([
        Sample("Write a short poem about the sea.", "", "a"),
        Sample("Convert 5 miles to kilometres.", "", "c"),
        Sample("Write a short poem about the sea please.", "", "b"),
    ])
    assert find_clusters(project.conn) == [[1, 3]]


def test_word_lengths_are_kept_for_every_writer(project: Project) -> None:
    sample_id = project.samples.add(Sample("Count  these\nthree", "", "one two"))
    project.conn.execute(
        "INSERT INTO samples (instruction, output, created_at, updated_at, content_hash)"
        " VALUES ('a raw insert of six', '', 0, 0, 'raw')"
    )
    words = lambda: project.conn.execute("SELECT instruction_words, output_words FROM samples ORDER BY id").fetchall()  # noqa: E731
    assert [tuple(r) for r in words()] == [(3, 2), (5, 0)]
    project.curation.edit_text(sample_id, "Now four words here", "", "")
    assert tuple(words()[0]) == (4, 0)


def test_cached_search_results_follow_changes_from_any_connection(project: Project) -> None:
    a = project.samples.add(Sample("Plant a tree.", "", "Dig."))
    query = SampleQuery(search="tree")
    assert project.curation.ids(query) == [a]
    assert project.curation.count(query) == 1  # answered from the cached match table
    project.curation.edit_text(a, "Plant a shrub.", "", "Dig.")
    assert project.curation.count(query) == 0
    other = project.new_connection()
    try:
        other.execute(
            "INSERT INTO samples (instruction, output, created_at, updated_at, content_hash)"
            " VALUES ('A tree from elsewhere.', '', 0, 0, 'other')"
        )
    finally:
        other.close()
    assert project.curation.count(query) == 1
    assert [r[0] for r in project.curation.page(query, 0, 10)] == project.curation.ids(query)


def test_bulk_insert_keeps_every_index_trigger_and_the_duplicate_check(project: Project) -> None:
    schema_sql = "SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ('samples', 'samples_fts') ORDER BY name"
    before = project.conn.execute(schema_sql).fetchall()
    batch = [Sample(f"Bulk sample {i}.", "", "x") for i in range(2500)]
    assert project.samples.add_many(batch).inserted == 2500
    result = project.samples.add_many(batch + [Sample("One more sample.", "", "y")] * 2000)
    assert (result.inserted, result.duplicates) == (1, 4499)
    assert [tuple(r) for r in project.conn.execute(schema_sql)] == [tuple(r) for r in before]
    assert project.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    project.conn.execute("INSERT INTO samples_fts(samples_fts) VALUES ('integrity-check')")
    assert project.curation.count(SampleQuery(search="bulk")) == 2500


def test_upgrading_a_v1_project_indexes_its_existing_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.core import schema

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    monkeypatch.setattr(schema, "LATEST_VERSION", 1)
    with Project.create(tmp_path / "p") as old:
        old.conn.execute(
            "INSERT INTO samples (instruction, output, tags, created_at, updated_at, content_hash)"
            " VALUES ('Summarise this old text', 'short one', '[\"legacy\"]', 0, 0, 'h1')"
        )
    monkeypatch.undo()
    with Project.open(tmp_path / "p") as project:
        assert schema.current_version(project.conn) == schema.LATEST_VERSION
        assert project.curation.count(SampleQuery(search="summarise", tag="legacy", instruction_words=(4, 4),
                                                  output_words=(2, 2))) == 1
    assert (tmp_path / "p" / "project.sqlite.v1.bak").is_file()


def test_the_blacklisted_filter_follows_a_runs_edited_blacklist(project: Project) -> None:
    from studio.core.blacklist import DEFAULT_BLACKLIST
    from studio.core.generation.config import RunConfig
    from studio.core.generation.filters import FilterSettings

    runs = project.generation
    for blacklist in (["spreadsheet"],  # edited: "image" allowed, "spreadsheet" not
                      list(DEFAULT_BLACKLIST),  # the default, as every run stores it
                      []):  # emptied: nothing is blacklisted
        config = RunConfig(filters=FilterSettings(blacklist=blacklist)).to_dict()  # what a run saves
        runs.create_run(name="r", mode="alpaca", teacher_model="t", base_url="http://x", config=config,
                        prompt_template="")
    texts = {}
    for run in (None, 1, 2, 3):
        for word in ("image", "spreadsheet", "poem"):
            texts[(run, word)] = project.samples.add(Sample(f"Make a {word} for run {run}.", "", "ok", run_id=run))
    flagged = set(project.curation.ids(SampleQuery(blacklisted=True)))
    assert flagged == {texts[(None, "image")], texts[(1, "spreadsheet")], texts[(2, "image")]}
    assert set(project.curation.ids(SampleQuery(blacklisted=False))) == set(texts.values()) - flagged
    # the same answer inside a write transaction (no cached match tables) and with a search
    from studio.core.curation import where_sql

    where, params = where_sql(project.conn, SampleQuery(blacklisted=True, search="run"))
    assert {r[0] for r in project.conn.execute(f"SELECT id FROM samples WHERE {where}", params)} == flagged


def test_clustering_in_steps_and_in_a_child_process_finds_what_the_dedup_module_finds(project: Project) -> None:
    import multiprocessing

    from studio.core.clustering import find_clusters_steps
    from studio.core.dedup import cluster
    from studio.core.jobs import run_to_end

    texts = [f"Write a short poem about the {w}." for w in ("sea", "sea please", "moon", "sea now")]
    texts += [f"Convert {n} miles to kilometres." for n in range(8)] + ["List three fruits."]
    ids = [project.samples.add(Sample(t, "", str(n))) for n, t in enumerate(texts)]
    expected = [[ids[i] for i in group] for group in cluster(texts) if len(group) > 1]
    assert len(expected) == 2
    assert run_to_end(find_clusters_steps(project.conn)) == expected  # in this thread
    assert run_to_end(find_clusters_steps(project.conn, child_threshold=1)) == expected  # in a child process
    steps = find_clusters_steps(project.conn, child_threshold=1)
    next(steps)  # the child is running
    [child] = [p for p in multiprocessing.active_children() if p.name == "distill-studio-clustering"]
    steps.close()  # what the job runner does on Cancel
    assert not child.is_alive()


def test_bulk_changes_run_as_steps_that_yield_progress_and_return_the_change(project: Project) -> None:
    from studio.core.jobs import Progress

    fill(project, 2600)
    ids = project.curation.ids(SampleQuery())
    seen: list[frozenset] = []
    project.changes.subscribe(seen.append)
    steps = project.curation.set_status_steps(ids, "rejected")
    progress = []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as stop:
            change = stop.value
            break
    assert all(isinstance(p, Progress) for p in progress) and len(progress) >= 6
    assert progress[-1] == Progress(2600, 2600, "mark 2,600 samples rejected")
    assert change.kinds == frozenset({"samples"}) and seen == [change.kinds]
    assert project.curation.count(SampleQuery(statuses=("rejected",))) == 2600
    undo = project.curation.apply_steps(change, undo=True)
    assert sum(1 for _ in undo) >= 3 and seen == [change.kinds] * 2
    assert project.curation.count(SampleQuery(statuses=("rejected",))) < 2600


def test_counts_read_right() -> None:
    from studio.core.wording import count_noun

    assert [count_noun(n, "sample") for n in (0, 1, 2, 52002)] == ["0 samples", "1 sample", "2 samples", "52,002 samples"]
    assert count_noun(1, "cluster") == "1 cluster"


def test_cli_delete_goes_to_the_trash_and_trash_restores_lists_and_empties(tmp_path: Path, capsys) -> None:
    from studio.cli import main

    root = tmp_path / "p"
    with Project.create(root) as project:
        ids = [project.samples.add(Sample(f"Fold paper shape {i}.", "", "ok")) for i in range(4)]
    assert main(["data", "trash", "list", "--project", str(root)]) == 0
    assert "0 batches in the Trash (deleted samples land here)" in capsys.readouterr().err
    assert main(["data", "delete", "--search", "paper", "--project", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Moved 4 samples to the Trash (batch 1)" in out and "data trash restore 1" in out
    assert main(["data", "trash", "list", "--json", "--project", str(root)]) == 0
    [batch] = json.loads(capsys.readouterr().out)
    assert (batch["id"], batch["sample_count"], batch["description"]) == (1, 4, "delete 4 samples")
    assert main(["data", "trash", "restore", "1", "--project", str(root)]) == 0
    assert capsys.readouterr().out.strip() == "Restored 4 samples from batch 1."
    assert main(["data", "trash", "restore", "1", "--project", str(root)]) == 1
    assert "No trash batch 1" in capsys.readouterr().err
    assert main(["data", "delete", "--search", "shape", "--project", str(root)]) == 0
    assert main(["data", "trash", "empty", "--project", str(root)]) == 0
    assert "Deleted 4 samples for good." in capsys.readouterr().out
    with Project.open(root) as project:
        assert project.samples.count() == 0 and project.trash.batches() == []
        assert ids == [1, 2, 3, 4]
