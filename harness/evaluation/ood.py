"""Out-of-distribution detection on the same forward pass as top-1, attached to a classification job:

    roles: {ood_near: [letters], ood_far: [textures, noise], fit: digits-train}
    evaluators: [{kind: ood, detectors: [msp, maxlogit, energy, mahalanobis, knn]}]

Every detector (harness/evaluation/ood_detectors.py) scores the evaluated split (in-distribution) and each
OOD set; per OOD set and detector the job reports AUROC, FPR@95TPR, AUPR-In and AUPR-Out
(harness/evaluation/ood_metrics.py, OpenOOD v1.5's conventions) and, per detector, their means over the near
and over the far sets (``dataset: mean``). Records keep each sample's logit-detector scores and, when a
feature detector runs, its penultimate features (float32), so ``rescore`` recomputes everything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outputs, Resampled, Statistic, of_roles, role_of
from harness.evaluation.ood_detectors import OOD_DETECTORS, Detector
from harness.evaluation.ood_metrics import aupr_in, aupr_out, auroc, fpr_at_tpr, roc_points
from harness.evaluation.state import EvalState, Record, float32_list
from harness.evaluation.topk import restrict_to
from harness.metrics import Metric, declare
from harness.registry import EVALUATORS

OOD_ROLES = ("ood_near", "ood_far")
FIT_ROLE = "fit"
SCORES = "higher detector score = more in-distribution; OOD is the positive class"
declare("ood_auroc", "higher", kind="dataset", range=(0.0, 1.0), description="OOD detection AUROC", protocol=SCORES)
declare("ood_fpr95", "lower", kind="dataset", range=(0.0, 1.0), description="FPR at 95% TPR",
        protocol="OpenOOD's: the fraction of in-distribution samples flagged as OOD at the first threshold that "
                 "flags 95% of the OOD samples")
declare("ood_aupr_in", "higher", kind="dataset", range=(0.0, 1.0), description="AUPR, in-distribution positive",
        protocol="average precision of the score, in-distribution samples the positives")
declare("ood_aupr_out", "higher", kind="dataset", range=(0.0, 1.0), description="AUPR, OOD positive",
        protocol="average precision of the negated score, OOD samples the positives")
declare("ood_roc_tpr", "none", kind="value", headline=False, range=(0.0, 1.0),
        description="ROC curve: OOD detected at a false-positive rate", protocol="the largest TPR (OOD positive) "
        "at an FPR of at most the row's fpr, fpr on a grid of 0.05")
ROC_GRID = np.round(np.linspace(0, 1, 21), 2)
OOD_METRICS = {"ood_auroc": auroc, "ood_fpr95": fpr_at_tpr, "ood_aupr_in": aupr_in, "ood_aupr_out": aupr_out}


@EVALUATORS.register("ood")
class OODEvaluator(Evaluator):
    needs = ("logits", "features")
    dataset_roles = {"ood_near": "many", "ood_far": "many", FIT_ROLE: "one"}

    @dataclass
    class Params:
        detectors: list[str] = field(default_factory=lambda: ["msp", "maxlogit", "energy", "mahalanobis", "knn"])
        energy_temperature: float = 1.0
        k: int = 50  # knn's neighbour

        def validate(self, where: Any) -> None:
            unknown = [d for d in self.detectors if d not in OOD_DETECTORS]
            if not self.detectors or unknown:
                raise where.at("detectors").error(f"unknown OOD detector {unknown[0] if unknown else None!r} "
                                                  f"(known: {', '.join(OOD_DETECTORS.list())})")
            if not self.energy_temperature > 0:
                raise where.at("energy_temperature").error("energy_temperature must be positive")
            if self.k < 1:
                raise where.at("k").error("k must be a positive integer")

    @classmethod
    def check_roles(cls, params: "OODEvaluator.Params", roles: dict[str, list[str]], where: Any) -> None:
        if not any(role in roles for role in OOD_ROLES):
            raise where.error("ood needs OOD datasets: give the task roles: {ood_near: [...]} and/or {ood_far: [...]}")
        featured = [d for d in params.detectors if OOD_DETECTORS.get(d).uses_features]
        if featured and FIT_ROLE not in roles:
            raise where.at("detectors").error(f"detector {featured[0]} fits statistics on the training split: give "
                                              "the task roles: {fit: <dataset>}")

    @classmethod
    def attach(cls, params: "OODEvaluator.Params", meta: dict[str, Any]) -> "OODEvaluator":
        roles = meta.get("role_classes") or {}
        return cls(params, meta.get("valid_classes"), list(of_roles(roles, OOD_ROLES)),
                   next(iter(of_roles(roles, (FIT_ROLE,))), None))

    def __init__(self, params: "OODEvaluator.Params", valid_classes: Sequence[int] | None, ood_passes: list[str],
                 fit_pass: str | None) -> None:
        self.params, self.valid_classes, self.ood_passes, self.fit_pass = params, valid_classes, ood_passes, fit_pass
        self.detectors: dict[str, Detector] = {
            name: OOD_DETECTORS.get(name)(energy_temperature=params.energy_temperature, k=params.k)
            for name in params.detectors}
        self.uses_features = any(d.uses_features for d in self.detectors.values())

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        state = EvalState()
        scored = outputs.pass_name in (MAIN_PASS, *self.ood_passes)
        if not scored and outputs.pass_name != self.fit_pass:
            return state
        logits = restrict_to(outputs["logits"], self.valid_classes).float().cpu()
        features = outputs["features"].float().cpu().numpy() if self.uses_features else None
        scores = {name: d.score(logits, None, None) for name, d in self.detectors.items()
                  if scored and not d.uses_features}
        for i, sample_id in enumerate(batch.ids):
            record: Record = {"scores": {name: float(s[i]) for name, s in scores.items()}} if scored else \
                {"label": int(batch.labels[i])}
            if features is not None:
                record["features"] = float32_list(features[i])
            state.add_record(sample_id, outputs.pass_name, record)
        return state

    def scores(self, state: EvalState) -> dict[str, dict[str, np.ndarray]]:
        """pass name -> detector -> the scores of its samples (in evaluation order): what the metrics and the
        report's ROC curves are drawn from."""
        fit = [r for _, r in state.pass_records(self.fit_pass)] if self.fit_pass and self.uses_features else []
        fitted = self._fitted(fit, list(self.detectors))
        by_pass = {}
        for pass_name in (MAIN_PASS, *self.ood_passes):
            records = [r for _, r in state.pass_records(pass_name)]
            if not records:
                raise ValueError(f"ood: pass {pass_name!r} has no samples")
            by_pass[pass_name] = {name: self._score(name, records, fitted) for name in self.detectors}
        return by_pass

    def _fitted(self, fit: list[Record], detectors: list[str]) -> dict[str, Any]:
        """detector -> its statistics fitted on the fit split's features (feature detectors only)."""
        featured = [name for name in detectors if self.detectors[name].uses_features]
        if not featured:
            return {}
        if not fit:
            raise ValueError("ood: the fit split has no samples (feature detectors need roles: {fit: ...})")
        features = np.array([r["features"] for r in fit], dtype=np.float64)
        labels = np.array([r["label"] for r in fit])
        return {name: self.detectors[name].fit(features, labels) for name in featured}

    def _score(self, detector: str, records: list[Record], fitted: dict[str, Any]) -> np.ndarray:
        if detector in fitted:
            return self.detectors[detector].score(None, np.array([r["features"] for r in records], dtype=np.float64),
                                                  fitted[detector])
        return np.array([r["scores"][detector] for r in records], dtype=np.float64)

    def evidence(self, metric: str, params: dict[str, Any]) -> Resampled | None:
        """A row's paired bootstrap: in-distribution and OOD samples resampled within each (the fit split
        held fixed); a mean row resamples every set of its role."""
        value, detector = OOD_METRICS.get(metric), params.get("detector")
        if value is None or detector not in self.detectors:
            return None
        sets = [p for p in self.ood_passes if role_of(p)["role"] == params.get("role")
                and params.get("dataset") in ("mean", role_of(p)["dataset"])]
        given = (self.fit_pass,) if self.detectors[detector].uses_features and self.fit_pass else ()
        if not sets:
            return None

        def prepare(inside: list[Record], *rest: list[Record]) -> Statistic:
            fitted = self._fitted(rest[len(sets)] if given else [], [detector])
            blocks = [self._score(detector, records, fitted) for records in (inside, *rest[:len(sets)])]
            scores, ends = np.concatenate(blocks), np.cumsum([len(b) for b in blocks])

            def statistic(idx: np.ndarray) -> float:
                parts = [scores[idx[(idx >= start) & (idx < end)]] for start, end in zip([0, *ends[:-1]], ends)]
                return float(np.mean([value(parts[0], outside) for outside in parts[1:]]))
            return statistic

        return Resampled((MAIN_PASS, *sets), prepare, given)

    def compute(self, state: EvalState) -> list[Metric]:
        scores = self.scores(state)
        metrics = []
        for detector in self.detectors:
            inside = scores[MAIN_PASS][detector]
            for role in OOD_ROLES:
                rows = []
                for pass_name in (p for p in self.ood_passes if role_of(p)["role"] == role):
                    outside = scores[pass_name][detector]
                    params = {"detector": detector, **role_of(pass_name)}
                    rows += [Metric(name, value(inside, outside), len(outside), params)
                             for name, value in OOD_METRICS.items()]
                    metrics += roc_rows(inside, outside, params)
                metrics += rows
                if rows:
                    for name in OOD_METRICS:
                        values = [m for m in rows if m.name == name]
                        metrics.append(Metric(name, float(np.mean([m.value for m in values])),
                                              sum(m.n for m in values),
                                              {"detector": detector, "role": role, "dataset": "mean"}))
        return metrics


def roc_rows(inside: np.ndarray, outside: np.ndarray, params: dict[str, Any]) -> list[Metric]:
    """The ROC curve (OOD positive) as detail rows on a fixed FPR grid, for the report's curves."""
    fpr, tpr = roc_points(inside, outside)
    return [Metric("ood_roc_tpr", float(tpr[fpr <= limit + 1e-12].max()), len(outside), {**params, "fpr": float(limit)})
            for limit in ROC_GRID]
