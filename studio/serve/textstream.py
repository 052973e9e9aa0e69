"""Token ids to streamed text: incremental detokenization and stop strings, with nothing held longer than needed.

Decoding the whole answer again at every token is quadratic; decoding one token alone loses
the leading space SentencePiece tokenizers attach to a word and splits multi-byte characters.
So each new token is decoded in a short window after the previous one (the usual incremental
scheme) and text ending in a replacement character waits for its next byte. Text that could be
the start of a stop string is held back until it is known not to be one, so a stop string
never reaches the client. Pure Python: ``decode`` is ``tokenizer.decode`` bound by the caller.

Byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, SmolLM) need no window: each token stands for
fixed bytes, so :func:`byte_level_pieces` maps an id to its bytes once (cached) and an
incremental UTF-8 decoder joins them, holding only an unfinished character. That is the same
text as ``tokenizer.decode`` of the whole answer, for a fraction of the cost per token.
"""
from __future__ import annotations

import codecs
import threading
from collections.abc import Callable, Sequence
from typing import Any

Decode = Callable[[list[int]], str]
Pieces = Callable[[int], bytes]


class TextStream:
    """Feed generated token ids with :meth:`add`; each call returns the text now safe to send."""

    def __init__(self, decode: Decode, stops: Sequence[str] = (), prompt_tail: Sequence[int] = (),
                 pieces: Pieces | None = None):
        self._decode = decode
        self._pieces = pieces               # byte-level tokenizers: id -> bytes, no window needed
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace") if pieces else None
        self._stops = [stop for stop in stops if stop]
        self._longest = max((len(stop) for stop in self._stops), default=0)
        self._starts = {stop[:size] for stop in self._stops for size in range(1, len(stop))}
        self._ids = list(prompt_tail)       # a few prompt tokens give the first word its leading space
        self._prefix = 0
        self._read = len(self._ids)
        self.text = ""                      # all text decoded so far (may run past a stop string)
        self._sent = 0                      # how much of ``text`` has been returned
        self.stopped = False                # a stop string was found: generation should end

    def add(self, token_id: int) -> str:
        if self.stopped:
            return ""
        if self._utf8 is not None:
            new = self._utf8.decode(self._pieces(token_id))
            if not new:
                return ""  # a token that prints nothing, or the first bytes of a character
            self.text += new
            return self._release(final=False)
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        new_text = self._decode(self._ids[self._prefix:])
        if len(new_text) <= len(prefix_text) or new_text.endswith("\ufffd"):
            return ""  # a partial character, or a token that prints nothing yet
        self.text += new_text[len(prefix_text):]
        self._prefix, self._read = self._read, len(self._ids)
        return self._release(final=False)

    def finish(self) -> str:
        """The text still held back once generation ended (a partial stop string that never completed)."""
        if self.stopped:
            return ""
        if self._utf8 is not None:
            self.text += self._utf8.decode(b"", final=True)  # an unfinished character: U+FFFD, as decode has it
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        start = self._sent
        if self._stops:
            hits = [index for index in (self.text.find(stop, start) for stop in self._stops) if index >= 0]
            if hits:
                self.stopped = True
                self._sent = min(hits)
                return self.text[start:self._sent]
        end = len(self.text)
        if not final and self._stops:
            end -= self._held(start)
        self._sent = max(start, end)
        return self.text[start:self._sent]

    def _held(self, start: int) -> int:
        """Length of the longest tail of the unsent text that begins some stop string."""
        unsent = len(self.text) - start
        for size in range(min(self._longest - 1, unsent), 0, -1):
            if self.text[-size:] in self._starts:
                return size
        return 0

    @property
    def sent_text(self) -> str:
        return self.text[:self._sent]


def _byte_of_char() -> dict[str, int]:
    """The byte-level alphabet: printable bytes stand for themselves, the others for chr(256 + n) in order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {chr(byte): byte for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in printable:
            table[chr(256 + extra)] = byte
            extra += 1
    return table


def byte_level_pieces(tokenizer: Any, lock: threading.Lock | None = None) -> Pieces | None:
    """``id -> bytes`` for a fast tokenizer whose decoder is ByteLevel, else None (the window path).

    Special tokens give no bytes (answers are decoded with ``skip_special_tokens``); added tokens
    give what ``decode`` gives for them alone (they are whole strings); any other token its
    characters mapped back through the byte alphabet, or its own UTF-8 where one is outside it,
    as the ByteLevel decoder does. None too when decode would clean up spaces afterwards.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.decoder).__name__ != "ByteLevel":
        return None
    if getattr(tokenizer, "clean_up_tokenization_spaces", False) and (
            type(backend.model).__name__ != "BPE"
            or getattr(tokenizer, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", False)):
        return None
    table = _byte_of_char()
    special = set(tokenizer.all_special_ids)
    added = {int(index) for index in tokenizer.get_added_vocab().values()}
    guard = lock or threading.Lock()
    cache: dict[int, bytes] = {}

    def piece(token_id: int) -> bytes:
        found = cache.get(token_id)
        if found is not None:
            return found
        with guard:
            if token_id in special:
                found = b""
            elif token_id in added:
                found = backend.decode([token_id], skip_special_tokens=True).encode("utf-8")
            else:
                token = backend.id_to_token(token_id)
                if token is None:
                    found = b""
                else:
                    try:
                        found = bytes(table[char] for char in token)
                    except KeyError:
                        found = token.encode("utf-8")
        cache[token_id] = found
        return found

    return piece
