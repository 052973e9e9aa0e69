"""Systems of an evaluation: specs resolved to cache keys and labels, Chat's sources both ways, the clients
(real HTTP through the openai client to loopback fakes), and the CLI's server lease with the fake studio server."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.core.chat.sources import list_sources
from studio.core.evaluation.model import (
    BASE,
    ENDPOINT,
    RUN,
    EvaluationError,
    SystemSpec,
)
from studio.core.evaluation.systems import (
    StudioServerLease,
    adapter_fingerprint,
    client_factory,
    from_source,
    needs_server,
    resolve_system,
    resolve_systems,
    run_id_of,
    to_source,
)
from studio.core.llm.keys import ENVIRONMENT
from studio.core.serving.server_info import info_path, live_server, read_info
from studio.core.training.settings import TrainSettings
from tests.fake_teacher import FakeTeacher
from tests.serve_support import base_folder, fake_program, trained_run

REPO = Path(__file__).resolve().parents[1]


def test_an_endpoint_is_keyed_by_url_and_model(project) -> None:
    spec = resolve_system(project, SystemSpec.parse("http://127.0.0.1:9/v1/#gpt-x"))
    assert (spec.kind, spec.key, spec.label) == (ENDPOINT, "http://127.0.0.1:9/v1#gpt-x", "gpt-x @ 127.0.0.1:9")
    assert spec.api_key_env == "OPENAI_API_KEY"


def test_a_run_is_found_by_id_or_name_and_keyed_by_its_adapter(project, tmp_path: Path) -> None:
    base = base_folder(tmp_path)
    run = trained_run(project, base, name="student")
    by_name = resolve_system(project, SystemSpec.parse("run:student"))
    by_id = resolve_system(project, SystemSpec.parse(f"run:{run.id}"))
    assert by_name == by_id
    assert (by_id.kind, by_id.run, by_id.model, by_id.label) == (RUN, str(run.id), "student", "student")
    assert by_id.key == f"run:{run.id}:{adapter_fingerprint(run.adapter_dir)}"

    (run.adapter_dir / "adapter_model.safetensors").write_bytes(b"weights of the first training")
    first = resolve_system(project, SystemSpec.parse("run:student")).key
    assert first != by_id.key
    time.sleep(0.01)
    (run.adapter_dir / "adapter_model.safetensors").write_bytes(b"weights of the second training")
    second = resolve_system(project, SystemSpec.parse("run:student")).key
    assert second != first  # trained again: the old adapter's answers are not the new one's


def test_a_run_or_base_served_by_vllm_has_its_own_cache_key(project, tmp_path: Path) -> None:
    from dataclasses import replace

    from studio.core.evaluation.cli_support import _trained_on_warnings
    from studio.core.evaluation.lost import _run_key
    from studio.core.serving.catalog import Catalog, ServedModel
    from studio.core.serving.server_info import ServerInfo

    base = base_folder(tmp_path)
    run = trained_run(project, base, name="student")
    studio = resolve_system(project, SystemSpec.parse("run:student"))
    vllm_server = ServerInfo(os.getpid(), "127.0.0.1", 9, Catalog(str(base.resolve()),
                                                                  (ServedModel("tiny-base", "base", None, "alpaca"),)),
                             backend="vllm")
    # vLLM is sent the input in the text, the studio server as its own field: two caches.
    vllm = resolve_system(project, SystemSpec.parse("run:student"), server=vllm_server)
    assert vllm.key == f"{studio.key}:vllm"
    base_vllm = resolve_system(project, SystemSpec.parse("base"), server=vllm_server)
    assert base_vllm.key == f"base:{base.resolve()}:vllm"
    # The one parser of run keys reads both forms, in every place that needs the run.
    for spec in (studio, vllm):
        named = replace(spec, run="student")
        assert run_id_of(spec) == run_id_of(named) == run.id and to_source(named).run_id == run.id
        assert _run_key(named) == str(run.id)
        assert _trained_on_warnings(project, [named], [], "set") == []
    assert run_id_of(SystemSpec.parse("run:student")) is None and run_id_of(base_vllm) is None


def test_an_unknown_run_lists_the_runs_and_an_untrained_run_says_what_to_do(project, tmp_path: Path) -> None:
    base = base_folder(tmp_path)
    trained_run(project, base, name="student")
    with pytest.raises(EvaluationError, match=r"No training run 'nope' in this project; runs: 1 \(student\)"):
        resolve_system(project, SystemSpec.parse("run:nope"))
    bare = project.training.create(snapshot="v1", base_model=str(base), name="untrained", settings=TrainSettings())
    with pytest.raises(EvaluationError, match=r"Run #2 untrained has no adapter yet: train it first"):
        resolve_system(project, SystemSpec.parse(f"run:{bare.id}"))


def test_base_is_the_base_of_the_trained_runs_or_of_the_running_server(project, tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="train a run first"):
        resolve_system(project, SystemSpec.parse("base"))
    base = base_folder(tmp_path)
    trained_run(project, base)
    spec = resolve_system(project, SystemSpec.parse("base"))
    assert (spec.kind, spec.key, spec.label, spec.model) == (BASE, f"base:{base.resolve()}", "tiny-base (base)",
                                                             "tiny-base")


def test_the_same_model_twice_is_refused(project) -> None:
    specs = [SystemSpec.parse("http://127.0.0.1:9/v1#m"), SystemSpec.parse("http://127.0.0.1:9/v1/#m")]
    with pytest.raises(EvaluationError, match="are the same model"):
        resolve_systems(project, specs)
    two = resolve_systems(project, [SystemSpec.parse("http://127.0.0.1:9/v1#m"),
                                    SystemSpec.parse("http://127.0.0.1:10/v1#m")])
    assert [s.label for s in two] == ["m @ 127.0.0.1:9", "m @ 127.0.0.1:10"]


def test_chat_sources_become_specs_and_back(project, tmp_path: Path) -> None:
    trained_run(project, base_folder(tmp_path), name="student")
    project.conn.execute("INSERT INTO generation_runs (base_url, teacher_model, config, created_at, updated_at) VALUES "
                         "('http://127.0.0.1:9/v1', 'teach', '{\"teacher\": {\"api_key_env\": \"MY_KEY\"}}', 0, 0)")
    sources = list_sources(project, None)
    specs = [from_source(source) for source in sources]
    assert [s.kind for s in specs] == [ENDPOINT, BASE, RUN]
    assert specs[0].api_key_env == "MY_KEY" and specs[2].run == "1"
    resolved = resolve_systems(project, specs)
    assert all(s.key for s in resolved)
    assert [to_source(s).same_model(source) for s, source in zip(specs, sources)] == [True, True, True]
    assert to_source(resolved[2]).run_id == 1


def test_needs_server() -> None:
    assert not needs_server([SystemSpec.parse("http://h:1/v1#m"), SystemSpec.parse("http://h:2/v1#m")])
    assert needs_server([SystemSpec.parse("http://h:1/v1#m"), SystemSpec.parse("base")])
    assert needs_server([SystemSpec.parse("run:3")])


def test_an_endpoint_client_takes_its_key_from_the_spec_variable(project, monkeypatch) -> None:
    with FakeTeacher(api_key="sk-eval") as teacher:
        monkeypatch.setenv("EVAL_KEY", "sk-eval")
        spec = resolve_system(project, SystemSpec.parse(f"{teacher.base_url}#fake-teacher"))
        spec = SystemSpec.from_dict({**spec.to_dict(), "api_key_env": "EVAL_KEY"})
        client, model = client_factory(project.root, None)(spec)
        assert model == "fake-teacher" and client.key is not None and client.key.origin == ENVIRONMENT
        answer = client.complete_sync("Say something.", max_tokens=16)
        assert answer.text

        monkeypatch.setenv("EVAL_KEY", "sk-wrong")
        wrong, _ = client_factory(project.root, None)(spec)
        with pytest.raises(Exception, match="refused the API key"):
            wrong.complete_sync("Say something.", max_tokens=16)


def test_a_studio_model_without_a_server_says_to_start_it(project, tmp_path: Path) -> None:
    trained_run(project, base_folder(tmp_path), name="student")
    spec = resolve_system(project, SystemSpec.parse("run:student"))
    with pytest.raises(EvaluationError, match=r"not running for .*: start the studio server"):
        client_factory(project.root, None)(spec)


def test_the_lease_starts_a_server_only_when_needed_and_stops_only_its_own(project, tmp_path: Path, capsys) -> None:
    run = trained_run(project, base_folder(tmp_path), name="student")
    endpoints = [SystemSpec.parse("http://h:1/v1#m"), SystemSpec.parse("http://h:2/v1#m")]
    with StudioServerLease(project.root, endpoints, program=fake_program()) as info:
        assert info is None
    assert not info_path(project.root).exists()

    specs = [resolve_system(project, SystemSpec.parse("run:student")), resolve_system(project, SystemSpec.parse("base"))]
    lease = StudioServerLease(project.root, specs, program=fake_program())
    with lease as info:
        assert info is not None and lease.started
        assert live_server(info_path(project.root)) is not None
        client, model = client_factory(project.root, None)(specs[0])  # found through the info file
        assert model == "student"
        assert client.complete_sync("Hi.", max_tokens=32).text.startswith("Hello from student")
        _, base_model = client_factory(project.root, info)(specs[1])
        assert base_model == "tiny-base"
        # a second lease (another eval meanwhile) uses the running server and leaves it running
        with StudioServerLease(project.root, specs, program=fake_program()) as again:
            assert again is not None and again.pid == info.pid
        assert live_server(info_path(project.root)) is not None
    assert read_info(info_path(project.root)) is None  # stopped, its file gone
    err = capsys.readouterr().err
    assert "starting the studio server for run:1, base" in err and err.count("starting") == 1
    assert run.id == 1


def test_a_live_server_without_the_run_gets_its_adapter_loaded(project, tmp_path: Path) -> None:
    base = base_folder(tmp_path)
    first = trained_run(project, base, name="first")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([*fake_program(), "--project", str(project.root), "--run", "first", "--port", "0",
                              "--info-file", str(info_path(project.root))], env=env)
    try:
        deadline = time.monotonic() + 60
        while live_server(info_path(project.root)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second = project.training.create(snapshot="v1", base_model=str(base), name="second", settings=TrainSettings())
        second.adapter_dir.mkdir(parents=True)
        (second.adapter_dir / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}', encoding="utf-8")
        spec = resolve_system(project, SystemSpec.parse("run:second"))
        with StudioServerLease(project.root, [spec], program=fake_program(), out=sys.stderr) as info:
            assert info is not None and info.pid == child.pid
            assert {m.id for m in info.catalog.adapters} == {"first", "second"}
        assert child.poll() is None  # not ours: left running
        assert first.id == 1
    finally:
        child.terminate()
        child.wait(10)


def test_a_server_that_cannot_start_is_one_clear_error(project, tmp_path: Path) -> None:
    trained_run(project, base_folder(tmp_path), name="student")
    spec = resolve_system(project, SystemSpec.parse("run:student"))
    lease = StudioServerLease(project.root, [spec], program=fake_program("--fail", "error: out of memory loading"))
    with pytest.raises(EvaluationError, match=r"The studio server did not start: .*; it said: out of memory loading"):
        lease.__enter__()
    assert lease._process is None
