"""A slow stand-in for ``studio.core.dedup.NearDuplicateIndex`` (tests only; the real one is merged later).

Brute force over every stored text with the ``rouge_score`` package: fine for a few hundred texts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rouge_score import rouge_scorer


@dataclass(frozen=True)
class Verdict:
    is_duplicate: bool
    score: float
    nearest_key: Any
    nearest_text: str | None


class StandinIndex:
    def __init__(self, threshold: float = 0.7):
        self.threshold = threshold
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self._items: list[tuple[str, Any]] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, text: str, key: Any = None) -> None:
        self._items.append((text, key))

    def check(self, text: str) -> Verdict:
        best, best_item = 0.0, (None, None)
        for other, key in self._items:
            score = self._scorer.score(other, text)["rougeL"].fmeasure
            if score > best:
                best, best_item = score, (other, key)
        return Verdict(best > self.threshold, best, best_item[1], best_item[0])

    def check_and_add(self, text: str, key: Any = None) -> Verdict:
        verdict = self.check(text)
        if not verdict.is_duplicate:
            self.add(text, key)
        return verdict
