"""The wall between evaluation prompts and training data: the one place that decides "is this an eval prompt".

A prompt of an evaluation-only set (``project.prompt_sets``, not released) must never be shown
to the teacher as an example nor trained on, or the evaluation measures memory. The paths that
use this module: Generate refuses seed tasks that are eval prompts (``engine.prepare_run``); a
run (new or resumed) never shows one as an example, never sends a stored request that shows one
(a set imported after the request was stored) and its ``eval_prompt`` sample filter rejects
generated copies (self-instruct checks an instance again with its input); Train refuses a
snapshot holding one on create, on resume and on ``train export-job``
(``TrainingRunRepository.create`` / ``refuse_eval_prompts``); the pre-flight check reports exact
copies as an error and ROUGE-L near ones as a warning (:func:`preflight_checks`);
:func:`snapshot_note` is the warning for a snapshot just frozen.

"The same prompt" is :func:`record_hash`: its instruction and input as one text, case, runs of
whitespace and punctuation not counting; a chat prompt is compared by its instruction (the last
user message). "Near" is ROUGE-L F ≥ the threshold (0.7, Alpaca's near-duplicate line) of the
instructions, or of instruction + input as one text where either side has an input, with the
scorer of :class:`studio.core.dedup.NearDuplicateIndex`. Loading is one query; with no prompt
set it is an empty wall that answers at once (no index is built).
"""
from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from studio.core.evaluation.model import EvalPrompt, normalise
from studio.core.training.split import SplitSettings, split_records

NEAR_THRESHOLD = 0.7
EXACT_CODE, NEAR_CODE = "eval_prompt", "eval_prompt_near"  # the pre-flight check codes
_WORD = re.compile(r"\w+")  # a word of the wall's identity (Unicode letters and digits)


class PromptLike(Protocol):
    """A snapshot item, a training record, a seed example, a generated candidate: anything with these."""

    instruction: str
    input: str


def record_hash(instruction: str, input: str = "") -> str:
    """The wall's identity of a prompt: its instruction and input as one normalised text.

    One text rather than two fields, so the same words split differently still match: a chat
    prompt's user message "Translate:\n\nHello" is the record ("Translate:", "Hello") that a
    chat export of the snapshot would hold. Punctuation does not count either (only the words,
    in order): "Translate: Hello." is "translate hello", so a trailing full stop or a colon moved
    to the other field cannot carry an evaluation prompt past the exact check (which Train refuses
    on; a near copy only warns). A text without any word keeps its normalised characters.
    """
    return hashlib.sha256(wall_words(f"{instruction} {input}").encode("utf-8")).hexdigest()


def wall_words(text: str) -> str:
    """The words of ``text`` as the wall compares them: casefolded, one space apart, no punctuation."""
    words = _WORD.findall(text.casefold())
    return " ".join(words) if words else normalise(text)


@dataclass
class WallReport:
    """Records that are evaluation prompts: ``exact`` (index, prompt) and ``near`` (index, prompt, ROUGE-L)."""

    exact: list[tuple[int, EvalPrompt]] = field(default_factory=list)
    near: list[tuple[int, EvalPrompt, float]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.exact or self.near)


class EvalWall:
    """The active evaluation prompts of a project, ready to check prompts against."""

    def __init__(self, prompts: Sequence[EvalPrompt], set_names: dict[int, str] | None = None, *,
                 threshold: float = NEAR_THRESHOLD):
        self.prompts = list(prompts)
        self.set_names = dict(set_names or {})
        self.threshold = float(threshold)
        self._by_hash: dict[str, EvalPrompt] = {}
        for prompt in self.prompts:
            self._by_hash.setdefault(record_hash(prompt.instruction, prompt.input), prompt)
        self._index: Any = None  # the ROUGE-L index of instructions, built on the first near() call
        self._joined: Any = None  # and of instruction + input, when some prompt has an input

    @classmethod
    def load(cls, conn: sqlite3.Connection, *, threshold: float = NEAR_THRESHOLD) -> EvalWall:
        """The wall of the project behind ``conn`` (every active prompt of every set)."""
        from studio.core.evaluation.prompt_sets import PromptSetRepository

        prompts = PromptSetRepository(conn, ".").active_prompts()
        names = dict(conn.execute("SELECT id, name FROM eval_prompt_sets").fetchall()) if prompts else {}
        return cls(prompts, names, threshold=threshold)

    def __bool__(self) -> bool:
        return bool(self.prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def set_name(self, prompt: EvalPrompt) -> str:
        return self.set_names.get(prompt.set_id, f"set {prompt.set_id}") if prompt.set_id is not None else "a set"

    def exact(self, instruction: str, input: str = "") -> EvalPrompt | None:
        """The eval prompt with this instruction and input (normalised), or None."""
        if not self._by_hash:
            return None
        return self._by_hash.get(record_hash(instruction, input))

    def shown(self, instruction: str, input: str = "") -> EvalPrompt | None:
        """The eval prompt an example would show the teacher: the example itself, or its instruction
        alone (self-instruct shows seeds' instructions without their inputs, so a seed with an input
        whose instruction is an eval prompt would put that prompt's whole text in the request)."""
        found = self.exact(instruction, input)
        return found if found is not None or not input.strip() else self.exact(instruction)

    def near(self, instruction: str, input: str = "") -> tuple[EvalPrompt, float] | None:
        """The eval prompt nearest by ROUGE-L, when at or above the threshold.

        Instructions are compared with instructions, and, where either side has an input, the
        instruction and input as one text with the same of each prompt: text moved from the input
        into the instruction (or back) is still near. The higher of the two scores counts.
        """
        if not self.prompts or not (instruction.strip() or input.strip()):
            return None
        from studio.core.dedup import NearDuplicateIndex

        if self._index is None:
            self._index = NearDuplicateIndex(threshold=self.threshold)
            for number, prompt in enumerate(self.prompts):
                self._index.add(prompt.instruction, number)
            with_input = [n for n, p in enumerate(self.prompts) if p.input.strip()]
            if with_input:
                self._joined = NearDuplicateIndex(threshold=self.threshold)
                for number, prompt in enumerate(self.prompts):
                    self._joined.add(f"{prompt.instruction} {prompt.input}", number)
        best = self._index.nearest(instruction) if instruction.strip() else None
        if self._joined is not None or input.strip():
            joined = (self._joined or self._index).nearest(f"{instruction} {input}")
            if joined is not None and (best is None or joined.score > best.score):
                best = joined
        if best is None or best.score < self.threshold:
            return None
        return self.prompts[best.key], float(best.score)

    def check(self, instruction: str, input: str = "") -> tuple[EvalPrompt, float] | None:
        """Exact (score 1.0) or near: the one question the generation filter asks."""
        found = self.exact(instruction, input)
        if found is not None:
            return found, 1.0
        return self.near(instruction, input)

    def check_records(self, records: Iterable[PromptLike], *, exempt_hashes: Iterable[str] = (),
                      near: bool = True, digests: Sequence[str] | None = None) -> WallReport:
        """Which records are eval prompts; a record whose :func:`record_hash` is exempt is skipped.

        ``near=False`` looks for exact copies only (one dictionary lookup a record); ``digests``
        are the records' :func:`record_hash` when the caller has them already.
        """
        report = WallReport()
        if not self.prompts:
            return report
        exempt = set(exempt_hashes)
        for index, record in enumerate(records):
            digest = digests[index] if digests is not None else record_hash(record.instruction, record.input)
            if digest in exempt:
                continue
            found = self._by_hash.get(digest)
            if found is not None:
                report.exact.append((index, found))
            elif near:
                close = self.near(record.instruction, record.input)
                if close is not None:
                    report.near.append((index, *close))
        return report

    def describe(self, prompt: EvalPrompt, limit: int = 70) -> str:
        """"'Instruction…' (set NAME)" for messages that name what was found."""
        text = " ".join(prompt.instruction.split())
        text = text if len(text) <= limit else text[: limit - 1] + "…"
        return f"{text!r} (set {self.set_name(prompt)!r})"


def snapshot_records(conn: sqlite3.Connection, snapshot_id: int) -> list[Any]:
    """A snapshot's frozen items in file order (the order the training job reads and splits)."""
    from studio.core.snapshots import SnapshotRepository

    return SnapshotRepository(conn, ".").items(snapshot_id)


def exempt_for_snapshot(conn: sqlite3.Connection, snapshot_id: int, settings: SplitSettings,
                        records: Sequence[PromptLike] | None = None, *,
                        digests: Sequence[str] | None = None) -> set[str]:
    """Hashes of the records a run with ``settings`` holds out of the snapshot and never trains on.

    The training job's own split (``studio.core.training.split``): a prompt set taken from this
    snapshot's validation split with the same settings is exactly these, so the run is not
    refused for them; a prompt also present in the training part stays refused.
    """
    items = snapshot_records(conn, snapshot_id) if records is None else records
    if digests is None:
        digests = [record_hash(r.instruction, r.input) for r in items]
    train, held = split_records(list(digests), settings)  # the split depends on the count only
    trained = set(train)
    return {digest for digest in held if digest not in trained}


def snapshot_report(conn: sqlite3.Connection, snapshot_id: int, settings: SplitSettings, *, near: bool = True,
                    wall: EvalWall | None = None) -> tuple[WallReport, list[Any]]:
    """The eval prompts a run with ``settings`` would train on in the snapshot, and its items."""
    wall = EvalWall.load(conn) if wall is None else wall
    if not wall:
        return WallReport(), []
    items = snapshot_records(conn, snapshot_id)
    digests = [record_hash(item.instruction, item.input) for item in items]  # once a record
    exempt = exempt_for_snapshot(conn, snapshot_id, settings, items, digests=digests)
    return wall.check_records(items, exempt_hashes=exempt, near=near, digests=digests), items


def refusal(wall: EvalWall, report: WallReport, items: Sequence[Any], snapshot_name: str) -> str:
    """The one-line reason Train gives for refusing a snapshot that holds evaluation prompts."""
    count = len(report.exact)
    index, prompt = report.exact[0]
    sample = getattr(items[index], "sample_id", None)
    where = f"sample {sample}" if sample is not None else f"record {index + 1}"
    return (f"snapshot {snapshot_name!r} holds {count:,} evaluation-only prompt{'s' if count != 1 else ''} "
            f"(first: {where}, {wall.describe(prompt)}): evaluation prompts are never training data; "
            "remove those samples in Curate and freeze a new snapshot, or delete the prompt set "
            "(`distill-studio eval prompts list` shows the sets)")


def snapshot_note(conn: sqlite3.Connection, snapshot_id: int) -> str | None:
    """A one-line warning for a snapshot just frozen that holds evaluation-only prompts (exact copies).

    Freezing is allowed (a prompt set may be taken from it later, or the copies held out), but the
    user should know now that Train will refuse a run that would train on them. None when clean.
    """
    wall = EvalWall.load(conn)
    if not wall:
        return None
    items = snapshot_records(conn, snapshot_id)
    report = wall.check_records(items, near=False)
    if not report.exact:
        return None
    count = len(report.exact)
    index, prompt = report.exact[0]
    sample = getattr(items[index], "sample_id", None)
    where = f"sample {sample}" if sample is not None else f"record {index + 1}"
    return (f"the snapshot holds {count:,} evaluation-only prompt{'s' if count != 1 else ''} (first: {where}, "
            f"{wall.describe(prompt)}): Train refuses to train on them; remove them in Curate and freeze again")


def preflight_checks(conn: sqlite3.Connection, snapshot_id: int | None,
                     settings: SplitSettings) -> list[dict[str, str]]:
    """The pre-flight checks about evaluation prompts in the run's training split.

    An ``eval_prompt`` error for exact copies (count and the first), an ``eval_prompt_near``
    warning for ROUGE-L near ones, or one ``eval_prompt`` ok line when there are prompt sets
    and the training split holds none of their prompts (nothing when the project has no set).
    """
    if snapshot_id is None:
        return []
    wall = EvalWall.load(conn)
    if not wall:
        return []
    report, items = snapshot_report(conn, snapshot_id, settings, wall=wall)
    checks: list[dict[str, str]] = []

    def where(index: int) -> str:
        sample = getattr(items[index], "sample_id", None)
        return f"sample {sample}" if sample is not None else f"record {index + 1}"

    if report.exact:
        index, prompt = report.exact[0]
        count = len(report.exact)
        checks.append({"level": "error", "code": EXACT_CODE, "message":
                       f"{count:,} training sample{'s are' if count != 1 else ' is'} an evaluation-only prompt "
                       f"(first: {where(index)}, {wall.describe(prompt)}): the evaluation would measure memory; "
                       "remove them in Curate and freeze a new snapshot"})
    if report.near:
        index, prompt, score = max(report.near, key=lambda hit: hit[2])
        count = len(report.near)
        checks.append({"level": "warning", "code": NEAR_CODE, "message":
                       f"{count:,} training sample{'s are' if count != 1 else ' is'} near an evaluation prompt "
                       f"(ROUGE-L ≥ {wall.threshold:g}; nearest: {where(index)}, ROUGE-L {score:.2f} to "
                       f"{wall.describe(prompt)}): consider removing them so the evaluation stays fair"})
    if not checks:
        checks.append({"level": "ok", "code": EXACT_CODE, "message":
                       f"no training sample is, or is near, one of the {len(wall):,} evaluation prompts"})
    return checks


def trained_on(conn: sqlite3.Connection, snapshot_id: int | None, settings: SplitSettings,
               prompts: Sequence[PromptLike]) -> list[int]:
    """Indexes of ``prompts`` that a run with ``settings`` on the snapshot trained on (exact copies).

    The wall stops a run from training on a set that exists; a set made *after* the run (another
    validation split of its snapshot, or a file holding its samples) is not stopped by anything, and
    evaluating that run on it measures memory. ``eval run`` warns with this.
    """
    if snapshot_id is None or not prompts:
        return []
    train, _ = split_records(list(snapshot_records(conn, snapshot_id)), settings)
    trained = {record_hash(r.instruction, r.input) for r in train}
    return [i for i, p in enumerate(prompts) if record_hash(p.instruction, p.input) in trained]
