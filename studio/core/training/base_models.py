"""Base models: a local folder, a model already in the Hugging Face cache, or a hub id to download.

Everything here reads files (``config.json``, the tokenizer's config, file names and sizes) and
never loads weights or imports torch, so the Train panel can list and describe models instantly.
Downloads go through ``huggingface_hub`` as a generator of :class:`Progress` (bytes done/total),
driven by the GUI's job runner or the CLI's ``run_to_end``.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from studio.core.errors import StudioError
from studio.core.jobs import Progress

T = TypeVar("T")
LOCAL, CACHE, HUB = "local", "cache", "hub"
# Files a causal LM needs from a hub repo; weights other than safetensors only when it has none.
_WANTED_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".py", ".tiktoken", ".safetensors")


class BaseModelError(StudioError):
    """A base model cannot be found, read or downloaded."""


@dataclass
class BaseModelInfo:
    path_or_id: str                     # a folder (local, cache) or a hub id (hub, not downloaded)
    name: str
    source: str                         # "local" | "cache" | "hub"
    architecture: str | None = None     # e.g. LlamaForCausalLM
    model_type: str | None = None
    parameters: int | None = None       # estimated from config.json (Llama family), else from the weights' size
    has_safetensors: bool = False
    needs_remote_code: bool = False     # config.json has an auto_map: its classes are Python shipped with the model
    has_chat_template: bool = False
    size_bytes: int = 0
    revision: str | None = None         # the cache snapshot's commit hash
    repo_id: str | None = None

    @property
    def is_causal_lm(self) -> bool:
        return bool(self.architecture and self.architecture.endswith(("ForCausalLM", "LMHeadModel")))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import, as the library does)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BaseModelError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BaseModelError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise BaseModelError(f"{path}: expected a JSON object")
    return data


def model_has_chat_template(folder: Path) -> bool:
    """A chat template in ``chat_template.jinja`` (transformers 5) or in ``tokenizer_config.json``."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    if config.is_file():
        try:
            return bool(_read_json(config).get("chat_template"))
        except BaseModelError:
            return False
    return False


def _folder_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size     # follows the cache's symlinks to blobs
            except OSError:
                pass
    return total


def _parameters(config: dict[str, Any], folder: Path) -> int | None:
    from studio.core.training.estimates import param_count

    try:
        return param_count(config)
    except (ValueError, TypeError):
        pass
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "bfloat16")
    return int(weights / (4 if "32" in dtype else 2)) if weights else None


def inspect_local(path: Path | str, *, source: str = LOCAL, repo_id: str | None = None,
                  revision: str | None = None) -> BaseModelInfo:
    """Describe a model folder from its files; a folder without ``config.json`` is not a model."""
    folder = Path(path).expanduser()
    if folder.is_file():
        raise BaseModelError(f"{folder}: the base model must be a folder (with config.json), not a file")
    if not folder.is_dir():
        raise BaseModelError(f"{folder}: no such folder")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BaseModelError(f"{folder}: not a model folder (it has no config.json)")
    config = _read_json(config_path)
    architectures = config.get("architectures") or []
    names = [p.name for p in folder.iterdir()]
    return BaseModelInfo(
        path_or_id=str(folder.resolve()) if source == LOCAL else str(folder),
        name=repo_id or folder.name,
        source=source,
        architecture=architectures[0] if architectures else None,
        model_type=config.get("model_type"),
        parameters=_parameters(config, folder),
        has_safetensors=any(n.endswith(".safetensors") for n in names),
        needs_remote_code=bool(config.get("auto_map")),
        has_chat_template=model_has_chat_template(folder),
        size_bytes=_folder_size(folder),
        revision=revision,
        repo_id=repo_id,
    )


def list_cached_models(cache_dir: Path | str | None = None) -> list[BaseModelInfo]:
    """Causal LMs already in the Hugging Face cache (newest snapshot of each repo); [] with no cache."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    directory = Path(cache_dir) if cache_dir else hub_cache_dir()
    if not directory.is_dir():
        return []
    try:
        info = scan_cache_dir(directory)
    except CacheNotFound:
        return []
    models = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revision = max(repo.revisions, key=lambda r: r.last_modified)
        if not (revision.snapshot_path / "config.json").is_file():
            continue
        try:
            model = inspect_local(revision.snapshot_path, source=CACHE, repo_id=repo.repo_id,
                                  revision=revision.commit_hash)
        except BaseModelError:
            continue
        if model.is_causal_lm:
            models.append(model)
    return sorted(models, key=lambda m: m.name.lower())


def cached_snapshot(repo_id: str, revision: str | None = None,
                    cache_dir: Path | str | None = None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` (at ``revision``: a commit or a ref), if any."""
    repo_dir = (Path(cache_dir) if cache_dir else hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo_dir / "refs" / (revision or "main")
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    if commit and (snapshots / commit / "config.json").is_file():
        return snapshots / commit
    if revision:
        return None
    candidates = [p for p in snapshots.iterdir() if (p / "config.json").is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return (len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))
            and all(c.isalnum() or c in "-_." for part in parts for c in part))


def resolve(spec: str, *, revision: str | None = None) -> BaseModelInfo:
    """A folder, else a cached hub id, else a hub id still to download (``source == "hub"``)."""
    spec = spec.strip()
    if not spec:
        raise BaseModelError("no base model given: name a model folder or a Hugging Face model id")
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return inspect_local(folder)
    if folder.exists():
        raise BaseModelError(f"{folder}: the base model must be a folder (with config.json), not a file")
    if looks_like_hub_id(spec):
        snapshot = cached_snapshot(spec, revision)
        if snapshot is not None:
            return inspect_local(snapshot, source=CACHE, repo_id=spec, revision=snapshot.name)
        return BaseModelInfo(path_or_id=spec, name=spec, source=HUB, repo_id=spec, revision=revision)
    raise BaseModelError(f"{spec}: no such folder, and not a Hugging Face model id (org/name)")


def _offline_error(reason: str) -> BaseModelError:
    return BaseModelError(f"cannot reach the Hugging Face Hub: {reason} — use a local folder or a model "
                          "already in the cache")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def hub_call(call: Callable[[], T], repo_id: str) -> T:
    """Run one hub request, turning the library's many failures into one-line messages."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return call()
    except OfflineModeIsEnabled:
        raise _offline_error("offline mode is on (HF_HUB_OFFLINE)") from None
    except GatedRepoError:
        raise BaseModelError(f"{repo_id} is gated on the Hugging Face Hub: accept its licence on the "
                             "model page and log in (hf auth login), then try again") from None
    except RepositoryNotFoundError:
        raise BaseModelError(f"no model {repo_id!r} on the Hugging Face Hub (or it is private: "
                             "log in with hf auth login)") from None
    except RevisionNotFoundError:
        raise BaseModelError(f"{repo_id} has no such revision on the Hugging Face Hub") from None
    except HfHubHTTPError as exc:
        raise BaseModelError(f"the Hugging Face Hub refused {repo_id}: {_short(exc)}") from None
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise _offline_error(_short(exc)) from None
    except Exception as exc:                       # httpx transport errors are not OSErrors
        if type(exc).__module__.startswith(("httpx", "httpcore", "requests", "urllib3")):
            raise _offline_error(_short(exc)) from None
        raise


GENERATION_CONFIG = "generation_config.json"


def fetch_configs(repo_id: str, revision: str | None = None) -> tuple[Path, Path | None]:
    """A hub model's ``config.json`` and, if the repo has one, its ``generation_config.json``
    (into the cache; weights stay put), for the pre-flight check.

    The repo is looked up first with one short request: hf_hub_download retries a refused
    connection for about 20 s, and an offline user should hear so at once.
    """
    from huggingface_hub import HfApi, hf_hub_download

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise _offline_error("offline mode is on (HF_HUB_OFFLINE)")
    endpoint = hub_endpoint()
    info = hub_call(lambda: HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, timeout=10), repo_id)

    def download(name: str) -> Path:
        return Path(hub_call(lambda: hf_hub_download(repo_id, name, revision=info.sha or revision,
                                                     cache_dir=hub_cache_dir(), endpoint=endpoint), repo_id))

    names = {s.rfilename for s in info.siblings or []}
    return download("config.json"), (download(GENERATION_CONFIG) if GENERATION_CONFIG in names else None)


def fetch_config(repo_id: str, revision: str | None = None) -> Path:
    """A hub model's ``config.json`` alone (see :func:`fetch_configs`)."""
    return fetch_configs(repo_id, revision)[0]


def _files_to_fetch(siblings: list[Any]) -> list[tuple[str, int]]:
    top = [(s.rfilename, int(s.size or 0)) for s in siblings if "/" not in s.rfilename]
    has_safetensors = any(name.endswith(".safetensors") for name, _ in top)
    wanted = []
    for name, size in top:
        if name.endswith(_WANTED_SUFFIXES) or (not has_safetensors and name.endswith(".bin")):
            wanted.append((name, size))
    return wanted


class _ByteCounter:
    """A stand-in for tqdm that huggingface_hub updates with bytes received (it calls ``cls(**kwargs)``)."""

    lock = threading.Lock()
    done = 0

    def __init__(self, *args: Any, **kwargs: Any):
        self.total = kwargs.get("total")
        self.n = kwargs.get("initial", 0) or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        with _ByteCounter.lock:
            type(self).done += n

    def __enter__(self) -> _ByteCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:      # close, refresh, set_description...: nothing to draw
        return lambda *args, **kwargs: None


def download_steps(repo_id: str, revision: str | None = None) -> Generator[Progress, None, Path]:
    """Download a model's files into the hub cache, yielding bytes done/total; returns the snapshot folder.

    Safetensors are preferred: ``.bin`` weights are fetched only from a repo that has no
    safetensors. Offline (no network, ``HF_HUB_OFFLINE``) → one-line :class:`BaseModelError`.
    Closing the generator stops before the next file; the file in flight finishes in its
    (daemon) thread, and huggingface_hub resumes a half-fetched file on the next call.
    """
    from huggingface_hub import HfApi, hf_hub_download

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise _offline_error("offline mode is on (HF_HUB_OFFLINE)")
    endpoint, cache = hub_endpoint(), hub_cache_dir()
    api = HfApi(endpoint=endpoint)
    info = hub_call(lambda: api.model_info(repo_id, revision=revision, files_metadata=True, timeout=15),
                     repo_id)
    files = _files_to_fetch(list(info.siblings or []))
    if not any(name == "config.json" for name, _ in files):
        raise BaseModelError(f"{repo_id} has no config.json on the Hugging Face Hub: not a transformers model")
    total = sum(size for _, size in files)
    counter = type("_Counter", (_ByteCounter,), {"done": 0})
    result: dict[str, Any] = {}

    def fetch(name: str) -> None:
        try:
            result["path"] = hub_call(lambda: hf_hub_download(
                repo_id, name, revision=info.sha, cache_dir=cache, endpoint=endpoint,
                tqdm_class=counter), repo_id)
        except BaseException as exc:  # noqa: BLE001 - handed to the generator's thread
            result["error"] = exc

    finished = 0
    for name, size in files:
        worker = threading.Thread(target=fetch, args=(name,), daemon=True, name=f"download {name}")
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
            yield Progress(min(total, finished + counter.done), total, f"downloading {repo_id}: {name}")
        if "error" in result:
            raise result["error"]
        finished += size
        counter.done = 0
        yield Progress(finished, total, f"downloading {repo_id}: {name}")
    return Path(result["path"]).parent
