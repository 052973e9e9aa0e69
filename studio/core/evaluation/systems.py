"""The systems of an evaluation: what a spec names, its cache identity, the client that reaches it.

A :class:`~studio.core.evaluation.model.SystemSpec` is plain data (``URL#MODEL``, ``run:RUN``,
``base``). Before an evaluation is stored, :func:`resolve_system` gives it a readable label and
its cache ``key``: for a run the key carries a fingerprint of the adapter's files, so a run
trained again never gets the old adapter's cached answers. :func:`client_factory` makes the
engine's clients (endpoints with their key from the keyring or environment, the studio's own
models through its local server), and :class:`StudioServerLease` gives the CLI that server: the
one already running for the project, or one started for the evaluation and stopped after it.

The GUI's pickers list Chat's sources (:func:`studio.core.chat.sources.list_sources`);
:func:`from_source` and :func:`to_source` translate between the two.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from studio.core.chat.sources import BASE as SOURCE_BASE
from studio.core.chat.sources import ENDPOINT as SOURCE_ENDPOINT
from studio.core.chat.sources import (
    ENDPOINT_ROLE,
    STUDIO_ROLE,
    ModelSource,
    endpoint_label,
)
from studio.core.chat.sources import RUN as SOURCE_RUN
from studio.core.errors import StudioError
from studio.core.evaluation.model import (
    BASE,
    ENDPOINT,
    RUN,
    EvaluationError,
    JudgeSpec,
    SystemSpec,
)
from studio.core.llm.keys import DEFAULT_KEY_ENV
from studio.core.serving.catalog import (
    ADAPTER,
    base_model_id,
    no_adapter_hint,
    run_model_id,
)
from studio.core.serving.server_info import ServerInfo, info_path, live_server

if TYPE_CHECKING:
    from studio.core.llm.client import LLMClient, RetryPolicy
    from studio.core.llm.pricing import PriceTable
    from studio.core.project import Project
    from studio.core.training.runs import TrainingRun

# The engine's ClientFactory (studio.core.evaluation.engine): a spec -> (client, the model id to send).
ClientFactory = Callable[[SystemSpec], "tuple[LLMClient, str]"]

START_HINT = "start the studio server (Chat panel ▸ Start, or `distill-studio serve`)"
READY_TIMEOUT_S = 900.0  # as the Chat panel: a large base model on a slow disk takes minutes to load
ADAPTER_WEIGHTS = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


# -- resolving: labels and cache keys ----------------------------------------------------------------
_SECRET_QUERY = ("key", "token", "secret", "password", "passwd", "sig", "auth", "credential")


def check_url_has_no_secret(url: str, what: str = "an endpoint") -> None:
    """Refuse a URL that carries a credential (``user:password@`` or an ``api-key=`` style query).

    The URL is the system's cache key and label: stored with the evaluation, printed in results
    and written to every export. A key belongs in the keyring or an environment variable.
    """
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    named = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)
             if any(word in name.lower() for word in _SECRET_QUERY)]
    if parts.username is None and parts.password is None and not named:
        return
    host = parts.hostname or "the host"
    where = f"a user name or password before {host}" if parts.username is not None else \
        f"a credential in its query ({', '.join(named)})"
    raise EvaluationError(f"The URL of {what} holds {where}: it would be stored with the evaluation and written to "
                          "its results and exports. Remove it from the URL and put the key in the keyring or an "
                          "environment variable (--api-key-env VAR).")


def resolve_system(project: Project, spec: SystemSpec, *, server: ServerInfo | None = None) -> SystemSpec:
    """``spec`` with its cache ``key`` and a readable ``label`` (EvaluationError if it names nothing usable).

    endpoint: key ``URL#MODEL``; run: found by id or name, key ``run:ID:FINGERPRINT`` (the
    adapter's files), ``run`` becomes the id and ``model`` the id it is served under; base: the
    running ``server``'s base, else the base of the newest run with an adapter, key ``base:FOLDER``.
    A run or base served by a plugin's serving backend (``server``, else the project's live
    server) gets ``:KEY`` after its key (``:vllm`` for vLLM): such a server is sent an Alpaca
    input in the text, the studio's server as its own field, so their answers are two different
    things to cache.
    """
    if spec.kind == ENDPOINT:
        if not spec.base_url or not spec.model:
            raise EvaluationError(f"{spec.label or 'An endpoint system'} needs a URL and a model (URL#MODEL).")
        check_url_has_no_secret(spec.base_url, f"system {spec.model!r}")
        label = spec.label if spec.label and spec.label != spec.model else endpoint_label(spec.base_url, spec.model)
        return replace(spec, label=label, api_key_env=spec.api_key_env or DEFAULT_KEY_ENV,
                       key=f"{spec.base_url.rstrip('/')}#{spec.model}")
    if spec.kind == RUN:
        run = find_run(project, spec.run)
        return replace(spec, label=run_model_id(run), run=str(run.id), model=run_model_id(run),
                       key=f"run:{run.id}:{adapter_fingerprint(run.adapter_dir)}{_backend_suffix(project, server)}")
    if spec.kind == BASE:
        folder, base_id = _base_model(project, server)
        return replace(spec, label=f"{base_id} (base)", model=base_id,
                       key=f"base:{folder}{_backend_suffix(project, server)}")
    raise EvaluationError(f"Unknown kind of system {spec.kind!r}; kinds: {ENDPOINT}, {RUN}, {BASE}.")


def _backend_suffix(project: Project, server: ServerInfo | None) -> str:
    """``:KEY`` when the server that will answer (``server``, else the project's live one) is not the studio's."""
    from studio.core.serving.backends import STUDIO, cache_suffix

    if server is None:
        server = live_server(info_path(project.root))
    return cache_suffix(server.backend if server is not None else STUDIO)


def run_id_of(spec: SystemSpec) -> int | None:
    """The run id of a run system: its ``run`` when numeric, else the id in its cache key
    (``run:ID:FINGERPRINT`` with an optional ``:BACKEND``); None when neither says (a name not yet resolved).

    The one parser of run keys: lost prompts, the CLI's warnings and the client factory all use it.
    """
    if spec.kind != RUN:
        return None
    if spec.run.strip().isdigit():
        return int(spec.run)
    parts = spec.key.split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[0] == RUN and parts[1].isdigit() else None


def served_backend(spec: SystemSpec) -> str:
    """The serving backend a resolved run/base system's answers are for (and from): ``studio`` or the
    key its cache key ends with (``run:ID:FINGERPRINT:KEY``, ``base:FOLDER:KEY``); "" for an endpoint."""
    from studio.core.serving.backends import suffix_backend

    if spec.kind not in (RUN, BASE):
        return ""
    return suffix_backend(spec.key, 3 if spec.kind == RUN else 2)


def resolve_systems(project: Project, specs: Iterable[SystemSpec], *,
                    server: ServerInfo | None = None) -> list[SystemSpec]:
    """Every spec resolved; two systems with the same cache key would compare a model with itself."""
    resolved = [resolve_system(project, spec, server=server) for spec in specs]
    seen: dict[str, SystemSpec] = {}
    for spec in resolved:
        if spec.key in seen:
            raise EvaluationError(f"{seen[spec.key].label} and {spec.label} are the same model: "
                                  "compare two different systems.")
        seen[spec.key] = spec
    return _distinct_labels(resolved)


def _distinct_labels(specs: list[SystemSpec]) -> list[SystemSpec]:
    """Results and exports name systems by label: two equal labels get their cache key appended."""
    labels = [spec.label for spec in specs]
    return [replace(spec, label=f"{spec.label} [{spec.key}]") if labels.count(spec.label) > 1 else spec
            for spec in specs]


def find_run(project: Project, key: str | int) -> TrainingRun:
    """The run a ``run:RUN`` spec names, with an adapter; else an EvaluationError naming the runs there are."""
    from studio.core.training.runs import TrainingRunError

    try:
        run = project.training.get(key)
    except TrainingRunError:
        runs = project.training.list()
        known = ", ".join(f"{r.id} ({r.name})" if r.name else str(r.id) for r in runs) or "none yet"
        raise EvaluationError(f"No training run {str(key)!r} in this project; runs: {known}.") from None
    if not run.has_adapter:
        raise EvaluationError(f"Run {run.label} has no adapter yet: {no_adapter_hint(run)}.")
    return run


_fingerprints: dict[tuple[str, int, int], str] = {}  # (file, size, mtime_ns) -> sha256: hash each version once
_fingerprint_lock = threading.Lock()


def adapter_fingerprint(adapter_dir: Path) -> str:
    """A short hash of the adapter's config and weights: it changes when the run is trained again.

    The content is hashed (not the modification time), so a copied project keeps its cache;
    each file version is hashed once per process (an adapter is MBs, a large one GBs).
    """
    digest = hashlib.sha256()
    for name in ADAPTER_WEIGHTS:
        path = Path(adapter_dir) / name
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{name}:{_file_hash(path, stat.st_size, stat.st_mtime_ns)};".encode())
    return digest.hexdigest()[:16]


def _file_hash(path: Path, size: int, mtime_ns: int) -> str:
    cache_key = (str(path), size, mtime_ns)
    with _fingerprint_lock:
        known = _fingerprints.get(cache_key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _fingerprint_lock:
        _fingerprints[cache_key] = value
    return value


def _base_model(project: Project, server: ServerInfo | None) -> tuple[str, str]:
    """(the base model's folder, its id): the running server's, else the newest run's with an adapter."""
    from studio.core.serving.catalog import CatalogError, local_base_folder

    if server is not None:
        return server.catalog.base_model, server.catalog.base.id
    runs = [run for run in project.training.list() if run.has_adapter]  # newest first
    if not runs:
        raise EvaluationError("'base' is the base model of the project's trained runs, and there is none yet: "
                              "train a run first, or start the studio server on a base model "
                              "(`distill-studio serve --base-model PATH`).")
    try:
        folder = local_base_folder(runs[0].base_model)
    except CatalogError as exc:
        raise EvaluationError(f"The base model of run {runs[0].label}: {exc}.") from None
    return folder, base_model_id(runs[0].base_model)


# -- the GUI's pickers: Chat's sources ----------------------------------------------------------------
def from_source(source: ModelSource) -> SystemSpec:
    """A Chat source (teacher, base or run) as a system spec; :func:`resolve_system` gives it its key."""
    if source.kind == SOURCE_ENDPOINT:
        return SystemSpec(ENDPOINT, label=source.label, base_url=source.base_url.rstrip("/"), model=source.model,
                          api_key_env=source.api_key_env or DEFAULT_KEY_ENV)
    if source.kind == SOURCE_RUN:
        run = str(source.run_id) if source.run_id is not None else source.model
        return SystemSpec(RUN, label=source.label, run=run, model=source.model)
    if source.kind == SOURCE_BASE:
        return SystemSpec(BASE, label=source.label, model=source.model)
    raise EvaluationError(f"Unknown kind of model source {source.kind!r}.")


def to_source(spec: SystemSpec) -> ModelSource:
    """The Chat source of a spec (what ``served_model_id`` and the pickers take)."""
    if spec.kind == ENDPOINT:
        variable = "" if spec.api_key_env == DEFAULT_KEY_ENV else spec.api_key_env
        return ModelSource(SOURCE_ENDPOINT, spec.label or endpoint_label(spec.base_url, spec.model),
                           base_url=spec.base_url, model=spec.model, api_key_env=variable)
    if spec.kind == RUN:
        run_id = run_id_of(spec)
        return ModelSource(SOURCE_RUN, spec.label or spec.run, model=spec.model, run_id=run_id)
    if spec.kind == BASE:
        return ModelSource(SOURCE_BASE, spec.label or BASE, model=spec.model)
    raise EvaluationError(f"Unknown kind of system {spec.kind!r}; kinds: {ENDPOINT}, {RUN}, {BASE}.")


# -- clients -------------------------------------------------------------------------------------------
def needs_server(specs: Iterable[SystemSpec]) -> bool:
    """Whether any system is one of the studio's own models (then the local server must run)."""
    return any(spec.kind in (RUN, BASE) for spec in specs)


def client_factory(project_root: Path | str, server: ServerInfo | None, *, retry: RetryPolicy | None = None,
                   prices: PriceTable | None = None) -> ClientFactory:
    """The engine's clients: an endpoint with its key (typed, OS keyring, then its variable, as in Generate);
    the base and runs through the studio server (``server``, else the project's live one, found when asked).

    A studio model with no server running, or one the server does not offer, is an EvaluationError
    saying what to do.
    """
    root = Path(project_root)

    def make(spec: SystemSpec) -> tuple[LLMClient, str]:
        from studio.core.llm.client import LLMClient
        from studio.core.llm.endpoint import EndpointConfig
        from studio.core.llm.keys import NO_KEY

        if spec.kind == ENDPOINT:
            return LLMClient(spec.endpoint(), retry=retry, prices=prices, role=ENDPOINT_ROLE), spec.model
        info = server or live_server(info_path(root))
        if info is None:
            raise EvaluationError(f"{spec.label or spec.kind} is answered by the studio's local server, which is not "
                                  f"running for {root}: {START_HINT}.")
        model_id = served_id(spec, info)
        config = EndpointConfig(base_url=info.url, model=model_id, api_key_env="")
        return LLMClient(config, api_key=NO_KEY, retry=retry, prices=prices, role=STUDIO_ROLE), model_id

    return make


def key_sources(specs: Sequence[SystemSpec], judge: JudgeSpec | None = None) -> str:
    """Where each endpoint's key comes from ("A: API key from $OPENAI_API_KEY; judge: ..."), never the key."""
    from studio.core.llm.keys import resolve_key

    parts = [f"{chr(ord('A') + n)}: {resolve_key(spec.endpoint()).describe()}"
             for n, spec in enumerate(specs) if spec.kind == ENDPOINT]
    if judge is not None:
        parts.append(f"judge: {resolve_key(judge.endpoint_config()).describe()}")
    return "; ".join(parts)


def served_id(spec: SystemSpec, server: ServerInfo) -> str:
    """The id the server knows a base or run by; EvaluationError if it does not offer it."""
    catalog = server.catalog
    if spec.kind == BASE:
        return catalog.base.id
    run_id = run_id_of(spec)
    for model in catalog.models:
        if model.kind == ADAPTER and ((run_id is not None and model.run_id == run_id)
                                      or (spec.model and model.id == spec.model)):
            return model.id
    raise EvaluationError(f"The studio server at {server.url} does not offer {spec.label or spec.run}; "
                          "restart it (or load the run's adapter) to evaluate it.")


# -- the CLI's server ------------------------------------------------------------------------------------
class StudioServerLease:
    """``with StudioServerLease(root, specs) as server:`` the server the run/base systems need, or None.

    The project's live server is used when there is one (a run it lacks is loaded into it when it
    shares the base); otherwise ``python -m studio.serve --project ROOT --run ...`` is started as
    a child, waited for, and stopped on exit. Only a server this lease started is stopped. Its
    output goes to ``<project>/serve/stderr.log``, whose last line a failure quotes.
    """

    def __init__(self, project_root: Path | str, specs: Sequence[SystemSpec], *, threads: int = 0,
                 device: str = "auto", ready_timeout_s: float = READY_TIMEOUT_S,
                 program: Sequence[str] | None = None, out: IO[str] | None = None):
        self.root = Path(project_root)
        self.specs = list(specs)
        self.threads, self.device, self.ready_timeout_s = threads, device, ready_timeout_s
        self.program = list(program) if program is not None else None  # tests: the fake server
        self.out = out
        self.info: ServerInfo | None = None
        self.started = False  # whether this lease started the server (then it stops it)
        self._process: subprocess.Popen | None = None

    @property
    def info_file(self) -> Path:
        return info_path(self.root)

    def _say(self, text: str) -> None:
        print(text, file=self.out or sys.stderr, flush=True)

    def __enter__(self) -> ServerInfo | None:
        if not needs_server(self.specs):
            return None
        info = live_server(self.info_file)
        if info is not None:
            self.info = self._with_runs(info)
            return self.info
        self.info = self._start()
        return self.info

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server if this lease started it (a live one found running is left alone)."""
        from studio.core.serving.launch import ServeError, stop_server

        process, self._process = self._process, None
        if process is None:
            return
        try:
            if self.info is not None:
                stop_server(self.info, 10.0, info_file=self.info_file)
        except ServeError as exc:
            self._say(f"warning: {exc}")
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(10)

    def _runs(self) -> list[str]:
        return [spec.run for spec in self.specs if spec.kind == RUN]

    def _what(self) -> str:
        return ", ".join(f"run:{spec.run}" if spec.kind == RUN else BASE
                         for spec in self.specs if spec.kind in (RUN, BASE))

    def _start(self) -> ServerInfo:
        from studio.core.serving import launch

        command = launch.serve_command(project=self.root, runs=self._runs(), host=launch.DEFAULT_HOST,
                                       port=launch.pick_port(), info_file=self.info_file, threads=self.threads,
                                       device=self.device, program=self.program)
        log_path = self.info_file.parent / launch.STDERR_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._say(f"starting the studio server for {self._what()} (its output: {log_path})")
        with open(log_path, "w", encoding="utf-8") as log:
            try:
                process = subprocess.Popen(command, cwd=str(self.root), env=launch.serve_env(self.threads),
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            except OSError as exc:
                raise EvaluationError(f"Could not start the studio server ({exc.strerror or exc}).") from None
        self._process = process
        self.started = True
        try:
            info = launch.wait_ready(self.info_file, process.pid, self.ready_timeout_s)
        except launch.ServeError as exc:
            self.close()
            raise EvaluationError(f"The studio server did not start: {exc}{_last_line(log_path)}.") from None
        except BaseException:  # Ctrl+C while the model loads: no server is left behind
            self.close()
            raise
        self.info = info
        self._say(f"the studio server is ready at {info.url}")
        return info

    def _with_runs(self, info: ServerInfo) -> ServerInfo:
        """The live server, with every run spec's adapter loaded into it (it may predate the run)."""
        from studio.core.project import Project
        from studio.core.serving import launch
        from studio.core.serving.backends import guarded, serving_backend

        missing = [spec for spec in self.specs if spec.kind == RUN and not _offers(info, spec)]
        if not missing:
            return info
        with Project.open(self.root, exclusive=False) as project:
            for spec in missing:
                run = find_run(project, spec.run)
                if not launch.same_base(info.catalog, run):
                    raise EvaluationError(
                        f"The running studio server at {info.url} serves {info.catalog.base_model}, but run "
                        f"{run.label} was trained on {run.base_model}: stop that server to let the evaluation "
                        "start one for the run.")
                self._say(f"loading run:{run.id} into the studio server at {info.url}")
                try:
                    backend = serving_backend(info.backend)
                    info = guarded(backend, f"loading run:{run.id} into its server", backend.load_adapter, info,
                                   run, self.info_file)
                except StudioError as exc:
                    raise EvaluationError(f"Could not load run {run.label} into the studio server: {exc}.") from None
        return live_server(self.info_file) or info


def _offers(info: ServerInfo, spec: SystemSpec) -> bool:
    try:
        served_id(spec, info)
    except EvaluationError:
        return False
    return True


def _last_line(log_path: Path) -> str:
    """``; it said: LAST LINE`` from the server's output, or nothing."""
    try:
        lines = [line.strip() for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return f"; it said: {lines[-1].removeprefix('error: ').rstrip('.')}" if lines else ""
