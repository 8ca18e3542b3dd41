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
    assert rows.loc["ece", "n"] == 120 and rows.loc["ece", "params"] == {"bins": 10, "scaling": "none",
                                                                 "evaluator": "calibration"}
    records = []
    for file in (tmp_path / "out" / "samples").glob("*.jsonl.gz"):
        with gzip.open(file, "rt") as lines:
            entries = [json.loads(line) for line in lines]
            records += [e["record"] for e in entries if e.get("pass") == "main|calibration"]  # the evaluator's own
    assert all({"confidence", "correct", "nll", "brier"} <= set(r) for r in records) and len(records) == 120
    evaluator = CalibrationEvaluator(bins=10)
    statistic = evaluator.evidence("ece", {}).statistic({"main": records})
    assert statistic(np.arange(len(records))) == pytest.approx(rows.loc["ece", "value"], abs=1e-12)


def test_classwise_ece_equals_a_by_hand_loop_over_classes_and_bins(one_thread):
    logits, labels = digits_logits("vit_digits")
    logits = logits * 0.5
    evaluator = CalibrationEvaluator(bins=15)
    state = evaluator.process(SimpleNamespace(ids=[str(i) for i in range(len(labels))], labels=labels),
                              outputs_for(evaluator, logits))
    ours = {m.name: m.value for m in evaluator.compute(state)}
    probabilities = logits.float().softmax(-1).numpy()
    per_class = []
    for c in range(10):
        p, hit = probabilities[:, c], (labels.numpy() == c)
        edges = np.linspace(0, 1, 16, dtype=np.float32)
        index = np.searchsorted(edges, p, side="right") - 1
        per_class.append(sum(abs(hit[index == b].mean() - p[index == b].mean()) * (index == b).sum()
                             for b in range(16) if (index == b).any()) / len(p))
    assert ours["classwise_ece"] == pytest.approx(float(np.mean(per_class)), abs=1e-6)
    assert 0 < ours["classwise_ece"] < ours["ece"]  # a class's probability is mostly near 0, and right there


def test_fitted_temperature_minimises_the_nll_and_is_deterministic(one_thread):
    from harness.evaluation.calibration import fit_temperature

    logits, labels = digits_logits("resnet_digits")
    raw = fit_temperature(logits, labels)
    logits = logits * 3.0  # three times sharper: the fitted T must be three times larger
    found = fit_temperature(logits, labels)
    assert found == pytest.approx(3 * raw, rel=1e-4)
    grid = np.exp(np.linspace(np.log(0.1), np.log(20), 4001))
    nll = [float(torch.nn.functional.cross_entropy(logits.double() / t, labels)) for t in grid]
    assert found == pytest.approx(float(grid[int(np.argmin(nll))]), rel=2e-3)
    assert found == fit_temperature(logits, labels)


def calibrated_suite() -> dict:
    suite = zoo_suite(["resnet_digits", "vit_digits"])
    suite["datasets"] = [{"name": "digits-holdout", "kind": "digits", "split": "test-holdout"},
                         {"name": "digits-calib", "kind": "digits", "split": "test-calib"}]
    suite["tasks"][0].update(datasets=["digits-holdout"], roles={"calibration": "digits-calib"},
                             evaluators=[{"kind": "calibration", "temperature": True}])
    return suite


def test_temperature_scaling_is_fitted_on_the_calibration_split_only(tmp_path, write_suite, one_thread, monkeypatch):
    from harness.evaluation import calibration
    from harness.zoo import DIGITS_MEAN, DIGITS_STD

    seen = []
    fit = calibration.fit_temperature
    monkeypatch.setattr(calibration, "fit_temperature", lambda logits, labels: seen.append((logits, labels)) or fit(logits, labels))
    from harness.report import render

    monkeypatch.setattr(render, "write_report", lambda *args, **kwargs: None)  # its scorecard refits T from records
    frame = run_suite(write_suite(calibrated_suite()), out=tmp_path / "out", progress=False)
    assert len(seen) == 2  # one fit per model
    mean, std = torch.tensor(DIGITS_MEAN).view(1, 3, 1, 1), torch.tensor(DIGITS_STD).view(1, 3, 1, 1)
    for (logits, labels), name in zip(seen, ["resnet_digits", "vit_digits"]):
        by_split = {}
        for split in ("test-calib", "test-holdout"):
            source = DigitsSource(split)
            images = torch.from_numpy(source.images).permute(0, 3, 1, 2).float() / 255
            with torch.no_grad():
                by_split[split] = load_model(ModelSpec(name=name, source="zoo")).module.net((images - mean) / std)
        assert torch.allclose(logits.float(), by_split["test-calib"], atol=1e-4)  # what the fit saw: the calib split
        assert torch.equal(labels, torch.from_numpy(DigitsSource("test-calib").labels))
        assert logits.shape[0] == 225 and not torch.allclose(logits.float(), by_split["test-holdout"], atol=1e-2)
    rows = frame[frame["model"] == "vit_digits"]
    temperature = rows[rows["metric"] == "temperature"].iloc[0]
    assert temperature["n"] == 225 and temperature["params"] == {"fit_on": "digits-calib", "evaluator": "calibration"}
    assert temperature["value"] == pytest.approx(fit(*seen[1]), rel=1e-9)
    by_scaling = {(r["metric"], r["params"]["scaling"]): r for _, r in rows.iterrows() if "scaling" in r["params"]}
    for name in ("ece", "rms_ce", "max_ce", "adaptive_ece", "classwise_ece", "nll", "brier", "aurc"):
        assert by_scaling[(name, "none")]["n"] == by_scaling[(name, "temperature")]["n"] == 225
    source = DigitsSource("test-holdout")
    images = torch.from_numpy(source.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        holdout = load_model(ModelSpec(name="vit_digits", source="zoo")).module.net((images - mean) / std)
    expected = torch.nn.functional.cross_entropy(holdout.double() / temperature["value"],
                                                 torch.from_numpy(source.labels).long())
    assert by_scaling[("nll", "temperature")]["value"] == pytest.approx(float(expected), abs=1e-5)


def test_a_calibration_split_sharing_samples_with_the_scored_split_is_refused(one_thread):
    logits, labels = digits_logits("resnet_digits")
    evaluator = CalibrationEvaluator(bins=15, fit_pass="calibration:digits-test")
    ids = [f"test/{i:04d}" for i in range(len(labels))]
    state = evaluator.process(SimpleNamespace(ids=ids, labels=labels), outputs_for(evaluator, logits))
    state.merge(evaluator.process(SimpleNamespace(ids=ids[:50], labels=labels[:50]),
                                  outputs_for(evaluator, logits[:50], pass_name="calibration:digits-test")))
    with pytest.raises(ValueError, match=r"shares 50 samples with the scored split \(e.g. 'test/0000'\)"):
        evaluator.compute(state)


@pytest.mark.parametrize("change, message", [
    ({"roles": None}, r"evaluators\[0\].temperature: temperature scaling fits T on a held-out split"),
    ({"evaluators": [{"kind": "calibration"}]}, r"names a calibration dataset but calibration has temperature: false"),
])
def test_temperature_scaling_without_its_split_stops_the_suite(tmp_path, write_suite, change, message):
    from harness.suite import load_suite
    from harness.schema import SuiteError

    suite = calibrated_suite()
    suite["tasks"][0].update(change)
    if change.get("roles", 1) is None:
        del suite["tasks"][0]["roles"]
    with pytest.raises(SuiteError, match=message):
        load_suite(write_suite(suite))


def test_a_temperature_at_the_search_bound_is_flagged_on_every_after_T_row(one_thread):
    from harness.metrics import metric_info

    logits, labels = digits_logits("resnet_digits")
    right = logits.argmax(-1) == labels  # a separable calibration split: the NLL falls as T goes to 0
    evaluator = CalibrationEvaluator(bins=15, fit_pass="calibration:separable")
    ids = [f"test/{i:04d}" for i in range(len(labels))]
    state = evaluator.process(SimpleNamespace(ids=ids[:200], labels=labels[:200]), outputs_for(evaluator, logits[:200]))
    fit_ids = [i for i in range(200, len(labels)) if right[i]]
    state.merge(evaluator.process(SimpleNamespace(ids=[ids[i] for i in fit_ids], labels=labels[fit_ids]),
                                  outputs_for(evaluator, logits[fit_ids], pass_name="calibration:separable")))
    rows = evaluator.compute(state)
    flags = {json.dumps(m.params, sort_keys=True): m.value for m in rows if m.name == "temperature_at_bound"}
    temperature = next(m for m in rows if m.name == "temperature")
    assert temperature.value < 0.05 and flags[json.dumps(temperature.params)] == 1.0
    for m in rows:
        if m.params.get("scaling") == "temperature" and m.name in ("ece", "nll", "brier", "classwise_ece"):
            assert metric_info(m.name).caveat[0] == "temperature_at_bound"
            assert flags[json.dumps(m.params, sort_keys=True)] == 1.0  # the caveat's flag row, same params
