"""suites/uncertainty.yaml as shipped: calibration before and after a temperature fitted on the held-out
calibration half, and every OOD detector on the near and far sets, in one forward pass per batch; every row
recomputes from the records (``rescore``)."""
from __future__ import annotations

import numpy as np
import pytest

from harness import run_suite
from harness.rescore import rescore
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

DETECTORS = ["msp", "maxlogit", "energy", "mahalanobis", "knn"]


@pytest.fixture(scope="module")
def uncertainty_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("uncertainty")
    return run_suite(REPO / "suites" / "uncertainty.yaml", out=out, progress=False), out


def rows_of(frame, model, metric, **params):
    keep = frame[(frame["model"] == model) & (frame["metric"] == metric)]
    return keep[keep["params"].apply(lambda p: all(p.get(k) == v for k, v in params.items()))]


def test_every_model_gets_calibration_before_and_after_t_and_every_detector_on_every_set(uncertainty_run):
    frame, _ = uncertainty_run
    models = list(dict.fromkeys(frame["model"]))
    assert models == ["resnet_digits", "convnext_digits", "vit_digits", "swin_digits"]
    for model in models:
        assert rows_of(frame, model, "top1")["n"].tolist() == [225]
        for scaling in ("none", "temperature"):
            for metric in ("ece", "rms_ce", "max_ce", "adaptive_ece", "classwise_ece", "nll", "brier", "aurc"):
                assert rows_of(frame, model, metric, scaling=scaling)["n"].tolist() == [225], (model, metric)
        assert rows_of(frame, model, "temperature", fit_on="digits-calib")["n"].tolist() == [225]
        for detector in DETECTORS:
            for role, sets in (("ood_near", {"letters": 312}), ("ood_far", {"textures": 400, "noise": 200})):
                per_set = {}
                for dataset, n in sets.items():
                    row = rows_of(frame, model, "ood_auroc", detector=detector, role=role, dataset=dataset)
                    assert row["n"].tolist() == [n]
                    per_set[dataset] = row["value"].iloc[0]
                    roc = rows_of(frame, model, "ood_roc_tpr", detector=detector, dataset=dataset)
                    assert len(roc) == 21 and np.all(np.diff(roc["value"].to_numpy()) >= 0)  # a ROC curve rises
                mean = rows_of(frame, model, "ood_auroc", detector=detector, role=role, dataset="mean")
                assert mean["value"].iloc[0] == pytest.approx(np.mean(list(per_set.values())), abs=1e-12)
    # the feature detector separates noise from digits for every model (a sanity check on real features)
    assert (frame[(frame["metric"] == "ood_auroc") & frame["params"].apply(
        lambda p: p.get("detector") == "mahalanobis" and p.get("dataset") == "noise")]["value"] > 0.95).all()


def test_the_uncertainty_records_rescore_to_the_stored_numbers(uncertainty_run):
    _, out = uncertainty_run
    checked, problems = rescore(out)
    assert not problems and len(checked) > 4 * 200 and all(row.equal for row in checked)


def test_the_gate_re_accumulates_every_calibration_row_before_and_after_t_from_the_records(uncertainty_run):
    """The after-T rows' bootstrap holds the temperature fitted on the calibration split fixed."""
    from harness.evaluation.state import load_records
    from harness.gate.baseline import snapshot_run
    from harness.gate.evidence import resampled, stored_evaluator

    frame, out = uncertainty_run
    snapshot = snapshot_run(out)
    for key, job in snapshot.jobs.items():
        state, meta = load_records(out / "samples" / f"{frame[frame['model'] == job.model]['job_key'].iloc[0]}.jsonl.gz")
        evaluator = stored_evaluator(job.fingerprint, meta)
        for scaling in ("none", "temperature"):
            params = {"bins": 15, "scaling": scaling, "evaluator": "calibration",
                      **({"fit_on": "digits-calib"} if scaling == "temperature" else {})}
            for metric in ("ece", "nll", "brier"):
                found = resampled(evaluator, metric, params)
                assert found.given == (("calibration:digits-calib|calibration",) if scaling == "temperature" else ())
                statistic = found.statistic({name: [r for _, r in state.pass_records(name)]
                                             for name in (*found.passes, *found.given)})
                stored = rows_of(frame, job.model, metric, scaling=scaling)["value"].item()
                assert statistic(np.arange(225)) == pytest.approx(stored, abs=1e-9), (job.model, metric, scaling)
