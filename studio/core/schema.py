"""The project database schema and its migrations.

The schema version lives in SQLite's ``PRAGMA user_version``. Each migration moves the
database up one version inside one transaction; before migrating a database that already
holds data, a copy is saved beside it (``project.sqlite.v<N>.bak``) so a failed or unwanted
upgrade can be undone by hand.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import ProjectError


@dataclass(frozen=True)
class Migration:
    """One step up. ``sql`` runs as a script; ``apply`` (optional) then runs Python in the same transaction."""

    version: int
    description: str
    sql: str
    apply: Callable[[sqlite3.Connection], None] | None = None


V1_INITIAL = """
        CREATE TABLE seed_tasks (
            id INTEGER PRIMARY KEY,
            ext_id TEXT,                              -- id in the file it came from
            name TEXT NOT NULL DEFAULT '',
            instruction TEXT NOT NULL DEFAULT '',
            instances TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(instances)),
            is_classification INTEGER NOT NULL DEFAULT 0,
            tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
            position REAL NOT NULL,                   -- display order; REAL so inserts need no renumbering
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );

        CREATE TABLE generation_runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            mode TEXT NOT NULL DEFAULT 'alpaca',
            teacher_model TEXT,
            base_url TEXT,
            config TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
            prompt_template TEXT,
            status TEXT NOT NULL DEFAULT 'created',
            requests INTEGER NOT NULL DEFAULT 0,
            kept INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL
        );

        CREATE TABLE samples (
            id INTEGER PRIMARY KEY,
            instruction TEXT NOT NULL,
            input TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'rejected')),
            origin TEXT NOT NULL DEFAULT 'manual'
                CHECK (origin IN ('seed', 'generated', 'imported', 'manual')),
            run_id INTEGER REFERENCES generation_runs(id) ON DELETE SET NULL,
            seed_ids TEXT NOT NULL DEFAULT '[]',      -- seed tasks shown in the prompt that produced it
            teacher_model TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost REAL,
            filter_verdicts TEXT NOT NULL DEFAULT '{}',
            rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
            tags TEXT NOT NULL DEFAULT '[]',
            note TEXT NOT NULL DEFAULT '',
            source TEXT,                              -- import file, or generation request key
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            content_hash TEXT NOT NULL UNIQUE         -- exact duplicates are never stored twice
        );
        CREATE INDEX samples_by_status ON samples(status);
        CREATE INDEX samples_by_run ON samples(run_id);
        CREATE INDEX samples_by_origin ON samples(origin);

        CREATE TABLE snapshots (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            content_hash TEXT NOT NULL,
            sample_count INTEGER NOT NULL,
            filter TEXT NOT NULL DEFAULT '{}',
            path TEXT NOT NULL,                       -- snapshots/<id>.jsonl, relative to the project
            note TEXT NOT NULL DEFAULT ''
        );
        -- Rows are copied, not referenced: later edits to samples never change a snapshot.
        CREATE TABLE snapshot_items (
            snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            sample_id INTEGER,
            instruction TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            PRIMARY KEY (snapshot_id, position)
        ) WITHOUT ROWID;

        CREATE TABLE training_runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            snapshot_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
            base_model TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
            status TEXT NOT NULL DEFAULT 'created',
            run_dir TEXT NOT NULL,                    -- runs/<id>, relative to the project
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL
        );

        CREATE TABLE comparisons (
            id INTEGER PRIMARY KEY,
            prompt TEXT NOT NULL,
            input TEXT NOT NULL DEFAULT '',
            system_a TEXT NOT NULL,
            system_b TEXT NOT NULL,
            output_a TEXT,
            output_b TEXT,
            shown_order TEXT NOT NULL DEFAULT 'ab' CHECK (shown_order IN ('ab', 'ba')),
            verdict TEXT CHECK (verdict IS NULL OR verdict IN ('a', 'b', 'tie', 'both_bad')),
            judge TEXT,
            created_at REAL NOT NULL,
            decided_at REAL
        );
"""


# Generation bookkeeping. A request row is written (pending, with its prompt) before it is
# sent; its samples, its rejected candidates and its 'done' mark commit in one transaction,
# so a run killed at any instant resumes without re-paying for finished requests.
V2_GENERATION = """
        CREATE TABLE generation_requests (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES generation_runs(id) ON DELETE CASCADE,
            request_key TEXT NOT NULL UNIQUE,         -- deterministic: run id + request index
            request_index INTEGER NOT NULL,
            stage TEXT NOT NULL DEFAULT 'generate',   -- self-instruct stages reuse the table
            prompt TEXT NOT NULL,
            seed_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(seed_ids)),
            payload TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),  -- what a later stage needs
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
            response TEXT,                            -- raw teacher text, kept for parse failures
            finish_reason TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            kept INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            created_at REAL NOT NULL,
            finished_at REAL,
            UNIQUE (run_id, request_index, stage)
        );
        CREATE INDEX generation_requests_by_status ON generation_requests(run_id, status);

        CREATE TABLE rejected_candidates (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES generation_runs(id) ON DELETE CASCADE,
            request_key TEXT NOT NULL,
            instruction TEXT NOT NULL DEFAULT '',
            input TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL,                     -- near_duplicate, blacklist, too_short, ...
            detail TEXT NOT NULL DEFAULT '',          -- e.g. the blacklisted word, or the raw block
            nearest_instruction TEXT,
            score REAL,
            restored INTEGER NOT NULL DEFAULT 0,
            sample_id INTEGER REFERENCES samples(id) ON DELETE SET NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX rejected_by_run_reason ON rejected_candidates(run_id, reason);
"""


# CurationRepository. Word lengths are plain columns: the insert path fills them from Python (cheapest
# for bulk imports), a trigger fills them for any other writer, and edits recompute them.
# (Virtual generated columns were tried: every filtered sort then called the Python word
# counter once per matching row, 53 ms per 17K rows.) ``studio_words`` is registered by
# db.connect. The FTS5 index borrows its text from ``samples`` (external content), so its
# triggers must hand it the old text on delete and update.
V3_CURATION = """
        ALTER TABLE samples ADD COLUMN instruction_words INTEGER;
        ALTER TABLE samples ADD COLUMN output_words INTEGER;
        UPDATE samples SET instruction_words = studio_words(instruction), output_words = studio_words(output);
        CREATE TRIGGER samples_words_insert AFTER INSERT ON samples
            WHEN new.instruction_words IS NULL OR new.output_words IS NULL BEGIN
            UPDATE samples SET instruction_words = studio_words(new.instruction),
                output_words = studio_words(new.output) WHERE id = new.id;
        END;
        CREATE TRIGGER samples_words_update AFTER UPDATE OF instruction, output ON samples BEGIN
            UPDATE samples SET instruction_words = studio_words(new.instruction),
                output_words = studio_words(new.output) WHERE id = new.id;
        END;
        CREATE INDEX samples_by_instruction_words ON samples(instruction_words);
        CREATE INDEX samples_by_output_words ON samples(output_words);
        CREATE INDEX samples_by_updated ON samples(updated_at);
        CREATE INDEX samples_by_rating ON samples(rating);
        -- Most samples carry no tags: tag lists and tag filters read only the tagged ones.
        CREATE INDEX samples_tagged ON samples(id) WHERE tags != '[]';

        CREATE VIRTUAL TABLE samples_fts USING fts5(
            instruction, input, output, content='samples', content_rowid='id'
        );
        INSERT INTO samples_fts(samples_fts) VALUES ('rebuild');
        CREATE TRIGGER samples_fts_insert AFTER INSERT ON samples BEGIN
            INSERT INTO samples_fts(rowid, instruction, input, output)
            VALUES (new.id, new.instruction, new.input, new.output);
        END;
        CREATE TRIGGER samples_fts_delete AFTER DELETE ON samples BEGIN
            INSERT INTO samples_fts(samples_fts, rowid, instruction, input, output)
            VALUES ('delete', old.id, old.instruction, old.input, old.output);
        END;
        CREATE TRIGGER samples_fts_update AFTER UPDATE OF instruction, input, output ON samples BEGIN
            INSERT INTO samples_fts(samples_fts, rowid, instruction, input, output)
            VALUES ('delete', old.id, old.instruction, old.input, old.output);
            INSERT INTO samples_fts(rowid, instruction, input, output)
            VALUES (new.id, new.instruction, new.input, new.output);
        END;

        -- Result of the last near-duplicate search; cleared and refilled as a whole.
        CREATE TABLE duplicate_members (
            sample_id INTEGER PRIMARY KEY REFERENCES samples(id) ON DELETE CASCADE,
            cluster INTEGER NOT NULL
        );
        CREATE INDEX duplicate_members_by_cluster ON duplicate_members(cluster);

        CREATE TABLE saved_views (
            name TEXT PRIMARY KEY,
            query TEXT NOT NULL CHECK (json_valid(query)),
            created_at REAL NOT NULL
        );

        ANALYZE;

        -- A snapshot is frozen: its rows can be deleted with it, never changed.
        CREATE TRIGGER snapshot_items_frozen BEFORE UPDATE ON snapshot_items BEGIN
            SELECT RAISE(ABORT, 'snapshots are immutable');
        END;
        CREATE TRIGGER snapshots_frozen BEFORE UPDATE OF content_hash, sample_count, path ON snapshots BEGIN
            SELECT RAISE(ABORT, 'snapshots are immutable');
        END;
"""


# FTS5 buffers new terms in memory and writes a segment each time the buffer passes
# 'hashsize' (default 1 MiB), then merges those segments. A 4 MiB buffer writes a quarter
# as many: indexing 52K imported samples takes ~0.57 s instead of ~0.70 s. The setting is
# stored in the index's own config table, so every connection uses it.
V4_SEARCH_BUFFER = """
        INSERT INTO samples_fts(samples_fts, rank) VALUES ('hashsize', 4194304);
"""


# The trash: a delete moves whole sample rows here in the same transaction, so an undo
# (or Curate > Trash..., or `data trash restore`) puts them back with their ids, also
# after a restart. Plain columns without constraints: the same text may be trashed twice.
# A migration that adds a column to samples adds it here too (tests/test_store.py checks).
# rejected_candidates.sample_id gets an index: every deleted sample looks its rows up (the
# ON DELETE SET NULL), a full scan per deleted row without one.
V5_TRASH = """
        CREATE TABLE trash_batches (
            id INTEGER PRIMARY KEY,
            description TEXT NOT NULL,
            created_at REAL NOT NULL,
            sample_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE trashed_samples (
            entry INTEGER PRIMARY KEY,                -- consecutive within a batch: restores go in ranges
            batch_id INTEGER NOT NULL REFERENCES trash_batches(id) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            instruction TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            status TEXT NOT NULL,
            origin TEXT NOT NULL,
            run_id INTEGER,
            seed_ids TEXT NOT NULL,
            teacher_model TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost REAL,
            filter_verdicts TEXT NOT NULL,
            rating INTEGER,
            tags TEXT NOT NULL,
            note TEXT NOT NULL,
            source TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            content_hash TEXT NOT NULL,
            instruction_words INTEGER,
            output_words INTEGER
        );
        CREATE INDEX trashed_by_batch ON trashed_samples(batch_id);
        CREATE INDEX rejected_by_sample ON rejected_candidates(sample_id);
"""


# Training runs (issue 9): the row follows its job through the events it writes. events_offset
# is how far runs/<id>/events.jsonl has been read (a tail resumes there, never re-reads the
# file); last_step/max_steps/error are what the run history shows without opening the file.
# Names are unique when given, so `train stop NAME` finds one run. Per-sample losses under a
# run's adapter ("hardest samples") have no foreign key to samples: a trashed sample keeps its
# id and its score comes back with it.
V6_TRAINING = """
        ALTER TABLE training_runs ADD COLUMN error TEXT NOT NULL DEFAULT '';
        ALTER TABLE training_runs ADD COLUMN last_step INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE training_runs ADD COLUMN max_steps INTEGER;
        ALTER TABLE training_runs ADD COLUMN events_offset INTEGER NOT NULL DEFAULT 0;
        CREATE UNIQUE INDEX training_runs_by_name ON training_runs(name) WHERE name != '';
        CREATE INDEX training_runs_by_snapshot ON training_runs(snapshot_id);
        CREATE TABLE training_sample_losses (
            run_id INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
            sample_id INTEGER NOT NULL,
            loss REAL NOT NULL,
            rank INTEGER NOT NULL,                  -- 1 = the highest loss
            PRIMARY KEY (run_id, sample_id)
        ) WITHOUT ROWID;
        CREATE INDEX training_losses_by_rank ON training_sample_losses(run_id, rank);
"""


# Chat conversations (issue 10). A conversation is read and written whole (its columns and
# turns are one JSON document in ``data``), so a save is one row and can never be half written;
# title and mode are plain columns so the list needs no JSON parsing.
V7_CONVERSATIONS = """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            mode TEXT NOT NULL,
            data TEXT NOT NULL CHECK (json_valid(data)),
            created_at REAL,
            updated_at REAL
        );
        CREATE INDEX conversations_by_updated ON conversations(updated_at);
"""


# Evaluation (issue 11). Prompt sets are evaluation-only: the Generate and Train paths check
# against their instruction + input through the wall's own loose identity (guard.record_hash:
# words, casefolded); prompt_hash is the exact text (a set's duplicates, the answer cache). A prompt sent to the
# seeds leaves its set (released_at/released_to) instead of being deleted, so old results still
# name it. Answers are a cache keyed by (system, prompt, settings): a rerun or a new judge never
# pays for the same answer twice; judgments are a cache keyed by (judge, first answer, second
# answer), one row per order. An evaluation records its systems, prompts and judge as JSON so it
# can be repeated. Human votes record the left/right order they were shown in. The V1
# ``comparisons`` table never held a row; it is replaced by these.
V8_EVALUATION = """
        DROP TABLE comparisons;
        CREATE TABLE eval_prompt_sets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL DEFAULT '',          -- the imported file, or 'snapshot:<id>'
            content_hash TEXT NOT NULL,               -- of its active prompts, in order
            meta TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
            created_at REAL NOT NULL
        );
        CREATE TABLE eval_prompts (
            id INTEGER PRIMARY KEY,
            set_id INTEGER NOT NULL REFERENCES eval_prompt_sets(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            ext_id TEXT,
            instruction TEXT NOT NULL,
            input TEXT NOT NULL DEFAULT '',
            reference TEXT NOT NULL DEFAULT '',       -- a reference answer when the file has one
            category TEXT NOT NULL DEFAULT '',
            messages TEXT CHECK (messages IS NULL OR json_valid(messages)),  -- chat prompts: the messages
            prompt_hash TEXT NOT NULL,
            released_at REAL,                         -- left the set (e.g. sent to the seeds)
            released_to TEXT,
            UNIQUE (set_id, prompt_hash)
        );
        CREATE INDEX eval_prompts_by_hash ON eval_prompts(prompt_hash);
        CREATE INDEX eval_prompts_by_set ON eval_prompts(set_id, position);

        CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            set_id INTEGER REFERENCES eval_prompt_sets(id) ON DELETE SET NULL,
            set_hash TEXT NOT NULL,
            prompt_ids TEXT NOT NULL CHECK (json_valid(prompt_ids)),
            systems TEXT NOT NULL CHECK (json_valid(systems)),
            judge TEXT CHECK (judge IS NULL OR json_valid(judge)),
            settings TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
            status TEXT NOT NULL DEFAULT 'created',
            error TEXT NOT NULL DEFAULT '',
            cost REAL NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL
        );

        CREATE TABLE eval_answers (
            id INTEGER PRIMARY KEY,
            system_key TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            settings_hash TEXT NOT NULL,
            text TEXT NOT NULL,
            finish_reason TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            latency_s REAL,
            attempts INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            UNIQUE (system_key, prompt_hash, settings_hash)
        );

        CREATE TABLE eval_judgments (
            id INTEGER PRIMARY KEY,
            judge_key TEXT NOT NULL,
            first_answer INTEGER NOT NULL REFERENCES eval_answers(id) ON DELETE CASCADE,
            second_answer INTEGER NOT NULL REFERENCES eval_answers(id) ON DELETE CASCADE,
            verdict TEXT NOT NULL CHECK (verdict IN ('first', 'second', 'tie', 'unreadable')),
            raw TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            latency_s REAL,
            created_at REAL NOT NULL,
            UNIQUE (judge_key, first_answer, second_answer)
        );

        CREATE TABLE eval_votes (
            id INTEGER PRIMARY KEY,
            evaluation_id INTEGER NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
            prompt_id INTEGER NOT NULL,
            system_a INTEGER NOT NULL,                -- indexes into the evaluation's systems
            system_b INTEGER NOT NULL,
            left_is_a INTEGER NOT NULL,               -- the random order it was shown in
            verdict TEXT CHECK (verdict IS NULL OR verdict IN ('a', 'b', 'tie', 'both_bad', 'skip')),
            decided_at REAL,
            UNIQUE (evaluation_id, prompt_id, system_a, system_b)
        );

        -- Lineage: the seed tasks made from an evaluation's lost prompts.
        CREATE TABLE seed_origins (
            seed_id INTEGER PRIMARY KEY REFERENCES seed_tasks(id) ON DELETE CASCADE,
            evaluation_id INTEGER,
            prompt_id INTEGER,
            system TEXT NOT NULL DEFAULT '',          -- the system whose answer became the output
            created_at REAL NOT NULL
        );
        -- The training samples nearest to an evaluation's lost prompts (Curate's filter).
        CREATE TABLE eval_nearest (
            evaluation_id INTEGER NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
            sample_id INTEGER NOT NULL,
            prompt_id INTEGER NOT NULL,
            score REAL NOT NULL,
            PRIMARY KEY (evaluation_id, sample_id)
        ) WITHOUT ROWID;
"""


# Generation backends that keep work at a provider (a Batch API job, hours long). A job row is
# written before anything is uploaded (``local_key`` travels as the file's name and the job's
# metadata, so a job whose ids were never committed can be found again at the provider); its
# file id and job id are committed the moment they are known; ``backend_job_requests`` says
# which request is in which job, so a resumed run never sends a request twice.
V9_BACKEND_JOBS = """
        ALTER TABLE generation_runs ADD COLUMN backend_status TEXT
            CHECK (backend_status IS NULL OR json_valid(backend_status));  -- {"text": ..., "state": {...}}
        CREATE TABLE backend_jobs (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES generation_runs(id) ON DELETE CASCADE,
            backend TEXT NOT NULL,                    -- the GENERATION_BACKENDS key, e.g. 'openai-batch'
            local_key TEXT NOT NULL UNIQUE,           -- our name for it, known before the provider's ids
            file_id TEXT,                             -- the uploaded input file
            job_id TEXT,                              -- the provider's job (batch) id
            status TEXT NOT NULL DEFAULT 'preparing', -- preparing, uploaded, then the provider's status; collected
            output_file_id TEXT,
            error_file_id TEXT,
            counts TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(counts)),   -- total, completed, failed
            detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),   -- backend-specific
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE INDEX backend_jobs_by_run ON backend_jobs(run_id, status);
        CREATE TABLE backend_job_requests (
            job INTEGER NOT NULL REFERENCES backend_jobs(id) ON DELETE CASCADE,
            request_key TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'sent',      -- sent, answered, failed (retried elsewhere or given up)
            error TEXT,
            PRIMARY KEY (job, request_key)
        ) WITHOUT ROWID;
        CREATE INDEX backend_job_requests_by_key ON backend_job_requests(request_key);
"""


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema: seeds, samples, runs, snapshots, training runs, comparisons", V1_INITIAL),
    Migration(2, "generation requests and rejected candidates", V2_GENERATION),
    Migration(3, "curation: full-text search, word lengths, duplicates, saved views, frozen snapshots", V3_CURATION),
    Migration(4, "search index: a 4 MiB write buffer for bulk imports", V4_SEARCH_BUFFER),
    Migration(5, "a trash for deleted samples that survives restarts", V5_TRASH),
    Migration(6, "training runs: progress, errors, event offsets; per-sample losses", V6_TRAINING),
    Migration(7, "saved chat conversations", V7_CONVERSATIONS),
    Migration(8, "evaluation: prompt sets, answers, judgments, votes, seed lineage", V8_EVALUATION),
    Migration(9, "generation backends: provider jobs (Batch API) and the requests they hold", V9_BACKEND_JOBS),
]
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, db_path: Path | None = None) -> list[int]:
    """Bring the database to ``LATEST_VERSION``; returns the versions applied.

    A database from a newer Distill Studio is refused rather than touched.
    """
    version = current_version(conn)
    if version > LATEST_VERSION:
        raise ProjectError(
            f"This project was written by a newer Distill Studio (schema {version}; "
            f"this version knows up to {LATEST_VERSION}). Update Distill Studio to open it."
        )
    pending = [m for m in MIGRATIONS if m.version > version]
    if pending and version > 0 and db_path is not None:
        backup_path = db_path.with_name(f"{db_path.name}.v{version}.bak")
        with sqlite3.connect(backup_path) as backup:
            conn.backup(backup)
    applied = []
    for migration in pending:
        # executescript() commits whatever is open before it runs, so the script carries
        # its own BEGIN; the version bump and COMMIT come after the optional Python step.
        try:
            conn.executescript("BEGIN IMMEDIATE;\n" + migration.sql)
            if migration.apply is not None:
                migration.apply(conn)
            conn.execute(f"PRAGMA user_version = {migration.version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied
