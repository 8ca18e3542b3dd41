"""The results database: one SQLite row per job x metric, each job committed atomically.

A job that finished is in the database with all its metrics or not at all, so killing the process
loses nothing that was finished, and a rerun skips jobs whose key is already there with status ok.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from harness.metrics import Metric

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_key TEXT PRIMARY KEY,
    suite TEXT NOT NULL, suite_version TEXT, suite_hash TEXT,
    model TEXT NOT NULL, family TEXT, arch TEXT, model_tag TEXT, weights TEXT, weights_sha256 TEXT,
    dataset TEXT NOT NULL, split TEXT, task TEXT NOT NULL, task_kind TEXT,
    seed INTEGER, device TEXT, precision TEXT,
    torch_version TEXT, timm_version TEXT, harness_version TEXT, git_commit TEXT,
    status TEXT NOT NULL, error TEXT, seconds REAL, finished_at TEXT,
    provenance TEXT
);
CREATE TABLE IF NOT EXISTS results (
    job_key TEXT NOT NULL REFERENCES jobs(job_key) ON DELETE CASCADE,
    metric TEXT NOT NULL, params TEXT NOT NULL, value REAL, n INTEGER,
    ci_low REAL, ci_high REAL, unit TEXT,
    PRIMARY KEY (job_key, metric, params)
);
"""

JOB_COLUMNS = ("suite", "suite_version", "suite_hash", "model", "family", "arch", "model_tag", "weights",
               "weights_sha256", "dataset", "split", "task", "task_kind", "seed", "device", "precision",
               "torch_version", "timm_version", "harness_version", "git_commit")


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


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


class ResultStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions below
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def finished_keys(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT job_key FROM jobs WHERE status = 'ok'")}

    def save(self, record: JobRecord) -> None:
        """Replace the job and its metrics in one transaction."""
        cols = {c: record.columns.get(c) for c in JOB_COLUMNS}
        names = ", ".join(["job_key", *cols, "status", "error", "seconds", "finished_at", "provenance"])
        values = [record.job_key, *cols.values(), record.status, record.error, record.seconds,
                  time.strftime("%Y-%m-%dT%H:%M:%S%z"), json.dumps(record.provenance, default=str, sort_keys=True)]
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("DELETE FROM jobs WHERE job_key = ?", (record.job_key,))
            self.conn.execute(f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * len(values))})", values)
            self.conn.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(record.job_key, m.name, params_key(m.params), _finite(m.value), m.n, _finite(m.ci_low),
                  _finite(m.ci_high), m.unit) for m in record.metrics],
            )

    def frame(self, job_keys: Iterable[str] | None = None) -> pd.DataFrame:
        """Every metric row joined with its job's provenance; failed jobs appear once with no metric."""
        query = ("SELECT j.job_key, j.status, j.error, j.seconds, j.finished_at, j.provenance, "
                 + ", ".join(f"j.{c}" for c in JOB_COLUMNS)
                 + ", r.metric, r.params, r.value, r.n, r.ci_low, r.ci_high, r.unit "
                 "FROM jobs j LEFT JOIN results r ON r.job_key = j.job_key ORDER BY j.rowid, r.rowid")
        frame = pd.read_sql_query(query, self.conn)
        if job_keys is not None:
            frame = frame[frame["job_key"].isin(set(job_keys))]
        frame["params"] = frame["params"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
        return frame.reset_index(drop=True)


def _finite(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
