"""Chat core against the real studio server (``python -m studio.serve``) on the tiny fixture model:
the sources it offers, an Alpaca turn with the ``input`` extension to base and student, Stop
mid-answer freeing the slot, an unknown model, and ``distill-studio chat`` through the info file."""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("studio.serve", reason="the model server (issue 10, part 1) is not in this tree")

from studio.core.chat.cli_support import cmd_chat
from studio.core.chat.conversations import ALPACA, Answer, ColumnSpec, Conversation, Turn
from studio.core.chat.session import CANCELLED, messages_for, stream_answer
from studio.core.chat.sources import BASE, RUN, ModelSource, client_for, list_sources
from studio.core.project import Project
from studio.core.serving.server_info import ServerInfo, info_path, read_info
from tests.serve_support import peft_student

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(tmp_path: Path, tiny_base: Path):
    with Project.create(tmp_path / "project") as project:
        run = peft_student(project, tiny_base)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        process = subprocess.Popen([sys.executable, "-m", "studio.serve", "--project", str(project.root),
                                    "--port", "0", "--threads", "1", "--device", "cpu"],
                                   cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            info = None
            deadline = time.monotonic() + 180
            while info is None and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
                info = read_info(info_path(project.root))
            assert info is not None, process.stderr.read() if process.poll() is not None else "server not ready"
            yield project, run, info
        finally:
            process.terminate()
            process.wait(30)


def stream(info: ServerInfo, source: ModelSource, messages: list[dict], *, max_tokens: int = 24,
           cancel_after: int | None = None) -> Answer:
    deltas: list[str] = []
    client, model = client_for(source, info)
    column = ColumnSpec(source, temperature=0.0, max_tokens=max_tokens)

    async def go() -> Answer:
        try:
            return await stream_answer(client, model, messages, column, deltas.append,
                                       lambda: cancel_after is not None and len(deltas) >= cancel_after)
        finally:
            await client.aclose()

    answer = asyncio.run(go())
    assert answer.text == "".join(deltas)
    return answer


def test_chat_core_with_the_real_server(served, capsys: pytest.CaptureFixture) -> None:
    project, run, info = served
    sources = list_sources(project, info)
    assert [(s.kind, s.run_id) for s in sources] == [(BASE, None), (RUN, run.id)]
    base, student = sources

    talk = Conversation(None, "t", ALPACA, [ColumnSpec(base), ColumnSpec(student)])
    talk.turns.append(Turn("Classify the sentiment.", "I loved it.", [Answer(), Answer()]))
    answers = [stream(info, source, messages_for(talk, n, studio_server=True)) for n, source in enumerate(sources)]
    for answer in answers:
        assert answer.error == "" and answer.text and answer.finish_reason in ("stop", "length")
        assert answer.tokens > 0 and answer.ttft_s is not None
    assert answers[0].text != answers[1].text  # one base in memory, the adapter on or off per request

    stopped = stream(info, student, [{"role": "user", "content": "Tell a long story."}], max_tokens=400,
                     cancel_after=2)
    assert stopped.finish_reason == CANCELLED and stopped.error == ""
    again = stream(info, student, [{"role": "user", "content": "Again?"}])  # the slot was freed
    assert again.error == "" and again.text

    code = cmd_chat(argparse.Namespace(project=project.root, base_url=None, model="student", system="",
                                       input="", temperature=0.0, top_p=1.0, max_tokens=12,
                                       api_key_env="OPENAI_API_KEY", prompt="Say hi."))
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() and "tokens" in err
    assert cmd_chat(argparse.Namespace(project=project.root, base_url=info.url, model="nope", system="", input="",
                                       temperature=0.0, top_p=1.0, max_tokens=4, api_key_env="OPENAI_API_KEY",
                                       prompt="x")) == 1
    assert "'nope' (404)" in capsys.readouterr().err
