"""Chat conversations: what each column talks to and with which settings, and every turn's answers.

A conversation is one row of ``conversations`` (schema v7): the title and mode as columns,
the columns and turns as one JSON document. It is read and saved whole, in one statement, so
a crash never leaves half a conversation; every save publishes ``changes.CONVERSATIONS`` so the
list in the Chat panel follows saves from any thread.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from studio.core.changes import CONVERSATIONS, ChangeFeed
from studio.core.chat.sources import ModelSource
from studio.core.db import transaction
from studio.core.errors import StudioError

CHAT, ALPACA = "chat", "alpaca"
MODES = (CHAT, ALPACA)
DATA_VERSION = 1  # of the JSON document in ``data``


class UnknownConversationError(StudioError):
    """An id names no conversation in this project."""

    def __init__(self, conversation_id: int):
        self.conversation_id = conversation_id
        super().__init__(f"No conversation #{conversation_id} in this project; it may have been deleted.")


@dataclass
class ColumnSpec:
    """One column: the model it talks to and its sampling settings."""

    source: ModelSource
    system: str = ""
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512

    def to_dict(self) -> dict:
        return {"source": self.source.to_dict(), "system": self.system, "temperature": self.temperature,
                "top_p": self.top_p, "max_tokens": self.max_tokens}

    @classmethod
    def from_dict(cls, data: dict) -> ColumnSpec:
        return cls(source=ModelSource.from_dict(data.get("source") or {}), system=str(data.get("system") or ""),
                   temperature=float(data.get("temperature", 0.7)), top_p=float(data.get("top_p", 1.0)),
                   max_tokens=int(data.get("max_tokens", 512)))


@dataclass
class Answer:
    """One column's answer to one turn; ``error`` is the plain reason when it failed (text may be partial)."""

    text: str = ""
    finish_reason: str | None = None    # "stop", "length", ... or "cancelled" (Stop pressed)
    error: str = ""
    ttft_s: float | None = None         # time to first token
    tokens: int = 0                     # completion tokens: the server's usage, else the deltas counted
    tokens_per_s: float | None = None   # decode speed, after the first token
    seed_id: int | None = None          # the seed task made from it ("use as a seed task")
    sample_id: int | None = None        # the sample made from it ("send to Curate")

    def to_dict(self) -> dict:
        return {"text": self.text, "finish_reason": self.finish_reason, "error": self.error,
                "ttft_s": _finite(self.ttft_s), "tokens": self.tokens, "tokens_per_s": _finite(self.tokens_per_s),
                "seed_id": self.seed_id,
                "sample_id": self.sample_id}

    @classmethod
    def from_dict(cls, data: dict) -> Answer:
        return cls(text=str(data.get("text") or ""), finish_reason=data.get("finish_reason"),
                   error=str(data.get("error") or ""), ttft_s=_float_or_none(data.get("ttft_s")),
                   tokens=int(data.get("tokens") or 0), tokens_per_s=_float_or_none(data.get("tokens_per_s")),
                   seed_id=_int_or_none(data.get("seed_id")), sample_id=_int_or_none(data.get("sample_id")))


@dataclass
class Turn:
    """What the user sent (the Alpaca form's optional input too) and one Answer per column."""

    user: str
    input: str = ""
    answers: list[Answer] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"user": self.user, "input": self.input, "answers": [a.to_dict() for a in self.answers]}

    @classmethod
    def from_dict(cls, data: dict) -> Turn:
        return cls(user=str(data.get("user") or ""), input=str(data.get("input") or ""),
                   answers=[Answer.from_dict(a) for a in data.get("answers") or []])


@dataclass
class Conversation:
    id: int | None
    title: str
    mode: str                       # CHAT or ALPACA
    columns: list[ColumnSpec]
    turns: list[Turn] = field(default_factory=list)
    created_at: float = 0
    updated_at: float = 0

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "mode": self.mode, "columns": [c.to_dict() for c in self.columns],
                "turns": [t.to_dict() for t in self.turns], "created_at": self.created_at,
                "updated_at": self.updated_at}

    @classmethod
    def from_dict(cls, data: dict) -> Conversation:
        return cls(id=_int_or_none(data.get("id")), title=str(data.get("title") or ""),
                   mode=str(data.get("mode") or CHAT),
                   columns=[ColumnSpec.from_dict(c) for c in data.get("columns") or []],
                   turns=[Turn.from_dict(t) for t in data.get("turns") or []],
                   created_at=float(data.get("created_at") or 0), updated_at=float(data.get("updated_at") or 0))

    def answer(self, turn: int, column: int) -> Answer:
        """The answer of ``column`` to ``turn``; IndexError names what is out of range."""
        if not 0 <= turn < len(self.turns):
            raise IndexError(f"turn {turn} out of range: the conversation has {len(self.turns)} turns")
        answers = self.turns[turn].answers
        if not 0 <= column < len(answers):
            raise IndexError(f"column {column} out of range: turn {turn} has {len(answers)} answers")
        return answers[column]


@dataclass(frozen=True)
class ConversationSummary:
    """A row of the conversation list."""

    id: int
    title: str
    mode: str
    turns: int
    updated_at: float


def default_title(text: str, limit: int = 60) -> str:
    """A title from the first prompt: its first line, shortened at a word."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    if len(line) <= limit:
        return line or "New conversation"
    return line[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def _document(conversation: Conversation) -> str:
    if conversation.mode not in MODES:
        raise StudioError(f"Unknown conversation mode {conversation.mode!r}; modes: {', '.join(MODES)}.")
    data = {"version": DATA_VERSION, "columns": [c.to_dict() for c in conversation.columns],
            "turns": [t.to_dict() for t in conversation.turns]}
    return json.dumps(data, ensure_ascii=False)


def _row_to_conversation(row: sqlite3.Row) -> Conversation:
    data: dict[str, Any] = json.loads(row["data"])
    return Conversation(id=row["id"], title=row["title"], mode=row["mode"],
                        columns=[ColumnSpec.from_dict(c) for c in data.get("columns") or []],
                        turns=[Turn.from_dict(t) for t in data.get("turns") or []],
                        created_at=row["created_at"] or 0.0, updated_at=row["updated_at"] or 0.0)


class ConversationRepository:
    """The project's saved conversations; every write commits and publishes CONVERSATIONS."""

    def __init__(self, conn: sqlite3.Connection, changes: ChangeFeed | None = None):
        self._conn = conn
        self._changes = changes or ChangeFeed()

    def create(self, conversation: Conversation) -> Conversation:
        """Store a new conversation; gives it its id and times (the same object is returned)."""
        now = time.time()
        document = _document(conversation)
        with transaction(self._conn):
            cursor = self._conn.execute(
                "INSERT INTO conversations (title, mode, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (conversation.title, conversation.mode, document, now, now))
        conversation.id = cursor.lastrowid
        conversation.created_at = conversation.updated_at = now
        self._changes.publish(CONVERSATIONS)
        return conversation

    def save(self, conversation: Conversation) -> None:
        """Write the whole conversation in one statement (insert when it has no id yet); bumps updated_at.

        A conversation deleted meanwhile (another window, the CLI) is stored again under its id
        rather than lost: the user was still looking at it.
        """
        if conversation.id is None:
            self.create(conversation)
            return
        now = max(time.time(), conversation.updated_at)
        created = conversation.created_at or now
        document = _document(conversation)
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO conversations (id, title, mode, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET title = excluded.title, mode = excluded.mode, data = excluded.data,"
                " updated_at = excluded.updated_at",
                (conversation.id, conversation.title, conversation.mode, document, created, now))
        conversation.created_at, conversation.updated_at = created, now
        self._changes.publish(CONVERSATIONS)

    def get(self, conversation_id: int) -> Conversation:
        row = self._conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise UnknownConversationError(conversation_id)
        return _row_to_conversation(row)

    def list(self) -> list[ConversationSummary]:
        """Every conversation, the most recently saved first."""
        rows = self._conn.execute(
            "SELECT id, title, mode, coalesce(json_array_length(data, '$.turns'), 0) AS turns, updated_at"
            " FROM conversations ORDER BY updated_at DESC, id DESC").fetchall()
        return [ConversationSummary(row["id"], row["title"], row["mode"], row["turns"], row["updated_at"] or 0.0)
                for row in rows]

    def count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]

    def rename(self, conversation_id: int, title: str) -> None:
        title = title.strip()
        if not title:
            raise StudioError("A conversation needs a title; type one.")
        with transaction(self._conn):
            cursor = self._conn.execute("UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
                                        (title, time.time(), conversation_id))
            if cursor.rowcount == 0:
                raise UnknownConversationError(conversation_id)
        self._changes.publish(CONVERSATIONS)

    def delete(self, conversation_id: int) -> None:
        with transaction(self._conn):
            cursor = self._conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            if cursor.rowcount == 0:
                raise UnknownConversationError(conversation_id)
        self._changes.publish(CONVERSATIONS)


def _finite(value: float | None) -> float | None:
    """JSON (and SQLite's json_valid) has no NaN or infinity: such a timing is stored as unknown."""
    return value if value is None or math.isfinite(value) else None


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
