"""Streaming a chat answer through the real ``openai`` client over loopback HTTP (tests/fake_teacher.py),
and ``distill-studio chat`` against it."""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
from pathlib import Path

import pytest

from studio.core.chat.cli_support import cmd_chat
from studio.core.chat.conversations import ALPACA, Answer, ColumnSpec, Conversation, Turn
from studio.core.chat.session import CANCELLED, messages_for, stream_answer
from studio.core.chat.sources import ENDPOINT, BASE, ModelSource, client_for
from studio.core.llm.client import LLMClient
from studio.core.llm.endpoint import EndpointConfig
from studio.core.serving.catalog import BASE as BASE_KIND, Catalog, ServedModel
from studio.core.serving.server_info import ServerInfo, info_path, write_info
from tests.fake_teacher import FakeTeacher, respond


@pytest.fixture
def teacher():
    with FakeTeacher() as fake:
        yield fake


def column_for(fake: FakeTeacher, model: str = "fake-teacher") -> ColumnSpec:
    return ColumnSpec(ModelSource(ENDPOINT, model, base_url=fake.base_url, model=model), temperature=0.3,
                      top_p=0.8, max_tokens=100)


def run_stream(fake: FakeTeacher, messages: list[dict], *, model: str = "fake-teacher", key: str | None = None,
               cancel_after: int | None = None, base_url: str | None = None) -> tuple[Answer, list[str]]:
    column = column_for(fake, model)
    deltas: list[str] = []
    client = LLMClient(EndpointConfig(base_url=base_url or fake.base_url, model=model),
                       api_key=key if key is not None else fake.api_key)

    async def go() -> Answer:
        try:
            return await stream_answer(client, model, messages, column, deltas.append,
                                       lambda: cancel_after is not None and len(deltas) >= cancel_after)
        finally:
            await client.aclose()

    return asyncio.run(go()), deltas


def full_text(fake: FakeTeacher, prompt: str) -> str:
    return respond(fake, str(hash(prompt)), prompt)


def test_stream_collects_deltas_timings_usage_and_sends_the_settings(teacher: FakeTeacher) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name two fruits."}]
    answer, deltas = run_stream(teacher, messages)
    assert answer.error == "" and answer.finish_reason == "stop"
    assert answer.text == "".join(deltas) == full_text(teacher, "Name two fruits.")
    assert len(deltas) > 10  # it really streamed, a few characters at a time
    assert answer.tokens == len(answer.text) // 4  # the server's usage count, not the deltas
    assert answer.ttft_s is not None and answer.ttft_s >= 0
    assert answer.tokens_per_s is not None and answer.tokens_per_s > 0
    body = teacher.bodies[-1]
    assert body["messages"] == messages and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == ("fake-teacher", 0.3, 0.8, 100)


def test_tokens_are_counted_from_deltas_when_the_server_sends_no_usage(teacher: FakeTeacher,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.fake_teacher as fake_module

    plain = fake_module._stream

    def without_usage(self, chunk_id, model, text, finish, include_usage, usage):  # an endpoint without usage
        return plain(self, chunk_id, model, text, finish, False, usage)

    monkeypatch.setattr(fake_module._Handler, "_stream", without_usage)
    answer, deltas = run_stream(teacher, [{"role": "user", "content": "Count me."}])
    assert answer.tokens == len(deltas) > 1 and answer.finish_reason == "stop"


def test_the_length_finish_reason_is_kept(teacher: FakeTeacher) -> None:
    teacher.faults.truncated = 1.0
    answer, _ = run_stream(teacher, [{"role": "user", "content": "Long one."}])
    assert answer.finish_reason == "length" and answer.error == ""


def test_stop_mid_stream_ends_early_and_closes_the_connection(teacher: FakeTeacher) -> None:
    teacher.chunk_chars, teacher.chunk_delay_s = 2, 0.01
    prompt = "Tell me a long story."
    answer, deltas = run_stream(teacher, [{"role": "user", "content": prompt}], cancel_after=3)
    assert answer.finish_reason == CANCELLED and answer.error == ""
    assert len(deltas) == 3 and answer.text == "".join(deltas)
    assert len(answer.text) < len(full_text(teacher, prompt)) / 10
    assert answer.tokens == 3
    assert teacher.client_gone.wait(10)  # the server saw the client leave: its generation can stop


def test_stop_before_the_first_token_does_not_wait_for_it(teacher: FakeTeacher) -> None:
    teacher.latency_s = 30.0  # the server would answer only after half a minute
    column = column_for(teacher)
    client = LLMClient(EndpointConfig(base_url=teacher.base_url, model="fake-teacher"), api_key=teacher.api_key)
    polls = []

    def cancelled() -> bool:
        polls.append(1)
        return len(polls) > 3  # Stop pressed a few polls in, before any text

    async def go() -> Answer:
        try:
            return await asyncio.wait_for(
                stream_answer(client, "fake-teacher", [{"role": "user", "content": "Slow?"}], column,
                              lambda _t: None, cancelled), timeout=10)
        finally:
            await client.aclose()

    answer = asyncio.run(go())
    assert answer.finish_reason == CANCELLED and answer.text == "" and answer.ttft_s is None


def test_failures_become_plain_answer_errors(teacher: FakeTeacher) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    answer, _ = run_stream(teacher, [{"role": "user", "content": "Hi"}], base_url=dead)
    assert answer.error.startswith(f"Cannot reach {dead}") and answer.text == "" and answer.finish_reason is None

    answer, _ = run_stream(teacher, [{"role": "user", "content": "Hi"}], key="sk-wrong")
    assert "refused the API key (401)" in answer.error

    answer, _ = run_stream(teacher, [{"role": "user", "content": "Hi"}], model="no-such-model")
    assert "'no-such-model' (404)" in answer.error


def test_a_stream_cut_mid_answer_keeps_the_partial_text_and_says_so(teacher: FakeTeacher) -> None:
    teacher.stream_break_after = 4
    answer, deltas = run_stream(teacher, [{"role": "user", "content": "Cut me."}])
    assert answer.error == f"The connection to {teacher.base_url} broke off in the middle of the answer; try again."
    assert answer.text == "".join(deltas) and len(deltas) == 4
    assert answer.finish_reason is None


def test_a_multi_turn_alpaca_conversation_reaches_the_endpoint_as_sent(teacher: FakeTeacher) -> None:
    source = ModelSource(ENDPOINT, "fake", base_url=teacher.base_url, model="fake-teacher")
    talk = Conversation(None, "t", ALPACA, [ColumnSpec(source)])
    talk.turns.append(Turn("Summarise.", "A long text.", [Answer("Short.")]))
    talk.turns.append(Turn("Shorter?", "", [Answer()]))
    messages = messages_for(talk, 0, studio_server=False)
    answer, _ = run_stream(teacher, messages)
    assert answer.error == ""
    assert teacher.bodies[-1]["messages"] == [
        {"role": "user", "content": "Summarise.\n\nA long text."}, {"role": "assistant", "content": "Short."},
        {"role": "user", "content": "Shorter?"}]


def test_the_input_extension_goes_through_the_openai_client(teacher: FakeTeacher) -> None:
    """The studio server reads ``input`` on a user message: the typed client must not drop the key."""
    messages = [{"role": "user", "content": "Classify.", "input": "I loved it."}]
    answer, _ = run_stream(teacher, messages)
    assert answer.error == "" and teacher.bodies[-1]["messages"] == messages


def test_client_for_a_served_base_streams_from_the_server_url(teacher: FakeTeacher) -> None:
    port = int(teacher.base_url.rsplit(":", 1)[1].split("/")[0])
    catalog = Catalog("/models/x", (ServedModel("fake-teacher", BASE_KIND, None, "alpaca"),))
    server = ServerInfo(pid=os.getpid(), host="127.0.0.1", port=port, catalog=catalog)
    client, model = client_for(ModelSource(BASE, "base"), server)
    client._api_key = teacher.api_key  # the fake insists on its key; the studio server takes none
    answer_holder: list[Answer] = []

    async def go() -> None:
        try:
            answer_holder.append(await stream_answer(client, model, [{"role": "user", "content": "Hi"}],
                                                     ColumnSpec(ModelSource(BASE, "base")), lambda _t: None,
                                                     lambda: False))
        finally:
            await client.aclose()

    asyncio.run(go())
    assert answer_holder[0].error == "" and teacher.bodies[-1]["model"] == "fake-teacher"


# -- distill-studio chat -----------------------------------------------------------------------------
def chat_args(**values) -> argparse.Namespace:
    defaults = {"project": None, "base_url": None, "model": "fake-teacher", "system": "", "input": "",
                "temperature": 0.7, "top_p": 1.0, "max_tokens": 64, "api_key_env": None, "prompt": "Hi"}
    defaults.update(values)
    return argparse.Namespace(**defaults)


def test_cmd_chat_streams_to_stdout(teacher: FakeTeacher, capsys: pytest.CaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", teacher.api_key)
    code = cmd_chat(chat_args(base_url=teacher.base_url, api_key_env="FAKE_KEY", system="Be kind.",
                              prompt="Name a colour."))
    out, err = capsys.readouterr()
    assert code == 0 and out == full_text(teacher, "Name a colour.")  # it ends with a newline already
    assert "tokens" in err and "finish: stop" in err
    assert teacher.bodies[-1]["messages"][0] == {"role": "system", "content": "Be kind."}


def test_the_chat_verbs_arguments_parse_into_what_cmd_chat_reads(teacher: FakeTeacher, capsys: pytest.CaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.core.chat.cli_support import add_chat_arguments

    parser = argparse.ArgumentParser()
    parser.add_argument("--project", type=Path, default=None)
    add_chat_arguments(parser)
    monkeypatch.setenv("OPENAI_API_KEY", teacher.api_key)
    args = parser.parse_args(["--base-url", teacher.base_url, "--model", "fake-teacher", "--temperature", "0.1",
                              "--max-tokens", "9", "--top-p", "0.5", "--input", "Some text.", "Summarise."])
    assert cmd_chat(args) == 0 and capsys.readouterr().out.strip()
    body = teacher.bodies[-1]
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.1, 9, 0.5)
    assert body["messages"] == [{"role": "user", "content": "Summarise.\n\nSome text."}]  # combined for a teacher


def test_cmd_chat_uses_the_projects_server_from_its_info_file(teacher: FakeTeacher, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(teacher.base_url.rsplit(":", 1)[1].split("/")[0])
    catalog = Catalog("/models/x", (ServedModel("fake-teacher", BASE_KIND, None, "alpaca"),))
    write_info(info_path(tmp_path), ServerInfo(pid=os.getpid(), host="127.0.0.1", port=port, catalog=catalog))
    import studio.core.llm.keys as keys

    monkeypatch.setattr(keys, "NO_KEY", teacher.api_key)  # the fake insists on its key; the studio server takes none
    code = cmd_chat(chat_args(project=tmp_path, prompt="Classify.", input="Great film."))
    out, _ = capsys.readouterr()
    assert code == 0 and out.strip()
    # the studio server gets the Alpaca input as its extension
    assert teacher.bodies[-1]["messages"] == [{"role": "user", "content": "Classify.", "input": "Great film."}]

    code = cmd_chat(chat_args(project=tmp_path, model="nope"))
    assert code == 1 and "has no model 'nope'; it serves: fake-teacher" in capsys.readouterr().err


def test_cmd_chat_without_a_server_says_how_to_start_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cmd_chat(chat_args(project=tmp_path))
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: No studio server is running")
    assert f"distill-studio serve --project {tmp_path}" in err and err.count("\n") == 1

    catalog = Catalog("/models/x", (ServedModel("fake-teacher", BASE_KIND, None, "alpaca"),))
    write_info(info_path(tmp_path), ServerInfo(pid=2**22 + 12345, host="127.0.0.1", port=9, catalog=catalog))
    assert cmd_chat(chat_args(project=tmp_path)) == 1  # a file left by a dead server is not a server
    assert "No studio server is running" in capsys.readouterr().err


def test_cmd_chat_reports_an_unreachable_endpoint(capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    assert cmd_chat(chat_args(base_url=dead)) == 1
    assert capsys.readouterr().err == f"error: Cannot reach {dead}: check the base URL and that the server is running.\n"


def test_three_columns_stream_at_once_on_one_loop_each_into_its_own_answer(teacher: FakeTeacher) -> None:
    """What the Chat panel does: one event loop, one client per column, the three streams interleaved."""
    teacher.chunk_delay_s = 0.002
    prompts = ["First column?", "Second column?", "Third column?"]
    seen: list[list[str]] = [[], [], []]
    order: list[int] = []

    async def go() -> list[Answer]:
        clients = [LLMClient(EndpointConfig(base_url=teacher.base_url, model="fake-teacher"), api_key=teacher.api_key)
                   for _ in prompts]

        def on_delta(index: int):
            return lambda text: (seen[index].append(text), order.append(index))

        try:
            return await asyncio.gather(*(
                stream_answer(client, "fake-teacher", [{"role": "user", "content": prompt}], column_for(teacher),
                              on_delta(n), lambda: False)
                for n, (client, prompt) in enumerate(zip(clients, prompts))))
        finally:
            for client in clients:
                await client.aclose()

    answers = asyncio.run(go())
    for n, (answer, prompt) in enumerate(zip(answers, prompts)):
        assert answer.error == "" and answer.text == "".join(seen[n]) == full_text(teacher, prompt)
    firsts = [order.index(n) for n in range(3)]
    lasts = [len(order) - 1 - order[::-1].index(n) for n in range(3)]
    assert max(firsts) < min(lasts)  # every column had text before any finished: they streamed side by side


def test_the_ttft_clock_starts_after_the_http_client_is_built(teacher: FakeTeacher,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the openai client (~0.4 s the first time) is not the model's time to first token."""
    from studio.core.chat import session

    now = [0.0]
    monkeypatch.setattr(session, "_clock", lambda: now[0])
    build = LLMClient._openai

    def slow_build(self: LLMClient):
        if self._client is None:
            now[0] += 100.0  # a (fake-clock) slow client build
        return build(self)

    monkeypatch.setattr(LLMClient, "_openai", slow_build)
    answer, _ = run_stream(teacher, [{"role": "user", "content": "Name two fruits."}])
    assert answer.error == "" and answer.ttft_s is not None
    assert answer.ttft_s < 1.0  # the clock did not run while the client was built
