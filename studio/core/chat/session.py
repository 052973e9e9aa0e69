"""One chat exchange: the messages a column sends, streaming its answer, and answers kept as data.

Pure asyncio over :class:`studio.core.llm.LLMClient` (no Qt): the Chat panel runs
:func:`stream_answer` for each column on a worker's event loop, ``distill-studio chat`` runs it
with ``asyncio.run``, and Evaluate can reuse it as is.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from studio.core.chat.conversations import Answer, ColumnSpec, Conversation
from studio.core.errors import StudioError
from studio.core.llm.client import LLMClient, StreamEnd
from studio.core.llm.errors import NETWORK, TIMEOUT, LLMError, from_openai

if TYPE_CHECKING:
    from studio.core.project import Project

CANCELLED = "cancelled"  # Answer.finish_reason when Stop ended the stream
FROM_CHAT_TAG = "from-chat"
POLL_CANCEL_S = 0.05      # how often a stream that has sent nothing yet looks at ``cancelled``
_clock = time.monotonic   # the timings' clock (a test replaces it; asyncio's own stays real)


# -- messages -----------------------------------------------------------------------------------
def combined_user_content(instruction: str, input: str) -> str:
    """The Alpaca form as one user message, as the chat prompt format writes it (instruction, blank line, input)."""
    from studio.core.training.prompt_format import load_format, user_message

    return user_message(load_format("chat"), instruction, input)


def user_turn(instruction: str, input: str, *, studio_server: bool) -> dict:
    """A user message; the studio server takes the input as its ``input`` extension and renders it itself."""
    if not input:
        return {"role": "user", "content": instruction}
    if studio_server:
        return {"role": "user", "content": instruction, "input": input}
    return {"role": "user", "content": combined_user_content(instruction, input)}


def messages_for(conversation: Conversation, column: int, *, studio_server: bool) -> list[dict]:
    """What ``column`` sends for the conversation's last turn: its system prompt, every earlier turn
    with this column's own answer as the assistant's, then the last user turn.

    Each column sees only its own answers, so three models hold three separate conversations.
    An earlier turn this column has no text for (it failed, or was stopped before any) is left
    out whole: two user turns in a row confuse chat templates, and the model never said it.
    """
    if not 0 <= column < len(conversation.columns):
        raise IndexError(f"column {column} out of range: the conversation has {len(conversation.columns)} columns")
    if not conversation.turns:
        raise StudioError("The conversation has no prompt to answer yet.")
    spec = conversation.columns[column]
    messages: list[dict] = []
    if spec.system.strip():
        messages.append({"role": "system", "content": spec.system})
    for turn in conversation.turns[:-1]:
        answer = turn.answers[column] if column < len(turn.answers) else None
        if answer is None or not answer.text:
            continue
        messages.append(user_turn(turn.user, turn.input, studio_server=studio_server))
        messages.append({"role": "assistant", "content": answer.text})
    last = conversation.turns[-1]
    messages.append(user_turn(last.user, last.input, studio_server=studio_server))
    return messages


# -- streaming ----------------------------------------------------------------------------------
async def stream_answer(client: LLMClient, model: str, messages: list[dict], column: ColumnSpec,
                        on_delta: Callable[[str], None], cancelled: Callable[[], bool]) -> Answer:
    """Stream one answer, calling ``on_delta`` with each piece of text as it arrives.

    Never raises for the endpoint's failures: an unreachable server, a refused key or an
    unknown model come back as ``Answer.error`` in plain words (with whatever text had arrived).
    ``cancelled`` is polled while waiting and after every delta; once true the HTTP stream is
    closed (the server sees the client leave and frees its slot) and the answer ends with
    ``finish_reason == "cancelled"``. ``tokens`` is the server's usage count when it sends one,
    else the number of deltas; ``tokens_per_s`` is the decode speed after the first token; the
    clock starts once the HTTP client exists, right before the request goes out.
    The client is left open (the caller owns it and its event loop).
    """
    answer = Answer()
    client.warm()  # building the openai client costs ~0.4 s the first time: not the model's time to first token
    started = _clock()
    first_at: float | None = None
    last_at: float | None = None
    deltas = 0
    parts: list[str] = []
    end: StreamEnd | None = None

    async def consume() -> None:
        nonlocal first_at, last_at, deltas, end
        items = client.stream(messages, model=model, temperature=column.temperature, top_p=column.top_p,
                              max_tokens=column.max_tokens)
        try:
            async for item in items:
                if isinstance(item, StreamEnd):
                    end = item
                    continue
                now = _clock()
                if first_at is None:
                    first_at = now
                last_at = now
                deltas += 1
                parts.append(item)
                on_delta(item)
                if cancelled():
                    return
        finally:
            await items.aclose()  # closes the HTTP response: a stopped answer stops the server's generation

    if cancelled():
        answer.finish_reason = CANCELLED
        return answer
    task = asyncio.ensure_future(consume())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=POLL_CANCEL_S)
            if not task.done() and cancelled():  # nothing arrived yet (or a delta is slow): stop waiting
                task.cancel()
                await asyncio.wait({task})
        if not task.cancelled():
            task.result()  # the stream's own failure, if any
    except asyncio.CancelledError:  # the caller's task is cancelled: end the stream with it
        task.cancel()
        raise
    except LLMError as exc:
        # openai reports a connection lost mid-answer like one never made: say which it was
        answer.error = _broke_off(client) if parts and exc.kind in (NETWORK, TIMEOUT) else exc.message
    except Exception as exc:  # noqa: BLE001 - a broken stream (httpx) is an answer's error, not a crash
        answer.error = _stream_error(client, exc)
    answer.text = "".join(parts)
    if end is not None:
        answer.finish_reason = end.finish_reason
    elif not answer.error:
        answer.finish_reason = CANCELLED
    if first_at is not None:
        answer.ttft_s = first_at - started
    answer.tokens = end.usage.completion_tokens if end is not None and end.usage.completion_tokens else deltas
    if first_at is not None and last_at is not None and last_at > first_at and answer.tokens > 1:
        answer.tokens_per_s = (answer.tokens - 1) / (last_at - first_at)
    return answer


def _broke_off(client: LLMClient) -> str:
    return f"The connection to {client.endpoint.base_url} broke off in the middle of the answer; try again."


def _stream_error(client: LLMClient, exc: BaseException) -> str:
    import httpx

    where = client.endpoint.base_url
    if isinstance(exc, (httpx.TransportError, httpx.StreamError)):
        return _broke_off(client)
    return from_openai(exc, base_url=where, model=client.endpoint.model, role=client.role).message


# -- answers kept as data ----------------------------------------------------------------------------
def answer_to_seed(project: Project, conversation: Conversation, turn: int, column: int) -> int:
    """A new seed task from an answer: the prompt as instruction, the Alpaca input, the answer as output.

    Tagged ``from-chat``; the answer remembers the seed's id (saved with the conversation when
    it has been saved before).
    """
    from studio.core.seeds import Instance, SeedTask

    answer = _usable(conversation, turn, column)
    asked = conversation.turns[turn]
    seed = SeedTask(instruction=asked.user.strip(), instances=[Instance(input=asked.input.strip(),
                                                                         output=answer.text.strip())],
                    tags=[FROM_CHAT_TAG])
    seed_id = project.seeds.add(seed)
    answer.seed_id = seed_id
    if conversation.id is not None:
        project.conversations.save(conversation)
    return seed_id


def answer_to_sample(project: Project, conversation: Conversation, turn: int, column: int) -> int:
    """A pending sample in Curate from an answer (origin manual, the column's model as teacher, tag ``from-chat``).

    The same answer sent twice is one sample: the existing sample's id is returned.
    """
    from studio.core.samples import Origin, Sample, Status, content_hash

    answer = _usable(conversation, turn, column)
    asked = conversation.turns[turn]
    source = conversation.columns[column].source
    sample = Sample(instruction=asked.user.strip(), input=asked.input.strip(), output=answer.text.strip(),
                    status=Status.PENDING, origin=Origin.MANUAL, teacher_model=source.model or source.label or None,
                    tags=[FROM_CHAT_TAG],
                    source=f"chat #{conversation.id}" if conversation.id is not None else "chat")
    sample_id = project.samples.add(sample)
    if sample_id is None:  # exactly this text is already a sample
        row = project.conn.execute("SELECT id FROM samples WHERE content_hash = ?",
                                   (content_hash(sample.instruction, sample.input, sample.output),)).fetchone()
        sample_id = int(row[0])
    answer.sample_id = sample_id
    if conversation.id is not None:
        project.conversations.save(conversation)
    return sample_id


def _usable(conversation: Conversation, turn: int, column: int) -> Answer:
    answer = conversation.answer(turn, column)
    if not conversation.turns[turn].user.strip():
        raise StudioError("This turn has no prompt, so its answer cannot become a task.")
    if not answer.text.strip():
        raise StudioError("This answer is empty; there is nothing to keep.")
    return answer
