"""The pairwise LLM judge: the prompt that asks it, and reading its verdict.

The judge sees one instruction (with its input) and two answers labelled A and B, and ends
its reply with a marker: MT-Bench's ``[[A]]``, ``[[B]]`` or ``[[C]]`` (a tie) by default. The
engine asks it twice per pair, once in each order, because LLM judges favour a position; a
verdict counts only when both orders agree (:func:`studio.core.evaluation.model.judge_outcome`).
Judges explain before they decide and sometimes quote a marker while weighing the options
("not [[A]], because..."), so the LAST marker in the reply is the verdict.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from studio.core.evaluation.model import FIRST, SECOND, TIE, UNREADABLE, EvalPrompt, EvaluationError, JudgeSpec
from studio.core.llm.endpoint import EndpointConfig

JUDGE_ROLE = "the judge"  # how errors name the judge's client ("the judge: wrong key ...")

PLACEHOLDERS = ("instruction", "input", "answer_a", "answer_b")
NO_INPUT = "(none)"  # what {input} shows when the prompt has no input

DEFAULT_TEMPLATE = """\
Two assistants answered the same request. Decide which answer serves the person who asked better.

Judge what matters to that person: does the answer do what was asked, is it correct, is it \
helpful, clear and complete, and does it make good use of the input when there is one?

Keep these rules:
- The order of the answers means nothing. Answer A is not better for coming first, nor B for coming last.
- Length is not quality. A longer answer is better only when the extra text really helps; \
padding, repetition and needless detail count against it.
- Judge the content, not the tone or the formatting alone.

<<<REQUEST>>>
{instruction}
<<<END OF REQUEST>>>

<<<INPUT>>>
{input}
<<<END OF INPUT>>>

<<<ANSWER A>>>
{answer_a}
<<<END OF ANSWER A>>>

<<<ANSWER B>>>
{answer_b}
<<<END OF ANSWER B>>>

Explain your judgement briefly, in a few sentences. Then end your reply with exactly one of \
these verdicts on a line of its own: [[A]] if answer A is better, [[B]] if answer B is better, \
[[C]] if they are equally good or equally bad."""


def check_template(template: str) -> None:
    """Raise :class:`EvaluationError` unless ``template`` is a usable pairwise template.

    It must name every placeholder ({instruction}, {input}, {answer_a}, {answer_b}) and no
    other; literal braces are written ``{{`` and ``}}`` (``str.format``).
    """
    if not template.strip():
        raise EvaluationError("The judge template is empty: reset it to the default or write one with "
                              "{instruction}, {input}, {answer_a} and {answer_b}.")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise EvaluationError(f"The judge template has a stray brace ({exc}): write a literal {{ or }} "
                              "as {{ or }}.") from None
    unknown = sorted(f for f in fields if f not in PLACEHOLDERS)
    if unknown:
        raise EvaluationError(f"The judge template has unknown placeholders: {', '.join('{' + f + '}' for f in unknown)}"
                              f"; only {', '.join('{' + p + '}' for p in PLACEHOLDERS)} are filled in "
                              "(write a literal brace as {{ or }}).")
    missing = [p for p in PLACEHOLDERS if p not in fields]
    if missing:
        raise EvaluationError(f"The judge template lacks {', '.join('{' + p + '}' for p in missing)}: "
                              "the judge would not see the whole comparison.")


def judge_instruction(prompt: EvalPrompt) -> str:
    """What the judge is told was asked: the instruction, or a chat prompt's conversation."""
    messages = prompt.messages or []
    if len(messages) > 1 or (messages and messages[0].get("role") != "user"):
        return "\n\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)
    if messages:
        return str(messages[0].get("content", ""))
    return prompt.instruction


@dataclass(frozen=True)
class Judge:
    """A way to decide which of two answers is better (the ``judges`` registry holds these)."""

    key: str
    title: str
    default_template: str

    def messages(self, spec: JudgeSpec, prompt: EvalPrompt, first: str, second: str) -> list[dict]:
        """The chat messages asking the judge about ``first`` (shown as A) and ``second`` (shown as B)."""
        check_template(spec.template)
        content = spec.template.format(instruction=judge_instruction(prompt), input=prompt.input or NO_INPUT,
                                       answer_a=first, answer_b=second)
        return [{"role": "user", "content": content}]

    def verdict(self, spec: JudgeSpec, raw: str) -> str:
        """``first``, ``second``, ``tie`` or ``unreadable`` from the judge's raw output (the last marker wins)."""
        found = [(raw.rfind(marker), verdict) for marker, verdict in
                 ((spec.marker_a, FIRST), (spec.marker_b, SECOND), (spec.marker_tie, TIE)) if marker]
        position, verdict = max(found, default=(-1, UNREADABLE))
        return verdict if position >= 0 else UNREADABLE


PAIRWISE_JUDGE = Judge("pairwise", "LLM judge, pairwise", DEFAULT_TEMPLATE)
VERDICTS = (FIRST, SECOND, TIE, UNREADABLE)


class GuardedJudge:
    """A plugin's judge with both calls through the registry boundary (the built-in one is used as it is).

    A plugin judge's exception, or a verdict that is none of ``first``/``second``/``tie``/``unreadable``,
    becomes a :class:`~studio.core.plugins.boundary.PluginError` naming the plugin.
    """

    def __init__(self, judge: Judge, key: str):
        from studio.core.registry import JUDGES

        self._judge, self._registry = judge, JUDGES
        self.key = key
        self.title = str(getattr(judge, "title", key))
        self.default_template = str(getattr(judge, "default_template", DEFAULT_TEMPLATE))

    def messages(self, spec: JudgeSpec, prompt: EvalPrompt, first: str, second: str) -> list[dict]:
        with self._registry.guard(self.key, "writing the judge's prompt"):
            return self._judge.messages(spec, prompt, first, second)

    def verdict(self, spec: JudgeSpec, raw: str) -> str:
        with self._registry.guard(self.key, "reading the judge's verdict"):
            verdict = self._judge.verdict(spec, raw)
            if verdict not in VERDICTS:
                raise ValueError(f"the verdict {verdict!r} is none of {', '.join(VERDICTS)}")
            return verdict


def load_judge(key: str = PAIRWISE_JUDGE.key) -> Judge | GuardedJudge:
    """The registered judge ``key`` (``registry.JUDGES``); a plugin's comes wrapped in :class:`GuardedJudge`.

    An unknown key or a plugin judge that cannot be imported raises ``RegistryError`` naming it.
    """
    from studio.core.registry import JUDGES, RegistryError

    judge = JUDGES.load(key)
    entry = JUDGES.get(key)
    if entry.built_in:
        return judge
    if not (callable(getattr(judge, "messages", None)) and callable(getattr(judge, "verdict", None))):
        from studio.core.plugins.boundary import record_failure

        message = f"{JUDGES.name} {key!r} from {entry.source} ({entry.target}) has no messages() and verdict()"
        record_failure(entry, message)
        raise RegistryError(message + ".")
    return GuardedJudge(judge, key)


def default_judge_spec(endpoint: EndpointConfig) -> JudgeSpec:
    """A judge on ``endpoint`` with the default template and MT-Bench's markers (the key stays out).

    A URL holding a credential is refused here, for the GUI as for the CLI: the judge's URL is
    stored with the evaluation and written to its results and exports.
    """
    from studio.core.evaluation.systems import check_url_has_no_secret

    check_url_has_no_secret(endpoint.base_url, "the judge")
    return JudgeSpec(endpoint=endpoint.to_dict(), template=DEFAULT_TEMPLATE, label=endpoint.model)
