"""Finding finished runs under a reports folder and reading each one's store for publishing.

A run folder is any folder holding ``results.sqlite`` (what ``run_bench.py --out DIR`` writes). Each folder
is published as it is: its leaderboard shows the latest result of every job (model x dataset x task, whatever
the job key), its history every run the store kept.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.schema import UsageError
from harness.store import ResultStore

STORE_NAME = "results.sqlite"
JOB_IDENTITY = ["model", "dataset", "task"]
INSTANCE = ["job_key", "run_id", "finished_at"]  # one stored attempt of a job


@dataclass
class PublishedRun:
    """One run folder as the site shows it."""

    suite: str
    slug: str  # the folder name in the site (unique)
    folder: Path
    latest: pd.DataFrame  # latest attempt of each job, with derived metrics
    history: pd.DataFrame  # every stored attempt (no derived metrics)
    runs: pd.DataFrame  # the store's runs table
    notes: list[str]  # what could not be derived, etc.


def find_run_folders(root: Path) -> list[Path]:
    """``root`` itself if it is a run folder, else every run folder below it (sorted)."""
    root = Path(root)
    if not root.exists():
        raise UsageError(f"{root}: no such folder")
    if (root / STORE_NAME).is_file():
        return [root]
    found = sorted(p.parent for p in root.rglob(STORE_NAME))
    if not found:
        raise UsageError(f"{root}: no {STORE_NAME} found (run a suite first: run_bench.py --suite NAME --out DIR)")
    return found


def latest_attempts(history: pd.DataFrame) -> pd.DataFrame:
    """The rows of each job's most recent attempt (rows come in store order, oldest attempt first)."""
    if history.empty:
        return history
    instance = history.groupby(INSTANCE, sort=False, dropna=False).ngroup()  # numbered in store order
    last = instance.groupby([history[c] for c in JOB_IDENTITY], sort=False, dropna=False).transform("max")
    return history[instance == last].reset_index(drop=True)


def read_run(folder: Path, slug: str) -> PublishedRun:
    store = ResultStore(folder / STORE_NAME)
    try:
        history = store.frame(history=True)
        runs = store.runs()
    finally:
        store.close()
    latest, notes = with_derived(latest_attempts(history))
    suites = sorted(set(history["suite"].dropna()) | set(runs["suite"].dropna()))
    return PublishedRun(suite=", ".join(suites) or folder.name, slug=slug, folder=folder, latest=latest,
                        history=history.assign(derived=False), runs=runs, notes=notes)


def read_runs(root: Path) -> list[PublishedRun]:
    """Every run folder under ``root``, each with a unique slug (its suite name where that is unique)."""
    root = Path(root)
    folders = find_run_folders(root)
    suites = {}
    for folder in folders:
        suites[folder] = _suite_names(folder)
    counts = pd.Series([s for s in suites.values()]).value_counts()
    out, used = [], set()
    for folder in folders:
        name = suites[folder] if counts[suites[folder]] == 1 else _relative(folder, root)
        slug = base = slugify(name or folder.name)
        index = 2
        while slug in used:
            slug, index = f"{base}-{index}", index + 1
        used.add(slug)
        out.append(read_run(folder, slug))
    return out


def _suite_names(folder: Path) -> str:
    import sqlite3

    from harness.store import SCHEMA_VERSION

    with sqlite3.connect(f"file:{folder / STORE_NAME}?mode=ro", uri=True) as conn:  # publishing changes no store
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            names = sorted({r[0] for r in conn.execute("SELECT DISTINCT suite FROM jobs") if r[0]})
        except sqlite3.DatabaseError:
            raise UsageError(f"{folder / STORE_NAME}: not a results store") from None
    if version != SCHEMA_VERSION:
        raise UsageError(f"{folder / STORE_NAME}: results store of schema {version}, this harness reads "
                         f"{SCHEMA_VERSION} (rerun the suite with this harness to publish it)")
    return ", ".join(names) or folder.name


def _relative(folder: Path, root: Path) -> str:
    try:
        return str(folder.relative_to(root)) if folder != root else folder.name
    except ValueError:
        return folder.name


def slugify(text: str) -> str:
    """A file-name- and URL-safe form of ``text`` (stable, readable)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug or "x"


def with_derived(latest: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Add the cross-job metrics (e.g. mCE) as the runner does, with tasks rebuilt from the stored fingerprints."""
    from harness.runner import with_derived_metrics

    tasks, notes = tasks_from_provenance(latest)
    return with_derived_metrics(latest, tasks), notes


def tasks_from_provenance(frame: pd.DataFrame) -> tuple[list, list[str]]:
    """The suite's tasks as the stored rows recorded them (kind, version, label, params)."""
    import dataclasses

    import harness.plugins  # noqa: F401  (every task registered)
    from harness.registry import TASKS

    tasks, notes, seen = [], [], set()
    ok = frame[frame["status"] == "ok"].drop_duplicates("task")
    for task_label, provenance in zip(ok["task"], ok["provenance"]):
        fingerprint = json.loads(provenance or "{}").get("task") or {}
        kind = fingerprint.get("kind")
        if task_label in seen or kind not in TASKS:
            continue
        seen.add(task_label)
        task_cls = TASKS.get(kind)
        try:
            names = {f.name for f in dataclasses.fields(task_cls.Params)}
            params = task_cls.Params(**{k: v for k, v in (fingerprint.get("params") or {}).items() if k in names})
            tasks.append(task_cls(params, label=task_label))
        except (TypeError, ValueError) as exc:
            notes.append(f"task {task_label}: its derived metrics are not shown ({exc})")
    return tasks, notes
