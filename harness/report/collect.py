"""Finding finished runs under a reports folder and reading each one's store for publishing.

A run folder is any folder holding ``results.sqlite`` (what ``run_bench.py --out DIR`` writes). Each folder
is published as it is: its leaderboard shows the latest result of every job (model x dataset x task, whatever
the job key), its history every run the store kept.
"""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.schema import UsageError
from harness.store import ResultStore, StoreError

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
    label: str = ""  # how published pages name the folder (never an absolute path: harness/report/paths.py)


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


def open_store(folder: Path) -> ResultStore:
    """The folder's store opened for reading only, checked whole before anything is published from it: a file
    that is not a database, is damaged (truncated) or holds another schema is refused in one line naming it."""
    path = folder / STORE_NAME
    truncated = _truncation(path) if path.is_file() else None
    if truncated:
        raise UsageError(f"{path}: damaged results store ({truncated})")
    try:
        store = ResultStore.read_only(path)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    try:
        for table, columns in _columns_read().items():
            have = {row[1] for row in store.conn.execute(f"PRAGMA table_info({table})")}
            missing = sorted(columns - have)
            if missing:
                raise UsageError(f"{path}: table {table}: no column {missing[0]} (not a results store of this "
                                 f"harness)")
        problems = [row[0] for row in store.conn.execute("PRAGMA integrity_check(3)")]
        if problems != ["ok"]:
            raise UsageError(f"{path}: damaged results store (sqlite integrity_check: {problems[0].splitlines()[0]})")
    except sqlite3.Error as exc:
        store.close()
        raise UsageError(f"{path}: damaged results store ({_first_line(exc)})") from None
    except UsageError:
        store.close()
        raise
    return store


def _truncation(path: Path) -> str | None:
    """Why the file is shorter than its SQLite header says (a copy cut short), or None. SQLite reads missing
    pages as zeros, so a cut store can pass its own checks and still yield garbled rows."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return None  # not a database at all: sqlite says so
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] != header[92:96] or not pages:  # the page count is valid only when these agree
        return None
    size = path.stat().st_size
    if size < pages * page_size:
        return f"truncated: {size:,} bytes, its header says {pages:,} pages of {page_size:,} bytes"
    return None


def _columns_read() -> dict[str, set[str]]:
    """The columns publishing reads: every column of jobs and results as this harness writes them, and the
    runs facts the history page shows."""
    from harness.store import _SCHEMA

    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMA)
        columns = {t: {row[1] for row in conn.execute(f"PRAGMA table_info({t})")} for t in ("jobs", "results")}
    finally:
        conn.close()
    return {**columns, "runs": {"run_id", "started_at", "suite", "git_commit", "harness_version", "argv"}}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def read_run(folder: Path, slug: str, store: ResultStore | None = None) -> PublishedRun:
    store = store or open_store(folder)
    try:
        history = store.frame(history=True)
        runs = store.runs()
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:  # pandas wraps sqlite's errors
        raise UsageError(f"{folder / STORE_NAME}: damaged results store ({_first_line(exc)})") from None
    finally:
        store.close()
    latest = latest_attempts(history)
    for key, provenance in zip(latest["job_key"].tolist(), latest["provenance"].tolist()):
        try:
            if provenance is not None:
                json.loads(provenance)
        except (TypeError, ValueError):
            raise UsageError(f"{folder / STORE_NAME}: jobs.provenance of job {key} is not JSON (damaged results "
                             f"store)") from None
    latest, notes = with_derived(latest)
    suites = sorted(set(history["suite"].dropna()) | set(runs["suite"].dropna()))
    return PublishedRun(suite=", ".join(suites) or folder.name, slug=slug, folder=folder, latest=latest,
                        history=history.assign(derived=False), runs=runs, notes=notes)


def read_runs(root: Path) -> list[PublishedRun]:
    """Every run folder under ``root``, each with a unique slug (its suite name where that is unique). Every
    store is opened and checked before any is read: one that cannot be published refuses them all."""
    root = Path(root)
    folders = find_run_folders(root)
    stores = {}
    try:
        for folder in folders:
            stores[folder] = open_store(folder)
        suites = {folder: _suite_names(folder, store) for folder, store in stores.items()}
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    counts = pd.Series([s for s in suites.values()]).value_counts()
    out, used = [], set()
    try:
        for folder in folders:
            name = suites[folder] if counts[suites[folder]] == 1 else _relative(folder, root)
            slug = base = file_slug(name or folder.name)
            index = 2
            while slug.lower() in used:  # unique on case-insensitive file systems too
                slug, index = f"{base}-{index}", index + 1
            used.add(slug.lower())
            out.append(read_run(folder, slug, stores[folder]))
    finally:
        for store in stores.values():
            store.close()  # each read closes its own; these are the ones an error left open
    return out


def _suite_names(folder: Path, store: ResultStore) -> str:
    try:
        names = sorted({r[0] for r in store.conn.execute("SELECT DISTINCT suite FROM jobs") if r[0]})
    except sqlite3.Error as exc:
        raise UsageError(f"{folder / STORE_NAME}: damaged results store ({_first_line(exc)})") from None
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


SLUG_LIMIT = 60


def file_slug(text: str, limit: int = SLUG_LIMIT) -> str:
    """A name (a model's, a suite's, a table's) as a file name and URL part: ``text`` itself where it is plain
    ASCII (letters, digits, ``.``, ``_``, ``-``) and at most ``limit`` long; else its readable ASCII part, cut
    to ``limit``, and a hash of the whole name, so that names differing anywhere get different files
    (``<script>alert(1)</script>`` -> ``script-alert-1-script-<hash>``)."""
    slug = slugify(text)
    if slug == text and len(slug) <= limit:
        return slug
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{slug[:limit].rstrip('-.') or 'x'}-{digest}"


def unique_slugs(names) -> dict[str, str]:
    """``file_slug`` of each name, with a hash added where two would share a file on a case-insensitive file
    system (``ResNet`` and ``resnet``)."""
    slugs = {name: file_slug(name) for name in dict.fromkeys(names)}
    counts = pd.Series([s.lower() for s in slugs.values()], dtype=object).value_counts()
    for name, slug in slugs.items():
        if counts.get(slug.lower(), 0) > 1:
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
            slugs[name] = slug if slug.endswith(digest) else f"{slug[:SLUG_LIMIT]}-{digest}"
    return slugs


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
