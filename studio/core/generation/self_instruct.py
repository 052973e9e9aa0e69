"""Self-Instruct mode (Wang et al., 2022), in four stages chained through child requests.

1. ``instructions``: 8 example instructions (6 seeds + up to 2 this run made) -> a numbered
   list of new instructions, filtered like Alpaca's (length, blacklist, start, ROUGE-L).
2. ``classify``: one request per batch asks, for every kept instruction, whether it is a
   classification task (answer from a small fixed label set).
3. ``instances``: one request per instruction. Classification tasks are asked output-first
   (pick a label, then write an input for it) so labels are not all the same; the others
   input-first (an input, then its output).
4. Instance filtering: empty outputs, an output that repeats its input, and the same input
   twice are dropped (``bad_instance`` / ``empty_output``); survivors become samples.

Each stage's request is stored with the payload the next stage needs, so a killed run resumes
mid-chain without re-asking for work that was already paid for.
"""
from __future__ import annotations

import json
import random
import re
from string import Template

from studio.core.generation.filters import BAD_INSTANCE, EMPTY_OUTPUT, PARSE_ERROR, TRUNCATED
from studio.core.generation.modes import JudgeSteps, ModeContext, Outcome, make_sample
from studio.core.generation.prompts import NO_INPUT, Candidate, default_template
from studio.core.generation.repository import ChildRequest, Rejected, RequestRow

INSTRUCTIONS, CLASSIFY, INSTANCES = "instructions", "classify", "instances"
SEEDS_SHOWN, GENERATED_SHOWN = 6, 2
MAX_CHILDREN = 1000  # instance requests per instruction batch; keeps child indices unique


_NUMBERED = re.compile(r"^[ \t]*(?:[*#]+[ \t]*)?(?:Task[ \t]*)?(\d+)[ \t]*[.):][ \t]*(.*)$", re.IGNORECASE)
_ANSWER = re.compile(r"^[ \t]*(\d+)[ \t]*[:.)-][ \t]*\**(yes|no)\b", re.IGNORECASE | re.MULTILINE)
_EXAMPLE = re.compile(r"^[ \t]*(?:#+[ \t]*)?\**Example[ \t]*\d*\**[ \t]*:?[ \t]*$", re.IGNORECASE | re.MULTILINE)
_FIELD = re.compile(r"^[ \t]*\**(Input|Output|Class label)\**[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)


def parse_numbered(text: str, finish_reason: str | None) -> tuple[list[str], list[str]]:
    """Items of a numbered list (continuation lines joined) and the raw texts that were dropped."""
    items: list[str] = []
    for line in text.splitlines():
        match = _NUMBERED.match(line)
        if match:
            items.append(match.group(2).strip())
        elif items and line.strip():
            items[-1] = f"{items[-1]} {line.strip()}"
    dropped = []
    if finish_reason == "length" and items:
        dropped.append(items.pop())
    return [item for item in items if item], dropped


def parse_instances(text: str, output_first: bool) -> list[tuple[str, str]]:
    """(input, output) pairs from 'Example N' blocks (or one unlabelled block)."""
    starts = [m.end() for m in _EXAMPLE.finditer(text)] or [0]
    ends = [m.start() for m in _EXAMPLE.finditer(text)][1:] + [len(text)]
    pairs = []
    for start, end in zip(starts, ends):
        block = text[start:end]
        fields: dict[str, str] = {}
        labels = list(_FIELD.finditer(block))
        for label, following in zip(labels, labels[1:] + [None]):
            fields.setdefault(label.group(1).lower(), block[label.end():following.start() if following else len(block)].strip())
        output = fields.get("class label" if output_first else "output")
        if output is None:
            continue
        input_text = fields.get("input", "")
        if input_text.strip().lower() in {NO_INPUT, "<no input>", "none", "n/a"}:
            input_text = ""
        pairs.append((input_text, output))
    return pairs


class SelfInstructMode:
    root_stage = INSTRUCTIONS

    def __init__(self, ctx: ModeContext):
        self.ctx = ctx
        self.templates = json.loads(ctx.config.template or default_template("self-instruct"))

    def _fill(self, name: str, **values: object) -> str:
        return Template(self.templates[name]).safe_substitute(**values)

    def max_tokens(self, stage: str) -> int:
        limit = self.ctx.config.max_tokens
        return {INSTRUCTIONS: limit, CLASSIFY: min(limit, 512)}.get(stage, min(limit, 1024))

    def expected_kept(self, stage: str, payload: dict) -> float:
        """Samples a request should lead to: its own instances, or those of the stages it starts."""
        per_instruction = self.ctx.config.num_instances * 0.9
        if stage == INSTANCES:
            return per_instruction
        if stage == CLASSIFY:
            return len(payload.get("instructions", [])) * per_instruction
        return self.ctx.config.num_tasks * 0.5 * per_instruction  # about half the new instructions pass the filters

    # -- stage 1 ------------------------------------------------------------------------------------
    def new_prompt(self, rng: random.Random, index: int) -> tuple[str, list[int], dict]:
        seeds = rng.sample(list(self.ctx.seeds), min(SEEDS_SHOWN, len(self.ctx.seeds)))
        shown = [s.instruction for s in seeds] + self.ctx.generated_instructions(GENERATED_SHOWN)
        rng.shuffle(shown)
        examples = "\n".join(f"{n}. {text}" for n, text in enumerate(shown, start=1))
        prompt = self._fill(INSTRUCTIONS, examples=examples, num_tasks=self.ctx.config.num_tasks)
        return prompt, [s.seed_id for s in seeds if s.seed_id is not None], {}

    def handle(self, request: RequestRow, text: str, finish_reason: str | None) -> JudgeSteps:
        if request.stage == INSTRUCTIONS:
            return (yield from self._handle_instructions(request, text, finish_reason))
        if request.stage == CLASSIFY:
            return self._handle_classify(request, text)
        return self._handle_instances(request, text, finish_reason)

    def _handle_instructions(self, request: RequestRow, text: str, finish_reason: str | None) -> JudgeSteps:
        outcome = Outcome()
        items, dropped = parse_numbered(text, finish_reason)
        if not items and not dropped and text.strip():
            outcome.rejected.append(Rejected("", "", text, PARSE_ERROR, "no numbered instructions found"))
        for raw in dropped:
            outcome.rejected.append(Rejected(raw, "", "", TRUNCATED, "cut off by the token limit"))
        kept = []
        for instruction in items:
            yield
            verdict = self.ctx.filter.check(Candidate(instruction, "", ""), request.key, need_output=False)
            if verdict.kept:
                kept.append(instruction)
            else:
                outcome.rejected.append(Rejected(instruction, "", "", verdict.reason, verdict.detail,
                                                 verdict.nearest_instruction, verdict.score))
        if kept:
            tasks = "\n".join(f"{n}. {t}" for n, t in enumerate(kept, start=1))
            examples = "\n".join(f"- {s.instruction} -> {'Yes' if s.is_classification else 'No'}"
                                 for s in self._classify_examples())
            outcome.children.append(ChildRequest(CLASSIFY, request.index, self._fill(CLASSIFY, tasks=tasks, examples=examples),
                                                 {"instructions": kept, "origin_seed_ids": request.seed_ids}))
        return outcome

    def _classify_examples(self) -> list:
        yes = [s for s in self.ctx.seeds if s.is_classification][:3]
        no = [s for s in self.ctx.seeds if not s.is_classification][:3]
        return yes + no

    # -- stage 2 ------------------------------------------------------------------------------------
    def _handle_classify(self, request: RequestRow, text: str) -> Outcome:
        answers = {int(n): verdict.lower() == "yes" for n, verdict in _ANSWER.findall(text)}
        outcome = Outcome()
        origin = request.payload.get("origin_seed_ids", [])
        for number, instruction in enumerate(request.payload.get("instructions", [])[:MAX_CHILDREN], start=1):
            is_cls = answers.get(number, False)  # unanswered: input-first is the safe default
            outcome.children.append(ChildRequest(
                INSTANCES, request.index * MAX_CHILDREN + number, self._instance_prompt(instruction, is_cls),
                {"instruction": instruction, "is_classification": is_cls, "origin_seed_ids": origin},
            ))
        return outcome

    def _instance_prompt(self, instruction: str, is_classification: bool) -> str:
        pool = [s for s in self.ctx.seeds if s.is_classification == is_classification] or list(self.ctx.seeds)
        shown = pool[:3]
        if is_classification:
            examples = "\n\n".join(f"Task: {s.instruction}\nClass label: {s.output}\nInput: {s.input or NO_INPUT}" for s in shown)
            name = "output_first"
        else:
            examples = "\n\n".join(f"Task: {s.instruction}\nInput: {s.input or NO_INPUT}\nOutput: {s.output}" for s in shown)
            name = "input_first"
        return self._fill(name, instruction=instruction, examples=examples, num_instances=self.ctx.config.num_instances)

    # -- stages 3 and 4 ------------------------------------------------------------------------------
    def _handle_instances(self, request: RequestRow, text: str, finish_reason: str | None) -> Outcome:
        outcome = Outcome()
        instruction = request.payload.get("instruction", "")
        output_first = bool(request.payload.get("is_classification"))
        pairs = parse_instances(text, output_first)
        if finish_reason == "length" and pairs:
            cut = pairs.pop()
            outcome.rejected.append(Rejected(instruction, cut[0], cut[1], TRUNCATED, "cut off by the token limit"))
        if not pairs:
            outcome.rejected.append(Rejected(instruction, "", text, PARSE_ERROR, "no examples found"))
        seen_inputs: set[str] = set()
        for input_text, output in pairs:
            reason = ""
            if not output.strip():
                reason = EMPTY_OUTPUT
            elif input_text.strip() and input_text.strip() == output.strip():
                reason = BAD_INSTANCE
            elif input_text.strip() and input_text.strip() in seen_inputs:
                reason = BAD_INSTANCE
            if reason:
                outcome.rejected.append(Rejected(instruction, input_text, output, reason))
                continue
            # The instruction passed the wall alone; with this input it may be an evaluation prompt.
            walled = self.ctx.filter.wall_check(Candidate(instruction, input_text, output))
            if walled is not None:
                outcome.rejected.append(Rejected(instruction, input_text, output, walled.reason or "",
                                                 walled.detail, walled.nearest_instruction, walled.score))
                continue
            seen_inputs.add(input_text.strip())
            outcome.kept.append(make_sample(self.ctx, instruction, input_text, output,
                                            request.payload.get("origin_seed_ids", []), request.key,
                                            {"is_classification": output_first}))
        return outcome
