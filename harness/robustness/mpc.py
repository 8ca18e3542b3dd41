"""Dense tasks under corruption: performance per corruption x severity, mPC and rPC.

Michaelis et al. 2019, "Benchmarking Robustness in Object Detection": with P the task's headline metric
(AP @ 0.50:0.95 for detection, mIoU for segmentation, PQ for panoptic),
  mPC = mean over corruptions c and severities s of P(c, s);  rPC = mPC / P(clean).
The images are corrupted and the targets kept (corruptions change pixels, never geometry), so each cell is
scored by the task's own evaluator against the same ground truth.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

from harness.evaluation.evaluator import Evaluator, Evidence, Outputs
from harness.evaluation.state import EvalState
from harness.metrics import Metric, declare

declare("corruption_score", "higher", headline=False, kind="dataset",
        description="the task's headline metric on one corruption x severity")
declare("mpc", "higher", kind="dataset", description="mean performance under corruption (Michaelis et al. 2019)")
declare("rpc", "higher", description="relative performance under corruption: mPC / clean performance")

# the metric mPC averages, per target kind (the one the detection/segmentation/panoptic papers quote)
HEADLINE_METRIC = {"detection": "map", "semantic": "miou", "panoptic": "pq"}
# params that tell the variants of a headline metric apart (bbox vs segm AP)
VARIANT_PARAMS = ("iou_type",)


class PerformanceUnderCorruption(Evaluator):
    """Wraps a dense task's evaluator: records every pass through it, then scores clean and each cell."""

    def __init__(self, inner: Any, metric: str, cells: Sequence[str], mode: str) -> None:
        self.inner, self.metric, self.cells, self.mode = inner, metric, list(cells), mode

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.needs

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        return self.inner.process(batch, outputs)

    def compute(self, state: EvalState) -> list[Metric]:
        """Clean P, then mPC and rPC (the columns a leaderboard shows first), the other clean metrics, then
        P per cell."""
        clean = [_tagged(m, mode=self.mode) for m in self.inner.compute(state.restricted("clean"))]
        clean_score = {_variant(m): m for m in clean if m.name == self.metric}
        n_clean = clean[0].n if clean else 0
        cells, by_variant = [], {variant: [] for variant in clean_score}
        for cell in self.cells:
            corruption, severity = cell.rsplit("/", 1)
            for m in self.inner.compute(state.restricted(cell)):
                if m.name != self.metric:
                    continue
                if m.n != n_clean:
                    raise ValueError(f"{cell}: {m.n} images scored, {n_clean} on the clean pass")
                by_variant.setdefault(_variant(m), []).append(m.value)
                cells.append(Metric("corruption_score", m.value, m.n, {
                    **m.params, "metric": self.metric, "corruption": corruption, "severity": int(severity),
                    "mode": self.mode}))
        summary = []
        for variant, values in by_variant.items():
            params = {**dict(variant), "metric": self.metric, "mode": self.mode}
            mpc = math.fsum(values) / len(values) if values else math.nan
            reference = clean_score[variant].value if variant in clean_score else math.nan
            rpc = mpc / reference if reference and not math.isnan(reference) else math.nan
            summary += [Metric("mpc", mpc, n_clean, params), Metric("rpc", rpc, n_clean, params)]
        headline = list(clean_score.values())
        return headline + summary + [m for m in clean if m.name != self.metric] + cells

    def evidence(self, metric: str, params: dict[str, Any]) -> Evidence | None:
        """A cell's score and the clean metrics: the inner evaluator's evidence on that pass."""
        if metric == "corruption_score":
            found = self.inner.evidence(self.metric, params)
            pass_name = f"{params.get('corruption')}/{params.get('severity')}"
        else:
            found = self.inner.evidence(metric, params) if metric not in ("mpc", "rpc") else None
            pass_name = "clean"
        return replace(found, pass_name=pass_name) if found is not None else None


def _variant(metric: Metric) -> tuple[tuple[str, Any], ...]:
    return tuple((k, metric.params[k]) for k in VARIANT_PARAMS if k in metric.params)


def _tagged(metric: Metric, **params: Any) -> Metric:
    return replace(metric, params={**metric.params, **params})
