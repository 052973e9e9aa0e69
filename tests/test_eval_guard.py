"""The wall: evaluation-only prompts are never generation examples nor training samples.

Generate refuses seed tasks that are eval prompts and its ``eval_prompt`` filter rejects generated
copies (a real run against the loopback fake teacher); Train refuses a snapshot holding one, except
the validation split the run itself holds out; the pre-flight check (the real child, through the
CLI and the Train panel) reports exact copies as an error and ROUGE-L near ones as a warning.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher  # noqa: E402

from studio.cli import main as cli_main  # noqa: E402
from studio.core.evaluation.guard import EvalWall, exempt_for_snapshot, record_hash  # noqa: E402
from studio.core.evaluation.model import EvalPrompt  # noqa: E402
from studio.core.formats import Record  # noqa: E402
from studio.core.generation.config import ConfigError, RunConfig  # noqa: E402
from studio.core.generation.engine import GenerationEngine, prepare_run  # noqa: E402
from studio.core.generation.filters import EVAL_PROMPT, CandidateFilter, FilterSettings  # noqa: E402
from studio.core.generation.prompts import Candidate  # noqa: E402
from studio.core.llm import EndpointConfig  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.samples import Sample, Status  # noqa: E402
from studio.core.seeds import Instance, SeedTask  # noqa: E402
from studio.core.training.runs import TrainingRunError  # noqa: E402
from studio.core.training.settings import TrainSettings  # noqa: E402

KEY = "sk-fake-teacher"
EVAL_INSTRUCTION = "Write a short thank-you note to a neighbour who watered your plants."
NEAR_INSTRUCTION = "Write a short thank-you note to a neighbour who watered all your plants."


def eval_set(project: Project, *instructions: str, name: str = "held-out") -> list[EvalPrompt]:
    project.prompt_sets.create(name, [EvalPrompt(text) for text in instructions])
    return project.prompt_sets.prompts(name)


# -- the wall itself --------------------------------------------------------------------------------
def test_exact_is_normalised_and_near_is_rouge_l(project: Project) -> None:
    eval_set(project, EVAL_INSTRUCTION, "Name three rivers in Europe.")
    project.prompt_sets.create("with-input", [EvalPrompt("Translate to French.", "The cat sleeps.")])
    wall = EvalWall.load(project.conn)
    assert len(wall) == 3
    assert wall.exact("  write a SHORT thank-you note to a neighbour   who watered your plants.").instruction == \
        EVAL_INSTRUCTION
    assert wall.exact("Translate to French.", "the cat  sleeps.") is not None
    assert wall.exact("Translate to French.") is None  # another prompt: the input is part of it
    assert wall.exact("Translate to French.\n\nThe cat sleeps.") is not None  # the same words, one field
    found, score = wall.near(NEAR_INSTRUCTION)
    assert found.instruction == EVAL_INSTRUCTION and 0.7 <= score < 1.0
    assert wall.near("Explain how a rocket engine works in simple terms.") is None
    assert wall.set_name(found) == "held-out"

    records = [Record("Unrelated task about tigers.", "", "x"), Record(EVAL_INSTRUCTION, "", "copy"),
               Record(NEAR_INSTRUCTION, "", "near"), Record("Name three rivers in Europe.", "", "Danube")]
    report = wall.check_records(records)
    assert [(i, p.instruction) for i, p in report.exact] == [(1, EVAL_INSTRUCTION), (3, "Name three rivers in Europe.")]
    assert [(i, p.instruction) for i, p, _ in report.near] == [(2, EVAL_INSTRUCTION)]
    exempted = wall.check_records(records, exempt_hashes={record_hash(EVAL_INSTRUCTION)}, near=False)
    assert [i for i, _ in exempted.exact] == [3] and exempted.near == []


def test_an_empty_wall_answers_at_once_without_an_index(project: Project) -> None:
    wall = EvalWall.load(project.conn)
    assert not wall and wall.exact(EVAL_INSTRUCTION) is None and wall.near(EVAL_INSTRUCTION) is None
    assert not wall.check_records([Record(EVAL_INSTRUCTION, "", "x")] * 100)
    assert wall._index is None  # nothing was built


def test_released_prompts_are_training_data_again(project: Project) -> None:
    prompts = eval_set(project, EVAL_INSTRUCTION, "Name three rivers in Europe.")
    project.prompt_sets.release([prompts[0].id], "seeds (evaluation 1)")
    wall = EvalWall.load(project.conn)
    assert wall.exact(EVAL_INSTRUCTION) is None and wall.exact("Name three rivers in Europe.") is not None


# -- Generate -------------------------------------------------------------------------------------------
@pytest.fixture
def teacher():
    with FakeTeacher(max_lifetime_s=120) as server:
        yield server


def _config(server: FakeTeacher, **overrides) -> RunConfig:
    config = RunConfig(teacher=EndpointConfig(base_url=server.base_url, model="fake-teacher", timeout_s=5),
                       backoff_base_s=0.01, backoff_max_s=0.05, request_timeout_s=5)
    config.prices = {"fake-teacher": (1.0, 2.0)}
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def test_a_seed_that_is_an_eval_prompt_is_refused_by_generate(project: Project, teacher: FakeTeacher) -> None:
    ids = project.seeds.add_many([
        SeedTask("Give a short example of a seed topic for a curious student.", [Instance("", "An example.")]),
        SeedTask(EVAL_INSTRUCTION.upper(), [Instance("", "Dear neighbour, thank you.")]),
    ])
    eval_set(project, EVAL_INSTRUCTION)
    with pytest.raises(ConfigError, match=rf"1 seed task is an evaluation-only prompt \(seed {ids[1]}: "
                                          r"'Write a short thank-you note.*\(set 'held-out'\)\).*Seeds page"):
        prepare_run(project, _config(teacher, target=5), api_key=KEY)
    assert project.generation.latest_run_id() is None  # a refused start stores nothing
    project.seeds.delete([ids[1]])
    assert prepare_run(project, _config(teacher, target=5), api_key=KEY) > 0


def test_the_filter_rejects_generated_copies_exact_or_near(project: Project) -> None:
    eval_set(project, EVAL_INSTRUCTION)
    candidate_filter = CandidateFilter(FilterSettings(), wall=EvalWall.load(project.conn))
    exact = candidate_filter.check(Candidate(EVAL_INSTRUCTION.lower(), "", "Dear neighbour, thanks."))
    assert (exact.reason, exact.detail, exact.nearest_instruction, exact.score) == (
        EVAL_PROMPT, "set held-out", EVAL_INSTRUCTION, 1.0)
    near = candidate_filter.check(Candidate(NEAR_INSTRUCTION, "", "Dear neighbour."))
    assert near.reason == EVAL_PROMPT and "ROUGE-L" in near.detail and 0.7 <= near.score < 1.0
    assert candidate_filter.check(Candidate("Explain why the sky looks blue on a clear day.", "", "Light.")).kept
    # Without a wall (outside a run) the check passes everything.
    assert CandidateFilter(FilterSettings()).check(Candidate(EVAL_INSTRUCTION, "", "x")).kept


class CopyingTeacher(FakeTeacher):
    """A teacher that slips the evaluation prompt (and a near copy) into every batch."""

    def batch(self, key: str, count: int) -> list[tuple[str, str, str]]:
        items = super().batch(key, count)
        items[0] = (EVAL_INSTRUCTION, "", "Dear neighbour, thank you for the plants.")
        items[1] = (NEAR_INSTRUCTION, "", "Dear neighbour, thanks a lot.")
        return items


def test_a_generation_run_never_keeps_an_eval_prompt(project: Project) -> None:
    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(6)])
    eval_set(project, EVAL_INSTRUCTION)
    with CopyingTeacher(max_lifetime_s=120) as server:
        config = _config(server, target=12, num_tasks=6, concurrency=2)
        run_id = prepare_run(project, config, api_key=KEY)
        result = GenerationEngine(project, run_id, api_key=KEY).run_blocking()
    assert result.reason == "target"
    rejected = project.generation.rejected(run_id, EVAL_PROMPT)
    assert {r["instruction"] for r in rejected} == {EVAL_INSTRUCTION, NEAR_INSTRUCTION}
    kept = [r[0] for r in project.conn.execute("SELECT instruction FROM samples")]
    assert kept and EVAL_INSTRUCTION not in kept and NEAR_INSTRUCTION not in kept


def test_eval_prompts_are_never_shown_to_the_teacher_as_examples(project: Project, teacher: FakeTeacher) -> None:
    """A set made after the run was stored (a resumed run): the seed and the accepted sample it names are left out."""
    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(3)]
                           + [SeedTask(EVAL_INSTRUCTION, [Instance("", "Dear neighbour.")])])
    accepted = "Name three rivers in Europe and say where each one rises."
    project.samples.add(Sample(accepted, "", "Danube, Rhine, Seine.", status=Status.ACCEPTED))
    config = _config(teacher, target=30, num_tasks=5, k_examples=3, accepted_share=0.5, concurrency=2)
    run_id = prepare_run(project, config, api_key=KEY)
    eval_set(project, EVAL_INSTRUCTION, accepted)
    assert GenerationEngine(project, run_id, api_key=KEY).run_blocking().reason == "target"
    prompts = [json.dumps(body["messages"]) for body in teacher.bodies]
    assert len(prompts) >= 6 and not any(EVAL_INSTRUCTION in p or accepted in p for p in prompts)
    assert any("seed topic number" in p for p in prompts)


# -- Train ----------------------------------------------------------------------------------------------
def _snapshot(project: Project, instructions: list[str], name: str = "v1"):
    for text in instructions:
        project.samples.add(Sample(text, "", f"An answer to: {text}", status=Status.ACCEPTED))
    return project.snapshots.create(name)


TOPICS = [f"Describe the history of invention number {i} in two sentences." for i in range(40)]


def test_train_refuses_a_snapshot_that_holds_an_eval_prompt(project: Project) -> None:
    snap = _snapshot(project, [*TOPICS[:10], EVAL_INSTRUCTION, *TOPICS[10:20]])
    eval_set(project, EVAL_INSTRUCTION)
    settings = TrainSettings()
    settings.validation_fraction = 0.0  # nothing held out: the eval prompt would be trained on
    sample = project.snapshots.items(snap.id)[10].sample_id
    with pytest.raises(TrainingRunError, match=rf"snapshot 'v1' holds 1 evaluation-only prompt \(first: sample "
                                               rf"{sample}, 'Write a short.*\(set 'held-out'\)\).*never training data"):
        project.training.create(snapshot=snap.id, base_model="org/model", settings=settings)
    assert project.training.list() == []
    # A near copy does not stop a run (the pre-flight check warns about it instead).
    project.prompt_sets.delete("held-out")
    eval_set(project, NEAR_INSTRUCTION, name="near")
    assert project.training.create(snapshot=snap.id, base_model="org/model", settings=settings).id == 1


def test_a_validation_split_set_is_not_refused_for_the_run_that_holds_it_out(project: Project) -> None:
    snap = _snapshot(project, TOPICS)
    prompt_set = project.prompt_sets.from_validation_split(snap.id, seed=3, validation_fraction=0.1)
    assert prompt_set.prompt_count == 4
    same = TrainSettings()
    same.seed, same.validation_fraction = 3, 0.1
    assert len(exempt_for_snapshot(project.conn, snap.id, same)) == 4
    run = project.training.create(snapshot=snap.id, base_model="org/model", settings=same)
    assert run.id == 1
    other = TrainSettings()
    other.seed, other.validation_fraction = 4, 0.1  # another split trains on some of the set
    with pytest.raises(TrainingRunError, match="evaluation-only prompt"):
        project.training.create(snapshot=snap.id, base_model="org/model", settings=other)


def test_a_validation_split_leaves_out_a_held_out_duplicate_of_a_training_sample(project: Project) -> None:
    from studio.core.training.split import held_out_indexes

    for text in TOPICS[:19]:
        project.samples.add(Sample(text, "", "An answer.", status=Status.ACCEPTED))
    project.samples.add(Sample(TOPICS[0].upper(), "", "Another answer.", status=Status.ACCEPTED))  # the same prompt
    snap = project.snapshots.create("v1")
    assert snap.sample_count == 20
    settings = TrainSettings()
    settings.validation_fraction = 0.2
    settings.seed = next(seed for seed in range(100)
                         if len({0, 19} & set(held_out_indexes(20, _seeded(settings, seed)))) == 1)
    prompt_set = project.prompt_sets.from_validation_split(snap.id, seed=settings.seed, validation_fraction=0.2)
    assert (prompt_set.prompt_count, prompt_set.meta["also_in_training"]) == (3, 1)
    held = {p.instruction.casefold() for p in project.prompt_sets.prompts(prompt_set.id)}
    assert TOPICS[0].casefold() not in held
    assert project.training.create(snapshot=snap.id, base_model="org/model", settings=settings).id == 1


def test_a_held_out_prompt_also_in_the_training_part_stays_refused(project: Project) -> None:
    from studio.core.training.split import held_out_indexes

    records = [Record(text, "", "x") for text in TOPICS[:19]] + [Record(TOPICS[0], "", "again")]  # twice
    settings = TrainSettings()
    settings.validation_fraction = 0.2
    settings.seed = next(seed for seed in range(100)  # a split holding out one copy of TOPICS[0], not both
                         if len({0, 19} & set(held_out_indexes(20, _seeded(settings, seed)))) == 1)
    held = held_out_indexes(20, settings)
    exempt = exempt_for_snapshot(project.conn, 0, settings, records)
    assert record_hash(TOPICS[0]) not in exempt  # trained on through its other copy
    assert exempt == {record_hash(records[i].instruction) for i in held if i not in (0, 19)}


def _seeded(settings: TrainSettings, seed: int) -> TrainSettings:
    copy = TrainSettings.from_dict(settings.to_dict())
    copy.seed = seed
    return copy


# -- the pre-flight check (the real child) ------------------------------------------------------------
def _preflight(root: Path, *args: str, capsys) -> tuple[int, dict]:
    code = cli_main(["--project", str(root), "train", "preflight", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_an_eval_prompt_is_refused_by_the_training_snapshots_preflight(tmp_path: Path, capsys) -> None:
    root = tmp_path / "p"
    base = tmp_path / "no-model"  # the check fails on the model early: no tokenizer is loaded
    base.mkdir()
    with Project.create(root) as project:
        # 23 samples: the default split holds out one (index 16), neither the copy (21) nor the near one (22).
        _snapshot(project, [*TOPICS[:20], EVAL_INSTRUCTION, NEAR_INSTRUCTION, TOPICS[20]], name="s1")
        run = project.training.create(snapshot="s1", base_model="org/model", settings=TrainSettings())
        code, report = _preflight(root, "--snapshot", "s1", "--base-model", str(base), capsys=capsys)
        assert [c["code"] for c in report["checks"] if c["code"].startswith("eval")] == []  # no set yet
        eval_set(project, EVAL_INSTRUCTION)

    code, report = _preflight(root, "--snapshot", "s1", "--base-model", str(base), capsys=capsys)
    assert code == 1
    checks = {c["code"]: c for c in report["checks"]}
    assert checks["eval_prompt"]["level"] == "error"
    assert checks["eval_prompt"]["message"].startswith(
        "1 training sample is an evaluation-only prompt (first: sample 21,")
    assert checks["eval_prompt_near"]["level"] == "warning" and "ROUGE-L" in checks["eval_prompt_near"]["message"]

    # A run made before the set existed: its pre-flight sees the set now (its config is left as it was).
    before = run.config_path.read_text()
    code, report = _preflight(root, str(run.id), capsys=capsys)
    assert code == 1 and "eval_prompt" in {c["code"] for c in report["checks"] if c["level"] == "error"}
    assert run.config_path.read_text() == before and "project_checks" not in json.loads(before)

    assert cli_main(["--project", str(root), "train", "preflight", "--snapshot", "s1", "--base-model", str(base)]) == 1
    assert "ERROR   eval_prompt: 1 training sample is an evaluation-only prompt" in capsys.readouterr().out


def test_the_train_panels_preflight_tab_shows_the_eval_prompt_error(qtbot, project: Project, tmp_path: Path) -> None:
    pytest.importorskip("pytestqt")
    from studio.core.training import launch
    from studio.ui.project_context import ProjectContext
    from studio.ui.train_panel import TrainPanel

    _snapshot(project, [*TOPICS[:20], EVAL_INSTRUCTION])
    eval_set(project, EVAL_INSTRUCTION)
    base = tmp_path / "no-model"
    base.mkdir()
    context = ProjectContext(project)
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.preflight_command = launch.preflight_command  # the real child
    panel.set_context(context)
    qtbot.waitUntil(lambda: panel.snapshot.count() == 1, timeout=5_000)
    panel.base_model.setCurrentText(str(base))
    panel.preflight_button.click()
    qtbot.waitUntil(lambda: panel.preflight.report is not None, timeout=30_000)
    assert panel.tabs.currentWidget() is panel.preflight
    codes = {c["code"]: c["level"] for c in panel.preflight.report["checks"]}
    assert codes["eval_prompt"] == "error"
    assert "evaluation-only prompt" in panel.preflight.checks.toPlainText()
    panel.shutdown()
    context.close()


# -- the audit: ways round the wall ------------------------------------------------------------------
def test_punctuation_and_text_moved_between_fields_do_not_get_an_eval_prompt_past_train(project: Project) -> None:
    project.prompt_sets.create("held-out", [EvalPrompt("Translate to French.", "The cat sleeps.")])
    wall = EvalWall.load(project.conn)
    for instruction, input in [("Translate to French", "The cat sleeps"),         # no full stops
                               ("Translate to French:", "The cat sleeps!"),        # other punctuation
                               ("Translate to French: the cat sleeps.", ""),      # all in the instruction
                               ("Translate", "to French. The cat sleeps.")]:      # the split moved
        assert wall.exact(instruction, input) is not None, (instruction, input)
    assert wall.exact("Translate to French.", "The dog sleeps.") is None  # other words: another prompt
    project.samples.add(Sample("Translate to French:", "the cat sleeps", "Le chat dort.", status=Status.ACCEPTED))
    snap = project.snapshots.create("v1")
    settings = TrainSettings()
    settings.validation_fraction = 0.0
    with pytest.raises(TrainingRunError, match="holds 1 evaluation-only prompt"):
        project.training.create(snapshot=snap.id, base_model="org/model", settings=settings)


def test_a_run_created_before_the_prompt_set_is_refused_on_resume_and_export(project: Project, tmp_path: Path,
                                                                            capsys) -> None:
    snap = _snapshot(project, [*TOPICS[:10], EVAL_INSTRUCTION])
    settings = TrainSettings()
    settings.validation_fraction = 0.0
    run = project.training.create(snapshot=snap.id, base_model="org/model", settings=settings, name="early")
    eval_set(project, EVAL_INSTRUCTION.upper())  # the set arrives after the run was stored
    with pytest.raises(TrainingRunError, match="holds 1 evaluation-only prompt"):
        project.training.prepare_resume(run.id)
    assert not run.read_config().resume  # nothing was changed for a resume
    job = tmp_path / "job"
    assert cli_main(["train", "export-job", "early", str(job), "--project", str(project.root)]) == 1
    assert "holds 1 evaluation-only prompt" in capsys.readouterr().err and not job.exists()
    project.prompt_sets.delete("held-out")
    assert project.training.prepare_resume(run.id).read_config().resume


def test_a_resumed_self_instruct_run_sends_no_stored_request_that_shows_an_eval_prompt(
        project: Project, teacher: FakeTeacher) -> None:
    """Requests stored (and instructions kept) before the set was imported are not sent on resume."""
    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(5)]
                           + [SeedTask("Classify the sentiment of the review as positive or negative.",
                                       [Instance("Great food.", "positive")], is_classification=True)])
    store = project.generation
    config = _config(teacher, mode="self-instruct", target=40, concurrency=2, num_tasks=6, max_requests=2)
    run_id = prepare_run(project, config, api_key=KEY)
    assert GenerationEngine(project, run_id, api_key=KEY).run_blocking().reason == "max_requests"
    pending = store.unfinished_requests(run_id)
    waiting = [text for r in pending for text in r.payload.get("instructions", [])]
    assert waiting, "the chain stopped before classifying what stage 1 kept"
    # A kept sample of the run (self-instruct shows those to the teacher) becomes an eval prompt too.
    kept = "Describe the colour of the sea at dawn to someone who has never seen it."
    project.samples.add(Sample(kept, "", "Grey, then pink.", status=Status.ACCEPTED, run_id=run_id))
    sentiment = "Classify the sentiment of the review as positive or negative."
    eval_set(project, waiting[0], kept)
    project.prompt_sets.create("with-input", [EvalPrompt(sentiment, "Great food.")])  # the seed itself
    project.conn.execute("UPDATE generation_runs SET config = json_set(config, '$.max_requests', NULL) WHERE id = ?",
                         (run_id,))
    before = len(teacher.bodies)
    assert GenerationEngine(project, run_id, api_key=KEY).run_blocking().reason == "target"
    sent = [json.dumps(body["messages"]) for body in teacher.bodies[before:]]
    assert sent and not any(waiting[0] in p or sentiment in p or kept in p for p in sent)
    assert any("seed topic number" in p for p in sent)


def test_a_near_copy_is_found_when_text_moved_between_instruction_and_input(project: Project) -> None:
    project.prompt_sets.create("held-out", [
        EvalPrompt("Translate to French: the cat sleeps on the warm mat near the kitchen door."),
        EvalPrompt("Summarise the report.", "Sales rose in the north and fell in the south after the storm.")])
    wall = EvalWall.load(project.conn)
    moved_out = wall.check("Translate into French:", "The cat sleeps on the warm mat by the kitchen door!")
    assert moved_out is not None and 0.7 <= moved_out[1] < 1.0
    moved_in = wall.check("Summarise this report: sales rose in the north and fell in the south after a storm")
    assert moved_in is not None and moved_in[0].instruction == "Summarise the report."
    assert wall.check("Translate into French:", "Good morning, how did you sleep?") is None
    project.samples.add(Sample("Translate into French:", "The cat sleeps on the warm mat by the kitchen door!",
                               "Le chat dort.", status=Status.ACCEPTED))
    snap = project.snapshots.create("v1")
    settings = TrainSettings()
    settings.validation_fraction = 0.0
    from studio.core.evaluation.guard import preflight_checks

    checks = preflight_checks(project.conn, snap.id, settings)
    assert [(c["level"], c["code"]) for c in checks] == [("warning", "eval_prompt_near")]


def test_a_prompt_released_to_the_seeds_is_still_blocked_while_another_set_holds_it(
        project: Project, teacher: FakeTeacher) -> None:
    from studio.core.evaluation import lost
    from tests.eval_votes_support import make_evaluation

    prompts = [EvalPrompt("Write a polite email declining a meeting invitation.", "Meeting on Friday at 3pm"),
               EvalPrompt("Summarise the plot of Hamlet in two sentences.")]
    evaluation = make_evaluation(project, prompts, [["No.", "Sad."], ["Dear Ana, sadly I cannot come.",
                                                                      "Hamlet avenges his father; most die."]])
    project.prompt_sets.create("copy", [EvalPrompt(prompts[0].instruction.upper(), prompts[0].input)])
    project.votes.ensure_queue(evaluation)
    for vote in project.votes.votes(evaluation.id):
        project.votes.cast(vote.id, "b")  # the teacher (B) wins both
    outcomes = lost.evaluation_outcomes(project, evaluation)
    assert sorted(p.prompt_id for p in lost.lost_prompts(outcomes)) == evaluation.prompt_ids
    lost.to_seeds(project, evaluation, evaluation.prompt_ids)
    wall = EvalWall.load(project.conn)
    assert wall.exact(prompts[1].instruction) is None  # released: training data now, as the wording says
    held = wall.exact(prompts[0].instruction, prompts[0].input)
    assert held is not None and wall.set_name(held) == "copy"  # the other set still holds it
    with pytest.raises(ConfigError, match=r"1 seed task is an evaluation-only prompt .*\(set 'copy'\)"):
        prepare_run(project, _config(teacher, target=5), api_key=KEY)


def test_imported_and_chat_samples_that_are_eval_prompts_are_refused_by_train(tmp_path: Path, capsys) -> None:
    """`data import` and Chat's "To Curate" put samples in Curate; freezing warns, Train refuses."""
    from studio.core.chat.conversations import Answer, ColumnSpec, Conversation, Turn
    from studio.core.chat.session import answer_to_sample
    from studio.core.chat.sources import ENDPOINT, ModelSource
    from studio.core.evaluation.guard import snapshot_note

    root = tmp_path / "project"
    with Project.create(root) as project:
        eval_set(project, EVAL_INSTRUCTION, "Name three rivers in Europe.")
        assert snapshot_note(project.conn, _snapshot(project, TOPICS[:5], name="clean").id) is None
    data = tmp_path / "more.json"
    data.write_text(json.dumps([{"instruction": f"{EVAL_INSTRUCTION.lower()}!", "input": "", "output": "Thanks!"}]
                               + [{"instruction": t, "input": "", "output": "x"} for t in TOPICS[5:15]]))
    assert cli_main(["data", "import", str(data), "--status", "accepted", "--project", str(root)]) == 0
    assert cli_main(["snapshot", "create", "imported", "--project", str(root)]) == 0
    assert "warning: the snapshot holds 1 evaluation-only prompt" in capsys.readouterr().err  # said when frozen
    assert cli_main(["train", "start", "--snapshot", "imported", "--base-model", "org/model",
                     "--set", "validation_fraction=0", "--project", str(root)]) == 1
    assert "holds 1 evaluation-only prompt" in capsys.readouterr().err
    with Project.open(root) as project:
        assert "holds 1 evaluation-only prompt" in snapshot_note(project.conn, project.snapshots.get("imported").id)
        # Chat: the user asked an eval prompt (no full stop) and sent the answer to Curate.
        talk = Conversation(id=None, title="A talk", mode="chat", columns=[ColumnSpec(source=ModelSource(
            ENDPOINT, "gpt @ api", base_url="http://127.0.0.1:9/v1", model="gpt-x"))])
        talk.turns.append(Turn("name three rivers in europe", "", [Answer("Danube, Rhine, Seine.", "stop")]))
        sample_id = answer_to_sample(project, project.conversations.create(talk), 0, 0)
        project.conn.execute("UPDATE samples SET status = 'accepted' WHERE id = ?", (sample_id,))
        chat_snap = project.snapshots.create("with-chat")
        settings = TrainSettings()
        settings.validation_fraction = 0.0
        with pytest.raises(TrainingRunError, match="holds 2 evaluation-only prompts"):
            project.training.create(snapshot=chat_snap.id, base_model="org/model", settings=settings)


def test_a_chat_prompt_is_walled_by_its_last_user_message_against_alpaca_records(project: Project,
                                                                                  tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "system", "content": "You are terse."},
                                             {"role": "user", "content": "Translate to French:\n\nThe cat sleeps."}]})
                    + "\n")
    project.prompt_sets.import_file(path, name="chat")
    wall = EvalWall.load(project.conn)
    assert wall.exact("Translate to French", "the cat sleeps") is not None
    assert wall.exact("Translate to French:") is None and wall.exact("You are terse.") is None
    project.samples.add(Sample("Translate to French.", "The cat sleeps", "Le chat dort.", status=Status.ACCEPTED))
    snap = project.snapshots.create("v1")
    settings = TrainSettings()
    settings.validation_fraction = 0.0
    with pytest.raises(TrainingRunError, match=r"holds 1 evaluation-only prompt .*\(set 'chat'\)"):
        project.training.create(snapshot=snap.id, base_model="org/model", settings=settings)


def test_self_instructs_instance_stage_rejects_an_instruction_and_input_that_make_an_eval_prompt(
        project: Project, teacher: FakeTeacher, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instruction alone passed stage 1 (ROUGE-L 0.62); with the input the teacher wrote, it is the prompt."""
    import fake_teacher

    instruction = "Translate this sentence into French"
    original = fake_teacher.respond

    def respond(server: FakeTeacher, key: str, prompt: str) -> str:
        if "one per line" in prompt and "Answer one line per task" not in prompt:
            return f"1. {instruction}\n" + "\n".join(
                f"{n}. {text}" for n, (text, _, _) in enumerate(server.batch(key, 3), start=2))
        if "Output: ..." in prompt and f"Task: {instruction}" in prompt:
            return "Example 1\nInput: The cat sleeps on the mat.\nOutput: Le chat dort sur le tapis."
        return original(server, key, prompt)

    monkeypatch.setattr(fake_teacher, "respond", respond)
    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(4)])
    eval_set(project, "Translate this sentence into French: the cat sleeps on the mat.")
    config = _config(teacher, mode="self-instruct", target=6, concurrency=1, num_tasks=4, max_requests=12)
    run_id = prepare_run(project, config, api_key=KEY)
    GenerationEngine(project, run_id, api_key=KEY).run_blocking()
    kept = [tuple(r) for r in project.conn.execute("SELECT instruction, input FROM samples")]
    assert kept and (instruction, "The cat sleeps on the mat.") not in kept
    rejected = project.generation.rejected(run_id, EVAL_PROMPT)
    assert [(r["instruction"], r["input"]) for r in rejected] == [(instruction, "The cat sleeps on the mat.")]


def test_a_seed_whose_instruction_alone_is_an_eval_prompt_is_never_shown(project: Project,
                                                                          teacher: FakeTeacher) -> None:
    """Self-instruct shows seed instructions without inputs: the eval prompt's whole text would be there."""
    sentiment = "Classify the sentiment of the review as positive or negative."
    ids = project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                           [Instance("", f"Example {i}.")]) for i in range(4)]
                                 + [SeedTask(sentiment, [Instance("Great food.", "positive")], is_classification=True)])
    eval_set(project, sentiment)
    config = _config(teacher, mode="self-instruct", target=8, concurrency=1, num_tasks=4, max_requests=6)
    with pytest.raises(ConfigError, match=rf"1 seed task is an evaluation-only prompt \(seed {ids[-1]}: 'Classify"):
        prepare_run(project, config, api_key=KEY)
    # A run stored before the set (resumed now) leaves the seed out of every request.
    project.prompt_sets.delete("held-out")
    run_id = prepare_run(project, config, api_key=KEY)
    eval_set(project, sentiment)
    GenerationEngine(project, run_id, api_key=KEY).run_blocking()
    sent = [json.dumps(body["messages"]) for body in teacher.bodies]
    assert sent and not any(sentiment in p for p in sent)


def test_a_stored_alpaca_request_showing_an_accepted_sample_is_not_sent_once_that_sample_is_an_eval_prompt(
        project: Project, teacher: FakeTeacher) -> None:
    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(3)])
    accepted = "Name three rivers in Europe and say where each one rises."
    project.samples.add(Sample(accepted, "", "Danube, Rhine, Seine.", status=Status.ACCEPTED))
    config = _config(teacher, target=10, num_tasks=5, k_examples=3, accepted_share=0.5, concurrency=1)
    run_id = prepare_run(project, config, api_key=KEY)
    stored = f"Here are examples.\n\nInstruction: {accepted}\nInput: <noinput>\nOutput: Danube.\n\nWrite 5 more."
    project.generation.add_request(run_id, 0, stored, [])  # stored before the set: its text is fixed
    eval_set(project, accepted)
    assert GenerationEngine(project, run_id, api_key=KEY).run_blocking().reason == "target"
    sent = [json.dumps(body["messages"]) for body in teacher.bodies]
    assert sent and not any(accepted in p for p in sent)
