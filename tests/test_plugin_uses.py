"""Where the app uses plugins' entries (QA of issue 12): only the chosen one is imported, a broken one
says so in one line, and every kind of entry a plugin can add is a choice the user can make."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core import registry
from studio.core.plugins.boundary import failures
from tests.plugin_support import PACKAGES, PLUGIN_NAMES, registered_as_plugins

HERE = __name__


@pytest.fixture
def in_process() -> Iterator[callable]:
    """Register entries pointing at this module as a named in-process plugin; all removed after."""
    with registered_as_plugins() as add:
        yield lambda point, key, attr, source, **meta: add(point, key, f"{HERE}:{attr}", source, **meta)


# -- 1. a new project's default seeds load no plugin's format --------------------------------------------------
def test_creating_a_project_with_default_seeds_imports_no_plugin(with_test_plugins: list, tmp_path: Path) -> None:
    from studio.core.project import Project

    assert "tsv" in registry.DATASET_FORMATS and "csv" in registry.DATASET_FORMATS
    with Project.create(tmp_path / "p", with_default_seeds=True) as project:
        assert project.seeds.count() > 0
    assert not [m for m in sys.modules if m.split(".")[0] in PACKAGES]
    assert all(not failures(name) for name in PLUGIN_NAMES)


# -- 2. generate --preset with a broken plugin preset: one error line -------------------------------------------
def test_generate_with_a_broken_plugin_preset_says_one_line(in_process, tmp_path: Path, capsys) -> None:
    from studio.cli import main
    from studio.core.project import Project

    in_process(registry.ENDPOINT_KINDS, "gone", "NO_SUCH_PRESET", "test-preset", title="Gone")
    Project.create(tmp_path / "p").close()
    code = main(["generate", "--project", str(tmp_path / "p"), "--preset", "gone", "--model", "m", "--target", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: endpoint kind 'gone' from test-preset could not be loaded")
    assert "Traceback" not in err[0]


# -- 3. a plugin judge is a choice: eval run --judge-kind ------------------------------------------------------
class FirstMarkerJudge:
    """Asks as the pairwise judge does but reads the FIRST marker of the reply (the fake judges put a decoy
    marker before their verdict, so this judge calls every marker-judged pair a tie)."""

    key, title = "first-marker", "First marker wins"

    @property
    def default_template(self) -> str:
        from studio.core.evaluation.judge import DEFAULT_TEMPLATE

        return DEFAULT_TEMPLATE

    def messages(self, spec, prompt, first: str, second: str) -> list[dict]:
        from studio.core.evaluation.judge import PAIRWISE_JUDGE

        return PAIRWISE_JUDGE.messages(spec, prompt, first, second)

    def verdict(self, spec, raw: str) -> str:
        found = sorted((raw.find(m), v) for m, v in (("[[A]]", "first"), ("[[B]]", "second"), ("[[C]]", "tie"))
                       if m in raw)
        return found[0][1] if found else "unreadable"


class RaisingVerdictJudge(FirstMarkerJudge):
    key = "raising"

    def verdict(self, spec, raw: str) -> str:
        raise ZeroDivisionError("no verdict today")


FIRST_MARKER_JUDGE = FirstMarkerJudge()
RAISING_JUDGE = RaisingVerdictJudge()


@pytest.fixture
def eval_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from studio.core.evaluation.model import EvalPrompt
    from studio.core.project import Project
    from tests.fake_eval_endpoints import API_KEY

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with Project.create(tmp_path / "project") as project:
        project.prompt_sets.create("bench", [EvalPrompt(f"Task {n}: do it well.") for n in range(3)], source="test")
    return tmp_path / "project"


@pytest.fixture
def eval_fake():
    from tests.fake_eval_endpoints import MARKER, FakeEvalServer

    marked = lambda prompt: f"A careful answer {MARKER} to: {prompt[:30]}"  # noqa: E731
    plain = lambda prompt: f"An answer to: {prompt[:30]}"  # noqa: E731
    with FakeEvalServer(answerers={"good": marked, "plain": plain}, judges={"judge": "marker"}) as server:
        yield server


def _eval_run(capsys, root: Path, fake, *extra: str) -> tuple[int, dict | None, str]:
    import json

    from studio.cli import main

    code = main(["eval", "run", "--project", str(root), "--prompts", "bench", "--a", fake.spec("good"),
                 "--b", fake.spec("plain"), "--judge", fake.spec("judge"), "--json", *extra])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_a_plugin_judge_is_chosen_with_judge_kind_and_cached_apart(in_process, eval_root, eval_fake, capsys) -> None:
    from studio.core.project import Project

    in_process(registry.JUDGES, "first-marker", "FIRST_MARKER_JUDGE", "test-judge", title="First marker wins")
    code, pairwise, err = _eval_run(capsys, eval_root, eval_fake)
    assert code == 0, err
    assert (pairwise["wins_a"], pairwise["ties"]) == (3, 0) and eval_fake.requests_by_model["judge"] == 6

    code, plugin, err = _eval_run(capsys, eval_root, eval_fake, "--judge-kind", "first-marker")
    assert code == 0, err
    assert (plugin["wins_a"], plugin["ties"]) == (0, 3)  # the plugin's reading of the same replies
    assert eval_fake.requests_by_model["judge"] == 12  # not the pairwise judge's cached verdicts

    code, again, err = _eval_run(capsys, eval_root, eval_fake, "--judge-kind", "first-marker")
    assert code == 0 and again["ties"] == 3 and eval_fake.requests_by_model["judge"] == 12  # its own cache
    with Project.open(eval_root) as project:
        kinds = [project.evaluations.get(i).judge.kind for i in (1, 2, 3)]
        keys = {project.evaluations.get(i).judge.key() for i in (1, 2, 3)}
    assert kinds == ["pairwise", "first-marker", "first-marker"] and len(keys) == 2


def test_the_pairwise_cache_key_is_unchanged_by_the_kind_field() -> None:
    from studio.core.evaluation.model import JudgeSpec

    import hashlib
    import json

    stored = {"endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "j"}, "template": "t"}  # before kinds
    old = JudgeSpec.from_dict(stored)
    before = {"endpoint": stored["endpoint"], "template": "t", "marker_a": "[[A]]", "marker_b": "[[B]]",
              "marker_tie": "[[C]]", "temperature": 0.0, "max_tokens": 1024}  # the hash as it was computed
    assert old.kind == "pairwise"
    assert old.key() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert JudgeSpec.from_dict({**stored, "kind": "pairwise"}).key() == old.key()
    assert JudgeSpec.from_dict({**stored, "kind": "other"}).key() != old.key()


def test_a_raising_plugin_judge_fails_the_run_with_one_message(in_process, eval_root, eval_fake, capsys) -> None:
    from studio.core.evaluation.model import FAILED
    from studio.core.project import Project

    in_process(registry.JUDGES, "raising", "RAISING_JUDGE", "test-judge", title="Raises")
    code, _, err = _eval_run(capsys, eval_root, eval_fake, "--judge-kind", "raising")
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert "The plugin 'test-judge' failed in its judge 'raising' while reading the judge's verdict" in lines[0]
    with Project.open(eval_root) as project:
        evaluation = project.evaluations.get(1)
    assert evaluation.status == FAILED and "test-judge" in evaluation.error
    assert failures("test-judge")


def test_judge_kind_is_hidden_with_one_judge_and_listed_with_more(in_process, capsys) -> None:
    from studio.cli import main

    with pytest.raises(SystemExit):
        main(["eval", "run", "--help"])
    assert "--judge-kind" not in capsys.readouterr().out
    in_process(registry.JUDGES, "first-marker", "FIRST_MARKER_JUDGE", "test-judge", title="First marker wins")
    with pytest.raises(SystemExit):
        main(["eval", "run", "--help"])
    assert "first-marker (First marker wins)" in " ".join(capsys.readouterr().out.split())


def test_the_new_evaluation_page_offers_judge_kinds_only_when_a_plugin_adds_one(qtbot, in_process) -> None:
    from studio.ui.eval_setup import JudgeBox

    alone = JudgeBox()
    qtbot.addWidget(alone)
    assert alone.kind_row.isHidden() and alone.kind.count() == 1
    in_process(registry.JUDGES, "first-marker", "FIRST_MARKER_JUDGE", "test-judge", title="First marker wins",
               help="Reads the first verdict marker")
    box = JudgeBox()
    qtbot.addWidget(box)
    assert not box.kind_row.isHidden()
    assert [box.kind.itemData(i) for i in range(box.kind.count())] == ["pairwise", "first-marker"]
    assert box.kind.itemData(1, 3) == "Reads the first verdict marker"  # Qt.ToolTipRole
    box.choose_other("http://127.0.0.1:9/v1", "judge")
    assert box.spec().kind == "pairwise"
    box.choose_kind("first-marker")
    box.template.setPlainText("no placeholders: this judge reads its own way")
    spec = box.spec()
    assert (spec.kind, spec.template) == ("first-marker", "no placeholders: this judge reads its own way")
    alone.choose_kind("gone-judge")  # a duplicated evaluation whose judge's plugin is gone
    assert not alone.kind_row.isHidden() and alone.kind.currentText() == "gone-judge (not installed)"


# -- 4. the Train panel's trainer setting is a combo of the registered trainers --------------------------------
def tiny_trainer_command(config_path):  # never called here: the form only lists the entry
    raise AssertionError("the settings form must not load a trainer")


def test_the_trainer_setting_is_a_combo_of_registered_trainers(qtbot, in_process) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QComboBox

    from studio.core.training.settings import TrainSettings
    from studio.ui.train_settings_form import SettingsForm

    alone = SettingsForm()
    qtbot.addWidget(alone)
    combo = alone.editors["trainer"]
    assert isinstance(combo, QComboBox) and combo.count() == 1 and not combo.isEnabled()
    assert alone.settings().trainer == "peft-lora"

    in_process(registry.TRAINERS, "tiny", "tiny_trainer_command", "test-trainer", title="Tiny trainer",
               help="Trains nothing, quickly")
    form = SettingsForm()
    qtbot.addWidget(form)
    combo = form.editors["trainer"]
    assert combo.isEnabled() and [combo.itemData(i) for i in range(combo.count())] == ["peft-lora", "tiny"]
    assert combo.itemText(1) == "Tiny trainer" and combo.itemData(1, Qt.ItemDataRole.ToolTipRole) == \
        "Trains nothing, quickly"
    combo.setCurrentIndex(1)
    assert form.settings().trainer == "tiny"
    form.set_settings(TrainSettings(trainer="tiny"))
    assert combo.currentText() == "Tiny trainer" and form.settings() == TrainSettings(trainer="tiny")

    form.set_settings(TrainSettings(trainer="gone"))  # a run made with a trainer whose plugin is gone
    assert combo.currentText() == "gone (not installed)" and form.settings().trainer == "gone"  # refused at start
    form.set_settings(TrainSettings())
    assert combo.count() == 2 and form.settings().trainer == "peft-lora"


# -- 5. a plugin sample filter that cannot be built is skipped with one warning --------------------------------
def BrokenFilter(settings, index):  # noqa: N802 - a factory standing in for a class
    raise RuntimeError("cannot set up today")


SKIPPED = "The sample filter 'broken_filter' of the plugin 'test-filter' is skipped"


@pytest.fixture
def seeded_root(tmp_path: Path) -> Path:
    from studio.core.project import Project
    from studio.core.seeds import Instance, SeedTask

    with Project.create(tmp_path / "project") as project:
        project.seeds.add_many([SeedTask(f"Give an example of seed topic number {i} for a student.",
                                         [Instance("", f"Example {i}.")]) for i in range(5)])
    return tmp_path / "project"


def test_generate_warns_once_of_a_skipped_plugin_filter(in_process, seeded_root: Path, capsys, monkeypatch) -> None:
    from fake_teacher import FakeTeacher

    from studio.cli import main

    in_process(registry.SAMPLE_FILTERS, "broken_filter", "BrokenFilter", "test-filter", reason="broken")
    with FakeTeacher(max_lifetime_s=60) as teacher:
        monkeypatch.setenv("TEACHER_KEY", teacher.api_key)
        code = main(["generate", "--project", str(seeded_root), "--base-url", teacher.base_url, "--model",
                     "fake-teacher", "--target", "3", "--api-key-env", "TEACHER_KEY", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and SKIPPED in warnings[0] and "RuntimeError: cannot set up today" in warnings[0]
    assert failures("test-filter")


def test_the_generate_panel_shows_the_skipped_plugin_filter(qtbot, in_process, seeded_root: Path) -> None:
    from fake_teacher import FakeTeacher

    from studio.core.project import Project
    from studio.ui.generate_panel import GeneratePanel
    from studio.ui.project_context import ProjectContext

    in_process(registry.SAMPLE_FILTERS, "broken_filter", "BrokenFilter", "test-filter", reason="broken")
    context = ProjectContext(Project.open(seeded_root))
    panel = GeneratePanel()
    qtbot.addWidget(panel)
    panel.set_context(context)
    try:
        qtbot.waitUntil(lambda: "5 in this project" in panel.seed_count_label.text(), timeout=5_000)
        with FakeTeacher(max_lifetime_s=60) as teacher:
            panel.base_url.setText(teacher.base_url)
            panel.model.setCurrentText("fake-teacher")
            panel.api_key.setText(teacher.api_key)
            panel.target.setValue(3)
            panel.start_button.click()
            qtbot.waitUntil(lambda: not panel.is_running() and panel.start_button.isEnabled(), timeout=30_000)
        assert panel.messages.level == "warning" and SKIPPED in panel.messages.message()
    finally:
        panel.shutdown()
        context.close()
