"""Tokens that come faster than the stream interval travel as one SSE chunk; the text is the same."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")

from studio.serve.app import Mailbox, _stream  # noqa: E402 - after the skip


def _chunks(interval_s: float, tokens: list[str], gap_s: float) -> list[dict]:
    async def run() -> list[dict]:
        events = Mailbox(asyncio.get_running_loop())
        job = SimpleNamespace(cancel=threading.Event())

        def produce() -> None:
            for token in tokens:
                events.put(("text", token))
                time.sleep(gap_s)
            events.put(("done", "stop", 3, len(tokens)))

        producer = threading.Thread(target=produce)
        producer.start()
        lines = [line async for line in _stream(job, events, "chatcmpl-1", 0, "m", True, False, None, interval_s)]
        producer.join()
        return [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: {")]

    return asyncio.run(run())


def _text(chunks: list[dict]) -> tuple[str, int]:
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    texts = [t for t in contents if t]
    return "".join(texts), len(texts)


def test_fast_tokens_are_grouped_per_interval_with_the_same_text() -> None:
    tokens = [f"t{i} " for i in range(60)]
    grouped, grouped_count = _text(_chunks(0.03, tokens, gap_s=0.002))
    assert grouped == "".join(tokens)
    assert grouped_count < len(tokens) / 3  # ~120 ms of tokens in 30 ms windows: a handful of chunks

    alone, alone_count = _text(_chunks(0.0, tokens[:10], gap_s=0.02))  # no interval, slow tokens: one chunk each
    assert alone == "".join(tokens[:10]) and alone_count >= 8  # (two may meet if this machine stalls the loop)

