"""Where a running studio server is: a small JSON file the server writes once it is ready.

The server writes ``<project>/serve/server.json`` (or ``--info-file``) atomically when it
accepts requests and removes it when it exits; the Chat panel, ``distill-studio chat`` and
Evaluate read it to find the project's own server. A file left by a killed server is detected
by its pid.
"""
from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from studio.core.formats import atomic_write_text
from studio.core.processes import pid_alive
from studio.core.serving.catalog import Catalog

SERVE_FOLDER = "serve"
INFO_FILE = "server.json"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765  # the "distill-studio" endpoint preset's port


@dataclass
class ServerInfo:
    pid: int
    host: str
    port: int
    catalog: Catalog
    device: str = "cpu"                 # "cpu", "cuda:0", ...
    started_at: float = 0.0
    backend: str = "studio"             # a serving_backends key: "studio" (our own server) or a plugin's
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The OpenAI base URL (what an ``openai.OpenAI(base_url=...)`` takes)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/v1"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["catalog"] = self.catalog.to_dict()
        data["url"] = self.url
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ServerInfo:
        return cls(pid=int(data["pid"]), host=data["host"], port=int(data["port"]),
                   catalog=Catalog.from_dict(data["catalog"]), device=data.get("device", "cpu"),
                   started_at=float(data.get("started_at", 0.0)), backend=data.get("backend", "studio"),
                   extra=dict(data.get("extra") or {}))


def info_path(project_root: Path | str) -> Path:
    return Path(project_root) / SERVE_FOLDER / INFO_FILE


def write_info(path: Path | str, info: ServerInfo) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(info.to_dict(), indent=2) + "\n")


def claim_info(path: Path | str, info: ServerInfo) -> ServerInfo | None:
    """Write ``info`` unless another live server owns the file; return that server instead (nothing written).

    Two servers for one project must not overwrite each other's file: the second would send the
    Chat panel to itself and, at its exit, leave the first one unlisted.
    """
    other = live_server(path)
    if other is not None and other.pid != info.pid:
        return other
    write_info(path, info)
    return None


def live_server(path: Path | str, *, probe_s: float = 0.5) -> ServerInfo | None:
    """The server the file names if its process lives and its port accepts a connection, else None.

    The port check tells a live server from a stale file whose pid was reused by another program.
    """
    info = read_info(path)
    if info is None:
        return None
    host = "127.0.0.1" if info.host in ("0.0.0.0", "::", "") else info.host
    try:
        with socket.create_connection((host, info.port), timeout=probe_s):
            pass
    except OSError:
        return None
    return info


def remove_info(path: Path | str, pid: int | None = None) -> None:
    """Remove the file (only if it is this pid's, when given: a newer server may own it)."""
    path = Path(path)
    if pid is not None:
        current = read_info(path, check_alive=False)
        if current is not None and current.pid != pid:
            return
    path.unlink(missing_ok=True)


def read_info(path: Path | str, *, check_alive: bool = True) -> ServerInfo | None:
    """The running server's info, or None (no file, unreadable, or its process is gone)."""
    try:
        info = ServerInfo.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive and not pid_alive(info.pid):
        return None
    return info
