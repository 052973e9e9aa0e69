"""Telling a studio server from any other endpoint, so ``chat --base-url`` sends the Alpaca input as the
studio's ``input`` extension (chat == training), and the CLI's notes about the API key (QA of issue 10)."""
from __future__ import annotations

import argparse
import socket
import subprocess
from pathlib import Path

import pytest

from studio.core.chat import sources
from studio.core.chat.cli_support import cmd_chat
from studio.core.chat.sources import ENDPOINT, ModelSource, is_studio_endpoint, is_studio_server
from studio.core.serving import launch
from tests.fake_teacher import FakeTeacher
from tests.serve_support import fake_program


@pytest.fixture
def studio_server(tmp_path: Path):
    info_file = tmp_path / "elsewhere" / "server.json"
    child = subprocess.Popen(fake_program("--info-file", str(info_file), "--port", "0", "--reply", "[{prompt}]"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield launch.wait_ready(info_file, child.pid, timeout_s=30)
    finally:
        child.terminate()
        child.wait(10)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_studio_endpoints", {})


def chat_args(**values) -> argparse.Namespace:
    defaults = {"project": None, "base_url": None, "model": "base-model", "system": "", "input": "",
                "temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "api_key_env": None, "prompt": "Hi"}
    defaults.update(values)
    return argparse.Namespace(**defaults)


def dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


def test_a_studio_server_is_recognised_by_its_health_and_cached(studio_server, tmp_path: Path) -> None:
    assert is_studio_endpoint(studio_server.url) and is_studio_endpoint(studio_server.url.removesuffix("/v1"))
    assert sources._studio_endpoints == {launch.server_root(studio_server.url): True}
    source = ModelSource(ENDPOINT, "x", base_url=studio_server.url, model="base-model")
    assert not is_studio_server(source, None)  # the GUI thread's call does not probe
    assert is_studio_server(source, None, probe=True)


def test_other_endpoints_are_not_studio_servers() -> None:
    with FakeTeacher() as teacher:  # answers /health with 401 (it wants its key): an answer, cached
        assert not is_studio_endpoint(teacher.base_url)
        assert sources._studio_endpoints == {launch.server_root(teacher.base_url): False}
    url = dead_url()
    assert not is_studio_endpoint(url, timeout_s=0.5)
    assert launch.server_root(url) not in sources._studio_endpoints  # not answering: asked again next time


def test_chat_base_url_to_a_studio_server_sends_the_input_apart(studio_server, capsys: pytest.CaptureFixture) -> None:
    code = cmd_chat(chat_args(base_url=studio_server.url, prompt="Summarise.", input="Some text."))
    out, err = capsys.readouterr()
    assert code == 0, err
    # the fake echoes the last user message's content: the instruction alone, the input went as the extension
    assert out == "[Summarise.]\n"


def test_an_unset_api_key_variable_is_said(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with FakeTeacher(api_key="") as teacher:
        cmd_chat(chat_args(base_url=teacher.base_url, model="fake-teacher", api_key_env="NO_SUCH_KEY_VAR"))
    err = capsys.readouterr().err
    assert "NO_SUCH_KEY_VAR is not set; sending no API key" in err


def test_api_key_env_without_base_url_is_said_to_be_ignored(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cmd_chat(chat_args(project=tmp_path, api_key_env="MY_KEY")) == 1  # no server either
    err = capsys.readouterr().err
    assert "--api-key-env is ignored without --base-url" in err and "No studio server is running" in err
