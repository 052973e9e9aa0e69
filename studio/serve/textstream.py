"""Token ids to streamed text: incremental detokenization and stop strings, with nothing held longer than needed.

Decoding the whole answer again at every token is quadratic; decoding one token alone loses
the leading space SentencePiece tokenizers attach to a word and splits multi-byte characters.
So each new token is decoded in a short window after the previous one (the usual incremental
scheme) and text ending in a replacement character waits for its next byte. Text that could be
the start of a stop string is held back until it is known not to be one, so a stop string
never reaches the client. Pure Python: ``decode`` is ``tokenizer.decode`` bound by the caller.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[list[int]], str]


class TextStream:
    """Feed generated token ids with :meth:`add`; each call returns the text now safe to send."""

    def __init__(self, decode: Decode, stops: Sequence[str] = (), prompt_tail: Sequence[int] = ()):
        self._decode = decode
        self._stops = [stop for stop in stops if stop]
        self._longest = max((len(stop) for stop in self._stops), default=0)
        self._ids = list(prompt_tail)       # a few prompt tokens give the first word its leading space
        self._prefix = 0
        self._read = len(self._ids)
        self.text = ""                      # all text decoded so far (may run past a stop string)
        self._sent = 0                      # how much of ``text`` has been returned
        self.stopped = False                # a stop string was found: generation should end

    def add(self, token_id: int) -> str:
        if self.stopped:
            return ""
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
            tail = self.text[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0

    @property
    def sent_text(self) -> str:
        return self.text[:self._sent]
