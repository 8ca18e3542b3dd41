"""``visionbench rescore DIR``: recompute every metric of a run from its per-sample records alone.

The records (``samples/<job key>.jsonl.gz``) hold each job's merged evaluator state and the meta its
evaluator needs; the task is rebuilt from the parameters stored with the job. The numbers must equal the
stored ones exactly: the evaluator's ``compute`` is a pure function of the records. Records that do not
verify (edited, truncated, deleted, swapped in from another job, regenerated, or written before checksums:
see ``harness.evaluation.state``) are a problem of their job, one line naming the file; nothing is
rescored from them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.evaluation.state import RecordsError, load_records, records_path
from harness.metrics import Metric
from harness.schema import Where, build
from harness.store import ResultStore, params_key
from harness.tasks.base import Task

RUNNER_METRICS = {"skipped_corrupt"}  # added by the runner from the loop's counts, not by an evaluator


@dataclass
class RescoreRow:
    job_key: str
    title: str
    metric: str
    params: dict
    stored: float | None
    rescored: float | None

    @property
    def equal(self) -> bool:
        both_nan = all(v is None or (isinstance(v, float) and math.isnan(v)) for v in (self.stored, self.rescored))
        return both_nan or self.stored == self.rescored


def rebuild_task(fingerprint: dict) -> Task:
    """The task (with its attached evaluators) as a job's provenance stores it."""
    import harness.plugins  # noqa: F401  (registers every task and evaluator, plugins' too)
    from harness.registry import EVALUATORS, TASKS

    where = Where(Path("<stored task>"), 0, "params")
    task_cls = TASKS.get(fingerprint["kind"])
    task = task_cls(build(task_cls.Params, fingerprint["params"], where), label=fingerprint.get("label"))
    for attached in fingerprint.get("evaluators", []):
        params = build(EVALUATORS.get(attached["kind"]).Params, attached["params"],
                       Where(Path("<stored task>"), 0, "evaluators"))
        task.attach(attached["kind"], params, attached["name"])
    return task


def rescore(out_dir: Path) -> tuple[list[RescoreRow], list[str]]:
    """(one row per stored metric with both values, jobs that could not be rescored and why)."""
    store = ResultStore(Path(out_dir) / "results.sqlite")
    try:
        frame = store.frame()
    finally:
        store.close()
    rows: list[RescoreRow] = []
    problems: list[str] = []
    ok = frame[(frame["status"] == "ok") & frame["metric"].notna()]
    for job_key, part in ok.groupby("job_key", sort=False):
        first = part.iloc[0]
        title = f"{first['model']} x {first['dataset']} x {first['task']}"
        provenance = json.loads(first["provenance"] or "{}")
        task = rebuild_task(provenance["task"])
        if task.performance:
            continue  # measured, not scored: nothing to recompute
        path = records_path(Path(out_dir) / "samples", job_key)
        if not path.is_file():
            if "records_sha256" in provenance:
                problems.append(f"{title}: {path}: missing (results.sqlite says the run wrote per-sample records "
                                "for this job)")
            else:
                problems.append(f"{title}: no per-sample records ({path.name}; run with --log-samples)")
            continue
        try:  # checked against the sha256 stored with this very row
            state, meta = load_records(path, stored=provenance.get("records_sha256"))
        except RecordsError as exc:
            problems.append(f"{title}: {exc}")
            continue
        metrics = {(m.name, params_key(m.params)): m for m in task.evaluators(meta).compute(state)}
        for row in part.itertuples():
            if row.metric in RUNNER_METRICS:
                continue
            fresh: Metric | None = metrics.get((row.metric, params_key(row.params)))
            stored = None if pd.isna(row.value) else float(row.value)
            rescored = None if fresh is None or fresh.value is None or math.isnan(fresh.value) else float(fresh.value)
            rows.append(RescoreRow(job_key, title, row.metric, row.params, stored, rescored))
    return rows, problems
