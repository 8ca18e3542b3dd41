"""Baseline vs run: comparability first, then a verdict per model x dataset x metric.

Comparability: the protocol (dataset content, evaluated sample ids, split, subset, task kind and
parameters, metric definitions) must match, else the metric is "not comparable" and every differing field
is named. The model (weights, architecture, preprocessing) and the conditions (precision, device, seed)
are what the gate tests: their changes are reported and the numbers decide.

Verdicts, with gain = the difference oriented by the metric's direction (positive is better) and
tol = the policy's max_drop:
- regression: the gain's interval lies below -tol and the test is significant at alpha (or a floor is broken);
- improvement: the interval lies above 0 and the test is significant;
- inconclusive: an observed drop beyond tol that the data cannot show to be real;
- pass: anything else.
Never a pass from a broken baseline: a value that is not a number (either side), a run that scored fewer
(or other) samples than the baseline (``n``), and a gated metric the baseline lacks are "not comparable".

Exit code: 2 if any gated metric is not comparable, else 1 if any regressed or its job failed, else 0.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from harness.evaluation.evaluator import Resampled
from harness.evaluation.state import Record
import harness.gate.stats as stats
from harness.gate.baseline import JobEntry, MetricEntry, Snapshot
from harness.gate.policy import GatePolicy, MetricPolicy

FAILING = ("regression", "failed")


@dataclass
class Verdict:
    model: str
    dataset: str
    task: str
    metric: str
    params: dict[str, Any]
    status: str  # pass | regression | improvement | inconclusive | not comparable | failed | new | not gated
    gated: bool
    baseline: float | None = None
    new: float | None = None
    diff: float | None = None  # new - baseline
    ci_low: float | None = None  # interval of diff
    ci_high: float | None = None
    p_value: float | None = None
    test: str = ""
    n: int | None = None
    ratio: float | None = None  # timings: new / baseline
    unit: str = ""
    direction: str = ""
    reasons: list[str] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    model_change: str = ""  # "weights changed", "preprocessing changed: mean/std", or "" (same model)

    @property
    def label(self) -> str:
        if not self.params:
            return self.metric
        return f"{self.metric} ({', '.join(f'{k}={_short(v)}' for k, v in sorted(self.params.items()))})"

    @property
    def where(self) -> str:
        return f"{self.model} · {self.dataset} · {self.task}"


@dataclass
class JobReport:
    model: str
    dataset: str
    task: str
    protocol_changes: list[str] = field(default_factory=list)  # non-empty: not comparable
    model_changes: list[str] = field(default_factory=list)  # "weights changed", "preprocessing changed: mean/std"
    condition_changes: list[str] = field(default_factory=list)  # precision, device, seed, world size

    @property
    def summary(self) -> str:
        if self.protocol_changes:
            return "not comparable: " + "; ".join(self.protocol_changes)
        text = "; ".join(self.model_changes) or "same model and preprocessing (only code or environment changed)"
        if self.condition_changes:
            text += "; conditions changed: " + "; ".join(self.condition_changes)
        return text


@dataclass
class GateResult:
    verdicts: list[Verdict]
    jobs: list[JobReport]
    baseline: str = ""
    run: str = ""

    @property
    def gated(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.gated]

    @property
    def exit_code(self) -> int:
        statuses = {v.status for v in self.gated}
        if "not comparable" in statuses:
            return 2
        return 1 if statuses & set(FAILING) else 0

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.gated)

    def to_json(self) -> dict[str, Any]:
        """Plain data (e.g. ``gate.json`` next to a run's results, for the report)."""
        return {"exit_code": self.exit_code, "baseline": self.baseline, "run": self.run,
                "verdicts": [dataclasses.asdict(v) for v in self.verdicts],
                "jobs": [dataclasses.asdict(j) for j in self.jobs]}


def device_changes(base: dict[str, Any], new: dict[str, Any], policy: GatePolicy) -> list[str]:
    """Why a run on another device or at another precision is not compared (none when the suite allows it).

    CPU against CUDA, one GPU model against another, or another precision is refused. Two CPU models are
    comparable (a CI runner's CPU changes without notice; strict fp32 kernels there agree to rounding, which
    the paired tests absorb): the change is shown among the conditions. A baseline that predates
    ``device_type`` is compared by device name alone."""
    if policy.across_devices:
        return []
    names = ["device_type", "precision"]
    if not base.get("device_type") == new.get("device_type") == "cpu":
        names.insert(1, "device")
    return [f"{name} changed: {base.get(name)} → {new.get(name)} (a baseline is compared on the same device and "
            f"precision; set gate: {{across_devices: true}} in the suite to compare anyway)"
            for name in names
            if base.get(name) is not None and new.get(name) is not None and base.get(name) != new.get(name)]


def compare(baseline: Snapshot, run: Snapshot, policy: GatePolicy | None = None) -> GateResult:
    policy = policy or GatePolicy()
    verdicts: list[Verdict] = []
    reports: list[JobReport] = []
    for key, base_job in sorted(baseline.jobs.items()):
        new_job = run.jobs.get(key)
        report = JobReport(base_job.model, base_job.dataset, base_job.task)
        reports.append(report)
        if new_job is None:
            report.protocol_changes.append("job missing from the run")
        else:
            report.protocol_changes += differences(base_job.protocol, new_job.protocol)
            report.model_changes += model_changes(base_job.identity, new_job.identity)
            report.condition_changes += differences(base_job.conditions, new_job.conditions)
            report.protocol_changes += device_changes(base_job.conditions, new_job.conditions, policy)
        for metric in base_job.metrics.values():
            verdicts.append(_judge_metric(base_job, new_job, metric, report, policy))
        if new_job is not None:
            verdicts += [_missing_from_baseline(new_job, m, policy)
                         for k, m in new_job.metrics.items() if k not in base_job.metrics]
    for key, new_job in sorted(run.jobs.items()):
        if key not in baseline.jobs:
            verdicts += [_unjudged(new_job, m, "new", ["no baseline for this job"]) for m in new_job.metrics.values()]
    return GateResult(verdicts, reports)


def _missing_from_baseline(job: JobEntry, metric: MetricEntry, policy: GatePolicy) -> Verdict:
    """A metric of a job the baseline has, but not in the baseline's entry: when the policy gates it the
    gate cannot vouch for it (a baseline missing metrics never passes), otherwise it is just new."""
    if not policy.gated(metric.metric, metric.kind, metric.headline, metric.direction):
        return _unjudged(job, metric, "new", ["no baseline for this metric"])
    verdict = _unjudged(job, metric, "not comparable",
                        ["gated metric missing from the baseline (save a new baseline)"])
    verdict.gated = True
    return verdict


def _unjudged(job: JobEntry, metric: MetricEntry, status: str, reasons: list[str]) -> Verdict:
    return Verdict(job.model, job.dataset, job.task, metric.metric, metric.params, status, False,
                   new=metric.value, n=metric.n, unit=metric.unit, direction=metric.direction, reasons=reasons)


def _judge_metric(base_job: JobEntry, new_job: JobEntry | None, base: MetricEntry, report: JobReport,
                  policy: GatePolicy) -> Verdict:
    gated = policy.gated(base.metric, base.kind, base.headline, base.direction)
    rules = policy.for_metric(base.metric)
    verdict = Verdict(base_job.model, base_job.dataset, base_job.task, base.metric, base.params,
                      "not gated", gated, baseline=base.value, n=base.n, unit=base.unit, direction=base.direction,
                      policy=rules.describe() if gated else {},
                      model_change="; ".join(c.split(" (")[0] for c in report.model_changes))
    new = new_job.metrics.get(base.key) if new_job is not None else None
    verdict.new = None if new is None else new.value
    if new_job is not None and new_job.status != "ok":
        verdict.status, verdict.reasons = "failed", [f"job {new_job.status}: {new_job.error}".rstrip(": ")]
        return verdict
    if report.protocol_changes:
        verdict.status, verdict.reasons = "not comparable", list(report.protocol_changes)
        return verdict
    if new is None or new_job is None:
        verdict.status, verdict.reasons = "not comparable", ["metric missing from the run"]
        return verdict
    changed = [f"metric definition changed: {name} {a} → {b}" for name, a, b in
               (("direction", base.direction, new.direction), ("kind", base.kind, new.kind)) if a != b]
    if changed:
        verdict.status, verdict.reasons = "not comparable", changed
        return verdict
    missing = [f"no {side} value (null or NaN)"
               for side, v in (("baseline", base.value), ("run", new.value)) if v is None or not math.isfinite(v)]
    if missing:  # never a pass on a number that is not there
        verdict.status, verdict.reasons = "not comparable", missing
        return verdict
    samples = _sample_mismatch(base, new)
    if samples:
        verdict.status, verdict.reasons = "not comparable", [samples]
        return verdict
    comparison = _test(base_job, new_job, base, new, rules)
    verdict.p_value, verdict.test, verdict.n = comparison.p_value, comparison.test, comparison.n or new.n
    if base.kind == "timing":  # the comparison is a ratio; the difference is shown as well
        verdict.diff, verdict.ratio = new.value - base.value, comparison.diff
        status, reasons = _timing_status(comparison.diff, comparison.p_value, base.direction, rules)
    else:
        verdict.diff, verdict.ci_low, verdict.ci_high = comparison.diff, comparison.ci_low, comparison.ci_high
        status, reasons = _status(comparison, new.value, base.value, base.direction, rules)
    verdict.reasons += reasons + ([comparison.detail["note"]] if "note" in comparison.detail else [])
    verdict.status = status if gated else "not gated"
    return verdict


def _sample_mismatch(base: MetricEntry, new: MetricEntry) -> str:
    """Why the run's evidence does not cover the baseline's samples ("" when it does): a run that scored
    fewer (or other) samples than the baseline is not compared on what is left."""
    if base.kind not in ("proportion", "dataset"):
        return ""
    if base.n is not None and new.n is not None and base.n != new.n:
        fewer = "fewer" if new.n < base.n else "more"
        return f"n: {base.n} → {new.n} (the run scored {fewer} samples than the baseline)"
    if base.outcomes and new.outcomes is not None:
        lacking = sum(sid not in new.outcomes for sid in base.outcomes)
        if lacking:
            return (f"the run has no outcome for {lacking} of the baseline's {len(base.outcomes)} samples "
                    "(it scored fewer samples than the baseline)")
    return ""


def _test(base_job: JobEntry, new_job: JobEntry, base: MetricEntry, new: MetricEntry,
          rules: MetricPolicy) -> stats.Comparison:
    """The strongest test the evidence allows: paired on samples, else from the rows' counts or intervals."""
    paired = [sid for sid in base.outcomes if sid in new.outcomes] if base.outcomes and new.outcomes else []
    if base.kind == "proportion" and paired:
        comparison = stats.paired_proportions([base.outcomes[i] for i in paired],
                                              [new.outcomes[i] for i in paired], rules.alpha)
        evaluated = max(len(base.outcomes), len(new.outcomes))
        if len(paired) < evaluated:
            comparison.detail["note"] = f"paired on the {len(paired)} of {evaluated} samples both runs scored"
        return comparison
    if base.kind == "proportion" and base.n and new.n:
        return stats.unpaired_proportions(round(base.value * base.n), base.n, round(new.value * new.n), new.n,
                                          rules.alpha)
    resampled = new.resampled or base.resampled  # the same task on both sides (the protocols match)
    if base.kind == "dataset" and resampled is not None and _has_records(base_job, new_job, resampled):
        paired = {name: [sid for sid in base_job.sample_ids
                         if sid in base_job.records[name] and sid in new_job.records[name]]
                  for name in resampled.passes}

        def records(job: JobEntry) -> dict[str, list[Record]]:
            resampled_records = {name: [job.records[name][i] for i in ids] for name, ids in paired.items()}
            return {**resampled_records, **{name: list(job.records[name].values()) for name in resampled.given}}

        try:
            before, after = resampled.statistic(records(base_job)), resampled.statistic(records(new_job))
        except ValueError as exc:
            raise ValueError(f"{base.key}: {exc}") from None
        sizes = [len(ids) for ids in paired.values()]
        return stats.paired_bootstrap(sum(sizes), before, after, rules.resamples, rules.seed, rules.alpha,
                                      strata=sizes if len(sizes) > 1 else None)
    if base.kind == "timing":
        if base.series and new.series:
            return stats.compare_timings(base.series, new.series)
        return stats.Comparison("ratio", new.value / base.value if base.value else math.nan, None, None, None)
    if None not in (base.ci_low, base.ci_high, new.ci_low, new.ci_high):
        return stats.mover_difference(base.value, base.ci_low, base.ci_high, new.value, new.ci_low, new.ci_high)
    return stats.Comparison("threshold", new.value - base.value, None, None, None)


def _has_records(base_job: JobEntry, new_job: JobEntry, resampled: Resampled) -> bool:
    """Both runs kept the records of every pass the statistic re-accumulates."""
    return all(name in job.records for job in (base_job, new_job) for name in (*resampled.passes, *resampled.given))


def _status(comparison: stats.Comparison, new: float, base: float, direction: str,
            rules: MetricPolicy) -> tuple[str, list[str]]:
    sign = 1.0 if direction == "higher" else -1.0
    floor = rules.min_value if direction == "higher" else rules.max_value
    if floor is not None and sign * new < sign * floor:
        return "regression", [f"{'below the floor' if sign > 0 else 'above the ceiling'} {floor:g}"]
    gain = sign * comparison.diff
    tol = rules.tolerance(base)
    if comparison.ci_low is None or comparison.ci_high is None:  # no interval: the difference decides
        if gain < -tol:
            return "regression", [f"drop {abs(gain):.4g} beyond max_drop {tol:.4g} (no interval available)"]
        return ("improvement" if gain > 0 else "pass"), []
    low, high = sorted((sign * comparison.ci_low, sign * comparison.ci_high))
    significant = comparison.p_value is None or comparison.p_value < rules.alpha
    if significant and high < -tol:
        return "regression", []
    if significant and low > 0:
        return "improvement", []
    if gain < -tol:
        return "inconclusive", ["observed drop not significant" if not significant else
                                f"drop not shown to exceed max_drop {tol:.4g}"]
    return "pass", []


def _timing_status(ratio: float, p_value: float | None, direction: str,
                   rules: MetricPolicy) -> tuple[str, list[str]]:
    if not math.isfinite(ratio) or ratio <= 0:
        return "inconclusive", ["no ratio"]
    worse = ratio if direction == "lower" else 1 / ratio  # > 1 means slower
    significant = p_value is None or p_value < rules.alpha
    if worse > rules.max_ratio:
        if significant:
            return "regression", [f"{worse:.3g}x slower, beyond max_ratio {rules.max_ratio:g}"]
        return "inconclusive", [f"{worse:.3g}x slower, not significant"]
    if worse < 1 / rules.max_ratio and significant:
        return "improvement", [f"{1 / worse:.3g}x faster"]
    return "pass", []


# --- what changed --------------------------------------------------------------------------------------------
def differences(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Field-by-field differences of two nested dicts: ``"task.params.eps: [0.0314] → [0.0157]"``."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for name in sorted(set(before) | set(after), key=str):
            out += differences(before.get(name), after.get(name), f"{prefix}.{name}" if prefix else str(name))
        return out
    if _same(before, after):
        return []
    return [f"{prefix}: {_short(before)} → {_short(after)}"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def model_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed in the model under test, in words (details follow each headline)."""
    changes = []
    if not _same(before.get("weights_sha256"), after.get("weights_sha256")):
        changes.append(f"weights changed ({_short(before.get('weights_sha256'))} → "
                       f"{_short(after.get('weights_sha256'))})")
    if not _same(before.get("arch"), after.get("arch")):
        changes.append(f"architecture changed: {before.get('arch')} → {after.get('arch')}")
    old, new = before.get("preprocess") or {}, after.get("preprocess") or {}
    fields = [name for name in sorted(set(old) | set(new)) if not _same(old.get(name), new.get(name))]
    if fields:
        details = "; ".join(differences(old, new))
        changes.append(f"preprocessing changed: {'/'.join(fields)} ({details})")
    return changes


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"  # a sha256
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "none" if value is None else str(value)
