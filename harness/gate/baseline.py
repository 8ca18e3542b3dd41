"""A run's numbers and their evidence, in one form for a run directory and for a committed baseline file.

``snapshot_run`` reads a run directory (``results.json`` and ``samples/<job_key>.jsonl.gz``); ``save_baseline``
writes its snapshot as reviewable JSON (sorted keys, indented); ``load_baseline`` reads one back. The gate
compares two snapshots. Per job the file keeps:

- the protocol that must match (dataset content fingerprint, evaluated sample ids hash, split, subset,
  task kind and parameters) and the model identity that is reported when it changes (weights sha256,
  architecture, preprocessing, precision, device);
- per metric: value, n, interval, direction, kind, and its per-sample evidence: success bits as hex over
  the job's sample id list (kept once per distinct list), repeated measurements for timings;
- per pass whose records a gated dataset-level metric re-accumulates (the evaluated split; an OOD set and
  the fit split of an OOD AUROC), the per-image records over the job's sample id list (null where absent).
  Version 1 files kept one list, of the main pass.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Resampled
from harness.evaluation.state import EvalState, Record, RecordsError, load_records, records_present
import harness.gate.evidence as evidence
from harness.gate.policy import GatePolicy

FORMAT = "visionbench-baseline"
VERSION = 2  # 2: records by pass (1: one list, the main pass; still read)
READABLE_VERSIONS = (1, 2)
MODEL_FIELDS = ("weights_sha256", "arch")
PREPROCESS_FIELDS = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")
DATASET_FIELDS = ("dataset_kind", "split", "subset", "dataset_size")
ROW_FIELDS = ("job_key", "status", "model", "dataset", "task", "task_kind", "metric", "params", "value",
              "direction", "metric_kind")


class GateInputError(ValueError):
    """A run directory or baseline file the gate cannot read; the message names the file and field."""


@dataclass
class MetricEntry:
    metric: str
    params: dict[str, Any]
    value: float
    n: int | None
    ci_low: float | None
    ci_high: float | None
    unit: str
    direction: str
    kind: str
    headline: bool
    outcomes: dict[str, bool] | None = None  # sample id -> success (proportions)
    series: list[float] | None = None  # repeated measurements (timings)
    resampled: Resampled | None = None  # how a dataset statistic re-accumulates (from a run, not saved)

    @property
    def key(self) -> str:
        return metric_key(self.metric, self.params)


@dataclass
class JobEntry:
    model: str
    dataset: str
    task: str
    task_kind: str
    status: str
    protocol: dict[str, Any]  # must match for numbers to be comparable
    identity: dict[str, Any]  # the model under test: a change is reported and judged by the numbers
    conditions: dict[str, Any]  # seed, device, precision, world size (reported)
    metrics: dict[str, MetricEntry] = field(default_factory=dict)
    sample_ids: list[str] = field(default_factory=list)
    # pass -> sample id -> record, for the passes that gated dataset-level metrics re-accumulate
    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    error: str = ""
    fingerprint: dict[str, Any] | None = None  # the task as the run stored it (rebuilds its evaluators)

    @property
    def key(self) -> str:
        return job_key(self.model, self.dataset, self.task)


@dataclass
class Snapshot:
    jobs: dict[str, JobEntry]
    source: dict[str, Any]


def job_key(model: str, dataset: str, task: str) -> str:
    return f"{model} | {dataset} | {task}"


def metric_key(metric: str, params: dict[str, Any]) -> str:
    if not params:
        return metric
    return metric + " " + json.dumps(params, sort_keys=True, separators=(",", ":"))


# --- reading a run directory -------------------------------------------------------------------------------
def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise GateInputError(f"{path}: no such file (is {run_dir} a run directory?)")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise GateInputError(f"{path}: unreadable ({exc})") from None
    if not isinstance(rows, list):
        raise GateInputError(f"{path}: expected a list of result rows")
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise GateInputError(f"{path}: row {number}: expected an object")
        needed = ROW_FIELDS if row.get("status", "ok") == "ok" else ("status", "model", "dataset", "task")
        missing = [name for name in needed if name not in row]
        if missing:
            raise GateInputError(f"{path}: row {number}: missing field {missing[0]!r}")
    return rows


def snapshot_run(run_dir: Path, policy: GatePolicy | None = None, keep_records: bool = True) -> Snapshot:
    """Everything the gate needs from a run. ``keep_records``: keep per-image records of dataset-level
    metrics (for a baseline, only those the policy gates)."""
    run_dir = Path(run_dir)
    policy = policy or GatePolicy()
    rows = read_rows(run_dir)
    jobs: dict[str, JobEntry] = {}
    for row in rows:
        entry = _job(row)
        job = jobs.setdefault(entry.key, entry)
        if row.get("status", "ok") != "ok":
            job.status, job.error = str(row["status"]), str(row.get("error") or "")
            continue
        if row.get("metric") is None:
            continue
        metric = _metric(row)
        job.metrics[metric.key] = metric
    job_rows = {}
    for row in rows:
        if row.get("status", "ok") == "ok" and row.get("metric") is not None:
            job_rows.setdefault(job_key(row["model"], row["dataset"], row["task"]), row["job_key"])
    for key, job in jobs.items():
        if key in job_rows:
            _attach_evidence(job, run_dir / "samples" / f"{job_rows[key]}.jsonl.gz", policy, keep_records)
    first = rows[0] if rows else {}
    env = (first.get("provenance") or {}).get("env") or {}
    return Snapshot(jobs, {"run_dir": run_dir.name, "suite": first.get("suite"),
                           "env": {k: env[k] for k in sorted(env) if isinstance(env[k], (str, int, float))}})


def _job(row: dict[str, Any]) -> JobEntry:
    provenance = row.get("provenance") or {}
    dataset = provenance.get("dataset") or {}
    model = provenance.get("model") or {}
    task = provenance.get("task") or {}
    protocol = {
        "dataset": {name: dataset.get(name) for name in DATASET_FIELDS},
        "dataset_fingerprint": provenance.get("dataset_fingerprint"),
        "sample_ids_sha256": provenance.get("sample_ids_sha256"),
        "task": {"kind": task.get("kind", row.get("task_kind")), "params": task.get("params", {}),
                 **({"evaluators": task["evaluators"]} if task.get("evaluators") else {})},
    }
    protocol["dataset"]["split"] = dataset.get("split", row.get("split"))
    preprocess = model.get("preprocess") or {}
    identity = {"weights_sha256": model.get("weights_sha256", row.get("weights_sha256")),
                "arch": model.get("arch", row.get("arch")),
                "preprocess": {name: preprocess.get(name) for name in PREPROCESS_FIELDS}}
    conditions = {name: row.get(name) for name in ("seed", "device", "precision", "world_size")}
    device = ((provenance.get("env") or {}).get("device") or "").partition(":")[0]
    if device:  # cpu | cuda: "device" holds the CPU model or the GPU name
        conditions["device_type"] = device
    return JobEntry(row["model"], row["dataset"], row["task"], row.get("task_kind", ""), row.get("status", "ok"),
                    protocol, identity, conditions, fingerprint=task or None)


def _metric(row: dict[str, Any]) -> MetricEntry:
    return MetricEntry(row["metric"], dict(row.get("params") or {}), _nan_if_none(row.get("value")), row.get("n"),
                       _float(row.get("ci_low")), _float(row.get("ci_high")), row.get("unit") or "",
                       row.get("direction") or "none", row.get("metric_kind") or "value", bool(row.get("headline")))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _attach_evidence(job: JobEntry, path: Path, policy: GatePolicy, keep_records: bool) -> None:
    """Per-sample outcomes, per-image records and timing series from the job's samples file, if any."""
    try:
        if not records_present(path):  # a run without --log-samples: the gate falls back to the counts
            return
        state, meta = load_records(path)
    except RecordsError as exc:  # its message names the file and what is wrong with it
        raise GateInputError(str(exc)) from None
    except (OSError, ValueError, KeyError, EOFError, zlib.error) as exc:  # EOFError: a truncated gzip
        raise GateInputError(f"{path}: unreadable per-sample records ({exc})") from None
    job.sample_ids = [sid for sid in state.records if not sid.startswith("{")]  # timing series ids are JSON
    try:
        evaluator = evidence.stored_evaluator(job.fingerprint, meta)
        for metric in job.metrics.values():
            _attach_metric(job, metric, state, evaluator, policy, keep_records)
    except ValueError as exc:
        raise GateInputError(f"{path}: {exc}") from None


def _attach_metric(job: JobEntry, metric: MetricEntry, state: EvalState, evaluator: Evaluator | None,
                   policy: GatePolicy, keep_records: bool) -> None:
    if metric.kind == "proportion":
        vector = evidence.outcome_vector(evaluator, metric.metric, metric.params, state)
        if vector and metric.n == len(vector) and abs(sum(vector.values()) / len(vector) - metric.value) > 1e-9:
            raise ValueError(f"per-sample outcomes of {metric.key} give {sum(vector.values()) / len(vector):.6g} "
                             f"but the result row says {metric.value:.6g}")
        metric.outcomes = vector or None  # no outcomes: the gate falls back to the counts
    elif metric.kind == "timing":
        metric.series = evidence.timing_series(metric.params, state)
    elif metric.kind == "dataset":
        found = evidence.resampled(evaluator, metric.metric, metric.params)
        if found is None:
            return
        metric.resampled = found
        if keep_records and (policy is None or policy.gated(metric.metric, metric.kind, metric.headline,
                                                            metric.direction)):
            for pass_name in (*found.passes, *found.given):
                if pass_name not in job.records:
                    job.records[pass_name] = dict(state.pass_records(pass_name))


# --- baseline file -----------------------------------------------------------------------------------------
def save_baseline(run_dir: Path, path: Path, policy: GatePolicy | None = None) -> Path:
    """Write the baseline of ``run_dir`` to ``path``; refuses a run with failed jobs (a baseline with holes)."""
    snapshot = snapshot_run(run_dir, policy, keep_records=True)
    if not snapshot.jobs:
        raise GateInputError(f"{Path(run_dir) / 'results.json'}: no job to save; a baseline needs at least one")
    failed = [key for key, job in snapshot.jobs.items() if job.status != "ok"]
    if failed:
        raise GateInputError(f"{Path(run_dir) / 'results.json'}: job {failed[0]} has status "
                             f"{snapshot.jobs[failed[0]].status!r}; a baseline needs every job to succeed")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json(snapshot), sort_keys=True, indent=1, allow_nan=False) + "\n"
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)
    return path


def to_json(snapshot: Snapshot) -> dict[str, Any]:
    sample_sets: dict[str, list[str]] = {}
    jobs = {}
    for key, job in sorted(snapshot.jobs.items()):
        ids_key = None
        if job.sample_ids:
            ids_key = hashlib.sha256("\n".join(job.sample_ids).encode()).hexdigest()[:16]
            sample_sets[ids_key] = job.sample_ids
        jobs[key] = {
            "model": job.model, "dataset": job.dataset, "task": job.task, "task_kind": job.task_kind,
            "protocol": job.protocol, "identity": job.identity, "conditions": job.conditions,
            "sample_ids": ids_key,
            "records": {pass_name: [records.get(sid) for sid in job.sample_ids]
                        for pass_name, records in sorted(job.records.items())} or None,
            "metrics": {m.key: _metric_json(m, job.sample_ids) for m in job.metrics.values()},
        }
    return {"format": FORMAT, "version": VERSION, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec="seconds"), "source": snapshot.source, "sample_sets": sample_sets, "jobs": jobs}


def _metric_json(metric: MetricEntry, ids: list[str]) -> dict[str, Any]:
    out = {"metric": metric.metric, "params": metric.params, "value": _finite(metric.value), "n": metric.n,
           "ci_low": _finite(metric.ci_low), "ci_high": _finite(metric.ci_high), "unit": metric.unit,
           "direction": metric.direction, "kind": metric.kind, "headline": metric.headline}
    if metric.outcomes is not None:
        out["success"] = _hex([bool(metric.outcomes.get(sid)) for sid in ids])
        present = [sid in metric.outcomes for sid in ids]
        if not all(present):
            out["present"] = _hex(present)
    if metric.series is not None:
        out["series"] = [float(f"{v:.6g}") for v in metric.series]
    return out


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _hex(bits: list[bool]) -> str:
    return np.packbits(np.asarray(bits, dtype=bool)).tobytes().hex()


def _unhex(text: str, count: int) -> list[bool]:
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:count].astype(bool).tolist()


def load_baseline(path: Path) -> Snapshot:
    """Read a baseline file; errors (GateInputError, one line) name the file and the field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GateInputError(f"{path}: no such baseline file") from None
    except OSError as exc:
        raise GateInputError(f"{path}: unreadable ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GateInputError(f"{path}: not a baseline: not UTF-8 text (byte {exc.start} of {len(raw)})") from None
    if not text.strip():
        raise GateInputError(f"{path}: empty file, not a baseline")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise GateInputError(f"{path}: truncated: the JSON stops at line {exc.lineno} column {exc.colno} "
                                 f"before the document is complete ({exc.msg})") from None
        raise GateInputError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise GateInputError(f"{path}: not a baseline: JSON nested too deeply") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GateInputError(f"{path}: format: not a {FORMAT} file")
    if data.get("version") not in READABLE_VERSIONS:
        raise GateInputError(f"{path}: version: {data.get('version')!r} is not supported (expected one of "
                             f"{', '.join(map(str, READABLE_VERSIONS))})")
    try:
        validate(data)
    except SchemaError as exc:
        raise GateInputError(f"{path}: {exc}") from None
    return _from_json(data)


class SchemaError(ValueError):
    """A baseline field that does not hold what the format says: ``"<field>: <why>"``."""

    def __init__(self, where: list[Any], why: str) -> None:
        super().__init__(f"{field_path(where)}: {why}")


def field_path(parts: list[Any]) -> str:
    """``jobs['resnet | digits | classification'].metrics.top1.value``."""
    text = ""
    for part in parts:
        plain = isinstance(part, str) and part.isidentifier()
        text += (("." if text else "") + part) if plain else f"[{part!r}]"
    return text


def _kind_of(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _need(value: Any, types: tuple[type, ...], where: list[Any], what: str, optional: bool = False) -> Any:
    if value is None and optional:
        return value
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise SchemaError(where, f"expected {what}, got {_kind_of(value)}" + (
            f" {value!r}" if isinstance(value, (str, int, float)) and len(repr(value)) < 40 else ""))
    return value


def _number(value: Any, where: list[Any], optional: bool = True) -> None:
    _need(value, (int, float), where, "a number" + (" or null" if optional else ""), optional)
    if value is not None and not math.isfinite(value):
        raise SchemaError(where, f"{value} (not a finite number; a baseline writes null for a missing value)")


def validate(data: dict[str, Any]) -> None:
    """Every field the gate reads, with its type; raises SchemaError naming the first bad one."""
    sets = _need(data.get("sample_sets", {}), (dict,), ["sample_sets"], "an object of sample id lists")
    for name, ids in sets.items():
        _need(ids, (list,), ["sample_sets", name], "a list of sample ids")
        if not all(isinstance(i, str) for i in ids):
            raise SchemaError(["sample_sets", name], "expected a list of sample ids (strings)")
    _need(data.get("source", {}), (dict,), ["source"], "an object", optional=True)
    _need((data.get("source") or {}).get("suite"), (str,), ["source", "suite"], "a suite name", optional=True)
    if "jobs" not in data:
        raise SchemaError(["jobs"], "missing")
    jobs = _need(data["jobs"], (dict,), ["jobs"], "an object of jobs")
    if not jobs:
        raise SchemaError(["jobs"], "empty: the baseline holds no job to compare with")
    for key, job in jobs.items():
        where = ["jobs", key]
        _need(job, (dict,), where, "an object")
        for name in ("model", "dataset", "task", "task_kind"):
            if name not in job:
                raise SchemaError([*where, name], "missing")
            _need(job[name], (str,), [*where, name], "a string")
        if key != job_key(job["model"], job["dataset"], job["task"]):
            raise SchemaError(where, f"the key does not match its model | dataset | task "
                                     f"({job_key(job['model'], job['dataset'], job['task'])!r})")
        for name in ("protocol", "identity", "conditions"):
            if name not in job:
                raise SchemaError([*where, name], "missing")
            _need(job[name], (dict,), [*where, name], "an object")
        _need(job["protocol"].get("dataset", {}), (dict,), [*where, "protocol", "dataset"], "an object")
        _need(job["protocol"].get("task", {}), (dict,), [*where, "protocol", "task"], "an object")
        _need(job["identity"].get("preprocess", {}), (dict,), [*where, "identity", "preprocess"], "an object",
              optional=True)
        ids_key = _need(job.get("sample_ids"), (str,), [*where, "sample_ids"], "a sample_sets key or null", True)
        if ids_key is not None and ids_key not in sets:
            raise SchemaError([*where, "sample_ids"], f"{ids_key!r} is not in sample_sets")
        count = len(sets[ids_key]) if ids_key is not None else 0
        records = _need(job.get("records"), (dict, list), [*where, "records"], "an object of lists by pass, or null",
                        optional=True)
        for pass_name, listed in _records_by_pass(records).items():
            _need(listed, (list,), [*where, "records", pass_name], "a list of records")
            if len(listed) != count:
                raise SchemaError([*where, "records", pass_name], f"{len(listed)} records for {count} sample ids")
        if "metrics" not in job:
            raise SchemaError([*where, "metrics"], "missing")
        metrics = _need(job["metrics"], (dict,), [*where, "metrics"], "an object of metrics")
        for name, metric in metrics.items():
            _validate_metric(metric, [*where, "metrics", name], name, count)


def _validate_metric(metric: Any, where: list[Any], name: str, count: int) -> None:
    _need(metric, (dict,), where, "an object")
    for field_name in ("metric", "params", "value", "n", "ci_low", "ci_high", "unit", "direction", "kind",
                       "headline"):
        if field_name not in metric:
            raise SchemaError([*where, field_name], "missing")
    _need(metric["metric"], (str,), [*where, "metric"], "a metric name")
    _need(metric["params"], (dict,), [*where, "params"], "an object")
    if name != metric_key(metric["metric"], metric["params"]):
        raise SchemaError(where, f"the key does not match its metric and params "
                                 f"({metric_key(metric['metric'], metric['params'])!r})")
    for field_name in ("value", "ci_low", "ci_high"):
        _number(metric[field_name], [*where, field_name])
    if metric["n"] is not None and (_need(metric["n"], (int,), [*where, "n"], "a whole number or null") < 0):
        raise SchemaError([*where, "n"], f"{metric['n']} (negative)")
    _need(metric["unit"], (str,), [*where, "unit"], "a string")
    if metric["direction"] not in ("higher", "lower", "none"):
        raise SchemaError([*where, "direction"], f"{metric['direction']!r} is not higher, lower or none")
    if metric["kind"] not in ("proportion", "dataset", "timing", "value"):
        raise SchemaError([*where, "kind"], f"{metric['kind']!r} is not proportion, dataset, timing or value")
    _need(metric["headline"], (bool,), [*where, "headline"], "true or false")
    if metric["kind"] == "proportion" and metric["value"] is not None and not 0 <= metric["value"] <= 1:
        raise SchemaError([*where, "value"], f"{metric['value']} is not a proportion (0 to 1)")
    for bits in ("success", "present"):
        if bits in metric:
            text = _need(metric[bits], (str,), [*where, bits], "hex digits")
            expected = 2 * -(-count // 8)
            if len(text) != expected or any(c not in "0123456789abcdef" for c in text.lower()):
                raise SchemaError([*where, bits], f"expected {expected} hex digits (one bit per sample id), "
                                                  f"got {len(text)} characters")
    if "series" in metric and metric["series"] is not None:
        _need(metric["series"], (list,), [*where, "series"], "a list of numbers")
        for number, value in enumerate(metric["series"]):
            _number(value, [*where, "series", number], optional=False)


def _from_json(data: dict[str, Any]) -> Snapshot:
    sets = data.get("sample_sets") or {}
    jobs = {}
    for key, raw in data["jobs"].items():
        ids = list(sets[raw["sample_ids"]]) if raw.get("sample_ids") else []
        job = JobEntry(raw["model"], raw["dataset"], raw["task"], raw["task_kind"], "ok", raw["protocol"],
                       raw["identity"], raw["conditions"], sample_ids=ids)
        for pass_name, listed in _records_by_pass(raw.get("records")).items():
            job.records[pass_name] = {sid: rec for sid, rec in zip(ids, listed) if rec is not None}
        for m in raw["metrics"].values():
            entry = MetricEntry(m["metric"], m["params"], _nan_if_none(m["value"]), m["n"], m["ci_low"],
                                m["ci_high"], m["unit"], m["direction"], m["kind"], m["headline"],
                                series=m.get("series"))
            if "success" in m:
                success = _unhex(m["success"], len(ids))
                present = _unhex(m["present"], len(ids)) if "present" in m else [True] * len(ids)
                entry.outcomes = {sid: ok for sid, ok, here in zip(ids, success, present) if here}
            job.metrics[entry.key] = entry
        jobs[key] = job
    return Snapshot(jobs, data.get("source") or {})


def _records_by_pass(records: Any) -> dict[str, Any]:
    """A baseline's ``records`` by pass (version 1 kept one list: the main pass's)."""
    if isinstance(records, list):
        return {MAIN_PASS: records}
    return dict(records or {})


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)
