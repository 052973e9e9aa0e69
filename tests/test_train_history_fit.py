"""The Train panel's run list at the window sizes the QA pass used: whole rows, one line each."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")

from studio.ui.train_history import COLUMNS, MIN_ROWS, RunHistory
from studio.ui.train_panel import TrainPanel


def _runs(n: int) -> list:
    return [SimpleNamespace(id=i, name=f"run-with-a-long-name-{i}", status="done", last_step=40, max_steps=40,
                            error="", snapshot_name="S1", created_at=1.7e9 + i, has_adapter=True,
                            base_model="/home/someone/models/a/very/long/path/to/SmolLM2-135M-Instruct")
            for i in range(n, 0, -1)]


@pytest.mark.parametrize("size", [(1272, 780), (856, 560)])  # the Train page of 1440×860 and 1024×640 windows
def test_the_run_list_shows_four_whole_one_line_rows(qtbot, size) -> None:
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    history = panel.history
    history.show_runs(_runs(6))
    qtbot.waitUntil(lambda: history.viewport().height() > 0)
    row = history.rowHeight(0)
    assert all(history.rowHeight(r) == row for r in range(6))  # no row grown by a wrapped path
    assert row < 2 * history.fontMetrics().lineSpacing() and not history.wordWrap()
    assert history.viewport().height() >= MIN_ROWS * row
    assert history.item(0, COLUMNS.index("Base model")).toolTip().endswith("SmolLM2-135M-Instruct")
    header = history.horizontalHeader()
    assert header.length() <= history.viewport().width()  # every column in view, the long ones elided
    assert history.item(0, COLUMNS.index("Run")).toolTip() == "#6 run-with-a-long-name-6"


def test_the_history_minimum_is_four_rows(qtbot) -> None:
    history = RunHistory()
    qtbot.addWidget(history)
    assert history.minimumHeight() >= history.horizontalHeader().sizeHint().height() + MIN_ROWS * \
        history.verticalHeader().defaultSectionSize()
