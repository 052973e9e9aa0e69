"""Generation: parsing, filters, the engine against a loopback teacher with faults, kill and resume."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher import FakeTeacher, Faults  # noqa: E402
from plugin_filters import NoIndex  # noqa: E402

from studio.core import db, schema  # noqa: E402
from studio.core.generation import events as ev  # noqa: E402
from studio.core.generation.config import RunConfig, estimate_cost  # noqa: E402
from studio.core.generation.engine import GenerationEngine, create_run  # noqa: E402
from studio.core.generation.filters import CandidateFilter, FilterSettings  # noqa: E402
from studio.core.generation.prompts import Candidate, Example, build_prompt, default_template, parse_tasks  # noqa: E402
from studio.core.generation.repository import GenerationRepository  # noqa: E402
from studio.core.llm import EndpointConfig  # noqa: E402
from studio.core.project import Project  # noqa: E402
from studio.core.seeds import Instance, SeedTask  # noqa: E402

KEY = "sk-fake-teacher"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def seeded(project: Project) -> Project:
    project.seeds.add_many([
        SeedTask(f"Give a short example of seed topic number {i} for a curious student.", [Instance("", f"Example {i}.")])
        for i in range(6)
    ])
    return project


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


def _run(project: Project, config: RunConfig, *, api_key: str = KEY, events: list | None = None):
    run_id = create_run(project.generation, config)
    engine = GenerationEngine(project, run_id, on_event=(events.append if events is not None else None),
                              api_key=api_key)
    return engine.run_blocking()


# -- parsing -----------------------------------------------------------------------------------------
def test_parser_reads_messy_batches_and_keeps_good_items_of_a_partial_batch() -> None:
    text = (
        "Sure! Here are your tasks.\n\n"
        "**Task 1**\n**Instruction:** Name three rivers in Europe.\nInput: <noinput>\n**Output:** Danube, Rhine, Seine.\n\n"
        "### Task 2:\nInstruction: Translate the sentence into French.\nInput: I like tea.\nOutput: J'aime le thé.\n###\n\n"
        "3. Instruction: Sort the numbers from small to large.\n3. Input:\n5, 2, 9\n3. Output:\n2, 5, 9\n\n"
        "Task 4\nInstruction: This block forgot its answer.\nInput: N/A\n\n"
        "Task 5\nInstruction: Explain why the sky looks blue on a clear day.\nInput: none\nOutput: Rayleigh scatt"
    )
    result = parse_tasks(text, finish_reason="length")
    assert [(c.instruction, c.input, c.output) for c in result.candidates] == [
        ("Name three rivers in Europe.", "", "Danube, Rhine, Seine."),
        ("Translate the sentence into French.", "I like tea.", "J'aime le thé."),
        ("Sort the numbers from small to large.", "5, 2, 9", "2, 5, 9"),
    ]
    assert [(f.reason, f.detail) for f in result.failures] == [("truncated", "cut off by the token limit"),
                                                             ("parse_error", "no Output field")]
    assert "forgot its answer" in result.failures[1].raw


def test_parser_keeps_the_last_item_when_not_truncated_and_reports_unparseable_text() -> None:
    complete = "Task 1\nInstruction: Say hello to the reader.\nInput: <noinput>\nOutput: Hello!"
    assert len(parse_tasks(complete, "stop").candidates) == 1
    assert parse_tasks(complete, "length").candidates == []
    junk = parse_tasks("I cannot help with that.", "stop")
    assert junk.candidates == [] and junk.failures[0].reason == "parse_error" and junk.failures[0].raw


def test_task_header_followed_by_numbered_instruction_is_one_task() -> None:
    text = "Task 1\n1. Instruction: Name a prime number below ten.\n1. Input: <noinput>\n1. Output: 7"
    result = parse_tasks(text)
    assert [c.output for c in result.candidates] == ["7"] and result.failures == []


def test_prompt_shows_examples_and_asks_for_the_batch() -> None:
    prompt = build_prompt(default_template(), [Example("Do a thing now please.", "", "Done.", 1)], 20)
    assert "numbered 1 to 20" in prompt and "Instruction: Do a thing now please." in prompt
    assert "Input: <noinput>" in prompt and "$" not in prompt


# -- filters ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("instruction", "output", "reason"), [
    ("Name three famous rivers.", "", "empty_output"),
    ("Name three rivers.", "x", "too_short"),  # 3 words: Alpaca keeps only more than 3
    (" ".join(["word"] * 151), "x", "too_long"),
    ("- Name three famous rivers.", "x", "bad_start"),
    ("Élisez three famous rivers please.", "x", "bad_start"),
    ("Write a program that sorts numbers.", "x", "program_task"),
    ("Describe the picture in a few words.", "x", "blacklist"),
    ("Tell me how to go to the station.", "x", "blacklist"),
    ("Name four famous rivers.", "x", None),
    ("Explain the mapping between keys and values.", "x", None),  # "map" only as a whole word
])
def test_filters_give_alpaca_reason_codes(instruction: str, output: str, reason: str | None) -> None:
    verdict = CandidateFilter(FilterSettings()).check(Candidate(instruction, "", output))
    assert verdict.reason == reason


def test_near_duplicates_are_caught_against_seeds_and_kept_instructions() -> None:
    f = CandidateFilter(FilterSettings())
    f.prime(["Give three tips for staying healthy."])
    dup = f.check(Candidate("Give three tips for staying very healthy.", "", "x"))
    assert dup.reason == "near_duplicate" and dup.nearest_instruction == "Give three tips for staying healthy."
    assert dup.score > 0.7
    assert f.check(Candidate("Explain how a bicycle gear works.", "", "x")).kept
    assert f.check(Candidate("Explain how a bicycle gear works well.", "", "x")).reason == "near_duplicate"


# -- engine ------------------------------------------------------------------------------------------------
def test_run_with_faults_completes_and_counters_add_up(seeded: Project, teacher: FakeTeacher) -> None:
    teacher.faults = Faults(rate_limit=0.25, server_error=0.1, stall=0.05, malformed=0.05, truncated=0.15,
                            retry_after_s=0.05, stall_s=2.0)
    teacher.bad_items_every = 6
    events: list = []
    result = _run(seeded, _config(teacher, target=120, concurrency=6, request_timeout_s=0.7, max_attempts=8),
                  events=events)
    assert result.reason == "target"
    store = seeded.generation
    run_id = result.run_id
    stored = store.counters(run_id)
    c = result.counters
    samples = seeded.conn.execute("SELECT * FROM samples WHERE run_id = ?", (run_id,)).fetchall()
    assert c.kept == stored["kept"] == len(samples) >= 120
    assert c.rejected == stored["rejected"] == sum(stored["rejected_by_reason"].values())
    assert c.rejected_by_reason == stored["rejected_by_reason"]
    assert {"blacklist", "too_short", "truncated", "parse_error"} <= set(c.rejected_by_reason)
    raw = seeded.conn.execute("SELECT output FROM rejected_candidates WHERE reason = 'parse_error'").fetchone()[0]
    assert "I'm sorry" in raw  # the malformed answer is kept for inspection
    requests = seeded.conn.execute("SELECT * FROM generation_requests WHERE run_id = ?", (run_id,)).fetchall()
    done = [r for r in requests if r["status"] == "done"]
    assert c.requests_done == stored["requests"] == len(done)
    assert sum(r["kept"] for r in done) == c.kept and sum(r["rejected"] for r in done) == c.rejected
    assert sum(r["prompt_tokens"] for r in done) == c.prompt_tokens == stored["prompt_tokens"] > 0
    assert sum(r["completion_tokens"] for r in done) == c.completion_tokens > 0
    assert c.cost == pytest.approx((c.prompt_tokens * 1.0 + c.completion_tokens * 2.0) / 1e6)
    assert sum(s["cost"] for s in samples) == pytest.approx(sum(r["cost"] for r in done if r["kept"]))
    # every kept sample came from a done request, carries its seeds, and is new
    assert {s["source"] for s in samples} <= {r["request_key"] for r in done}
    assert all(s["origin"] == "generated" and s["status"] == "pending" and json.loads(s["seed_ids"]) for s in samples)
    assert len({s["instruction"] for s in samples}) == len(samples)
    # faults really happened and were retried
    kinds = {e.kind for e in events if isinstance(e, ev.RetryScheduled)}
    assert {"rate_limit", "server", "timeout"} <= kinds
    assert all(e.delay_s >= 0.05 for e in events if isinstance(e, ev.RetryScheduled) and e.kind == "rate_limit")
    assert len([e for e in events if isinstance(e, ev.SampleKept)]) == c.kept
    assert isinstance(events[-1], ev.RunFinished)


def test_budget_is_a_hard_cap(seeded: Project, teacher: FakeTeacher) -> None:
    config = _config(teacher, target=10_000, concurrency=4, budget_usd=0.02, max_tokens=2000)
    result = _run(seeded, config)
    assert result.reason == "budget"
    assert 0 < result.counters.cost <= 0.02
    assert result.counters.requests_done >= 2


def test_stop_and_pause_from_another_thread(seeded: Project, teacher: FakeTeacher) -> None:
    teacher.latency_s = 0.05
    store = seeded.generation
    run_id = create_run(store, _config(teacher, target=100_000, concurrency=2))
    seen: list = []
    engine = GenerationEngine(seeded, run_id, on_event=seen.append, api_key=KEY)
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(engine.run_blocking()))
    worker.start()
    deadline = time.monotonic() + 20
    while not any(isinstance(e, ev.SampleKept) for e in seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    engine.pause()

    def drained() -> bool:  # paused: in-flight requests finish, no new ones start
        progress = [e for e in seen if isinstance(e, ev.Progress)]
        return bool(progress) and progress[-1].counters.in_flight == 0 and progress[-1].counters.paused

    deadline = time.monotonic() + 20
    while not drained() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert drained()
    count = teacher.total_requests
    time.sleep(0.3)
    assert teacher.total_requests == count
    engine.resume()
    engine.stop()
    worker.join(20)
    assert outcome and outcome[0].reason == "stopped"
    assert store.run(run_id)["status"] == "stopped"


def test_wrong_key_stops_the_run_with_a_plain_message(seeded: Project, teacher: FakeTeacher) -> None:
    events: list = []
    result = _run(seeded, _config(teacher, target=50), api_key="sk-wrong", events=events)
    assert result.reason == "error" and "refused the API key" in result.message
    assert any(isinstance(e, ev.TeacherError) and e.kind == "auth" for e in events)
    assert seeded.samples.count() == 0


def test_running_out_of_quota_stops_at_once_and_keeps_what_was_paid_for(seeded: Project, teacher: FakeTeacher) -> None:
    teacher.quota_after = 3
    events: list = []
    result = _run(seeded, _config(teacher, target=10_000, concurrency=1, max_attempts=8), events=events)
    assert result.reason == "error"
    assert "out of quota or credit" in result.message
    assert not [e for e in events if isinstance(e, ev.RetryScheduled)]  # no point retrying an empty account
    errors = [e for e in events if isinstance(e, ev.TeacherError)]
    assert len(errors) == 1 and errors[0].kind == "quota"
    store = seeded.generation
    assert store.counters(result.run_id)["requests"] == 3 == result.counters.requests_done
    assert store.run(result.run_id)["status"] == "failed"
    assert teacher.total_requests == 4  # three answers, one refusal, nothing sent after it


def test_rejected_candidate_can_be_restored_as_pending_sample(seeded: Project, teacher: FakeTeacher) -> None:
    teacher.bad_items_every = 4
    result = _run(seeded, _config(teacher, target=20, concurrency=1))
    store = seeded.generation
    blacklisted = store.rejected(result.run_id, "blacklist")
    assert blacklisted and blacklisted[0]["instruction"]
    sample_id = store.restore(blacklisted[0]["id"])
    sample = seeded.samples.get(sample_id)
    assert sample.status.value == "pending" and sample.instruction == blacklisted[0]["instruction"]
    assert sample.seed_ids and sample.filter_verdicts == {"restored_from": "blacklist"}
    assert store.rejected(result.run_id, "blacklist")[0]["restored"] == 1
    assert store.restore(blacklisted[0]["id"]) == sample_id  # idempotent


def test_seed_yield_counts_requests_and_kept(seeded: Project, teacher: FakeTeacher) -> None:
    result = _run(seeded, _config(teacher, target=40, concurrency=1))
    yields = seeded.generation.seed_yield(result.run_id)
    assert yields and all(shown >= 1 and kept >= 0 for shown, kept in yields.values())
    assert sum(shown for shown, _ in yields.values()) == 3 * result.counters.requests_done


def test_cost_estimate_uses_the_price_table() -> None:
    config = RunConfig(target=1000, teacher=EndpointConfig(model="gpt-4o-mini"))
    estimate = estimate_cost(config, prompt_chars=4000)
    assert estimate.requests == 100 and estimate.usd > 0
    assert "requests" in estimate.describe()


# -- teacher connection and key hygiene ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accepted_samples_can_be_mixed_into_the_examples() -> None:
    import random

    from studio.core.generation.prompts import pick_examples

    seeds = [Example(f"seed {i}", "", "o", i) for i in range(10)]
    accepted = [Example(f"accepted {i}", "", "o") for i in range(10)]
    chosen = pick_examples(random.Random(1), seeds, accepted, 3, accepted_share=0.34)
    assert len(chosen) == 3 and sum(e.seed_id is None for e in chosen) == 1
    assert all(e.seed_id is not None for e in pick_examples(random.Random(1), seeds, [], 3, 0.5))


def test_api_key_never_reaches_the_project_file_or_exported_config(seeded: Project, teacher: FakeTeacher) -> None:
    secret = "sk-SECRET-abc123"
    teacher.api_key = secret
    config = _config(teacher, target=20)
    config.teacher.api_key = secret
    config.teacher.extra_headers = {"X-Api-Key": secret, "X-Team": "blue"}
    assert secret not in json.dumps(config.to_dict())
    result = _run(seeded, config, api_key=secret)
    assert result.reason == "target"
    seeded.conn.execute("PRAGMA wal_checkpoint(FULL)")
    for path in seeded.root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_migration_adds_generation_tables_to_a_v1_project(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = db.connect(path)  # registers the SQL functions later migrations use
    conn.executescript("BEGIN;" + schema.V1_INITIAL + "PRAGMA user_version = 1; COMMIT;")
    assert schema.migrate(conn, path) == list(range(2, schema.LATEST_VERSION + 1))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"generation_requests", "rejected_candidates"} <= tables


# -- kill -9 and resume, with a real child process ----------------------------------------------------------
def test_killed_cli_run_resumes_without_loss_duplicates_or_resending(seeded: Project, teacher: FakeTeacher) -> None:
    teacher.latency_s = 0.15
    root = seeded.root
    seeded.close()  # the child takes the project lock
    env = {**os.environ, "FAKE_KEY": KEY, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    cmd = [sys.executable, "-m", "studio", "generate", "--project", str(root), "--base-url", teacher.base_url,
           "--model", "fake-teacher", "--target", "300", "--concurrency", "3", "--api-key-env", "FAKE_KEY", "--quiet"]
    child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = sqlite3.connect(root / "project.sqlite", timeout=10)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                done = reader.execute("SELECT COUNT(*) FROM generation_requests WHERE status='done'").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 3:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    done_before = {r[0] for r in reader.execute("SELECT request_key FROM generation_requests WHERE status='done'")}
    kept_before = reader.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert done_before and 0 < kept_before < 300
    sent_before = dict(teacher.requests_by_key)

    resumed = subprocess.run([sys.executable, "-m", "studio", "generate", "--project", str(root), "--resume",
                              "--api-key-env", "FAKE_KEY", "--quiet"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    for key in done_before:  # finished requests were never paid for twice
        assert teacher.requests_by_key[key] == sent_before[key] == 1
    rows = reader.execute("SELECT source, instruction FROM samples").fetchall()
    kept_by_request = dict(reader.execute("SELECT request_key, kept FROM generation_requests WHERE status='done'"))
    assert len(rows) == sum(kept_by_request.values()) == reader.execute("SELECT kept FROM generation_runs").fetchone()[0]
    assert len(rows) >= 300 and len({r[1] for r in rows}) == len(rows)
    per_request: dict[str, int] = {}
    for source, _ in rows:
        per_request[source] = per_request.get(source, 0) + 1
    assert per_request == {k: v for k, v in kept_by_request.items() if v}
    reader.close()


# -- self-instruct ----------------------------------------------------------------------------------------
def test_self_instruct_parsers() -> None:
    from studio.core.generation.self_instruct import parse_instances, parse_numbered

    items, dropped = parse_numbered("Sure:\n1. Name a colour\nthat is warm.\n2) Sort these words.\n3. Cut o", "length")
    assert items == ["Name a colour that is warm.", "Sort these words."] and dropped == ["Cut o"]
    pairs = parse_instances("Example 1\nInput: I loved it.\nOutput: positive\n\nExample 2\nInput: <noinput>\nOutput: x", False)
    assert pairs == [("I loved it.", "positive"), ("", "x")]
    assert parse_instances("Class label: negative\nInput: Awful film.", True) == [("Awful film.", "negative")]


def test_self_instruct_run_goes_through_all_stages_and_resumes_mid_chain(
        seeded: Project, teacher: FakeTeacher, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded.seeds.add(SeedTask("Classify the sentiment of the review as positive or negative.",
                              [Instance("Great food.", "positive")], is_classification=True))
    store = seeded.generation
    config = _config(teacher, mode="self-instruct", target=100, concurrency=3, num_tasks=6, max_requests=3)
    run_id = create_run(store, config)
    first = GenerationEngine(seeded, run_id, api_key=KEY).run_blocking()
    assert first.reason == "max_requests"
    pending = store.unfinished_requests(run_id)
    assert pending and {r.stage for r in pending} <= {"classify", "instances"}
    done_before = {r[0] for r in seeded.conn.execute(
        "SELECT request_key FROM generation_requests WHERE run_id = ? AND status = 'done'", (run_id,))}
    seeded.conn.execute("UPDATE generation_runs SET config = json_set(config, '$.max_requests', NULL) WHERE id = ?",
                        (run_id,))
    in_progress = {i for r in pending for i in r.payload.get("instructions", [r.payload.get("instruction")])}
    assert in_progress and not in_progress & {r[0] for r in seeded.conn.execute("SELECT instruction FROM samples")}
    primed: list[str] = []
    real_prime = CandidateFilter.prime

    def spy(self: CandidateFilter, texts) -> None:
        texts = list(texts)
        primed.extend(texts)
        real_prime(self, texts)

    monkeypatch.setattr(CandidateFilter, "prime", spy)
    second = GenerationEngine(seeded, run_id, api_key=KEY).run_blocking()
    assert in_progress <= set(primed)  # kept instructions still in the chain guard against near-duplicates
    assert second.reason == "target" and second.counters.kept == 100
    assert all(teacher.requests_by_key[key] == 1 for key in done_before)
    stages = dict(seeded.conn.execute(
        "SELECT stage, COUNT(*) FROM generation_requests WHERE run_id = ? AND status = 'done' GROUP BY stage", (run_id,)))
    assert set(stages) == {"instructions", "classify", "instances"}
    samples = seeded.conn.execute("SELECT instruction, input, output, seed_ids FROM samples WHERE run_id = ?",
                                  (run_id,)).fetchall()
    assert len(samples) == store.counters(run_id)["kept"]
    labelled = [s for s in samples if s[0].startswith("Classify")]
    assert labelled and all(s[2] in ("positive", "negative") for s in labelled)  # output-first for classification
    assert all(json.loads(s[3]) for s in samples)  # seeds of the root prompt carried down the chain
    assert seeded.generation.seed_yield(run_id)


# -- the CLI twin -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("base", "key", "code", "message"), [
    ("ok", KEY, 0, ""),
    ("ok", "sk-bad", 1, "refused the API key"),
    ("down", KEY, 1, "Cannot reach"),
])
def test_cli_generate_exit_codes_and_one_line_errors(seeded: Project, teacher: FakeTeacher, capsys,
                                                     monkeypatch: pytest.MonkeyPatch, base: str, key: str,
                                                     code: int, message: str) -> None:
    from studio.cli import main

    monkeypatch.setenv("TEACHER_KEY", key)
    root = seeded.root
    seeded.close()
    url = teacher.base_url if base == "ok" else f"http://127.0.0.1:{_free_port()}/v1"
    assert main(["generate", "--project", str(root), "--base-url", url, "--model", "fake-teacher", "--target", "25",
                 "--concurrency", "2", "--api-key-env", "TEACHER_KEY"]) == code
    out, err = capsys.readouterr()
    if code == 0:
        assert "target; kept" in out and "API key from $TEACHER_KEY" in err
    else:
        assert err.strip().splitlines()[-1].startswith("error: ") and message in err


# -- the answer writer and failures inside a run -------------------------------------------------------
def test_store_writer_runs_jobs_in_order_and_hands_back_their_errors(project: Project) -> None:
    from studio.core.generation.writer import StoreWriter

    writer = StoreWriter(project)
    order: list[int] = []
    futures = [writer.submit(lambda store, n=n: order.append(n) or n) for n in range(5)]
    failing = writer.submit(lambda store: store.conn.execute("SELECT * FROM no_such_table"))
    after = writer.submit(lambda store: store.conn.execute("SELECT count(*) FROM samples").fetchone()[0])
    writer.close()  # waits for every submitted job
    assert [f.result() for f in futures] == order == [0, 1, 2, 3, 4]
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        failing.result()
    assert after.result() == 0  # one failing job does not stop the writer
    with pytest.raises(RuntimeError):
        writer.submit(lambda store: None)


def test_store_writer_that_cannot_connect_fails_in_the_caller(tmp_path: Path) -> None:
    from studio.core.generation.writer import StoreWriter

    class Unopenable:
        def worker(self) -> Project:
            raise sqlite3.OperationalError("unable to open database file")

    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        StoreWriter(Unopenable())  # type: ignore[arg-type]


def test_a_failed_answer_commit_fails_the_run_loudly_and_keeps_what_was_committed(
        seeded: Project, teacher: FakeTeacher, monkeypatch: pytest.MonkeyPatch) -> None:
    real = GenerationRepository.complete_request
    calls = {"n": 0}

    def flaky(self, run_id, key, done):
        calls["n"] += 1
        if calls["n"] == 4:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, run_id, key, done)

    monkeypatch.setattr(GenerationRepository, "complete_request", flaky)
    run_id = create_run(seeded.generation, _config(teacher, target=10_000, max_requests=20, concurrency=2))
    engine = GenerationEngine(seeded, run_id, api_key=KEY)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        engine.run_blocking()
    store = seeded.generation
    assert store.run(run_id)["status"] == "failed"
    done = seeded.conn.execute("SELECT COUNT(*) FROM generation_requests WHERE run_id = ? AND status = 'done'",
                               (run_id,)).fetchone()[0]
    assert done >= 3  # the answers committed before the failure stay
    kept = seeded.conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?", (run_id,)).fetchone()[0]
    assert kept == store.counters(run_id)["kept"] > 0
    assert store.unfinished_requests(run_id)  # the failed one is still pending, for a resume


def test_an_error_while_adding_a_request_is_raised_not_reported_as_stopped(
        seeded: Project, teacher: FakeTeacher, monkeypatch: pytest.MonkeyPatch) -> None:
    real = GenerationRepository.add_request
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GenerationRepository, "add_request", flaky)
    run_id = create_run(seeded.generation, _config(teacher, target=10_000, max_requests=10, concurrency=2))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        GenerationEngine(seeded, run_id, api_key=KEY).run_blocking()
    assert seeded.generation.run(run_id)["status"] == "failed"


# -- the target is a promise; the change feed hears every commit ---------------------------------------------
def test_self_instruct_stops_at_its_target_exactly(seeded: Project, teacher: FakeTeacher) -> None:
    seeded.seeds.add(SeedTask("Classify the sentiment of the review as positive or negative.",
                              [Instance("Great food.", "positive")], is_classification=True))
    events: list = []
    result = _run(seeded, _config(teacher, mode="self-instruct", target=60, concurrency=8, num_tasks=20), events=events)
    assert result.reason == "target"
    stored = seeded.conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?", (result.run_id,)).fetchone()[0]
    assert stored == result.counters.kept == 60  # 60 asked, 60 stored
    assert len([e for e in events if isinstance(e, ev.SampleKept)]) == 60
    store = seeded.generation
    extra = store.rejected(result.run_id, "over_target")
    assert all(r["detail"] == "the target of 60 was reached" for r in extra)  # paid for, so kept restorable
    # the chain was not started again and again: few instruction batches, instance requests about as many as needed
    sent = dict(seeded.conn.execute("SELECT stage, COUNT(*) FROM generation_requests WHERE run_id = ? AND status = 'done'"
                                    " GROUP BY stage", (result.run_id,)))
    assert sent["instructions"] <= 4 and sent["instances"] <= 30 + 8
    assert len(extra) <= 8 * 2


def test_alpaca_keeps_no_more_than_its_target(seeded: Project, teacher: FakeTeacher) -> None:
    result = _run(seeded, _config(teacher, target=25, concurrency=4))
    assert result.reason == "target" and seeded.samples.count() == 25 == result.counters.kept
    assert seeded.generation.counters(result.run_id)["kept"] == 25


def test_the_engine_publishes_samples_and_runs_on_the_projects_feed(seeded: Project, teacher: FakeTeacher) -> None:
    from studio.core import changes

    heard: list[frozenset] = []
    threads: set[str] = set()

    def listen(kinds: frozenset) -> None:
        heard.append(kinds)
        threads.add(threading.current_thread().name)

    unsubscribe = seeded.changes.subscribe(listen)
    try:
        result = _run(seeded, _config(teacher, target=40, concurrency=1))
    finally:
        unsubscribe()
    assert result.reason == "target"
    with_samples = [k for k in heard if changes.SAMPLES in k]
    assert len(with_samples) >= 2 and all(changes.GENERATION_RUNS in k for k in with_samples)  # one per commit
    assert sum(changes.GENERATION_RUNS in k for k in heard) > len(with_samples)  # status changes too
    assert "generation-writer" in threads  # commits from the writer thread reach the same feed


# -- a failed start leaves no run row ----------------------------------------------------------------------
def test_a_start_that_fails_its_checks_stores_no_run(seeded: Project, teacher: FakeTeacher) -> None:
    from studio.core.generation.config import ConfigError
    from studio.core.generation.engine import prepare_run
    from studio.core.llm import LLMError

    def runs() -> int:
        return seeded.conn.execute("SELECT COUNT(*) FROM generation_runs").fetchone()[0]

    with pytest.raises(LLMError, match="refused the API key"):
        prepare_run(seeded, _config(teacher, target=10), api_key="sk-bad")
    with pytest.raises(LLMError, match="Cannot reach"):
        prepare_run(seeded, _config(teacher, target=10, teacher=EndpointConfig(
            base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m", timeout_s=2)), api_key=KEY)
    for bad in ({"target": 0}, {"concurrency": 0}, {"mode": "no-such-mode"}, {"budget_usd": 0.0}):
        with pytest.raises(ConfigError):
            prepare_run(seeded, _config(teacher, **bad), api_key=KEY)
    from studio.core.registry import GENERATION_MODES, RegistryError

    GENERATION_MODES.register("broken-mode", "no_such_plugin.modes:Mode", source="bad-plugin")
    try:
        with pytest.raises(RegistryError, match="bad-plugin"):
            prepare_run(seeded, _config(teacher, mode="broken-mode"), api_key=KEY)
    finally:
        GENERATION_MODES.unregister("broken-mode")
    assert runs() == 0
    # a model the list lacks is left to the first request (local servers answer for any name) ...
    unknown = prepare_run(seeded, _config(teacher, target=10, teacher=EndpointConfig(base_url=teacher.base_url,
                                                                                   model="gpt-99")), api_key=KEY)
    result = GenerationEngine(seeded, unknown, api_key=KEY).run_blocking()
    assert result.reason == "error" and "does not know the model 'gpt-99'" in result.message
    assert result.discarded and runs() == 0  # ... and a refusal there leaves no run either
    run_id = prepare_run(seeded, _config(teacher, target=10), api_key=KEY)
    assert runs() == 1 and seeded.generation.run(run_id)["status"] == "created"


def test_a_run_refused_before_any_answer_removes_its_fresh_row_but_a_resumed_one_stays(
        seeded: Project, teacher: FakeTeacher) -> None:
    events: list = []
    result = _run(seeded, _config(teacher, target=50), api_key="sk-wrong", events=events)
    assert result.reason == "error" and result.discarded and events[-1].discarded
    assert seeded.generation.run(result.run_id) is None
    assert seeded.conn.execute("SELECT COUNT(*) FROM generation_requests").fetchone()[0] == 0

    done = _run(seeded, _config(teacher, target=100, max_requests=1))
    assert done.reason == "max_requests"
    again = GenerationEngine(seeded, done.run_id, api_key="sk-wrong").run_blocking()
    assert again.reason == "error" and not again.discarded  # a resumed run holds work: it stays, marked failed
    assert seeded.generation.run(done.run_id)["status"] == "failed"


# -- the CLI: refused arguments, Ctrl+C ---------------------------------------------------------------------
@pytest.mark.parametrize(("flag", "value"), [("--concurrency", "0"), ("--target", "0"), ("--target", "-3"),
                                             ("--max-requests", "0"), ("--concurrency", "two")])
def test_cli_refuses_counts_below_one(flag: str, value: str, capsys) -> None:
    from studio.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["generate", "--base-url", "http://h/v1", "--model", "m", flag, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and ("must be at least 1" in err or "not a whole number" in err)


def test_cli_failed_start_stores_no_run(seeded: Project, teacher: FakeTeacher, capsys,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.cli import main

    monkeypatch.setenv("TEACHER_KEY", "sk-bad")
    root = seeded.root
    seeded.close()
    for _ in range(2):
        assert main(["generate", "--project", str(root), "--base-url", teacher.base_url, "--model", "fake-teacher",
                     "--target", "5", "--api-key-env", "TEACHER_KEY"]) == 1
    assert "refused the API key" in capsys.readouterr().err
    with Project.open(root) as reopened:
        assert reopened.conn.execute("SELECT COUNT(*) FROM generation_runs").fetchone()[0] == 0


def test_ctrl_c_during_generate_prints_one_summary_line_and_no_traceback(seeded: Project,
                                                                         teacher: FakeTeacher) -> None:
    teacher.latency_s = 0.2
    root = seeded.root
    seeded.close()
    env = {**os.environ, "FAKE_KEY": KEY, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    cmd = [sys.executable, "-m", "studio", "generate", "--project", str(root), "--base-url", teacher.base_url,
           "--model", "fake-teacher", "--target", "100000", "--concurrency", "2", "--api-key-env", "FAKE_KEY"]
    child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while teacher.total_requests < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run 1: stopped; kept ")
    assert "stopping" in err
    with Project.open(root) as reopened:
        assert GenerationRepository(reopened.conn).run(1)["status"] == "stopped"


def test_a_registered_sample_filter_runs_in_order_with_its_reason_code() -> None:
    from studio.core.generation.filters import reasons
    from studio.core.registry import SAMPLE_FILTERS

    SAMPLE_FILTERS.register("no_questions", "plugin_filters:NoQuestions", reason="question", source="test-plugin")
    try:
        assert "question" in reasons()
        candidate_filter = CandidateFilter(FilterSettings(), index_factory=lambda t: NoIndex())
        assert [name for name, _ in candidate_filter.checks][-2:] == ["no_questions", "near_duplicate"]  # index last
        verdict = candidate_filter.check(Candidate("Is the sky blue on a clear day?", "", "Yes."))
        assert verdict.reason == "question" and verdict.detail == "ends with ?"
        assert candidate_filter.check(Candidate("Draw the sky on a clear day?", "", "x")).reason == "blacklist"
        assert candidate_filter.check(Candidate("Explain why the sky is blue.", "", "Light.")).kept
    finally:
        SAMPLE_FILTERS.unregister("no_questions")
    assert "question" not in reasons()


def test_a_project_without_seed_tasks_cannot_start(project: Project, teacher: FakeTeacher) -> None:
    from studio.core.generation.config import ConfigError
    from studio.core.generation.engine import prepare_run

    with pytest.raises(ConfigError, match="no seed tasks"):
        prepare_run(project, _config(teacher, target=5), api_key=KEY)
    assert project.generation.latest_run_id() is None


def test_a_request_the_teacher_rejects_before_any_answer_stops_the_run(seeded: Project, teacher: FakeTeacher) -> None:
    teacher.faulty_attempts, teacher.fault_cycle = 99, ("bad_request",)
    result = _run(seeded, _config(teacher, target=100, concurrency=2))
    assert result.reason == "error" and "rejected the request (400): " in result.message
    assert "max_tokens is too large" in result.message and result.discarded
    assert teacher.total_requests <= 2  # not one failed request after another


def test_reason_codes_read_as_words_in_counters_and_summaries() -> None:
    from studio.core.generation.filters import describe_reasons, reason_label

    assert reason_label("near_duplicate") == "near duplicate" and reason_label("over_target") == "past the target"
    assert describe_reasons({"too_short": 99, "over_target": 15, "blacklist": 99}) == \
        "blacklisted word 99, too short 99, past the target 15"
    assert describe_reasons({}) == "none"
