"""``distill-studio eval run | results | export``: a blind pairwise evaluation from the command line.

``eval run`` resolves the systems (``URL#MODEL``, ``run:RUN``, ``base``), starts the project's
own server when a studio model needs one and none runs (:class:`~.systems.StudioServerLease`),
stores the evaluation, shows the cost estimate, then answers and judges with the engine, every
answer and verdict cached, so a rerun pays only for what is missing. Progress and notes go to
stderr; the result goes to stdout (``--json``: one object whose top-level numbers are the first
pair's, plus what repeats it). Ctrl+C stops cleanly: what was answered stays, exit 130.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from studio.core.ctrl_c import CtrlCStops
from studio.core.errors import StudioError
from studio.core.evaluation.judge import JUDGE_ROLE
from studio.core.evaluation.model import (
    ANSWERING,
    ENDPOINT,
    FAILED,
    JUDGING,
    STOPPED,
    AnswerSettings,
    EvalSettings,
    Evaluation,
    EvaluationError,
    JudgeSpec,
    Outcome,
    SystemSpec,
)
from studio.core.evaluation.systems import (
    StudioServerLease,
    check_url_has_no_secret,
    client_factory,
    key_sources,
    resolve_systems,
    run_id_of,
)

if TYPE_CHECKING:
    from studio.core.evaluation.model import PromptSet
    from studio.core.evaluation.stats import EvalResult, PairResult
    from studio.core.llm.client import LLMClient
    from studio.core.project import Project

EXIT_OK, EXIT_ERROR, EXIT_STOPPED = 0, 1, 130


def _open(args: argparse.Namespace, *, exclusive: bool = True) -> Project:
    from studio.cli import _open as open_project

    if not hasattr(args, "project"):
        args.project = None
    return open_project(args, exclusive=exclusive)


# -- eval run --------------------------------------------------------------------------------------------
def cmd_eval_run(args: argparse.Namespace) -> int:
    with _open(args) as project:
        return run_evaluation(project, args)


def run_evaluation(project: Project, args: argparse.Namespace, *, out: IO[str] | None = None,
                   err: IO[str] | None = None) -> int:
    """The body of ``eval run`` on an open project (tests and the GUI's twin call it directly)."""
    from studio.core.llm.client import RetryPolicy
    from studio.core.serving.server_info import info_path, live_server

    out, err = out or sys.stdout, err or sys.stderr
    prompt_set = _prompt_set(project, args.prompts)
    prompts = project.prompt_sets.prompts(prompt_set.id)
    if not prompts:
        raise EvaluationError(f"The prompt set {prompt_set.name} has no evaluation prompts left "
                              "(all were sent to the seeds); import another set.")
    temperature = float(getattr(args, "temperature", 0.0) or 0.0)
    if not 0.0 <= temperature <= 2.0:
        raise EvaluationError(f"--temperature {temperature:g}: use a value from 0 to 2 (0 = the most likely "
                              "answer, the fair choice for a comparison).")
    if getattr(args, "template", None) is not None and not getattr(args, "judge", None):
        raise EvaluationError("--template is the judge's prompt: give --judge URL#MODEL too (or leave --template out).")
    key_env = getattr(args, "api_key_env", None)
    specs = [_with_key_env(SystemSpec.parse(text), key_env) for text in (args.a, args.b)]
    kind = getattr(args, "judge_kind", None)
    if kind and not getattr(args, "judge", None):
        raise EvaluationError("--judge-kind chooses how the judge decides: give --judge URL#MODEL too.")
    judge = (_judge_spec(args.judge, getattr(args, "template", None), key_env, kind or "pairwise")
             if getattr(args, "judge", None) else None)
    settings = EvalSettings(answers=AnswerSettings(max_tokens=int(args.max_tokens), temperature=temperature),
                            concurrency=int(getattr(args, "concurrency", 32) or 32),
                            budget_usd=getattr(args, "budget", None))
    settings.prices.update(_prices(getattr(args, "price", None)))
    # A bad spec, an unknown run or an untrained one fails here, before a server is started.
    specs = resolve_systems(project, specs, server=live_server(info_path(project.root)))
    # A studio model whose every answer is cached needs no server (loading a 7B base takes minutes).
    uncached = [spec for spec in specs if not _all_cached(project, spec, prompts, settings)]
    with StudioServerLease(project.root, uncached, out=err) as server:
        systems = resolve_systems(project, specs, server=server)  # base: the base the server holds
        evaluation = project.evaluations.create(
            set_id=prompt_set.id, set_hash=prompt_set.content_hash, prompt_ids=[p.id for p in prompts],
            systems=systems, judge=judge, settings=settings, name=getattr(args, "name", None) or "")
        _say(err, f"evaluation {evaluation.id}: {' vs '.join(s.label for s in systems)} on {prompt_set.name} "
                  f"({len(prompts)} prompts){f', judge {judge.label}' if judge else ', no judge (answers only)'}")
        for warning in _trained_on_warnings(project, systems, prompts, prompt_set.name):
            _say(err, f"warning: {warning}")
        unpriced = _unpriced(systems, judge, settings)
        if settings.budget_usd is not None and unpriced:
            _say(err, f"note: no price is known for {', '.join(unpriced)}: "
                      f"{'its' if len(unpriced) == 1 else 'their'} requests count as free, so "
                      "--budget does not limit them; give --price MODEL IN OUT (USD per 1M tokens) for each")
        keys = key_sources(systems, judge)
        if keys:
            _say(err, f"keys: {keys}")
        _say(err, f"estimate: {_describe_estimate(project, evaluation)}")
        retry = RetryPolicy(max_attempts=settings.max_attempts)
        clients = client_factory(project.root, server, retry=retry, prices=settings.prices)
        judge_client = _judge_client(judge, retry, settings) if judge is not None else None
        result, interrupted = _run_engine(project, evaluation.id, clients, judge_client, err)
    evaluation = project.evaluations.get(evaluation.id)
    if result.status == FAILED:
        message = result.message or evaluation.error or "the evaluation failed"
        if not (result.answers or result.judgments or result.cached_answers):
            project.evaluations.delete(evaluation.id)  # refused before anything arrived: no empty record
            raise EvaluationError(f"{message} Nothing was stored.")
        raise EvaluationError(f"{message} (evaluation {evaluation.id} keeps what arrived; run again to go on)")
    _say(err, _run_line(result))
    if result.status == STOPPED and result.message and not interrupted:
        _say(err, f"note: {result.message}")  # the budget: what was fetched is a partial result
    _print_result(project, evaluation, out, as_json=bool(getattr(args, "json", False)), human=False)
    if interrupted:
        _say(err, "stopped by Ctrl+C: the answers and verdicts so far are kept; run the same command again "
                  "to finish (cached work costs nothing)")
        return EXIT_STOPPED
    return EXIT_OK


def _prices(given: Sequence[Sequence[str]] | None) -> dict[str, tuple[float, float]]:
    """``--price MODEL IN OUT`` (repeatable) as price-table rows."""
    prices: dict[str, tuple[float, float]] = {}
    for model, price_in, price_out in given or ():
        try:
            pair = (float(price_in), float(price_out))
        except ValueError:
            pair = (-1.0, -1.0)
        if min(pair) < 0:
            raise EvaluationError(f"--price {model} {price_in} {price_out}: give USD per 1M input and output tokens, "
                                  "two numbers of 0 or more (e.g. --price gpt-4o 2.5 10).")
        prices[model] = pair
    return prices


def _unpriced(systems: Sequence[SystemSpec], judge: JudgeSpec | None, settings: EvalSettings) -> list[str]:
    """The endpoint models (systems and judge) the price table does not know; studio models are local."""
    models = [s.model for s in systems if s.kind == ENDPOINT]
    if judge is not None:
        models.append(str(judge.endpoint.get("model") or ""))
    return list(dict.fromkeys(m for m in models if m and m not in settings.prices))


def _all_cached(project: Project, spec: SystemSpec, prompts: Sequence[Any], settings: EvalSettings) -> bool:
    cached = project.evaluations.cached_answers(spec.key, (p.hash for p in prompts), settings.answers.hash())
    return all(p.hash in cached for p in prompts)


def _trained_on_warnings(project: Project, systems: Sequence[SystemSpec], prompts: Sequence[Any],
                         set_name: str) -> list[str]:
    """A trained run that learned some of the set's prompts (the set was made after the run): its
    wins there measure memory, so say how many before anything is paid for."""
    from studio.core.evaluation.guard import trained_on
    from studio.core.evaluation.model import RUN

    warnings = []
    for index, spec in enumerate(systems):
        if spec.kind != RUN:
            continue
        run_id = run_id_of(spec)
        run = project.training.get(run_id if run_id is not None else spec.run)
        found = trained_on(project.conn, run.snapshot_id, run.settings, prompts)
        if found:
            warnings.append(f"{letter(index)} ({spec.label}) was trained on {len(found):,} of the "
                            f"{len(prompts):,} prompts of {set_name} (its snapshot's training part); its "
                            "answers there measure memory. Evaluate it on its own validation split "
                            f"(`eval prompts from-snapshot` with the run's seed, validation_fraction and "
                            "max_validation_samples) or on another set.")
    return warnings


def _prompt_set(project: Project, key: str) -> PromptSet:
    text = str(key).strip()
    return project.prompt_sets.get(int(text) if text.isdigit() else text)


def _with_key_env(spec: SystemSpec, key_env: str | None) -> SystemSpec:
    return replace(spec, api_key_env=key_env) if key_env and spec.kind == ENDPOINT else spec


def _judge_spec(text: str, template_path: Path | None, key_env: str | None, kind: str = "pairwise") -> JudgeSpec:
    from studio.core.chat.sources import endpoint_label
    from studio.core.evaluation.judge import PAIRWISE_JUDGE, check_template, default_judge_spec, load_judge

    spec = SystemSpec.parse(text)
    if spec.kind != ENDPOINT:
        raise EvaluationError(f"--judge {text!r}: a judge is an endpoint, URL#MODEL (the studio's own models "
                              "are not judges).")
    check_url_has_no_secret(spec.base_url, "the judge")
    spec = _with_key_env(spec, key_env)
    judge = default_judge_spec(spec.endpoint())
    judge = replace(judge, label=endpoint_label(spec.base_url, spec.model), kind=kind)
    pairwise = kind == PAIRWISE_JUDGE.key
    if not pairwise:  # the chosen judge is loaded now: a broken plugin says so before anything is stored
        judge = replace(judge, template=load_judge(kind).default_template)
    if template_path is not None:
        try:
            template = Path(template_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise EvaluationError(f"--template {template_path}: cannot read it ({exc.strerror or exc}).") from None
        try:
            if pairwise:  # a plugin judge's template has its own placeholders
                check_template(template)
        except EvaluationError as exc:
            raise EvaluationError(f"--template {template_path}: {exc}") from None
        judge = replace(judge, template=template)
    return judge


def _judge_client(judge: JudgeSpec, retry: Any, settings: EvalSettings) -> LLMClient:
    from studio.core.llm.client import LLMClient

    return LLMClient(judge.endpoint_config(), retry=retry, prices=settings.prices, role=JUDGE_ROLE)


def _describe_estimate(project: Project, evaluation: Evaluation) -> str:
    from studio.core.evaluation.engine import estimate

    found = estimate(project, evaluation)
    describe = getattr(found, "describe", None)
    return describe() if callable(describe) else str(found)


def _run_line(result: Any) -> str:
    return (f"{result.status}: fetched {result.answers} answers and {result.judgments} verdicts "
            f"({result.cached_answers} answers and {result.cached_judgments} verdicts from the cache), "
            f"{result.errors} errors, cost ${result.cost:.4f}")


def _run_engine(project: Project, evaluation_id: int, clients: Any, judge_client: LLMClient | None,
                err: IO[str]) -> tuple[Any, bool]:
    """Run the engine to its end on this thread; (its result, whether Ctrl+C stopped it)."""
    from studio.core.evaluation.engine import EvalEngine

    line = ProgressLine(err)
    engine = EvalEngine(project, evaluation_id, clients=clients, judge_client=judge_client, on_progress=line)
    stopper = CtrlCStops(engine.stop, line.note)
    with stopper:
        result = engine.run_blocking()
    line.close()
    return result, stopper.pressed


class ProgressLine:
    """Engine progress on stderr: one redrawn line on a terminal (at most 5 a second); into a file or pipe a
    line each ~10 % (at most one a second, besides each phase's first and last line and any new message)."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = 0.0
        self._step: tuple[str, int] | None = None  # (phase, tenth) last written to a file
        self._message = ""
        self._lock = threading.Lock()  # progress may come from the engine's worker thread

    def __call__(self, progress: Any) -> None:
        if progress.phase not in (ANSWERING, JUDGING):  # the end: the caller prints the run's summary line
            return
        total = max(0, int(progress.total))
        done = min(int(progress.done), total) if total else int(progress.done)
        text = (f"{progress.phase}: {done}/{total} ({progress.cached} cached, {progress.errors} errors), "
                f"${progress.cost:.4f}")
        if progress.message:
            text += f" — {progress.message}"
        with self._lock:
            if self._tty:
                now = time.monotonic()
                if now - self._last < 0.2 and done < total:
                    return
                self._last = now
                self._stream.write("\r" + text[:120].ljust(120))
                self._stream.flush()
                return
            tenth = (10 * done) // total if total else 0
            now = time.monotonic()
            edge = done in (0, total)  # a phase's first and last line are always written
            news = bool(progress.message) and progress.message != self._message
            if not news and (self._step == (progress.phase, tenth) or (not edge and now - self._last < 1.0)):
                return
            self._step, self._last, self._message = (progress.phase, tenth), now, progress.message
            print(text, file=self._stream, flush=True)

    def note(self, text: str) -> None:
        with self._lock:
            if self._tty:
                self._stream.write("\r" + " " * 120 + "\r")
            print(text, file=self._stream, flush=True)

    def close(self) -> None:
        with self._lock:
            if self._tty:
                self._stream.write("\n")
                self._stream.flush()


# -- eval results / export -------------------------------------------------------------------------------
def cmd_eval_results(args: argparse.Namespace) -> int:
    with _open(args, exclusive=False) as project:
        if getattr(args, "evaluation", None) in (None, ""):
            return _list_evaluations(project, sys.stdout, as_json=bool(getattr(args, "json", False)))
        evaluation = project.evaluations.get(_evaluation_id(args.evaluation))
        _print_result(project, evaluation, sys.stdout, as_json=bool(getattr(args, "json", False)),
                      human=_use_votes(project, evaluation, args))
    return EXIT_OK


def _use_votes(project: Project, evaluation: Evaluation, args: argparse.Namespace) -> bool:
    """--human, or an evaluation without a judge that has votes (its only result, as the panel shows it)."""
    if getattr(args, "human", False):
        return True
    return evaluation.judge is None and project.votes.progress(evaluation.id)[0] > 0


def cmd_eval_export(args: argparse.Namespace) -> int:
    from studio.core.evaluation.engine import prompt_rows
    from studio.core.evaluation.results_io import write_csv, write_json

    path = Path(args.path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise EvaluationError(f"{path}: export to a .json or a .csv file.")
    with _open(args, exclusive=False) as project:
        evaluation = project.evaluations.get(_evaluation_id(args.evaluation))
        human = _use_votes(project, evaluation, args)
        result, judge_outcomes, human_outcomes = evaluation_result(project, evaluation, human=human)
        rows = prompt_rows(project, evaluation, judge_outcomes, human=human_outcomes or None)
        written = (write_json if suffix == ".json" else write_csv)(result, rows, path)
    files = ", ".join(str(p) for p in written)
    _say(sys.stderr, f"Wrote evaluation {evaluation.id} ({len(rows)} prompt rows, "
                     f"{'human votes' if human else 'the judge' if evaluation.judge else 'answers only, no judge'}) "
                     f"to {files}")
    print(written[0])
    return EXIT_OK


def _evaluation_id(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise EvaluationError(f"{text!r} is not an evaluation id; `distill-studio eval results` lists them.") from None


def evaluation_result(project: Project, evaluation: Evaluation, *,
                      human: bool = False) -> tuple[EvalResult, list[Outcome], list[Outcome]]:
    """(the result to show, the judge's outcomes, the human votes' outcomes) of a stored evaluation.

    ``human`` summarises the blind votes instead of the judge. An evaluation without a judge has
    no judged outcomes: its result counts nothing (n = 0) but still gives the answers' lengths.
    """
    from studio.core.evaluation.engine import outcomes as judge_outcomes_of
    from studio.core.evaluation.engine import prompt_rows
    from studio.core.evaluation.stats import agreement, summarise

    labels = [s.label for s in evaluation.systems]
    judged = judge_outcomes_of(project, evaluation)  # none without a judge
    votes = project.votes.outcomes(evaluation)
    result = summarise(votes if human else judged, labels)
    answered = None
    if not human and evaluation.judge is None:
        rows = prompt_rows(project, evaluation, [])
        _lengths_only(result, rows)
        answered = len({row["prompt_id"] for row in rows})
    result.meta.update(result_meta(project, evaluation, human=human))
    if answered is not None:
        result.meta["prompts_answered"] = answered
    if not human and votes and judged:
        share, n = agreement(judged, votes)
        result.meta["agreement_with_human"] = {"share": share, "n": n}
    return result, judged, votes


def _lengths_only(result: EvalResult, rows: Sequence[dict]) -> None:
    """Answers without a judge: no verdicts, but each pair's average answer lengths are still known."""
    for pair in result.pairs:
        mine = [row for row in rows if (row["system_a"], row["system_b"]) == (pair.index_a, pair.index_b)]
        if mine:
            pair.avg_len_a = sum(row["len_a"] for row in mine) / len(mine)
            pair.avg_len_b = sum(row["len_b"] for row in mine) / len(mine)


def result_meta(project: Project, evaluation: Evaluation, *, human: bool) -> dict:
    try:
        set_name = project.prompt_sets.get(evaluation.set_id).name if evaluation.set_id is not None else ""
    except StudioError:
        set_name = ""  # the set was deleted; its hash still says what was asked
    judge = evaluation.judge
    return {
        "evaluation_id": evaluation.id, "name": evaluation.name, "status": evaluation.status,
        "error": evaluation.error, "source": "human votes" if human else ("judge" if judge else "answers only"),
        "systems": [{"label": s.label, "kind": s.kind, "key": s.key, "base_url": s.base_url, "model": s.model,
                     "run": s.run} for s in evaluation.systems],
        "judge": None if judge is None else {"label": judge.label, "base_url": judge.endpoint.get("base_url"),
                                             "model": judge.endpoint.get("model"), "key": judge.key(),
                                             "template": judge.template},
        "prompt_set": set_name, "set_id": evaluation.set_id, "set_hash": evaluation.set_hash,
        "prompt_ids": list(evaluation.prompt_ids),
        "settings": evaluation.settings.to_dict(), "cost": evaluation.cost,
    }


def result_json(result: EvalResult) -> dict:
    """The ``--json`` object: the first pair's numbers at the top, what repeats it beside them."""
    data = result.to_dict()
    meta = result.meta
    for key in ("evaluation_id", "name", "status", "source", "prompt_set", "set_hash", "cost"):
        data[key] = meta.get(key)
    data["systems"] = [s["label"] for s in meta.get("systems", [])] or data.get("systems")
    data["judge"] = (meta.get("judge") or {}).get("label")
    return data


def _print_result(project: Project, evaluation: Evaluation, out: IO[str], *, as_json: bool, human: bool) -> None:
    result, _, _ = evaluation_result(project, evaluation, human=human)
    if as_json:
        print(json.dumps(result_json(result), ensure_ascii=False, indent=2), file=out)
    else:
        print("\n".join(summary_lines(result)), file=out)


# -- the human-readable result ----------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    from studio.core.evaluation.stats import percent

    return percent(value)


def _interval(low: float | None, high: float | None) -> str:
    from studio.core.evaluation.stats import wilson_text

    return "" if low is None or high is None else f" {wilson_text(low, high)}"


def letter(index: int) -> str:
    """Systems are A, B, C... in results, as in ``--a`` / ``--b``."""
    return chr(ord("A") + index) if index < 26 else f"#{index + 1}"


def summary_lines(result: EvalResult) -> list[str]:
    """The result as a person reads it: who A and B are, then per pair W/T/L, the win rate with its
    interval, the length-controlled rate, the judge's position consistency, lengths and categories."""
    meta = result.meta
    judge = meta.get("judge")
    source = meta.get("source")
    by = ("blind human votes" if source == "human votes"
          else f"judge {judge['label']} in both orders" if judge else "no judge")
    lines = [f"evaluation {meta.get('evaluation_id')} on {meta.get('prompt_set') or 'a deleted prompt set'} "
             f"({len(meta.get('prompt_ids', []))} prompts, hash {str(meta.get('set_hash', ''))[:12]}…), {by}; "
             f"{meta.get('status')}, cost ${float(meta.get('cost') or 0):.4f}"]
    if meta.get("error"):  # a failed or stopped run says why, also when it is looked at later
        lines.append(f"  {meta.get('status')}: {meta['error']}")
    lines += [f"  {letter(n)} = {label}" for n, label in enumerate(result.systems)]
    if source == "answers only":
        lines.append(f"  answers stored for {meta.get('prompts_answered', 0)} prompts: vote on them in the Evaluate "
                     "panel (then `eval results ID --human`) or run again with --judge URL#MODEL (answers are cached)")
        for pair in result.pairs:
            a, b = letter(pair.index_a), letter(pair.index_b)
            lines.append(f"  average answer length: {a} {_chars(pair.avg_len_a)}, {b} {_chars(pair.avg_len_b)}")
        return lines
    if source == "human votes" and not any(pair.n for pair in result.pairs):
        lines.append("  no blind votes yet: vote in the Evaluate panel (Compare), then run this again")
        return lines
    for pair in result.pairs:
        lines += _pair_lines(pair, human=source == "human votes")
    if result.ranking:
        from studio.core.evaluation.stats import strength_interval_text

        lines.append("  Bradley–Terry ranking (log-strength, bootstrap 95 %):")
        for row in result.ranking:
            interval = f" ({strength_interval_text(row)})" if strength_interval_text(row) else ""
            lines.append(f"    {row.rank}. {letter(row.index)} {row.system}: {row.strength:+.2f}{interval}, "
                         f"{row.games} games")
    agreement = meta.get("agreement_with_human")
    if agreement and agreement.get("n"):
        lines.append(f"  agreement with the human votes: {_pct(agreement['share'])} of {agreement['n']} prompts")
    return lines


def _chars(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} chars"


def _pair_lines(pair: PairResult, *, human: bool) -> list[str]:
    from studio.core.evaluation.stats import length_confounded_text, win_rate_text

    a, b = letter(pair.index_a), letter(pair.index_b)
    tie_note = []
    if pair.inconsistent:
        tie_note.append(f"{pair.inconsistent} inconsistent")
    # Judged in both orders but not both readable: the judge gave no [[A]]/[[B]]/[[C]] in one of them.
    unreadable = 0 if human else pair.n - pair.judged_both_orders
    if unreadable:
        tie_note.append(f"{unreadable} without a readable verdict")
    if pair.both_bad:
        tie_note.append(f"{pair.both_bad} both bad")
    ties = f"{pair.ties} ties" + (f" ({', '.join(tie_note)})" if tie_note else "")
    decisive = f" over {pair.wins_a + pair.wins_b} decisive" if pair.win_rate_a is not None else ""
    lines = [f"  {a} vs {b}: {pair.n} prompts — {a} won {pair.wins_a}, {b} won {pair.wins_b}, {ties}",
             f"    win rate of {a}: {win_rate_text(pair)}{decisive}; ties as half: {_pct(pair.win_rate_a_ties_half)}"]
    lc = f"    length-controlled win rate of {a}: {_pct(pair.lc_win_rate_a)}"
    if pair.lc_ci_low is not None and pair.lc_ci_high is not None:
        lc += f" ({100 * pair.lc_ci_low:.1f}–{100 * pair.lc_ci_high:.1f} %, bootstrap 95 %)"
    if pair.length_bias:
        lc += "  ⚠ length bias: the verdicts follow answer length more than quality"
    elif pair.lc_win_rate_a is None and pair.n and not pair.length_confounded:
        lc += f" ({length_confounded_text(pair, a)})"
    lines.append(lc)
    if pair.length_confounded:
        lines.append(f"    ⚠ {length_confounded_text(pair, a)}: the win rate above may measure length as much "
                     "as quality")
    if unreadable and unreadable == pair.n:
        lines.append("    ⚠ the judge ended no reply with [[A]], [[B]] or [[C]]: these are not real ties; check its "
                     "model and --template (`eval export` keeps its raw replies)")
    if not human:
        lines.append(f"    position consistency of the judge: {_pct(pair.position_consistency)} "
                     f"({pair.judged_both_orders} pairs judged in both orders)")
    lines.append(f"    average answer length: {a} {_chars(pair.avg_len_a)}, {b} {_chars(pair.avg_len_b)}")
    if pair.per_category:
        width = max(8, *(len(name) for name in pair.per_category))
        lines.append(f"    {'category':<{width}}  {'n':>4}  {a + ' won':>6}  {b + ' won':>6}  {'ties':>4}  win rate of {a}")
        for name, row in pair.per_category.items():
            rate = _pct(row["win_rate_a"]) + _interval(row.get("ci_low"), row.get("ci_high"))
            lines.append(f"    {name:<{width}}  {row['n']:>4}  {row['wins_a']:>6}  {row['wins_b']:>6}  "
                         f"{row['ties']:>4}  {rate}")
    return lines


# -- eval results (no id): the list ------------------------------------------------------------------------
def _list_evaluations(project: Project, out: IO[str], *, as_json: bool) -> int:
    records = []
    for evaluation in project.evaluations.list():
        win_rate = _first_win_rate(project, evaluation)
        records.append({"id": evaluation.id, "name": evaluation.name,
                        "systems": [s.label for s in evaluation.systems], "prompts": len(evaluation.prompt_ids),
                        "status": evaluation.status, "cost": evaluation.cost,
                        "judge": evaluation.judge.label if evaluation.judge else None, "win_rate_a": win_rate,
                        "created_at": evaluation.created_at})
    if as_json:
        print(json.dumps(records, ensure_ascii=False, indent=2), file=out)
        return EXIT_OK
    if not records:
        print("No evaluations yet; `distill-studio eval run --prompts NAME --a SPEC --b SPEC` makes one.", file=out)
        return EXIT_OK
    print(f"{'id':>4}  {'status':<9} {'prompts':>7} {'cost':>9} {'win A':>7}  systems", file=out)
    for r in records:
        rate = "—" if r["win_rate_a"] is None else f"{100 * r['win_rate_a']:.1f}%"
        name = f"  [{r['name']}]" if r["name"] else ""
        print(f"{r['id']:>4}  {r['status']:<9} {r['prompts']:>7} {'$' + format(r['cost'], '.4f'):>9} {rate:>7}  "
              f"{' vs '.join(r['systems'])}{name}", file=out)
    return EXIT_OK


def _first_win_rate(project: Project, evaluation: Evaluation) -> float | None:
    """A's decisive win rate over B by the judge (no bootstrap: the list shows many evaluations)."""
    from studio.core.evaluation.engine import outcomes
    from studio.core.evaluation.stats import pair_counts

    first = [o for o in outcomes(project, evaluation) if (o.system_a, o.system_b) == (0, 1)]
    return pair_counts(first)["win_rate_a"]


def _say(stream: IO[str], text: str) -> None:
    print(text, file=stream, flush=True)


__all__ = ["cmd_eval_export", "cmd_eval_results", "cmd_eval_run", "evaluation_result", "result_json",
           "run_evaluation", "summary_lines"]
