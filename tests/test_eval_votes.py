"""project.votes: the blind queue, its recorded sides, votes committed at once, outcomes for the statistics."""
from __future__ import annotations

from collections import Counter

import pytest

from studio.core.changes import COMPARISONS
from studio.core.evaluation.model import EvalPrompt, EvaluationError, SystemSpec
from studio.core.evaluation.votes import left_is_a
from studio.core.project import Project
from tests.eval_votes_support import SYSTEMS, make_evaluation, simple_prompts


def test_queue_has_one_vote_per_answered_prompt_and_is_idempotent(project):
    prompts = simple_prompts(6)
    answers = [[f"a{i}" for i in range(6)], [f"b{i}" if i != 4 else None for i in range(6)]]
    evaluation = make_evaluation(project, prompts, answers)
    assert project.votes.ensure_queue(evaluation) == 5  # prompt 4 has no answer from B
    first = {v.id: v.left_is_a for v in project.votes.votes(evaluation.id)}
    assert project.votes.ensure_queue(evaluation) == 5
    assert {v.id: v.left_is_a for v in project.votes.votes(evaluation.id)} == first
    assert project.votes.progress(evaluation.id) == (0, 5)
    assert not project.votes.finished(evaluation.id)


def test_sides_are_drawn_per_prompt_recorded_and_reproducible(project):
    prompts = simple_prompts(40)
    evaluation = make_evaluation(project, prompts, [["a"] * 40, ["b"] * 40])
    project.votes.ensure_queue(evaluation)
    votes = project.votes.votes(evaluation.id)
    sides = Counter(v.left_is_a for v in votes)
    assert 8 <= sides[True] <= 32 and 8 <= sides[False] <= 32  # both sides, not all A on the left
    for vote in votes:
        assert vote.left_is_a == left_is_a(evaluation, vote.prompt_id, (0, 1))
    # the queue is shuffled, not in prompt order, and the same order each time
    order = [v.prompt_id for v in votes]
    assert order != sorted(order)
    assert [v.prompt_id for v in project.votes.votes(evaluation.id)] == order


def test_cast_commits_at_once_publishes_and_resumes_at_the_next_pending(project, tmp_path):
    evaluation = make_evaluation(project, simple_prompts(3), [["x", "y", "z"], ["p", "q", "r"]])
    project.votes.ensure_queue(evaluation)
    seen = []
    project.changes.subscribe(seen.append)
    first = project.votes.next_pending(evaluation.id)
    voted = project.votes.cast(first.id, first.verdict_for_side("left"))
    assert voted.verdict == ("a" if first.left_is_a else "b") and voted.decided_at is not None
    assert any(COMPARISONS in kinds for kinds in seen)
    # another connection sees it at once: nothing waits for a later commit
    with Project.open(project.root, exclusive=False) as other:
        assert other.votes.get(first.id).verdict == voted.verdict
        resumed = other.votes.next_pending(evaluation.id)
    assert resumed is not None and resumed.id != first.id
    assert resumed.id == project.votes.next_pending(evaluation.id).id


def test_undo_skip_finish_and_bad_verdicts(project):
    evaluation = make_evaluation(project, simple_prompts(2), [["x", "y"], ["p", "q"]])
    project.votes.ensure_queue(evaluation)
    one, two = project.votes.votes(evaluation.id)
    project.votes.cast(one.id, "skip")
    project.votes.cast(two.id, "tie")
    assert project.votes.finished(evaluation.id) and project.votes.next_pending(evaluation.id) is None
    assert project.votes.last_decided(evaluation.id).id == two.id
    project.votes.undo(two.id)
    assert project.votes.progress(evaluation.id) == (1, 2)
    assert project.votes.next_pending(evaluation.id).id == two.id
    with pytest.raises(EvaluationError, match="not a vote"):
        project.votes.cast(two.id, "left")
    with pytest.raises(EvaluationError, match="No vote 999"):
        project.votes.cast(999, "a")


def test_outcomes_map_votes_to_systems_with_lengths_and_categories(project):
    prompts = [EvalPrompt("Say hi.", category="chat"), EvalPrompt("Add 2 and 2.", category="math"),
               EvalPrompt("Name a colour."), EvalPrompt("Count to three.")]
    evaluation = make_evaluation(project, prompts, [["hi", "4", "red", "1 2 3"], ["hello there", "four", "blue", "one"]])
    project.votes.ensure_queue(evaluation)
    by_prompt = {v.prompt_id: v for v in project.votes.votes(evaluation.id)}
    ids = evaluation.prompt_ids
    project.votes.cast(by_prompt[ids[0]].id, by_prompt[ids[0]].verdict_for_side(
        "left" if by_prompt[ids[0]].left_is_a else "right"))  # A's side chosen
    project.votes.cast(by_prompt[ids[1]].id, "b")
    project.votes.cast(by_prompt[ids[2]].id, "both_bad")
    project.votes.cast(by_prompt[ids[3]].id, "skip")
    outcomes = {o.prompt_id: o for o in project.votes.outcomes(evaluation)}
    assert set(outcomes) == set(ids[:3])  # the skip is left out
    assert outcomes[ids[0]].winner == "a" and (outcomes[ids[0]].len_a, outcomes[ids[0]].len_b) == (2, 11)
    assert outcomes[ids[0]].category == "chat"
    assert outcomes[ids[1]].winner == "b" and outcomes[ids[1]].category == "math"
    assert outcomes[ids[2]].winner == "tie" and outcomes[ids[2]].both_bad
    assert all(o.ab is None and o.ba is None and not o.inconsistent for o in outcomes.values())


def test_three_systems_queue_every_pair(project):
    third = SystemSpec("endpoint", label="base", base_url="http://127.0.0.1:9/v1", model="base",
                       key="http://127.0.0.1:9/v1#base")
    evaluation = make_evaluation(project, simple_prompts(2), [["a1", "a2"], ["b1", "b2"], ["c1", "c2"]],
                                 systems=(*SYSTEMS, third))
    assert project.votes.ensure_queue(evaluation) == 6
    pairs = Counter((v.system_a, v.system_b) for v in project.votes.votes(evaluation.id))
    assert pairs == {(0, 1): 2, (0, 2): 2, (1, 2): 2}


def test_blind_pair_shows_answers_by_side(project):
    evaluation = make_evaluation(project, [EvalPrompt("Greet.", "Ann")], [["Hi Ann"], ["Hello, Ann!"]])
    project.votes.ensure_queue(evaluation)
    vote = project.votes.next_pending(evaluation.id)
    shown = project.votes.blind_pair(evaluation, vote)
    assert (shown.instruction, shown.input) == ("Greet.", "Ann")
    expected = ("Hi Ann", "Hello, Ann!") if vote.left_is_a else ("Hello, Ann!", "Hi Ann")
    assert (shown.left, shown.right) == expected
