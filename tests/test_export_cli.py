"""``distill-studio export``'s body (studio.core.exporting.cmd_export) on a real project run, and the
torch-free core: the child's command, its events, the refusals made before any process starts."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from studio.core import exporting
from studio.core.project import Project
from tests.export_support import project_run


def args(project: Project, run: str, path: Path, fmt: str, quant: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    exporting.add_export_arguments(parser)
    argv = [run, str(path), "--format", fmt] + (["--quant", quant] if quant else [])
    namespace = parser.parse_args(argv)
    namespace.project = project.root
    return namespace


def test_cmd_export_prints_progress_and_the_path(project: Project, tiny_base: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = project_run(project, tiny_base)
    out = tmp_path / "out" / "cli-gguf"
    assert exporting.cmd_export(args(project, "cli-student", out, "gguf", "q8_0")) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "Writing tensors" in captured.err and "Exported run #1 cli-student as gguf q8_0" in captured.err
    assert (out / "cli-student-q8_0.gguf").is_file() and (out / "Modelfile").is_file()
    card = (out / "README.md").read_text(encoding="utf-8")
    snapshot = project.snapshots.get("v1")
    assert snapshot.content_hash in card           # the real snapshot's hash, from the run's config
    assert run.id == 1


def test_cmd_export_refuses_a_run_without_adapter_and_a_missing_kquant(project: Project, tmp_path: Path,
                                                                        monkeypatch) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    project_run(project, base, adapter=False)
    with pytest.raises(exporting.ExportError, match="has no adapter yet"):
        exporting.cmd_export(args(project, "1", tmp_path / "x", "merged"))
    monkeypatch.setattr(exporting, "kquants_available", lambda: False)
    (project.training.get(1).adapter_dir).mkdir(parents=True)
    (project.training.get(1).adapter_dir / "adapter_config.json").write_text("{}")
    with pytest.raises(exporting.ExportError, match=r"llama-cpp-python.*gguf-kquants"):
        exporting.cmd_export(args(project, "1", tmp_path / "x", "gguf", "q4_k_m"))
    assert not (tmp_path / "x").exists()


def test_a_failing_child_is_one_error_with_its_message_and_hint(project: Project, tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"architectures": ["Qwen2MoeForCausalLM"]}))
    run = project_run(project, base, adapter=False)
    run.adapter_dir.mkdir(parents=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    argv = exporting.export_command(run, tmp_path / "g", "gguf", "f16")
    with pytest.raises(exporting.ExportError, match="this one is Qwen2MoeForCausalLM"):
        exporting.run_export(argv, env=exporting.export_env(run))


def test_the_command_and_the_events(project: Project, tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    run = project_run(project, base, adapter=False)
    argv = exporting.export_command(run, tmp_path / "o", "gguf", None, base_model="/models/b")
    assert argv[:3] == [sys.executable, "-m", "studio.export"]
    assert argv[argv.index("--quant") + 1] == exporting.DEFAULT_QUANT
    assert argv[argv.index("--run-dir") + 1] == str(run.run_dir) and "--base-model" in argv
    assert "--quant" not in exporting.export_command(run, tmp_path / "o", "merged")
    with pytest.raises(exporting.ExportError, match="gguf format only"):
        exporting.export_command(run, tmp_path / "o", "adapter", "q8_0")
    with pytest.raises(exporting.ExportError, match="formats: adapter, merged, gguf"):
        exporting.export_command(run, tmp_path / "o", "onnx")
    assert exporting.default_export_dir(project.root, run, "gguf") == project.root / "exports" / "cli-student-gguf"

    progress = exporting.parse_event('{"event": "progress", "stage": "tensors", "done": 3, "total": 12}')
    assert progress.fraction == 0.25 and progress.describe() == "Writing tensors (3/12)"
    done = exporting.parse_event('{"event": "done", "path": "/x", "files": ["a", "b"], "bytes": 2048}')
    assert done.describe() == "Exported to /x (2 files, 2.0 KB)"
    error = exporting.parse_event('{"event": "error", "message": "no", "hint": "try"}')
    assert error.describe() == "no — try"
    assert exporting.parse_event("Loading weights: 100%") is None
    assert exporting.parse_event('{"event": "other"}') is None and exporting.parse_event("{bad") is None


def test_the_bar_follows_the_stages_of_the_whole_export() -> None:
    plan = exporting.stage_plan("gguf", "q8_0")
    assert plan == ("load", "tensors") and exporting.stage_plan("gguf", "q4_k_m")[-1] == "quantize"
    event = exporting.ExportEvent
    assert exporting.overall_fraction(plan, event("progress", "load", 3, 3)) == 0.5
    assert exporting.overall_fraction(plan, event("progress", "tensors", 5, 10)) == 0.75
    assert exporting.overall_fraction(plan, event("progress", "other", 1, 2), 0.6) == 0.6
    assert exporting.overall_fraction(plan, event("progress", "load", 0, 3), 0.6) == 0.6   # never backwards
    assert exporting.overall_fraction(plan, event("done")) == 1.0


def test_the_exporters_load_as_registry_entries() -> None:
    from studio.core.registry import Registry

    registry = Registry("model exporter", "test")
    for key in exporting.EXPORT_FORMATS:   # the lines given to the lead for studio/core/builtins.py
        registry.register(key, f"studio.core.exporting:{key.upper()}_EXPORTER")
        loaded = registry.load_instance(key, exporting.ModelExporter)
        assert loaded.key == key and loaded is exporting.model_exporter(key)
    assert exporting.GGUF_EXPORTER.quants == exporting.QUANTS


# -- Ctrl+C: the child is stopped and waited for, and the real outcome is told (QA of issue 10) -------------
FAKE_CHILD = '''
import json, signal, sys, time
mode = sys.argv[1]
def on_term(*_):
    if mode == "stubborn":
        return
    if mode == "finish":  # it had renamed already: the export is complete
        print(json.dumps({"event": "done", "path": sys.argv[2], "files": ["a.gguf"], "bytes": 3}), flush=True)
        sys.exit(0)
    print(json.dumps({"event": "error", "message": "export cancelled; nothing was written", "hint": ""}), flush=True)
    sys.exit(1)
signal.signal(signal.SIGTERM, on_term)
print(json.dumps({"event": "progress", "stage": "load", "done": 0, "total": 3}), flush=True)
for _ in range(600):
    time.sleep(0.1)
'''


def fake_child(mode: str, out: Path) -> list[str]:
    return [sys.executable, "-c", FAKE_CHILD, mode, str(out)]


def ctrl_c(event: exporting.ExportEvent) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("mode", ["cancel", "stubborn"])
def test_ctrl_c_stops_the_child_waits_for_it_and_says_nothing_was_written(tmp_path: Path, mode: str) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(exporting.ExportCancelled, match="cancelled; nothing was written"):
        exporting.run_export(fake_child(mode, tmp_path / "x"), on_event=ctrl_c, stop_wait_s=1.0)
    assert time.monotonic() - started < 30  # a child that ignores SIGTERM is killed, not waited for forever


def test_ctrl_c_after_the_child_finished_the_export_reports_it_complete(tmp_path: Path) -> None:
    done = exporting.run_export(fake_child("finish", tmp_path / "x"), on_event=ctrl_c)
    assert done.kind == "done" and done.path == str(tmp_path / "x")


@pytest.mark.parametrize(("mode", "code", "words"), [("cancel", 130, "Export cancelled; nothing was written to"),
                                                     ("finish", 0, "Exported run #1 cli-student as gguf q8_0")])
def test_cmd_export_exits_130_when_cancelled_and_0_when_the_export_completed(
        project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, mode: str, code: int,
        words: str, default_sigint) -> None:
    import signal
    import threading

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    project_run(project, base, adapter=False)
    out = tmp_path / "x"
    monkeypatch.setattr(exporting, "check_run", lambda *a: None)
    monkeypatch.setattr(exporting, "export_command", lambda *a, **k: fake_child(mode, out))
    monkeypatch.setattr(exporting, "export_env", lambda run: None)
    seen = threading.Event()
    real_parse = exporting.parse_event

    def parse(line: str):
        event = real_parse(line)
        if event is not None and event.kind == "progress" and not seen.is_set():
            seen.set()
            # A real Ctrl+C, to this process only (the child is told by us). To the main thread: a
            # process-directed signal may land on one of the suite's other threads, and the main
            # thread, blocked reading the child's output, would then never raise KeyboardInterrupt.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return event

    monkeypatch.setattr(exporting, "parse_event", parse)
    assert exporting.cmd_export(args(project, "1", out, "gguf", "q8_0")) == code
    assert seen.is_set() and words in capsys.readouterr().err
