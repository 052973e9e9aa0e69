"""The server control with the real server (``python -m studio.serve``) on the tiny fixture model.

Start → ready → memory and adapters from /health → the openai client talks to base and student →
a run trained after the start is loaded into the running server → Stop removes the info file.
A broken adapter shows the server's own one-line error.
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("studio.serve", reason="the model server (issue 10, part 1) is not in this tree")

from studio.core.project import Project  # noqa: E402
from studio.core.samples import Sample, Status  # noqa: E402
from studio.core.serving.server_info import info_path  # noqa: E402
from studio.core.training.runs import TrainingRun  # noqa: E402
from studio.core.training.settings import preset_settings  # noqa: E402
from studio.ui import server_control as sc  # noqa: E402
from studio.ui.jobs import JobRunner  # noqa: E402
from studio.ui.project_context import ProjectContext  # noqa: E402
from studio.ui.server_control import ServerControl  # noqa: E402

START_MS = 240_000  # torch + transformers + peft imports and the load, on a busy 2-core machine


def student(project: Project, base: Path, name: str, seed: int) -> TrainingRun:
    """A run whose adapter is peft's own, with non-zero lora_B so it answers differently from the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if not project.snapshots.list():
        project.samples.add(Sample("Say hi.", "", "Hi.", status=Status.ACCEPTED))
        project.snapshots.create("v1")
    run = project.training.create(snapshot="v1", base_model=str(base), name=name,
                                  settings=preset_settings("alpaca").with_overrides({"max_steps": 1}))
    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for param_name, weight in model.named_parameters():
            if "lora_B" in param_name:
                weight.normal_(0, 0.5)
    model.save_pretrained(run.adapter_dir)
    return run


@pytest.fixture
def control(qtbot, project: Project):
    context, jobs = ProjectContext(project), JobRunner()
    widget = ServerControl(context, jobs)
    widget.port, widget.device, widget.threads = 0, "cpu", 1
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()
    jobs.shutdown()
    qtbot.waitUntil(lambda: not jobs.is_busy("serve"), timeout=30_000)
    context.close()


def test_the_real_server_starts_serves_loads_a_new_run_and_stops(qtbot, control, project: Project,
                                                                 tiny_base: Path) -> None:
    import openai

    first = student(project, tiny_base, "first", 0)
    control.start()
    qtbot.waitUntil(lambda: control.state in (sc.READY, sc.FAILED), timeout=START_MS)
    assert control.state == sc.READY, control.error_view.toPlainText()
    info = control.info()
    assert info.catalog.ids() == ["tiny-llama", "first"] and info.device == "cpu"
    qtbot.waitUntil(lambda: "RAM" in control.details.text(), timeout=30_000)
    assert control.loaded_adapters() == ["first"]
    client = openai.OpenAI(base_url=info.url, api_key="local")
    answer = client.chat.completions.create(model="first", messages=[{"role": "user", "content": "Say hi."}],
                                            max_tokens=8, temperature=0)
    assert answer.choices[0].finish_reason in ("stop", "length")

    later = student(project, tiny_base, "later", 1)
    announced: list = []
    control.state_changed.connect(announced.append)
    control.ensure_adapter(later.id)
    qtbot.waitUntil(lambda: "later" in control.loaded_adapters(), timeout=60_000)
    qtbot.waitUntil(lambda: bool(announced) and "later" in announced[-1].catalog.ids(), timeout=30_000)
    served = {m.id: m.parent for m in client.models.list().data}
    assert served == {"tiny-llama": None, "first": "tiny-llama", "later": "tiny-llama"}
    client.chat.completions.create(model="later", messages=[{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert first.has_adapter

    control.stop()
    qtbot.waitUntil(lambda: control.state == sc.STOPPED, timeout=30_000)
    assert not info_path(project.root).exists()


def test_a_broken_adapter_fails_with_the_servers_own_message(qtbot, control, project: Project,
                                                              tiny_base: Path) -> None:
    run = student(project, tiny_base, "broken", 0)
    for weights in run.adapter_dir.glob("adapter_model.*"):
        weights.unlink()
    control.start()
    qtbot.waitUntil(lambda: control.state in (sc.READY, sc.FAILED), timeout=START_MS)
    assert control.state == sc.FAILED
    text = control.error_view.toPlainText()
    assert "could not start (exit code 2)" in text and "distill-studio serve:" in text and "Traceback" not in text
