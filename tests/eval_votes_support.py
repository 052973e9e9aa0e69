"""Evaluations with stored answers, for the vote, lost-prompt and compare-view tests (no endpoint needed).

The prompt set is written to eval_prompt_sets/eval_prompts directly, as the schema defines them,
so these tests do not depend on the prompt-set importer.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence

from studio.core.evaluation.model import EvalPrompt, EvalSettings, Evaluation, JudgeSpec, SystemSpec
from studio.core.llm.pricing import Usage
from studio.core.project import Project

SYSTEMS = (
    SystemSpec("endpoint", label="student-7b", base_url="http://127.0.0.1:9/v1", model="student-7b",
               key="http://127.0.0.1:9/v1#student-7b"),
    SystemSpec("endpoint", label="teacher-xl", base_url="http://127.0.0.1:9/v1", model="teacher-xl",
               key="http://127.0.0.1:9/v1#teacher-xl"),
)


def insert_prompts(project: Project, prompts: Sequence[EvalPrompt], name: str = "user-oriented") -> list[int]:
    now = time.time()
    with project.conn:
        set_id = project.conn.execute(
            "INSERT INTO eval_prompt_sets (name, source, content_hash, created_at) VALUES (?, '', 'hash', ?)",
            (name, now)).lastrowid
        ids = []
        for position, prompt in enumerate(prompts):
            ids.append(project.conn.execute(
                "INSERT INTO eval_prompts (set_id, position, instruction, input, reference, category, messages,"
                " prompt_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (set_id, position, prompt.instruction, prompt.input, prompt.reference, prompt.category,
                 json.dumps(prompt.messages) if prompt.messages else None, prompt.hash)).lastrowid)
    return ids


def make_evaluation(project: Project, prompts: Sequence[EvalPrompt], answers: Sequence[Sequence[str | None]],
                    systems: Sequence[SystemSpec] = SYSTEMS, *, seed: int = 0, judge: JudgeSpec | None = None) -> Evaluation:
    """An evaluation of ``prompts`` where ``answers[system][prompt]`` is stored (None: not answered)."""
    ids = insert_prompts(project, prompts)
    set_id = project.conn.execute("SELECT set_id FROM eval_prompts WHERE id = ?", (ids[0],)).fetchone()[0]
    settings = EvalSettings(seed=seed)
    evaluation = project.evaluations.create(set_id=set_id, set_hash="hash", prompt_ids=ids, systems=list(systems),
                                            judge=judge, settings=settings, name="student vs teacher")
    for system, texts in zip(systems, answers):
        for prompt, text in zip(prompts, texts):
            if text is not None:
                project.evaluations.store_answer(system.key, prompt.hash, settings.answers.hash(), text,
                                                 finish_reason="stop", usage=Usage(10, 20), cost=0.0,
                                                 latency_s=0.1, attempts=1)
    return evaluation


def simple_prompts(n: int) -> list[EvalPrompt]:
    return [EvalPrompt(f"Write a haiku about topic number {i}.", f"topic {i}" if i % 2 else "",
                       category="poetry" if i % 3 else "email") for i in range(n)]
