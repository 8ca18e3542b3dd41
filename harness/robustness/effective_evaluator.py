"""Effective robustness as an evaluator attached to a classification job with ``shifted`` datasets:

    tasks:
      - kind: classification
        roles: {shifted: [printed, printed-hard]}
        evaluators: [{kind: effective_robustness, testbed: digits}]

From the same forward passes as top-k (no second pass), for each shifted dataset: the model's relative
robustness (shifted - in-distribution top-1) and its effective robustness against the testbed's trend for
that shift (harness/robustness/testbeds.py), each with a 95% bootstrap interval over the model's samples
(the trend held fixed), and the trend it was placed on (slope, intercept, R², number of models) as detail
rows. A model whose in-distribution accuracy lies outside the testbed's range is placed on an extrapolated
line: its ``trend_extrapolated`` row is 1, and the report marks its effective robustness so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from harness.evaluation.evaluator import MAIN_PASS, Resampled, Statistic, of_roles, role_pass
from harness.evaluation.real_labels import real_label_set, real_label_sets, timm_real_labels
from harness.evaluation.state import EvalState, Record
from harness.evaluation.topk import TopKEvaluator
from harness.metrics import Metric, declare
from harness.registry import EVALUATORS
from harness.robustness.effective import SCALES, bootstrap_accuracies, percentile_interval
from harness.robustness.testbeds import BadTestbedError, Placement, UnknownShiftError, trend_of

PROTOCOL = ("shifted top-1 minus the testbed trend's prediction from in-distribution top-1 (Taori et al., 2020); "
            "95% interval: bootstrap over the model's samples, trend held fixed")
REAL_SHIFT = "imagenet-real"  # the timm testbed's name for ImageNet val scored with the ReaL label sets
EXTRAPOLATED = "in-distribution top-1 outside the testbed's range: the trend is extrapolated"
declare("effective_robustness", "higher", kind="value", range=(-1.0, 1.0), record_fields=("label", "topk"),
        description="effective robustness: shifted top-1 above the testbed's trend", protocol=PROTOCOL,
        caveat=("trend_extrapolated", EXTRAPOLATED))
declare("trend_extrapolated", "lower", headline=False, description=f"1 when the {EXTRAPOLATED}")
declare("relative_robustness", "higher", kind="value", range=(-1.0, 1.0), record_fields=("label", "topk"),
        description="relative robustness: shifted minus in-distribution top-1")
for _name, _what in (("trend_slope", "slope"), ("trend_intercept", "intercept"), ("trend_r2", "R²"),
                     ("trend_models", "number of testbed models")):
    declare(_name, "higher", headline=False, description=f"the testbed trend's {_what}")


@EVALUATORS.register("effective_robustness")
class EffectiveRobustnessEvaluator(TopKEvaluator):
    """Top-1 records on the evaluated and the shifted passes, placed on a testbed's trend in ``compute``."""

    @dataclass
    class Params:
        testbed: str = "timm"  # timm | digits | the path of a testbed CSV
        scale: str = "logit"
        subset: str = "all"  # fit on all testbed models, or on one family's
        shifts: dict[str, str] = field(default_factory=dict)  # shifted dataset -> testbed shift (default: same name)
        # also place the evaluated pass's ImageNet-ReaL top-1 (the same val images, their reassessed label sets)
        # on the testbed's imagenet-real trend
        real: bool = False
        resamples: int = 2000
        seed: int = 0

        def validate(self, where: Any) -> None:
            if self.scale not in SCALES:
                raise where.error(f"scale must be one of {', '.join(SCALES)}, not {self.scale!r}")
            if self.resamples < 100:
                raise where.error("resamples must be at least 100")

    @classmethod
    def check_roles(cls, params: "EffectiveRobustnessEvaluator.Params", roles: dict[str, list[str]],
                    where: Any) -> None:
        shifted = roles.get("shifted", [])
        if not shifted and not params.real:
            raise where.error("effective_robustness needs shifted datasets: give the task roles: {shifted: [...]} "
                              "(or real: true on ImageNet val)")
        for dataset in params.shifts:
            if dataset not in shifted:
                raise where.at("shifts").error(f"{dataset!r} is not one of the task's shifted datasets "
                                               f"({', '.join(shifted)})")
        for dataset in shifted + ([REAL_SHIFT] if params.real else []):
            try:
                trend_of(params.testbed, params.shifts.get(dataset, dataset), params.scale,  # type: ignore[arg-type]
                         params.subset)
            except UnknownShiftError as exc:
                if dataset == REAL_SHIFT and dataset not in shifted:
                    raise where.at("real").error(f"{exc}: real: true needs a testbed with it") from None
                raise where.at("shifts" if dataset in params.shifts else "testbed").error(
                    f"shifted dataset {dataset!r}: {exc} (map it with shifts: {{{dataset}: <testbed shift>}})") from None
            except BadTestbedError as exc:
                raise where.at("testbed").error(str(exc)) from None

    @classmethod
    def attach(cls, params: "EffectiveRobustnessEvaluator.Params", meta: dict[str, Any]) -> "EffectiveRobustnessEvaluator":
        return cls(params, meta.get("valid_classes"), of_roles(meta.get("role_classes"), ("shifted",)))

    def __init__(self, params: "EffectiveRobustnessEvaluator.Params", valid_classes: Sequence[int] | None = None,
                 role_classes: dict[str, Sequence[int] | None] | None = None) -> None:
        super().__init__((1,), valid_classes, MAIN_PASS, role_classes)
        self.params = params
        if not self.role_classes and not params.real:
            raise ValueError("effective_robustness needs shifted datasets: give the task roles: {shifted: [...]}")

    def compute(self, state: EvalState) -> list[Metric]:
        id_hits = self._hits(state, MAIN_PASS)
        metrics = []
        for pass_name in self.role_classes:
            role, _, dataset = pass_name.partition(":")
            metrics += self._placed(id_hits, self._hits(state, pass_name), role, dataset,
                                    self.params.shifts.get(dataset, dataset))
        if self.params.real:
            scored = [(r["topk"][0], real) for sample_id, r in state.pass_records(MAIN_PASS)
                      if (real := real_label_set(sample_id, real_label_sets(timm_real_labels())))]
            metrics += self._placed(id_hits, np.array([top in real for top, real in scored], dtype=bool),
                                    "shifted", REAL_SHIFT, self.params.shifts.get(REAL_SHIFT, REAL_SHIFT))
        return metrics

    def _placed(self, id_hits: np.ndarray, hits: np.ndarray, role: str, dataset: str, shift: str) -> list[Metric]:
        """The model placed on the trend for one shift: effective and relative robustness with their intervals
        (the two sets resampled independently: conservative for ReaL, whose images are the val images), and the
        trend itself as detail rows."""
        try:
            trend = trend_of(self.params.testbed, shift, self.params.scale, self.params.subset)  # type: ignore[arg-type]
        except BadTestbedError as exc:
            raise ValueError(f"effective_robustness on {dataset!r}: {exc}") from None  # changed since validation
        if not len(hits):
            raise ValueError(f"effective_robustness: {dataset!r} has no scored samples")
        placed = Placement(trend, float(id_hits.mean()), float(hits.mean()))
        params = {"role": role, "dataset": dataset, "testbed": trend.testbed, "shift": shift,
                  "scale": trend.scale, "subset": trend.subset}
        id_draws, shifted_draws = bootstrap_accuracies(id_hits, hits, self.params.resamples, self.params.seed)
        low, high = percentile_interval(trend.effective_robustness(id_draws, shifted_draws))
        relative = percentile_interval(shifted_draws - id_draws)
        return [
            Metric("effective_robustness", placed.effective_robustness, len(hits), params, low, high),
            Metric("relative_robustness", placed.relative_robustness, len(hits), params, *relative),
            Metric("trend_slope", trend.slope, None, params), Metric("trend_intercept", trend.intercept, None, params),
            Metric("trend_r2", trend.r2, None, params), Metric("trend_models", trend.n_models, None, params),
            Metric("trend_extrapolated", float(placed.extrapolated), None, params),
        ]

    def _hits(self, state: EvalState, pass_name: str) -> np.ndarray:
        hits = np.array([r["label"] == r["topk"][0] for _, r in state.pass_records(pass_name)], dtype=bool)
        if not len(hits):
            raise ValueError(f"effective_robustness: pass {pass_name!r} has no samples")
        return hits

    def evidence(self, metric: str, params: dict[str, Any]) -> Resampled | None:
        """Effective and relative robustness re-accumulated from the in-distribution and the shifted pass (each
        resampled within itself, the trend held fixed, as the row's own interval is). ReaL rows, whose shifted
        outcomes are the val images' own, name none: the gate tests them by their intervals."""
        if metric not in ("effective_robustness", "relative_robustness") or params.get("dataset") == REAL_SHIFT:
            return None
        shifted = role_pass(params.get("role", "shifted"), params["dataset"])
        trend = trend_of(self.params.testbed, params.get("shift", params["dataset"]), self.params.scale,  # type: ignore[arg-type]
                         self.params.subset) if metric == "effective_robustness" else None

        def prepare(id_records: list[Record], shifted_records: list[Record]) -> Statistic:
            hits = np.array([r["label"] == r["topk"][0] for r in (*id_records, *shifted_records)], dtype=float)
            split = len(id_records)

            def statistic(positions: np.ndarray) -> float:
                id_accuracy = hits[positions[positions < split]].mean()
                shifted_accuracy = hits[positions[positions >= split]].mean()
                if trend is None:
                    return float(shifted_accuracy - id_accuracy)
                return float(trend.effective_robustness(id_accuracy, shifted_accuracy))

            return statistic

        return Resampled((MAIN_PASS, shifted), prepare)
