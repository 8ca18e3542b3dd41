"""Calibration on the same logits as top-1 (no extra pass), attached to a classification job:

    evaluators: [{kind: calibration, bins: 15}]
    evaluators: [{kind: calibration, temperature: true}]   # with roles: {calibration: <held-out dataset>}

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
- ``classwise_ece``: the mean over classes of the L1 calibration error of that class's probability against
  "the label is this class" (Kull et al., 2019), same bins; accumulated as per-class bin sums.

Temperature scaling (Guo et al., 2017), ``temperature: true``: one scalar T fitted by minimising the mean NLL of
the ``calibration`` role's logits divided by T (a bounded, deterministic 1-D search over 1/T, on which the NLL
is convex), then every metric again on the evaluated split's logits divided by T (``scaling: temperature``),
and T itself (metric ``temperature``). T never sees the scored split: a calibration split sharing a sample id
with it is refused. The records then keep each sample's logits (over the dataset's classes), for the fit and
for rescoring; after-T rows have no per-sample evidence of their own (T is a fit over another split).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outputs, Resampled, Statistic, of_roles, role_of
from harness.evaluation.state import EvalState, Record, float32_list
from harness.evaluation.topk import restrict_to
from harness.metrics import Metric, declare
from harness.registry import EVALUATORS

AT_BOUND = ("the fitted temperature is at the search bound (the calibration split is separable, so the NLL has "
            "no finite minimiser): the after-T numbers are not a calibration")
CAVEAT = ("temperature_at_bound", AT_BOUND)
BINNED = "top-1 confidence in {bins} equal-width bins (torchmetrics' binning)"
FIELDS = ("confidence", "correct")
declare("ece", "lower", kind="dataset", range=(0.0, 1.0), record_fields=FIELDS,
        description="expected calibration error (L1)", caveat=CAVEAT, protocol=BINNED)
declare("rms_ce", "lower", kind="dataset", range=(0.0, 1.0), record_fields=FIELDS,
        description="RMS calibration error (L2)", caveat=CAVEAT, protocol=BINNED)
declare("max_ce", "lower", kind="dataset", range=(0.0, 1.0), record_fields=FIELDS,
        description="maximum calibration error", caveat=CAVEAT, protocol=BINNED)
declare("adaptive_ece", "lower", kind="dataset", range=(0.0, 1.0), record_fields=FIELDS,
        description="adaptive ECE (equal-mass bins)", caveat=CAVEAT)
declare("nll", "lower", kind="dataset", record_fields=("nll",), description="mean negative log-likelihood",
        caveat=CAVEAT)
declare("brier", "lower", kind="dataset", range=(0.0, 2.0), record_fields=("brier",),
        description="multi-class Brier score", caveat=CAVEAT)
declare("aurc", "lower", kind="dataset", range=(0.0, 1.0), record_fields=FIELDS,
        description="area under the risk-coverage curve", caveat=CAVEAT)
declare("classwise_ece", "lower", kind="value", range=(0.0, 1.0), description="classwise ECE (L1, mean over classes)",
        caveat=CAVEAT,
        protocol="each class's probability in {bins} equal-width bins against the label being that class")
declare("temperature", "none", kind="value", headline=False, record_fields=("logits", "label"),
        description="temperature fitted on the calibration split", caveat=CAVEAT,
        protocol="T minimising the mean NLL of logits / T on the calibration role's split (bounded search, 1/T "
                 "in [0.01, 100])")
declare("reliability_accuracy", "none", kind="value", headline=False, range=(0.0, 1.0),
        description="accuracy in a confidence bin (reliability diagram)", protocol=BINNED)
declare("reliability_confidence", "none", kind="value", headline=False, range=(0.0, 1.0),
        description="mean top-1 confidence in a bin (reliability diagram)", protocol=BINNED)
declare("temperature_at_bound", "lower", headline=False, description="1 when the fitted temperature is at the search bound")
SCALING_NONE, SCALING_TEMPERATURE = "none", "temperature"
INVERSE_TEMPERATURE_RANGE = (0.01, 100.0)


def bin_index(values: torch.Tensor, bins: int) -> torch.Tensor:
    """torchmetrics' bins of [0, 1]: ``[b_i, b_i+1)`` for ``bins`` equal widths, 1.0 in a bin of its own."""
    boundaries = torch.linspace(0, 1, bins + 1, dtype=torch.float32)
    return torch.bucketize(values.float(), boundaries, right=True) - 1


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int, norm: str) -> float:
    """Binned calibration error with the norm ``l1`` | ``l2`` | ``max``, binned as torchmetrics bins."""
    conf = torch.as_tensor(confidence, dtype=torch.float32)
    index = bin_index(conf, bins).numpy()
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


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int, params: dict[str, Any]) -> list[Metric]:
    """The reliability diagram as detail rows: per non-empty bin (``bin`` 0..bins-1, a confidence of 1 in the
    last) its accuracy and mean confidence, n the samples in it."""
    index = np.minimum(bin_index(torch.as_tensor(confidence, dtype=torch.float32), bins).numpy(), bins - 1)
    rows = []
    for b in np.unique(index):
        inside = index == b
        where = {**params, "bin": int(b)}
        rows += [Metric("reliability_accuracy", float(np.mean(correct[inside])), int(inside.sum()), where),
                 Metric("reliability_confidence", float(np.mean(confidence[inside])), int(inside.sum()), where)]
    return rows


def adaptive_ece(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    order = np.argsort(confidence, kind="stable")
    total = len(order)
    return float(sum(abs(np.mean(correct[part]) - np.mean(confidence[part])) * len(part) / total
                     for part in np.array_split(order, bins) if len(part)))


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(~correct[order].astype(bool))
    return float(np.mean(errors / np.arange(1, len(order) + 1)))


def class_bin_sums(probabilities: torch.Tensor, labels: torch.Tensor, bins: int) -> np.ndarray:
    """Per class and bin of that class's probability: [count, probability sum, label-is-class count]
    (classes x (bins + 1) x 3), a sum that merges across batches, ranks and shards."""
    classes = probabilities.shape[-1]
    index = bin_index(probabilities, bins)  # samples x classes
    flat = (torch.arange(classes) * (bins + 1) + index).reshape(-1)
    is_label = torch.nn.functional.one_hot(labels, classes).reshape(-1).double()
    sums = torch.zeros(3, classes * (bins + 1), dtype=torch.float64)
    sums[0].index_add_(0, flat, torch.ones_like(is_label))
    sums[1].index_add_(0, flat, probabilities.double().reshape(-1))
    sums[2].index_add_(0, flat, is_label)
    return sums.reshape(3, classes, bins + 1).permute(1, 2, 0).numpy()


def classwise_ece(sums: np.ndarray) -> float:
    count, probability, hits = (np.asarray(sums, float)[..., i] for i in range(3))
    gap = np.abs(hits - probability)  # the per-bin |accuracy - confidence| times the bin's count
    return float(np.mean(gap.sum(axis=1) / count.sum(axis=1)))


def sample_fields(logits: torch.Tensor, labels: torch.Tensor) -> list[dict[str, Any]]:
    """Per sample: top-1 confidence, whether top-1 is right, NLL of the label and the multi-class Brier score."""
    logits = logits.double()
    probabilities = logits.softmax(dim=-1)
    confidence, predicted = probabilities.max(dim=-1)
    nll = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    brier = ((probabilities - torch.nn.functional.one_hot(labels, probabilities.shape[-1])) ** 2).sum(dim=-1)
    return [{"confidence": c, "correct": p == y, "nll": n, "brier": b} for c, p, y, n, b in
            zip(confidence.float().tolist(), predicted.tolist(), labels.tolist(), nll.tolist(), brier.tolist())]


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """T minimising the mean NLL of ``logits / T``: a bounded scalar search over 1/T (convex in 1/T)."""
    from scipy.optimize import minimize_scalar

    logits = logits.double()

    def nll(log_inverse: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits * np.exp(log_inverse), labels))

    low, high = np.log(INVERSE_TEMPERATURE_RANGE)
    found = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-7})
    return float(np.exp(-found.x))


@dataclass
class Columns:
    """The per-sample fields of a pass as arrays (one conversion per pass; a resample indexes them)."""

    confidence: np.ndarray
    correct: np.ndarray
    nll: np.ndarray
    brier: np.ndarray

    @classmethod
    def of(cls, records: list[Record]) -> "Columns":
        return cls(np.array([r["confidence"] for r in records], dtype=float),
                   np.array([r["correct"] for r in records], dtype=bool),
                   np.array([r["nll"] for r in records], dtype=float),
                   np.array([r["brier"] for r in records], dtype=float))

    def take(self, idx: np.ndarray) -> "Columns":
        return Columns(self.confidence[idx], self.correct[idx], self.nll[idx], self.brier[idx])


def calibration_metrics(bins: int) -> dict[str, Callable[[Columns], float]]:
    """Each metric as a function of a pass's columns (the whole pass, or a resample of it)."""
    return {
        "ece": lambda c: calibration_error(c.confidence, c.correct, bins, "l1"),
        "rms_ce": lambda c: calibration_error(c.confidence, c.correct, bins, "l2"),
        "max_ce": lambda c: calibration_error(c.confidence, c.correct, bins, "max"),
        "adaptive_ece": lambda c: adaptive_ece(c.confidence, c.correct, bins),
        "nll": lambda c: float(np.mean(c.nll)),
        "brier": lambda c: float(np.mean(c.brier)),
        "aurc": lambda c: aurc(c.confidence, c.correct),
    }


@EVALUATORS.register("calibration")
class CalibrationEvaluator(Evaluator):
    dataset_roles = {"calibration": "one"}

    @dataclass
    class Params:
        bins: int = 15
        temperature: bool = False  # fit T on the job's ``calibration`` role and report every metric after it too

        def validate(self, where: Any) -> None:
            if not 1 <= self.bins <= 1000:
                raise where.at("bins").error("bins must be an integer from 1 to 1000")

    @classmethod
    def check_roles(cls, params: "CalibrationEvaluator.Params", roles: dict[str, list[str]], where: Any) -> None:
        if params.temperature and "calibration" not in roles:
            raise where.at("temperature").error("temperature scaling fits T on a held-out split: give the task "
                                                "roles: {calibration: <dataset>} (never the scored one)")
        if "calibration" in roles and not params.temperature:
            raise where.error("the task names a calibration dataset but calibration has temperature: false")

    @classmethod
    def attach(cls, params: "CalibrationEvaluator.Params", meta: dict[str, Any]) -> "CalibrationEvaluator":
        fit_pass = next(iter(of_roles(meta.get("role_classes"), ("calibration",))), None)
        return cls(params.bins, meta.get("valid_classes"), fit_pass if params.temperature else None,
                   (meta.get("role_classes") or {}).get(fit_pass))

    def __init__(self, bins: int = 15, valid_classes: Sequence[int] | None = None, fit_pass: str | None = None,
                 fit_classes: Sequence[int] | None = None) -> None:
        """``fit_pass``: the pass over the calibration split (``calibration:<dataset>``) when T is fitted."""
        self.bins, self.valid_classes, self.fit_pass, self.fit_classes = bins, valid_classes, fit_pass, fit_classes

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        state = EvalState()
        if outputs.pass_name not in (MAIN_PASS, self.fit_pass):
            return state
        main = outputs.pass_name == MAIN_PASS
        logits = restrict_to(outputs["logits"], self.valid_classes if main else self.fit_classes).float()
        labels = batch.labels.to(logits.device)
        fields = sample_fields(logits, labels) if main else [{} for _ in batch.ids]
        for sample_id, record, row, label in zip(batch.ids, fields, logits, labels.tolist()):
            if self.fit_pass:
                record.update(label=label, logits=float32_list(row))
            state.add_record(sample_id, outputs.pass_name, record)
        if main:
            state.add_sum(f"{MAIN_PASS}/classwise_bins", class_bin_sums(logits.double().softmax(-1).cpu(),
                                                                        labels.cpu(), self.bins))
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        records = [r for _, r in state.pass_records(MAIN_PASS)]
        if not records:
            raise ValueError("calibration: the evaluated pass has no samples")
        params = {"bins": self.bins, "scaling": SCALING_NONE}
        columns = Columns.of(records)
        metrics = [Metric(name, value(columns), len(records), params)
                   for name, value in calibration_metrics(self.bins).items()]
        metrics.append(Metric("classwise_ece", classwise_ece(state.sums[f"{MAIN_PASS}/classwise_bins"]),
                              len(records), params))
        metrics += reliability(columns.confidence, columns.correct, self.bins, params)
        if self.fit_pass:
            metrics += self._after_temperature(state, records)
        return metrics

    def _after_temperature(self, state: EvalState, records: list[Record]) -> list[Metric]:
        fit = dict(state.pass_records(self.fit_pass))
        if not fit:
            raise ValueError(f"calibration: the calibration split ({self.fit_pass}) has no samples")
        shared = fit.keys() & {sample_id for sample_id, _ in state.pass_records(MAIN_PASS)}
        if shared:
            raise ValueError(f"calibration: the calibration split shares {len(shared)} samples with the scored split "
                             f"(e.g. {min(shared)!r}); fit the temperature on held-out data")
        fit_logits, fit_labels = logits_and_labels(list(fit.values()))
        temperature = fit_temperature(fit_logits, fit_labels)
        separable = bool((fit_logits.argmax(-1) == fit_labels).all())  # NLL falls all the way to T = 0
        logits, labels = logits_and_labels(records)
        scaled = sample_fields(logits / temperature, labels)
        params = {"bins": self.bins, "scaling": SCALING_TEMPERATURE, "fit_on": role_of(self.fit_pass)["dataset"]}
        at_bound = float(separable or not 1.01 / INVERSE_TEMPERATURE_RANGE[1] < temperature
                         < 0.99 / INVERSE_TEMPERATURE_RANGE[0])
        metrics = [Metric("temperature", temperature, len(fit), {"fit_on": params["fit_on"]}),
                   Metric("temperature_at_bound", at_bound, None, {"fit_on": params["fit_on"]}),
                   Metric("temperature_at_bound", at_bound, None, params)]
        columns = Columns.of(scaled)
        metrics += [Metric(name, value(columns), len(scaled), params)
                    for name, value in calibration_metrics(self.bins).items()]
        sums = class_bin_sums((logits / temperature).softmax(-1), labels, self.bins)
        metrics.append(Metric("classwise_ece", classwise_ece(sums), len(scaled), params))
        return metrics + reliability(columns.confidence, columns.correct, self.bins, params)

    def evidence(self, metric: str, params: dict[str, Any]) -> Resampled | None:
        """The scored split resampled; after T, the temperature fitted once on the calibration split held fixed."""
        value = calibration_metrics(self.bins).get(metric)
        scaled = params.get("scaling", SCALING_NONE) == SCALING_TEMPERATURE
        if value is None or (scaled and not self.fit_pass):
            return None

        def prepare(records: list[Record], *calibration: list[Record]) -> Statistic:
            if calibration:
                temperature = fit_temperature(*logits_and_labels(calibration[0]))
                logits, labels = logits_and_labels(records)
                records = sample_fields(logits / temperature, labels)
            columns = Columns.of(records)
            return lambda idx: value(columns.take(np.asarray(idx)))

        return Resampled((MAIN_PASS,), prepare, (self.fit_pass,) if scaled else ())


def logits_and_labels(records: list[Record]) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        return (torch.tensor([r["logits"] for r in records], dtype=torch.float64),
                torch.tensor([r["label"] for r in records], dtype=torch.long))
    except KeyError:
        raise ValueError("calibration: the records keep no logits (the job ran without temperature: true)") from None
