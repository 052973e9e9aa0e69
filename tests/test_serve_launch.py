"""Launching and watching the model server, without Qt: argv, environment, the GPU check, /health, ready, stop."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import studio
from studio.core.processes import pid_alive
from studio.core.project import Project
from studio.core.serving import launch
from studio.core.serving.catalog import project_catalog
from studio.core.serving.launch import ServeCancelled, ServeError
from studio.core.serving.server_info import ServerInfo, read_info, write_info
from tests.serve_support import base_folder, fake_program, live_training, trained_run


def test_serve_command_argv() -> None:
    assert launch.serve_command(project=Path("/p")) == [
        sys.executable, "-m", "studio.serve", "--project", "/p", "--host", "127.0.0.1", "--port", "8765"]
    assert launch.serve_command(project=Path("/p"), runs=("run-1", "7"), base_model="/m/base", host="0.0.0.0",
                                port=0, info_file=Path("/p/serve/server.json"), threads=2, device="cuda") == [
        sys.executable, "-m", "studio.serve", "--project", "/p", "--run", "run-1", "--run", "7",
        "--base-model", "/m/base", "--host", "0.0.0.0", "--port", "0", "--info-file", "/p/serve/server.json",
        "--threads", "2", "--device", "cuda"]
    assert launch.serve_command(project=None, base_model="/m", program=["py", "fake.py"]) == [
        "py", "fake.py", "--base-model", "/m", "--host", "127.0.0.1", "--port", "8765"]
    assert launch.serve_command(project=None, module="other.mod")[:3] == [sys.executable, "-m", "other.mod"]


def test_serve_env() -> None:
    env = launch.serve_env(3, base={"PYTHONPATH": "/x", "HOME": "/h"})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3" and env["HOME"] == "/h"
    assert env["PYTHONUNBUFFERED"] == "1" and env["HF_HUB_OFFLINE"] == "1" and env["TOKENIZERS_PARALLELISM"] == "false"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(Path(studio.__file__).resolve().parents[1]), "/x"]
    assert "OMP_NUM_THREADS" not in launch.serve_env(0, base={})


def test_vllm_command_names_every_adapter_and_rounds_the_rank_up(project: Project, tmp_path: Path) -> None:
    from distill_vllm_serve.backend import VLLM_BACKEND, available, vllm_command

    base = base_folder(tmp_path)
    first = trained_run(project, base, name="first", r=8)
    second = trained_run(project, base, name="second", r=12)
    catalog = project_catalog(project)
    expected = [
        "vllm", "serve", str(base.resolve()), "--served-model-name", "tiny-base", "base", "--enable-lora",
        "--lora-modules", f"first={first.adapter_dir}", f"second={second.adapter_dir}",
        "--host", "127.0.0.1", "--port", "9000", "--tensor-parallel-size", "2", "--max-lora-rank", "16"]
    assert vllm_command(catalog, host="127.0.0.1", port=9000, tensor_parallel_size=2) == expected
    assert VLLM_BACKEND.command(catalog, "127.0.0.1", 9000, 2) == expected  # the protocol's call
    (second.adapter_dir / "adapter_config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ServeError, match=r"adapter_config.json: no readable LoRA rank"):
        vllm_command(catalog, host="127.0.0.1", port=9000, tensor_parallel_size=1)
    with pytest.raises(ServeError, match="tensor_parallel_size must be at least 1"):
        vllm_command(catalog, host="h", port=1, tensor_parallel_size=0)
    assert available() == (__import__("shutil").which("vllm") is not None)
    assert (VLLM_BACKEND.unavailable_reason() == "") == available()


def test_the_studio_backend_builds_the_studio_servers_command(project: Project, tmp_path: Path) -> None:
    from studio.core.serving.backends import STUDIO_BACKEND, ServeOptions, serving_backend

    assert serving_backend("studio") is STUDIO_BACKEND and STUDIO_BACKEND.writes_info
    catalog = project_catalog(project, base_model=str(base_folder(tmp_path)))
    options = ServeOptions(project=tmp_path, info_file=tmp_path / "i.json", runs=("first",), threads=2)
    assert STUDIO_BACKEND.command(catalog, "127.0.0.1", 0, 1, options) == launch.serve_command(
        project=tmp_path, runs=("first",), host="127.0.0.1", port=0, info_file=tmp_path / "i.json", threads=2)
    assert STUDIO_BACKEND.env(options)["OMP_NUM_THREADS"] == "2"


class _ModelsOnly(BaseHTTPRequestHandler):
    """An OpenAI server without our /health: a base and one LoRA module on /v1/models."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.dumps({"object": "list", "data": [{"id": "tiny-base"}, {"id": "first", "parent": "tiny-base"}]})
        data = body.encode("utf-8") if self.path == "/v1/models" else b"{}"
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


def test_a_server_without_health_claims_no_device_and_only_vllm_says_cuda(monkeypatch) -> None:
    from distill_vllm_serve.backend import VLLM_BACKEND

    from studio.core.serving.backends import probe_health
    from studio.core.serving.catalog import BASE, Catalog, ServedModel

    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelsOnly)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        base = ServedModel(id="tiny-base", kind=BASE, parent=None, prompt_format="chat")
        info = ServerInfo(pid=os.getpid(), host="127.0.0.1", port=server.server_address[1],
                          catalog=Catalog("tiny-base", (base,)), device="cpu", backend="a-plugin-not-here")
        health = probe_health(info)  # its backend is not loadable: /v1/models, which every server answers
        assert health["adapters"] == ["first"] and health["base_id"] == "tiny-base"
        assert health["device"] == ""  # unknown: the info file's "cpu" is shown, not a GPU it may not have
        monkeypatch.setattr(launch, "gpu_memory_used_mib", lambda: [1024])
        assert VLLM_BACKEND.health(url)["device"] == "cuda" and VLLM_BACKEND.health(url)["memory"] == {
            "gpu_used_mib": [1024]}
    finally:
        server.shutdown()
        server.server_close()


def test_training_gpu_conflict(project: Project, tmp_path: Path, monkeypatch) -> None:
    base = base_folder(tmp_path)
    run = trained_run(project, base, name="gpu-run")
    assert launch.training_gpu_conflict(project) is None  # not running
    child = live_training(run, "cuda (NVIDIA H200)")
    try:
        message = launch.training_gpu_conflict(project)
        assert message == ("Training run #1 gpu-run is using the GPU (NVIDIA H200); a model server beside it can "
                           "run both out of memory. Start the server anyway?")
        with open(run.events_path, "a", encoding="utf-8") as handle:  # resumed on the CPU: the newest leg counts
            handle.write(json.dumps({"type": "log", "step": 1, "loss": 1.0}) + "\n")
            handle.write(json.dumps({"type": "config", "run_id": 1, "device": "cpu"}) + "\n")
        assert launch.training_gpu_conflict(project) is None
    finally:
        child.kill()
        child.wait()
    assert launch.training_gpu_conflict(project) is None  # the job is gone (its pid file names a dead process)


def test_a_starting_run_without_a_config_event_counts_only_where_a_gpu_is(project: Project, tmp_path: Path,
                                                                           monkeypatch) -> None:
    run = trained_run(project, base_folder(tmp_path), name="loading")
    child = live_training(run, None)
    try:
        monkeypatch.setattr(launch, "nvidia_gpu_present", lambda: True)
        assert "Training run #1 loading is using the GPU (cuda:0)" in launch.training_gpu_conflict(project)
        monkeypatch.setattr(launch, "nvidia_gpu_present", lambda: False)
        assert launch.training_gpu_conflict(project) is None
    finally:
        child.kill()
        child.wait()


# -- /health -----------------------------------------------------------------------------------------
class _Canned(BaseHTTPRequestHandler):
    status, body, delay = 200, b"{}", 0.0

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(self.delay)
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def canned():
    servers = []

    def serve(status: int = 200, body: bytes = b"{}", delay: float = 0.0) -> str:
        handler = type("H", (_Canned,), {"status": status, "body": body, "delay": delay})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fetch_health_answers_and_errors(canned) -> None:
    url = canned(body=json.dumps({"status": "ready", "pid": 1}).encode())
    assert launch.fetch_health(url) == {"status": "ready", "pid": 1}
    assert launch.fetch_health(url.removesuffix("/v1")) == {"status": "ready", "pid": 1}  # the root works too
    port = free_port()
    with pytest.raises(ServeError, match=rf"127.0.0.1:{port} does not answer \(connection refused\); is it running"):
        launch.fetch_health(f"http://127.0.0.1:{port}/v1")
    error = json.dumps({"error": {"message": "shutting down", "type": "server_error"}}).encode()
    with pytest.raises(ServeError, match=r"/health answered HTTP 503: shutting down"):
        launch.fetch_health(canned(status=503, body=error))
    with pytest.raises(ServeError, match="did not answer JSON: another program may be on that port"):
        launch.fetch_health(canned(body=b"<html>hello</html>"))
    with pytest.raises(ServeError, match="did not answer a JSON object"):
        launch.fetch_health(canned(body=b"[1, 2]"))
    with pytest.raises(ServeError, match=r"did not answer within 0.2 s \(busy or stuck\)"):
        launch.fetch_health(canned(delay=1.0), timeout_s=0.2)


def test_pick_port(tmp_path: Path) -> None:
    port = free_port()
    assert launch.pick_port("127.0.0.1", port) == port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert launch.pick_port("127.0.0.1", taken.getsockname()[1]) == 0


# -- ready, stop, adapters (a real child: tests/fake_studio_server.py) ------------------------------------
def start_fake(info_file: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(fake_program("--info-file", str(info_file), "--port", "0", *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_wait_ready_returns_the_servers_info_and_ignores_an_older_file(tmp_path: Path) -> None:
    info_file = tmp_path / "serve" / "server.json"
    stale = ServerInfo(pid=os.getpid(), host="127.0.0.1", port=1, catalog=project_catalog_stub())
    write_info(info_file, stale)  # another (live!) process's file: not the one we wait for
    child = start_fake(info_file, "--startup-delay-ms", "300", "--run", "run-1")
    try:
        info = launch.wait_ready(info_file, child.pid, timeout_s=20)
        assert info.pid == child.pid and info.port != 1 and info.catalog.ids() == ["base-model", "run-1"]
        assert child.stdout.readline().startswith(f"Serving {info.url} · models: base-model (base), run-1 (adapter")
        health = launch.fetch_health(info.url)
        assert health["pid"] == child.pid and health["adapters"] == ["run-1"]
        launch.stop_server(info)
        assert child.wait(10) == 0 and not info_file.exists()
    finally:
        if child.poll() is None:
            child.kill()


def project_catalog_stub():
    from studio.core.serving.catalog import BASE, Catalog, ServedModel

    return Catalog(base_model="/old", models=(ServedModel(id="old", kind=BASE, parent=None, prompt_format="chat"),))


def test_wait_ready_raises_when_the_process_dies_first(tmp_path: Path) -> None:
    child = start_fake(tmp_path / "server.json", "--fail", "boom")
    try:
        with pytest.raises(ServeError, match="the server exited before it was ready"):
            launch.wait_ready(tmp_path / "server.json", child.pid, timeout_s=30)
        assert child.wait(10) == 2 and child.stderr.read().strip() == "boom"
    finally:
        if child.poll() is None:
            child.kill()


def test_wait_ready_times_out_and_can_be_cancelled(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(ServeError, match=r"did not become ready within 0.3 s \(.*server.json was not written\)"):
            launch.wait_ready(tmp_path / "server.json", sleeper.pid, timeout_s=0.3)
        calls = []
        with pytest.raises(ServeCancelled):
            launch.wait_ready(tmp_path / "server.json", sleeper.pid, timeout_s=30,
                              cancelled=lambda: calls.append(1) or len(calls) > 2)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_server_kills_one_that_ignores_sigterm_and_removes_its_file(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); time.sleep(60)"
    stubborn = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout.readline().strip() == "ok"
        info = ServerInfo(pid=stubborn.pid, host="127.0.0.1", port=1, catalog=project_catalog_stub())
        info_file = tmp_path / "server.json"
        write_info(info_file, info)
        launch.stop_server(info, wait_s=0.3, info_file=info_file)
        assert stubborn.wait(5) != 0 and not info_file.exists()
        launch.stop_server(info, info_file=info_file)  # already gone: nothing to do, no error
    finally:
        if stubborn.poll() is None:
            stubborn.kill()


def test_load_adapter_posts_the_run_and_reports_errors(project: Project, tmp_path: Path) -> None:
    base = base_folder(tmp_path)
    trained_run(project, base, name="first")
    later = trained_run(project, base, name="later", prompt_format="alpaca-lora")
    log = tmp_path / "requests.jsonl"
    info_file = tmp_path / "server.json"
    child = start_fake(info_file, "--run", "first", "--requests-log", str(log))
    try:
        info = launch.wait_ready(info_file, child.pid, timeout_s=20)
        launch.load_adapter(info.url, later)
        body = json.loads(log.read_text().splitlines()[-1])
        assert body == {"path": "/v1/load_lora_adapter", "body": {
            "lora_name": "later", "lora_path": str(later.adapter_dir), "prompt_format": "alpaca-lora"}}
        assert launch.fetch_health(info.url)["adapters"] == ["first", "later"]
        assert read_info(info_file).catalog.find("later").prompt_format == "alpaca-lora"
        with pytest.raises(ServeError, match=r"/v1/unload_lora_adapter answered HTTP 404: no adapter 'nope'"):
            launch.post_json(info.url, "/v1/unload_lora_adapter", {"lora_name": "nope"})
        (later.adapter_dir / "adapter_config.json").unlink()
        with pytest.raises(ServeError, match="training run #2 later has no adapter yet"):
            launch.load_adapter(info.url, project.training.get("later"))
        launch.stop_server(info)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    port = free_port()
    with pytest.raises(ServeError, match="does not answer"):
        launch.load_adapter(f"http://127.0.0.1:{port}/v1", project.training.get("first"))


def test_same_base(project: Project, tmp_path: Path) -> None:
    base = base_folder(tmp_path)
    run = trained_run(project, base, name="first")
    other = trained_run(project, base_folder(tmp_path, "other"), name="other")
    catalog = project_catalog(project, base_model=str(base))
    assert launch.same_base(catalog, run) and not launch.same_base(catalog, other)


def test_pid_alive_treats_a_zombie_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while pid_alive(child.pid) and time.monotonic() < deadline:  # exited, not yet reaped: a zombie
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    child.wait()
    assert pid_alive(os.getpid()) and not pid_alive(0)
