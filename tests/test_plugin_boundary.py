"""The registry boundary at the core call sites: a plugin's bug is reported as that plugin's, the rest works.

Entries are registered in-process with ``source="some-plugin"`` and targets in this module (how a
loaded plugin's entries look to the registry), so each guarded call site is driven for real.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core import exports, formats, registry
from studio.core.errors import FormatError, StudioError
from studio.core.jobs import Progress, run_to_end
from studio.core.plugins.boundary import PluginError, failures, plugin_boundary
from studio.core.registry import RegistryError
from tests.plugin_support import registered_as_plugins

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher  # noqa: E402
from plugin_filters import NoIndex  # noqa: E402

PLUGIN = "some-plugin"
HERE = "tests.test_plugin_boundary"


def _boom(*_args, **_kwargs):
    return 1 / 0


def _sniff_boom(path: Path, text: str) -> bool:
    raise KeyError("sniffing")


def _steps_boom(path: Path, text: str):
    yield Progress(1, 2, "halfway")
    raise ZeroDivisionError("at record 2")


def _bad_line(path: Path, text: str):
    raise FormatError(path, "not a zero file", line=3)


ZERO_FORMAT = formats.DatasetFormat(key="zero", title="Zero", extensions=(".zero",), sniff=lambda p, t: p.suffix == ".zero",
                                    read_samples=_boom, write_samples=_boom)
SNIFFY_FORMAT = formats.DatasetFormat(key="sniffy", title="Sniffy", extensions=(".sn",), sniff=_sniff_boom,
                                      read_samples=_boom)
STEPS_FORMAT = formats.DatasetFormat(key="steps", title="Steps", extensions=(".steps",), sniff=lambda p, t: False,
                                     read_samples=_boom, read_samples_steps=_steps_boom)
PLAIN_ERROR_FORMAT = formats.DatasetFormat(key="plain", title="Plain", extensions=(".plain",), sniff=lambda p, t: False,
                                           read_samples=_bad_line)
NOT_A_FORMAT = {"key": "wrong"}


@pytest.fixture
def plugin_entries() -> Iterator[callable]:
    """Register entries (this module's attributes) as the plugin ``some-plugin`` would; all removed after."""
    with registered_as_plugins() as add:
        yield lambda point, key, attr, **meta: add(point, key, f"{HERE}:{attr}", PLUGIN, **meta)


def _alpaca_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([{"instruction": "Say hi", "input": "", "output": "Hi"}]), encoding="utf-8")
    return path


# -- dataset formats --------------------------------------------------------------------------------------------
def test_a_plugin_format_that_raises_gives_a_plugin_error_naming_it(plugin_entries, tmp_path: Path) -> None:
    plugin_entries(registry.DATASET_FORMATS, "zero", "ZERO_FORMAT")
    path = tmp_path / "x.zero"
    path.write_text("anything", encoding="utf-8")
    for call in (lambda: formats.read_samples(path), lambda: formats.read_seeds(path, "zero"),
                 lambda: formats.write_samples(tmp_path / "out.zero", [formats.Record("a", "", "b")], "zero")):
        with pytest.raises(PluginError) as caught:
            call()
        assert caught.value.plugin == PLUGIN
        assert str(caught.value).startswith("The plugin 'some-plugin' failed in its dataset format 'zero' while ")
        assert str(caught.value).endswith("ZeroDivisionError: division by zero")
        assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert f"while reading {path}" in failures(PLUGIN)[0]
    assert formats.read_samples(_alpaca_file(tmp_path)) == [formats.Record("Say hi", "", "Hi")]  # the rest works


def test_a_plugin_format_job_that_raises_is_caught_at_the_boundary(plugin_entries, tmp_path: Path) -> None:
    plugin_entries(registry.DATASET_FORMATS, "steps", "STEPS_FORMAT")
    path = tmp_path / "x.steps"
    path.write_text("anything", encoding="utf-8")
    seen: list[Progress] = []
    with pytest.raises(PluginError, match="while reading .*x.steps: ZeroDivisionError: at record 2"):
        run_to_end(formats.read_samples_steps(path, "steps"), on_progress=seen.append)
    assert [p.message for p in seen][-1] == "halfway"
    steps = formats.read_samples_steps(path, "steps")
    next(steps), next(steps)
    steps.close()  # a cancelled import: GeneratorExit passes the boundary, nothing is recorded for it
    assert len(failures(PLUGIN)) == 1


def test_a_plugin_sniff_that_raises_is_skipped_and_recorded(plugin_entries, tmp_path: Path) -> None:
    plugin_entries(registry.DATASET_FORMATS, "sniffy", "SNIFFY_FORMAT")
    path = _alpaca_file(tmp_path)
    assert formats.detect_format(path, path.read_text(encoding="utf-8")) == formats.ALPACA
    assert "while detecting the format of" in failures(PLUGIN)[0] and "KeyError" in failures(PLUGIN)[0]


def test_a_plugin_formats_own_format_error_passes_unchanged_and_unrecorded(plugin_entries, tmp_path: Path) -> None:
    plugin_entries(registry.DATASET_FORMATS, "plain", "PLAIN_ERROR_FORMAT")
    path = tmp_path / "x.plain"
    path.write_text("anything", encoding="utf-8")
    with pytest.raises(FormatError, match=r"x\.plain, line 3: not a zero file") as caught:
        formats.read_samples(path, "plain")
    assert not isinstance(caught.value, PluginError)
    assert failures(PLUGIN) == []  # the user's file was wrong, not the plugin


def test_a_plugin_entry_that_is_no_format_is_left_out_of_the_choices(plugin_entries) -> None:
    plugin_entries(registry.DATASET_FORMATS, "wrong", "NOT_A_FORMAT")
    plugin_entries(registry.DATASET_FORMATS, "gone", "NO_SUCH_ATTRIBUTE")
    assert {"wrong", "gone"}.isdisjoint(formats.sample_formats()) and "alpaca" in formats.sample_formats()
    assert "All supported files" in formats.file_dialog_filter(formats.SAMPLES)
    messages = " ".join(failures(PLUGIN))
    assert "'wrong' from some-plugin" in messages and "is not a DatasetFormat" in messages
    assert "'gone' from some-plugin could not be loaded" in messages
    with pytest.raises(FormatError, match="'gone' from some-plugin could not be loaded"):
        formats.read_samples(Path(__file__), "gone")


# -- dataset exporters ------------------------------------------------------------------------------------------
BOOM_EXPORTER = exports.Exporter(key="boom", title="Boom", export=_boom)


def test_a_plugin_exporter_that_raises_names_the_plugin(plugin_entries, tmp_path: Path) -> None:
    plugin_entries(registry.DATASET_EXPORTERS, "boom", "BOOM_EXPORTER")
    with pytest.raises(PluginError, match=r"dataset exporter 'boom' while writing .*out.boom: ZeroDivisionError"):
        exports.export(tmp_path / "out.boom", [formats.Record("a", "", "b")], "boom")
    assert exports.export(tmp_path / "out.jsonl", [formats.Record("a", "", "b")], "jsonl")


# -- sample filters ---------------------------------------------------------------------------------------------
class RaisingFilter:
    def __init__(self, settings, index):
        pass

    def __call__(self, c, *, key, need_output):
        raise ZeroDivisionError("judging")


class BrokenFilterInit:
    def __init__(self, settings, index):
        raise RuntimeError("cannot set up")


def test_a_plugin_filter_that_cannot_be_built_is_skipped_and_recorded(plugin_entries) -> None:
    from studio.core.generation.filters import CandidateFilter, FilterSettings
    from studio.core.generation.prompts import Candidate

    plugin_entries(registry.SAMPLE_FILTERS, "broken_init", "BrokenFilterInit", reason="x")
    plugin_entries(registry.SAMPLE_FILTERS, "not_there", "NoSuchFilter", reason="y")
    candidate_filter = CandidateFilter(FilterSettings(), index_factory=lambda t: NoIndex())
    names = [name for name, _ in candidate_filter.checks]
    assert names and not {"broken_init", "not_there"} & set(names)
    assert len(candidate_filter.skipped) == 2
    assert "'broken_init' of the plugin 'some-plugin' is skipped" in candidate_filter.skipped[0]
    assert "RuntimeError: cannot set up" in candidate_filter.skipped[0]
    assert len(failures(PLUGIN)) == 2
    assert candidate_filter.check(Candidate("Explain why the sky is blue.", "", "Light.")).kept  # built-ins work


def test_a_plugin_filter_that_raises_fails_the_run_naming_the_plugin(plugin_entries, project) -> None:
    from studio.core.generation.config import RunConfig
    from studio.core.generation.engine import GenerationEngine, create_run
    from studio.core.llm import EndpointConfig
    from studio.core.seeds import Instance, SeedTask

    plugin_entries(registry.SAMPLE_FILTERS, "raises", "RaisingFilter", reason="raised")
    project.seeds.add_many([SeedTask(f"Give a short example of topic {i} for a student.", [Instance("", f"E {i}.")])
                            for i in range(4)])
    with FakeTeacher(max_lifetime_s=60) as teacher:
        config = RunConfig(teacher=EndpointConfig(base_url=teacher.base_url, model="fake-teacher", timeout_s=5),
                           backoff_base_s=0.01, backoff_max_s=0.05, request_timeout_s=5, target=5, concurrency=1)
        config.prices = {"fake-teacher": (1.0, 2.0)}
        run_id = create_run(project.generation, config)
        engine = GenerationEngine(project, run_id, api_key="sk-fake-teacher")
        with pytest.raises(PluginError) as caught:
            engine.run_blocking()
    message = str(caught.value)
    assert message.startswith("The plugin 'some-plugin' failed in its sample filter 'raises' while judging a candidate")
    assert caught.value.plugin == PLUGIN
    conn = project.conn
    assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0  # nothing kept...
    assert conn.execute("SELECT COUNT(*) FROM rejected_candidates").fetchone()[0] == 0  # ...and nothing rejected
    assert conn.execute("SELECT status FROM generation_runs WHERE id=?", (run_id,)).fetchone()[0] == "failed"


# -- generation modes -------------------------------------------------------------------------------------------
class RaisingMode:
    root_stage = "generate"

    def __init__(self, ctx):
        self.ctx = ctx

    def new_prompt(self, rng, index):
        return "a prompt", [], {}

    def max_tokens(self, stage):
        return 10

    def expected_kept(self, stage, payload):
        return None

    def handle(self, request, text, finish_reason):
        yield
        raise ZeroDivisionError("reading")


def BrokenModeInit(ctx):  # noqa: N802 - a factory standing in for a class
    raise RuntimeError("no mode today")


def test_a_plugin_mode_is_guarded_and_the_built_ins_are_not_wrapped(plugin_entries) -> None:
    from types import SimpleNamespace

    from studio.core.generation.modes import AlpacaMode, GuardedMode, make_mode

    plugin_entries(registry.GENERATION_MODES, "raising", "RaisingMode")
    plugin_entries(registry.GENERATION_MODES, "broken", "BrokenModeInit")
    ctx = SimpleNamespace(config=SimpleNamespace(mode="raising"))
    mode = make_mode(ctx)
    assert isinstance(mode, GuardedMode) and mode.root_stage == "generate"
    assert mode.new_prompt(None, 0) == ("a prompt", [], {}) and mode.max_tokens("generate") == 10
    steps = mode.handle(SimpleNamespace(key="g-1"), "text", None)
    next(steps)
    with pytest.raises(PluginError, match="generation mode 'raising' while reading the answer to request g-1"):
        next(steps)
    with pytest.raises(PluginError, match="'broken' while starting a run: RuntimeError: no mode today"):
        make_mode(SimpleNamespace(config=SimpleNamespace(mode="broken")))
    assert type(make_mode(SimpleNamespace(config=SimpleNamespace(mode="alpaca")))) is AlpacaMode


# -- endpoint presets -------------------------------------------------------------------------------------------
def test_a_broken_plugin_preset_never_takes_the_built_ins_with_it(plugin_entries) -> None:
    from studio.core.llm.endpoint import EndpointPreset, preset, presets

    plugin_entries(registry.ENDPOINT_KINDS, "gone", "NO_SUCH_PRESET")
    plugin_entries(registry.ENDPOINT_KINDS, "wrong", "NOT_A_FORMAT")
    plugin_entries(registry.ENDPOINT_KINDS, "mine", "MY_PRESET")
    found = presets()
    assert "openai" in found and found["mine"] == MY_PRESET and {"gone", "wrong"}.isdisjoint(found)
    with pytest.raises(RegistryError, match="endpoint kind 'gone' from some-plugin could not be loaded"):
        preset("gone")
    with pytest.raises(RegistryError, match="'wrong' from some-plugin .* is a dict, not an EndpointPreset"):
        preset("wrong")
    assert len(failures(PLUGIN)) == 2
    assert isinstance(preset("openai"), EndpointPreset)


def _my_preset():
    from studio.core.llm.endpoint import EndpointPreset

    return EndpointPreset("Mine", "http://127.0.0.1:9/v1")


MY_PRESET = _my_preset()


# -- judges -----------------------------------------------------------------------------------------------------
class OddJudge:
    key, title, default_template = "odd", "Odd", "{instruction}"

    def messages(self, spec, prompt, first, second):
        raise ZeroDivisionError("writing")

    def verdict(self, spec, raw):
        return "maybe"


ODD_JUDGE = OddJudge()


def test_a_plugin_judge_is_guarded_and_its_verdict_checked(plugin_entries) -> None:
    from studio.core.evaluation.judge import PAIRWISE_JUDGE, GuardedJudge, load_judge

    plugin_entries(registry.JUDGES, "odd", "ODD_JUDGE")
    plugin_entries(registry.JUDGES, "plain", "NOT_A_FORMAT")
    assert load_judge() is PAIRWISE_JUDGE
    judge = load_judge("odd")
    assert isinstance(judge, GuardedJudge) and judge.title == "Odd"
    with pytest.raises(PluginError, match="judge 'odd' while writing the judge's prompt: ZeroDivisionError"):
        judge.messages(None, None, "a", "b")
    with pytest.raises(PluginError, match="the verdict 'maybe' is none of first, second, tie, unreadable"):
        judge.verdict(None, "raw")
    with pytest.raises(RegistryError, match="judge 'plain' from some-plugin .* has no messages"):
        load_judge("plain")


# -- the boundary itself ----------------------------------------------------------------------------------------
def test_the_boundary_lets_built_ins_and_interrupts_through(plugin_entries) -> None:
    built_in = registry.DATASET_FORMATS.get("alpaca")
    with pytest.raises(ZeroDivisionError):
        with plugin_boundary(built_in, "reading"):
            _boom()
    plugin_entries(registry.DATASET_FORMATS, "zero", "ZERO_FORMAT")
    entry = registry.DATASET_FORMATS.get("zero")
    for interrupt in (KeyboardInterrupt, GeneratorExit):
        with pytest.raises(interrupt):
            with plugin_boundary(entry, "reading"):
                raise interrupt()
    with pytest.raises(StudioError, match="plain words"):
        with registry.DATASET_FORMATS.guard("zero", "reading"):
            raise StudioError("plain words")
    assert failures(PLUGIN) == []
