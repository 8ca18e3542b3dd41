"""The gate on OOD detection: AUROC and friends compared by a paired bootstrap whose draws resample the
in-distribution and the OOD samples each within itself, the fit split held fixed (real zoo runs)."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from harness.cli import main
from harness.gate import gate
from harness.gate.baseline import load_baseline, snapshot_run
from harness.gate.evidence import resampled, stored_evaluator
from harness.evaluation.state import load_records

pytestmark = pytest.mark.slow


def _suite(tmp_path, name: str, arch: str) -> str:
    suite = {"name": "gated-ood", "version": 1, "defaults": {"batch_size": 256, "seed": 0},
             "models": [{"name": "net", "source": "zoo", "arch": arch}],
             "datasets": [{"name": "digits-holdout", "kind": "digits", "split": "test-holdout"},
                          {"name": "digits-train", "kind": "digits", "split": "train"},
                          {"name": "letters", "kind": "printed-letters", "split": "letters"},
                          {"name": "noise", "kind": "texture-patches", "split": "noise"}],
             "tasks": [{"kind": "classification", "params": {"topk": [1]}, "datasets": ["digits-holdout"],
                        "roles": {"fit": "digits-train", "ood_near": ["letters"], "ood_far": ["noise"]},
                        "evaluators": [{"kind": "ood", "detectors": ["msp", "knn"]}]}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def ood_baseline(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gate-ood")
    base = tmp_path / "base.json"
    assert main(["--suite", _suite(tmp_path, "main", "resnet_digits"), "--out", str(tmp_path / "main"),
                 "--no-progress", "--save-baseline", str(base)]) == 0
    return tmp_path, base


def _auroc(verdicts, detector: str, dataset: str, role: str = "ood_near"):
    return next(v for v in verdicts if v.metric == "ood_auroc" and v.params.get("detector") == detector
                and v.params.get("dataset") == dataset and v.params.get("role") == role)


def test_the_baseline_keeps_the_id_ood_and_fit_records_and_the_statistic_is_the_stored_auroc(ood_baseline):
    tmp_path, base = ood_baseline
    job = next(iter(load_baseline(base).jobs.values()))
    assert sorted(job.records) == ["fit:digits-train|ood", "main|ood", "ood_far:noise|ood", "ood_near:letters|ood"]
    assert len(job.records["main|ood"]) == 225 and len(job.records["ood_near:letters|ood"]) == 312
    # the evidence re-accumulates the stored number from the records: MSP against scikit-learn on the scores
    rows = pd.read_json(tmp_path / "main" / "results.json")
    state, meta = load_records(next((tmp_path / "main" / "samples").glob("*.jsonl.gz")))
    snapshot = snapshot_run(tmp_path / "main")
    evaluator = stored_evaluator(next(iter(snapshot.jobs.values())).fingerprint, meta)
    for detector in ("msp", "knn"):
        params = {"detector": detector, "role": "ood_near", "dataset": "letters", "evaluator": "ood"}
        found = resampled(evaluator, "ood_auroc", params)
        assert found.passes == ("main|ood", "ood_near:letters|ood")
        assert found.given == (("fit:digits-train|ood",) if detector == "knn" else ())
        statistic = found.statistic({name: list(job.records[name].values()) for name in (*found.passes, *found.given)})
        stored = rows[(rows["metric"] == "ood_auroc") & rows["params"].apply(lambda p: p == params)]["value"].item()
        assert statistic(np.arange(225 + 312)) == pytest.approx(stored, abs=1e-12)
    inside = [r["scores"]["msp"] for r in job.records["main|ood"].values()]
    outside = [r["scores"]["msp"] for r in job.records["ood_near:letters|ood"].values()]
    sklearn = roc_auc_score([0] * len(outside) + [1] * len(inside), outside + inside)
    msp = rows[(rows["metric"] == "ood_auroc") & rows["params"].apply(
        lambda p: p.get("detector") == "msp" and p.get("dataset") == "letters")]["value"].item()
    assert msp == pytest.approx(sklearn, abs=1e-12)


def test_the_same_model_passes_and_a_worse_detector_is_a_regression_by_the_stratified_bootstrap(ood_baseline):
    tmp_path, base = ood_baseline
    stream = io.StringIO()
    assert main(["--suite", _suite(tmp_path, "same", "resnet_digits"), "--out", str(tmp_path / "same"),
                 "--no-progress"]) == 0
    same = gate(tmp_path / "same", base, stream=stream, env={})
    assert same.exit_code == 0
    knn = _auroc(same.gated, "knn", "letters")
    assert knn.test == "bootstrap-paired" and knn.diff == 0 and knn.n == 225 + 312 and knn.status == "pass"
    # swin_digits under the same name: its KNN and MSP near-OOD AUROC are lower (0.80 / 0.83 vs 0.92 / 0.88)
    assert main(["--suite", _suite(tmp_path, "pr", "swin_digits"), "--out", str(tmp_path / "pr"),
                 "--no-progress"]) == 0
    worse = gate(tmp_path / "pr", base, stream=stream, env={})
    assert worse.exit_code == 1
    rows = pd.read_json(tmp_path / "pr" / "results.json")
    for detector in ("knn", "msp"):
        verdict = _auroc(worse.gated, detector, "letters")
        new = rows[(rows["metric"] == "ood_auroc") & rows["params"].apply(
            lambda p: p.get("detector") == detector and p.get("dataset") == "letters")]["value"].item()
        assert verdict.test == "bootstrap-paired" and verdict.new == pytest.approx(new, abs=1e-12)
        assert verdict.status == "regression" and verdict.ci_low <= verdict.diff <= verdict.ci_high < 0
    mean = _auroc(worse.gated, "knn", "mean")  # the near mean: its one set, resampled the same way
    assert mean.test == "bootstrap-paired" and mean.diff == pytest.approx(_auroc(worse.gated, "knn", "letters").diff)
    saved = json.loads(base.read_text())
    assert saved["version"] == 2 and isinstance(next(iter(saved["jobs"].values()))["records"], dict)
