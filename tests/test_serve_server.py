"""The real server process (python -m studio.serve) on the tiny model and a peft adapter of a project's run,
spoken to by the real ``openai`` client and by httpx for the raw SSE. One server for the module."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx  # the HTTP client the openai package ships with
import openai
import pytest

from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.core.serving.server_info import read_info
from studio.core.training.prompt_format import render_prompt
from studio.core.training.settings import preset_settings

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Name a color."
STARTUP_S = 90


def make_adapter(base: Path, target: Path, seed: int) -> None:
    """A LoRA adapter with random non-zero lora_B, so it changes the base model's answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    model.save_pretrained(target)


@pytest.fixture(scope="module")
def served_project(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "project"
    with Project.create(root) as project:
        for i in range(4):
            project.samples.add(Sample(f"Instruction {i}.", "", f"Output {i}.", status=Status.ACCEPTED))
        project.snapshots.create("v1")
        settings = preset_settings("alpaca-lora").with_overrides({"max_steps": 1})
        run = project.training.create(snapshot="v1", base_model=str(tiny_base), settings=settings, name="student")
        make_adapter(tiny_base, run.adapter_dir, seed=1)
    make_adapter(tiny_base, root.parent / "extra" / "adapter", seed=2)
    return root


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """The server's process and its first stdout line; its stderr lines gather in ``proc.err_lines``
    (read all along, so the request log never fills the pipe)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen([sys.executable, "-m", "studio.serve", "--port", "0", "--threads", "1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    proc.err_lines = []
    proc.err_reader = threading.Thread(target=lambda: proc.err_lines.extend(iter(proc.stderr.readline, "")),
                                       daemon=True)
    proc.err_reader.start()
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(STARTUP_S)
    if not lines or not lines[0]:
        proc.kill()
        proc.wait()
        proc.err_reader.join(10)
        raise AssertionError(f"the server did not start: {''.join(proc.err_lines)[-2000:]}")
    return proc, lines[0].rstrip("\n")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.err_reader.join(10)
    return proc.returncode, "".join(proc.err_lines)


def log_lines(proc: subprocess.Popen, path: str, count: int) -> list[str]:
    """The server's request log lines for ``path``, once there are at least ``count``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [line.rstrip("\n") for line in list(proc.err_lines) if f" POST {path} " in line]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} log lines for {path}: {proc.err_lines[-10:]}")


@pytest.fixture(scope="module")
def server(served_project: Path):
    proc, line = start_server("--project", str(served_project))
    url = line.split()[1]
    yield {"proc": proc, "line": line, "url": url, "root": url.removesuffix("/v1"), "project": served_project}
    stop(proc)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server["url"], api_key="none", max_retries=0, timeout=60)


def ask(client: openai.OpenAI, model: str, prompt: str = PROMPT, **kwargs) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                           temperature=kwargs.pop("temperature", 0), max_tokens=kwargs.pop("max_tokens", 24),
                                           **kwargs)
    return reply.choices[0].message.content


def stream_text(client: openai.OpenAI, model: str, prompt: str = PROMPT, max_tokens: int = 24) -> str:
    chunks = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            temperature=0, max_tokens=max_tokens, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def health(server) -> dict:
    return httpx.get(server["root"] + "/health", timeout=10).json()


def listening_address(port: int) -> str:
    """The local address of the socket listening on ``port`` (Linux /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            return socket.inet_ntoa(bytes.fromhex(address)[::-1])
    raise AssertionError(f"nothing listens on port {port}")


def test_first_line_info_file_and_models(server) -> None:
    assert server["line"] == f"Serving {server['url']} · models: tiny-llama (base), student (adapter of tiny-llama)"
    info = read_info(server["project"] / "serve" / "server.json")
    assert info is not None and info.pid == server["proc"].pid and info.url == server["url"]
    models = httpx.get(server["url"] + "/models").json()
    assert models["object"] == "list"
    by_id = {m["id"]: m for m in models["data"]}
    assert by_id["tiny-llama"]["parent"] is None and by_id["tiny-llama"]["prompt_format"] == "chat"
    assert by_id["student"]["parent"] == "tiny-llama" and by_id["student"]["prompt_format"] == "alpaca-lora"
    assert by_id["student"]["root"].endswith("runs/1/adapter") and by_id["student"]["owned_by"] == "distill-studio"
    if sys.platform.startswith("linux"):
        assert listening_address(int(server["url"].rsplit(":", 1)[1].split("/")[0])) == "127.0.0.1"


def test_chat_streaming_and_not_give_the_same_answer(client) -> None:
    reply = client.chat.completions.create(model="student", messages=[{"role": "user", "content": PROMPT}],
                                           temperature=0, max_tokens=24)
    assert reply.object == "chat.completion" and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens > 0 and reply.choices[0].message.content
    assert stream_text(client, "student") == reply.choices[0].message.content


def test_raw_sse_follows_openai(server) -> None:
    body = {"model": "student", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0, "max_tokens": 12,
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server["url"] + "/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in with_choices[:-1]] == [None] * (len(with_choices) - 1)
    assert with_choices[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks.index(chunks[-1]) == len(with_choices)  # the usage chunk is the last before [DONE]


def test_completions_take_the_raw_prompt(client) -> None:
    prompt = render_prompt("alpaca-lora", PROMPT)
    reply = client.completions.create(model="student", prompt=prompt, temperature=0, max_tokens=16)
    assert reply.object == "text_completion"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="student", prompt=prompt, temperature=0, max_tokens=16, stream=True) if c.choices)
    assert streamed == reply.choices[0].text
    # the chat route renders the run's training format (BOS added as training did), so the texts agree
    assert reply.choices[0].text.startswith(ask(client, "student", max_tokens=16).rstrip()[:8])


def test_the_chat_prompt_is_the_training_prompt(client, tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    reply = client.chat.completions.create(model="student", messages=[{"role": "user", "content": PROMPT}],
                                           temperature=0, max_tokens=4)
    expected = tokenizer(render_prompt("alpaca-lora", PROMPT), add_special_tokens=True)["input_ids"]
    assert reply.usage.prompt_tokens == len(expected)
    base = client.chat.completions.create(model="base", messages=[{"role": "user", "content": PROMPT}],
                                          temperature=0, max_tokens=4)
    chat_prompt = render_prompt("chat", PROMPT, tokenizer=tokenizer)
    assert base.usage.prompt_tokens == len(tokenizer(chat_prompt, add_special_tokens=False)["input_ids"])


def test_base_and_adapter_differ_from_one_server(client) -> None:
    prompt = render_prompt("alpaca-lora", PROMPT)  # the same text to both, through the raw route
    base = client.completions.create(model="tiny-llama", prompt=prompt, temperature=0, max_tokens=16).choices[0].text
    student = client.completions.create(model="student", prompt=prompt, temperature=0, max_tokens=16).choices[0].text
    assert base != student
    assert client.completions.create(model="base", prompt=prompt, temperature=0, max_tokens=16).choices[0].text == base


def test_errors_are_openai_json(client, server) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "no-such-model")
    assert caught.value.body["code"] == "model_not_found"
    url = server["url"] + "/chat/completions"
    good = {"model": "student", "messages": [{"role": "user", "content": "x"}]}
    for body in (b"{not json", json.dumps({"model": "student"}).encode(), json.dumps({**good, "n": 2}).encode(),
                 json.dumps({**good, "max_tokens": -5}).encode()):
        response = httpx.post(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
    missing = httpx.get(server["url"] + "/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()


def test_eight_concurrent_streams_each_get_their_own_whole_answer(client, server) -> None:
    prompts = [f"Name a color {i}." if i % 2 else f"Translate the word to French {i}." for i in range(8)]
    models = ["student" if i % 3 else "base" for i in range(8)]
    alone = [stream_text(client, m, p) for m, p in zip(models, prompts)]
    together: list[str | None] = [None] * 8

    def one(i: int) -> None:
        together[i] = stream_text(client, models[i], prompts[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert together == alone
    assert len(set(alone)) > 1
    assert health(server)["batch"]["largest"] > 1  # some were generated together, and still match


def test_a_client_that_disconnects_frees_its_slot(client, server) -> None:
    served_before = health(server)["served"]
    # the base in its chat format stops only at EOS, which ignore_eos (vLLM's extension) rules out
    body = {"model": "base", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
            "max_tokens": 1000, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", server["url"] + "/chat/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()
        got = [next(lines) for _ in range(6)]
    assert any('"content"' in line for line in got), got
    assert ask(client, "student")  # the next request is served
    deadline = time.monotonic() + 30
    while health(server)["queue"]["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    state = health(server)
    assert state["queue"] == {"waiting": 0, "running": 0, "max": 16}
    assert state["served"] == served_before + 1  # the abandoned generation was cancelled, not finished


def test_stop_strings_cut_the_text(client) -> None:
    full = ask(client, "student", max_tokens=24)
    cut_at = full[len(full) // 2:].strip()[:3] or full[-2:]
    reply = client.chat.completions.create(model="student", messages=[{"role": "user", "content": PROMPT}],
                                           temperature=0, max_tokens=24, stop=[cut_at])
    assert reply.choices[0].message.content == full[:full.index(cut_at)]
    assert reply.choices[0].finish_reason == "stop"


def test_a_seed_makes_sampling_reproducible(client) -> None:
    one = ask(client, "student", temperature=1.0, seed=7, max_tokens=16)
    assert ask(client, "student", temperature=1.0, seed=7, max_tokens=16) == one
    others = {ask(client, "student", temperature=1.0, seed=seed, max_tokens=16) for seed in range(1, 5)}
    assert len(others | {one}) > 1


def test_load_and_unload_an_adapter_at_run_time(client, server) -> None:
    path = server["project"].parent / "extra" / "adapter"
    response = httpx.post(server["url"] + "/load_lora_adapter", json={"lora_name": "extra", "lora_path": str(path)},
                          timeout=60)
    assert response.status_code == 200 and response.json() == {"id": "extra"}
    entry = next(m for m in client.models.list().data if m.id == "extra")
    assert entry.parent == "tiny-llama" and entry.prompt_format == "alpaca"  # no run config beside it
    info = read_info(server["project"] / "serve" / "server.json")
    assert "extra" in info.catalog.ids()
    prompt = render_prompt("alpaca", PROMPT)
    texts = {m: client.completions.create(model=m, prompt=prompt, temperature=0, max_tokens=12).choices[0].text
             for m in ("extra", "student")}
    assert texts["extra"] != texts["student"]
    again = httpx.post(server["url"] + "/load_lora_adapter", json={"lora_name": "extra", "lora_path": str(path)})
    assert again.status_code == 400
    assert httpx.post(server["url"] + "/unload_lora_adapter", json={"lora_name": "extra"}).status_code == 200
    assert "extra" not in [m.id for m in client.models.list().data]
    assert httpx.post(server["url"] + "/unload_lora_adapter", json={"lora_name": "extra"}).status_code == 404


def test_another_host_warns_and_sigterm_removes_the_info_file(tiny_base: Path, tmp_path: Path) -> None:
    info_file = tmp_path / "server.json"
    proc, line = start_server("--base-model", str(tiny_base), "--host", "0.0.0.0", "--info-file", str(info_file))
    try:
        assert line.startswith("Serving http://127.0.0.1:") and line.endswith("models: tiny-llama (base)")
        info = read_info(info_file)
        assert info is not None and info.host == "0.0.0.0" and info.pid == proc.pid
        assert info.url.startswith("http://127.0.0.1:")  # local clients keep the loopback address
        # the bound address, and what other machines should use
        assert f"(listening on 0.0.0.0 port {info.port}; other machines: " in line
        assert f"http://{socket.gethostname()}:{info.port}/v1" in line
        if sys.platform.startswith("linux"):
            assert listening_address(info.port) == "0.0.0.0"
        body = {"model": "base", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
                "max_tokens": 1000, "ignore_eos": True, "stream": True}
        with httpx.stream("POST", info.url + "/chat/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            next(lines)
            proc.send_signal(signal.SIGTERM)  # mid-stream: the stream is ended for its client, not left hanging
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]" and "shutting down" in rest[-2]
    finally:
        code, err = stop(proc)
    assert code == 0
    assert "reachable from other machines" in err and "Traceback" not in err
    assert not info_file.exists()


def test_startup_failures_are_one_line_and_exit_2(tmp_path: Path, server) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    taken = int(server["url"].rsplit(":", 1)[1].split("/")[0])
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")  # passes the catalog; the port fails first
    for args, words in ((["--base-model", str(tmp_path / "nowhere")], "nowhere"),
                        (["--base-model", str(tmp_path), "--port", str(taken)], "port is taken")):
        result = subprocess.run([sys.executable, "-m", "studio.serve", *args], capture_output=True, text=True,
                                env=env, cwd=REPO, timeout=60, check=False)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stdout == ""


def test_a_full_queue_is_429_and_a_closing_engine_503(tiny_base: Path) -> None:
    from studio.core.serving import wire
    from studio.core.serving.catalog import build_catalog
    from studio.serve.engine import Engine, Job

    catalog = build_catalog([], base_model=str(tiny_base))
    engine = Engine(catalog, device="cpu", max_queue=1)  # not started: jobs stay queued
    events: list[tuple] = []
    job = lambda: Job(model=catalog.base, prompt_ids=[1], sampling=wire.Sampling(), stops=[],
                      max_new_tokens=1, emit=events.append)
    engine.submit(job())
    with pytest.raises(wire.WireError) as caught:
        engine.submit(job())
    assert caught.value.status == 429 and caught.value.body()["error"]["code"] == "rate_limit_exceeded"
    engine.close()
    assert events == [("error", 503, "the server is shutting down")]
    with pytest.raises(wire.WireError) as caught:
        engine.submit(job())
    assert caught.value.status == 503


def test_waiting_requests_are_batched_and_a_short_answer_ends_before_the_long_one(client, server) -> None:
    """C (long) then B (short) queue behind A; once A's client leaves, B and C run as one batch and
    B's answer ends first: one at a time, C (queued first) would end first."""
    def wait_for(predicate) -> None:
        deadline = time.monotonic() + 30
        while not predicate(health(server)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert predicate(health(server))

    ended: list[str] = []
    answers: dict[str, str] = {}

    def request(name: str, max_tokens: int) -> None:
        chunks = client.chat.completions.create(model="student", messages=[{"role": "user", "content": PROMPT}],
                                                temperature=0, max_tokens=max_tokens, stream=True,
                                                extra_body={"ignore_eos": True})
        answers[name] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        ended.append(name)

    body = {"model": "base", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
            "max_tokens": 1000, "ignore_eos": True, "stream": True}
    threads = {"C": threading.Thread(target=request, args=("C", 400)), "B": threading.Thread(target=request, args=("B", 3))}
    with httpx.stream("POST", server["url"] + "/chat/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()
        next(lines)
        threads["C"].start()
        wait_for(lambda h: h["queue"]["waiting"] == 1)
        threads["B"].start()
        wait_for(lambda h: h["queue"]["waiting"] == 2)
    for thread in threads.values():
        thread.join(60)
    assert ended == ["B", "C"]
    assert answers["C"].startswith(answers["B"]) and len(answers["C"]) > len(answers["B"])


# -- QA fixes ------------------------------------------------------------------------------------
def test_each_request_is_one_log_line_without_its_text(client, server) -> None:
    before = len(log_lines(server["proc"], "/v1/chat/completions", 0))
    secret = "The password is swordfish."
    client.chat.completions.create(model="student", messages=[{"role": "user", "content": secret}],
                                   temperature=0, max_tokens=5, extra_body={"ignore_eos": True})
    stream_text(client, "base", secret, max_tokens=3)
    with pytest.raises(openai.NotFoundError):
        ask(client, "no-such-model", secret)
    # An earlier test's long stream may still log its line now: keep only these three requests' lines.
    def ours(found: list[str]) -> list[str]:
        return [x for x in found if " student no-stream " in x or " base stream " in x or " no-such-model " in x]

    wanted = before + 3
    lines = ours(log_lines(server["proc"], "/v1/chat/completions", wanted)[before:])
    while len(lines) < 3 and wanted < before + 6:
        wanted += 1
        lines = ours(log_lines(server["proc"], "/v1/chat/completions", wanted)[before:])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d POST /v1/chat/completions student no-stream "
                        r"prompt=\d+ completion=5 \d+\.\d\ds length", lines[0]), lines[0]
    assert re.search(r" base stream prompt=\d+ completion=\d+ \d+\.\d\ds (stop|length)$", lines[1]), lines[1]
    assert lines[2].endswith(" 404") and " no-such-model no-stream " in lines[2]
    err = "".join(server["proc"].err_lines)
    assert "swordfish" not in err
    assert "FutureWarning" not in err and "is_gradient_checkpointing" not in err  # the libraries' notices


def test_quiet_logs_no_requests(tiny_base: Path) -> None:
    proc, line = start_server("--base-model", str(tiny_base), "--quiet")
    try:
        client = openai.OpenAI(base_url=line.split()[1], api_key="none", max_retries=0, timeout=60)
        assert ask(client, "base", max_tokens=2) is not None
    finally:
        code, err = stop(proc)
    assert code == 0 and "/v1/chat/completions" not in err


def test_fields_the_server_cannot_honour_are_400(server) -> None:
    url = server["url"] + "/chat/completions"
    good = {"model": "student", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    for extra, words in (({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
                         ({"logprobs": True}, "not supported by this server"),
                         ({"top_logprobs": 2}, "not supported by this server"),
                         ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tool calling is not supported"),
                         ({"tool_choice": "auto"}, "tool calling is not supported"),
                         ({"response_format": {"type": "json_object"}}, "'json_object' is not supported")):
        response = httpx.post(url, json={**good, **extra}, timeout=30)
        assert response.status_code == 400, extra
        assert words in response.json()["error"]["message"], response.json()
        assert response.json()["error"]["param"] == next(iter(extra))
    for harmless in ({"stop": ["a", "b", "c", "d"]}, {"logprobs": False}, {"tool_choice": "none"},
                     {"response_format": {"type": "text"}}):
        assert httpx.post(url, json={**good, **harmless}, timeout=30).status_code == 200, harmless
    completion = {"model": "student", "prompt": "x", "max_tokens": 1, "logprobs": 2}
    response = httpx.post(server["url"] + "/completions", json=completion, timeout=30)
    assert response.status_code == 400 and "not supported" in response.json()["error"]["message"]


def test_a_last_assistant_message_is_continued(client, server, tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    prefill = "Blue"
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": prefill}]
    # a text format: the same as the raw training prompt + the prefill through /v1/completions
    chat = client.chat.completions.create(model="student", messages=messages, temperature=0, max_tokens=8)
    raw = client.completions.create(model="student", prompt=render_prompt("alpaca-lora", PROMPT) + prefill,
                                    temperature=0, max_tokens=8)
    assert chat.choices[0].message.content == raw.choices[0].text and chat.usage.prompt_tokens == raw.usage.prompt_tokens
    # the chat format: the template's prompt for the answer, then the prefill
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    base = client.chat.completions.create(model="base", messages=messages, temperature=0, max_tokens=4)
    expected = render_prompt("chat", PROMPT, tokenizer=tokenizer) + prefill
    assert base.usage.prompt_tokens == len(tokenizer(expected, add_special_tokens=False)["input_ids"])
    url = server["url"] + "/chat/completions"
    for bad, words in (([{"role": "assistant", "content": "Hi"}], "must follow a user message"),
                       ([{"role": "user", "content": "x"}, {"role": "system", "content": "y"}],
                        "the last message is the system's")):
        response = httpx.post(url, json={"model": "base", "messages": bad}, timeout=30)
        assert response.status_code == 400 and words in response.json()["error"]["message"], response.json()


def test_a_second_server_for_the_project_is_refused_and_leaves_the_first_listed(server) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "studio.serve", "--project", str(server["project"]), "--port", "0"],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"distill-studio serve: a server for this project is already running at "
                                     f"{server['url']} (pid {server['proc'].pid}); stop it first or pass "
                                     "--info-file PATH")
    info = read_info(server["project"] / "serve" / "server.json")
    assert info is not None and info.pid == server["proc"].pid
