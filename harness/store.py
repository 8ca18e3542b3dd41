"""The results database: every run kept, one row per job x metric, each job committed atomically.

A job that finished is in the database with all its metrics or not at all, so killing the process loses
nothing that was finished, and a rerun skips jobs whose key already has an ok row. Every run is kept
(``runs``); ``frame()`` shows the latest row of each job, ``frame(history=True)`` all of them.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from harness.metrics import Metric, metric_info

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at TEXT, finished_at TEXT, suite TEXT, suite_path TEXT, suite_hash TEXT,
    git_commit TEXT, harness_version TEXT, world_size INTEGER, argv TEXT, shard TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_key TEXT NOT NULL, run_id TEXT REFERENCES runs(run_id),
    suite TEXT NOT NULL, suite_version TEXT, suite_hash TEXT,
    model TEXT NOT NULL, family TEXT, arch TEXT, model_tag TEXT, weights TEXT, weights_sha256 TEXT,
    dataset TEXT NOT NULL, split TEXT, task TEXT NOT NULL, task_kind TEXT,
    seed INTEGER, device TEXT, precision TEXT, world_size INTEGER,
    torch_version TEXT, timm_version TEXT, harness_version TEXT, git_commit TEXT,
    status TEXT NOT NULL, error TEXT, seconds REAL, finished_at TEXT,
    provenance TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs(job_key);
CREATE TABLE IF NOT EXISTS results (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    metric TEXT NOT NULL, params TEXT NOT NULL, value REAL, n INTEGER,
    ci_low REAL, ci_high REAL, unit TEXT, direction TEXT, headline INTEGER, metric_kind TEXT,
    PRIMARY KEY (job_id, metric, params)
);
"""

JOB_COLUMNS = ("suite", "suite_version", "suite_hash", "model", "family", "arch", "model_tag", "weights",
               "weights_sha256", "dataset", "split", "task", "task_kind", "seed", "device", "precision",
               "world_size", "torch_version", "timm_version", "harness_version", "git_commit")


@dataclass
class JobRecord:
    """One finished (or failed) job with its provenance."""

    job_key: str
    columns: dict[str, Any]  # the JOB_COLUMNS
    status: str  # "ok" or "failed"
    metrics: list[Metric] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)


class StoreError(ValueError):
    """A results store that cannot be read; the message names the file."""


def shard_text(shard: Any) -> str | None:
    """``(i, N)`` or ``"i/N"`` as ``"i/N"``; None for a run that was not sharded."""
    if shard is None or isinstance(shard, str):
        return shard or None
    index, count = shard
    return f"{int(index)}/{int(count)}"


def shard_from_argv(argv: str | None) -> str | None:
    """The ``--shard I/N`` of a command line as stored in ``runs.argv`` (stores written before ``runs.shard``)."""
    words = (argv or "").split()
    for number, word in enumerate(words):
        if word == "--shard" and number + 1 < len(words):
            return words[number + 1]
        if word.startswith("--shard="):
            return word.split("=", 1)[1]
    return None


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def _parsed_params(stored: pd.Series) -> list[dict[str, Any]]:
    """Each row's params as a dict, every distinct stored text parsed once (a history repeats the same few
    thousand times). Rows with equal text get equal but separate dicts, so changing one row changes no other:
    a shallow copy where every value is a number or a string, else the text parsed again."""
    parsed = {text: json.loads(text) for text in stored.dropna().unique() if isinstance(text, str)}
    flat = {text for text, params in parsed.items() if not any(isinstance(v, (dict, list)) for v in params.values())}
    return [({} if not isinstance(text, str) else dict(parsed[text]) if text in flat else json.loads(text))
            for text in stored.tolist()]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class ResultStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._set_aside_old_schema()
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)  # explicit transactions below
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.executescript(_SCHEMA)
        if "shard" not in {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}:
            self.conn.execute("ALTER TABLE runs ADD COLUMN shard TEXT")  # stores written before runs.shard
        self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def read_only(cls, path: Path) -> "ResultStore":
        """Open an existing store for reading only: nothing is created, migrated, moved aside or written
        (a store closed cleanly is opened immutable, so not even ``-wal``/``-shm`` files appear).
        Raises StoreError, naming the file, for anything that is not a store of this schema."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"{path}: no such results store")
        clean = not path.with_name(path.name + "-wal").exists()
        uri = path.resolve().as_uri() + "?mode=ro" + ("&immutable=1" if clean else "")
        conn = None
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=60)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise StoreError(f"{path}: not a results store ({exc})") from None
        missing = [name for name in ("runs", "jobs", "results") if name not in tables]
        if missing:
            conn.close()
            raise StoreError(f"{path}: not a results store (no {missing[0]} table)")
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"{path}: user_version: schema {version}, this harness reads schema {SCHEMA_VERSION} "
                             "(written by another harness version; rerun it with this one)")
        store = cls.__new__(cls)
        store.path, store.conn = path, conn
        return store

    def _set_aside_old_schema(self) -> None:
        """A store written by an older harness is renamed, not mixed with new rows (its jobs rerun)."""
        if not self.path.is_file():
            return
        with sqlite3.connect(self.path) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            has_tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
        if has_tables and version != SCHEMA_VERSION:
            old = self.path.with_name(f"{self.path.stem}.v{version}{self.path.suffix}")
            self.path.replace(old)
            warnings.warn(f"{self.path}: results store of schema {version} moved to {old.name}; its jobs rerun",
                          stacklevel=3)

    def close(self) -> None:
        self.conn.close()

    # --- runs -------------------------------------------------------------------------------------------
    def start_run(self, **facts: Any) -> str:
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        columns = ("suite", "suite_path", "suite_hash", "git_commit", "harness_version", "world_size", "argv",
                   "shard")
        # which shard of a fan-out this run is (``--shard I/N``), so that a merge knows N and what it got
        facts["shard"] = shard_text(facts.get("shard")) or shard_from_argv(facts.get("argv"))
        with self.conn:
            self.conn.execute(f"INSERT INTO runs (run_id, started_at, {', '.join(columns)}) VALUES "
                              f"(?, ?, {', '.join('?' * len(columns))})",
                              [run_id, _now(), *[_plain(facts.get(c)) for c in columns]])
        return run_id

    def finish_run(self, run_id: str) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", (_now(), run_id))

    def runs(self) -> pd.DataFrame:
        """The runs, each with its ``shard`` ("i/N", or None when not sharded; older stores: from argv)."""
        runs = pd.read_sql_query("SELECT * FROM runs ORDER BY started_at", self.conn)
        if "shard" not in runs:
            runs["shard"] = None
        recorded = runs["shard"].map(lambda v: v if isinstance(v, str) and v else None)
        runs["shard"] = [shard or shard_from_argv(argv if isinstance(argv, str) else None)
                         for shard, argv in zip(recorded, runs["argv"])]
        return runs

    # --- jobs -------------------------------------------------------------------------------------------
    def finished_keys(self) -> set[str]:
        return {row[0] for row in self.conn.execute(
            "SELECT job_key FROM jobs j WHERE id = (SELECT max(id) FROM jobs WHERE job_key = j.job_key) "
            "AND status = 'ok'")}

    def save(self, record: JobRecord, run_id: str | None = None, finished_at: str | None = None) -> None:
        """Add the job and its metrics in one transaction (earlier rows of the key stay, as history)."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self._insert(record, run_id, finished_at)

    def _insert(self, record: JobRecord, run_id: str | None, finished_at: str | None,
                declared: list[tuple[Any, ...]] | None = None) -> None:
        """The job row and its metric rows (no transaction of its own). ``declared``: each metric's (unit,
        direction, headline, kind) as stored elsewhere (copies), instead of from its declaration."""
        cols = {c: record.columns.get(c) for c in JOB_COLUMNS}
        names = ", ".join(["job_key", "run_id", *cols, "status", "error", "seconds", "finished_at", "provenance"])
        values = [record.job_key, run_id, *cols.values(), record.status, record.error, record.seconds,
                  finished_at or _now(), json.dumps(record.provenance, default=str, sort_keys=True)]
        cursor = self.conn.execute(f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * len(values))})", values)
        job_id = cursor.lastrowid
        rows = []
        for number, m in enumerate(record.metrics):
            if declared is None:
                info = metric_info(m.name)
                unit, direction, headline, kind = m.unit or info.unit, info.direction, int(info.headline), info.kind
            else:
                unit, direction, headline, kind = declared[number]
            rows.append((job_id, m.name, params_key(m.params), _finite(m.value), m.n, _finite(m.ci_low),
                         _finite(m.ci_high), unit, direction, headline, kind))
        self.conn.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def frame(self, job_keys: Iterable[str] | None = None, history: bool = False) -> pd.DataFrame:
        """Metric rows joined with their job's provenance; failed jobs appear once with no metric.

        Latest row per job key unless ``history``."""
        latest = "" if history else "WHERE j.id = (SELECT max(id) FROM jobs WHERE job_key = j.job_key) "
        query = ("SELECT j.job_key, j.run_id, j.status, j.error, j.seconds, j.finished_at, j.provenance, "
                 + ", ".join(f"j.{c}" for c in JOB_COLUMNS)
                 + ", r.metric, r.params, r.value, r.n, r.ci_low, r.ci_high, r.unit, r.direction, r.headline, "
                 "r.metric_kind FROM jobs j LEFT JOIN results r ON r.job_id = j.id " + latest
                 + "ORDER BY j.id, r.rowid")
        frame = pd.read_sql_query(query, self.conn)
        if job_keys is not None:
            frame = frame[frame["job_key"].isin(set(job_keys))]
        frame["params"] = _parsed_params(frame["params"])
        frame["headline"] = frame["headline"].map(lambda v: bool(v) if pd.notna(v) else None)
        return frame.reset_index(drop=True)

    def copy_from(self, other: "ResultStore") -> int:
        """Add ``other``'s runs and jobs (a shard's store) to this one; returns the number of jobs copied."""
        return self.copy_all([other])[0]

    def copy_all(self, others: list["ResultStore"]) -> list[int]:
        """Add the runs and jobs of ``others`` in ONE transaction (all of them or, on any error, none);
        returns the number of jobs copied from each. A job row already here (same key and finish time:
        merged before) is not copied again."""
        copied = []
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            have = set(self.conn.execute("SELECT job_key, finished_at FROM jobs").fetchall())
            for other in others:
                for run in other.runs().to_dict("records"):
                    self.conn.execute(f"INSERT OR IGNORE INTO runs ({', '.join(run)}) "
                                      f"VALUES ({', '.join('?' * len(run))})", [_plain(v) for v in run.values()])
                count = 0
                frame = other.frame(history=True)
                for (job_key, run_id, finished_at), rows in frame.groupby(["job_key", "run_id", "finished_at"],
                                                                           sort=False, dropna=False):
                    if (job_key, finished_at) in have:
                        continue  # merged before
                    first = rows.iloc[0]
                    kept = [r for r in rows.itertuples() if isinstance(r.metric, str)]
                    metrics = [Metric(r.metric, r.value, None if pd.isna(r.n) else int(r.n), r.params,
                                      _nan(r.ci_low), _nan(r.ci_high), r.unit or "") for r in kept]
                    # the metric's declaration as stored: copying needs no task plugin loaded
                    declared = [(_plain(r.unit), _plain(r.direction), None if r.headline is None else int(r.headline),
                                 _plain(r.metric_kind)) for r in kept]
                    record = JobRecord(job_key, {c: _plain(first[c]) for c in JOB_COLUMNS}, first["status"],
                                       metrics, first["error"], float(first["seconds"] or 0),
                                       json.loads(first["provenance"] or "{}"))
                    self._insert(record, None if pd.isna(run_id) else run_id, finished_at, declared)
                    have.add((job_key, finished_at))
                    count += 1
                copied.append(count)
        return copied


def _finite(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _nan(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value
