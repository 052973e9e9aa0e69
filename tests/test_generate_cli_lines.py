"""What ``distill-studio generate`` prints around a stop: the Ctrl+C line for a batch backend, a last
progress line with the final numbers (not stale ones), and a stopped run's message from its backend."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher, respond  # noqa: E402

from studio.cli import main  # noqa: E402
from studio.core.ctrl_c import STOPPING, STOPPING_BATCH  # noqa: E402
from studio.core.generation.backends import BackendContext  # noqa: E402
from studio.core.llm.client import Completion  # noqa: E402
from studio.core.llm.pricing import Usage  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.registry import GENERATION_BACKENDS  # noqa: E402
from studio.core.seeds import Instance, SeedTask  # noqa: E402

WORDS = FakeTeacher()  # only its deterministic answer generator (never started)


class CtrlCSender:
    """A batch-like sender: the first request presses Ctrl+C; it then cannot say what the provider holds."""

    def __init__(self, context: BackendContext):
        self.context = context
        self.answers = 0
        self.pressed = False

    async def send(self, request, *, prior_attempts: int, on_retry, timeout_s: float,
                   params: Mapping[str, Any]) -> Completion:
        if not self.pressed:
            self.pressed = True
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl+C, handled by the CLI on the main thread
        await asyncio.sleep(0.05)
        self.answers += 1
        return Completion(respond(WORDS, request.key, request.prompt), "stop", Usage(100, 200), 0.001, 0.0,
                          prior_attempts + 1)

    def open_work(self) -> bool:
        raise RuntimeError("the plugin lost its list of batches")

    async def aclose(self) -> None:
        pass


class CtrlCBackend:
    key = "ctrl-c-batch"
    price_factor = 0.5
    max_in_flight = None

    def open(self, context: BackendContext) -> CtrlCSender:
        return CtrlCSender(context)


CTRL_C_BACKEND = CtrlCBackend()


@pytest.fixture
def backend() -> Iterator[str]:
    GENERATION_BACKENDS.register("ctrl-c-batch", f"{__name__}:CTRL_C_BACKEND", title="Ctrl+C (test)",
                                 source="test-plugin", replace=True)
    yield "ctrl-c-batch"
    GENERATION_BACKENDS.unregister("ctrl-c-batch")


def test_ctrl_c_on_a_batch_run_says_it_leaves_the_batch_shows_final_numbers_and_the_backends_message(
        project: Project, backend: str, capsys, monkeypatch, default_sigint) -> None:
    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(6)])
    root = project.root
    project.close()
    monkeypatch.setenv("FAKE_KEY", "sk-fake-teacher")
    with FakeTeacher(max_lifetime_s=60) as teacher:
        code = main(["generate", "--project", str(root), "--base-url", teacher.base_url, "--model", "fake-teacher",
                     "--target", "100", "--concurrency", "6", "--backend", backend, "--api-key-env", "FAKE_KEY"])
    out, err = capsys.readouterr()
    assert code == 130, err
    lines = err.splitlines()
    assert STOPPING_BATCH in lines and STOPPING not in lines
    summary = re.match(r"run 1: stopped; kept (\d+), ", out.strip())
    assert summary, out
    progress = [line for line in lines if line.startswith("[")]
    assert progress, err
    last = re.search(r"\] (\d+)/100 kept, .* (\d+) in flight", progress[-1])
    # the final numbers (nothing left in flight), not the first line's "6 in flight" printed just before
    assert last and (last.group(1), last.group(2)) == (summary.group(1), "0"), err
    assert "warning: " in err and "lost its list of batches" in err and "ctrl-c-batch" in err, err
