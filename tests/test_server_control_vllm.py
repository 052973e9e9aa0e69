"""The vllm-serve plugin's backend in the server control, against a fake ``vllm`` first on PATH (tests/fake_vllm.py).

The plugin is found by real discovery (it is installed editable; PYTHONPATH puts this checkout's
copy first). The widget starts it exactly as it would start vLLM (argv from the plugin's
vllm_command, the runtime-LoRA variable set), waits for /v1/models, writes server.json and
removes it on exit; a chat through studio.core.chat then reaches it like the studio's own server.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from studio.core.chat.conversations import ColumnSpec  # noqa: E402
from studio.core.chat.session import stream_answer  # noqa: E402
from studio.core.chat.sources import BASE, RUN, ModelSource, client_for  # noqa: E402
from studio.core.plugins import settings as plugin_settings  # noqa: E402
from studio.core.plugins.boundary import failures  # noqa: E402
from studio.core.plugins.discovery import load_plugins  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.registry import SERVING_BACKENDS  # noqa: E402
from studio.core.serving import launch  # noqa: E402
from studio.core.serving.server_info import info_path, read_info  # noqa: E402
from studio.ui import server_control as sc  # noqa: E402
from studio.ui.jobs import JobRunner  # noqa: E402
from studio.ui.project_context import ProjectContext  # noqa: E402
from studio.ui.server_control import ServerControl  # noqa: E402
from tests import fake_vllm  # noqa: E402
from tests.serve_support import base_folder, trained_run  # noqa: E402

WAIT_MS = 20000
VLLM = "vllm"        # the plugin's serving backend key (ServerInfo.backend of its servers)
PLUGIN = "vllm-serve"
NVIDIA_SMI = """#!/bin/sh
case "$*" in
  -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-0)"; echo "GPU 1: NVIDIA H200 (UUID: GPU-1)";;
  *memory.used*) echo "1024"; echo "2048";;
  *) exit 2;;
esac
"""


@pytest.fixture(autouse=True)
def vllm_plugin():
    """The first-party plugin, registered by discovery as the app does at start."""
    load_plugins(reload=True)
    assert SERVING_BACKENDS.get(VLLM).source == PLUGIN, "the vllm-serve plugin is not installed"
    yield
    load_plugins(reload=True)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch) -> Path:
    """An empty folder first on PATH (a test installs the fakes it wants there)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return folder


@pytest.fixture
def fake_gpu_box(bin_dir: Path, tmp_path: Path, monkeypatch) -> Path:
    """``vllm`` and a two-GPU ``nvidia-smi`` on PATH; the fake vLLM logs its argv and env to the returned file."""
    fake_vllm.install(bin_dir)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(NVIDIA_SMI, encoding="utf-8")
    smi.chmod(0o755)
    log = tmp_path / "vllm-received.json"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    return log


@pytest.fixture
def served(project: Project, tmp_path: Path):
    base = base_folder(tmp_path)
    run = trained_run(project, base, name="first", r=8)
    return project, base, run


@pytest.fixture
def make_control(qtbot, served):
    made: list[tuple[ServerControl, JobRunner, ProjectContext]] = []

    def make() -> ServerControl:
        project = served[0]
        context, jobs = ProjectContext(project), JobRunner()
        widget = ServerControl(context, jobs)
        widget.port = 0
        qtbot.addWidget(widget)
        made.append((widget, jobs, context))
        qtbot.waitUntil(lambda: widget.backend_checks > 0, timeout=WAIT_MS)  # a worker asked the backends
        return widget

    yield make
    for widget, jobs, context in made:
        widget.shutdown()
        jobs.shutdown()
        qtbot.waitUntil(lambda j=jobs: not j.is_busy("serve"), timeout=WAIT_MS)
        context.close()


def recheck(qtbot, widget: ServerControl) -> None:
    """``refresh_backends`` and wait for its answer (the backends are asked on a worker)."""
    done = widget.backend_checks
    widget.refresh_backends()
    qtbot.waitUntil(lambda: widget.backend_checks > done, timeout=WAIT_MS)


def vllm_item(widget: ServerControl):
    return widget.backend_combo.model().item(widget.backend_combo.findData(VLLM))


def wait_state(qtbot, widget: ServerControl, *states: str) -> None:
    qtbot.waitUntil(lambda: widget.state in states, timeout=WAIT_MS)


def test_the_vllm_item_is_enabled_only_with_vllm_on_path_and_remembered(qtbot, make_control, bin_dir: Path,
                                                                        monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))  # nothing but the empty folder: no vllm
    widget = make_control()
    assert [widget.backend_combo.itemText(i) for i in range(2)] == ["Studio server", "vLLM"]
    assert not vllm_item(widget).isEnabled() and "vLLM is not installed" in vllm_item(widget).toolTip()
    assert "pip install vllm" in widget.backend_combo.toolTip()
    widget.set_backend(VLLM)
    assert widget.backend() == sc.STUDIO
    fake_vllm.install(bin_dir)
    recheck(qtbot, widget)
    assert vllm_item(widget).isEnabled() and "not installed" not in widget.backend_combo.toolTip()
    widget.set_backend(VLLM)
    assert widget.backend() == VLLM and widget.settings.value(sc.BACKEND_SETTING) == "vllm"
    assert QSettings(widget.settings.fileName(), QSettings.Format.IniFormat).value(sc.BACKEND_SETTING) == "vllm"
    assert make_control().backend() == VLLM  # a new control (the next app start) starts where this one was
    (bin_dir / "vllm").unlink()
    third = make_control()
    assert third.backend() == sc.STUDIO and not vllm_item(third).isEnabled()  # remembered, but not there now


def chat(info, source: ModelSource) -> str:
    client, model = client_for(source, info)

    async def go():
        try:
            return await stream_answer(client, model, [{"role": "user", "content": "Say hi."}],
                                       ColumnSpec(source, temperature=0.0, max_tokens=32), deltas.append,
                                       lambda: False)
        finally:
            await client.aclose()

    deltas: list[str] = []
    answer = asyncio.run(go())
    assert not answer.error and len(deltas) > 1 and answer.text == "".join(deltas)
    return answer.text


def test_vllm_starts_from_the_catalog_serves_a_chat_loads_a_run_and_stops(qtbot, make_control, fake_gpu_box: Path,
                                                                           served) -> None:
    project, base, first = served
    control = make_control()
    control.set_backend(VLLM)
    announced: list = []
    control.state_changed.connect(announced.append)
    control.start()
    wait_state(qtbot, control, sc.READY, sc.FAILED)
    assert control.state == sc.READY, control.error_view.toPlainText()
    info = control.info()
    received = json.loads(fake_gpu_box.read_text())
    assert received["argv"] == [
        "serve", str(base.resolve()), "--served-model-name", "tiny-base", "base", "--enable-lora",
        "--lora-modules", f"first={first.adapter_dir}", "--host", "127.0.0.1", "--port", str(info.port),
        "--tensor-parallel-size", "2", "--max-lora-rank", "8"]  # two GPUs from nvidia-smi -L
    assert received["env"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert info.pid == received["pid"] and info.port > 0 and announced == [info]
    on_disk = read_info(info_path(project.root))
    assert on_disk is not None and on_disk.backend == "vllm" and on_disk.pid == received["pid"]
    assert on_disk.catalog == project_catalog_of(project) and on_disk.extra == {"tensor_parallel_size": 2}
    # /health does not exist on vLLM: the state comes from /v1/models, the memory from nvidia-smi
    qtbot.waitUntil(lambda: "GPU 3.0 GB used" in control.details.text(), timeout=WAIT_MS)
    assert "2 GPUs" in control.details.text() and control.backend_combo.currentText() == "vLLM"
    assert control.loaded_adapters() == ["first"] and "Base tiny-base · adapters: first" in control.models_label.text()
    assert not control.backend_combo.isEnabled()  # a running server keeps its backend
    control.settings.setValue(sc.BACKEND_SETTING, "studio")  # the other window's user prefers the studio server
    other = make_control()  # another window on the project adopts it: /v1/models, not /health, says it is up
    wait_state(qtbot, other, sc.READY)
    assert other.backend_combo.currentText() == "vLLM"  # shows what runs, without remembering it
    assert other.settings.value(sc.BACKEND_SETTING) == "studio"
    assert other.info().backend == "vllm" and "(already running)" in other.state_label.text()
    qtbot.waitUntil(lambda: other.loaded_adapters() == ["first"] and "GPU" in other.details.text(), timeout=WAIT_MS)

    assert chat(on_disk, ModelSource(RUN, "first", run_id=first.id)).startswith("Hello from first")
    assert chat(on_disk, ModelSource(BASE, "tiny-base")).startswith("Hello from tiny-base")

    later = trained_run(project, base, name="later", r=8, prompt_format="alpaca-lora")
    results: list = []
    control.adapter_result.connect(lambda run_id, why: results.append((run_id, why)))
    control.ensure_adapter(later.id)
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT_MS)
    assert results == [(later.id, "")]
    model = read_info(info_path(project.root)).catalog.find("later")
    assert model is not None and model.run_id == later.id and model.prompt_format == "alpaca-lora"
    assert [m["id"] for m in launch.fetch_models(info.url)] == ["tiny-base", "base", "first", "later"]
    qtbot.waitUntil(lambda: control.loaded_adapters() == ["first", "later"], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(announced) == 2, timeout=WAIT_MS)  # the Chat panel hears of the new model

    control.stop()
    wait_state(qtbot, control, sc.STOPPED)
    qtbot.waitUntil(lambda: not info_path(project.root).exists(), timeout=WAIT_MS)
    assert not launch.pid_alive(info.pid) and announced[-1] is None


def project_catalog_of(project: Project):
    from studio.core.serving.catalog import project_catalog

    return project_catalog(project)


def test_a_vllm_that_exits_at_once_shows_the_failed_state_with_its_stderr(qtbot, make_control, fake_gpu_box,
                                                                          served, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_FAIL", "ValueError: No supported config format found in /models/x")
    control = make_control()
    control.set_backend(VLLM)
    control.start()
    wait_state(qtbot, control, sc.FAILED)
    text = control.error_view.toPlainText()
    assert "could not start (exit code 1)" in text and "No supported config format found in /models/x" in text
    assert control.info() is None and control.toggle_button.text() == "Start" and control.backend_combo.isEnabled()
    assert not info_path(served[0].root).exists()


def test_a_vllm_without_runtime_lora_loading_is_restarted_with_the_new_run(qtbot, make_control, fake_gpu_box,
                                                                           served, monkeypatch) -> None:
    project, base, _first = served
    monkeypatch.setenv("FAKE_VLLM_NO_RUNTIME_LORA", "1")
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda _p, _t, text, *_a: asked.append(text) or QMessageBox.StandardButton.Yes)
    control = make_control()
    control.set_backend(VLLM)
    control.start()
    wait_state(qtbot, control, sc.READY)
    old_pid = control.info().pid
    later = trained_run(project, base, name="later")
    control.ensure_adapter(later.id)
    qtbot.waitUntil(lambda: bool(asked), timeout=WAIT_MS)
    assert "vLLM could not load later while running" in asked[0] and "HTTP 404" in asked[0]
    qtbot.waitUntil(lambda: control.state == sc.READY and control.info().pid != old_pid, timeout=WAIT_MS)
    assert control.info().catalog.ids() == ["tiny-base", "first", "later"]
    assert read_info(info_path(project.root)).pid == control.info().pid
    assert "--lora-modules" in json.loads(fake_gpu_box.read_text())["argv"]


def test_gpu_count_and_memory_without_torch(bin_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))
    assert launch.gpu_count() == 1 and launch.gpu_memory_used_mib() is None  # no nvidia-smi: one, no figure
    smi = bin_dir / "nvidia-smi"
    smi.write_text(NVIDIA_SMI, encoding="utf-8")
    smi.chmod(0o755)
    assert launch.gpu_count() == 2 and launch.gpu_memory_used_mib() == [1024, 2048]
    assert launch.gpu_count({"CUDA_VISIBLE_DEVICES": "0,3,5"}) == 3
    assert launch.gpu_count({"CUDA_VISIBLE_DEVICES": "GPU-abc"}) == 1
    assert launch.gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == 2  # empty: not set, nvidia-smi counts
    from distill_vllm_serve.backend import vllm_env

    env = vllm_env({"PATH": "/x"})
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["HF_HUB_OFFLINE"] == "1" and env["PATH"] == "/x"


def test_a_vllm_that_never_answers_times_out_with_its_output_tail(qtbot, make_control, fake_gpu_box, served,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_STARTUP_S", "60")
    monkeypatch.setattr(sc, "READY_TIMEOUT_S", 0.5)
    control = make_control()
    control.set_backend(VLLM)
    control.start()
    wait_state(qtbot, control, sc.FAILED)
    qtbot.waitUntil(lambda: "INFO fake vLLM loading" in control.error_view.toPlainText(), timeout=WAIT_MS)
    text = control.error_view.toPlainText()
    assert "vLLM did not answer http://127.0.0.1:" in text and "/v1/models within 0.5 s" in text
    qtbot.waitUntil(lambda: not control.jobs.is_busy("serve"), timeout=WAIT_MS)  # given up on: terminated
    assert not info_path(served[0].root).exists()


def test_the_backends_come_from_the_registry_and_a_disabled_plugin_has_no_item(make_control, bin_dir: Path,
                                                                               monkeypatch) -> None:
    import sys

    fake_vllm.install(bin_dir)
    widget = make_control()
    assert [widget.backend_combo.itemData(i) for i in range(widget.backend_combo.count())][:2] == ["studio", VLLM]
    assert "distill_vllm_serve" in sys.modules  # asked whether it can start: its code is loaded
    plugin_settings.set_enabled(PLUGIN, False)
    try:
        load_plugins(reload=True)
        assert VLLM not in SERVING_BACKENDS
        second = make_control()
        assert second.backend_combo.findData(VLLM) < 0 and second.backend() == sc.STUDIO
        assert "or vLLM" not in second.backend_combo.toolTip()
    finally:
        plugin_settings.set_enabled(PLUGIN, True)


def test_a_serving_backend_that_raises_is_greyed_with_the_plugins_name(make_control, monkeypatch) -> None:
    from distill_vllm_serve import backend as plugin_backend

    def broken() -> str:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(plugin_backend.VLLM_BACKEND, "unavailable_reason", broken)
    widget = make_control()
    tooltip = vllm_item(widget).toolTip()
    assert not vllm_item(widget).isEnabled() and widget.backend() == sc.STUDIO
    assert f"The plugin {PLUGIN!r} failed in its serving backend 'vllm'" in tooltip and "ZeroDivisionError" in tooltip
    assert any("ZeroDivisionError" in message for message in failures(PLUGIN))  # shown in Help > Plugins


def test_the_chat_panel_starts_vllm_from_a_run_column_and_streams_from_it(qtbot, fake_gpu_box, served) -> None:
    from PySide6.QtCore import Qt

    from studio.ui.chat_panel import ChatPanel

    project, _base, first = served
    context = ProjectContext(project)
    panel = ChatPanel()
    try:
        panel.server_control.port = 0
        panel.server_control.set_backend(VLLM)
        panel.resize(1200, 700)
        panel.show()
        qtbot.waitExposed(panel)
        panel.set_context(context)
        qtbot.waitUntil(lambda: len(panel.sources) >= 2, timeout=WAIT_MS)
        while len(panel.columns) < 2:
            panel.add_column()
        for column, model in zip(panel.columns, ("tiny-base", "first")):
            column.picker.setCurrentIndex(next(n for n, s in enumerate(column._sources) if s.model == model))
        run_column = panel.columns[1]
        qtbot.waitUntil(lambda: not run_column.notice_box.isHidden(), timeout=WAIT_MS)
        run_column.notice_button.click()  # "start the server": the remembered backend, vLLM
        qtbot.waitUntil(lambda: panel.server_info is not None, timeout=WAIT_MS)
        argv = json.loads(fake_gpu_box.read_text())["argv"]
        assert panel.server_info.backend == VLLM and argv[:2] == ["serve", panel.server_info.catalog.base_model]
        assert argv[argv.index("--tensor-parallel-size") + 1] == "2" and f"first={first.adapter_dir}" in argv
        panel.prompt.text.setPlainText("Hi there")
        panel.prompt.text.setFocus()
        qtbot.keyClick(panel.prompt.text, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: not panel.is_streaming(), timeout=WAIT_MS)
        texts = [column.answer_view(0).text for column in panel.columns]
        assert texts[0].startswith("Hello from tiny-base") and texts[1].startswith("Hello from first"), texts
        panel.server_control.stop()
        qtbot.waitUntil(lambda: panel.server_info is None, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not info_path(project.root).exists(), timeout=WAIT_MS)
    finally:
        panel.shutdown()
        qtbot.waitUntil(lambda: not panel.jobs.active_jobs(), timeout=WAIT_MS)
        panel.close()
        panel.deleteLater()
        context.close()


def test_the_plugins_backend_is_loaded_and_asked_on_a_worker_never_on_the_gui_thread(
        qtbot, make_control, fake_gpu_box, monkeypatch) -> None:
    import threading

    from distill_vllm_serve import backend as plugin_backend

    asked_on: list[bool] = []  # True: on the GUI thread
    loaded_on: list[bool] = []
    real_reason, real_load = plugin_backend.VLLM_BACKEND.unavailable_reason, sc.serving_backend

    def reason() -> str:
        asked_on.append(threading.current_thread() is threading.main_thread())
        return real_reason()

    def load(key: str):
        loaded_on.append(threading.current_thread() is threading.main_thread())
        return real_load(key)

    monkeypatch.setattr(plugin_backend.VLLM_BACKEND, "unavailable_reason", reason)
    monkeypatch.setattr(sc, "serving_backend", load)
    control = make_control()
    assert asked_on and loaded_on and not any(asked_on + loaded_on)
    assert vllm_item(control).isEnabled()
    control.set_backend(VLLM)
    control.start()
    wait_state(qtbot, control, sc.READY)
    assert not any(asked_on + loaded_on) and read_info(info_path(control.context.root)).backend == VLLM
