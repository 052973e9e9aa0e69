"""Base models from a folder, the Hugging Face cache (a fake one, in the real layout) or the hub (unreachable)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from studio.core.jobs import Progress, run_to_end
from studio.core.training.base_models import (
    CACHE,
    HUB,
    LOCAL,
    BaseModelError,
    download_steps,
    fetch_config,
    fetch_configs,
    inspect_local,
    list_cached_models,
    resolve,
)
from studio.core.training.estimates import param_count

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def add_to_cache(cache: Path, repo_id: str, source: Path, *, kind: str = "models",
                 commit: str = COMMIT) -> Path:
    """Lay ``source``'s files out as huggingface_hub does: blobs by hash, snapshot symlinks, refs/main."""
    repo = cache / f"{kind}--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if not file.is_file():
            continue
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, repo / "blobs" / digest)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_inspect_local_describes_the_tiny_model_from_its_files(tiny_base: Path) -> None:
    info = inspect_local(tiny_base)
    config = json.loads((tiny_base / "config.json").read_text())
    assert info.source == LOCAL and info.name == tiny_base.name
    assert info.architecture == "LlamaForCausalLM" and info.is_causal_lm
    assert info.has_safetensors and info.has_chat_template and not info.needs_remote_code
    assert info.parameters == param_count(config)
    assert info.size_bytes >= (tiny_base / "model.safetensors").stat().st_size


def test_inspect_local_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="not a model folder"):
        inspect_local(tmp_path)
    with pytest.raises(BaseModelError, match="no such folder"):
        inspect_local(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(BaseModelError, match="config.json: line 1: not valid JSON"):
        inspect_local(tmp_path)


def test_remote_code_and_missing_safetensors_are_seen(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["FancyForCausalLM"], "auto_map": {"AutoModelForCausalLM": "modeling.Fancy"}}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"x" * 10)
    info = inspect_local(tmp_path)
    assert info.needs_remote_code and not info.has_safetensors and not info.has_chat_template


def test_cached_causal_lms_are_listed_and_others_are_not(tiny_base: Path, hf_cache: Path, tmp_path: Path) -> None:
    add_to_cache(hf_cache, "org/tiny-llama", tiny_base)
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    add_to_cache(hf_cache, "org/an-encoder", encoder)
    add_to_cache(hf_cache, "org/some-data", encoder, kind="datasets")

    models = list_cached_models()

    assert [m.name for m in models] == ["org/tiny-llama"]
    tiny = models[0]
    assert tiny.source == CACHE and tiny.revision == COMMIT and tiny.repo_id == "org/tiny-llama"
    assert tiny.has_safetensors and tiny.has_chat_template
    assert tiny.size_bytes >= (tiny_base / "model.safetensors").stat().st_size   # blobs, not symlinks
    assert Path(tiny.path_or_id).name == COMMIT


def test_no_cache_is_an_empty_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "never-created"))
    assert list_cached_models() == []


def test_resolve_prefers_a_folder_then_the_cache_then_the_hub(tiny_base: Path, hf_cache: Path) -> None:
    add_to_cache(hf_cache, "org/tiny-llama", tiny_base)
    assert resolve(str(tiny_base)).source == LOCAL
    cached = resolve("org/tiny-llama")
    assert cached.source == CACHE and Path(cached.path_or_id).name == COMMIT
    remote = resolve("org/not-downloaded")
    assert remote.source == HUB and remote.path_or_id == "org/not-downloaded"
    with pytest.raises(BaseModelError, match="no such folder, and not a Hugging Face model id"):
        resolve("/no/such/folder/anywhere")
    with pytest.raises(BaseModelError, match="must be a folder \\(with config.json\\), not a file$"):
        resolve(str(tiny_base / "config.json"))
    with pytest.raises(BaseModelError, match="must be a folder"):
        inspect_local(tiny_base / "config.json")


def test_offline_download_is_one_clear_line(hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(BaseModelError) as caught:
        run_to_end(download_steps("org/tiny-llama"))
    message = str(caught.value)
    assert message.startswith("cannot reach the Hugging Face Hub: ")
    assert message.endswith("— use a local folder or a model already in the cache")
    assert "\n" not in message

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseModelError, match="offline mode is on"):
        run_to_end(download_steps("org/tiny-llama"))


class _FakeHub(BaseHTTPRequestHandler):
    """Just enough of the hub's HTTP API for ``model_info`` and ``hf_hub_download`` (plain HTTP, no Xet)."""

    files: dict[str, bytes] = {}
    served: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def _file(self) -> tuple[str, bytes] | None:
        marker = f"/resolve/{COMMIT}/"
        if marker not in self.path:
            return None
        name = self.path.split(marker, 1)[1].split("?")[0]
        return (name, self.files[name]) if name in self.files else None

    def _file_headers(self, body: bytes) -> None:
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()

    def do_HEAD(self) -> None:
        found = self._file()
        if found is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self._file_headers(found[1])

    def do_GET(self) -> None:
        if self.path.startswith("/api/models/"):
            siblings = [{"rfilename": name, "size": len(body)} for name, body in self.files.items()]
            body = json.dumps({"id": "org/tiny-llama", "sha": COMMIT, "siblings": siblings}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        found = self._file()
        if found is None:
            self.send_response(404)
            self.end_headers()
            return
        self.served.append(found[0])
        self.send_response(200)
        self._file_headers(found[1])
        self.wfile.write(found[1])


def test_download_reports_bytes_and_prefers_safetensors(tiny_base: Path, hf_cache: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    files = {p.name: p.read_bytes() for p in tiny_base.iterdir() if p.is_file()}
    files["pytorch_model.bin"] = b"pickled weights we must not fetch"
    _FakeHub.files, _FakeHub.served = files, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        assert fetch_config("org/tiny-llama").read_bytes() == files["config.json"]   # pre-flight's files
        _, generation = fetch_configs("org/tiny-llama")
        assert generation is not None and generation.read_bytes() == files["generation_config.json"]
        kept = files.pop("generation_config.json")                     # _FakeHub serves `files`
        assert fetch_configs("org/tiny-llama")[1] is None               # a repo without one
        files["generation_config.json"] = kept
        seen: list[Progress] = []
        path = run_to_end(download_steps("org/tiny-llama"), on_progress=seen.append)
    finally:
        server.shutdown()
        server.server_close()
    wanted = sum(len(body) for name, body in files.items() if name != "pytorch_model.bin")
    assert "pytorch_model.bin" not in _FakeHub.served
    assert seen and seen[-1].done == seen[-1].total == wanted
    assert all(a.done <= b.done for a, b in zip(seen, seen[1:]))
    assert path.name == COMMIT and (path / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert [m.name for m in list_cached_models()] == ["org/tiny-llama"]
    assert resolve("org/tiny-llama").source == CACHE
    assert os.environ["HF_HUB_CACHE"] == str(hf_cache)
