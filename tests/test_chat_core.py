"""Chat core without HTTP: the conversation store (v7), the sources a column can pick, the
messages each column sends, and answers turned into seed tasks and Curate samples."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from studio.core import changes, schema
from studio.core.chat.conversations import (
    ALPACA, CHAT, Answer, ColumnSpec, Conversation, Turn, UnknownConversationError, default_title,
)
from studio.core.chat.session import FROM_CHAT_TAG, answer_to_sample, answer_to_seed, messages_for
from studio.core.chat.sources import (
    BASE, ENDPOINT, RUN, ChatSourceError, ModelSource, client_for, is_studio_server, list_sources,
)
from studio.core.errors import StudioError
from studio.core.project import Project
from studio.core.samples import Origin, Sample, Status
from studio.core.serving.catalog import ADAPTER, BASE as BASE_KIND, Catalog, ServedModel
from studio.core.serving.server_info import ServerInfo
from studio.core.training.settings import preset_settings

TEACHER = ModelSource(ENDPOINT, "gpt @ api", base_url="http://127.0.0.1:9/v1", model="gpt-x")


def conversation(mode: str = CHAT, columns: int = 2) -> Conversation:
    specs = [ColumnSpec(source=TEACHER, system="Be brief.", temperature=0.2, top_p=0.9, max_tokens=64)]
    specs += [ColumnSpec(source=ModelSource(RUN, "run-1", model="run-1", run_id=1)) for _ in range(columns - 1)]
    return Conversation(id=None, title="A talk", mode=mode, columns=specs)


# -- the store -----------------------------------------------------------------------------------
def test_conversation_round_trips_through_json() -> None:
    talk = conversation(ALPACA)
    talk.turns.append(Turn("Name a fruit.", "red ones", [Answer("Apple.", "stop", "", 0.25, 3, 40.0, 7, None),
                                                         Answer("", None, "Cannot reach it.")]))
    again = Conversation.from_dict(json.loads(json.dumps(talk.to_dict())))
    assert again == talk
    assert again.columns[0].source == TEACHER and again.turns[0].answers[0].seed_id == 7


def test_timings_that_are_not_numbers_are_stored_as_unknown(project: Project) -> None:
    talk = conversation()
    talk.turns.append(Turn("Hi", answers=[Answer("a", ttft_s=float("nan"), tokens_per_s=float("inf")), Answer()]))
    project.conversations.create(talk)
    stored = project.conversations.get(talk.id).turns[0].answers[0]
    assert (stored.ttft_s, stored.tokens_per_s) == (None, None)


def test_create_get_save_list_rename_delete(project: Project) -> None:
    seen: list[frozenset[str]] = []
    project.changes.subscribe(seen.append)
    first = project.conversations.create(conversation())
    assert first.id is not None and first.created_at == first.updated_at > 0
    assert seen == [frozenset({changes.CONVERSATIONS})]
    second = project.conversations.create(Conversation(None, "Second", ALPACA, [ColumnSpec(TEACHER)]))

    first.turns.append(Turn("Hello?", answers=[Answer("Hi."), Answer("Hey.")]))
    before = first.updated_at
    project.conversations.save(first)
    assert first.updated_at >= before and len(seen) == 3
    stored = project.conversations.get(first.id)
    assert stored == first and stored.turns[0].answers[1].text == "Hey."

    listed = project.conversations.list()
    assert [(s.id, s.title, s.mode, s.turns) for s in listed] == [(first.id, "A talk", CHAT, 1),
                                                                   (second.id, "Second", ALPACA, 0)]
    project.conversations.rename(second.id, "  Renamed ")
    assert project.conversations.list()[0].title == "Renamed"  # a rename is a save: newest first
    project.conversations.delete(first.id)
    assert [s.id for s in project.conversations.list()] == [second.id]
    assert seen[-1] == frozenset({changes.CONVERSATIONS})


def test_unknown_ids_are_clear_errors(project: Project) -> None:
    with pytest.raises(UnknownConversationError, match="No conversation #42"):
        project.conversations.get(42)
    with pytest.raises(UnknownConversationError, match="#42"):
        project.conversations.rename(42, "x")
    with pytest.raises(UnknownConversationError, match="#42"):
        project.conversations.delete(42)
    with pytest.raises(StudioError, match="mode"):
        project.conversations.create(Conversation(None, "x", "poetry", []))
    assert project.conversations.count() == 0


def test_save_without_id_creates_and_a_deleted_one_comes_back(project: Project) -> None:
    talk = conversation()
    project.conversations.save(talk)
    assert talk.id is not None
    project.conversations.delete(talk.id)
    project.conversations.save(talk)  # the panel still showed it
    assert project.conversations.get(talk.id).title == "A talk"


def test_worker_handles_share_the_store_and_the_feed(project: Project) -> None:
    seen: list[frozenset[str]] = []
    project.changes.subscribe(seen.append)
    with project.worker() as worker:
        made = worker.conversations.create(conversation())
    assert project.conversations.get(made.id).title == "A talk" and seen == [frozenset({changes.CONVERSATIONS})]


def test_a_v6_project_migrates_to_v7_keeping_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:6])
        patch.setattr(schema, "LATEST_VERSION", 6)
        with Project.create(tmp_path / "p", with_default_seeds=True) as old:
            assert schema.current_version(old.conn) == 6
            seeds = old.seeds.count()
            old.samples.add(Sample("Old instruction.", "", "Old output.", status=Status.ACCEPTED))
            old.snapshots.create("v1")
            assert not hasattr(old, "conversations") or old.conn.execute(
                "SELECT name FROM sqlite_master WHERE name = 'conversations'").fetchone() is None
    with Project.open(tmp_path / "p") as project:
        assert schema.current_version(project.conn) == schema.LATEST_VERSION >= 7
        assert project.seeds.count() == seeds and project.samples.count() == 1
        assert project.snapshots.get("v1").sample_count == 1
        assert project.conversations.list() == []
        project.conversations.create(conversation())
        assert project.conversations.count() == 1
    assert (tmp_path / "p" / "project.sqlite.v6.bak").is_file()


def test_default_title() -> None:
    assert default_title("\n  Write a haiku about rain.\nMore") == "Write a haiku about rain."
    long = default_title("word " * 40)
    assert long.endswith("…") and len(long) <= 61
    assert default_title("  ") == "New conversation"


# -- sources -------------------------------------------------------------------------------------
@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-base"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


def make_runs(project: Project, base_dir: Path) -> list:
    project.samples.add(Sample("Say hi.", "", "Hi.", status=Status.ACCEPTED))
    project.snapshots.create("v1")
    settings = preset_settings("alpaca").with_overrides({"max_steps": 3})
    first = project.training.create(snapshot="v1", base_model=str(base_dir), settings=settings, name="student")
    second = project.training.create(snapshot="v1", base_model=str(base_dir), settings=settings)
    untrained = project.training.create(snapshot="v1", base_model=str(base_dir), settings=settings)
    for run in (first, second):
        (run.adapter_dir).mkdir(parents=True)
        (run.adapter_dir / "adapter_config.json").write_text("{}", encoding="utf-8")
    return [first, second, untrained]


def server_for(base_dir: Path, runs: list, port: int = 8765) -> ServerInfo:
    models = [ServedModel("tiny-base", BASE_KIND, None, "alpaca")]
    models += [ServedModel(run.name or f"run-{run.id}", ADAPTER, "tiny-base", "alpaca", str(run.adapter_dir), run.id)
               for run in runs]
    return ServerInfo(pid=os.getpid(), host="127.0.0.1", port=port, catalog=Catalog(str(base_dir), tuple(models)))


def test_sources_list_teachers_then_base_then_trained_runs(project: Project, base_dir: Path) -> None:
    gen = project.generation
    gen.create_run(name="a", mode="alpaca", teacher_model="gpt-x", base_url="https://api.example/v1",
                   config={"teacher": {"api_key_env": "EXAMPLE_KEY"}}, prompt_template="")
    gen.create_run(name="b", mode="alpaca", teacher_model="llama3.1", base_url="http://127.0.0.1:11434/v1",
                   config={}, prompt_template="")
    gen.create_run(name="c", mode="alpaca", teacher_model="gpt-x", base_url="https://api.example/v1",
                   config={}, prompt_template="")  # the same teacher again: listed once
    first, second, _untrained = make_runs(project, base_dir)

    sources = list_sources(project, None)
    assert [(s.kind, s.model) for s in sources] == [
        (ENDPOINT, "gpt-x"), (ENDPOINT, "llama3.1"), (BASE, "tiny-base"), (RUN, f"run-{second.id}"),
        (RUN, "student")]
    assert sources[0].base_url == "https://api.example/v1" and sources[0].label == "gpt-x @ api.example"
    assert sources[0].api_key_env == ""  # the newest run's (c) default key variable
    assert [s.run_id for s in sources if s.kind == RUN] == [second.id, first.id]
    assert sources[-1].label == f"student (#{first.id})"

    server = server_for(base_dir, [first])
    with_server = list_sources(project, server)
    assert [s.model for s in with_server if s.kind == BASE] == ["tiny-base"]


def test_sources_know_the_default_key_variable_without_importing_the_client() -> None:
    from studio.core.chat import sources
    from studio.core.llm import keys

    assert sources.DEFAULT_KEY_ENV == keys.DEFAULT_KEY_ENV


def test_sources_of_an_empty_project(project: Project) -> None:
    assert list_sources(project, None) == []


def test_client_for_each_kind(project: Project, base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, _ = make_runs(project, base_dir)
    server = server_for(base_dir, [first], port=8999)
    monkeypatch.setenv("EXAMPLE_KEY", "sk-from-env")
    client, model = client_for(ModelSource(ENDPOINT, "t", base_url="https://api.example/v1", model="gpt-x",
                                           api_key_env="EXAMPLE_KEY"), server)
    assert (model, client.endpoint.base_url, client._api_key) == ("gpt-x", "https://api.example/v1", "sk-from-env")
    assert client.key is not None and client.key.describe() == "API key from $EXAMPLE_KEY"

    base, base_id = client_for(ModelSource(BASE, "tiny-base (base)", model="tiny-base"), server)
    assert (base_id, base.endpoint.base_url) == ("tiny-base", "http://127.0.0.1:8999/v1")
    run, run_id = client_for(ModelSource(RUN, "student", model="student", run_id=first.id), server)
    assert run_id == "student" and run.endpoint.model == "student"

    with pytest.raises(ChatSourceError, match="start the local server"):
        client_for(ModelSource(BASE, "tiny-base (base)", model="tiny-base"), None)
    with pytest.raises(ChatSourceError, match="does not offer"):
        client_for(ModelSource(RUN, f"run-{second.id}", model=f"run-{second.id}", run_id=second.id), server)
    with pytest.raises(ChatSourceError, match="no endpoint URL"):
        client_for(ModelSource(ENDPOINT, "blank"), server)

    assert is_studio_server(ModelSource(BASE, "b"), None)
    assert is_studio_server(ModelSource(ENDPOINT, "s", base_url="http://127.0.0.1:8999/v1/"), server)
    assert not is_studio_server(TEACHER, server)
    vllm = dataclasses.replace(server, backend="vllm")  # vLLM knows no "input": the Alpaca input is folded in
    assert not is_studio_server(ModelSource(BASE, "b"), vllm)
    assert not is_studio_server(ModelSource(ENDPOINT, "s", base_url="http://127.0.0.1:8999/v1/"), vllm)


# -- messages ------------------------------------------------------------------------------------
def test_messages_are_per_column_and_multi_turn() -> None:
    talk = conversation()
    talk.turns.append(Turn("First question?", answers=[Answer("Teacher one."), Answer("Student one.")]))
    talk.turns.append(Turn("Second question?", answers=[Answer("", error="Cannot reach it."), Answer("Student two.")]))
    talk.turns.append(Turn("Third question?", answers=[Answer(), Answer()]))

    assert messages_for(talk, 0, studio_server=False) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "Teacher one."},
        # turn 2 failed in this column: left out whole, never two user turns in a row
        {"role": "user", "content": "Third question?"},
    ]
    assert messages_for(talk, 1, studio_server=True) == [  # no system prompt in this column
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "Student one."},
        {"role": "user", "content": "Second question?"},
        {"role": "assistant", "content": "Student two."},
        {"role": "user", "content": "Third question?"},
    ]
    with pytest.raises(IndexError):
        messages_for(talk, 2, studio_server=False)
    with pytest.raises(StudioError, match="no prompt"):
        messages_for(conversation(), 0, studio_server=False)


def test_the_alpaca_input_is_an_extension_for_the_studio_server_and_combined_elsewhere() -> None:
    talk = conversation(ALPACA)
    talk.turns.append(Turn("Classify the sentiment.", "I loved it.", [Answer(), Answer()]))
    assert messages_for(talk, 1, studio_server=True)[-1] == {
        "role": "user", "content": "Classify the sentiment.", "input": "I loved it."}
    assert messages_for(talk, 0, studio_server=False)[-1] == {
        "role": "user", "content": "Classify the sentiment.\n\nI loved it."}
    talk.turns.append(Turn("No input this time.", "", [Answer(), Answer()]))
    assert messages_for(talk, 1, studio_server=True)[-1] == {"role": "user", "content": "No input this time."}


# -- answers kept as data --------------------------------------------------------------------------
def answered(project: Project) -> Conversation:
    talk = conversation(ALPACA)
    talk.turns.append(Turn("Translate to French.", "Good morning", [Answer("Bonjour", "stop"), Answer("")]))
    return project.conversations.create(talk)


def test_answer_to_seed_makes_a_tagged_task_and_remembers_it(project: Project) -> None:
    talk = answered(project)
    seed_id = answer_to_seed(project, talk, 0, 0)
    seed = project.seeds.require(seed_id)
    assert seed.instruction == "Translate to French." and seed.tags == [FROM_CHAT_TAG]
    assert [(i.input, i.output) for i in seed.instances] == [("Good morning", "Bonjour")]
    assert project.conversations.get(talk.id).turns[0].answers[0].seed_id == seed_id
    with pytest.raises(StudioError, match="empty"):
        answer_to_seed(project, talk, 0, 1)
    with pytest.raises(IndexError, match="turn 3"):
        answer_to_seed(project, talk, 3, 0)


def test_answer_to_sample_makes_a_pending_manual_sample_once(project: Project) -> None:
    talk = answered(project)
    sample_id = answer_to_sample(project, talk, 0, 0)
    sample = project.samples.get(sample_id)
    assert (sample.instruction, sample.input, sample.output) == ("Translate to French.", "Good morning", "Bonjour")
    assert (sample.status, sample.origin, sample.teacher_model) == (Status.PENDING, Origin.MANUAL, "gpt-x")
    assert sample.tags == [FROM_CHAT_TAG] and sample.source == f"chat #{talk.id}"
    assert project.conversations.get(talk.id).turns[0].answers[0].sample_id == sample_id
    assert answer_to_sample(project, talk, 0, 0) == sample_id and project.samples.count() == 1
