"""Near-duplicate filtering with ROUGE-L, decision-identical to ``rouge_score``.

Alpaca / self-instruct keep a newly generated instruction only when its ROUGE-L
F-measure against every instruction kept so far (seeds included) is at most 0.7,
as computed by ``rouge_score.rouge_scorer.RougeScorer(["rougeL"])`` with its default
tokenizer and no stemming. Done naively that is one LCS table per (new, kept) pair,
about 15-30 µs each in ``rouge_score``: quadratic, hours at Alpaca's 52K scale.

This module makes exactly the same keep/drop decisions, and reports the same nearest
score, orders of magnitude faster:

* ``tokenize`` reproduces the default ``rouge_score`` tokenizer (lowercase, every run
  of characters outside ``[a-z0-9]`` becomes a separator, no stemming), and
  ``rouge_l_f`` evaluates the F-measure with the very same floating-point operations,
  so scores are bit-identical and the ``> threshold`` test cannot flip.
* ``NearDuplicateIndex`` keeps an inverted index from (token, occurrence number) to
  the kept texts that contain it. One ``numpy.bincount`` over the posting lists of a
  query's tokens gives, for every kept text, the size of the multiset overlap, which
  bounds the LCS: ``F = 2*LCS/(m+n) <= 2*overlap/(m+n)``. Texts sharing no token
  score 0 and are never looked at. A text with overlap c has at least c tokens, so it
  scores at most 2c/(c+n): once the texts with the largest overlap have given a best
  score, every smaller overlap that cannot reach it is ruled out in one vectorised
  comparison. The rest are visited in decreasing order of their bound, and the exact
  LCS (bit-parallel, on Python integers) is computed for every text whose bound is
  not more than 1e-9 below the best score found so far (or the threshold, where only
  the threshold matters: ``matches_above``, ``cluster``).

Why the 1e-9 slack, and why it is applied to every text alike: two kept texts can
score the same on paper against a new one (2*14/(14+26) and 2*21/(34+26) are both
0.7) and still differ by one rounding step in ``rouge_score``'s ``2*p*r/(p+r)``
(0.7000000000000001 and 0.7), one on each side of the threshold. A float score is
within a few ulps (~1e-15) of its value on paper, which is at most the bound, so a
text is ruled out only when its bound is clearly below the best: whatever its
insertion order, it may otherwise hold the true float maximum. Among equal float
scores the nearest text is the earliest added: ``scores.index(max(scores))`` over
the kept texts in insertion order (Python's ``max`` and ``index`` both return the
first maximal item; Alpaca itself uses only the value of ``max`` for its decision). The F-measure is symmetric bit for bit (``2*p`` is exact, so
``(2*p)*r == (2*r)*p``), so ``score(kept, new)`` and Alpaca's
``_score_lcs(new, kept)`` are the same float.

Pure Python and numpy; no Qt, no torch.
"""
from __future__ import annotations

import re
import time
from collections.abc import Generator, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studio.core.jobs import run_to_end

__all__ = [
    "DEFAULT_THRESHOLD",
    "Match",
    "NearDuplicateIndex",
    "Verdict",
    "cluster",
    "cluster_steps",
    "lcs_length",
    "rouge_l_f",
    "tokenize",
]

#: Alpaca's (and self-instruct's) rejection threshold: drop when ROUGE-L F > 0.7.
DEFAULT_THRESHOLD = 0.7

# Bounds are compared with this much slack, so that rounding (a few ulps, ~1e-15 near
# 0.7) in the bound or in rouge_score's float F-measure can never prune a text whose
# exactly computed score would win or pass.
_EPS = 1e-9

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Tokens as ``rouge_score``'s default tokenizer (no stemmer) produces them.

    That tokenizer lowercases the text, replaces every run of characters outside
    ``[a-z0-9]`` with a space, splits on whitespace and keeps the tokens matching
    ``^[a-z0-9]+$``; which is exactly the maximal ``[a-z0-9]`` runs of the lowercased
    text. Letters outside ASCII (accented, CJK, ...) are separators, as there.
    """
    return _TOKEN_RE.findall(text.lower())


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    if len(a) < len(b):
        a, b = b, a  # bit vector over the longer one, loop over the shorter one
    return _lcs_masks(_match_masks(a), len(a), b)


def _match_masks(a: Sequence[Hashable]) -> dict[Hashable, int]:
    masks: dict[Hashable, int] = {}
    for position, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


def _lcs_masks(masks: dict[Hashable, int], n: int, b: Iterable[Hashable]) -> int:
    """LCS of ``a`` (given by its match masks and length ``n``) and ``b``.

    Bit-parallel LCS (Allison-Dix; Crochemore et al. 2001): a vector ``v`` over the
    positions of ``a`` whose zero bits count the LCS so far; for each token of ``b``
    ``u = v & match(token)``, ``v = (v + u) | (v - u)``. Carries only ever move to
    bits at or above ``n``, which are ignored at the end.
    """
    full = (1 << n) - 1
    v = full
    get = masks.get
    for token in b:
        m = get(token)
        if m:
            u = v & m
            v = (v + u) | (v - u)
    return n - (v & full).bit_count()


def _f_measure(lcs: int, target_len: int, prediction_len: int) -> float:
    """``rouge_score``'s ROUGE-L F from the LCS length, with its exact float ops."""
    if not target_len or not prediction_len:
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _overlap_floor(n: int, score: float, cap: int) -> int:
    """The smallest overlap c (at most ``cap``) whose texts can still score ``score``
    against a text of ``n`` tokens: such a text has at least c tokens, so its score is
    at most 2c/(c+n), which grows with c."""
    c = 1
    while c < cap and 2.0 * c / (c + n) + _EPS < score:
        c += 1
    return c


def rouge_l_f(a_tokens: Sequence[Hashable], b_tokens: Sequence[Hashable]) -> float:
    """ROUGE-L F-measure of two token lists, equal to ``rouge_score``'s.

    ``a_tokens`` plays the target, ``b_tokens`` the prediction, as in
    ``RougeScorer(["rougeL"]).score(a, b)``; the F-measure is symmetric anyway. It is
    0.0 when either list is empty.
    """
    if not a_tokens or not b_tokens:
        return 0.0
    return _f_measure(lcs_length(a_tokens, b_tokens), len(a_tokens), len(b_tokens))


@dataclass(frozen=True)
class Match:
    """A kept text and its ROUGE-L F against the text that was looked up."""

    key: Any
    text: str
    score: float


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one text against the index.

    ``is_duplicate`` is ``score > threshold``. ``key``, ``text`` and ``score`` describe
    the nearest kept text (highest ROUGE-L F; the earliest added among equals);
    ``key`` and ``text`` are None and ``score`` 0.0 when no kept text shares a token.
    """

    is_duplicate: bool
    score: float
    key: Any = None
    text: str | None = None
    added: bool = False

    @property
    def nearest(self) -> Match | None:
        if self.text is None:
            return None
        return Match(self.key, self.text, self.score)


class _Growable:
    """An int32 numpy array with amortised O(1) append."""

    __slots__ = ("data", "size")

    def __init__(self, capacity: int = 4) -> None:
        self.data = np.empty(capacity, dtype=np.int32)
        self.size = 0

    def append(self, value: int) -> None:
        if self.size == len(self.data):
            grown = np.empty(2 * len(self.data), dtype=np.int32)
            grown[: self.size] = self.data
            self.data = grown
        self.data[self.size] = value
        self.size += 1

    def view(self) -> np.ndarray:
        return self.data[: self.size]


class NearDuplicateIndex:
    """Incremental ROUGE-L near-duplicate filter, decision-identical to ``rouge_score``.

    Texts are added one at a time; each lookup scores the text against everything
    added before, exactly as ``RougeScorer(["rougeL"])`` would (the looked-up text as
    target, each kept text as prediction), without scoring most pairs at all.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not threshold >= 0:
            raise ValueError(f"threshold must be >= 0, not {threshold!r}")
        self.threshold = float(threshold)
        self._vocab: dict[str, int] = {}
        self._posting_ids: dict[tuple[int, int], int] = {}  # (token, occurrence) -> id
        self._postings: list[_Growable] = []
        self._texts: list[str] = []
        self._keys: list[Any] = []
        self._tokens: list[list[int]] = []
        self._lengths = _Growable(64)

    def __len__(self) -> int:
        return len(self._texts)

    # ------------------------------------------------------------------ adding

    def add(self, text: str, key: Any = None) -> None:
        """Add ``text`` unconditionally; ``key`` defaults to its insertion number."""
        self._add_tokens(text, tokenize(text), key)

    def _add_tokens(self, text: str, words: list[str], key: Any) -> None:
        doc = len(self._texts)
        vocab = self._vocab
        ids = []
        for word in words:
            token = vocab.get(word)
            if token is None:
                token = vocab[word] = len(vocab)
            ids.append(token)
        seen: dict[int, int] = {}
        for token in ids:
            occurrence = seen.get(token, 0) + 1
            seen[token] = occurrence
            pid = self._posting_ids.get((token, occurrence))
            if pid is None:
                pid = self._posting_ids[(token, occurrence)] = len(self._postings)
                self._postings.append(_Growable())
            self._postings[pid].append(doc)
        self._texts.append(text)
        self._keys.append(doc if key is None else key)
        self._tokens.append(ids)
        self._lengths.append(len(ids))

    # --------------------------------------------------------------- looking up

    def _query(self, words: list[str]) -> tuple[list[int], np.ndarray | None, int]:
        """Token ids of ``words`` (-1 where unknown); the size of each kept text's
        multiset token overlap with them, indexed by kept-text id minus the returned
        offset (None: no overlap at all)."""
        vocab = self._vocab
        ids = [vocab.get(word, -1) for word in words]
        parts = []
        seen: dict[int, int] = {}
        posting_ids = self._posting_ids
        postings = self._postings
        for token in ids:
            if token < 0:
                continue
            occurrence = seen.get(token, 0) + 1
            seen[token] = occurrence
            pid = posting_ids.get((token, occurrence))
            if pid is not None:
                parts.append(postings[pid].view())
        if not parts:
            return ids, None, 0
        # Posting lists are sorted, so the counts only need to span the first id seen.
        offset = min(int(part[0]) for part in parts)
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if offset:
            joined = joined - offset
        return ids, np.bincount(joined), offset

    def _bounds(
        self, counts: np.ndarray, offset: int, selected: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids of the ``selected`` kept texts and their score bounds 2*overlap/(m+n)."""
        rows = np.flatnonzero(selected)
        docs = rows + offset
        return docs, 2.0 * counts[rows] / (self._lengths.data[docs] + n)

    def _best(self, words: list[str]) -> tuple[int, float]:
        """Id and score of the nearest kept text (-1, 0.0 when none shares a token).

        First the texts with the largest overlap are scored, which gives a good best
        score early. A text with overlap c has at least c tokens, so its score is at
        most 2c/(c+n): every overlap too small to reach the best score so far is then
        ruled out wholesale, before any per-text bound is even computed.
        """
        ids, counts, offset = self._query(words)
        if counts is None:
            return -1, 0.0
        masks = _match_masks(ids)
        n = len(ids)
        top = int(counts.max())
        docs, bound = self._bounds(counts, offset, counts >= top, n)
        best_doc, best = self._rounds(masks, n, docs, bound, -1, 0.0)
        if top > 1:
            floor = _overlap_floor(n, best, top)
            if floor < top:
                selected = (counts >= floor) & (counts < top)
                docs, bound = self._bounds(counts, offset, selected, n)
                best_doc, best = self._rounds(masks, n, docs, bound, best_doc, best)
        return best_doc, best

    def _rounds(
        self,
        masks: dict[Hashable, int],
        n: int,
        docs: np.ndarray,
        bound: np.ndarray,
        best_doc: int,
        best: float,
    ) -> tuple[int, float]:
        """Best (id, score) among ``docs`` and the given incumbent.

        Candidates are scored in rounds, highest bounds first (a partial sort of a
        growing batch each round); after every round only the texts whose bound can
        still reach the best score (within the rounding slack) stay in the running; the
        exact float score, compared with ``>``, and the earlier id on equality, decide.
        """
        tokens = self._tokens
        batch = 8
        while len(docs):
            if len(docs) > batch:
                split = np.argpartition(-bound, batch)
                head, rest = split[:batch], split[batch:]
                take_docs, take_bound = docs[head], bound[head]
                docs, bound = docs[rest], bound[rest]
            else:
                take_docs, take_bound = docs, bound
                docs = bound = docs[:0]
            order = np.lexsort((take_docs, -take_bound))  # bound down, then id up
            for doc, ub in zip(take_docs[order].tolist(), take_bound[order].tolist()):
                if ub + _EPS < best:
                    break  # sorted: no later one in this batch can reach the best either
                other = tokens[doc]
                score = _f_measure(_lcs_masks(masks, n, other), n, len(other))
                if score > best or (score == best and doc < best_doc):
                    best_doc, best = doc, score
            if len(docs):
                # The same test for every text, earlier or later than the best one: a
                # bound within _EPS of the best may hide a float score one rounding step
                # above it (equal F-measures on paper, different roundings of 2pr/(p+r)).
                alive = bound + _EPS >= best
                docs, bound = docs[alive], bound[alive]
            batch *= 4
        return best_doc, best

    def nearest(self, text: str) -> Match | None:
        """The kept text with the highest ROUGE-L F against ``text`` (the earliest
        added among equals), or None when no kept text shares a token with it."""
        doc, score = self._best(tokenize(text))
        if doc < 0:
            return None
        return Match(self._keys[doc], self._texts[doc], score)

    def check(self, text: str) -> Verdict:
        """Whether ``text`` is a near-duplicate (score > threshold) of a kept text."""
        return self._verdict(tokenize(text))

    def _verdict(self, words: list[str]) -> Verdict:
        doc, score = self._best(words)
        if doc < 0:
            return Verdict(False, 0.0)
        return Verdict(score > self.threshold, score, self._keys[doc], self._texts[doc])

    def check_and_add(self, text: str, key: Any = None) -> Verdict:
        """Check ``text`` and add it when it is not a near-duplicate."""
        words = tokenize(text)
        verdict = self._verdict(words)
        if verdict.is_duplicate:
            return verdict
        self._add_tokens(text, words, key)
        return Verdict(False, verdict.score, verdict.key, verdict.text, added=True)

    def matches_above(self, text: str, threshold: float | None = None) -> list[Match]:
        """Every kept text scoring above ``threshold`` (default: the index's), in the
        order they were added."""
        limit = self.threshold if threshold is None else float(threshold)
        return [
            Match(self._keys[doc], self._texts[doc], score)
            for doc, score in self._above(tokenize(text), limit)
        ]

    def _above(self, words: list[str], limit: float) -> list[tuple[int, float]]:
        ids, counts, offset = self._query(words)
        if counts is None:
            return []
        n = len(ids)
        floor = max(1, _overlap_floor(n, limit, n + 1))
        top = int(counts.max())
        if floor > top:
            return []
        docs, bound = self._bounds(counts, offset, counts >= floor, n)
        keep = bound + _EPS > limit
        if not keep.any():
            return []
        masks = _match_masks(ids)
        found = []
        for doc in docs[keep].tolist():
            other = self._tokens[doc]
            score = _f_measure(_lcs_masks(masks, n, other), n, len(other))
            if score > limit:
                found.append((doc, score))
        return found


def cluster_steps(texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD, *,
                  every_s: float = 0.02) -> Generator[int, None, list[list[int]]]:
    """:func:`cluster` for a job: yields how many texts are done, at least every ``every_s`` seconds."""
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index = NearDuplicateIndex(threshold)
    last = time.perf_counter()
    for i, text in enumerate(texts):
        words = tokenize(text)
        for j, _score in index._above(words, index.threshold):
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
        index._add_tokens(text, words, i)
        if time.perf_counter() - last > every_s:
            yield i + 1
            last = time.perf_counter()
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def cluster(texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Group near-duplicates: the connected components of the graph joining every
    pair of ``texts`` whose ROUGE-L F is above ``threshold``.

    Returns lists of indices into ``texts``, each sorted, ordered by first index;
    texts with no near-duplicate come back as singletons.
    """
    return run_to_end(cluster_steps(texts, threshold, every_s=float("inf")))
