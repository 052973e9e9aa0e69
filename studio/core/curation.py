"""Curation queries: find, sort and page through tens of thousands of samples in SQL.

A :class:`SampleQuery` is plain data (it round-trips through JSON for saved views) that
compiles to one WHERE clause; :class:`CurationRepository` counts, pages and changes the samples it
selects. Every change commits at once and returns a :class:`Change` holding the values it
replaced, so an undo stack (the UI's, or a script's) can replay it either way.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import ClassVar

from studio.core.blacklist import DEFAULT_BLACKLIST
from studio.core.changes import SAMPLES, TRASH, VIEWS, ChangeFeed
from studio.core.db import transaction
from studio.core.errors import StudioError
from studio.core.wording import count_noun
from studio.core.jobs import Progress, Steps, run_to_end
from studio.core.samples import Status, content_hash
from studio.core.trash import CHUNK, restore_steps, trash_steps

# Sort keys the table offers, and the SQL behind each (whitelisted: never user text in SQL).
SORT_COLUMNS = {
    "id": "samples.id", "status": "samples.status", "instruction": "samples.instruction",
    "input": "samples.input", "output": "samples.output",
    "instruction_words": "samples.instruction_words", "output_words": "samples.output_words",
    "origin": "samples.origin", "teacher_model": "samples.teacher_model", "run_id": "samples.run_id",
    "rating": "samples.rating", "tags": "samples.tags", "updated_at": "samples.updated_at",
    "created_at": "samples.created_at",
}
LOSS_SORT = "loss"  # with SampleQuery.hardest_run: the run's per-sample loss
PREVIEW_CHARS = 160  # table cells show a preview; the detail pane loads the full text

# The columns a table page needs, with long text cut in SQL so it never crosses into Python.
PAGE_COLUMNS = (
    "samples.id", "samples.status",
    f"substr(samples.instruction, 1, {PREVIEW_CHARS}) AS instruction",
    f"substr(samples.input, 1, {PREVIEW_CHARS}) AS input",
    f"substr(samples.output, 1, {PREVIEW_CHARS}) AS output",
    "samples.instruction_words", "samples.output_words", "samples.origin", "samples.teacher_model",
    "samples.run_id", "samples.rating", "samples.tags", "samples.updated_at",
)
PAGE_FIELDS = tuple(column.rsplit(" ", 1)[-1].split(".")[-1] for column in PAGE_COLUMNS)


class DuplicateSampleError(StudioError):
    """An edit would make a sample identical to another one."""


def fts_phrase(text: str) -> str:
    """User text as a safe FTS5 query: every word a quoted term, all required.

    Quoting neutralises FTS5 syntax (AND, NEAR, ``-``, ``:``, parentheses); a trailing ``*``
    is kept as a prefix search because people type it on purpose, but only after two or
    more characters: ``a*`` expands to thousands of terms (0.6 s over 1M samples).
    """
    terms = []
    for word in text.split():
        stem = word.rstrip("*")
        prefix = word.endswith("*") and len(stem) >= 2
        word = stem if word.endswith("*") and stem else word
        if not word:
            continue
        terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms)


def fts_subquery(expression: str) -> tuple[str, list]:
    """Ids whose text matches an FTS5 expression, straight from the index."""
    return "SELECT rowid FROM samples_fts WHERE samples_fts MATCH ?", [expression]


def blacklist_match(words: Iterable[str] = DEFAULT_BLACKLIST) -> str:
    """An FTS5 expression: the instruction holds one of ``words`` (each a word or a phrase)."""
    quoted = ['"' + word.strip().replace('"', '""') + '"' for word in words if word.strip()]
    return "instruction : (" + " OR ".join(quoted) + ")"


def run_blacklists(conn: sqlite3.Connection) -> dict[int, tuple[str, ...]]:
    """The generation runs whose filters used another blacklist than the default, with theirs.

    A run's blacklist is what its samples were checked against, so the "blacklisted"
    filter asks each sample about its own run's list (``config`` → ``filters.blacklist``).
    """
    rows = conn.execute(
        "SELECT id, json_extract(config, '$.filters.blacklist') FROM generation_runs"
        " WHERE json_type(config, '$.filters.blacklist') = 'array'"
    )
    default = {w.casefold() for w in DEFAULT_BLACKLIST}
    found: dict[int, tuple[str, ...]] = {}
    for run_id, text in rows:
        words = tuple(w for w in json.loads(text) if isinstance(w, str) and w.strip())
        if {w.strip().casefold() for w in words} != default:
            found[run_id] = words
    return found


def where_sql(conn: sqlite3.Connection, query: SampleQuery) -> tuple[str, list]:
    """``query``'s WHERE clause for code reading with a connection of its own (a worker, a snapshot)."""
    return query.where(blacklists=run_blacklists(conn))


def fetch_steps(cursor: sqlite3.Cursor, message: str = "Reading samples", size: int = 1000) -> Steps[list]:
    """All of a cursor's rows, a thousand at a time with a step between.

    ``fetchall()`` on 52K rows is one C call that keeps the GIL for ~80 ms: the GUI thread
    then misses its frames. Between ``fetchmany`` calls Python can switch threads.
    """
    rows: list = []
    while batch := cursor.fetchmany(size):
        rows.extend(batch)
        yield Progress(len(rows), None, message)
    return rows


def _in_or_null(column: str, values, clauses: list[str], params: list) -> None:
    """``column IN (values)``, where the value 0 stands for NULL (no run, unrated)."""
    present = [v for v in values if v]
    parts = [f"{column} IN ({','.join('?' * len(present))})"] if present else []
    if 0 in values:
        parts.append(f"{column} IS NULL")
    clauses.append("(" + " OR ".join(parts) + ")")
    params.extend(present)


@dataclass
class SampleQuery:
    """Which samples, in what order. Empty fields do not filter."""

    search: str = ""
    statuses: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    run_ids: tuple[int, ...] = ()  # 0 selects samples without a run
    tag: str = ""
    ratings: tuple[int, ...] = ()  # 0 selects unrated samples
    instruction_words: tuple[int | None, int | None] = (None, None)  # inclusive min, max
    output_words: tuple[int | None, int | None] = (None, None)
    blacklisted: bool | None = None  # True: only instructions with a blacklisted word
    duplicates: bool | None = None  # True: only members of a near-duplicate cluster
    # Only the samples a training run scored (its "hardest samples"); the default sort ("id")
    # then becomes that run's loss, worst first. sort="loss" orders by it explicitly.
    hardest_run: int | None = None
    # Only the training samples nearest to an evaluation's lost prompts (eval_nearest, filled by
    # studio.core.evaluation.lost.nearest_samples); the default sort is then their ROUGE-L, nearest first.
    nearest_eval: int | None = None
    sort: str = "id"
    descending: bool = False

    def where(
        self, fts: Callable[[str], tuple[str, list]] = fts_subquery,
        blacklists: Mapping[int, Sequence[str]] | None = None,
    ) -> tuple[str, list]:
        """The WHERE clause (without the keyword; ``1`` when empty) and its parameters.

        ``fts`` turns a MATCH expression into an id subquery (a cache may answer instead).
        ``blacklists``: runs whose blacklist is not the default (:func:`run_blacklists`);
        their samples are checked against their own list, all others against the default.
        """
        clauses: list[str] = []
        params: list = []
        phrase = fts_phrase(self.search)
        if phrase:
            sub, sub_params = fts(phrase)
            clauses.append(f"samples.id IN ({sub})")
            params.extend(sub_params)
        for column, values in (("status", self.statuses), ("origin", self.origins)):
            if values:
                clauses.append(f"samples.{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        if self.run_ids:
            _in_or_null("samples.run_id", self.run_ids, clauses, params)
        if self.tag:
            # tags != '[]' lets SQLite use the partial index of tagged samples; instr() is a
            # cheap pre-filter; json_each makes the match exact.
            clauses.append(
                "samples.tags != '[]' AND instr(samples.tags, ?)"
                " AND EXISTS (SELECT 1 FROM json_each(samples.tags) WHERE value = ?)"
            )
            params.extend((json.dumps(self.tag, ensure_ascii=False), self.tag))
        if self.ratings:
            _in_or_null("samples.rating", self.ratings, clauses, params)
        for column, (low, high) in (("instruction_words", self.instruction_words), ("output_words", self.output_words)):
            if low is not None:
                clauses.append(f"samples.{column} >= ?")
                params.append(low)
            if high is not None:
                clauses.append(f"samples.{column} <= ?")
                params.append(high)
        if self.blacklisted is not None:
            expression, expression_params = _blacklisted(fts, blacklists or {})
            clauses.append(expression if self.blacklisted else f"NOT {expression}")
            params.extend(expression_params)
        if self.duplicates is not None:
            negate = "" if self.duplicates else "NOT "
            clauses.append(f"samples.id {negate}IN (SELECT sample_id FROM duplicate_members)")
        if self.hardest_run is not None:
            clauses.append("samples.id IN (SELECT sample_id FROM training_sample_losses WHERE run_id = ?)")
            params.append(int(self.hardest_run))
        if self.nearest_eval is not None:
            clauses.append("samples.id IN (SELECT sample_id FROM eval_nearest WHERE evaluation_id = ?)")
            params.append(int(self.nearest_eval))
        return (" AND ".join(clauses) or "1"), params

    def order_by(self) -> str:
        if self.hardest_run is not None and (self.sort == LOSS_SORT or (self.sort == "id" and not self.descending)):
            # The run id is an int (never user text in SQL); the primary key answers each lookup.
            loss = ("(SELECT loss FROM training_sample_losses"
                    f" WHERE run_id = {int(self.hardest_run)} AND sample_id = samples.id)")
            direction = "ASC" if self.sort == LOSS_SORT and not self.descending else "DESC"
            return f"{loss} {direction}, samples.id ASC"
        if self.nearest_eval is not None and self.sort == "id" and not self.descending:
            # An int again (never user text); the (evaluation, sample) primary key answers each lookup.
            score = ("(SELECT score FROM eval_nearest"
                     f" WHERE evaluation_id = {int(self.nearest_eval)} AND sample_id = samples.id)")
            return f"{score} DESC, samples.id ASC"
        if self.sort not in SORT_COLUMNS:
            raise ValueError(f"cannot sort by {self.sort!r}; use one of {', '.join(SORT_COLUMNS)}")
        direction = "DESC" if self.descending else "ASC"
        column = SORT_COLUMNS[self.sort]
        tie = "" if self.sort == "id" else f", samples.id {direction}"
        return f"{column} {direction}{tie}"

    # -- saved views -----------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> SampleQuery:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)


def _blacklisted(fts: Callable[[str], tuple[str, list]], blacklists: Mapping[int, Sequence[str]]) -> tuple[str, list]:
    """Samples whose instruction holds a word of their run's blacklist (default: Alpaca's)."""
    sub, params = fts(blacklist_match())
    if not blacklists:
        return f"samples.id IN ({sub})", list(params)
    runs = list(blacklists)
    parts = [f"((samples.run_id IS NULL OR samples.run_id NOT IN ({','.join('?' * len(runs))}))"
             f" AND samples.id IN ({sub}))"]
    values: list = [*runs, *params]
    for run_id in runs:
        words = [w for w in blacklists[run_id] if w.strip()]
        if words:  # an emptied blacklist flags nothing
            run_sub, run_params = fts(blacklist_match(words))
            parts.append(f"(samples.run_id IS ? AND samples.id IN ({run_sub}))")  # IS: never NULL under NOT
            values.extend((run_id, *run_params))
    return "(" + " OR ".join(parts) + ")", values


# -- changes that can be undone ------------------------------------------------------------
TEXT_COLUMNS = ("instruction", "input", "output")
EDITABLE = {"status", "tags", "rating", "note", *TEXT_COLUMNS}


@dataclass
class RowChange:
    """New values for some columns of some rows, with the values they replaced.

    ``apply_steps`` is the work as a step generator (52K rows: a job for the runner);
    ``apply`` drains it. Neither publishes: whoever applies a change notifies ``kinds``.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({SAMPLES})

    description: str
    columns: tuple[str, ...]
    ids: list[int]
    before: list[tuple]
    after: list[tuple]

    def apply_steps(self, conn: sqlite3.Connection, *, undo: bool = False) -> Steps[None]:
        values = self.before if undo else self.after
        sets = ", ".join(f"{c} = ?" for c in self.columns)
        hashed = any(c in TEXT_COLUMNS for c in self.columns)
        total = len(self.ids)
        with transaction(conn):
            for start in range(0, total, CHUNK):
                conn.executemany(
                    f"UPDATE samples SET {sets} WHERE id = ?",
                    [(*row, sample_id) for row, sample_id in
                     zip(values[start:start + CHUNK], self.ids[start:start + CHUNK])],
                )
                yield Progress(min(start + CHUNK, total), total, self.description)
            if hashed:
                _rehash(conn, self.ids)

    def apply(self, conn: sqlite3.Connection, *, undo: bool = False) -> None:
        run_to_end(self.apply_steps(conn, undo=undo))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Deletion:
    """Samples moved to the Trash; undo restores their batch (same ids), redo trashes them again.

    The rows live in the project's trash, not in this object, so the delete can be undone
    from Curate ▸ Trash… (or ``data trash restore``) after the app was closed too.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({SAMPLES, TRASH})

    description: str
    ids: list[int]
    batch_id: int

    def apply_steps(self, conn: sqlite3.Connection, *, undo: bool = False) -> Steps[None]:
        if not self.ids:
            return  # nothing was deleted
        if undo:
            result = yield from restore_steps(conn, self.batch_id)
            self.ids = result.ids  # a renumbered sample is found again by a redo
        else:
            batch = yield from trash_steps(conn, self.ids, self.description)
            self.batch_id = batch.id

    def apply(self, conn: sqlite3.Connection, *, undo: bool = False) -> None:
        run_to_end(self.apply_steps(conn, undo=undo))

    def __len__(self) -> int:
        return len(self.ids)


Change = RowChange | Deletion


def _rehash(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    rows = _select_in(conn, "id, instruction, input, output", ids)
    try:
        conn.executemany(
            "UPDATE samples SET content_hash = ? WHERE id = ?",
            [(content_hash(r["instruction"], r["input"], r["output"]), r["id"]) for r in rows],
        )
    except sqlite3.IntegrityError:
        raise DuplicateSampleError("That text is identical to another sample's.") from None


def _select_in(conn: sqlite3.Connection, columns: str, ids: Sequence[int]) -> list[sqlite3.Row]:
    """Rows by id, in chunks below SQLite's parameter limit, in the order of ``ids``."""
    found: dict[int, sqlite3.Row] = {}
    for start in range(0, len(ids), 900):
        chunk = list(ids[start:start + 900])
        for row in conn.execute(f"SELECT {columns} FROM samples WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            found[row[0]] = row
    return [found[i] for i in ids if i in found]


# -- the query layer -----------------------------------------------------------------------
@dataclass
class Cluster:
    number: int
    sample_ids: list[int] = field(default_factory=list)


class CurationRepository:
    """Reads and changes samples for review. One per connection (SQLite is per thread).

    Full-text matches are kept in temporary tables while the data is unchanged: a table
    then counts and pages a search without asking FTS5 again for every page (a common
    word over 1M samples costs 100+ ms per FTS5 pass).
    """

    MAX_CACHED_MATCHES = 4

    def __init__(self, conn: sqlite3.Connection, changes: ChangeFeed | None = None):
        self.conn = conn
        self.changes = changes or ChangeFeed()
        self._matches: dict[str, str] = {}  # MATCH expression -> temp table
        self._matches_state: tuple[int, int] | None = None

    def data_state(self) -> tuple[int, int]:
        """Changes whenever the data may have: a view that saw this state has nothing new to show.

        data_version moves when another connection commits; total_changes when this one writes.
        """
        return self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes

    def _cached_fts(self, expression: str) -> tuple[str, list]:
        # Never evicts: one WHERE clause may name several tables (a search, and the
        # blacklists of several runs); _where evicts before it starts compiling.
        table = self._matches.get(expression)
        if table is None:
            table = f"studio_matches_{len(self._matches)}"
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
            self.conn.execute(f"CREATE TEMP TABLE {table} (id INTEGER PRIMARY KEY)")
            self.conn.execute(f"INSERT INTO temp.{table} SELECT rowid FROM samples_fts WHERE samples_fts MATCH ?", (expression,))
            self._matches[expression] = table
        self._matches_state = self.data_state()  # after our own writes to the temp table
        return f"SELECT id FROM temp.{table}", []

    def _where(self, query: SampleQuery) -> tuple[str, list]:
        blacklists = run_blacklists(self.conn) if query.blacklisted is not None else None
        if self.conn.in_transaction:  # inside someone's write: no temp-table side effects
            return query.where(blacklists=blacklists)
        if self._matches_state != self.data_state() or len(self._matches) >= self.MAX_CACHED_MATCHES:
            for table in self._matches.values():
                self.conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
            self._matches.clear()
        return query.where(self._cached_fts, blacklists)

    # reading
    def count(self, query: SampleQuery, *, cap: int | None = None) -> int:
        """How many samples match; with ``cap``, stop counting there (a quick "10,000+")."""
        phrase = fts_phrase(query.search)
        if phrase and replace(query, sort="id", descending=False) == SampleQuery(search=query.search):
            # A search alone: FTS5 counts its own doclist (5 ms for 74K of 1M hits) faster
            # than any lookup of those ids in samples (65 ms).
            total = self.conn.execute("SELECT COUNT(*) FROM samples_fts WHERE samples_fts MATCH ?", (phrase,)).fetchone()[0]
            return total if cap is None else min(total, cap)
        where, params = self._where(query)
        if cap is None:
            return self.conn.execute(f"SELECT COUNT(*) FROM samples WHERE {where}", params).fetchone()[0]
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM samples WHERE {where} LIMIT ?)"
        return self.conn.execute(sql, [*params, cap]).fetchone()[0]

    def page(self, query: SampleQuery, offset: int, limit: int) -> list[tuple]:
        """Rows for the table, ``PAGE_FIELDS`` in order, text cut to a preview.

        Two steps: the sort picks ids only, then the page's rows are read by id. When the
        sort cannot follow an index, SQLite's sorter then holds (key, id) pairs instead of
        whole rows with their text: 17K matches sort in 1 ms instead of 15.
        """
        where, params = self._where(query)
        sql = f"SELECT samples.id FROM samples WHERE {where} ORDER BY {query.order_by()} LIMIT ? OFFSET ?"
        ids = [row[0] for row in self.conn.execute(sql, [*params, limit, offset])]
        if not ids:
            return []
        cursor = self.conn.execute(
            f"SELECT {', '.join(PAGE_COLUMNS)} FROM samples WHERE id IN ({','.join('?' * len(ids))})", ids
        )
        cursor.row_factory = None  # plain tuples: the table model indexes them by position
        by_id = {row[0]: row for row in cursor}
        return [by_id[i] for i in ids if i in by_id]

    def ids(self, query: SampleQuery) -> list[int]:
        where, params = self._where(query)
        sql = f"SELECT samples.id FROM samples WHERE {where} ORDER BY {query.order_by()}"
        return [row[0] for row in self.conn.execute(sql, params)]

    def counts_by(self, column: str, query: SampleQuery | None = None) -> dict:
        """Counts per status, origin or run among the matching samples (for the bar charts)."""
        if column not in {"status", "origin", "run_id", "rating"}:
            raise ValueError(f"cannot count by {column!r}")
        where, params = self._where(query or SampleQuery())
        rows = self.conn.execute(f"SELECT {column}, COUNT(*) FROM samples WHERE {where} GROUP BY {column}", params)
        return {key: count for key, count in rows}

    def lengths(self, column: str, query: SampleQuery | None = None) -> list[int]:
        """Word lengths of the matching samples (for histograms)."""
        if column not in {"instruction_words", "output_words"}:
            raise ValueError(f"no length column {column!r}")
        where, params = self._where(query or SampleQuery())
        return [row[0] for row in self.conn.execute(f"SELECT {column} FROM samples WHERE {where}", params)]

    def shape_steps(self, query: SampleQuery | None = None) -> Steps[dict]:
        """Everything the Data shape tab charts: counts by status, origin, run; word lengths."""
        query = query or SampleQuery()
        shape: dict = {}
        for column in ("status", "origin", "run_id"):
            shape[column] = self.counts_by(column, query)
            yield Progress(len(shape), 5, "Counting")
        for column in ("instruction_words", "output_words"):
            shape[column] = self.lengths(column, query)
            yield Progress(len(shape), 5, "Counting")
        return shape

    def instructions(self, query: SampleQuery | None = None) -> list[str]:
        where, params = self._where(query or SampleQuery())
        return [row[0] for row in self.conn.execute(f"SELECT instruction FROM samples WHERE {where}", params)]

    def tags(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT value FROM samples, json_each(samples.tags) WHERE samples.tags != '[]' ORDER BY value"
        )
        return [row[0] for row in rows]

    def run_ids(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT run_id FROM samples WHERE run_id IS NOT NULL ORDER BY 1")]

    # changing
    # Every bulk change is a step generator (``*_steps``) for the job runner, with a plain
    # twin that drains it. Both commit before they publish and return the committed change.
    def _change_steps(self, description: str, columns: tuple[str, ...], ids: Sequence[int],
                      new_values) -> Steps[RowChange]:
        """Read the old values, compute new ones per row (``new_values(row) -> tuple``), write.

        Read and write share one transaction, so no other writer slips in between.
        """
        ids = list(dict.fromkeys(ids))
        wanted = ", ".join(("id", *columns, "updated_at"))
        total = len(ids)
        with transaction(self.conn):
            old: list[sqlite3.Row] = []
            for start in range(0, total, CHUNK):
                old.extend(_select_in(self.conn, wanted, ids[start:start + CHUNK]))
                yield Progress(0, total, f"Reading {count_noun(min(start + CHUNK, total), 'sample')}")
            now = time.time()
            change = RowChange(
                description, (*columns, "updated_at"), [r["id"] for r in old],
                [tuple(r)[1:] for r in old], [(*new_values(r), now) for r in old],
            )
            yield from change.apply_steps(self.conn)
        self.changes.publish(change.kinds)
        return change

    def _change(self, description: str, columns: tuple[str, ...], ids: Sequence[int], new_values) -> RowChange:
        return run_to_end(self._change_steps(description, columns, ids, new_values))

    def set_status_steps(self, ids: Sequence[int], status: Status | str) -> Steps[RowChange]:
        value = Status(status).value
        return self._change_steps(f"mark {count_noun(len(ids), 'sample')} {value}", ("status",), ids,
                                  lambda r: (value,))

    def set_status(self, ids: Sequence[int], status: Status | str) -> RowChange:
        return run_to_end(self.set_status_steps(ids, status))

    def add_tag_steps(self, ids: Sequence[int], tag: str) -> Steps[RowChange]:
        def added(row: sqlite3.Row) -> tuple:
            tags = json.loads(row["tags"])
            return (json.dumps(tags if tag in tags else [*tags, tag], ensure_ascii=False),)

        return self._change_steps(f"tag {count_noun(len(ids), 'sample')} '{tag}'", ("tags",), ids, added)

    def add_tag(self, ids: Sequence[int], tag: str) -> RowChange:
        return run_to_end(self.add_tag_steps(ids, tag))

    def remove_tag_steps(self, ids: Sequence[int], tag: str) -> Steps[RowChange]:
        def removed(row: sqlite3.Row) -> tuple:
            return (json.dumps([t for t in json.loads(row["tags"]) if t != tag], ensure_ascii=False),)

        return self._change_steps(f"untag {count_noun(len(ids), 'sample')} '{tag}'", ("tags",), ids, removed)

    def remove_tag(self, ids: Sequence[int], tag: str) -> RowChange:
        return run_to_end(self.remove_tag_steps(ids, tag))

    def set_tags(self, sample_id: int, tags: Iterable[str]) -> RowChange:
        value = json.dumps(list(dict.fromkeys(t.strip() for t in tags if t.strip())), ensure_ascii=False)
        return self._change("edit tags", ("tags",), [sample_id], lambda r: (value,))

    def set_rating(self, ids: Sequence[int], rating: int | None) -> RowChange:
        if rating is not None and not 1 <= rating <= 5:
            raise ValueError("a rating is 1 to 5 (or none)")
        return self._change(f"rate {count_noun(len(ids), 'sample')} {rating or 'none'}", ("rating",), ids,
                            lambda r: (rating,))

    def set_note(self, sample_id: int, note: str) -> RowChange:
        return self._change("edit note", ("note",), [sample_id], lambda r: (note,))

    def edit_text(self, sample_id: int, instruction: str, input: str, output: str) -> RowChange:
        """New text for one sample; refuses text identical to another sample's."""
        if not instruction.strip():
            raise StudioError("The instruction cannot be empty.")
        digest = content_hash(instruction, input, output)
        other = self.conn.execute(
            "SELECT id FROM samples WHERE content_hash = ? AND id != ?", (digest, sample_id)
        ).fetchone()
        if other is not None:
            raise DuplicateSampleError(f"This text is identical to sample #{other[0]}; edit it or reject one of them.")
        return self._change("edit text", TEXT_COLUMNS, [sample_id], lambda r: (instruction, input, output))

    def delete_steps(self, ids: Sequence[int]) -> Steps[Deletion]:
        """Move the samples to the Trash (one batch); the Deletion's undo restores them."""
        ids = list(dict.fromkeys(ids))
        description = f"delete {count_noun(len(ids), 'sample')}"
        if not ids:
            return Deletion(description, [], 0)
        batch = yield from trash_steps(self.conn, ids, description)
        if not batch.sample_count:
            return Deletion(description, [], 0)
        self.changes.publish(SAMPLES, TRASH)
        return Deletion(description, ids, batch.id)

    def delete(self, ids: Sequence[int]) -> Deletion:
        return run_to_end(self.delete_steps(ids))

    def apply_steps(self, change: Change, *, undo: bool = False) -> Steps[Change]:
        """Undo or redo ``change`` on this connection, then publish its kinds (a job's body)."""
        yield from change.apply_steps(self.conn, undo=undo)
        self.changes.publish(change.kinds)
        return change

    # duplicates
    def find_duplicates_steps(self, query: SampleQuery, threshold: float = 0.7) -> Steps[int]:
        """Cluster the matching instructions and remember the clusters; returns how many."""
        clusters = yield from find_clusters_steps(self.conn, query, threshold)
        return self.store_clusters(clusters)

    def store_clusters(self, clusters: Iterable[Sequence[int]]) -> int:
        """Replace the remembered near-duplicate clusters (only those of two or more)."""
        rows = [(sample_id, number) for number, members in enumerate(c for c in clusters if len(c) > 1)
                for sample_id in members]
        with transaction(self.conn):
            self.conn.execute("DELETE FROM duplicate_members")
            self.conn.executemany("INSERT OR IGNORE INTO duplicate_members (sample_id, cluster) VALUES (?, ?)", rows)
        self.changes.publish(SAMPLES)
        return len({number for _, number in rows})

    def clusters(self) -> list[Cluster]:
        """Remembered clusters, largest first (members deleted since drop out)."""
        by_number: dict[int, Cluster] = {}
        for number, sample_id in self.conn.execute("SELECT cluster, sample_id FROM duplicate_members ORDER BY cluster, sample_id"):
            by_number.setdefault(number, Cluster(number)).sample_ids.append(sample_id)
        found = [c for c in by_number.values() if len(c.sample_ids) > 1]
        return sorted(found, key=lambda c: (-len(c.sample_ids), c.number))

    def texts(self, ids: Sequence[int]) -> dict[int, dict]:
        """Status and full text of some samples (the Duplicates tab's side-by-side view)."""
        rows = _select_in(self.conn, "id, status, instruction, input, output", list(ids))
        return {row["id"]: dict(row) for row in rows}

    def keep_one(self, cluster: Sequence[int], keep: int) -> RowChange:
        """Accept ``keep`` and reject the rest of its cluster, as one change."""
        if keep not in cluster:
            raise ValueError(f"sample {keep} is not in that cluster")
        return self._change(
            f"keep #{keep}, reject {len(cluster) - 1}", ("status",), list(cluster),
            lambda r: (Status.ACCEPTED.value if r["id"] == keep else Status.REJECTED.value,),
        )

    # saved views
    def save_view(self, name: str, query: SampleQuery) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO saved_views (name, query, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET query = excluded.query",
                (name, query.to_json(), time.time()),
            )
        self.changes.publish(VIEWS)

    def views(self) -> dict[str, SampleQuery]:
        rows = self.conn.execute("SELECT name, query FROM saved_views ORDER BY name")
        return {name: SampleQuery.from_json(text) for name, text in rows}

    def delete_view(self, name: str) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM saved_views WHERE name = ?", (name,))
        self.changes.publish(VIEWS)


def find_clusters_steps(conn: sqlite3.Connection, query: SampleQuery | None = None,
                        threshold: float = 0.7) -> Steps[list[list[int]]]:
    """See :func:`studio.core.clustering.find_clusters_steps` (imported when used: it needs numpy)."""
    from studio.core import clustering

    return (yield from clustering.find_clusters_steps(conn, query, threshold))


def find_clusters(conn: sqlite3.Connection, query: SampleQuery | None = None, threshold: float = 0.7) -> list[list[int]]:
    return run_to_end(find_clusters_steps(conn, query, threshold))
