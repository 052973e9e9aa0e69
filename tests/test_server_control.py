"""The server control widget against a real child process (tests/fake_studio_server.py) and real Qt.

The fake speaks the real server's flags, info file, /health and load_lora_adapter; the widget
starts it on a real JobRunner exactly as it starts ``python -m studio.serve``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from studio.core.processes import pid_alive
from studio.core.project import Project  # noqa: E402
from studio.core.serving.server_info import info_path, read_info  # noqa: E402
from studio.ui import server_control as sc  # noqa: E402
from studio.ui.jobs import JobRunner  # noqa: E402
from studio.ui.project_context import ProjectContext  # noqa: E402
from studio.ui.server_control import ServerControl  # noqa: E402
from tests.serve_support import base_folder, fake_program, live_training, trained_run  # noqa: E402

WAIT_MS = 20000


@pytest.fixture
def served(project: Project, tmp_path: Path):
    base = base_folder(tmp_path)
    trained_run(project, base, name="first")
    return project, base


@pytest.fixture
def control(qtbot, served):
    project, _base = served
    context = ProjectContext(project)
    jobs = JobRunner()
    widget = ServerControl(context, jobs)
    widget.command_prefix = fake_program()
    widget.port = 0
    widget.device = "cpu"
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()
    jobs.shutdown()
    qtbot.waitUntil(lambda: not jobs.is_busy("serve"), timeout=WAIT_MS)
    context.close()


def wait_state(qtbot, widget: ServerControl, state: str) -> None:
    qtbot.waitUntil(lambda: widget.state == state, timeout=WAIT_MS)


def test_start_shows_ready_url_memory_and_adapters_then_stop_removes_the_info_file(qtbot, control) -> None:
    announced: list = []
    control.state_changed.connect(announced.append)
    assert control.toggle_button.text() == "Start" and control.info() is None
    control.start()
    wait_state(qtbot, control, sc.READY)
    info = control.info()
    assert info is not None and announced == [info]
    assert control.url_field.text() == info.url and info.url.startswith("http://127.0.0.1:")
    assert control.toggle_button.text() == "Stop"
    assert info_path(control.context.root).is_file()
    qtbot.waitUntil(lambda: "RAM" in control.details.text(), timeout=WAIT_MS)  # /health, polled on a worker
    assert control.details.text().startswith("cpu")
    assert control.loaded_adapters() == ["first"] and "first" in control.models_label.text()
    assert "tiny-base" in control.models_label.text()
    control.copy_url()
    assert QApplication.clipboard().text() == info.url
    control.stop()
    wait_state(qtbot, control, sc.STOPPED)
    assert not info_path(control.context.root).exists()  # the server removed it on SIGTERM
    assert announced == [info, None] and control.url_field.text() == ""
    assert not pid_alive(info.pid)


def test_the_shortcut_toggles_and_the_tooltip_names_it(qtbot, control) -> None:
    assert control.shortcut.key().toString() == "Ctrl+Shift+S"
    assert "Ctrl+Shift+S" in control.toggle_button.toolTip()
    control.shortcut.activated.emit()
    wait_state(qtbot, control, sc.READY)
    assert "Stop" in control.toggle_button.toolTip() and "Ctrl+Shift+S" in control.toggle_button.toolTip()
    control.shortcut.activated.emit()
    wait_state(qtbot, control, sc.STOPPED)


def test_a_failed_start_shows_the_stderr_tail(qtbot, control) -> None:
    control.command_prefix = fake_program("--fail", "cannot load /models/x: no config.json (give --base-model PATH)")
    control.start()
    wait_state(qtbot, control, sc.FAILED)
    assert control.error_view.isVisibleTo(control)
    text = control.error_view.toPlainText()
    assert "could not start (exit code 2)" in text and "no config.json (give --base-model PATH)" in text
    assert control.toggle_button.text() == "Start" and control.info() is None
    control.command_prefix = fake_program()  # fixed: Start works again from the failed state
    control.start()
    wait_state(qtbot, control, sc.READY)


def test_no_model_to_serve_fails_before_any_process_starts(qtbot, tmp_path: Path) -> None:
    with Project.create(tmp_path / "empty") as project:
        context, jobs = ProjectContext(project), JobRunner()
        widget = ServerControl(context, jobs)
        qtbot.addWidget(widget)
        started: list = []
        jobs.job_started.connect(lambda job: started.append(job.title))
        widget.start()
        wait_state(qtbot, widget, sc.FAILED)
        assert "no trained run with an adapter" in widget.error_view.toPlainText()
        assert "Model server" not in started
        context.close()


def test_a_training_run_on_the_gpu_asks_and_no_does_not_start(qtbot, control, served, monkeypatch) -> None:
    project, base = served
    child = live_training(trained_run(project, base, name="busy"), "cuda (NVIDIA H200)")
    asked: list[tuple[str, object]] = []

    def question(_parent, _title, text, _buttons, default):
        asked.append((text, default))
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", question)
    started: list = []
    control.jobs.job_started.connect(lambda job: started.append(job.title))
    control.device = "auto"
    try:
        control.start()
        qtbot.waitUntil(lambda: bool(asked), timeout=WAIT_MS)
        text, default = asked[0]
        assert "Training run #2 busy is using the GPU (NVIDIA H200)" in text and "out of memory" in text
        assert default == QMessageBox.StandardButton.No
        assert control.state == sc.STOPPED and "Not started" in control.error_view.toPlainText()
        assert "Model server" not in started and not info_path(project.root).exists()
        monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
        control.start()  # answered Yes: it starts
        wait_state(qtbot, control, sc.READY)
    finally:
        child.kill()
        child.wait()


def test_a_cpu_server_beside_a_gpu_run_does_not_ask(qtbot, control, served, monkeypatch) -> None:
    project, base = served
    child = live_training(trained_run(project, base, name="busy"), "cuda (NVIDIA H200)")
    monkeypatch.setattr(QMessageBox, "question", lambda *a: pytest.fail("asked although the server runs on the CPU"))
    try:
        control.device = "cpu"
        control.start()
        wait_state(qtbot, control, sc.READY)
    finally:
        child.kill()
        child.wait()


def test_an_already_running_server_is_adopted_and_stop_stops_it(qtbot, served) -> None:
    project, _base = served
    child = subprocess.Popen(fake_program("--project", str(project.root), "--port", "0"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().startswith("Serving http://127.0.0.1:")
        context, jobs = ProjectContext(project), JobRunner()
        widget = ServerControl(context, jobs)
        qtbot.addWidget(widget)
        announced: list = []
        widget.state_changed.connect(announced.append)
        wait_state(qtbot, widget, sc.READY)
        assert widget.info().pid == child.pid and "already running" in widget.state_label.text()
        assert announced[0].pid == child.pid and not jobs.is_busy("serve")  # adopted, not started again
        qtbot.waitUntil(lambda: "RAM" in widget.details.text(), timeout=WAIT_MS)
        widget.stop()
        wait_state(qtbot, widget, sc.STOPPED)
        assert child.wait(10) == 0 and not info_path(project.root).exists()
        assert announced[-1] is None
        context.close()
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_an_adopted_server_that_dies_shows_stopped(qtbot, served) -> None:
    project, _base = served
    child = subprocess.Popen(fake_program("--project", str(project.root), "--port", "0"), stdout=subprocess.PIPE,
                             text=True)
    try:
        child.stdout.readline()
        context, jobs = ProjectContext(project), JobRunner()
        widget = ServerControl(context, jobs)
        qtbot.addWidget(widget)
        wait_state(qtbot, widget, sc.READY)
        child.kill()
        child.wait()
        wait_state(qtbot, widget, sc.STOPPED)
        assert "exited" in widget.error_view.toPlainText()
        context.close()
    finally:
        if child.poll() is None:
            child.kill()


def test_the_job_runner_shutdown_stops_the_server(qtbot, control) -> None:
    control.start()
    wait_state(qtbot, control, sc.READY)
    pid, info_file = control.info().pid, info_path(control.context.root)
    control.jobs.shutdown()  # what the window's closeEvent does
    qtbot.waitUntil(lambda: not pid_alive(pid), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not info_file.exists(), timeout=WAIT_MS)


def test_a_server_that_exits_while_ready_shows_failed_with_its_output(qtbot, control) -> None:
    control.command_prefix = fake_program("--die-after-ms", "800")
    control.start()
    wait_state(qtbot, control, sc.READY)
    wait_state(qtbot, control, sc.FAILED)
    assert "The server stopped (exit code 3)" in control.error_view.toPlainText()


def test_ensure_adapter_loads_a_run_trained_after_the_start(qtbot, control, served) -> None:
    project, base = served
    control.start()
    wait_state(qtbot, control, sc.READY)
    later = trained_run(project, base, name="later")
    announced: list = []
    results: list = []
    control.state_changed.connect(announced.append)
    control.adapter_result.connect(lambda run_id, why: results.append((run_id, why)))
    control.ensure_adapter(later.id)
    qtbot.waitUntil(lambda: "later" in control.loaded_adapters(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(announced) and "later" in announced[-1].catalog.ids(), timeout=WAIT_MS)
    assert results == [(later.id, "")] and announced[-1].catalog.find("later").run_id == later.id
    assert "later" in control.models_label.text()
    assert read_info(info_path(project.root)).catalog.find("later") is not None  # the server rewrote its file
    count = len(announced)
    control.ensure_adapter(later.id)  # already served: said so, and nothing new announced (no loops)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=WAIT_MS)
    assert results[-1] == (later.id, "")
    qtbot.wait(300)
    assert len(announced) == count


def test_ensure_adapter_without_a_server_or_a_run_says_why(qtbot, control, served) -> None:
    results: list = []
    control.adapter_result.connect(lambda run_id, why: results.append((run_id, why)))
    control.ensure_adapter(1)
    assert results == [(1, "the local server is not running; start it to serve this run")]
    control.start()
    wait_state(qtbot, control, sc.READY)
    control.ensure_adapter(99)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=WAIT_MS)
    assert results[1][0] == 99 and "no training run 99" in results[1][1]
    assert "no training run 99" in control.error_view.toPlainText()


def test_deleting_the_widget_stops_the_server_it_started(qtbot, served) -> None:
    project, _base = served
    context, jobs = ProjectContext(project), JobRunner()
    widget = ServerControl(context, jobs)
    widget.command_prefix, widget.port, widget.device = fake_program("--ignore-stop-file"), 0, "cpu"
    widget.start()
    wait_state(qtbot, widget, sc.READY)
    pid = widget.info().pid
    widget.deleteLater()  # what a panel does when it rebuilds for another project
    qtbot.waitUntil(lambda: not pid_alive(pid), timeout=WAIT_MS)
    assert not info_path(project.root).exists()
    context.close()


def test_ensure_adapter_of_another_base_offers_a_restart(qtbot, control, served, tmp_path: Path,
                                                         monkeypatch) -> None:
    project, _base = served
    control.start()
    wait_state(qtbot, control, sc.READY)
    first_pid = control.info().pid
    other = trained_run(project, base_folder(tmp_path, "other-base"), name="elsewhere")
    asked: list[str] = []

    def question(_parent, _title, text, _buttons, default):
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", question)
    results: list = []
    control.adapter_result.connect(lambda run_id, why: results.append((run_id, why)))
    control.ensure_adapter(other.id)
    qtbot.waitUntil(lambda: bool(asked), timeout=WAIT_MS)
    assert "was trained on" in asked[0] and "other-base" in asked[0] and "Restart the server" in asked[0]
    assert control.state == sc.READY and control.info().pid == first_pid
    assert "not served" in control.error_view.toPlainText()
    assert results == [(other.id, "elsewhere is not served: it was trained on another base model")]
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    control.ensure_adapter(other.id)
    qtbot.waitUntil(lambda: control.state == sc.READY and control.info().pid != first_pid, timeout=WAIT_MS)
    assert control.info().catalog.base_model.endswith("other-base")
    assert "elsewhere" in control.info().catalog.ids()


def test_human_bytes() -> None:
    assert [sc.human_bytes(v) for v in (512, 2048, 300 * 2**20, 1.25 * 2**30, 40 * 2**30)] == [
        "512 B", "2 KB", "300 MB", "1.2 GB", "40 GB"]


def test_the_widget_module_imports_no_torch_stack() -> None:
    code = ("import sys, studio.ui.server_control, studio.core.serving.launch; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'fastapi') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.stdout.strip() == "[]"


def test_stop_while_starting_ends_the_process_and_shows_stopped(qtbot, control) -> None:
    control.command_prefix = fake_program("--startup-delay-ms", "3000")
    control.start()
    wait_state(qtbot, control, sc.STARTING)
    assert control.toggle_button.text() == "Stop" and control.details.text().startswith("Loading the model…")
    control.stop()
    wait_state(qtbot, control, sc.STOPPED)
    assert not control.jobs.is_busy("serve") and control.info() is None
    assert not info_path(control.context.root).exists()


def test_cancel_from_the_status_bar_shows_stopped_not_failed(qtbot, control) -> None:
    control.command_prefix = fake_program("--ignore-stop-file")  # stopped by the runner's SIGTERM
    control.start()
    wait_state(qtbot, control, sc.READY)
    control.jobs.cancel("serve")
    wait_state(qtbot, control, sc.STOPPED)


def test_app_quit_terminates_the_server_and_waits_for_it(qtbot, control) -> None:
    control.command_prefix = fake_program("--ignore-stop-file")  # only the signal can stop it
    control.start()
    wait_state(qtbot, control, sc.READY)
    pid, info_file = control.info().pid, info_path(control.context.root)
    QApplication.instance().aboutToQuit.emit()
    assert not pid_alive(pid) and not info_file.exists()  # already gone when the handler returns


def test_a_new_project_stops_the_old_projects_server(qtbot, control, tmp_path: Path) -> None:
    control.start()
    wait_state(qtbot, control, sc.READY)
    pid, old_info = control.info().pid, info_path(control.context.root)
    announced: list = []
    control.state_changed.connect(announced.append)
    with Project.create(tmp_path / "second") as second:
        context = ProjectContext(second)
        control.set_context(context)
        assert control.state == sc.STOPPED and announced == [None] and control.info() is None
        qtbot.waitUntil(lambda: not pid_alive(pid) and not old_info.exists(), timeout=WAIT_MS)
        assert control.state == sc.STOPPED  # the old server's exit does not touch the new project's state
        control.set_context(None)
        assert not control.toggle_button.isEnabled()
        context.close()


def test_the_toolbar_row_form_holds_everything_on_one_line(qtbot, served) -> None:
    project, _base = served
    context, jobs = ProjectContext(project), JobRunner()
    widget = ServerControl(context, jobs, horizontal=True)
    qtbot.addWidget(widget)
    widget.show()
    tops = {w.geometry().center().y() for w in (widget.dot, widget.state_label, widget.url_field,
                                                widget.toggle_button)}
    assert max(tops) - min(tops) < 6 and widget.sizeHint().height() < 60
    context.close()
