"""The shared LLM client against a real loopback server: answers, streams, retries, errors, keys, presets."""
from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from email.utils import formatdate
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher, Faults  # noqa: E402

from studio.core.llm import (  # noqa: E402
    EndpointConfig, LLMClient, LLMError, RetryPolicy, StreamEnd, check_connection, list_models, presets,
    resolve_key, store_key,
)
from studio.core.llm import errors  # noqa: E402
from studio.core.llm.pricing import Usage, usage_cost  # noqa: E402

KEY = "sk-fake-teacher"
PROMPT = "Come up with a series of tasks, numbered 1 to 3."
FAST = RetryPolicy(max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def teacher():
    with FakeTeacher(max_lifetime_s=120) as server:
        yield server


def _client(server: FakeTeacher, *, key: str = KEY, retry: RetryPolicy = FAST, model: str = "fake-teacher",
            timeout_s: float = 5.0, **kwargs) -> LLMClient:
    endpoint = EndpointConfig(base_url=server.base_url, model=model, timeout_s=timeout_s)
    return LLMClient(endpoint, api_key=key, retry=retry, prices={"fake-teacher": (1.0, 2.0)}, **kwargs)


# -- complete() ------------------------------------------------------------------------------------------
def test_complete_returns_text_usage_cost_and_latency(teacher: FakeTeacher) -> None:
    done = _client(teacher).complete_sync(PROMPT, temperature=0.5, max_tokens=500)
    assert "Task 1" in done.text and "Task 3" in done.text and "Task 4" not in done.text
    assert done.finish_reason == "stop" and done.attempts == 1 and done.latency_s > 0
    assert done.usage.prompt_tokens == len(PROMPT) // 4 and done.usage.completion_tokens == len(done.text) // 4
    assert done.cost == pytest.approx((done.usage.prompt_tokens * 1.0 + done.usage.completion_tokens * 2.0) / 1e6)


def test_messages_and_headers_reach_the_server(teacher: FakeTeacher) -> None:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": PROMPT}]
    _client(teacher).complete_sync(messages, headers={"X-Distill-Request-Key": "probe-1"})
    assert teacher.requests_by_key["probe-1"] == 1


def test_rate_limits_and_server_errors_are_retried_honouring_retry_after(teacher: FakeTeacher) -> None:
    teacher.faults = Faults(retry_after_s=0.3)
    teacher.faulty_attempts, teacher.fault_cycle = 2, ("rate_limit", "server_error")
    notices = []
    done = _client(teacher, on_retry=notices.append).complete_sync(PROMPT, headers={"X-Distill-Request-Key": "k"})
    assert done.attempts == 3 and teacher.requests_by_key["k"] == 3
    assert [n.error.kind for n in notices] == [errors.RATE, errors.SERVER]
    assert notices[0].delay_s >= 0.3  # the server's Retry-After is a floor
    assert notices[1].delay_s <= 0.05  # our own backoff, capped


def test_retry_after_may_be_an_http_date() -> None:
    now = time.time()
    exc = SimpleNamespace(response=SimpleNamespace(headers={"retry-after": formatdate(now + 30, usegmt=True)}))
    assert 28 <= errors.retry_after_s(exc, now=now) <= 31
    ms = SimpleNamespace(response=SimpleNamespace(headers={"retry-after-ms": "1500", "retry-after": "9"}))
    assert errors.retry_after_s(ms) == 1.5
    assert errors.retry_after_s(SimpleNamespace(response=SimpleNamespace(headers={"retry-after": "soon"}))) is None


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    import random

    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=8.0)
    rng = random.Random(3)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        delays = [policy.delay_s(attempt, None, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 1
    assert policy.delay_s(1, 30.0, rng) == 30.0


def test_gives_up_after_max_attempts_with_the_count(teacher: FakeTeacher) -> None:
    teacher.faulty_attempts, teacher.fault_cycle = 99, ("server_error",)
    with pytest.raises(LLMError) as caught:
        _client(teacher).complete_sync(PROMPT, headers={"X-Distill-Request-Key": "k"})
    assert caught.value.kind == errors.SERVER and caught.value.attempts == 4 == teacher.requests_by_key["k"]
    assert "server error (500)" in caught.value.message


def test_prior_attempts_count_towards_the_limit(teacher: FakeTeacher) -> None:
    teacher.faulty_attempts, teacher.fault_cycle = 99, ("server_error",)
    with pytest.raises(LLMError) as caught:
        _client(teacher).complete_sync(PROMPT, prior_attempts=3, headers={"X-Distill-Request-Key": "k"})
    assert caught.value.attempts == 4 and teacher.requests_by_key["k"] == 1


@pytest.mark.parametrize(("setup", "kind", "words"), [
    ("bad_key", errors.AUTH, "refused the API key (401)"),
    ("quota", errors.QUOTA, "out of quota or credit"),
    ("model", errors.MODEL, "does not know the model 'gpt-99'"),
])
def test_what_no_retry_can_fix_fails_at_once_in_plain_words(teacher: FakeTeacher, setup: str, kind: str,
                                                            words: str) -> None:
    notices = []
    if setup == "quota":
        teacher.quota_after = 0
    client = _client(teacher, key="sk-bad" if setup == "bad_key" else KEY,
                     model="gpt-99" if setup == "model" else "fake-teacher", on_retry=notices.append)
    with pytest.raises(LLMError) as caught:
        client.complete_sync(PROMPT)
    assert caught.value.kind == kind and words in caught.value.message and caught.value.fatal
    assert not notices and teacher.total_requests <= 1


def test_a_refused_connection_before_any_answer_is_not_retried() -> None:
    notices = []
    endpoint = EndpointConfig(base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m", timeout_s=2)
    with pytest.raises(LLMError) as caught:
        LLMClient(endpoint, api_key="k", retry=FAST, on_retry=notices.append).complete_sync(PROMPT)
    assert caught.value.kind == errors.NETWORK and "Cannot reach" in caught.value.message and not notices


def test_a_stalled_answer_is_a_timeout_and_retried(teacher: FakeTeacher) -> None:
    teacher.faults = Faults(stall_s=1.5)
    teacher.faulty_attempts, teacher.fault_cycle = 1, ("stall",)
    notices = []
    done = _client(teacher, on_retry=notices.append).complete_sync(PROMPT, timeout_s=0.5)
    assert [n.error.kind for n in notices] == [errors.TIMEOUT] and done.attempts == 2
    assert "did not answer in time" in notices[0].error.message


# -- stream() --------------------------------------------------------------------------------------------
def test_stream_yields_deltas_then_usage_and_finish(teacher: FakeTeacher) -> None:
    whole = _client(teacher).complete_sync(PROMPT, headers={"X-Distill-Request-Key": "same"}).text
    items = list(_client(teacher).stream_sync(PROMPT, headers={"X-Distill-Request-Key": "same"}))
    deltas, end = items[:-1], items[-1]
    assert len(deltas) > 10 and all(isinstance(d, str) and d for d in deltas)
    assert isinstance(end, StreamEnd) and "".join(deltas) == end.text == whole
    assert end.finish_reason == "stop" and end.usage == Usage(len(PROMPT) // 4, len(whole) // 4)
    assert end.cost == pytest.approx(usage_cost({"fake-teacher": (1.0, 2.0)}, "fake-teacher", end.usage))


def test_stream_is_async_and_retries_before_the_first_delta(teacher: FakeTeacher) -> None:
    teacher.faulty_attempts, teacher.fault_cycle = 1, ("rate_limit",)
    teacher.faults = Faults(retry_after_s=0.01)

    async def collect() -> list:
        async with _client(teacher) as client:
            return [item async for item in client.stream(PROMPT, headers={"X-Distill-Request-Key": "s"})]

    items = asyncio.run(collect())
    assert items[-1].attempts == 2 and teacher.requests_by_key["s"] == 2
    assert "".join(items[:-1]) == items[-1].text


def test_a_stream_cut_mid_answer_raises_instead_of_retrying(teacher: FakeTeacher) -> None:
    teacher.stream_break_after = 3
    seen: list = []
    with pytest.raises(LLMError) as caught:
        for item in _client(teacher).stream_sync(PROMPT, headers={"X-Distill-Request-Key": "cut"}):
            seen.append(item)
    assert len(seen) == 3 and teacher.requests_by_key["cut"] == 1  # shown text is never replaced by a retry
    assert caught.value.kind == errors.NETWORK


# -- models and the connection test ----------------------------------------------------------------------
def test_models_and_connection_messages(teacher: FakeTeacher) -> None:
    assert list_models(EndpointConfig(base_url=teacher.base_url, api_key=KEY)) == ["fake-small", "fake-teacher"]
    ok = check_connection(EndpointConfig(base_url=teacher.base_url, model="fake-teacher", api_key=KEY))
    assert ok.ok and "fake-small" in ok.models and "API key from the key field" in ok.message
    bad_key = check_connection(EndpointConfig(base_url=teacher.base_url, model="fake-teacher", api_key="nope"))
    assert not bad_key.ok and bad_key.error.kind == "auth" and "API key" in bad_key.message
    unknown = check_connection(EndpointConfig(base_url=teacher.base_url, model="gpt-99", api_key=KEY))
    assert not unknown.ok and unknown.error.kind == "model" and "gpt-99" in unknown.message
    no_api = check_connection(EndpointConfig(base_url=teacher.base_url[:-3], model="fake-teacher", api_key=KEY))
    assert not no_api.ok and "ends in /v1" in no_api.message
    down = check_connection(EndpointConfig(base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m", api_key=KEY),
                            timeout_s=2)
    assert not down.ok and down.error.kind == "network" and "Cannot reach" in down.message


# -- keys ----------------------------------------------------------------------------------------------------
def test_key_order_typed_keyring_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring

    stored: dict = {}
    monkeypatch.setattr(keyring, "get_password", lambda service, url: stored.get((service, url)))
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-from-env")
    config = EndpointConfig(base_url="http://h/v1", api_key_env="MY_TEACHER_KEY")
    assert resolve_key(config).value == "sk-from-env" and resolve_key(config).describe() == "API key from $MY_TEACHER_KEY"
    stored[("distill-studio", "http://h/v1")] = "sk-from-keyring"
    assert resolve_key(config).value == "sk-from-keyring" and resolve_key(config).source == "the OS keyring"
    config.api_key = "sk-typed"
    assert resolve_key(config).value == "sk-typed" and "sk-typed" not in repr(resolve_key(config))


def test_no_key_is_said_in_words_a_user_understands(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.errors import NoKeyringError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(keyring, "get_password", lambda *a: None)
    empty = resolve_key(EndpointConfig())
    assert not empty.found and empty.describe() == (
        "No API key (none in the OS keyring, $OPENAI_API_KEY unset) — fine for local servers")

    def no_backend(*args: object) -> None:
        raise NoKeyringError("no backend")

    monkeypatch.setattr(keyring, "get_password", no_backend)
    assert resolve_key(EndpointConfig()).describe() == (
        "No API key (no OS keyring on this system, $OPENAI_API_KEY unset) — fine for local servers")
    monkeypatch.setattr(keyring, "set_password", no_backend)
    assert "No OS keyring is available on this system" in store_key("http://127.0.0.1:1/v1", "sk-x")


def test_an_endpoint_config_never_serialises_its_key() -> None:
    config = EndpointConfig(base_url="http://h/v1", model="m", api_key="sk-SECRET",
                            extra_headers={"Authorization": "Bearer sk-SECRET", "X-Api-Key": "sk-SECRET", "X-Team": "b"})
    text = json.dumps(config.to_dict())
    assert "sk-SECRET" not in text and "X-Team" in text and "sk-SECRET" not in repr(config)
    assert EndpointConfig.from_dict(config.to_dict()).api_key is None


# -- presets -------------------------------------------------------------------------------------------------
def test_presets_are_registry_entries() -> None:
    from studio.core.registry import ENDPOINT_KINDS

    known = presets()
    assert list(known) == ENDPOINT_KINDS.keys()
    assert {"openai", "vllm", "ollama", "llama-cpp", "lm-studio", "distill-studio"} <= set(known)
    assert known["distill-studio"].base_url == "http://127.0.0.1:8765/v1" and not known["distill-studio"].needs_key
    assert known["openai"].needs_key and EndpointConfig.from_preset(known["ollama"]).base_url.endswith(":11434/v1")


# -- the CLI ---------------------------------------------------------------------------------------------------
def test_cli_lists_endpoint_kinds_and_an_endpoints_models(teacher: FakeTeacher, capsys, monkeypatch) -> None:
    from studio.cli import main

    assert main(["endpoints"]) == 0
    out = capsys.readouterr().out
    assert "distill-studio" in out and "http://127.0.0.1:8765/v1" in out and "OpenAI (needs a key)" in out
    monkeypatch.setenv("TEACHER_KEY", KEY)
    assert main(["models", "--base-url", teacher.base_url, "--api-key-env", "TEACHER_KEY"]) == 0
    out, err = capsys.readouterr()
    assert out.split() == ["fake-small", "fake-teacher"] and "API key from $TEACHER_KEY" in err
    monkeypatch.setenv("TEACHER_KEY", "sk-bad")
    assert main(["models", "--base-url", teacher.base_url, "--api-key-env", "TEACHER_KEY"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: The teacher at")


# -- wording: who the server is, what it said, a base URL without /v1 (QA of issue 10) ---------------------

def test_the_role_names_the_server_in_every_message(teacher: FakeTeacher) -> None:
    client = _client(teacher, model="runA", role="the model server")
    with pytest.raises(LLMError) as caught:
        client.complete_sync(PROMPT)
    assert caught.value.kind == errors.MODEL
    assert caught.value.message.startswith("The model server does not know the model 'runA' (404)")
    assert "teacher" not in caught.value.message


def test_a_rejected_request_says_what_the_server_said_once(teacher: FakeTeacher) -> None:
    teacher.faulty_attempts, teacher.fault_cycle = 99, ("bad_request",)
    with pytest.raises(LLMError) as caught:
        _client(teacher).complete_sync(PROMPT, headers={"X-Distill-Request-Key": "k"})
    assert caught.value.message == ("The teacher rejected the request (400): "
                                    "max_tokens is too large for this model")
    assert "Error code" not in caught.value.message


def test_a_404_for_the_path_asks_about_v1(teacher: FakeTeacher) -> None:
    endpoint = EndpointConfig(base_url=teacher.base_url.removesuffix("/v1"), model="fake-teacher", timeout_s=5)
    with pytest.raises(LLMError) as caught:
        LLMClient(endpoint, api_key=KEY, retry=FAST, role="the endpoint").complete_sync(PROMPT)
    assert "no such API path" in caught.value.message and "does the base URL end in /v1?" in caught.value.message
    assert caught.value.message.startswith("The endpoint at ") and "does not know the model" not in caught.value.message
