"""The export dialog (qtbot) driving the real export child on the tiny model, and the Train panel's Export… action."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio.core import exporting
from studio.core.project import Project
from studio.ui.jobs import JobRunner
from studio.ui.project_context import ProjectContext
from tests.export_support import project_run

pytest.importorskip("torch")


@pytest.fixture
def context(project: Project, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ctx = ProjectContext(project)
    yield ctx
    ctx.close()


@pytest.fixture
def jobs():
    runner = JobRunner()
    yield runner
    runner.shutdown()


def make_dialog(qtbot, context, jobs, run_id: int, monkeypatch, *, kquants: bool = False):
    from studio.ui.export_dialog import ExportDialog

    monkeypatch.setattr(exporting, "kquants_available", lambda: kquants)
    dialog = ExportDialog(context, jobs, run_id)
    qtbot.addWidget(dialog)
    return dialog


def test_the_dialog_runs_an_export_to_the_end_with_the_bar_moving(qtbot, context, jobs, project, tiny_base,
                                                                   monkeypatch) -> None:
    run = project_run(project, tiny_base)
    dialog = make_dialog(qtbot, context, jobs, run.id, monkeypatch)
    assert dialog.format() == "gguf" and dialog.quant.isEnabled()
    assert Path(dialog.target.text()) == project.root / "exports" / "cli-student-gguf"
    item = dialog.quant.model().item(exporting.QUANTS.index("q4_k_m"))
    assert not item.isEnabled() and "gguf-kquants" in item.toolTip()
    dialog.set_format("adapter")
    assert not dialog.quant.isEnabled() and dialog.target.text().endswith("cli-student-adapter")
    dialog.set_format("gguf")
    dialog.quant.setCurrentIndex(exporting.QUANTS.index("q8_0"))

    values: list[int] = []
    dialog.progress.valueChanged.connect(values.append)
    dialog.export_button.click()
    assert dialog.running and not dialog.export_button.isEnabled() and not dialog.close_button.isEnabled()
    assert dialog.cancel_button.isEnabled() and not dialog.choose_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=180_000)
    out = project.root / "exports" / "cli-student-gguf"
    assert dialog.result_path == out, dialog.messages.message()
    assert (out / "cli-student-q8_0.gguf").is_file() and (out / "Modelfile").is_file()
    assert len(set(values)) > 5 and dialog.progress.value() == dialog.progress.maximum()
    assert values == sorted(values)      # the bar only moves forward over the stages
    assert dialog.open_button.isEnabled() and "Exported" in dialog.stage.text()
    opened: list = []
    monkeypatch.setattr("studio.ui.export_dialog.QDesktopServices.openUrl", opened.append)
    dialog.open_button.click()
    assert opened[0].toLocalFile() == str(out)


def test_cancel_stops_the_export_and_leaves_nothing(qtbot, context, jobs, project, tiny_base, monkeypatch) -> None:
    run = project_run(project, tiny_base)
    dialog = make_dialog(qtbot, context, jobs, run.id, monkeypatch)
    dialog.set_format("merged")
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.progress.maximum() > 0, timeout=60_000)     # the first event came
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=30_000)
    exports = project.root / "exports"
    assert "cancelled" in dialog.stage.text() and dialog.result_path is None
    assert not exports.exists() or list(exports.iterdir()) == []
    assert dialog.export_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_without_the_gguf_package_gguf_is_offered_disabled(qtbot, context, jobs, project, tmp_path,
                                                          monkeypatch) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    run = project_run(project, base, adapter=False)
    monkeypatch.setattr(exporting, "gguf_available", lambda: False)
    dialog = make_dialog(qtbot, context, jobs, run.id, monkeypatch)
    gguf = dialog.format_buttons.buttons()[exporting.EXPORT_FORMATS.index("gguf")]
    assert dialog.format() == "merged" and not gguf.isEnabled() and "gguf" in gguf.toolTip()


def test_errors_show_in_the_dialogs_message_area(qtbot, context, jobs, project, tmp_path, monkeypatch) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"architectures": ["Qwen2MoeForCausalLM"]}')
    run = project_run(project, base, adapter=False)
    dialog = make_dialog(qtbot, context, jobs, run.id, monkeypatch)
    dialog.export_button.click()
    assert "has no adapter yet" in dialog.messages.message() and not dialog.running
    run.adapter_dir.mkdir(parents=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    dialog.export_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert "this one is Qwen2MoeForCausalLM" in dialog.messages.message()


def test_the_train_run_list_offers_export_for_runs_with_an_adapter(qtbot, context, project, tmp_path,
                                                                   monkeypatch) -> None:
    from studio.ui.export_dialog import ExportDialog
    from studio.ui.train_panel import TrainPanel

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "llama"}')
    run = project_run(project, base, adapter=False)
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.set_context(context)
    qtbot.waitUntil(lambda: panel.history.rowCount() == 1, timeout=5_000)
    panel.history.selectRow(0)
    assert not panel.export_button.isEnabled()
    assert not panel.history.context_menu(run.id).actions()[0].isEnabled()
    run.adapter_dir.mkdir(parents=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    context.notify("training_runs")
    qtbot.waitUntil(lambda: panel.export_button.isEnabled(), timeout=5_000)
    action = panel.history.context_menu(run.id).actions()[0]
    assert action.text() == "Export…" and action.isEnabled()
    action.trigger()
    assert isinstance(panel.export_dialog, ExportDialog) and panel.export_dialog.run.id == run.id
    panel.export_dialog.close()
    panel.shutdown()
