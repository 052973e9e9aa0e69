"""The Train panel: live curves from a tailed events file, settings, presets, pre-flight view, re-attach.

The job is a scripted child (tests/fake_studio_train.py) that speaks the real events protocol
and file conventions, started detached by the panel exactly as the real one is; the real
job's own tests train the tiny model.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from studio.core.project import Project  # noqa: E402
from studio.core.samples import Sample, Status  # noqa: E402
from studio.core.training.settings import PRESETS, TrainSettings, preset_settings, setting_help  # noqa: E402
from studio.ui.project_context import ProjectContext  # noqa: E402
from studio.ui.train_live import LiveRun  # noqa: E402
from studio.ui.train_panel import TrainPanel  # noqa: E402
from studio.ui.train_preflight_view import PreflightView, token_html  # noqa: E402
from studio.ui.train_settings_form import SettingsForm  # noqa: E402

FAKE_CHILD = Path(__file__).with_name("fake_studio_train.py")


def log(step: int, loss: float, **extra) -> dict:
    return {"type": "log", "step": step, "loss": loss, "learning_rate": 1e-4, "grad_norm": 0.5,
            "tokens_per_s": 900.0, "gpu_memory_gb": None, **extra}


# -- no window ----------------------------------------------------------------------------------
def test_live_run_keeps_one_point_per_step_when_a_resume_repeats_steps() -> None:
    live = LiveRun()
    live.ingest([{"type": "config", "run_id": 1, "device": "cpu"}] + [log(s, 10.0 / s) for s in range(1, 8)])
    live.ingest([{"type": "config", "run_id": 1, "device": "cpu"}] + [log(s, 1.0) for s in range(5, 11)])
    x, y = live.series["loss"].x, live.series["loss"].y
    assert x.tolist() == list(range(1, 11))  # steps 5-7 re-logged after a resume from step 4: once each
    assert y[3] == pytest.approx(2.5) and y[4:].tolist() == [1.0] * 6
    smooth = live.series["loss_smooth"].y
    assert smooth.size == 10 and smooth[0] == pytest.approx(10.0)  # debiased: starts at the first value
    assert live.new_log_lines(0)[-1].startswith("step 10")


def test_a_single_eval_point_is_marked_and_titles_fit(qtbot) -> None:
    from studio.ui.train_plots import TrainPlots

    plots = TrainPlots()
    qtbot.addWidget(plots)
    live = LiveRun()
    live.ingest([log(1, 2.0), log(2, 1.5), {"type": "eval", "step": 2, "eval_loss": 1.7}])
    plots.show_run(live)
    curve = plots.curves["eval_loss"]
    assert curve.opts["symbol"] == "o" and len(curve.scatter.data) == 1  # a lone eval is a visible dot
    assert all(plots.curves[name].opts["symbol"] is None for name in ("loss", "loss_smooth", "tokens_per_s"))
    drawn = curve.scatter.data
    live.ingest([log(3, 1.2)])
    plots.redraw()
    assert curve.scatter.data is drawn  # the symbol curve is handed data only when an eval arrives
    for key, plot in plots.plots.items():
        assert len(plot.getPlotItem().titleLabel.text) <= 16, key  # fits a small plot at 1024×640
    assert "padding not counted" in plots.plots["tokens_per_s"].toolTip()
    assert "Peak" in plots.plots["gpu_memory_gb"].toolTip()


def test_history_headers_are_not_clipped_in_a_narrow_table(qtbot) -> None:
    from types import SimpleNamespace

    from studio.ui.train_history import COLUMNS, RunHistory

    history = RunHistory()
    qtbot.addWidget(history)
    history.resize(520, 200)
    history.show()
    run = SimpleNamespace(id=21, name="g5", status="stopped", last_step=10, max_steps=40, error="",
                          snapshot_name="snapshot-with-a-long-name (2000 samples)", created_at=1.7e9,
                          base_model="/home/someone/models/a/very/long/path/to/SmolLM2-135M-Instruct")
    history.show_runs([run])
    header = history.horizontalHeader()
    for col, name in enumerate(COLUMNS):
        assert header.sectionSize(col) >= header.sectionSizeFromContents(col).width(), name
    assert header.length() <= history.viewport().width()  # every column in view: none cut at the right edge
    assert history.item(0, COLUMNS.index("Base model")).toolTip() == run.base_model  # elided, whole in the tip


def test_sample_answers_say_where_their_prompts_come_from() -> None:
    from studio.ui.train_panel import samples_html

    live = LiveRun()
    live.ingest([{"type": "config", "run_id": 1, "device": "cpu", "eval_samples": 0}])
    assert live.samples_source == "training prompts (no validation split)"
    assert "training prompts (no validation split)" in samples_html({"step": 5, "samples": []}, live.samples_source)
    held = LiveRun()
    held.ingest([{"type": "config", "run_id": 1, "device": "cpu", "eval_samples": 3}])
    assert "held-out prompts" in samples_html({"step": 5, "samples": []}, held.samples_source)


def test_settings_form_round_trips_and_carries_help(qtbot) -> None:
    form = SettingsForm()
    qtbot.addWidget(form)
    chosen = preset_settings("alpaca-lora").with_overrides({"max_steps": 7, "learning_rate": 1.5e-4,
                                                            "packing": False, "lr_scheduler_type": "constant"})
    form.set_settings(chosen)
    assert form.settings() == chosen
    assert form.editors["lora_alpha"].toolTip().startswith(setting_help("lora_alpha"))
    assert "--set lora_alpha=" in form.editors["lora_alpha"].toolTip()
    assert form.editors["learning_rate"].text() == "0.00015"
    form.editors["lora_r"].setValue(4)
    assert form.settings().lora_r == 4
    form.editors["target_modules"].setText("q_proj, k_proj")
    assert form.settings().target_modules == ["q_proj", "k_proj"]


def test_preflight_view_renders_a_report(qtbot) -> None:
    view = PreflightView()
    qtbot.addWidget(view)
    report = {
        "sample": {"sample_id": 3, "eos_ok": True, "tokens": [
            {"id": 5, "text": "### Response:", "masked": True, "special": False},
            {"id": 9, "text": "Hi <there>", "masked": False, "special": False},
            {"id": 2, "text": "</s>", "masked": False, "special": True}]},
        "checks": [{"level": "ok", "code": "eos", "message": "every target ends in EOS"},
                   {"level": "warning", "code": "device", "message": "no GPU: training runs on the CPU"}],
        "lengths": {"edges": [0, 64, 128, 192], "counts": [3, 5, 1], "max_length": 128, "cut": 1},
        "estimates": {"memory": {"total_gb": 1.25, "weights_gb": 1.0,
                                 "method": {"weights": "parameters × 2 bytes", "total": "the sum"}},
                      "time": {"seconds": 30.0, "method": "6·N·tokens FLOPs at an assumed rate"}},
    }
    view.show_report(report)
    spans = token_html(report["sample"]["tokens"]).split("</span>")
    assert "color:#8a8a8a" in spans[0] and "color:#8a8a8a" not in spans[1]  # the masked token is dimmed
    assert "Hi&nbsp;&lt;there&gt;" in spans[1] and "border" in spans[2]  # escaped; the special EOS outlined
    assert "### Response:Hi <there></s>" in view.tokens.toPlainText().replace("\u00a0", " ")
    assert "1 warning(s)" in view.summary.text() and "2 learned" in view.summary.text()
    checks = view.checks.toPlainText()
    assert "every target ends in EOS" in checks and "no GPU" in checks
    assert view.histogram.cut_text == "max_length 128: 1 cut"
    estimates = view.estimates.toPlainText()
    assert "parameters × 2 bytes" in estimates and "6·N·tokens FLOPs" in estimates


def test_a_burst_is_drawn_in_a_few_throttled_redraws(qtbot, tmp_path) -> None:
    panel = TrainPanel()
    qtbot.addWidget(panel)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(log(s, 1.0 / s)) + "\n" for s in range(1, 3001)), encoding="utf-8")
    live = panel.follow_events_file(path)
    qtbot.waitUntil(lambda: panel.plots.curve_data("loss")[0].size == 3000, timeout=10_000)
    assert live.events_seen == 3000
    assert panel.plots.redraws <= 10  # 3,000 events, a handful of timer redraws, not 3,000
    text = panel.log_view.toPlainText()
    assert "lines not shown" in text and text.rstrip().endswith("tok/s 900")  # the newest lines, the rest counted
    assert panel.log_view.document().blockCount() <= 201 * panel.plots.redraws  # at most 200 lines a redraw
    with path.open("a", encoding="utf-8") as out:  # and a half-written last line waits for its end
        out.write(json.dumps(log(3001, 0.1)) + "\n" + '{"type": "lo')
    qtbot.waitUntil(lambda: live.events_seen == 3001, timeout=5_000)
    assert panel.plots.curve_data("loss")[0][-1] == 3001
    panel.shutdown()


# -- the panel on a project ---------------------------------------------------------------------
@pytest.fixture
def context(project: Project, tmp_path: Path) -> ProjectContext:
    for i in range(6):
        project.samples.add(Sample(f"Instruction {i}.", "", f"Out {i}.", status=Status.ACCEPTED))
    project.snapshots.create("v1")
    ctx = ProjectContext(project)
    yield ctx
    ctx.close()


@pytest.fixture
def base_model(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-base"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    return folder


def make_panel(qtbot, context: ProjectContext, base_model: Path | str) -> TrainPanel:
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.child_command = lambda config: [sys.executable, str(FAKE_CHILD), str(config)]
    panel.set_context(context)
    qtbot.waitUntil(lambda: panel.snapshot.count() == 1, timeout=5_000)
    panel.base_model.setCurrentText(str(base_model))
    return panel


def test_preset_changes_the_fields(qtbot, context, base_model) -> None:
    panel = make_panel(qtbot, context, base_model)
    panel.preset.setCurrentIndex(panel.preset.findData("alpaca-lora"))
    assert panel.form.settings() == preset_settings("alpaca-lora")
    assert panel.preset_note.text() == PRESETS["alpaca-lora"].description
    assert panel.form.editors["target_modules"].text() == "q_proj,v_proj"
    panel.preset.setCurrentIndex(panel.preset.findData("alpaca"))
    assert panel.form.settings().lora_r == 16 and panel.form.settings().prompt_format == "alpaca"
    panel.shutdown()


def test_a_run_draws_its_curves_and_sample_answers(qtbot, context, base_model, monkeypatch, project) -> None:
    monkeypatch.setenv("FAKE_STEPS", "30")
    panel = make_panel(qtbot, context, base_model)
    panel.tabs.setCurrentWidget(panel.preflight)
    panel.start_run()
    qtbot.waitUntil(lambda: panel.live is not None and panel.live.status == "done", timeout=20_000)
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=5_000)
    x, y = panel.plots.curve_data("loss")
    assert x.tolist() == list(range(1, 31)) and y[0] == pytest.approx(5.0)
    ex, ey = panel.plots.curve_data("eval_loss")
    assert ex.tolist() == [10, 20, 30] and ey[0] == pytest.approx(0.6)
    assert panel.plots.curve_data("tokens_per_s")[1][-1] == pytest.approx(1030.0)
    assert panel.plots.curve_data("gpu_memory_gb")[0].size == 0  # null on the CPU: no points
    assert "Hi at step 20." in panel.samples_view.toPlainText()
    assert "held-out prompts" in panel.samples_view.toPlainText()  # a validation split by default
    assert "done at step 30" in panel.log_view.toPlainText()
    assert panel.progress.value() == 30 and panel.progress.maximum() == 30
    assert panel.tabs.currentIndex() == 0                       # Start shows the curves
    row = panel.history.row_of(panel.run.id)                    # the history's step follows the curves
    qtbot.waitUntil(lambda: panel.history.item(row, 2).text() == "30 / 30", timeout=5_000)
    assert panel.plots.redraws < 40  # one redraw per timer tick that saw new events, not one per event
    qtbot.waitUntil(lambda: project.training.list()[0].status == "done", timeout=5_000)
    qtbot.waitUntil(lambda: panel.hardest_button.isEnabled(), timeout=5_000)
    panel.shutdown()


def test_an_error_event_reaches_the_message_area(qtbot, context, tmp_path, project) -> None:
    folder = tmp_path / "missing"  # the scripted job fails on a model named so
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    panel = make_panel(qtbot, context, folder)
    panel.start_run()
    qtbot.waitUntil(lambda: panel.messages.is_shown() and "Training failed" in panel.messages.message(),
                    timeout=20_000)
    assert "no such model folder" in panel.messages.message()
    assert "choose a folder with config.json" in panel.messages.message()
    qtbot.waitUntil(lambda: project.training.list()[0].status == "failed", timeout=5_000)
    qtbot.waitUntil(lambda: panel.resume_button.isEnabled(), timeout=5_000)
    panel.shutdown()


def test_an_unreachable_hub_model_is_said_in_one_line_and_no_run_is_made(qtbot, context, tmp_path, monkeypatch,
                                                                          project) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    panel = make_panel(qtbot, context, "org/not-cached")
    panel.start_run()
    qtbot.waitUntil(lambda: panel.messages.is_shown(), timeout=30_000)
    assert "cannot reach the Hugging Face Hub" in panel.messages.message()
    assert "\n" not in panel.messages.message() and project.training.list() == []
    qtbot.waitUntil(lambda: panel.start_button.isEnabled(), timeout=5_000)
    remote = tmp_path / "remote-code-model"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": {"AutoModel": "m.M"}}))
    panel.base_model.setCurrentText(str(remote))
    panel.start_run()
    qtbot.waitUntil(lambda: "trust_remote_code" in panel.messages.message(), timeout=10_000)
    assert project.training.list() == []
    panel.shutdown()


def test_stop_then_resume_continues_the_curve(qtbot, context, base_model, monkeypatch, project) -> None:
    monkeypatch.setenv("FAKE_STEPS", "40")
    monkeypatch.setenv("FAKE_DELAY", "0.05")
    panel = make_panel(qtbot, context, base_model)
    panel.start_run()
    qtbot.waitUntil(lambda: panel.live is not None and panel.live.step >= 5, timeout=20_000)
    assert panel.stop_button.isEnabled()
    panel.stop_button.click()
    qtbot.waitUntil(lambda: panel.live.status == "stopped", timeout=10_000)
    stopped_at = panel.live.step
    assert stopped_at < 40
    qtbot.waitUntil(lambda: project.training.list()[0].status == "stopped" and panel.resume_button.isEnabled(),
                    timeout=10_000)
    panel.resume_button.click()
    qtbot.waitUntil(lambda: panel.live is not None and panel.live.status == "done", timeout=20_000)
    x, _ = panel.plots.curve_data("loss")
    assert x.tolist() == list(range(1, 41))  # the same curve, on from the stop, no step twice
    panel.shutdown()


def test_resume_right_after_stop_follows_a_job_slow_to_start_to_done(qtbot, context, base_model, monkeypatch,
                                                                       project) -> None:
    """Resume is offered by the live stop event (the store lags) and a resumed job slow to write its pid is no loss."""
    monkeypatch.setenv("FAKE_STEPS", "30")
    monkeypatch.setenv("FAKE_DELAY", "0.05")
    panel = make_panel(qtbot, context, base_model)
    panel.start_run()
    qtbot.waitUntil(lambda: panel.live is not None and panel.live.step >= 5, timeout=20_000)
    panel.stop_run()
    qtbot.waitUntil(lambda: panel.live.status == "stopped" and not panel.is_running(), timeout=10_000)
    shown = next(r for r in panel.runs if r.id == panel.run.id)
    if shown.status == "running":  # the store row not synced yet: the live stop event is enough
        assert panel.resume_button.isEnabled()
    qtbot.waitUntil(lambda: panel.resume_button.isEnabled(), timeout=10_000)
    monkeypatch.setenv("FAKE_PID_DELAY", "2.5")  # the resumed job needs a while before its pid file
    panel.resume_run()
    assert not panel.resume_button.isEnabled() and not panel.start_button.isEnabled()
    panel.resume_run()  # the shortcut pressed twice: still one job
    panel.start_run()
    qtbot.waitUntil(lambda: panel.is_running(), timeout=10_000)
    assert not panel.resume_button.isEnabled()
    qtbot.waitUntil(lambda: panel.live.final is not None and not panel.is_running(), timeout=30_000)
    assert panel.live.status == "done", panel.messages.message()  # not "ended without a final event"
    assert panel.plots.curve_data("loss")[0].tolist() == list(range(1, 31))
    assert len(project.training.list()) == 1
    panel.shutdown()


def test_resume_of_a_run_whose_job_runs_follows_it(qtbot, context, base_model, monkeypatch, project) -> None:
    """A run shown as ended while its job still trains: Resume (and Start) re-attach to it, no second job."""
    monkeypatch.setenv("FAKE_STEPS", "40")
    monkeypatch.setenv("FAKE_DELAY", "0.05")
    panel = make_panel(qtbot, context, base_model)
    panel.start_run()
    qtbot.waitUntil(lambda: panel.live is not None and panel.live.step >= 3 and panel._saw_pid, timeout=20_000)
    # The panel loses track of the job (as the old start-grace bug made it): a lost event, no follow.
    panel.live.ingest([{"type": "error", "message": "lost", "kind": "lost"}])
    panel.tail = None
    panel._update_buttons()
    assert panel.resume_button.isEnabled()
    panel.start_run()
    assert "still running" in panel.messages.message()
    qtbot.waitUntil(lambda: panel.is_running(), timeout=10_000)
    panel.live.ingest([{"type": "error", "message": "lost", "kind": "lost"}])
    panel.tail = None
    panel._update_buttons()
    panel.resume_run()
    qtbot.waitUntil(lambda: panel.is_running(), timeout=10_000)
    qtbot.waitUntil(lambda: panel.live.status == "done", timeout=30_000)
    assert "still running; stop it first" not in panel.messages.message()
    assert panel.plots.curve_data("loss")[0].tolist() == list(range(1, 41))
    assert len(project.training.list()) == 1
    panel.shutdown()


def test_a_job_deaf_to_stop_is_terminated_after_the_timeout(qtbot, context, base_model, monkeypatch,
                                                            project) -> None:
    monkeypatch.setenv("FAKE_STEPS", "2000")
    monkeypatch.setenv("FAKE_DELAY", "0.02")
    monkeypatch.setenv("FAKE_IGNORE_STOP", "1")
    panel = make_panel(qtbot, context, base_model)
    panel.stop_kill_after_s = 0.5
    panel.start_run()
    qtbot.waitUntil(lambda: panel.live is not None and panel.live.step >= 3, timeout=20_000)
    panel.stop_run()
    assert not panel.stop_button.isEnabled() and "Stopping" in panel.status_line.text()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=20_000)
    assert "ended without a final event" in panel.messages.message()
    assert panel.live.status == "failed" and panel.live.step < 2000
    qtbot.waitUntil(lambda: project.training.list()[0].status == "failed", timeout=10_000)
    panel.shutdown()


def test_the_panel_reattaches_to_a_running_job_after_reopening(qtbot, context, base_model, monkeypatch,
                                                                project) -> None:
    monkeypatch.setenv("FAKE_STEPS", "60")
    monkeypatch.setenv("FAKE_DELAY", "0.05")
    first = make_panel(qtbot, context, base_model)
    first.start_run()
    qtbot.waitUntil(lambda: first.live is not None and first.live.step >= 5, timeout=20_000)
    first.shutdown()  # the window closes: the job keeps running
    first.set_context(None)
    first.close()
    run = project.training.list()[0]
    from studio.core.training import launch

    assert launch.live_pid(run) is not None
    second = make_panel(qtbot, context, base_model)
    qtbot.waitUntil(lambda: second.run is not None and second.is_running(), timeout=10_000)
    assert second.run.id == run.id
    qtbot.waitUntil(lambda: second.live.status == "done", timeout=30_000)
    x, _ = second.plots.curve_data("loss")
    assert x.tolist() == list(range(1, 61))  # the early steps from the file, the rest as they came
    assert np.all(np.diff(x) == 1)
    second.shutdown()


def test_reopening_fills_the_form_from_the_run_it_shows(qtbot, context, base_model, monkeypatch, project) -> None:
    """After a restart the form holds the shown run's snapshot, base model and settings, not the defaults."""
    monkeypatch.setenv("FAKE_STEPS", "6")
    panel = make_panel(qtbot, context, base_model)
    project.snapshots.create("v2")  # the newest snapshot, which a fresh form would pick
    qtbot.waitUntil(lambda: panel.snapshot.count() == 2, timeout=5_000)
    v1 = project.snapshots.get("v1").id
    panel.snapshot.setCurrentIndex(panel.snapshot.findData(v1))
    panel.preset.setCurrentIndex(panel.preset.findData("alpaca-lora"))
    panel.form.editors["lora_r"].setValue(4)
    chosen = panel.form.settings()
    panel.start_run()
    qtbot.waitUntil(lambda: panel.live is not None and panel.live.status == "done" and not panel.is_running(),
                    timeout=20_000)
    panel.shutdown()
    reopened = TrainPanel()
    qtbot.addWidget(reopened)
    reopened.set_context(context)
    qtbot.waitUntil(lambda: reopened.snapshot.count() == 2 and reopened.live is not None, timeout=10_000)
    assert reopened.snapshot.currentData() == v1
    assert reopened.base_model_text() == str(base_model)
    assert reopened.form.settings() == chosen
    assert "run #1" in reopened.preset_note.text()  # lora_r changed: no preset matches, the note says whose
    reopened.shutdown()


HARDEST_SCRIPT = """
import json, sys
from pathlib import Path
config = json.loads(Path(sys.argv[1]).read_text())
records = [json.loads(line) for line in Path(config["data_path"]).read_text().splitlines() if line.strip()]
with open(Path(config["run_dir"]) / "hardest.jsonl", "w") as out:
    for record in records:
        loss = 9.0 if record["output"] == "CORRUPTED" else 1.0 + record["sample_id"] / 100
        out.write(json.dumps({"sample_id": record["sample_id"], "loss": loss, "tokens": 5,
                              "instruction": record["instruction"]}) + "\\n")
"""


def test_hardest_samples_open_in_curate_worst_first(qtbot, tmp_path, monkeypatch) -> None:
    from PySide6.QtCore import QSettings

    from studio.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p", create_if_missing=True)
    window.show()
    project = window.project
    ids = [project.samples.add(Sample(f"Instruction {i}.", "", "CORRUPTED" if i == 3 else f"Out {i}.",
                                      status=Status.ACCEPTED)) for i in range(6)]
    project.snapshots.create("v1")
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    monkeypatch.setenv("FAKE_STEPS", "5")
    window.nav.setCurrentRow([spec.key for spec in window.specs].index("train"))
    panel = window.panel("train")
    panel.child_command = lambda config: [sys.executable, str(FAKE_CHILD), str(config)]
    panel.hardest_command = lambda config: [sys.executable, "-c", HARDEST_SCRIPT, str(config)]
    qtbot.waitUntil(lambda: panel.snapshot.count() == 1, timeout=5_000)
    panel.base_model.setCurrentText(str(base))
    panel.start_run()
    qtbot.waitUntil(lambda: panel.hardest_button.isEnabled(), timeout=20_000)
    panel.hardest_button.click()
    curate = window.panel("curate")
    qtbot.waitUntil(lambda: window.stack.currentWidget() is curate, timeout=10_000)
    assert curate.current_query().hardest_run == project.training.list()[0].id
    qtbot.waitUntil(lambda: curate.model.rowCount() == 6, timeout=5_000)
    assert curate.model.sample_id(0) == ids[3]  # the corrupted sample, worst first
    assert curate.hardest_button.isVisible()
    curate.hardest_button.click()
    assert curate.current_query().hardest_run is None
    window.close()


def test_selected_runs_are_overlaid_and_history_survives_reopening(qtbot, context, base_model, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_STEPS", "8")
    panel = make_panel(qtbot, context, base_model)
    for n in (1, 2):
        panel.start_run()
        qtbot.waitUntil(lambda: panel.run is not None and panel.run.id == n and panel.live.status == "done"
                        and not panel.is_running(), timeout=20_000)
    panel.shutdown()
    reopened = make_panel(qtbot, context, base_model)  # as after an app restart: curves from events.jsonl
    qtbot.waitUntil(lambda: reopened.history.rowCount() == 2 and reopened.live is not None, timeout=10_000)
    assert reopened.run.id == 2 and reopened.plots.curve_data("loss")[0].tolist() == list(range(1, 9))
    reopened.history.selectAll()
    qtbot.waitUntil(lambda: reopened.plots.overlay_labels() == ["#1 run-1 (smoothed)"], timeout=10_000)
    assert "step 8" in reopened.log_view.toPlainText()
    assert reopened.device_note.text() in ("", "No NVIDIA GPU found: training will run on the CPU, roughly 100× "
                                               "slower than on a GPU (a 135M-parameter model trains at about 300 "
                                               "tokens/s on two cores). Fine for a tiny test run; the pre-flight "
                                               "check estimates this run's time.")
    reopened.shutdown()


def test_preflight_button_runs_the_check_as_a_child_and_shows_it(qtbot, context, base_model) -> None:
    panel = make_panel(qtbot, context, base_model)
    report = {"sample": {"sample_id": 1, "eos_ok": False, "tokens": [{"id": 1, "text": "x", "masked": False}]},
              "checks": [{"level": "error", "code": "eos", "message": "2 targets lose their EOS to max_length"}],
              "lengths": {"edges": [0, 10], "counts": [6], "max_length": 8, "cut": 2}, "estimates": None}
    script = f"import json, sys; print('loading'); print(json.dumps({report!r}))"
    seen: list[Path] = []
    panel.preflight_command = lambda config: seen.append(config) or [sys.executable, "-c", script]
    panel.form.editors["max_length"].setValue(16)
    panel.preflight_button.click()
    qtbot.waitUntil(lambda: panel.preflight.report is not None, timeout=10_000)
    assert panel.tabs.currentWidget() is panel.preflight
    assert "does NOT end in EOS" in panel.preflight.summary.text()
    assert "2 targets lose their EOS" in panel.messages.message()
    config = json.loads(seen[0].read_text()) if seen[0].exists() else None
    assert config is None or config["settings"]["max_length"] == 16  # removed once the check is done
    panel.form.editors["warmup_ratio"].setValue(0.5)
    panel.form.editors["num_train_epochs"].setValue(0)
    panel.form.editors["max_steps"].setValue(-1)
    panel.start_run()
    assert "Training settings:" in panel.messages.message() and "num_train_epochs" in panel.messages.message()
    panel.shutdown()


# -- the real children: the pre-flight check and the training job on the tiny model -----------------
def test_real_preflight_and_training_run_on_the_tiny_model(qtbot, context, tiny_base, monkeypatch, project) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for i in range(6, 12):
        project.samples.add(Sample(f"Name the number {i}.", "", f"It is {i}.", status=Status.ACCEPTED))
    project.snapshots.create("v2")
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.set_context(context)
    qtbot.waitUntil(lambda: panel.snapshot.count() == 2, timeout=5_000)
    panel.snapshot.setCurrentIndex(panel.snapshot.findData(project.snapshots.get("v2").id))
    panel.base_model.setCurrentText(str(tiny_base))
    panel.form.set_settings(TrainSettings().with_overrides({
        "max_steps": 4, "torch_threads": 1, "eval_steps": 2, "save_steps": 2, "sample_prompts": 1,
        "sample_max_new_tokens": 4, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "validation_fraction": 0.2, "max_length": 64, "use_cpu": True}))
    panel.preflight_button.click()
    qtbot.waitUntil(lambda: panel.preflight.report is not None, timeout=120_000)
    report = panel.preflight.report
    assert report["sample"]["eos_ok"] and any(t["masked"] for t in report["sample"]["tokens"])
    assert "learned (bold)" in panel.preflight.summary.text()
    panel.start_run()
    qtbot.waitUntil(lambda: panel.live is not None and panel.live.final is not None, timeout=240_000)
    assert panel.live.status == "done", panel.messages.message()
    assert panel.plots.curve_data("loss")[0].tolist() == [1, 2, 3, 4]
    assert panel.plots.curve_data("eval_loss")[0].size >= 1 and panel.samples_view.toPlainText().strip()
    qtbot.waitUntil(lambda: panel.hardest_button.isEnabled(), timeout=10_000)
    panel.shutdown()
