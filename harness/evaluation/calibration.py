"""Calibration on the same logits as top-1 (no extra pass), attached to a classification job:

    evaluators: [{kind: calibration, bins: 15}]

Per sample the record keeps the top-1 confidence (softmax over the dataset's classes), whether top-1 is
right, the negative log-likelihood of the label and the multi-class Brier score; every metric is an
accumulation over those records, so the gate re-accumulates it over a paired bootstrap of samples.

- ``ece`` / ``rms_ce`` / ``max_ce``: the calibration error over ``bins`` equal-width confidence bins with the L1,
  L2 (root of the weighted mean squared gap) and max norm, binned as torchmetrics' ``MulticlassCalibrationError``
  bins (``[b_i, b_i+1)``; a confidence of exactly 1 in a bin of its own).
- ``adaptive_ece``: L1 over equal-mass bins (the confidences sorted and split into ``bins`` near-equal parts).
- ``nll``: mean negative log-likelihood; ``brier``: mean over samples of the summed squared error between the
  softmax and the one-hot label (0 to 2).
- ``aurc``: area under the risk-coverage curve of selective prediction (samples kept most confident first,
  ties in sample order; the mean of the error rate over the N coverages k/N).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outputs, Resampled, Statistic
from harness.evaluation.state import EvalState, Record
from harness.evaluation.topk import restrict_to
from harness.metrics import Metric, declare
from harness.registry import EVALUATORS

BINNED = "top-1 confidence in {bins} equal-width bins (torchmetrics' binning)"
FIELDS = ("confidence", "correct")
declare("ece", "lower", kind="value", range=(0.0, 1.0), record_fields=FIELDS,
        description="expected calibration error (L1)", protocol=BINNED)
declare("rms_ce", "lower", kind="value", range=(0.0, 1.0), record_fields=FIELDS,
        description="RMS calibration error (L2)", protocol=BINNED)
declare("max_ce", "lower", kind="value", range=(0.0, 1.0), record_fields=FIELDS,
        description="maximum calibration error", protocol=BINNED)
declare("adaptive_ece", "lower", kind="value", range=(0.0, 1.0), record_fields=FIELDS,
        description="adaptive ECE (equal-mass bins)")
declare("nll", "lower", kind="value", record_fields=("nll",), description="mean negative log-likelihood")
declare("brier", "lower", kind="value", range=(0.0, 2.0), record_fields=("brier",),
        description="multi-class Brier score")
declare("aurc", "lower", kind="value", range=(0.0, 1.0), record_fields=FIELDS,
        description="area under the risk-coverage curve")


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int, norm: str) -> float:
    """Binned calibration error with the norm ``l1`` | ``l2`` | ``max``, binned as torchmetrics bins."""
    conf = torch.as_tensor(confidence, dtype=torch.float32)
    boundaries = torch.linspace(0, 1, bins + 1, dtype=torch.float32)
    index = (torch.bucketize(conf, boundaries, right=True) - 1).numpy()
    count = np.bincount(index, minlength=bins + 1).astype(float)
    seen = count > 0
    gap = np.zeros(bins + 1)
    gap[seen] = np.abs(np.bincount(index, weights=np.asarray(correct, float), minlength=bins + 1)[seen]
                       - np.bincount(index, weights=conf.double().numpy(), minlength=bins + 1)[seen]) / count[seen]
    weight = count / count.sum()
    if norm == "l1":
        return float(np.sum(gap * weight))
    if norm == "l2":
        return float(np.sqrt(np.sum(gap ** 2 * weight)))
    return float(gap.max())


def adaptive_ece(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    order = np.argsort(confidence, kind="stable")
    total = len(order)
    return float(sum(abs(np.mean(correct[part]) - np.mean(confidence[part])) * len(part) / total
                     for part in np.array_split(order, bins) if len(part)))


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(~correct[order].astype(bool))
    return float(np.mean(errors / np.arange(1, len(order) + 1)))


def arrays(records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([r["confidence"] for r in records], dtype=float),
            np.array([r["correct"] for r in records], dtype=bool))


def calibration_metrics(bins: int) -> dict[str, Callable[[list[Record]], float]]:
    """Each metric as a function of a list of records (the whole pass, or a resample of it)."""
    return {
        "ece": lambda rs: calibration_error(*arrays(rs), bins, "l1"),
        "rms_ce": lambda rs: calibration_error(*arrays(rs), bins, "l2"),
        "max_ce": lambda rs: calibration_error(*arrays(rs), bins, "max"),
        "adaptive_ece": lambda rs: adaptive_ece(*arrays(rs), bins),
        "nll": lambda rs: float(np.mean([r["nll"] for r in rs])),
        "brier": lambda rs: float(np.mean([r["brier"] for r in rs])),
        "aurc": lambda rs: aurc(*arrays(rs)),
    }


@EVALUATORS.register("calibration")
class CalibrationEvaluator(Evaluator):
    @dataclass
    class Params:
        bins: int = 15

        def validate(self, where: Any) -> None:
            if not 1 <= self.bins <= 1000:
                raise where.at("bins").error("bins must be an integer from 1 to 1000")

    @classmethod
    def attach(cls, params: "CalibrationEvaluator.Params", meta: dict[str, Any]) -> "CalibrationEvaluator":
        return cls(params.bins, meta.get("valid_classes"))

    def __init__(self, bins: int = 15, valid_classes: Sequence[int] | None = None) -> None:
        self.bins, self.valid_classes = bins, valid_classes

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        state = EvalState()
        if outputs.pass_name != MAIN_PASS:
            return state
        logits = restrict_to(outputs["logits"], self.valid_classes).float()
        probabilities = logits.softmax(dim=-1)
        confidence, predicted = probabilities.max(dim=-1)
        labels = batch.labels.to(logits.device)
        nll = torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none")
        onehot = torch.nn.functional.one_hot(labels, probabilities.shape[-1]).double()
        brier = ((probabilities.double() - onehot) ** 2).sum(dim=-1)
        for sample_id, c, p, label, n, b in zip(batch.ids, confidence.tolist(), predicted.tolist(), labels.tolist(),
                                                nll.tolist(), brier.tolist()):
            state.add_record(sample_id, MAIN_PASS, {"confidence": c, "correct": p == label, "nll": n, "brier": b})
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        records = [r for _, r in state.pass_records(MAIN_PASS)]
        if not records:
            raise ValueError("calibration: the evaluated pass has no samples")
        params = {"bins": self.bins}
        return [Metric(name, value(records), len(records), params)
                for name, value in calibration_metrics(self.bins).items()]

    def evidence(self, metric: str, params: dict[str, Any]) -> Resampled | None:
        value = calibration_metrics(self.bins).get(metric)
        if value is None:
            return None

        def prepare(records: list[Record]) -> Statistic:
            return lambda idx: value([records[i] for i in idx])

        return Resampled(MAIN_PASS, prepare)
