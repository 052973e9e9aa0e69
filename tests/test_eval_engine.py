"""The evaluation engine and the pairwise judge against loopback fake systems and judges (real HTTP, real SQLite)."""
from __future__ import annotations

import socket
import threading

import pytest
from eval_support import (
    client_factory,
    create_evaluation,
    judge_client,
    prompts,
    system,
)
from fake_eval_endpoints import MARKER, FakeEvalServer, echo_answer

from studio.core.evaluation.engine import (
    EvalEngine,
    EvalProgress,
    answer_for,
    estimate,
    evaluation_prompts,
    outcomes,
    prompt_messages,
    prompt_rows,
)
from studio.core.evaluation.judge import (
    DEFAULT_TEMPLATE,
    PAIRWISE_JUDGE,
    check_template,
    default_judge_spec,
)
from studio.core.evaluation.model import (
    DONE,
    FAILED,
    FIRST,
    SECOND,
    STOPPED,
    TIE,
    UNREADABLE,
    EvalPrompt,
    EvaluationError,
    SystemSpec,
)
from studio.core.evaluation.stats import summarise, wilson_interval
from studio.core.llm.endpoint import EndpointConfig
from studio.core.llm.pricing import Usage
from studio.core.project import Project


@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "p") as opened:
        yield opened


def marked(prompt: str) -> str:
    return f"A careful answer {MARKER} to: {prompt}"


@pytest.fixture
def server():
    fake = FakeEvalServer(answerers={"good": marked, "plain": echo_answer},
                          judges={"judge-marker": "marker", "judge-first": "first", "judge-longer": "longer",
                                  "judge-mumble": "mumble"})
    with fake:
        yield fake


def run(project, evaluation, server, judge: str | None = None, **kwargs):
    engine = EvalEngine(project, evaluation.id, clients=client_factory(),
                        judge_client=judge_client(server, judge) if judge else None, **kwargs)
    return engine.run_blocking()


def wins(found) -> tuple[int, int, int, int]:
    return (sum(o.winner == "a" for o in found), sum(o.winner == "b" for o in found),
            sum(o.winner == "tie" for o in found), sum(o.inconsistent for o in found))


# -- the judge ------------------------------------------------------------------------------------
def spec():
    return default_judge_spec(EndpointConfig(base_url="http://127.0.0.1:9/v1", model="judge"))


def test_the_last_marker_is_the_verdict() -> None:
    judge = spec()
    assert PAIRWISE_JUDGE.verdict(judge, "Not [[B]]: A is clearer.\n[[A]]") == FIRST
    assert PAIRWISE_JUDGE.verdict(judge, "[[A]] looked good, but B is right. [[B]]") == SECOND
    assert PAIRWISE_JUDGE.verdict(judge, "Equal. [[C]]") == TIE
    assert PAIRWISE_JUDGE.verdict(judge, "I prefer A.") == UNREADABLE
    custom = type(judge)(**{**judge.to_dict(), "marker_a": "VERDICT: 1", "marker_b": "VERDICT: 2",
                            "marker_tie": "VERDICT: 0"})
    assert PAIRWISE_JUDGE.verdict(custom, "VERDICT: 2 ... no. VERDICT: 1") == FIRST


def test_the_default_template_and_its_checks() -> None:
    check_template(DEFAULT_TEMPLATE)
    for text in ("[[A]]", "[[B]]", "[[C]]", "order", "Length is not quality"):
        assert text in DEFAULT_TEMPLATE
    judge = spec()
    prompt = EvalPrompt(instruction="Sort {these} words.", input="")
    (message,) = PAIRWISE_JUDGE.messages(judge, prompt, "first {answer}", "second }{")
    assert message["role"] == "user"
    content = message["content"]
    assert "Sort {these} words." in content and "(none)" in content
    assert content.index("first {answer}") < content.index("second }{")
    with pytest.raises(EvaluationError, match=r"lacks \{answer_b\}"):
        check_template("Compare {instruction} {input} {answer_a}.")
    with pytest.raises(EvaluationError, match=r"unknown placeholders: \{reference\}"):
        check_template("{instruction} {input} {answer_a} {answer_b} {reference}")
    with pytest.raises(EvaluationError, match="stray brace"):
        check_template("{instruction} {input} {answer_a} {answer_b} {")
    assert check_template("JSON {{\"k\": 1}} {instruction} {input} {answer_a} {answer_b}") is None
    assert judge.template == DEFAULT_TEMPLATE and judge.label == "judge" and "api_key" not in judge.endpoint
    # The GUI makes its judge here too: a key in the URL would be stored and exported with it.
    with pytest.raises(EvaluationError, match=r"The URL of the judge holds a credential in its query \(api-key\)"):
        default_judge_spec(EndpointConfig(base_url="https://h.example/v1?api-key=sk-123", model="judge"))


def test_what_a_system_is_sent() -> None:
    prompt = EvalPrompt(instruction="Translate.", input="Bonjour")
    endpoint = SystemSpec.parse("http://x/v1#m")
    studio = SystemSpec.parse("run:3")
    sent = prompt_messages(prompt, "Be brief.", endpoint)
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[1]["role"] == "user" and "Translate." in sent[1]["content"] and "Bonjour" in sent[1]["content"]
    assert prompt_messages(prompt, "", studio) == [{"role": "user", "content": "Translate.", "input": "Bonjour"}]
    chat = EvalPrompt(instruction="Hi", messages=[{"role": "user", "content": "Hi"},
                                                  {"role": "assistant", "content": "Hello"},
                                                  {"role": "user", "content": "Tell a joke"}])
    # The system prompt is part of the answer cache key: a chat prompt is sent it too...
    assert prompt_messages(chat, "Be brief.", endpoint) == [{"role": "system", "content": "Be brief."}, *chat.messages]
    assert prompt_messages(chat, "", endpoint) == chat.messages
    # ...unless it brings a system message of its own.
    own = EvalPrompt(instruction="Hi", messages=[{"role": "system", "content": "Be a pirate."},
                                                 {"role": "user", "content": "Hi"}])
    assert prompt_messages(own, "Be brief.", endpoint) == own.messages


def test_a_run_served_by_vllm_gets_the_input_in_its_text(project) -> None:
    import os

    from studio.core.evaluation.engine import running_backend
    from studio.core.serving.catalog import Catalog, ServedModel
    from studio.core.serving.server_info import ServerInfo, info_path, write_info

    prompt = EvalPrompt(instruction="Translate.", input="Bonjour")
    assert running_backend(project) == "studio"  # no server yet: run/base will go to the studio's own
    base = ServedModel("tiny", "base", None, "alpaca")
    write_info(info_path(project.root), ServerInfo(os.getpid(), "127.0.0.1", 8000, Catalog("/m", (base,)),
                                                   backend="vllm"))
    assert running_backend(project) == "vllm"  # vLLM knows no "input" extension
    sent = prompt_messages(prompt, "", SystemSpec.parse("run:3"), studio_backend=False)
    assert "input" not in sent[0] and "Bonjour" in sent[0]["content"]


# -- the engine ----------------------------------------------------------------------------------
def test_a_judge_preferring_a_marker_makes_the_marked_system_win(project, server) -> None:
    prices = {"good": (100.0, 100.0), "plain": (100.0, 100.0), "judge-marker": (100.0, 100.0)}
    evaluation = create_evaluation(project, server, ["good", "plain"], judge="judge-marker", prices=prices)
    seen: list[EvalProgress] = []
    result = run(project, evaluation, server, "judge-marker", on_progress=seen.append)
    assert (result.status, result.answers, result.judgments, result.errors) == (DONE, 24, 24, 0)
    found = outcomes(project, project.evaluations.get(evaluation.id))
    assert len(found) == 12 and wins(found) == (12, 0, 0, 0)
    assert all(o.ab == o.ba == "a" for o in found)
    pair = summarise(found, ["good", "plain"]).pairs[0]
    assert (pair.win_rate_a, pair.position_consistency) == (1.0, 1.0)
    assert pair.ci_low == pytest.approx(wilson_interval(12, 12)[0]) and pair.ci_high == pytest.approx(1.0)
    assert {o.category for o in found} == {"writing", "coding"}
    stored = project.evaluations.get(evaluation.id)
    assert stored.status == DONE and stored.finished_at is not None
    assert result.cost > 0 and stored.cost == pytest.approx(result.cost)
    # the judge's raw output is kept, decoy marker and all
    first = answer_for(project, stored, stored.prompt_ids[0], 0)
    second = answer_for(project, stored, stored.prompt_ids[0], 1)
    judgment = project.evaluations.cached_judgment(stored.judge.key(), first.id, second.id)
    assert judgment.verdict == FIRST and "[[C]]" in judgment.raw and judgment.raw.rstrip().endswith("[[A]]")
    assert MARKER in first.text and first.cost > 0 and first.latency_s is not None
    # the system prompt went first; the judge saw both answers, in both orders
    answer_bodies = [b for b in server.bodies if b["model"] == "good"]
    assert answer_bodies[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert answer_bodies[0]["max_tokens"] == 64
    # progress: both phases, counts that end at their totals, then the final status
    phases = [p.phase for p in seen]
    assert phases.index("answering") < phases.index("judging") and seen[-1].phase == DONE
    assert max(p.done for p in seen if p.phase == "answering") == 24
    assert max(p.done for p in seen if p.phase == "judging") == 24
    # the other way round: the marked system is B now and wins as B; nothing is asked again
    before = server.total_requests
    flipped = create_evaluation(project, server, ["plain", "good"], judge="judge-marker", prices=prices)
    again = run(project, flipped, server, "judge-marker")
    assert (again.answers, again.judgments, again.cached_answers, again.cached_judgments) == (0, 0, 24, 24)
    assert server.total_requests == before
    assert wins(outcomes(project, project.evaluations.get(flipped.id))) == (0, 12, 0, 0)


def test_a_judge_that_always_picks_the_first_position_gives_no_wins(project, server) -> None:
    evaluation = create_evaluation(project, server, ["good", "plain"], judge="judge-first")
    result = run(project, evaluation, server, "judge-first")
    assert result.status == DONE
    found = outcomes(project, project.evaluations.get(evaluation.id))
    assert len(found) == 12 and wins(found) == (0, 0, 12, 12)
    assert all((o.ab, o.ba) == ("a", "b") for o in found)
    pair = summarise(found, ["good", "plain"]).pairs[0]
    assert (pair.wins_a, pair.wins_b, pair.inconsistent, pair.win_rate_a) == (0, 0, 12, None)
    assert pair.position_consistency == 0.0 and pair.judged_both_orders == 12


def test_a_judge_that_always_picks_the_longer_answer_is_visible_in_the_lengths(project) -> None:
    def long_mostly(prompt: str) -> str:  # A is longer on 3 prompts of 4
        n = int(prompt.split("number ")[1].split(".")[0])
        return "long " * (30 if n % 4 else 2)

    fake = FakeEvalServer(answerers={"verbose": long_mostly, "terse": lambda p: "short " * 10},
                          judges={"judge-longer": "longer"})
    with fake:
        evaluation = create_evaluation(project, fake, ["verbose", "terse"], judge="judge-longer", count=16)
        assert run(project, evaluation, fake, "judge-longer").status == DONE
    found = outcomes(project, project.evaluations.get(evaluation.id))
    assert wins(found) == (12, 4, 0, 0)  # a 75 % raw win rate for A, all of it length
    assert all((o.winner == "a") == (o.len_a > o.len_b) for o in found)
    pair = summarise(found, ["verbose", "terse"]).pairs[0]
    assert pair.win_rate_a == pair.win_rate_a_ties_half == 0.75
    assert abs(pair.lc_win_rate_a - 0.5) < 0.1 and pair.length_bias  # length control sees through it
    assert pair.avg_len_a > 1.5 * pair.avg_len_b


def test_a_rerun_and_a_new_judge_request_nothing_twice(project, server) -> None:
    evaluation = create_evaluation(project, server, ["good", "plain"], judge="judge-marker")
    first = run(project, evaluation, server, "judge-marker")
    assert (first.answers, first.judgments) == (24, 24)
    counts = dict(server.requests_by_model)
    assert counts == {"good": 12, "plain": 12, "judge-marker": 24}
    before = estimate(project, evaluation)
    assert (before.answer_requests, before.judge_requests, before.cached_answers, before.cached_judgments) == \
        (0, 0, 24, 24)
    second = run(project, evaluation, server, "judge-marker")
    assert (second.status, second.answers, second.judgments, second.cached_answers, second.cached_judgments) == \
        (DONE, 0, 0, 24, 24)
    assert dict(server.requests_by_model) == counts
    # another judge over the same systems and prompts: only the judge is asked
    other = create_evaluation(project, server, ["good", "plain"], judge="judge-mumble")
    planned = estimate(project, other)
    assert (planned.answer_requests, planned.judge_requests) == (0, 24)
    third = run(project, other, server, "judge-mumble")
    assert (third.answers, third.judgments, third.cached_answers) == (0, 24, 24)
    assert server.requests_by_model["judge-mumble"] == 24
    assert server.requests_by_model["good"] == server.requests_by_model["plain"] == 12
    # an unreadable verdict is no verdict: a tie, not an inconsistency
    assert wins(outcomes(project, project.evaluations.get(other.id))) == (0, 0, 12, 0)
    # ...and nothing to keep: a rerun asks the judge again, and its readable verdicts replace them
    assert estimate(project, other).judge_requests == 24
    server.judges["judge-mumble"] = "marker"
    fourth = run(project, other, server, "judge-mumble")
    assert (fourth.judgments, fourth.cached_judgments) == (24, 0)
    assert server.requests_by_model["judge-mumble"] == 48
    assert wins(outcomes(project, project.evaluations.get(other.id))) == (12, 0, 0, 0)
    fifth = run(project, other, server, "judge-mumble")
    assert (fifth.judgments, fifth.cached_judgments) == (0, 24)
    # a readable verdict is never replaced
    judge_key = other.judge.key()
    (first, second), stored = next(iter(project.evaluations.judgments_for(
        judge_key, [answer_for(project, other, evaluation_prompts(project, other)[0], 0).id]).items()))
    again = project.evaluations.store_judgment(judge_key, first, second, TIE, "[[C]]", usage=Usage(), cost=1.0,
                                               latency_s=None)
    assert (again.id, again.verdict, again.raw) == (stored.id, stored.verdict, stored.raw) and stored.verdict != TIE


def test_without_a_judge_the_run_ends_after_the_answers(project, server) -> None:
    evaluation = create_evaluation(project, server, ["good", "plain"], judge=None)
    planned = estimate(project, evaluation)
    assert (planned.answer_requests, planned.judge_requests, planned.usd) == (24, 0, 0.0)
    result = run(project, evaluation, server)
    assert (result.status, result.answers, result.judgments) == (DONE, 24, 0)
    assert outcomes(project, project.evaluations.get(evaluation.id)) == []
    rows = prompt_rows(project, project.evaluations.get(evaluation.id), [])
    assert len(rows) == 12 and rows[0]["winner"] is None and MARKER in rows[0]["answer_a"]


def test_the_budget_cap_stops_the_run_and_a_new_run_pays_nothing_twice(project, server) -> None:
    prices = {"good": (1000.0, 1000.0), "plain": (1000.0, 1000.0)}  # $0.001 a token
    evaluation = create_evaluation(project, server, ["good", "plain"], judge="judge-marker", count=30,
                                   budget=0.5, concurrency=4, prices=prices, max_tokens=100)
    planned = estimate(project, evaluation)
    assert planned.answer_requests == 60 and planned.usd_max > 0.5
    result = run(project, evaluation, server, "judge-marker")
    assert result.status == STOPPED and "budget of $0.50" in result.message
    assert 0 < result.answers < 60 and result.judgments == 0
    assert result.cost <= 0.5
    stored = project.evaluations.get(evaluation.id)
    assert stored.status == STOPPED and "budget" in stored.error and stored.cost == pytest.approx(result.cost)
    assert server.requests_by_model["good"] + server.requests_by_model["plain"] == result.answers
    # the same systems and prompts without a cap: only the answers still missing are asked
    uncapped = create_evaluation(project, server, ["good", "plain"], judge="judge-marker", prices=prices,
                                 max_tokens=100)
    rest = run(project, uncapped, server, "judge-marker")
    assert rest.status == DONE and rest.cached_answers == result.answers and rest.answers == 60 - result.answers
    assert server.requests_by_model["good"] == server.requests_by_model["plain"] == 30


def test_an_unreachable_system_fails_the_run_clearly(project, server) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = SystemSpec.parse(f"http://127.0.0.1:{port}/v1#gone")
    down = SystemSpec(down.kind, label="gone", base_url=down.base_url, model="gone", key=f"{down.base_url}#gone")
    evaluation = project.evaluations.create(
        set_id=None, set_hash="x", prompt_ids=create_evaluation(project, server, ["good", "plain"], judge=None).prompt_ids,
        systems=[system(server, "good"), down], judge=None, settings=project.evaluations.latest().settings)
    result = run(project, evaluation, server)
    assert result.status == FAILED
    assert result.message.startswith("System B (gone): Cannot reach http://127.0.0.1:")
    stored = project.evaluations.get(evaluation.id)
    assert stored.status == FAILED and stored.error == result.message


def test_a_system_whose_every_request_fails_fails_the_run(project) -> None:
    fake = FakeEvalServer(answerers={"good": marked}, failing={"broken"})
    with fake:
        evaluation = create_evaluation(project, fake, ["good", "broken"], judge=None, count=4, max_attempts=2)
        result = run(project, evaluation, fake)
    assert result.status == FAILED
    assert "System B (broken) answered none of its requests" in result.message and "server error (500)" in result.message
    assert fake.requests_by_model["broken"] == 8  # two attempts each: the evaluation's max_attempts
    assert result.answers == 4  # A's answers are kept


def test_retries_recover_and_a_prompt_that_keeps_failing_is_left_out(project) -> None:
    fake = FakeEvalServer(answerers={"good": marked, "plain": echo_answer}, flaky={"good"},
                          refuse=lambda model, prompt: model == "plain" and "number 2." in prompt,
                          judges={"judge-marker": "marker"})
    with fake:
        evaluation = create_evaluation(project, fake, ["good", "plain"], judge="judge-marker", count=4,
                                       max_attempts=3)
        result = run(project, evaluation, fake, "judge-marker")
    assert result.status == DONE and (result.answers, result.errors) == (7, 1)
    assert "1 request(s) failed after retries" in result.message and "System B (plain)" in result.message
    stored = project.evaluations.get(evaluation.id)
    assert answer_for(project, stored, stored.prompt_ids[0], 0).attempts == 2  # the retry got it
    assert answer_for(project, stored, stored.prompt_ids[2], 1) is None
    found = outcomes(project, stored)
    assert [o.prompt_id for o in found] == [stored.prompt_ids[i] for i in (0, 1, 3)]  # prompt 2 left out
    assert result.judgments == 6


def test_a_judge_whose_every_request_fails_fails_the_run(project) -> None:
    fake = FakeEvalServer(answerers={"good": marked, "plain": echo_answer}, failing={"judge-down"})
    with fake:
        evaluation = create_evaluation(project, fake, ["good", "plain"], judge="judge-down", count=2, max_attempts=1)
        result = run(project, evaluation, fake, "judge-down")
    assert result.status == FAILED and result.answers == 4 and result.errors == 4
    assert result.message.startswith("The judge gave none of its verdicts: ") and "(500)" in result.message


def test_a_factory_that_cannot_make_a_client_fails_with_its_message(project, server) -> None:
    evaluation = create_evaluation(project, server, ["good", "plain"], judge=None, count=2)

    def no_server(spec: SystemSpec):
        raise EvaluationError("run:3 needs the studio server: start it on the Chat page.")

    result = EvalEngine(project, evaluation.id, clients=no_server).run_blocking()
    assert result.status == FAILED and result.message == \
        "System A (good): run:3 needs the studio server: start it on the Chat page."


def test_a_run_made_for_one_kind_of_server_is_not_answered_by_the_other(project, server) -> None:
    import os

    from studio.core.evaluation.model import RUN
    from studio.core.serving.catalog import Catalog, ServedModel
    from studio.core.serving.server_info import ServerInfo, info_path, write_info

    evaluation = create_evaluation(project, server, ["good", "plain"], judge=None, count=2)
    made_for_vllm = SystemSpec(RUN, label="student", run="3", model="student", key="run:3:abc:vllm")
    systems = [made_for_vllm, evaluation.systems[0]]
    for_vllm = project.evaluations.create(set_id=evaluation.set_id, set_hash=evaluation.set_hash,
                                          prompt_ids=evaluation.prompt_ids, systems=systems, judge=None,
                                          settings=evaluation.settings)
    asked: list[SystemSpec] = []

    def clients(spec: SystemSpec):
        asked.append(spec)
        raise EvaluationError("not reached")

    result = EvalEngine(project, for_vllm.id, clients=clients).run_blocking()
    assert result.status == FAILED and "made for vLLM server and the running server is the studio's own" in \
        result.message and result.message.startswith("System A (student)") and asked == []
    # A studio-made key with vLLM running: the same refusal the other way round.
    made_for_studio = SystemSpec(RUN, label="student", run="3", model="student", key="run:3:abc")
    for_studio = project.evaluations.create(set_id=evaluation.set_id, set_hash=evaluation.set_hash,
                                            prompt_ids=evaluation.prompt_ids, settings=evaluation.settings,
                                            systems=[made_for_studio, evaluation.systems[0]], judge=None)
    write_info(info_path(project.root), ServerInfo(os.getpid(), "127.0.0.1", 8000, Catalog("/m", (
        ServedModel("tiny", "base", None, "alpaca"),)), backend="vllm"))
    result = EvalEngine(project, for_studio.id, clients=clients).run_blocking()
    assert result.status == FAILED and "made for the studio's own server and the running server is vLLM" in \
        result.message and asked == []


def stop_after(project, fake: FakeEvalServer, done: int, concurrency: int):
    """Run 20 prompts on the systems "good" and "plain" of ``fake``, press Stop once ``done`` answers are in;
    the evaluation, the stopped result, the stored row and its answers (None where none was stored)."""
    evaluation = create_evaluation(project, fake, ["good", "plain"], judge=None, count=20, concurrency=concurrency)
    reached = threading.Event()

    def on_progress(progress: EvalProgress) -> None:
        if progress.done >= done:
            reached.set()

    engine = EvalEngine(project.root, evaluation.id, clients=client_factory(), on_progress=on_progress)
    stopper = threading.Thread(target=lambda: (reached.wait(30), engine.stop()))
    stopper.start()
    stopped = engine.run_blocking()
    stopper.join()
    stored = project.evaluations.get(evaluation.id)
    kept = [answer_for(project, stored, p, i) for p in evaluation_prompts(project, stored) for i in (0, 1)]
    return evaluation, stopped, stored, kept


def test_stop_keeps_everything_stored_and_the_next_run_goes_on(project) -> None:
    fake = FakeEvalServer(latency_s=0.05, answerers={"good": marked, "plain": echo_answer})
    with fake:
        evaluation, stopped, stored, kept = stop_after(project, fake, done=3, concurrency=2)
        assert stopped.status == STOPPED and "Stopped" in stopped.message
        assert 3 <= stopped.answers < 40
        assert sum(a is not None for a in kept) == stopped.answers and stored.status == STOPPED
        rest = EvalEngine(project, evaluation.id, clients=client_factory()).run_blocking()
    assert rest.status == DONE and rest.cached_answers == stopped.answers and rest.answers == 40 - stopped.answers


def test_a_stop_lets_the_requests_in_flight_land_so_nothing_paid_is_dropped(project) -> None:
    fake = FakeEvalServer(latency_s=0.3, answerers={"good": marked, "plain": echo_answer})
    with fake:
        _, stopped, _, kept = stop_after(project, fake, done=1, concurrency=6)
    assert stopped.status == STOPPED and stopped.answers < 40
    # Every request the servers saw (and would bill) has its answer stored: Continue pays for none twice.
    assert fake.total_requests == stopped.answers == sum(a is not None for a in kept)


def test_prompt_rows_carry_both_answers_verdicts_and_votes(project, server) -> None:
    from studio.core.evaluation.model import Outcome

    evaluation = create_evaluation(project, server, ["good", "plain"], judge="judge-marker", count=4)
    run(project, evaluation, server, "judge-marker")
    stored = project.evaluations.get(evaluation.id)
    found = outcomes(project, stored)
    human = [Outcome(found[0].prompt_id, 0, 1, "tie", 1, 1, both_bad=True)]
    rows = prompt_rows(project, stored, found, human)
    assert len(rows) == 4
    row = rows[0]
    assert (row["winner"], row["ab"], row["ba"], row["inconsistent"], row["human"]) == ("a", "a", "a", False, "both_bad")
    assert (row["label_a"], row["label_b"]) == ("good", "plain") and MARKER in row["answer_a"]
    assert row["len_a"] == len(row["answer_a"]) and row["category"] == "writing" and row["ext_id"] == "t0"
    assert rows[1]["human"] is None and rows[1]["input"] == ""
    # The judge's raw replies travel with the rows (an export shows why each verdict was read as it was).
    assert row["judge_raw_ab"].rstrip().endswith("[[A]]") and row["judge_raw_ba"].rstrip().endswith("[[B]]")
    # ...and what each answer took: tokens, why it ended (``length`` = cut off), latency, cost.
    assert row["tokens_a"] == len(row["answer_a"]) // 4 and row["finish_a"] == row["finish_b"] == "stop"
    assert row["latency_s_a"] >= 0 and row["cost_a"] == 0


def test_three_systems_are_judged_pair_by_pair(project, server) -> None:
    server.answerers["also-good"] = lambda p: f"Another answer {MARKER}: {p}"
    evaluation = create_evaluation(project, server, ["good", "plain", "also-good"], judge="judge-marker", count=3)
    result = run(project, evaluation, server, "judge-marker")
    assert (result.answers, result.judgments) == (9, 18)
    found = outcomes(project, project.evaluations.get(evaluation.id))
    by_pair = {(o.system_a, o.system_b): o.winner for o in found}
    assert by_pair == {(0, 1): "a", (0, 2): "tie", (1, 2): "b"}


def test_chat_prompts_are_sent_as_their_messages(project, server) -> None:
    chat = [EvalPrompt(instruction="Tell a joke", messages=[{"role": "user", "content": "Hi"},
                                                            {"role": "assistant", "content": "Hello"},
                                                            {"role": "user", "content": "Tell a joke"}])]
    evaluation = create_evaluation(project, server, ["good", "plain"], judge=None, prompt_list=chat + prompts(1),
                                   set_name="chat")
    assert run(project, evaluation, server).answers == 4
    sent = [b["messages"] for b in server.bodies if b["model"] == "good"]
    assert [{"role": "system", "content": "Be brief."}, *chat[0].messages] in sent  # the settings' system prompt


def test_the_estimate_counts_only_what_is_missing_at_the_settings_prices(project, server) -> None:
    prices = {"good": (1_000_000.0, 2_000_000.0), "judge-marker": (3_000_000.0, 0.0)}  # $1 / $2 / $3 a token
    one = [EvalPrompt(instruction="x" * 39)]  # 39 characters + the 9 of "Be brief." -> 12 tokens
    evaluation = create_evaluation(project, server, ["good", "plain"], judge="judge-marker", prices=prices,
                                   prompt_list=one, set_name="one", max_tokens=500)
    planned = estimate(project, evaluation)
    assert (planned.answer_requests, planned.judge_requests, planned.requests) == (2, 2, 4)
    # answers: 12 prompt tokens each, ~300 typical / 500 at most; only "good" has a price
    # verdicts: template + request + two typical answers in, 150 typical out (the judge's output is free here)
    template = -(-len(evaluation.judge.template) // 4)
    asked = -(-39 // 4)
    assert planned.usd == pytest.approx(12 * 1 + 300 * 2 + 2 * 3 * (template + asked + 600))
    assert planned.usd_max == pytest.approx(12 * 1 + 500 * 2 + 2 * 3 * (template + asked + 1000))
    assert "2 answers and 2 verdicts to fetch" in planned.describe()
    assert estimate(project, evaluation, judge_prompt_tokens=10).usd == pytest.approx(12 + 600 + 2 * 3 * 10)
