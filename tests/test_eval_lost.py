"""Lost prompts → seeds (with lineage, leaving their set) and → the nearest training samples in Curate."""
from __future__ import annotations

import json

import pytest

from studio.cli import main
from studio.core.curation import SampleQuery
from studio.core.evaluation import lost
from studio.core.evaluation.model import EvalPrompt, EvaluationError, Outcome
from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.core.seed_changes import SeedRows
from tests.eval_votes_support import make_evaluation

PROMPTS = [
    EvalPrompt("Write a polite email declining a meeting invitation.", "Meeting on Friday at 3pm", category="email"),
    EvalPrompt("Summarise the plot of Hamlet in two sentences.", category="literature"),
    EvalPrompt("Convert 100 degrees Fahrenheit to Celsius.", category="math"),
    EvalPrompt("Suggest a name for a coffee shop near a library.", category="naming"),
]
STUDENT = ["Can't come.", "Hamlet is sad.", "37.8 °C (100 °F minus 32, times 5/9).", "Bean There"]
TEACHER = ["Dear Ana, thank you for the invitation; sadly I cannot attend on Friday at 3pm. Best, Bo",
           "Prince Hamlet avenges his father's murder by his uncle Claudius. Nearly everyone dies.",
           "About 37.8 °C.", "Chapter & Verse Coffee"]


def vote(project, evaluation, prompt_index: int, verdict: str) -> None:
    project.votes.ensure_queue(evaluation)
    prompt_id = evaluation.prompt_ids[prompt_index]
    found = next(v for v in project.votes.votes(evaluation.id) if v.prompt_id == prompt_id)
    project.votes.cast(found.id, verdict)


@pytest.fixture
def voted(project):
    """The student (A) lost prompts 0 and 1 to the teacher, won 2, tied 3."""
    evaluation = make_evaluation(project, PROMPTS, [STUDENT, TEACHER])
    for index, verdict in enumerate(("b", "b", "a", "tie")):
        vote(project, evaluation, index, verdict)
    return evaluation


def test_lost_prompts_are_the_student_losses_with_their_winner():
    outcomes = [Outcome(1, 0, 1, "b", 3, 9, "email"), Outcome(2, 0, 1, "a", 3, 9), Outcome(3, 0, 1, "tie", 3, 9),
                Outcome(4, 0, 2, "b", 1, 1), Outcome(4, 0, 1, "b", 1, 1), Outcome(5, 1, 2, "a", 1, 1)]
    assert lost.lost_prompts(outcomes) == [lost.LostPrompt(1, 1, "email"), lost.LostPrompt(4, 2, "")]
    assert lost.lost_prompts(outcomes, system=1) == [lost.LostPrompt(2, 0, "")]
    assert lost.lost_prompts(outcomes, system=2) == [lost.LostPrompt(5, 1, "")]


def test_lost_prompts_to_seeds_with_the_winning_answer_tags_and_lineage(project, voted):
    outcomes = lost.evaluation_outcomes(project, voted)
    lost_ids = [p.prompt_id for p in lost.lost_prompts(outcomes)]
    assert sorted(lost_ids) == voted.prompt_ids[:2]
    before = project.seeds.count()
    seed_ids = lost.to_seeds(project, voted, lost_ids)
    assert len(seed_ids) == 2 and project.seeds.count() == before + 2
    by_prompt = {}
    for seed_id in seed_ids:
        origin = lost.seed_origin(project.conn, seed_id)
        assert origin["evaluation_id"] == voted.id and origin["system"] == "teacher-xl"
        assert origin["evaluation_name"] == "student vs teacher"
        by_prompt[origin["prompt_id"]] = project.seeds.get(seed_id)
    email = by_prompt[voted.prompt_ids[0]]
    assert email.instruction == PROMPTS[0].instruction
    assert [(i.input, i.output) for i in email.instances] == [(PROMPTS[0].input, TEACHER[0])]
    assert email.tags == ["from-eval", f"eval-{voted.id}"]
    assert email.name.startswith(f"eval-{voted.id}-")  # `seeds list` names its origin without the tags
    assert by_prompt[voted.prompt_ids[1]].instances[0].output == TEACHER[1]
    # the prompts left their set: they are training data now
    released = dict(project.conn.execute("SELECT id, released_to FROM eval_prompts").fetchall())
    assert released[voted.prompt_ids[0]] == released[voted.prompt_ids[1]] == f"seeds (evaluation {voted.id})"
    assert released[voted.prompt_ids[2]] is None and released[voted.prompt_ids[3]] is None
    assert lost.seed_origin(project.conn, 999_999) is None


def test_to_seeds_is_one_undoable_change_and_refuses_prompts_not_lost(project, voted):
    with pytest.raises(EvaluationError, match=r"did not lose prompt " + str(voted.prompt_ids[2])):
        lost.to_seeds(project, voted, [voted.prompt_ids[2]])
    assert project.conn.execute("SELECT COUNT(*) FROM seed_origins").fetchone()[0] == 0
    change = lost.to_seeds_change(project, voted, voted.prompt_ids[:2])
    assert isinstance(change, SeedRows) and len(change) == 2
    change.apply(project.conn, undo=True)
    assert all(project.seeds.get(i) is None for i in change.ids)
    assert project.conn.execute("SELECT COUNT(*) FROM seed_origins").fetchone()[0] == 0  # cascades with the seed


def accepted(project, texts: list[str]) -> list[int]:
    return [project.samples.add(Sample(t, "", f"output {n}", status=Status.ACCEPTED)) for n, t in enumerate(texts)]


SAMPLES = [
    "Write a polite email declining an invitation to a meeting.",   # nearest to prompt 0
    "Write an email to decline a job offer politely.",
    "Summarise the plot of Macbeth in two sentences.",              # nearest to prompt 1
    "List three prime numbers.",
    "Translate 'good morning' into French.",
]


def test_nearest_samples_by_rouge_l_stored_for_curates_filter(project, voted):
    ids = accepted(project, SAMPLES)
    project.samples.add(Sample("Write a polite email declining a meeting invitation please.", "", "x",
                               status=Status.REJECTED))  # not training data
    found = lost.nearest_samples(project, voted, voted.prompt_ids[:2], k=2)
    by_prompt: dict[int, list] = {}
    for sample_id, prompt_id, score in found:
        by_prompt.setdefault(prompt_id, []).append((sample_id, score))
    email, hamlet = by_prompt[voted.prompt_ids[0]], by_prompt[voted.prompt_ids[1]]
    assert [s for s, _ in email] == [ids[0], ids[1]] and email[0][1] > email[1][1]
    assert hamlet[0][0] == ids[2] and hamlet[0][1] == pytest.approx(7 / 8)  # 7 of 8 words in order
    # the same score the near-duplicate filter computes
    from studio.core.dedup import rouge_l_f, tokenize

    text = PROMPTS[0].instruction + "\n" + PROMPTS[0].input
    assert email[0][1] == rouge_l_f(tokenize(text), tokenize(SAMPLES[0]))
    shown = project.curation.ids(SampleQuery(nearest_eval=voted.id))
    assert shown[0] in (ids[0], ids[2]) and set(shown) == {s for s, _, _ in found}
    scores = {s: score for s, _, score in lost.stored_nearest(project.conn, voted.id)}
    assert [scores[s] for s in shown] == sorted(scores.values(), reverse=True)  # nearest first
    # asked again with fewer: the stored list is replaced, not added to
    lost.nearest_samples(project, voted, voted.prompt_ids[:1], k=1)
    assert project.curation.ids(SampleQuery(nearest_eval=voted.id)) == [ids[0]]
    assert project.curation.count(SampleQuery(nearest_eval=voted.id + 1)) == 0


def test_nearest_samples_of_a_snapshot_only(project, voted):
    ids = accepted(project, SAMPLES[1:])
    snapshot = project.snapshots.create("v1")
    accepted(project, SAMPLES[:1])  # accepted after the snapshot: the student never saw it
    found = lost.nearest_samples(project, voted, voted.prompt_ids[:1], k=1, snapshot=snapshot.id)
    assert [s for s, _, _ in found] == [ids[0]]


def test_cli_lists_lost_prompts_makes_seeds_and_nearest(project, voted, capsys):
    accepted(project, SAMPLES)
    root = project.root
    project.close()
    assert main(["eval", "lost", str(voted.id), "--project", str(root)]) == 0
    out = capsys.readouterr().out
    assert "student-7b lost 2 of 4 prompts" in out and "won by teacher-xl" in out
    assert main(["eval", "lost", str(voted.id), "--to-seeds", "--nearest", "1", "--json", "--project", str(root)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["winner"] for row in data["lost"]] == ["teacher-xl", "teacher-xl"]
    assert len(data["seed_ids"]) == 2 and data["released"] == 2
    assert all(len(row["nearest"]) == 1 for row in data["lost"])
    with Project.open(root) as reopened:
        assert {reopened.seeds.get(i).tags[1] for i in data["seed_ids"]} == {f"eval-{voted.id}"}
        assert reopened.curation.count(SampleQuery(nearest_eval=voted.id)) == 2
    assert main(["eval", "lost", str(voted.id), "--to-seeds", "--project", str(root)]) == 0
    out = capsys.readouterr().out
    assert "left the evaluation set" in out
    assert main(["eval", "lost", str(voted.id), "--system", "c", "--project", str(root)]) == 1
    assert "--system 'c' is not a system" in capsys.readouterr().err


def test_curate_shows_the_nearest_samples_with_a_chip_to_leave(qtbot, project, voted):
    from studio.ui.curate_panel import CuratePanel
    from studio.ui.project_context import ProjectContext

    ids = accepted(project, SAMPLES)
    lost.nearest_samples(project, voted, voted.prompt_ids[:2], k=1)
    panel = CuratePanel()
    qtbot.addWidget(panel)
    panel.set_context(ProjectContext(project, panel))
    panel.show()
    panel.show_eval_nearest(voted.id)
    assert panel.current_query().nearest_eval == voted.id
    qtbot.waitUntil(lambda: panel.model.rowCount() == 2, timeout=5_000)
    assert {panel.model.sample_id(0), panel.model.sample_id(1)} == {ids[0], ids[2]}
    assert panel.nearest_button.isVisible() and f"#{voted.id}" in panel.nearest_button.text()
    panel.nearest_button.click()
    assert panel.current_query().nearest_eval is None and not panel.nearest_button.isVisible()
    qtbot.waitUntil(lambda: panel.model.rowCount() == len(SAMPLES), timeout=5_000)


def test_nearest_samples_of_a_student_run_come_from_its_snapshot(project):
    from studio.core.evaluation.model import SystemSpec
    from studio.core.training.settings import TrainSettings
    from tests.eval_votes_support import SYSTEMS

    ids = accepted(project, SAMPLES[1:])
    snapshot = project.snapshots.create("v1")
    run = project.training.create(snapshot=snapshot.id, base_model="org/model", settings=TrainSettings())
    accepted(project, SAMPLES[:1])  # not in the run's snapshot
    student = SystemSpec("run", label=f"run:{run.id}", run=str(run.id), key=f"run:{run.id}:fingerprint")
    evaluation = make_evaluation(project, PROMPTS, [STUDENT, TEACHER], systems=(student, SYSTEMS[1]))
    found = lost.nearest_samples(project, evaluation, evaluation.prompt_ids[:1], k=1)
    assert [s for s, _, _ in found] == [ids[0]]


def test_judge_outcomes_with_human_votes_over_them(project):
    pytest.importorskip("studio.core.evaluation.engine")  # the judge's outcomes: helper C's engine
    from studio.core.evaluation.model import FIRST, SECOND, JudgeSpec
    from studio.core.llm.pricing import Usage
    from tests.eval_votes_support import SYSTEMS

    judge = JudgeSpec({"base_url": "http://127.0.0.1:9/v1", "model": "judge"}, "{instruction}{input}{answer_a}{answer_b}")
    evaluation = make_evaluation(project, PROMPTS[:2], [STUDENT[:2], TEACHER[:2]], judge=judge)
    settings_hash = evaluation.settings.answers.hash()

    def judged(prompt: EvalPrompt, winner: int) -> None:  # consistent in both orders
        a, b = (project.evaluations.cached_answer(s.key, prompt.hash, settings_hash).id for s in SYSTEMS)
        for first, second in ((a, b), (b, a)):
            shown_first_wins = (first == a) == (winner == 0)
            project.evaluations.store_judgment(judge.key(), first, second, FIRST if shown_first_wins else SECOND,
                                               "[[A]]" if shown_first_wins else "[[B]]", usage=Usage(), cost=0.0,
                                               latency_s=None)

    judged(PROMPTS[0], winner=1)  # the judge: the student lost prompt 0 ...
    judged(PROMPTS[1], winner=0)  # ... and won prompt 1
    vote(project, evaluation, 0, "a")  # a human: the student won 0 ...
    vote(project, evaluation, 1, "b")  # ... and lost 1
    merged = lost.lost_prompts(lost.evaluation_outcomes(project, evaluation))
    assert [p.prompt_id for p in merged] == [evaluation.prompt_ids[1]]  # the human vote wins
    # a caller that went by the judge alone may still send prompt 0 to the seeds, with the judge's winner
    seed_ids = lost.to_seeds(project, evaluation, evaluation.prompt_ids)
    outputs = sorted(project.seeds.get(i).instances[0].output for i in seed_ids)
    assert outputs == sorted(TEACHER[:2])


def test_cli_a_second_to_seeds_does_not_claim_to_release_again_and_nearest_says_when_none(project, voted, capsys):
    root = project.root
    project.close()  # no accepted samples: nothing to be near
    assert main(["eval", "lost", str(voted.id), "--to-seeds", "--nearest", "2", "--project", str(root)]) == 0
    out = capsys.readouterr().out
    assert "The 2 prompts left the evaluation set" in out
    assert "No training sample is near these prompts: the accepted samples" in out
    assert main(["eval", "lost", str(voted.id), "--to-seeds", "--json", "--project", str(root)]) == 0
    assert json.loads(capsys.readouterr().out)["released"] == 0
    assert main(["eval", "lost", str(voted.id), "--to-seeds", "--project", str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 were seeds already" in out and "The 2 prompts left" not in out
    assert "2 prompts had left the evaluation set already" in out


def test_nearest_samples_of_a_student_run_leave_out_what_the_run_held_out(project):
    """A validation-split prompt is in the run's snapshot but was never trained on: not "what it learned from"."""
    from studio.core.evaluation.model import SystemSpec
    from studio.core.training.settings import TrainSettings
    from studio.core.training.split import split_records
    from tests.eval_votes_support import SYSTEMS

    accepted(project, [f"Write line {i} of the poem about the sea." for i in range(20)])
    snapshot = project.snapshots.create("v1")
    settings = TrainSettings()
    run = project.training.create(snapshot=snapshot.id, base_model="org/model", settings=settings)
    [held] = split_records(project.snapshots.items(snapshot.id), settings)[1]
    student = SystemSpec("run", label=f"run:{run.id}", run=str(run.id), key=f"run:{run.id}:fingerprint")
    evaluation = make_evaluation(project, [EvalPrompt(held.instruction)], [["Waves."], ["The sea sings."]],
                                 systems=(student, SYSTEMS[1]))
    found = lost.nearest_samples(project, evaluation, evaluation.prompt_ids, k=3)
    assert len(found) == 3 and held.sample_id not in {s for s, _, _ in found}
    assert all(score < 1.0 for _, _, score in found)


def test_nearest_samples_of_a_deleted_student_run_say_so(project):
    from studio.core.evaluation.model import SystemSpec
    from studio.core.training.settings import TrainSettings
    from tests.eval_votes_support import SYSTEMS

    accepted(project, SAMPLES)
    snapshot = project.snapshots.create("v1")
    run = project.training.create(snapshot=snapshot.id, base_model="org/model", settings=TrainSettings())
    student = SystemSpec("run", label="student", run=str(run.id), key=f"run:{run.id}:fingerprint")
    evaluation = make_evaluation(project, PROMPTS, [STUDENT, TEACHER], systems=(student, SYSTEMS[1]))
    project.training.delete(run.id)
    with pytest.raises(EvaluationError, match=rf"The student, student, was training run {run.id}, which is deleted"):
        lost.nearest_samples(project, evaluation, evaluation.prompt_ids[:1], k=1)
