"""``distill-studio eval run | results | export`` through the real ``studio.cli.main``, with loopback fake
systems and judges (real HTTP through the openai client), and once with the real studio server and the
tiny model: ``--a run:RUN --b base``, started and stopped for the evaluation."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from studio.cli import main
from studio.core.evaluation.model import STOPPED, EvalPrompt
from studio.core.evaluation.stats import wilson_interval
from studio.core.project import Project
from studio.core.serving.server_info import info_path, read_info
from tests.fake_eval_endpoints import API_KEY, MARKER, FakeEvalServer
from tests.serve_support import peft_student

CATEGORIES = ("email", "email", "email", "math", "math", "poetry")
PROMPTS = [EvalPrompt(f"Task number {n}: do the thing well.", input="Some context." if n % 2 else "",
                      category=CATEGORIES[n]) for n in range(6)]
JSON_KEYS = {"n", "wins_a", "wins_b", "ties", "inconsistent", "win_rate_a", "ci_low", "ci_high", "lc_win_rate_a",
             "avg_len_a", "avg_len_b", "evaluation_id", "systems", "judge", "set_hash", "cost"}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with one prompt set ``bench`` (6 prompts, 3 categories); no project handle left open."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with Project.create(tmp_path / "project") as project:
        project.prompt_sets.create("bench", PROMPTS, source="test")
    return tmp_path / "project"


@pytest.fixture
def fake():
    marked = lambda prompt: f"A careful answer {MARKER} to: {prompt[:30]}"  # noqa: E731
    plain = lambda prompt: f"An answer to: {prompt[:30]}"  # noqa: E731
    with FakeEvalServer(answerers={"good": marked, "plain": plain},
                        judges={"judge": "marker", "first": "first"}) as server:
        yield server


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def eval_run(root: Path, fake: FakeEvalServer, *extra: str, a: str = "good", b: str = "plain",
             judge: str | None = "judge") -> list[str]:
    argv = ["eval", "run", "--project", str(root), "--prompts", "bench", "--a", fake.spec(a), "--b", fake.spec(b)]
    if judge is not None:
        argv += ["--judge", fake.spec(judge)]
    return argv + list(extra)


def test_eval_run_json_has_the_issue_keys_and_a_rerun_requests_nothing(root, fake, capsys) -> None:
    code, out, err = run_cli(capsys, *eval_run(root, fake, "--json"))
    assert code == 0, err
    result = json.loads(out)
    assert JSON_KEYS <= set(result)
    assert (result["n"], result["wins_a"], result["wins_b"], result["ties"], result["inconsistent"]) == (6, 6, 0, 0, 0)
    low, high = wilson_interval(6, 6)
    assert result["win_rate_a"] == 1.0 and (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
    assert result["avg_len_a"] > result["avg_len_b"] > 0
    assert result["systems"] == [f"good @ {fake.base_url[7:-3]}", f"plain @ {fake.base_url[7:-3]}"]
    assert result["judge"] == f"judge @ {fake.base_url[7:-3]}"
    with Project.open(root) as project:
        assert result["set_hash"] == project.prompt_sets.get("bench").content_hash
    assert fake.requests_by_model == {"good": 6, "plain": 6, "judge": 12}  # every pair judged in both orders
    assert "estimate:" in err and f"evaluation {result['evaluation_id']}:" in err
    assert "keys: A: API key from $OPENAI_API_KEY; B: API key from $OPENAI_API_KEY; judge: API key from" in err
    assert API_KEY not in err

    code, out, err = run_cli(capsys, *eval_run(root, fake, "--json"))
    again = json.loads(out)
    assert code == 0 and again["evaluation_id"] == result["evaluation_id"] + 1
    assert fake.requests_by_model == {"good": 6, "plain": 6, "judge": 12}  # all from the cache
    assert {k: again[k] for k in JSON_KEYS - {"evaluation_id", "cost"}} == \
           {k: result[k] for k in JSON_KEYS - {"evaluation_id", "cost"}}
    assert again["cost"] == 0
    assert "done: fetched 0 answers and 0 verdicts (12 answers and 12 verdicts from the cache)" in err


def test_a_first_position_judge_is_all_inconsistent_in_the_summary(root, fake, capsys) -> None:
    code, out, err = run_cli(capsys, *eval_run(root, fake, judge="first"))
    assert code == 0, err
    assert f"  A = good @ {fake.base_url[7:-3]}\n  B = plain @ {fake.base_url[7:-3]}\n" in out
    assert "A vs B: 6 prompts — A won 0, B won 0, 6 ties (6 inconsistent)" in out
    assert "win rate of A: no decisive judgment; ties as half: 50.0 %" in out
    assert "position consistency of the judge: 0.0 % (6 pairs judged in both orders)" in out
    rows = {line.split()[0]: line.split()[1:5] for line in out.splitlines()[-3:]}
    assert rows == {"email": ["3", "0", "0", "3"], "math": ["2", "0", "0", "2"], "poetry": ["1", "0", "0", "1"]}


def test_results_list_show_and_export(root, fake, capsys, tmp_path: Path) -> None:
    assert run_cli(capsys, *eval_run(root, fake))[0] == 0
    code, out, _ = run_cli(capsys, "eval", "results", "--project", root)
    assert code == 0 and "done" in out and "100.0%" in out and " vs " in out
    code, out, _ = run_cli(capsys, "eval", "results", "--project", root, "--json")
    [listed] = json.loads(out)
    assert (listed["id"], listed["prompts"], listed["status"], listed["win_rate_a"]) == (1, 6, "done", 1.0)

    code, out, _ = run_cli(capsys, "eval", "results", "1", "--project", root)
    assert code == 0 and "won 6" in out and "(100.0 %" not in out and "Wilson 95 %" in out
    code, out, _ = run_cli(capsys, "eval", "results", "1", "--project", root, "--json")
    assert json.loads(out)["wins_a"] == 6

    target = tmp_path / "out" / "eval.json"
    target.parent.mkdir()
    code, out, err = run_cli(capsys, "eval", "export", "1", target, "--project", root)
    assert code == 0 and str(target) in err and out.strip() == str(target)
    exported = json.loads(target.read_text(encoding="utf-8"))
    assert exported["wins_a"] == 6 and len(exported["prompts"]) == 6 and exported["meta"]["evaluation_id"] == 1
    code, _, err = run_cli(capsys, "eval", "export", "1", tmp_path / "out" / "eval.csv", "--project", root)
    assert code == 0
    with open(tmp_path / "out" / "eval.csv", encoding="utf-8", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    assert run_cli(capsys, "eval", "export", "1", tmp_path / "eval.txt", "--project", root)[0] == 1


def test_without_a_judge_only_answers_are_stored(root, fake, capsys) -> None:
    code, out, err = run_cli(capsys, *eval_run(root, fake, "--json", judge=None))
    assert code == 0, err
    result = json.loads(out)
    assert (result["n"], result["wins_a"], result["judge"]) == (0, 0, None)
    assert result["avg_len_a"] > result["avg_len_b"] > 0
    assert fake.requests_by_model == {"good": 6, "plain": 6}
    code, out, _ = run_cli(capsys, "eval", "results", str(result["evaluation_id"]), "--project", root)
    assert "answers stored for 6 prompts" in out


@pytest.mark.parametrize(("a", "expected"), [
    ("nonsense", "error: 'nonsense' is not a system: use URL#MODEL"),
    ("run:nope", "error: No training run 'nope' in this project; runs: none yet."),
])
def test_a_bad_system_is_one_clear_error_and_nothing_is_asked(root, fake, capsys, a: str, expected: str) -> None:
    argv = ["eval", "run", "--project", root, "--prompts", "bench", "--a", a, "--b", fake.spec("plain")]
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and out == "" and err.strip() == expected + err.strip()[len(expected):]
    assert err.count("\n") == 1 and fake.total_requests == 0


def test_unknown_sets_evaluations_and_judges_are_clear_errors(root, fake, capsys) -> None:
    argv = ["eval", "run", "--project", root, "--prompts", "nope", "--a", fake.spec("good"), "--b", fake.spec("plain")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1 and "No prompt set 'nope' (sets: bench)" in err
    code, _, err = run_cli(capsys, *eval_run(root, fake)[:-2], "--judge", "base")
    assert code == 1 and "a judge is an endpoint, URL#MODEL" in err
    code, _, err = run_cli(capsys, "eval", "results", "42", "--project", root)
    assert code == 1 and "No evaluation 42" in err
    assert fake.total_requests == 0


def test_an_unreachable_endpoint_and_a_wrong_key_fail_clearly(root, fake, capsys, monkeypatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["eval", "run", "--project", root, "--prompts", "bench", "--a", f"http://127.0.0.1:{port}/v1#ghost",
            "--b", fake.spec("plain")]
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and out == ""
    assert err.splitlines()[-1] == (f"error: System A (ghost @ 127.0.0.1:{port}): Cannot reach http://127.0.0.1:{port}/v1:"
                                    " check the base URL and that the server is running. Nothing was stored.")
    assert json.loads(run_cli(capsys, "eval", "results", "--project", root, "--json")[1]) == []

    monkeypatch.setenv("WRONG_KEY", "sk-not-it")
    code, out, err = run_cli(capsys, *eval_run(root, fake, "--api-key-env", "WRONG_KEY"))
    assert code == 1 and out == "" and "refused the API key (401)" in err.splitlines()[-1]
    assert "sk-not-it" not in err


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes_from_the_cache(root, capsys) -> None:
    slow = FakeEvalServer(latency_s=0.25, answerers={"x": lambda p: f"x: {p}", "y": lambda p: f"y: {p}"},
                          judges={"judge": "marker"})
    with slow:
        argv = ["eval", "run", "--project", root, "--prompts", "bench", "--a", slow.spec("x"), "--b", slow.spec("y"),
                "--judge", slow.spec("judge"), "--concurrency", "2"]

        def interrupt() -> None:
            deadline = time.monotonic() + 30
            while slow.requests_by_model["x"] + slow.requests_by_model["y"] < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt, daemon=True).start()
        code, _, err = run_cli(capsys, *argv)
        assert code == 130, err
        assert "stopped by Ctrl+C" in err
        with Project.open(root) as project:
            stopped = project.evaluations.get(1)
            assert stopped.status == STOPPED
        asked = slow.requests_by_model["x"] + slow.requests_by_model["y"]
        assert asked < 12
        code, out, err = run_cli(capsys, *argv, "--json")
        assert code == 0, err
        assert json.loads(out)["n"] == 6
        assert slow.requests_by_model["x"] + slow.requests_by_model["y"] <= 12 + 2  # at most the 2 in flight again


def test_human_votes_give_their_own_result_and_the_judge_reports_agreement(root, fake, capsys) -> None:
    assert run_cli(capsys, *eval_run(root, fake))[0] == 0
    with Project.open(root) as project:
        evaluation = project.evaluations.get(1)
        assert project.votes.ensure_queue(evaluation) == 6
        for n, vote in enumerate(project.votes.votes(1)):
            project.votes.cast(vote.id, ("a", "a", "a", "b", "both_bad", "skip")[n])
    code, out, _ = run_cli(capsys, "eval", "results", "1", "--human", "--json", "--project", root)
    human = json.loads(out)
    assert code == 0 and human["source"] == "human votes"
    assert (human["n"], human["wins_a"], human["wins_b"], human["ties"], human["both_bad"]) == (5, 3, 1, 1, 1)
    code, out, _ = run_cli(capsys, "eval", "results", "1", "--project", root)
    assert "agreement with the human votes: 60.0 % of 5 prompts" in out  # the judge says A everywhere
    code, out, _ = run_cli(capsys, "eval", "results", "1", "--human", "--project", root)
    assert "blind human votes" in out and "A won 3, B won 1, 1 ties (1 both bad)" in out
    assert "position consistency" not in out


def test_an_evaluation_without_a_judge_shows_its_votes(root, fake, capsys) -> None:
    assert run_cli(capsys, *eval_run(root, fake, judge=None))[0] == 0
    with Project.open(root) as project:
        evaluation = project.evaluations.get(1)
        project.votes.ensure_queue(evaluation)
        for vote in project.votes.votes(1):
            project.votes.cast(vote.id, "a")
    code, out, _ = run_cli(capsys, "eval", "results", "1", "--json", "--project", root)
    shown = json.loads(out)  # no --human: the votes are the only result it has, as in the panel
    assert code == 0 and shown["source"] == "human votes" and (shown["n"], shown["wins_a"]) == (6, 6)


def test_the_budget_stops_the_run_and_says_what_is_left(root, capsys) -> None:
    answer = lambda prompt: "An answer. " * 20  # noqa: E731
    with FakeEvalServer(answerers={"gpt-4o-mini": answer, "plain": answer}) as priced:
        argv = ["eval", "run", "--project", root, "--prompts", "bench", "--a", priced.spec("gpt-4o-mini"),
                "--b", priced.spec("plain"), "--budget", "0.0005", "--max-tokens", "1000", "--json"]
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, err
        assert "note: Stopped at the budget of $0.00" in err and "Raise the budget" in err
        result = json.loads(out)
        assert result["status"] == "stopped" and priced.requests_by_model["gpt-4o-mini"] < 6


def test_a_template_without_a_placeholder_and_the_same_model_twice_are_refused(root, fake, capsys,
                                                                               tmp_path: Path) -> None:
    template = tmp_path / "judge.txt"
    template.write_text("Which is better, {answer_a} or {answer_b}? Say [[A]], [[B]] or [[C]].", encoding="utf-8")
    code, _, err = run_cli(capsys, *eval_run(root, fake), "--template", template)
    assert code == 1 and f"--template {template}:" in err and "instruction" in err
    code, _, err = run_cli(capsys, *eval_run(root, fake, b="good"))
    assert code == 1 and "are the same model: compare two different systems" in err
    assert fake.total_requests == 0


def test_progress_is_one_redrawn_line_on_a_terminal_and_few_lines_in_a_file(root, capsys) -> None:
    import io

    from studio.core.evaluation.cli_support import ProgressLine
    from studio.core.evaluation.engine import EvalProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        line = ProgressLine(stream)
        for done in range(101):
            line(EvalProgress("answering", done, 100, 0, 0, 0.0))
        line(EvalProgress("done", 100, 100, 0, 0, 0.0))
        line.close()
    assert "\n" not in terminal.getvalue().rstrip("\n") and terminal.getvalue().count("\r") >= 2
    assert terminal.getvalue().rstrip().endswith("answering: 100/100 (0 cached, 0 errors), $0.0000")
    written = log.getvalue().splitlines()
    assert written[0].startswith("answering: 0/100") and written[-1].startswith("answering: 100/100")
    assert len(written) <= 12 and "\r" not in log.getvalue()

    assert run_cli(capsys, "eval", "results", "--project", root)[1].startswith("No evaluations yet")


# -- the real studio server ----------------------------------------------------------------------------------
def test_run_against_base_through_the_real_studio_server(tmp_path: Path, tiny_base: Path, capsys,
                                                         monkeypatch) -> None:
    pytest.importorskip("studio.serve", reason="the model server is not in this tree")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    root = tmp_path / "project"
    with Project.create(root) as project:
        peft_student(project, tiny_base)
        project.prompt_sets.create("tiny", [EvalPrompt("Name a color."), EvalPrompt("Add the two numbers.", "2 and 3")])
    with FakeEvalServer(judges={"judge": "longer"}) as judge:
        code, out, err = run_cli(capsys, "eval", "run", "--project", root, "--prompts", "tiny", "--a", "run:student",
                                 "--b", "base", "--judge", judge.spec("judge"), "--max-tokens", "8",
                                 "--concurrency", "2", "--json")
        assert code == 0, err
        assert judge.requests_by_model["judge"] == 4
    result = json.loads(out)
    assert result["systems"] == ["student", "tiny-llama (base)"] and result["n"] == 2
    assert result["avg_len_a"] > 0 and result["avg_len_b"] > 0
    assert "starting the studio server for run:1, base" in err and "the studio server is ready" in err
    assert read_info(info_path(root)) is None  # the lease stopped the server it started
    # A rerun has every answer cached: no server is started for it (a real base takes minutes to load).
    with FakeEvalServer(judges={"judge": "longer"}) as judge:
        code, out, err = run_cli(capsys, "eval", "run", "--project", root, "--prompts", "tiny", "--a", "run:student",
                                 "--b", "base", "--judge", judge.spec("judge"), "--max-tokens", "8", "--json")
        assert code == 0, err
    assert "starting the studio server" not in err and json.loads(out)["n"] == 2


def test_a_judge_without_readable_verdicts_is_not_shown_as_plain_ties(root, fake, capsys, tmp_path) -> None:
    fake.judges["mumble"] = "mumble"  # replies, but never with [[A]], [[B]] or [[C]]
    code, out, err = run_cli(capsys, *eval_run(root, fake, judge="mumble"))
    assert code == 0, err
    assert "6 ties (6 without a readable verdict)" in out
    assert "the judge ended no reply with [[A]], [[B]] or [[C]]" in out
    # The length-controlled "—" says why: A's answers are longer by nearly the same amount every time.
    assert "length and quality cannot be told apart" in out
    evaluation_id = out.split()[1]
    code, _, err = run_cli(capsys, "eval", "export", "--project", root, evaluation_id, tmp_path / "e.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))["prompts"]
    assert rows[0]["judge_raw_ab"] == rows[0]["judge_raw_ba"] == "Both answers have merits and I cannot decide."


def test_eval_run_warns_when_a_run_was_trained_on_prompts_of_the_set(tmp_path) -> None:
    """A set made after the run (another split of its snapshot) slips past the wall: `eval run` says so."""
    from studio.core.evaluation.cli_support import _trained_on_warnings
    from studio.core.evaluation.model import RUN, SystemSpec
    from studio.core.samples import Sample, Status
    from tests.serve_support import base_folder, trained_run

    with Project.create(tmp_path / "p") as project:
        for i in range(20):
            project.samples.add(Sample(f"Write line {i} of the poem.", "", f"Line {i}.", status=Status.ACCEPTED))
        project.snapshots.create("v1")
        run = trained_run(project, base_folder(tmp_path))  # default split: 1 of 20 held out
        own = project.prompt_sets.from_validation_split("v1", max_validation_samples=200)
        wider = project.prompt_sets.from_validation_split("v1", name="wider", validation_fraction=0.25)
        spec = SystemSpec(RUN, label="student", run=str(run.id), key=f"run:{run.id}:fingerprint")
        assert _trained_on_warnings(project, [spec], project.prompt_sets.prompts(own.id), own.name) == []
        [warning] = _trained_on_warnings(project, [spec], project.prompt_sets.prompts(wider.id), "wider")
        assert warning.startswith("A (student) was trained on 4 of the 5 prompts of wider")
        assert "measure memory" in warning


@pytest.mark.parametrize("where", ["a", "judge"])
def test_a_url_holding_a_credential_is_refused_before_it_is_stored(root, fake, capsys, where) -> None:
    host = fake.base_url[len("http://"):]
    secret_url = f"http://me:sk-SECRET-123@{host}#" + ("good" if where == "a" else "judge")
    argv = eval_run(root, fake)
    argv[argv.index("--a" if where == "a" else "--judge") + 1] = secret_url
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and "holds a user name or password" in err and "--api-key-env" in err
    assert "SECRET" not in err + out
    argv[argv.index("--a" if where == "a" else "--judge") + 1] = f"{fake.base_url}?api-key=sk-Q2#good"
    code, _, err = run_cli(capsys, *argv)
    assert code == 1 and "a credential in its query (api-key)" in err and "sk-Q2" not in err
    with Project.open(root) as project:
        assert project.evaluations.list() == []  # nothing stored, so nothing to leak into results or exports
    assert fake.total_requests == 0


def test_human_results_before_any_vote_say_how_to_vote(root, fake, capsys) -> None:
    assert run_cli(capsys, *eval_run(root, fake))[0] == 0
    code, out, _ = run_cli(capsys, "eval", "results", "1", "--human", "--project", root)
    assert code == 0 and "no blind votes yet: vote in the Evaluate panel" in out
    assert "A vs B: 0 prompts" not in out


def test_a_prompt_set_in_use_is_not_deleted_under_its_evaluations(root, fake, capsys) -> None:
    from studio.core.evaluation.model import EvaluationError

    assert run_cli(capsys, *eval_run(root, fake))[0] == 0
    with Project.open(root) as project:
        with pytest.raises(EvaluationError, match=r"'bench' is used by 1 evaluation \(1\): deleting it would empty"):
            project.prompt_sets.delete("bench")
        assert project.prompt_sets.get("bench").prompt_count == 6
    code, out, _ = run_cli(capsys, "eval", "results", "1", "--json", "--project", root)
    assert code == 0 and json.loads(out)["n"] == 6  # the results are whole
    with Project.open(root) as project:
        project.evaluations.delete(1)
        project.prompt_sets.delete("bench")  # nothing uses it now
        assert project.prompt_sets.list() == []


def test_results_of_a_failed_evaluation_say_why_it_failed(root, fake, capsys) -> None:
    code, _, err = run_cli(capsys, *eval_run(root, fake, judge="no-such-judge"))
    assert code == 1 and "evaluation 1 keeps what arrived" in err
    code, out, _ = run_cli(capsys, "eval", "results", "1", "--project", root)
    assert code == 0 and "; failed, cost" in out
    assert "  failed: The judge (no-such-judge @" in out and "does not know the model 'no-such-judge'" in out


def test_a_temperature_out_of_range_or_a_template_without_a_judge_is_refused(root, fake, capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, *eval_run(root, fake, "--temperature", "-3", judge=None))
    assert code == 1 and "--temperature -3: use a value from 0 to 2" in err
    template = tmp_path / "judge.txt"
    template.write_text("{instruction} {input} {answer_a} {answer_b} [[A]]", encoding="utf-8")
    code, _, err = run_cli(capsys, *eval_run(root, fake, "--template", template, judge=None))
    assert code == 1 and "--template is the judge's prompt: give --judge URL#MODEL too" in err
    assert fake.total_requests == 0


def test_budget_with_unpriced_models_says_so_and_price_makes_it_bite(root, fake, capsys) -> None:
    code, _, err = run_cli(capsys, *eval_run(root, fake, "--budget", "0.001"))
    assert code == 0  # a budget the unpriced models cannot reach: everything is fetched...
    assert "note: no price is known for good, plain, judge: their requests count as free" in err
    assert "give --price MODEL IN OUT" in err and fake.requests_by_model["judge"] == 12
    # ...with prices ($1,000 per 1M tokens) the same budget stops the run, and says so in real cents.
    code, out, err = run_cli(capsys, *eval_run(root, fake, "--budget", "0.001", "--max-tokens", "50",
                                               "--price", "good", "1000", "1000", "--price", "plain", "1000",
                                               "1000", "--price", "judge", "1000", "1000"))  # new max tokens: new answers
    assert code == 0 and "no price is known" not in err
    assert "Stopped at the budget of $0.0010" in err and "; stopped, cost" in out
    code, _, err = run_cli(capsys, *eval_run(root, fake, "--price", "good", "x", "1"))
    assert code == 1 and "--price good x 1: give USD per 1M input and output tokens" in err


def test_export_of_an_evaluation_without_a_judge_does_not_name_one(root, fake, capsys, tmp_path) -> None:
    assert run_cli(capsys, *eval_run(root, fake, judge=None))[0] == 0
    code, _, err = run_cli(capsys, "eval", "export", "--project", root, "1", tmp_path / "answers.json")
    assert code == 0 and "(6 prompt rows, answers only, no judge)" in err
    rows = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))["prompts"]
    assert len(rows) == 6 and rows[0]["answer_a"] and rows[0]["winner"] is None
