"""The pairwise LLM judge (CONTRACT SKELETON: helper C fills it)."""
from __future__ import annotations

from dataclasses import dataclass

from studio.core.evaluation.model import EvalPrompt, JudgeSpec

DEFAULT_TEMPLATE = ""  # helper C: the default pairwise prompt ({instruction} {input} {answer_a} {answer_b})


@dataclass(frozen=True)
class Judge:
    """A way to decide which of two answers is better (the ``judges`` registry holds these)."""

    key: str
    title: str
    default_template: str

    def messages(self, spec: JudgeSpec, prompt: EvalPrompt, first: str, second: str) -> list[dict]:
        """The chat messages asking the judge about ``first`` (shown as A) and ``second`` (shown as B)."""
        raise NotImplementedError

    def verdict(self, spec: JudgeSpec, raw: str) -> str:
        """``first``, ``second``, ``tie`` or ``unreadable`` from the judge's raw output."""
        raise NotImplementedError


PAIRWISE_JUDGE = Judge("pairwise", "LLM judge, pairwise", DEFAULT_TEMPLATE)
