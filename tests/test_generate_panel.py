"""The Generate panel drives runs against the loopback teacher without blocking the GUI."""
from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel

pytest.importorskip("pytestqt")
sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher  # noqa: E402
from generate_support import five_seed_context  # noqa: E402

from studio.core.generation.engine import run_estimate  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.registry import ENDPOINT_KINDS, GENERATION_MODES  # noqa: E402
from studio.core.seeds import Instance, SeedTask  # noqa: E402
from studio.ui.generate_panel import GeneratePanel  # noqa: E402
from studio.ui.project_context import ProjectContext  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


context = pytest.fixture(five_seed_context, name="context")


@pytest.fixture
def panel(qtbot, context: ProjectContext):
    widget = GeneratePanel()
    qtbot.addWidget(widget)
    widget.set_context(context)
    qtbot.waitUntil(lambda: "5 in this project" in widget.seed_count_label.text(), timeout=5_000)
    yield widget
    widget.shutdown()


def _point_at(panel: GeneratePanel, teacher: FakeTeacher, key: str | None = None) -> None:
    panel.base_url.setText(teacher.base_url)
    panel.model.setCurrentText("fake-teacher")
    panel.api_key.setText(teacher.api_key if key is None else key)


def _runs(project: Project) -> int:
    return len(project.conn.execute("SELECT id FROM generation_runs").fetchall())


def test_panel_runs_a_short_generation_and_restores_a_reject(qtbot, panel: GeneratePanel, context: ProjectContext,
                                                              project: Project) -> None:
    assert panel.feed_view.hint_shown() and panel.rejected_view.hint_shown() and panel.seed_view.hint_shown()
    assert "appear here" in panel.feed_view.hint.text() and "rejected" in panel.rejected_view.hint.text()
    with FakeTeacher(latency_s=0.15, bad_items_every=4, max_lifetime_s=60) as teacher:
        _point_at(panel, teacher)
        panel.target.setValue(30)
        assert "requests" in panel.estimate_label.text()
        panel.concurrency.setValue(1)  # answers one after another: the counts must follow each
        panel.test_button.click()
        qtbot.waitUntil(lambda: "Connected" in panel.connection_status.text(), timeout=10_000)
        assert "API key from the key field" in panel.connection_status.text()
        assert panel.model.findText("fake-small") >= 0

        counts: list[int] = []
        context.samples_changed.connect(lambda: counts.append(project.samples.count()))
        shown_before = panel.estimate_label.text()
        panel.start_button.click()
        assert panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
        assert panel.resume_button.isHidden()  # no second "resume" control while a run runs
        qtbot.waitUntil(lambda: not panel.is_running() and panel.start_button.isEnabled(), timeout=30_000)
    # the change feed carried the engine's commits to the context: counts follow the run, not only its end
    qtbot.waitUntil(lambda: bool(counts) and counts[-1] == 30, timeout=5_000)
    assert len(counts) >= 2 and 0 < counts[0]
    assert "Finished: target reached" in panel.eta.text()
    assert panel.estimate_label.text() == shown_before  # one estimate: the run announced the one shown before
    assert "estimate" not in panel.connection_status.text().lower()  # and nowhere else
    assert panel.progress.value() == 30 and project.samples.count() == 30  # the target, not a wave more
    assert panel.feed.count() >= 1 and not panel.feed_view.hint_shown()
    assert "kept" in panel.counters_label.text() and "blacklist" in panel.counters_label.text()
    panel.tabs.setCurrentIndex(2)
    qtbot.waitUntil(lambda: panel.seed_table.rowCount() > 0, timeout=5_000)
    panel.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: panel.rejected_table.rowCount() > 0, timeout=5_000)
    assert not panel.rejected_view.hint_shown()
    before = project.samples.count()
    panel.rejected_table.selectRow(0)
    panel.restore_button.click()
    qtbot.waitUntil(lambda: "(restored)" in panel.rejected_table.item(0, 0).text(), timeout=5_000)
    assert project.samples.count() == before + 1


def test_wrong_key_shows_the_message_area_and_stores_no_run(qtbot, panel: GeneratePanel, project: Project) -> None:
    with FakeTeacher(max_lifetime_s=60) as teacher:
        _point_at(panel, teacher, key="sk-wrong")
        panel.target.setValue(10)
        with qtbot.waitActive(panel):
            panel.show()
            panel.activateWindow()
        for attempt in range(3):  # every failed start, however often: no new run row
            qtbot.keyClick(panel, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # the Start shortcut
            qtbot.waitUntil(lambda: panel.messages.is_shown() and not panel.is_running(), timeout=20_000)
            assert "API key" in panel.messages.message()
            assert _runs(project) == 0
            panel.messages.clear()
        assert panel.resume_button.isHidden()
        # the next action that succeeds clears the message
        panel.api_key.setText(teacher.api_key)
        panel.messages.show_error("left over")
        panel.test_button.click()
        qtbot.waitUntil(lambda: not panel.messages.is_shown(), timeout=10_000)


def test_unreachable_teacher_is_said_plainly_and_stores_no_run(qtbot, panel: GeneratePanel, project: Project) -> None:
    panel.base_url.setText(f"http://127.0.0.1:{_free_port()}/v1")
    panel.model.setCurrentText("some-model")
    panel.start_button.click()
    qtbot.waitUntil(lambda: panel.messages.is_shown() and not panel.is_running(), timeout=20_000)
    assert "Cannot reach" in panel.messages.message()
    assert "nothing was stored" in panel.eta.text().lower()
    assert _runs(project) == 0


def test_an_unknown_model_is_refused_by_the_first_request_and_stores_no_run(qtbot, panel: GeneratePanel,
                                                                           project: Project) -> None:
    with FakeTeacher(max_lifetime_s=60) as teacher:
        _point_at(panel, teacher)
        panel.model.setCurrentText("gpt-99")
        panel.start_button.click()
        qtbot.waitUntil(lambda: panel.messages.is_shown() and not panel.is_running(), timeout=20_000)
    assert "does not know the model 'gpt-99'" in panel.messages.message()
    assert "Nothing was stored" in panel.eta.text() and _runs(project) == 0


def test_a_setting_that_cannot_work_is_said_before_anything_starts(qtbot, panel: GeneratePanel,
                                                                   project: Project) -> None:
    panel.base_url.setText("")
    panel.start_button.click()
    assert panel.messages.is_shown() and "base URL" in panel.messages.message()
    assert not panel.is_running() and _runs(project) == 0


def test_the_estimate_is_the_engines_and_follows_the_seeds(qtbot, panel: GeneratePanel, context: ProjectContext,
                                                          project: Project) -> None:
    panel.target.setValue(200)
    seeds = project.generation.seed_examples()
    assert panel.estimate_label.text() == run_estimate(panel.run_config(), seeds).describe()
    before = panel.estimate_label.text()
    first = project.seeds.list()[0]
    project.seeds.add(SeedTask("Write a much longer seed task " + "with many words " * 40, [Instance("", "ok")]),
                      position=project.seeds.position_of(first.id) - 1)  # now first: shown in every estimate prompt
    qtbot.waitUntil(lambda: "6 in this project" in panel.seed_count_label.text(), timeout=5_000)
    assert panel.estimate_label.text() != before
    assert panel.estimate_label.text() == run_estimate(
        panel.run_config(), project.generation.seed_examples()).describe()
    for seed in project.seeds.list():
        project.seeds.delete(seed.id)
    qtbot.waitUntil(lambda: "0 in this project" in panel.seed_count_label.text(), timeout=5_000)
    assert "No seed tasks yet" in panel.estimate_label.text()


def test_resume_names_the_run_and_pause_says_continue(qtbot, panel: GeneratePanel, context: ProjectContext,
                                                      project: Project) -> None:
    with FakeTeacher(latency_s=0.3, max_lifetime_s=60) as teacher:
        _point_at(panel, teacher)
        panel.target.setValue(10_000)
        panel.concurrency.setValue(1)
        panel.start_button.click()
        qtbot.waitUntil(lambda: any(e.__class__.__name__ == "RunStarted" for e in panel._pending)
                        or "ETA" in panel.eta.text(), timeout=10_000)
        panel.pause_button.click()
        assert panel.pause_button.text() == "Continue"
        assert panel.resume_button.isHidden()
        panel.pause_button.click()
        assert panel.pause_button.text() == "Pause"
        panel.stop_button.click()
        qtbot.waitUntil(lambda: not panel.is_running(), timeout=20_000)
        qtbot.waitUntil(lambda: not panel.resume_button.isHidden(), timeout=5_000)
        run_id = project.generation.latest_run_id()
        assert panel.resume_button.text().startswith(f"Resume run #{run_id} (stopped")
        assert panel.resume_button.text() != panel.pause_button.text()


def test_shutdown_returns_at_once_and_the_run_winds_down_on_its_own(qtbot, panel: GeneratePanel,
                                                                    project: Project) -> None:
    with FakeTeacher(latency_s=1.5, max_lifetime_s=60) as teacher:
        _point_at(panel, teacher)
        panel.target.setValue(10_000)
        panel.start_button.click()
        qtbot.waitUntil(lambda: teacher.total_requests > 0, timeout=10_000)
        worker = panel._worker
        job = worker.job
        assert job in panel.jobs.active_jobs()  # the run is a job of the runner, shown in the status bar
        panel.shutdown()
        assert job.running  # shutdown did not wait for the request in flight
        qtbot.waitUntil(lambda: not job.running, timeout=20_000)
    assert project.generation.run(worker.run_id)["status"] == "stopped"


def test_save_key_runs_off_the_gui_thread_and_reports_the_outcome(qtbot, panel: GeneratePanel, monkeypatch) -> None:
    import studio.ui.generate_panel as generate_panel

    threads: list[threading.Thread] = []

    def fake_store(base_url: str, key: str) -> str | None:
        threads.append(threading.current_thread())
        return "No OS keyring is available on this system; set the key variable instead."

    monkeypatch.setattr(generate_panel, "store_key", fake_store)
    panel.api_key.setText("sk-test")
    panel.save_key.click()
    qtbot.waitUntil(lambda: "No OS keyring" in panel.connection_status.text(), timeout=5_000)
    assert threads and threads[0] is not threading.main_thread()
    qtbot.waitUntil(panel.save_key.isEnabled, timeout=5_000)
    assert panel.messages.level == "warning"


def test_self_instruct_feed_lists_each_instruction_once(qtbot, panel: GeneratePanel, project: Project) -> None:
    with FakeTeacher(latency_s=0.01, max_lifetime_s=60) as teacher:
        _point_at(panel, teacher)
        panel.mode.setCurrentIndex(panel.mode.findData("self-instruct"))
        panel.target.setValue(12)
        panel.num_tasks.setValue(4)
        panel.concurrency.setValue(2)
        panel.start_button.click()
        qtbot.waitUntil(lambda: not panel.is_running() and panel.start_button.isEnabled(), timeout=30_000)
    assert project.samples.count() == 12
    shown = [panel.feed.item(n).data(Qt.ItemDataRole.UserRole) for n in range(panel.feed.count())]
    assert shown and len(shown) == len(set(shown))
    assert any("examples" in panel.feed.item(n).text() for n in range(panel.feed.count()))


def test_a_registered_mode_and_preset_show_up_in_the_panel_and_the_cli(qtbot, capsys) -> None:
    from studio.cli import build_parser

    GENERATION_MODES.register("test-mode", "studio.core.generation.modes:AlpacaMode", title="Test mode",
                              source="test-plugin")
    ENDPOINT_KINDS.register("test-server", "studio.core.llm.endpoint:VLLM", title="Test server", source="test-plugin")
    try:
        widget = GeneratePanel()
        qtbot.addWidget(widget)
        assert widget.mode.findData("test-mode") >= 0 and widget.mode.itemText(widget.mode.findData("test-mode")) == "Test mode"
        assert widget.preset.findData("test-server") >= 0
        widget.preset.setCurrentIndex(widget.preset.findData("test-server"))
        assert widget.base_url.text() == "http://127.0.0.1:8000/v1"
        ENDPOINT_KINDS.register("broken", "no_such_plugin.presets:SERVER", title="Broken", source="bad-plugin")
        broken = GeneratePanel()
        qtbot.addWidget(broken)
        broken.preset.setCurrentIndex(broken.preset.findData("broken"))  # the rest keeps working
        assert "bad-plugin" in broken.messages.message() and "could not be loaded" in broken.messages.message()
        args = build_parser().parse_args(["generate", "--mode", "test-mode", "--preset", "test-server"])
        assert args.mode == "test-mode" and args.preset == "test-server"
        with pytest.raises(SystemExit):
            build_parser().parse_args(["generate", "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        assert "test-mode" in shown and "test-server" in shown and "Distill Studio server" in shown
    finally:
        GENERATION_MODES.unregister("test-mode")
        ENDPOINT_KINDS.unregister("test-server")
        ENDPOINT_KINDS.unregister("broken")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--mode", "test-mode"])


@pytest.mark.parametrize("size", [(1280, 800), (720, 480)])
def test_no_label_of_the_settings_is_clipped(qtbot, tmp_path: Path, size: tuple[int, int]) -> None:
    from studio.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p", create_if_missing=True)
    window.show()
    window.nav.setCurrentRow([s.key for s in window.specs].index("generate"))
    window.resize(*size)
    panel = window.panel("generate")
    qtbot.waitUntil(lambda: panel.width() > 0 and window.width() == size[0], timeout=5_000)
    qtbot.wait(50)
    settings = panel.settings_scroll.widget()
    assert settings.width() <= panel.settings_scroll.viewport().width()  # never scrolls sideways
    for label in settings.findChildren(QLabel):
        if label.isVisible() and label.text() and not label.wordWrap():
            assert label.width() >= label.sizeHint().width(), (size, label.text(), label.width())
    for button in panel.findChildren(type(panel.start_button)):
        if button.isVisible() and button.text():
            assert button.width() >= button.minimumSizeHint().width(), (size, button.text())
    window.close()


def test_the_status_bar_cancel_stops_a_run_like_the_stop_button(qtbot, panel: GeneratePanel, project: Project) -> None:
    with FakeTeacher(latency_s=0.3, max_lifetime_s=60) as teacher:
        _point_at(panel, teacher)
        panel.target.setValue(10_000)
        panel.start_button.click()
        qtbot.waitUntil(lambda: teacher.total_requests > 0, timeout=10_000)
        job = panel._worker.job
        qtbot.waitUntil(lambda: job.progress is not None and job.progress.total == 10_000, timeout=10_000)
        job.cancel()  # what the status bar's Cancel button does
        qtbot.waitUntil(lambda: not panel.is_running(), timeout=20_000)
        assert job.state == "done"  # a cooperative stop: the run's summary still arrived
    assert project.generation.run(project.generation.latest_run_id())["status"] == "stopped"
