"""Calibration metrics on real logits (the zoo ResNet and ViT on the digits test set, their logits scaled to
spread the confidences over the bins) against torchmetrics' MulticlassCalibrationError, torch's
cross_entropy, scikit-learn's brier-style squared error, and hand-written adaptive ECE and AURC."""
from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from harness import run_suite
from harness.data.digits import DigitsSource
from harness.evaluation.calibration import CalibrationEvaluator
from harness.models.loaders import load_model
from harness.specs import ModelSpec
from tests.conftest import zoo_suite
from tests.evaluating import outputs_for


def digits_logits(model_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    from harness.zoo import DIGITS_MEAN, DIGITS_STD

    loaded = load_model(ModelSpec(name=model_name, source="zoo"))
    source = DigitsSource("test")
    images = torch.from_numpy(source.images).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(DIGITS_MEAN).view(1, 3, 1, 1), torch.tensor(DIGITS_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = loaded.module.net((images - mean) / std)
    return logits, torch.from_numpy(source.labels).long()


@pytest.mark.parametrize("model_name, scale", [("resnet_digits", 0.75), ("vit_digits", 1.0), ("resnet_digits", 1.0)])
def test_calibration_metrics_equal_torchmetrics_and_torch_on_real_logits(model_name, scale, one_thread):
    logits, labels = digits_logits(model_name)
    logits = logits * scale  # a cooler softmax: confidences across all 15 bins, not only the top one
    evaluator = CalibrationEvaluator(bins=15)
    ids = [str(i) for i in range(len(labels))]
    state = evaluator.process(SimpleNamespace(ids=ids[:200], labels=labels[:200]), outputs_for(evaluator, logits[:200]))
    state.merge(evaluator.process(SimpleNamespace(ids=ids[200:], labels=labels[200:]), outputs_for(evaluator, logits[200:])))
    ours = {m.name: m.value for m in evaluator.compute(state)}
    for name, norm in (("ece", "l1"), ("rms_ce", "l2"), ("max_ce", "max")):
        reference = MulticlassCalibrationError(num_classes=10, n_bins=15, norm=norm)(logits, labels)
        assert ours[name] == pytest.approx(float(reference), abs=1e-6), name
    assert ours["nll"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), abs=1e-6)
    probabilities = logits.double().softmax(-1).numpy()
    onehot = np.eye(10)[labels.numpy()]
    assert ours["brier"] == pytest.approx(float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))), abs=1e-6)
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels.numpy()
    order = np.argsort(confidence)
    parts = np.array_split(order, 15)
    adaptive = sum(abs(correct[p].mean() - confidence[p].mean()) * len(p) for p in parts) / len(order)
    assert ours["adaptive_ece"] == pytest.approx(adaptive, abs=1e-6)
    risks = [np.mean(~correct[np.argsort(-confidence, kind="stable")[:k]]) for k in range(1, len(order) + 1)]
    assert ours["aurc"] == pytest.approx(float(np.mean(risks)), abs=1e-9)
    assert len(np.unique(np.minimum((confidence * 15).astype(int), 15))) >= 5  # the bins are exercised
    assert 0 < ours["ece"] <= ours["rms_ce"] <= ours["max_ce"]


def test_calibration_attaches_to_a_classification_job_with_records_for_the_gate(tmp_path, write_suite, one_thread):
    suite = zoo_suite(["resnet_digits"])
    suite["tasks"][0]["evaluators"] = [{"kind": "calibration", "bins": 10}]
    frame = run_suite(write_suite(suite), out=tmp_path / "out", progress=False, limit=120)
    rows = frame.set_index("metric")
    assert {"top1", "ece", "rms_ce", "max_ce", "adaptive_ece", "nll", "brier", "aurc"} <= set(rows.index)
    assert rows.loc["ece", "n"] == 120 and rows.loc["ece", "params"] == {"bins": 10, "evaluator": "calibration"}
    records = []
    for file in (tmp_path / "out" / "samples").glob("*.jsonl.gz"):
        with gzip.open(file, "rt") as lines:
            entries = [json.loads(line) for line in lines]
            records += [e["record"] for e in entries if e.get("pass") == "main|calibration"]  # the evaluator's own
    assert all({"confidence", "correct", "nll", "brier"} <= set(r) for r in records) and len(records) == 120
    evaluator = CalibrationEvaluator(bins=10)
    statistic = evaluator.evidence("ece", {}).statistic(records)
    assert statistic(np.arange(len(records))) == pytest.approx(rows.loc["ece", "value"], abs=1e-12)
