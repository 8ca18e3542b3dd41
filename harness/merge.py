"""``visionbench merge OUT IN...``: combine the stores (and per-sample records) of runs that were fanned
out with ``--shard i/N`` (SLURM arrays, CI matrices) into one output folder, then render its report.

Everything is checked before anything is written, and a refused merge leaves OUT as it was (the inputs are
only read). Refused, with a one-line reason naming the file and the field:

- inputs of different suites (``suite``, ``suite_hash``), harness versions (``harness_version``,
  ``git_commit``), or weights (``weights_sha256`` of one model name);
- overlapping inputs: the same job key with different numbers, the same shard index from two different
  runs, shards of different fan-outs (``0/2`` with ``1/3``), the same input given twice;
- an incomplete set: ``shard 1/2 missing`` (each run records its ``--shard I/N`` in the store's ``runs``
  table, so the merge knows N and which shards it has, OUT's included), or a shard whose run has not
  finished (``runs.finished_at`` empty: still running, or killed), unless ``allow_partial``.

Merging a shard that OUT already holds adds nothing and says so.
"""
from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from harness.store import ResultStore, StoreError, params_key

_SHARD = re.compile(r"^(\d+)/(\d+)$")


class MergeError(ValueError):
    """A merge that is refused; the message (one line) names the file and the field. Nothing was written."""


@dataclass
class _Source:
    label: str  # the store as the user named it, for messages
    path: Path  # resolved
    store: ResultStore
    is_target: bool = False
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    latest: pd.DataFrame = field(default_factory=pd.DataFrame)  # latest row per job key
    rows: set = field(default_factory=set)  # (job_key, finished_at) of every job row, history included
    shards: dict[tuple[int, int], set[str]] = field(default_factory=dict)  # (i, N) -> its run ids
    unsharded: bool = False  # holds a run that was not sharded (or whose shard is unknown)


@dataclass
class InputOutcome:
    label: str
    shards: list[str] | None  # None: not a shard's store (OUT itself)
    jobs: int  # job rows it holds
    copied: int = 0
    note: str = ""  # why nothing was added

    @property
    def line(self) -> str:
        spec = "" if self.shards is None else f" (shard {', '.join(self.shards)})" if self.shards else " (not sharded)"
        return f"{self.label}{spec}: " + (self.note or f"{self.copied} job(s) merged")


@dataclass
class MergeSummary:
    out: Path
    inputs: list[InputOutcome]
    shards: list[str]  # the shards OUT holds now, "i/N"
    missing: list[str]  # the shards of the fan-out it lacks (only with allow_partial)

    @property
    def copied(self) -> int:
        return sum(i.copied for i in self.inputs)

    @property
    def missing_text(self) -> str:
        return _missing_text(self.missing)

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    @property
    def line(self) -> str:
        text = f"{self.copied} job(s) merged into {self.out / 'results.sqlite'}"
        if self.shards:
            text += f": shards {', '.join(self.shards)}"
            text += f" (PARTIAL: {_missing_text(self.missing)})" if self.missing else " (complete)"
        return text


def store_path(location: Path) -> Path:
    location = Path(location)
    path = location / "results.sqlite" if location.is_dir() else location
    if not path.is_file():
        raise MergeError(f"{location}: no results.sqlite here")
    return path


def merge_runs(out_dir: Path, inputs: list[Path], allow_partial: bool = False,
               suite_name: str | None = None) -> MergeSummary:
    """Copy every input's jobs into ``out_dir``'s store and its records into ``out_dir/samples``, after
    checking that the inputs (and what ``out_dir`` already holds) belong together; raises MergeError
    (nothing written) when they do not. ``suite_name``: the suite the caller will title the report with."""
    out_dir = Path(out_dir)
    target_path = out_dir / "results.sqlite"
    sources: list[_Source] = []
    try:
        if target_path.is_file():
            sources.append(_open(target_path, str(target_path), is_target=True))
        seen: dict[Path, str] = {}
        for given in inputs:
            path = store_path(given)
            resolved = path.resolve()
            if resolved in seen:
                also = "" if seen[resolved] == str(path) else f" (also as {seen[resolved]})"
                raise MergeError(f"{path}: given twice{also}; nothing merged")
            seen[resolved] = str(path)
            if resolved == target_path.resolve():
                continue  # OUT itself: reported below, nothing to add
            sources.append(_open(path, str(path)))
        _check(sources, allow_partial, suite_name)
        shards, missing = _coverage(sources)
        outcomes = _copy(out_dir, sources, inputs, target_path)
    finally:
        for source in sources:
            source.store.close()
    return MergeSummary(out_dir, outcomes, [_spec(s) for s in shards], [_spec(s) for s in missing])


# --- reading ---------------------------------------------------------------------------------------------------
def _open(path: Path, label: str, is_target: bool = False) -> _Source:
    try:
        store = ResultStore.read_only(path)
    except StoreError as exc:
        raise MergeError(f"{exc}; nothing merged") from None
    source = _Source(label, path.resolve(), store, is_target)
    try:
        problems = [row[0] for row in store.conn.execute("PRAGMA integrity_check(3)")]
        if problems != ["ok"]:  # e.g. a copy cut short: sqlite would read its missing pages as zeros
            store.close()
            raise MergeError(f"{path}: damaged results store (sqlite integrity_check: "
                             f"{problems[0].splitlines()[0]}); nothing merged")
        source.runs = store.runs()
        source.latest = store.frame()
        source.rows = set(store.conn.execute("SELECT job_key, finished_at FROM jobs").fetchall())
    except MergeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged store: say which
        store.close()
        raise MergeError(f"{path}: unreadable results store ({type(exc).__name__}: {exc}); nothing merged") from None
    for run_id, shard in zip(source.runs["run_id"], source.runs["shard"]):
        if shard is None:
            source.unsharded = True
            continue
        match = _SHARD.match(str(shard))
        if not match or not int(match[1]) < int(match[2]):
            store.close()
            raise MergeError(f"{path}: runs.shard: {shard!r} of run {run_id} is not I/N with 0 <= I < N; "
                             "nothing merged")
        source.shards.setdefault((int(match[1]), int(match[2])), set()).add(str(run_id))
    return source


def _values(column: str, runs_too: bool = True) -> Callable[[_Source], set]:
    def values(source: _Source) -> set:
        found = set(source.latest[column]) if column in source.latest else set()
        if runs_too and column in source.runs:
            found |= set(source.runs[column])
        return {v for v in found if isinstance(v, str) and v}

    return values


# --- checks ----------------------------------------------------------------------------------------------------
def _check(sources: list[_Source], allow_partial: bool, suite_name: str | None) -> None:
    _same_everywhere(sources, "suite", _values("suite"), "shards of different suites")
    _same_everywhere(sources, "suite_hash", _values("suite_hash"),
                     "the suite's configuration differs: another suite file, models, tasks or data paths")
    _same_everywhere(sources, "harness_version", _values("harness_version"), "different harness versions")
    _same_everywhere(sources, "git_commit", _values("git_commit"), "different harness code")
    models = sorted({m for s in sources for m in _ok(s.latest)["model"].dropna()})
    for model in models:
        _same_everywhere(sources, f"weights_sha256 of model {model}",
                         lambda s, m=model: {w for w in _ok(s.latest).loc[lambda f: f["model"] == m,
                                                                            "weights_sha256"] if isinstance(w, str)},
                         "different weights under one model name")
    _check_shards(sources)
    _check_numbers(sources)
    if not allow_partial:
        for source in sources:
            for spec, run_ids in sorted(source.shards.items()):
                finished = source.runs.loc[source.runs["run_id"].isin(run_ids), "finished_at"]
                if not finished.map(lambda v: isinstance(v, str) and bool(v)).any():
                    raise MergeError(f"{source.label}: runs.finished_at: shard {_spec(spec)} has not finished "
                                     "(still running, or killed): rerun it to the end, or --allow-partial to "
                                     "merge an incomplete set; nothing merged")
        _, missing = _coverage(sources)
        if missing:
            have = [f"{_spec(spec)} from {s.label}" for s in sources for spec in sorted(s.shards)]
            raise MergeError(f"{_missing_text(missing)} (have {', '.join(have)}): give every shard, or "
                             "--allow-partial to merge an incomplete set; nothing merged")
    for source in sources if suite_name is not None else []:
        names = _values("suite")(source)
        if names and suite_name not in names:
            raise MergeError(f"{source.label}: suite: {sorted(names)[0]!r}, but --suite is {suite_name!r} (the report "
                             "would be titled and derived from another suite); nothing merged")


def _same_everywhere(sources: list[_Source], name: str, values_of: Callable[[_Source], set], why: str) -> None:
    """Refuse when two sources disagree on ``name``: neither's values contain the other's (a store's own
    history may hold several values; merging must not add a value the others do not have)."""
    seen: list[tuple[_Source, set]] = []
    for source in sources:
        mine = values_of(source)
        if not mine:
            continue
        for other, theirs in seen:
            if not (mine <= theirs or theirs <= mine):
                raise MergeError(f"{source.label}: {name}: {_short(sorted(mine - theirs)[0])} differs from "
                                 f"{_short(sorted(theirs - mine)[0])} in {other.label} ({why}); nothing merged")
        seen.append((source, mine))


def _check_shards(sources: list[_Source]) -> None:
    seen: dict[tuple[int, int], tuple[_Source, set[str]]] = {}
    for source in sources:
        for spec, run_ids in sorted(source.shards.items()):
            other_count = next(((s, other) for other, (s, _) in seen.items() if other[1] != spec[1]), None)
            if other_count is not None:
                raise MergeError(f"{source.label}: shard: {_spec(spec)} does not match {_spec(other_count[1])} in "
                                 f"{other_count[0].label} (shards of different fan-outs); nothing merged")
            if spec in seen and not run_ids & seen[spec][1]:
                other, theirs = seen[spec]
                raise MergeError(f"{source.label}: shard: {_spec(spec)} is also in {other.label}, from another run "
                                 f"({sorted(run_ids)[0]} vs {sorted(theirs)[0]}): the same shard twice; "
                                 "nothing merged")
            if spec in seen:
                seen[spec] = (seen[spec][0], seen[spec][1] | run_ids)
            else:
                seen[spec] = (source, set(run_ids))


def _check_numbers(sources: list[_Source]) -> None:
    """The same job key must carry the same numbers wherever it comes from (else the inputs overlap)."""
    seen: dict[str, tuple[_Source, dict[str, tuple[Any, Any]], str]] = {}
    for source in sources:
        for job_key, rows in _ok(source.latest).groupby("job_key", sort=False):
            numbers = {_metric_label(r.metric, r.params): (r.value, r.n)
                       for r in rows.itertuples() if isinstance(r.metric, str)}
            where = " | ".join(str(rows.iloc[0][c]) for c in ("model", "dataset", "task"))
            if job_key not in seen:
                seen[job_key] = (source, numbers, where)
                continue
            other, theirs, _ = seen[job_key]
            for metric in sorted(set(numbers) | set(theirs)):
                mine, their = numbers.get(metric), theirs.get(metric)
                if mine is None or their is None or not (_same(mine[0], their[0]) and _same(mine[1], their[1])):
                    raise MergeError(f"{source.label}: job {job_key} ({where}): {metric} = {_number(mine)}, but "
                                     f"{_number(their)} in {other.label} (overlapping inputs disagree); "
                                     "nothing merged")


def _coverage(sources: list[_Source]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The shards held, and those of the fan-out that are missing (none when a run was not sharded)."""
    held = sorted({spec for s in sources for spec in s.shards})
    if not held or any(s.unsharded for s in sources):
        return held, []
    count = held[0][1]
    indexes = {index for index, _ in held}
    return held, [(i, count) for i in range(count) if i not in indexes]


# --- writing ---------------------------------------------------------------------------------------------------
def _copy(out_dir: Path, sources: list[_Source], inputs: list[Path], target_path: Path) -> list[InputOutcome]:
    inputs_here = [s for s in sources if not s.is_target]
    target_rows = set().union(*(s.rows for s in sources if s.is_target))
    outcomes = []
    for given in inputs:
        path = store_path(given)
        if path.resolve() == target_path.resolve():
            outcomes.append(InputOutcome(str(path), None, 0, note=f"is {target_path} itself, nothing added"))
    target_runs = set().union(*(set(s.runs["run_id"]) for s in sources if s.is_target))
    if all(s.rows <= target_rows and set(s.runs["run_id"]) <= target_runs for s in inputs_here):
        counts = [0] * len(inputs_here)  # everything is in OUT already: write nothing at all
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        for source in inputs_here:  # records first: a job row is never without its records
            samples = source.path.parent / "samples"
            if samples.is_dir() and samples.resolve() != (out_dir / "samples").resolve():
                shutil.copytree(samples, out_dir / "samples", dirs_exist_ok=True)
        for source in sources:
            if source.is_target:
                source.store.close()  # its read-only view: the writer below is the only connection to OUT
        target = ResultStore(target_path)
        try:
            counts = target.copy_all([s.store for s in inputs_here])
        finally:
            target.close()
    for source, copied in zip(inputs_here, counts):
        outcome = InputOutcome(source.label, [_spec(s) for s in sorted(source.shards)], len(source.rows), copied)
        if not source.rows:
            outcome.note = "no jobs, nothing added"
        elif copied == 0:
            where = str(target_path) if source.rows <= target_rows else "an earlier input"
            outcome.note = f"already merged: its {len(source.rows)} job row(s) are in {where}, nothing added"
        elif copied < len(source.rows):
            outcome.note = f"{copied} job(s) merged ({len(source.rows) - copied} already there)"
        outcomes.append(outcome)
    return outcomes


# --- helpers ---------------------------------------------------------------------------------------------------
def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"] if "status" in frame else frame


def _spec(spec: tuple[int, int]) -> str:
    return f"{spec[0]}/{spec[1]}"


def _missing_text(missing: list[tuple[int, int]] | list[str]) -> str:
    specs = [m if isinstance(m, str) else _spec(m) for m in missing]
    return f"shard{'s' if len(specs) > 1 else ''} {', '.join(specs)} missing"


def _metric_label(metric: str, params: Any) -> str:
    params = params if isinstance(params, dict) else {}
    return metric + (f" {params_key(params)}" if params else "")


def _same(a: Any, b: Any) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return False
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)


def _number(pair: tuple[Any, Any] | None) -> str:
    if pair is None:
        return "absent"
    value, n = pair
    text = "none" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"
    return text + ("" if n is None or (isinstance(n, float) and math.isnan(n)) else f" (n {int(n)})")


def _short(value: Any) -> str:
    text = str(value)
    if len(text) >= 32 and all(c in "0123456789abcdef" for c in text):
        return text[:12] + "…"  # a sha256 or commit
    return repr(text)
