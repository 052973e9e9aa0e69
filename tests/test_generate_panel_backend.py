"""The Generate panel with generation backends: the combo, option widgets from plain data, the
estimate at batch prices, the status box, Stop/close with a batch in flight, and pick-up on open.

A fake batch backend is contributed the way a plugin does (an entry with ``source="test-plugin"``
whose module is written to a temporary folder), so the tests also see when its code is imported.
"""
from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox

pytest.importorskip("pytestqt")
sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher  # noqa: E402
from generate_support import five_seed_context  # noqa: E402

from studio.core.generation.config import RunConfig  # noqa: E402
from studio.core.generation.engine import run_estimate  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.registry import GENERATION_BACKENDS  # noqa: E402
from studio.core.seeds import Instance, SeedTask  # noqa: E402
from studio.ui.generate_panel import GeneratePanel  # noqa: E402
from studio.ui.project_context import ProjectContext  # noqa: E402

FAKE_MODULE = "h4_fake_batch_backend"
OPTIONS = [
    {"key": "retry_failed", "title": "Retry failed lines", "help": "How lines the batch failed are sent again.",
     "type": "choice", "default": "batch", "choices": [["batch", "As a follow-up batch"], ["live", "Live"]]},
    {"key": "batch_size", "title": "Batch size", "help": "Requests per batch.", "type": "int", "default": 5000,
     "min": 1, "max": 50000},
    {"key": "poll_s", "title": "Poll every (s)", "help": "Seconds between status checks.", "type": "float",
     "default": 30.0, "min": 0.01, "max": 3600.0},
    {"key": "notify", "title": "Say when done", "help": "A notice when the batch completes.", "type": "bool",
     "default": False},
]

# The plugin's code: importing it is recorded (the panel must do it only on a job, and only once chosen).
FAKE_SOURCE = textwrap.dedent('''
    """A batch backend as a plugin contributes it: holds every request until RELEASE is set."""
    import asyncio
    import threading
    from dataclasses import dataclass, replace

    from studio.core.generation.backend_jobs import BackendJobs
    from studio.core.generation.backends import REQUEST_KEY_HEADER
    from studio.core.generation.events import BackendStatus

    IMPORTED_ON_GUI_THREAD = threading.current_thread() is threading.main_thread()
    RELEASE = threading.Event()
    OPENED = []      # the options each run opened the backend with
    CANCELLED = []   # run ids whose open work was cancelled


    class FakeBatchSender:
        def __init__(self, context):
            self.context = context
            self.answers = 0
            self.held = 0
            self.total = 0

        async def send(self, request, *, prior_attempts, on_retry, timeout_s, params):
            jobs = BackendJobs(self.context.conn)  # one "batch" per request, committed before it is held
            holding = jobs.job_holding(request.key)
            job = holding[0] if holding else jobs.create_job(self.context.run_id, "test-batch",
                                                             f"r{self.context.run_id}-{request.key}", [request.key])
            self.held += 1
            self.total += 1
            self._report()
            while not RELEASE.is_set():
                await asyncio.sleep(0.02)  # a stop cancels this: the request stays held at "Testcloud"
            done = await self.context.live_client().complete(request.prompt, timeout_s=timeout_s,
                                                             headers={REQUEST_KEY_HEADER: request.key}, **params)
            jobs.set_status(job.id, "collected")
            self.held -= 1
            self.answers += 1
            self._report()
            return replace(done, cost=done.cost * FAKE_BACKEND.price_factor)

        def _report(self):
            counts = {"total": self.total, "completed": self.answers, "failed": 0}
            self.context.report(BackendStatus(
                self.context.run_id, f"Fake batch at Testcloud: {self.held} held, {self.answers} answered",
                {"open": self.held > 0, "jobs": [{"status": "in_progress", "counts": counts}]}))

        def open_work(self):
            return self.held > 0

        async def cancel_open_work(self):
            CANCELLED.append(self.context.run_id)
            jobs = BackendJobs(self.context.conn)
            for job in jobs.jobs(self.context.run_id, open_only=True):
                jobs.set_status(job.id, "failed")
            self.held = 0

        async def aclose(self):
            pass


    @dataclass(frozen=True)
    class FakeBatchBackend:
        key: str = "test-batch"
        price_factor: float = 0.5
        max_in_flight: int | None = None

        def open(self, context):
            OPENED.append(dict(context.options))
            return FakeBatchSender(context)


    FAKE_BACKEND = FakeBatchBackend()
''')


@pytest.fixture
def fake_backend(tmp_path: Path) -> Iterator[str]:
    """Register ``test-batch`` (source test-plugin) whose module lives in a temporary folder; undone after."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{FAKE_MODULE}.py").write_text(FAKE_SOURCE)
    sys.path.insert(0, str(site))
    GENERATION_BACKENDS.register("test-batch", f"{FAKE_MODULE}:FAKE_BACKEND", title="Test batch (half price)",
                                 help="Holds the requests at Testcloud until they are released.",
                                 source="test-plugin", provider="Testcloud", options=OPTIONS)
    GENERATION_BACKENDS.register("broken-batch", "h4_no_such_module:BACKEND", title="Broken batch",
                                 source="bad-plugin")
    yield "test-batch"
    GENERATION_BACKENDS.unregister("test-batch")
    GENERATION_BACKENDS.unregister("broken-batch")
    sys.path.remove(str(site))
    sys.modules.pop(FAKE_MODULE, None)


context = pytest.fixture(five_seed_context, name="context")


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def _panel(qtbot, context: ProjectContext | None, settings: QSettings) -> GeneratePanel:
    widget = GeneratePanel(settings=settings)
    qtbot.addWidget(widget)
    widget.set_context(context)
    if context is not None:
        qtbot.waitUntil(lambda: "5 in this project" in widget.seed_count_label.text(), timeout=5_000)
    return widget


def _choose(panel: GeneratePanel, key: str) -> None:
    panel.backend.setCurrentIndex(panel.backend.findData(key))


def test_backends_and_their_options_show_from_plain_data_without_importing_the_plugin(
        qtbot, fake_backend: str, context: ProjectContext, settings: QSettings) -> None:
    panel = _panel(qtbot, context, settings)
    index = panel.backend.findData("test-batch")
    assert panel.backend.itemText(index) == "Test batch (half price)"
    assert "Testcloud" in panel.backend.itemData(index, 3)  # Qt.ToolTipRole: the entry's help
    assert panel.backend.currentData() == "live" and panel.backend_options.keys() == []  # live has no options
    _choose(panel, "test-batch")
    form = panel.backend_options
    assert form.keys() == ["retry_failed", "batch_size", "poll_s", "notify"]
    retry, size, poll, notify = (form.widget(k) for k in form.keys())
    assert isinstance(retry, QComboBox) and [retry.itemData(i) for i in range(retry.count())] == ["batch", "live"]
    assert isinstance(size, QSpinBox) and (size.minimum(), size.maximum(), size.value()) == (1, 50000, 5000)
    assert isinstance(poll, QDoubleSpinBox) and poll.value() == 30.0 and poll.minimum() == pytest.approx(0.01)
    assert isinstance(notify, QCheckBox) and not notify.isChecked()
    assert [w.toolTip() for w in (retry, size, poll, notify)] == [o["help"] for o in OPTIONS]
    size.setValue(200)
    retry.setCurrentIndex(1)
    config = panel.run_config()
    assert config.backend == "test-batch"
    assert config.backend_options == {"retry_failed": "live", "batch_size": 200, "poll_s": 30.0, "notify": False}
    # the price factor is read on a job, so the plugin's module is imported off the GUI thread
    qtbot.waitUntil(lambda: "at batch prices" in panel.estimate_label.text(), timeout=5_000)
    assert sys.modules[FAKE_MODULE].IMPORTED_ON_GUI_THREAD is False


def test_without_choosing_it_the_plugin_is_never_imported(qtbot, fake_backend: str, context: ProjectContext,
                                                           settings: QSettings) -> None:
    panel = _panel(qtbot, context, settings)
    assert panel.backend.findData("test-batch") >= 0
    panel.target.setValue(300)
    qtbot.wait(100)
    assert FAKE_MODULE not in sys.modules
    assert "at batch prices" not in panel.estimate_label.text()


def test_the_estimate_is_at_batch_prices_with_the_saving(qtbot, fake_backend: str, context: ProjectContext,
                                                         project: Project, settings: QSettings) -> None:
    panel = _panel(qtbot, context, settings)
    panel.model.setCurrentText("gpt-4o-mini")
    panel.target.setValue(2000)
    live_text = panel.estimate_label.text()
    live = run_estimate(_live(panel.run_config()), project.generation.seed_examples())
    assert live_text == live.describe()
    _choose(panel, "test-batch")
    qtbot.waitUntil(lambda: "at batch prices" in panel.estimate_label.text(), timeout=5_000)
    text = panel.estimate_label.text()
    half = live.usd * 0.5
    assert f"${half:.2f}" in text and f"${live.usd - half:.2f} less than live calls" in text
    assert f"{live.requests} requests" in text
    assert text.endswith(f"≈ ${half:.2f} at batch prices (${live.usd - half:.2f} less than live calls), "
                         f"assuming {live.assumed_keep_rate:.0%} of tasks are kept")
    panel.target.setValue(4000)  # the factor is remembered: no second load, the estimate follows at once
    assert "at batch prices" in panel.estimate_label.text() and panel.estimate_label.text() != text
    _choose(panel, "live")
    assert "at batch prices" not in panel.estimate_label.text()


def _live(config: RunConfig) -> RunConfig:
    config.backend, config.backend_options = "live", {}
    return config


def test_a_backend_that_cannot_load_is_named_and_the_rest_works(qtbot, fake_backend: str, context: ProjectContext,
                                                               settings: QSettings) -> None:
    panel = _panel(qtbot, context, settings)
    _choose(panel, "broken-batch")
    qtbot.waitUntil(panel.messages.is_shown, timeout=5_000)
    assert "bad-plugin" in panel.messages.message()
    assert "could not be loaded" in panel.estimate_label.text()
    _choose(panel, "live")
    assert "requests" in panel.estimate_label.text()


def test_the_backend_and_its_options_are_remembered_per_project(qtbot, fake_backend: str, context: ProjectContext,
                                                                settings: QSettings, tmp_path: Path) -> None:
    first = _panel(qtbot, context, settings)
    _choose(first, "test-batch")
    first.backend_options.widget("batch_size").setValue(250)
    first.backend_options.widget("notify").setChecked(True)
    first.shutdown()
    again = _panel(qtbot, context, settings)
    assert again.backend.currentData() == "test-batch"
    assert again.backend_options.values()["batch_size"] == 250 and again.backend_options.values()["notify"] is True
    with Project.create(tmp_path / "other") as other:
        other.seeds.add_many([SeedTask(f"Another seed task number {i} here.", [Instance("", "x")]) for i in range(5)])
        other_context = ProjectContext(other)
        try:
            again.set_context(other_context)
            assert again.backend.currentData() == "live"  # another project: its own choice (none yet)
        finally:
            again.set_context(None)
            other_context.close()


def test_a_past_runs_stored_backend_status_shows_in_the_box(qtbot, fake_backend: str, context: ProjectContext,
                                                           project: Project, settings: QSettings) -> None:
    config = RunConfig(backend="test-batch")
    run_id = project.generation.create_run(name="r", mode="alpaca", teacher_model="m", base_url="http://x/v1",
                                           config=config.to_dict(), prompt_template="")
    state = {"open": True, "jobs": [{"status": "in_progress", "counts": {"total": 5000, "completed": 3200,
                                                                         "failed": 12}}]}
    project.generation.set_backend_status(run_id, "Batch 1 of 2 at Testcloud: in_progress", state)
    project.generation.set_status(run_id, "stopped")
    panel = _panel(qtbot, context, settings)
    qtbot.waitUntil(lambda: not panel.backend_box.isHidden(), timeout=5_000)
    assert panel.backend_box.text.text() == "Batch 1 of 2 at Testcloud: in_progress"
    assert panel.backend_box.title() == "Test batch (half price)"
    assert (panel.backend_box.bar.value(), panel.backend_box.bar.maximum()) == (3212, 5000)
    assert not panel.backend_box.bar.isHidden()


def test_a_live_run_has_no_backend_box(qtbot, context: ProjectContext, project: Project, settings: QSettings) -> None:
    run_id = project.generation.create_run(name="r", mode="alpaca", teacher_model="m", base_url="http://x/v1",
                                           config=RunConfig().to_dict(), prompt_template="")
    project.generation.set_status(run_id, "stopped")
    panel = _panel(qtbot, context, settings)
    qtbot.waitUntil(lambda: not panel.resume_button.isHidden(), timeout=5_000)
    qtbot.wait(50)
    assert panel.backend_box.isHidden()


def test_stop_asks_only_with_a_batch_in_flight(qtbot, context: ProjectContext, settings: QSettings) -> None:
    """The panel's side of Stop: the question, and what each answer asks of the worker."""
    panel = _panel(qtbot, context, settings)
    calls: list[dict] = []
    asked: list[str] = []

    class Worker:  # stands in for the GenerationWorker's control surface
        def stop(self, **flags: bool) -> None:
            calls.append(flags)

    panel._worker = Worker()  # type: ignore[assignment]
    try:
        panel._on_stop_clicked()
        assert calls == [{}] and not asked  # nothing at a provider: a plain stop, no question
        panel._backend_open = True
        panel._run_backend = "live"
        for answer, expected in (("keep", {"detach": True}), ("cancel", {"cancel_work": True}), (None, None)):
            panel.ask_how_to_stop = lambda provider, answer=answer: (asked.append(provider), answer)[1]
            calls.clear()
            panel._on_stop_clicked()
            assert calls == ([expected] if expected else [])
    finally:
        panel._worker = None


def test_options_that_cannot_be_shown_say_so(qtbot) -> None:
    from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

    from studio.ui.backend_options import BackendOptionsForm

    host = QWidget()
    qtbot.addWidget(host)
    layout = QFormLayout(host)
    layout.addRow("Before", QLabel("fixed"))
    form = BackendOptionsForm(layout, 1)
    form.set_options([{"key": "odd", "title": "Odd", "type": "colour"}, OPTIONS[1]], {"batch_size": 7})
    assert form.keys() == ["batch_size"] and form.values() == {"batch_size": 7}
    assert any("cannot show option 'odd'" in label.text() for label in host.findChildren(QLabel))
    assert layout.rowCount() == 3
    form.set_options(OPTIONS)  # another backend: its rows replace these, the panel's own stay
    assert layout.rowCount() == 1 + len(OPTIONS) and form.values()["batch_size"] == 5000


def test_worker_stop_flags_stick(qtbot, project: Project) -> None:
    """A later plain stop (the runner's shutdown cancelling the job) keeps an earlier detach."""
    from studio.ui.generate_worker import GenerationWorker
    from studio.ui.jobs import JobRunner

    seen: list[dict] = []

    class Engine:
        def stop(self, detach: bool = False, cancel_work: bool = False) -> None:
            seen.append((detach, cancel_work))

    worker = GenerationWorker(project, jobs=JobRunner(), run_id=1)
    worker._engine = Engine()  # type: ignore[assignment]
    worker.stop(detach=True)
    worker.stop()
    worker.stop(cancel_work=True)
    assert seen == [(True, False), (True, False), (True, True)]


# -- runs through the fake batch backend (the engine's backend hook) -----------------------------------
@pytest.fixture
def teacher() -> Iterator[FakeTeacher]:
    with FakeTeacher(latency_s=0.01, max_lifetime_s=120) as fake:
        yield fake


def _point_at(panel: GeneratePanel, teacher: FakeTeacher) -> None:
    panel.base_url.setText(teacher.base_url)
    panel.model.setCurrentText("fake-teacher")
    panel.api_key.setText(teacher.api_key)


def _start_batch_run(qtbot, panel: GeneratePanel, teacher: FakeTeacher, target: int = 10) -> None:
    _point_at(panel, teacher)
    _choose(panel, "test-batch")
    panel.target.setValue(target)
    panel.concurrency.setValue(2)
    qtbot.waitUntil(lambda: "at batch prices" in panel.estimate_label.text(), timeout=5_000)
    panel.start_button.click()
    qtbot.waitUntil(lambda: not panel.backend_box.isHidden() and "held" in panel.backend_box.text.text(),
                    timeout=15_000)


def _fake() -> object:
    return sys.modules[FAKE_MODULE]


def test_a_batch_run_shows_its_status_and_completes(qtbot, fake_backend: str, context: ProjectContext,
                                                    project: Project, settings: QSettings,
                                                    teacher: FakeTeacher) -> None:
    panel = _panel(qtbot, context, settings)
    _point_at(panel, teacher)
    _choose(panel, "test-batch")
    panel.target.setValue(10)
    panel.concurrency.setValue(2)
    panel.backend_options.widget("batch_size").setValue(123)  # reaches the backend as its option
    qtbot.waitUntil(lambda: "at batch prices" in panel.estimate_label.text(), timeout=5_000)
    before = panel.estimate_label.text()
    _start_batch_run(qtbot, panel, teacher)
    assert panel.backend_box.title() == "Test batch (half price)"
    assert panel.estimate_label.text() == before  # the run announced the estimate the panel showed
    assert _fake().OPENED[-1]["batch_size"] == 123 and _fake().OPENED[-1]["retry_failed"] == "batch"
    assert not panel.backend_box.bar.isHidden() and panel.backend_box.bar.value() == 0
    _fake().RELEASE.set()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=30_000)
    assert "target reached" in panel.eta.text() and project.samples.count() == 10
    assert "0 held" in panel.backend_box.text.text()
    assert panel.backend_box.bar.value() == panel.backend_box.bar.maximum() > 0
    run = project.generation.run(project.generation.latest_run_id())
    assert run["status"] == "done" and project.generation.backend_status(run["id"])["text"].startswith("Fake batch")


def test_stop_keeps_the_batch_and_reopening_the_project_picks_it_up(qtbot, fake_backend: str,
                                                                    context: ProjectContext, project: Project,
                                                                    settings: QSettings, teacher: FakeTeacher,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    panel = _panel(qtbot, context, settings)
    _start_batch_run(qtbot, panel, teacher)
    asked: list[str] = []
    panel.ask_how_to_stop = lambda provider: (asked.append(provider), "keep")[1]
    with qtbot.waitActive(panel):
        panel.show()
        panel.activateWindow()
    qtbot.keyClick(panel, Qt.Key.Key_Escape)  # the Stop shortcut
    assert asked == ["Testcloud"]
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=20_000)
    run_id = project.generation.latest_run_id()
    assert project.generation.run(run_id)["status"] == "detached"
    qtbot.waitUntil(lambda: "stays at Testcloud" in panel.eta.text(), timeout=5_000)
    qtbot.waitUntil(lambda: not panel.resume_button.isHidden(), timeout=5_000)
    assert panel.resume_button.text().startswith(f"Collect run #{run_id}'s batch at Testcloud")
    assert project.generation.runs_to_pick_up() == [run_id]
    panel.set_context(None)  # the project closes ...

    _fake().RELEASE.set()  # ... the provider finishes the batch meanwhile ...
    monkeypatch.setenv("OPENAI_API_KEY", teacher.api_key)  # the key from the environment this time
    reopened = _panel(qtbot, context, settings)  # ... and opening it again collects it, unasked
    qtbot.waitUntil(lambda: reopened.is_running() or project.samples.count() == 10, timeout=10_000)
    assert f"Picking up run {run_id}'s batch at Testcloud" in reopened.messages.message()
    qtbot.waitUntil(lambda: not reopened.is_running(), timeout=30_000)
    assert project.generation.run(run_id)["status"] == "done", reopened.messages.message()
    assert project.samples.count() == 10
    assert project.generation.latest_run_id() == run_id  # the same run, no new one


def test_stop_can_cancel_the_batch(qtbot, fake_backend: str, context: ProjectContext, project: Project,
                                   settings: QSettings, teacher: FakeTeacher) -> None:
    panel = _panel(qtbot, context, settings)
    _start_batch_run(qtbot, panel, teacher)
    panel.ask_how_to_stop = lambda provider: "cancel"
    panel.stop_button.click()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=20_000)
    run_id = project.generation.latest_run_id()
    assert _fake().CANCELLED == [run_id]
    assert project.generation.run(run_id)["status"] == "stopped" and project.generation.runs_to_pick_up() == []


def test_closing_the_window_leaves_the_batch_at_the_provider(qtbot, fake_backend: str, tmp_path: Path,
                                                            teacher: FakeTeacher) -> None:
    from studio.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p", create_if_missing=True)
    panel = window.show_panel("generate")
    qtbot.waitUntil(lambda: "in this project" in panel.seed_count_label.text(), timeout=5_000)
    _start_batch_run(qtbot, panel, teacher)
    asked: list[str] = []
    panel.ask_how_to_stop = lambda provider: asked.append(provider)  # closing must not ask
    window.close()
    assert not asked

    def status() -> str:  # the engine winds down on its own thread after the window is gone
        with Project.open(tmp_path / "p", exclusive=False) as project:
            return project.generation.run(project.generation.latest_run_id())["status"]

    qtbot.waitUntil(lambda: status() == "detached", timeout=20_000)
    with Project.open(tmp_path / "p") as project:
        assert project.generation.runs_to_pick_up() == [project.generation.latest_run_id()]


# -- the real openai-batch plugin against the loopback Batch API ------------------------------------------
def test_the_openai_batch_plugin_runs_detaches_and_is_picked_up_from_the_panel(
        qtbot, context: ProjectContext, project: Project, settings: QSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_batch_api import FakeBatchAPI

    from studio.core.plugins.discovery import load_plugins

    load_plugins()
    assert GENERATION_BACKENDS.get("openai-batch").source == "openai-batch"
    with FakeBatchAPI(models=("gpt-4o-mini",)) as api:
        panel = _panel(qtbot, context, settings)
        panel.base_url.setText(api.base_url)
        panel.model.setCurrentText("gpt-4o-mini")
        panel.api_key.setText(api.api_key)
        _choose(panel, "openai-batch")
        form = panel.backend_options  # the manifest's options, drawn before the plugin is imported
        assert form.keys() == ["retry_failed", "batch_size", "poll_s", "collect_s"]
        form.widget("poll_s").setValue(0.02)
        form.widget("collect_s").setValue(0.05)
        panel.target.setValue(30)
        qtbot.waitUntil(lambda: "at batch prices" in panel.estimate_label.text(), timeout=10_000)
        assert "less than live calls" in panel.estimate_label.text()
        api.hold.set()  # the batch stays in validating until released
        panel.start_button.click()
        qtbot.waitUntil(lambda: panel.backend_box.text.text().startswith("Batch 1 of 1 at OpenAI"), timeout=20_000)
        assert panel.backend_box.title() == GENERATION_BACKENDS.get("openai-batch").label
        assert not panel.backend_box.bar.isHidden()
        asked: list[str] = []
        panel.ask_how_to_stop = lambda provider: (asked.append(provider), "keep")[1]
        panel.stop_button.click()
        assert asked == ["OpenAI"]  # the manifest's "provider"
        qtbot.waitUntil(lambda: not panel.is_running(), timeout=20_000)
        run_id = project.generation.latest_run_id()
        assert project.generation.run(run_id)["status"] == "detached" and api.cancels == 0
        panel.set_context(None)

        api.hold.clear()
        monkeypatch.setenv("OPENAI_API_KEY", api.api_key)
        reopened = _panel(qtbot, context, settings)
        qtbot.waitUntil(lambda: "Picking up run" in reopened.messages.message(), timeout=10_000)
        assert reopened.messages.message() == f"Picking up run {run_id}'s batch at OpenAI."
        qtbot.waitUntil(lambda: not reopened.is_running(), timeout=60_000)
        # said while it ran, and once done it says it was picked up and how it ended
        assert reopened.messages.message() == f"Picked up run {run_id}'s batch at OpenAI: target reached."
        assert project.generation.run(run_id)["status"] == "done" and project.samples.count() == 30
        assert api.uploads == api.batches_created and all(n == 1 for n in api.batch_runs_by_key.values())
        shown = reopened.backend_box.text.text()
        assert shown.startswith("Batch 1 of 1 at OpenAI") and "0 failed" in shown and "saving $" in shown
        bar = reopened.backend_box.bar
        assert bar.value() == bar.maximum() > 1


@pytest.mark.parametrize("size", [(1280, 800), (720, 480)])
def test_no_label_is_clipped_with_the_batch_backends_options(qtbot, tmp_path: Path, size: tuple[int, int]) -> None:
    from PySide6.QtWidgets import QLabel

    from tests.window_support import open_batch_panel

    window, panel = open_batch_panel(qtbot, tmp_path, size)
    settings = panel.settings_scroll.widget()
    assert settings.width() <= panel.settings_scroll.viewport().width()  # never scrolls sideways
    assert panel.backend_options.keys()
    for label in settings.findChildren(QLabel):
        if label.isVisible() and label.text() and not label.wordWrap():
            assert label.width() >= label.sizeHint().width(), (size, label.text(), label.width())
    window.close()


@pytest.mark.parametrize("state", [
    {"total": "many", "completed": 3},
    {"total": 10, "completed": "some"},
    {"counts": {"total": 10, "completed": [1], "failed": 0}},
    {"jobs": [{"counts": {"total": {"n": 4}}}]},
    {"total": 10**12, "completed": 1},
    {"total": 10, "completed": -5},
])
def test_a_plugins_counts_that_are_no_numbers_show_no_bar_and_never_raise(qtbot, state: dict) -> None:
    from studio.ui.backend_status import BackendStatusBox, batch_counts

    assert batch_counts(state) is None
    box = BackendStatusBox()
    qtbot.addWidget(box)
    box.show_status("Batch at Somecloud: in_progress", state)  # a GUI slot: must not raise
    assert box.text.text() == "Batch at Somecloud: in_progress" and box.bar.isHidden()
    box.show_status("Batch at Somecloud: in_progress", {"total": "10", "completed": 4, "failed": 1})
    assert not box.bar.isHidden() and (box.bar.value(), box.bar.maximum()) == (5, 10)
