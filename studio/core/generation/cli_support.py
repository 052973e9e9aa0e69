"""The ``distill-studio generate`` command's body: config from arguments, a text progress bar.

Kept beside the engine (not in ``studio/cli.py``) so the CLI module stays cheap to import.
"""
from __future__ import annotations

import argparse
import sys
import time

from studio.core.ctrl_c import STOPPING, STOPPING_BATCH, CtrlCStops
from studio.core.errors import StudioError
from studio.core.generation import events as ev
from studio.core.generation.config import RunConfig
from studio.core.generation.engine import GenerationEngine, prepare_run
from studio.core.generation.filters import describe_reasons
from studio.core.llm.endpoint import preset as endpoint_preset
from studio.core.llm.keys import resolve_key
from studio.core.project import Project
from studio.core.registry import GENERATION_BACKENDS

EXIT_OK, EXIT_ERROR, EXIT_STOPPED = 0, 1, 130


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    config = base or RunConfig()
    if getattr(args, "preset", None):
        preset = endpoint_preset(args.preset)  # a plugin's broken preset: a RegistryError naming it
        config.teacher.base_url, config.teacher.model = preset.base_url, preset.model
    if args.mode:
        config.mode = args.mode
    for attr, name in (("target", "target"), ("concurrency", "concurrency"), ("budget", "budget_usd"),
                       ("max_requests", "max_requests"), ("timeout", "request_timeout_s"), ("num_tasks", "num_tasks")):
        value = getattr(args, attr, None)
        if value is not None:
            setattr(config, name, value)
    if args.base_url:
        config.teacher.base_url = args.base_url
    if args.model:
        config.teacher.model = args.model
    if args.api_key_env:
        config.teacher.api_key_env = args.api_key_env
    if args.price:
        config.prices[config.teacher.model] = (args.price[0], args.price[1])
    if getattr(args, "backend", None):
        GENERATION_BACKENDS.get(args.backend)  # a disabled plugin's key passes argparse; this says why it is off
        config.backend = args.backend
    if getattr(args, "backend_option", None):
        config.backend_options = {**config.backend_options, **parse_backend_options(config.backend, args.backend_option)}
    return config


def parse_backend_options(backend: str, pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs typed by the options the backend's entry declares (plain data: no plugin import)."""
    declared = {o["key"]: o for o in GENERATION_BACKENDS.get(backend).meta.get("options", ())}
    options: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key, text = key.strip(), text.strip()
        known = ", ".join(declared) or "none"
        if not sep:
            raise StudioError(f"--backend-option {pair!r}: write KEY=VALUE (the {backend} backend's options: {known}).")
        if key not in declared:
            raise StudioError(f"--backend-option {pair!r}: the {backend} backend has no option {key!r} "
                              f"(its options: {known}).")
        options[key] = _typed(backend, declared[key], text)
    return options


def _typed(backend: str, option: dict, text: str):
    kind, key = option.get("type", "str"), option["key"]
    try:
        if kind == "int":
            value = int(text)
        elif kind == "float":
            value = float(text)
        elif kind == "bool":
            if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(text)
            value = text.lower() in ("1", "true", "yes", "on")
        else:
            value = text
    except ValueError:
        what = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(kind, kind)
        raise StudioError(f"--backend-option {key}={text}: the {backend} backend's {key} must be {what}.") from None
    if kind == "choice" and value not in [c[0] for c in option.get("choices", ())]:
        raise StudioError(f"--backend-option {key}={text}: choose one of "
                          f"{', '.join(str(c[0]) for c in option.get('choices', ()))}.")
    for bound, ok in (("min", lambda b: value >= b), ("max", lambda b: value <= b)):
        if kind in ("int", "float") and option.get(bound) is not None and not ok(option[bound]):
            raise StudioError(f"--backend-option {key}={text}: the {backend} backend's {key} must be "
                              f"{'at least' if bound == 'min' else 'at most'} {option[bound]}.")
    return value


# A new run's settings: saved with the run, so ``--resume`` refuses them rather than ignore them.
RUN_SETTINGS = ("preset", "base_url", "model", "target", "concurrency", "budget", "max_requests", "timeout",
                "num_tasks", "price", "backend")


def run_generate(project: Project, args: argparse.Namespace) -> int:
    store = project.generation
    if args.resume:
        given = [f"--{name.replace('_', '-')}" for name in RUN_SETTINGS if getattr(args, name, None) not in (None, [])]
        if given:  # silently ignoring them would let a user think the resumed run changed backend or teacher
            raise StudioError(f"--resume continues the run with its own settings, so {', '.join(given)} cannot be "
                              "given with it (only --run, --api-key-env and --backend-option can).")
        run_id = args.run or store.latest_run_id()
        run = store.run(run_id) if run_id else None
        if run is None:
            raise StudioError("There is no generation run to resume in this project.")
        config = RunConfig.from_dict(run["config"])
        GENERATION_BACKENDS.get(config.backend)  # a disabled backend plugin: say so, before the run is touched
        if args.api_key_env:
            config.teacher.api_key_env = args.api_key_env
        if getattr(args, "backend_option", None):  # e.g. a shorter poll_s while collecting a batch
            options = {**config.backend_options, **parse_backend_options(config.backend, args.backend_option)}
            store.update_config(run_id, {**run["config"], "backend_options": options})
        key = resolve_key(config.teacher)
    else:
        config = config_from_args(args)
        if not ((args.base_url or getattr(args, "preset", None)) and config.teacher.model and args.target):
            raise StudioError("generate needs --base-url (or --preset), --model and --target (or --resume).")
        key = resolve_key(config.teacher)
        # Bad settings, a refused key or an unreachable teacher fail here, before a run row exists.
        run_id = prepare_run(project, config, api_key=key.value)
    bar = ProgressBar(sys.stderr, quiet=args.quiet)
    engine = GenerationEngine(project, run_id, on_event=bar, api_key=key.value, key_source=key.describe())
    # A batch backend does not wait for its requests: they stay at the provider, and the run stops at once.
    stopping = STOPPING if config.backend == "live" else STOPPING_BATCH
    with CtrlCStops(engine.stop, bar.note, stopping):
        result = engine.run_blocking()
    bar.close()
    c = result.counters
    if result.reason in ("stopped", "error") and not result.discarded and project.generation.has_open_backend_work(run_id):
        print(f"run {run_id}: its requests are still at the provider ({config.backend}); they are not sent again: "
              f"`distill-studio generate --resume --run {run_id}` collects the answers.", file=sys.stderr)
    if result.discarded:  # refused before any answer: no run was kept, so no run summary either
        print(f"error: {result.message or 'the teacher did not answer'} Nothing was stored.", file=sys.stderr)
        return EXIT_ERROR
    print(f"run {run_id}: {result.reason}; kept {c.kept}, rejected {c.rejected} ({describe_reasons(c.rejected_by_reason)}),"
          f" requests {c.requests_done} (+{c.requests_failed} failed), tokens {c.prompt_tokens}+{c.completion_tokens},"
          f" cost ${c.cost:.4f}")
    if result.reason == "error":
        print(f"error: {result.message}", file=sys.stderr)
        return EXIT_ERROR
    if result.message:  # e.g. a backend that could not cancel or close: the run stands, the user should know
        print(f"warning: {result.message}", file=sys.stderr)
    return EXIT_STOPPED if result.reason == "stopped" else EXIT_OK


class ProgressBar:
    """One line on a terminal (redrawn at most 5 times a second); a line every 2 s into a file."""

    def __init__(self, stream, quiet: bool = False):
        self._stream = stream
        self._quiet = quiet
        self._tty = stream.isatty()
        self._last = 0.0
        self._backend_text = ""
        self._shown = ""  # the last progress line drawn ("": none yet)

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._line(f"run {event.run_id}{' (resumed)' if event.resumed else ''}: {event.key_source};"
                       f" estimate {event.estimate}", force=True)
        elif isinstance(event, ev.Progress):
            self._progress(event.counters)
        elif isinstance(event, ev.RunFinished) and self._shown:
            self._progress(event.counters, force=True)  # the last line shows the final numbers, not stale ones
        elif isinstance(event, ev.Notice):
            self._line(f"warning: {event.text}", force=True)
        elif isinstance(event, ev.BackendStatus) and event.text != self._backend_text:
            self._backend_text = event.text  # a batch's state: one line each time it changes
            self._line(event.text)

    def _progress(self, c: ev.Counters, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self._tty else 2.0):
            return
        self._last = now
        done = min(1.0, c.kept / c.target) if c.target else 0.0
        bar = "#" * int(done * 30) + "." * (30 - int(done * 30))
        eta = f" eta {c.eta_s:.0f}s" if c.eta_s is not None else ""
        text = (f"[{bar}] {c.kept}/{c.target} kept, {c.rejected} rejected, {c.requests_done} req,"
                f" {c.in_flight} in flight, ${c.cost:.4f}{eta}")
        if self._quiet or (force and text == self._shown):
            return
        self._shown = text
        if self._tty:
            self._stream.write("\r" + text.ljust(100))
            self._stream.flush()
        else:
            self._line(text)

    def note(self, text: str) -> None:
        self._line(text, force=True)

    def _line(self, text: str, force: bool = False) -> None:
        if self._quiet and not force:
            return
        if self._tty:
            self._stream.write("\r" + " " * 100 + "\r")
        print(text, file=self._stream, flush=True)

    def close(self) -> None:
        if self._tty and not self._quiet:
            self._stream.write("\n")
