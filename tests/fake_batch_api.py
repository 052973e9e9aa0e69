"""A loopback fake of OpenAI's Files and Batch APIs (real HTTP, stdlib only) with a live chat endpoint.

``/v1/files`` takes multipart uploads (``purpose``, ``file``), lists (``purpose``, ``limit``,
``after``, newest first), retrieves and serves ``/content``. ``/v1/batches`` creates, lists
(``limit``, ``after``), retrieves and cancels. A batch goes validating → in_progress →
finalizing → completed, one step per retrieve (``auto_advance``) or when the test calls
:meth:`FakeBatchAPI.advance`; on reaching its end it runs its lines (each answered like
``tests/fake_teacher.py`` answers the same prompt, so a request key always gets the same
answer and usage) and writes the output and error files in OpenAI's line format:
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.

Knobs: ``line_faults`` (custom_id → :class:`LineFault`: a status code and error code, for its
first ``times`` runs), ``expire`` (batch number, 1-based → lines run before the 24 h window
ends; the rest get ``batch_expired`` errors), ``fail_batches`` (batch numbers that fail
validation as a whole), ``hold`` (no batch advances until released). Counters: ``uploads``,
``batches_created``, ``live_calls``, ``cancels``, runs per custom id in batches and live.
``POST /v1/chat/completions`` answers live (``X-Distill-Request-Key`` names the request).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from fake_teacher import FakeTeacher, respond
from loopback_server import LoopbackServer

STATES = ("validating", "in_progress", "finalizing", "completed")
TERMINAL = ("completed", "expired", "cancelled", "failed")


@dataclass
class LineFault:
    status_code: int = 500
    code: str = "server_error"
    times: int = 1  # runs of the line that fail before it answers


@dataclass
class FakeBatchAPI(LoopbackServer):
    api_key: str = "sk-fake-batch"
    models: tuple[str, ...] = ("fake-teacher",)
    auto_advance: bool = True
    line_faults: dict[str, LineFault] = field(default_factory=dict)
    expire: dict[int, int] = field(default_factory=dict)
    fail_batches: set[int] = field(default_factory=set)
    max_lifetime_s: float = 180.0
    # Calls answered 500 (a provider's or network's blip), by kind, counted down: "retrieve" fails
    # before the batch is looked at; "upload" and "create" do their work, then the answer is lost.
    flaky: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.words = FakeTeacher()  # its deterministic answer generator only (never started)
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.uploads = 0
        self.batches_created = 0
        self.live_calls = 0
        self.cancels = 0
        self.batch_runs_by_key: Counter[str] = Counter()
        self.live_by_key: Counter[str] = Counter()
        self.hold = threading.Event()  # set: batches stay where they are
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    def start(self) -> FakeBatchAPI:
        handler = type("Handler", (_Handler,), {"api": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._serve(server)
        return self

    # -- content ------------------------------------------------------------------------------------
    def answer(self, key: str, body: dict) -> dict:
        """The chat completion for one request (the same for a request key, live or in a batch)."""
        prompt = "\n".join(m.get("content") or "" for m in body.get("messages", []))
        text = respond(self.words, key, prompt)
        finish = "stop"
        if body.get("max_tokens") and len(text) // 4 > body["max_tokens"]:  # cut off, as a real model is
            text, finish = text[: body["max_tokens"] * 4], "length"
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": f"chatcmpl-{key}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model"), "usage": usage,
                "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}]}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):05d}"

    def add_file(self, filename: str, purpose: str, content: bytes) -> dict:
        with self._lock:
            file_id = self._new_id("file")
            self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                                   "filename": filename, "purpose": purpose, "status": "processed",
                                   "_content": content}
            return self.files[file_id]

    # -- the batch state machine -------------------------------------------------------------------------
    def create_batch(self, body: dict) -> dict:
        with self._lock:
            self.batches_created += 1
            batch_id = self._new_id("batch")
            lines = [json.loads(line) for line in self.files[body["input_file_id"]]["_content"].decode().splitlines()
                     if line.strip()]
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                "status": "validating", "output_file_id": None, "error_file_id": None,
                "created_at": int(time.time()), "metadata": body.get("metadata"),
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "_number": self.batches_created, "_lines": lines}
            return self.batches[batch_id]

    def advance(self, batch_id: str | None = None) -> None:
        """One step for a batch (or every batch not finished yet)."""
        with self._lock:
            for batch in [self.batches[batch_id]] if batch_id else list(self.batches.values()):
                self._step(batch)

    def finish_all(self) -> None:
        with self._lock:
            for batch in self.batches.values():
                while batch["status"] not in TERMINAL:
                    self._step(batch)

    def _step(self, batch: dict) -> None:
        status = batch["status"]
        if status in TERMINAL:
            return
        if status == "cancelling":
            self._run(batch, 0, "cancelled")
            return
        if status == "validating" and batch["_number"] in self.fail_batches:
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "invalid_json_line", "line": 1, "param": None,
                                                           "message": "This line is not parseable as valid JSON."}]}
            return
        following = STATES[STATES.index(status) + 1]
        if following == "in_progress":
            batch["request_counts"]["completed"] = 0
        if following == "finalizing" and batch["_number"] in self.expire:
            self._run(batch, self.expire[batch["_number"]], "expired")
            return
        if following == "completed":
            self._run(batch, len(batch["_lines"]), "completed")
            return
        batch["status"] = following
        if following == "finalizing":
            batch["request_counts"]["completed"] = len(batch["_lines"]) // 2

    def _run(self, batch: dict, count: int, status: str) -> None:
        """Run the first ``count`` lines; the rest get ``batch_expired`` / ``batch_cancelled`` errors."""
        out, errors = [], []
        completed = failed = 0
        for n, line in enumerate(batch["_lines"]):
            key = line["custom_id"]
            entry = {"id": f"batch_req_{batch['id']}_{n}", "custom_id": key, "response": None, "error": None}
            if n >= count:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                entry["error"] = {"code": code, "message": "This request could not be executed before the "
                                  "completion window expired." if status == "expired" else "The batch was cancelled."}
                errors.append(entry)
                continue
            self.batch_runs_by_key[key] += 1
            fault = self.line_faults.get(key)
            if fault is not None and fault.times > 0:
                fault.times -= 1
                entry["response"] = {"status_code": fault.status_code, "request_id": f"req_{n}",
                                     "body": {"error": {"message": f"fake {fault.code}", "type": "fake",
                                                        "code": fault.code}}}
                errors.append(entry)
                failed += 1
                continue
            entry["response"] = {"status_code": 200, "request_id": f"req_{n}", "body": self.answer(key, line["body"])}
            out.append(entry)
            completed += 1
        batch["request_counts"] = {"total": len(batch["_lines"]), "completed": completed, "failed": failed}
        if out:
            batch["output_file_id"] = self.add_file(f"{batch['id']}_output.jsonl", "batch_output",
                                                    _jsonl(out))["id"]
        if errors:
            batch["error_file_id"] = self.add_file(f"{batch['id']}_error.jsonl", "batch_output", _jsonl(errors))["id"]
        batch["status"] = status

    def public(self, item: dict) -> dict:
        return {k: v for k, v in item.items() if not k.startswith("_")}


def add_seed_tasks(project, count: int = 6) -> None:
    """The seed tasks the batch tests generate from: distinct enough that no filter drops one."""
    from studio.core.seeds import Instance, SeedTask

    project.seeds.add_many([SeedTask(f"Give a short example of seed topic number {i} for a curious student.",
                                     [Instance("", f"Example {i}.")]) for i in range(count)])


def _jsonl(items: list[dict]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in items).encode()


def _page(items: list[dict], query: dict, api: FakeBatchAPI) -> dict:
    limit = int(query.get("limit", ["20"])[0])
    after = query.get("after", [None])[0]
    if after is not None:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = items[:limit]
    return {"object": "list", "data": [api.public(i) for i in page], "has_more": len(items) > limit,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}


class _Handler(BaseHTTPRequestHandler):
    api: FakeBatchAPI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict | bytes, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _flaky(self, kind: str) -> bool:
        """Answer 500 instead, if the test asked for ``kind`` calls to fail."""
        with self.api._lock:
            if self.api.flaky[kind] <= 0:
                return False
            self.api.flaky[kind] -= 1
        self._send(500, {"error": {"message": f"fake {kind} blip", "type": "server_error"}})
        return True

    def _not_found(self) -> None:
        self._send(404, {"error": {"message": f"No such path {self.path}", "type": "invalid_request_error"}})

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.api.api_key}":
            return True
        self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}})
        return False

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if not self._authorised():
            return
        api, url = self.api, urlparse(self.path)
        parts, query = url.path.rstrip("/").split("/")[2:], parse_qs(url.query)
        with api._lock:
            if parts == ["models"]:
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                             "owned_by": "fake"} for m in api.models]})
            elif parts == ["files"]:
                files = [f for f in reversed(api.files.values())
                         if "purpose" not in query or f["purpose"] == query["purpose"][0]]
                self._send(200, _page(files, query, api))
            elif len(parts) == 2 and parts[0] == "files" and parts[1] in api.files:
                self._send(200, api.public(api.files[parts[1]]))
            elif len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and parts[1] in api.files:
                self._send(200, api.files[parts[1]]["_content"], "application/octet-stream")
            elif parts == ["batches"]:
                self._send(200, _page(list(reversed(api.batches.values())), query, api))
            elif len(parts) == 2 and parts[0] == "batches" and parts[1] in api.batches:
                if self._flaky("retrieve"):
                    return
                batch = api.batches[parts[1]]
                if api.auto_advance and not api.hold.is_set():
                    api._step(batch)
                self._send(200, api.public(batch))
            else:
                self._not_found()

    def do_POST(self) -> None:
        if not self._authorised():
            return
        api, parts = self.api, urlparse(self.path).path.rstrip("/").split("/")[2:]
        data = self._body()
        if parts == ["files"]:
            message = BytesParser(policy=policy.HTTP).parsebytes(
                f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + data)
            fields: dict[str, tuple[str | None, bytes]] = {}
            for part in message.iter_parts():
                fields[part.get_param("name", header="content-disposition")] = (
                    part.get_filename(), part.get_payload(decode=True))
            filename, content = fields["file"]
            with api._lock:
                api.uploads += 1
                added = api.public(api.add_file(filename or "upload", fields["purpose"][1].decode(), content))
            if not self._flaky("upload"):
                self._send(200, added)
        elif parts == ["batches"]:
            body = json.loads(data)
            if body.get("input_file_id") not in api.files:
                self._send(400, {"error": {"message": "No such file", "type": "invalid_request_error"}})
                return
            created = api.public(api.create_batch(body))
            if not self._flaky("create"):
                self._send(200, created)
        elif len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel" and parts[1] in api.batches:
            with api._lock:
                api.cancels += 1
                batch = api.batches[parts[1]]
                if batch["status"] not in TERMINAL:
                    batch["status"] = "cancelling"
                self._send(200, api.public(batch))
        elif parts == ["chat", "completions"]:
            body = json.loads(data)
            key = self.headers.get("X-Distill-Request-Key") or f"live-{api.live_calls}"
            with api._lock:
                api.live_calls += 1
                api.live_by_key[key] += 1
            self._send(200, api.answer(key, body))
        else:
            self._not_found()
