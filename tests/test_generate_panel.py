"""The Generate panel drives a short run against the loopback teacher without blocking the GUI."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

pytest.importorskip("pytestqt")
sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher  # noqa: E402

from studio.core.generation.store import GenerationStore  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.seeds import Instance, SeedTask  # noqa: E402
from studio.ui.project_context import ProjectContext
from studio.ui.generate_panel import GeneratePanel  # noqa: E402


@pytest.fixture
def panel(qtbot, project: Project):
    project.seeds.add_many([SeedTask(f"Give an example of seed topic number {i} for a student.",
                                     [Instance("", f"Example {i}.")]) for i in range(5)])
    widget = GeneratePanel()
    qtbot.addWidget(widget)
    widget.set_context(ProjectContext(project))
    yield widget
    widget.shutdown()


def test_panel_runs_a_short_generation_and_restores_a_reject(qtbot, panel: GeneratePanel, project: Project) -> None:
    with FakeTeacher(latency_s=0.02, bad_items_every=4, max_lifetime_s=60) as teacher:
        panel.base_url.setText(teacher.base_url)
        panel.model.setCurrentText("fake-teacher")
        panel.api_key.setText(teacher.api_key)
        panel.target.setValue(30)
        assert "requests" in panel.estimate_label.text()
        panel.concurrency.setValue(2)
        panel.test_button.click()
        qtbot.waitUntil(lambda: "Connected" in panel.connection_status.text(), timeout=10_000)
        assert panel.model.findText("fake-small") >= 0

        refreshes: list[int] = []
        panel.data_changed.connect(lambda: refreshes.append(project.samples.count()))
        panel.start_button.click()
        assert panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
        qtbot.waitUntil(lambda: not panel.is_running() and panel.start_button.isEnabled(), timeout=30_000)
    # the window's counts are refreshed as samples arrive (throttled), not only when the run ends
    assert len(refreshes) >= 2 and 0 < refreshes[0] and refreshes[-1] == project.samples.count()
    assert "Finished: target" in panel.eta.text()
    assert panel.progress.value() == 30
    assert panel.feed.count() >= 30
    assert "kept" in panel.counters_label.text() and "blacklist" in panel.counters_label.text()
    assert panel.seed_table.rowCount() > 0
    before = project.samples.count()
    assert panel.rejected_table.rowCount() > 0
    panel.rejected_table.selectRow(0)
    panel.restore_button.click()
    assert project.samples.count() == before + 1
    assert "(restored)" in panel.rejected_table.item(0, 0).text()


def test_wrong_key_shows_a_banner(qtbot, panel: GeneratePanel) -> None:
    with FakeTeacher(max_lifetime_s=60) as teacher:
        panel.base_url.setText(teacher.base_url)
        panel.model.setCurrentText("fake-teacher")
        panel.api_key.setText("sk-wrong")
        panel.target.setValue(10)
        with qtbot.waitActive(panel):
            panel.show()
            panel.activateWindow()
        qtbot.keyClick(panel, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # the Start shortcut
        qtbot.waitUntil(lambda: not panel.is_running() and panel.start_button.isEnabled(), timeout=20_000)
    assert GenerationStore(panel.project.conn).latest_run_id() is not None, "shortcut did not start"
    assert not panel.banner.isHidden()
    assert "API key" in panel.banner.text()
    assert GenerationStore(panel.project.conn).latest_run_id() is not None


def test_save_key_runs_off_the_gui_thread_and_reports_the_outcome(qtbot, panel: GeneratePanel, monkeypatch) -> None:
    import threading

    import studio.ui.generate_panel as generate_panel

    threads: list[threading.Thread] = []

    def fake_store(base_url: str, key: str) -> str | None:
        threads.append(threading.current_thread())
        return "No OS keyring is available here; set the key variable instead."

    monkeypatch.setattr(generate_panel, "store_api_key", fake_store)
    panel.api_key.setText("sk-test")
    panel.save_key.click()
    qtbot.waitUntil(lambda: "No OS keyring" in panel.connection_status.text(), timeout=5_000)
    assert threads and threads[0] is not threading.main_thread()
    qtbot.waitUntil(panel.save_key.isEnabled, timeout=5_000)
