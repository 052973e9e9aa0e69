"""The paged table model: Qt's model tester with 0, 1 and 50,000 rows; SQL sorting; paging."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt

from studio.core.curation import SampleQuery
from studio.core.db import transaction
from studio.core.project import Project
from studio.core.samples import Sample
from studio.core.bulk_insert import bulk_insert
from studio.ui.sample_table_model import COLUMN_KEYS, MAX_PAGES, PAGE_SIZE, SampleTableModel


def bulk_fill(project: Project, n: int) -> None:
    """n samples straight through executemany (the quick way to a big project)."""
    now = time.time()
    rows = [(f"Instruction number {i} about topic {i % 97}", "", f"Output {i} " * (i % 7 + 1),
             ("pending", "accepted", "rejected")[i % 3], "generated", now, now, f"h{i}") for i in range(n)]
    with transaction(project.conn), bulk_insert(project.conn, n):
        project.conn.executemany(
            "INSERT INTO samples (instruction, input, output, status, origin, created_at, updated_at, content_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows,
        )


@pytest.fixture(scope="module")
def big_project(tmp_path_factory: pytest.TempPathFactory):
    with Project.create(tmp_path_factory.mktemp("big") / "p") as project:
        bulk_fill(project, 50_000)
        yield project


def test_model_tester_with_no_rows(qtmodeltester, project: Project) -> None:
    model = SampleTableModel(project.curation)
    assert model.rowCount() == 0
    qtmodeltester.check(model)


def test_model_tester_with_one_row(qtmodeltester, project: Project) -> None:
    project.samples.add(Sample("Only one.", "", "Yes."))
    model = SampleTableModel(project.curation)
    assert model.rowCount() == 1
    qtmodeltester.check(model)
    assert model.data(model.index(0, COLUMN_KEYS.index("instruction"))) == "Only one."


def test_model_tester_across_several_pages_sorted_in_sql(qtmodeltester, project: Project) -> None:
    # Qt's tester walks every row, so it gets a model of a few pages (paging, page edges and
    # the SQL ORDER BY are all in its path); the 50,000-row model gets the checks below.
    bulk_fill(project, 3 * PAGE_SIZE + 7)
    model = SampleTableModel(project.curation)
    model.sort(COLUMN_KEYS.index("output_words"), Qt.SortOrder.DescendingOrder)
    assert model.rowCount() == 3 * PAGE_SIZE + 7
    qtmodeltester.check(model)


def test_fifty_thousand_rows_keep_the_model_contract_at_its_bounds(big_project: Project) -> None:
    model = SampleTableModel(big_project.curation)
    model.sort(COLUMN_KEYS.index("output_words"), Qt.SortOrder.DescendingOrder)
    assert (model.rowCount(), model.columnCount()) == (50_000, len(COLUMN_KEYS))
    last = model.index(49_999, len(COLUMN_KEYS) - 1)
    assert last.isValid() and model.data(last) is not None
    assert not model.index(50_000, 0).isValid() and not model.index(0, len(COLUMN_KEYS)).isValid()
    assert model.rowCount(model.index(0, 0)) == 0 and model.columnCount(model.index(0, 0)) == 0  # a flat table
    assert model.sample_id(50_000) is None and model.sample_id(-1) is None
    words = [model.row_values(r)["output_words"] for r in (0, PAGE_SIZE - 1, PAGE_SIZE, 49_999)]
    assert words == sorted(words, reverse=True)  # the order holds across page edges
    assert model.headerData(len(COLUMN_KEYS) - 1, Qt.Orientation.Horizontal) == "Updated"
    assert model.headerData(len(COLUMN_KEYS), Qt.Orientation.Horizontal) is None


def test_pages_are_fetched_on_demand_and_bounded(big_project: Project) -> None:
    model = SampleTableModel(big_project.curation)
    status = COLUMN_KEYS.index("status")
    assert model.data(model.index(49_999, status)) == "✓ accepted"  # row i holds status i % 3
    for row in range(0, 50_000, PAGE_SIZE):
        model.sample_id(row)
    assert len(model._pages) == MAX_PAGES
    assert model.sample_id(12_345) == 12_346
    assert model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole) is None


def test_filter_and_sql_sort_agree_with_sql(big_project: Project) -> None:
    model = SampleTableModel(big_project.curation)
    model.set_query(SampleQuery(search="topic 5", statuses=("accepted",)))
    expected = big_project.conn.execute(
        "SELECT COUNT(*) FROM samples WHERE status='accepted' AND instruction LIKE '% topic 5'").fetchone()[0]
    assert model.rowCount() == expected > 0
    model.sort(COLUMN_KEYS.index("output_words"), Qt.SortOrder.DescendingOrder)
    assert model.query.search == "topic 5"  # sorting keeps the filter
    words = model.row_values(0)["output_words"], model.row_values(model.rowCount() - 1)["output_words"]
    assert words[0] >= words[1]
