"""The regression gate end to end on run directories of real digits classifiers (tests/gate_runs.py)."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest

import gate_runs as runs
from harness.gate import GateInputError, GatePolicy, GatePolicyError, gate, html_fragment, save_baseline
from harness.gate.baseline import load_baseline, snapshot_run
from harness.gate.output import annotations, junit_xml, markdown

MODELS = ("resnet_digits", "convnext_digits", "vit_digits", "swin_digits")


@pytest.fixture(scope="module")
def zoo():
    """Four digit classifiers of different strength (C: regularisation; fewer training images)."""
    return {name: runs.train(name, n_train=n, c=c)
            for name, n, c in zip(MODELS, (1347, 1000, 700, 1347), (1.0, 0.5, 1.0, 0.1))}


def run_of(tmp_path, name, models, **kwargs):
    return runs.write_run(tmp_path / name, [runs.classification(m, **kwargs) for m in models])


def quiet_gate(run_dir, baseline, policy=None, junit=None):
    stream = io.StringIO()
    result = gate(run_dir, baseline, policy, junit=junit, stream=stream, env={})
    return result, stream.getvalue()


@pytest.fixture(scope="module")
def baseline(zoo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("base")
    run = run_of(tmp, "main", zoo.values())
    return save_baseline(run, tmp / "baselines" / "classification.json")


def test_baseline_is_reviewable_small_and_round_trips(baseline, zoo):
    text = baseline.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=1) + "\n"
    assert len(data["sample_sets"]) == 1  # the 450 ids are kept once for the four models
    job = data["jobs"]["resnet_digits | digits-test | classification"]
    assert job["protocol"]["dataset"]["split"] == "test" and job["protocol"]["sample_ids_sha256"]
    assert job["identity"]["weights_sha256"] == zoo["resnet_digits"].sha256
    assert set(job["metrics"]) == {"top1", "top5"} and len(job["metrics"]["top1"]["success"]) == 2 * -(-450 // 8)  # hex of 450 bits
    print(f"baseline for 4 models x 450 digits: {len(text.encode())} bytes")
    assert len(text.encode()) < 32_000
    loaded = load_baseline(baseline)
    original = snapshot_run(baseline.parent.parent / "main")
    for key, job in original.jobs.items():
        assert loaded.jobs[key].metrics["top1"].outcomes == job.metrics["top1"].outcomes
        assert loaded.jobs[key].sample_ids == job.sample_ids


def test_unchanged_models_pass(tmp_path, zoo, baseline):
    result, out = quiet_gate(run_of(tmp_path, "pr", zoo.values()), baseline)
    assert result.exit_code == 0
    assert {v.status for v in result.gated} == {"pass"}
    assert all(v.diff == 0 and v.p_value == 1.0 and v.test == "mcnemar-exact" for v in result.gated)
    assert "same model and preprocessing" in out and "::error" not in out


def test_degraded_model_is_a_regression_and_junit_marks_exactly_its_metric(tmp_path, zoo, baseline):
    models = dict(zoo, resnet_digits=runs.perturbed(zoo["resnet_digits"], 0.5))
    junit = tmp_path / "junit.xml"
    result, out = quiet_gate(run_of(tmp_path, "pr", models.values()), baseline, junit=junit)
    assert result.exit_code == 1
    top1 = next(v for v in result.gated if v.model == "resnet_digits" and v.metric == "top1")
    assert top1.status == "regression" and top1.diff < -0.02 and top1.ci_high < 0 and top1.p_value < 0.05
    failures = [(case.get("classname"), case.get("name")) for case in ET.parse(junit).iter("testcase")
                if case.find("failure") is not None]
    regressions = [(f"{v.model}.{v.dataset}.{v.task}", v.label) for v in result.gated if v.status == "regression"]
    assert failures == regressions == [("resnet_digits.digits-test.classification", "top1")]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "8" and suite.get("failures") == "1" and suite.get("errors") == "0"
    assert "weights changed" in out
    assert [line.split("::")[1].split(" ")[0] for line in out.splitlines() if line.startswith("::")] == ["error"]


def test_improved_model_is_an_improvement_not_a_failure(tmp_path, zoo):
    weak = runs.train("resnet_digits", n_train=120)
    base = save_baseline(run_of(tmp_path, "main", [weak]), tmp_path / "b.json")
    result, _ = quiet_gate(run_of(tmp_path, "pr", [zoo["resnet_digits"]]), base)
    statuses = {v.metric: v.status for v in result.gated}
    assert statuses["top1"] == "improvement" and result.exit_code == 0
    assert statuses["top5"] in ("improvement", "pass")


def test_preprocessing_bug_is_reported_and_judged_a_regression(tmp_path, zoo, baseline):
    model = zoo["resnet_digits"]
    buggy = replace(model, mean=model.mean + 2, std=model.std * 1.5)  # same checkpoint, wrong mean/std
    result, out = quiet_gate(run_of(tmp_path, "pr", [buggy, *list(zoo.values())[1:]]), baseline)
    assert result.exit_code == 1
    report = next(j for j in result.jobs if j.model == "resnet_digits")
    assert report.model_changes[0].startswith("preprocessing changed: mean/std")
    assert not any("weights" in c for c in report.model_changes)
    assert not report.protocol_changes
    assert "preprocessing changed: mean/std" in out
    assert {(v.model, v.metric) for v in result.gated if v.status == "regression"} == {("resnet_digits", "top1")}


# --- not comparable: each names the field, exit 2 -------------------------------------------------------------
def test_other_subset_is_not_comparable(tmp_path, zoo, baseline):
    subset = np.random.default_rng(1).choice(450, 300, replace=False)
    result, out = quiet_gate(run_of(tmp_path, "pr", zoo.values(), subset=subset), baseline)
    assert result.exit_code == 2
    assert {v.status for v in result.gated} == {"not comparable"}
    reasons = result.gated[0].reasons
    assert any(r.startswith("sample_ids_sha256:") for r in reasons)
    assert any(r == "dataset.dataset_size: 450 → 300" for r in reasons)
    assert "::error" in out


def test_other_eps_is_not_comparable(tmp_path, zoo):
    model = zoo["resnet_digits"]
    base = save_baseline(runs.write_run(tmp_path / "main", [runs.pgd_like(model, [0.1, 0.2])]), tmp_path / "b.json")
    same, _ = quiet_gate(runs.write_run(tmp_path / "same", [runs.pgd_like(model, [0.1, 0.2])]), base)
    assert same.exit_code == 0 and {v.metric for v in same.gated} == {"robust_acc", "clean_acc"}
    other, _ = quiet_gate(runs.write_run(tmp_path / "pr", [runs.pgd_like(model, [0.1, 0.15])]), base)
    assert other.exit_code == 2
    assert "task.params.eps: [0.1, 0.2] → [0.1, 0.15]" in other.gated[0].reasons


def test_other_severities_are_not_comparable(tmp_path, zoo):
    model = zoo["resnet_digits"]
    base = save_baseline(runs.write_run(tmp_path / "main", [runs.corruption(model, [1, 2, 3])]), tmp_path / "b.json")
    same, _ = quiet_gate(runs.write_run(tmp_path / "same", [runs.corruption(model, [1, 2, 3])]), base)
    assert same.exit_code == 0 and len(same.gated) == 4
    assert all(v.test == "mcnemar-exact" for v in same.gated)
    other, _ = quiet_gate(runs.write_run(tmp_path / "pr", [runs.corruption(model, [1, 2])]), base)
    assert other.exit_code == 2
    assert "task.params.severities: [1, 2, 3] → [1, 2]" in other.gated[0].reasons


def test_corruption_regression_is_caught_per_severity(tmp_path, zoo):
    model = zoo["resnet_digits"]
    base = save_baseline(runs.write_run(tmp_path / "main", [runs.corruption(model, [1, 3])]), tmp_path / "b.json")
    worse = runs.perturbed(model, 0.6)
    result, _ = quiet_gate(runs.write_run(tmp_path / "pr", [runs.corruption(worse, [1, 3])]), base)
    regressed = {v.params.get("severity", "clean") for v in result.gated if v.status == "regression"}
    assert result.exit_code == 1 and 3 in regressed


# --- policies ------------------------------------------------------------------------------------------------
def test_policy_tolerance_floor_and_selection(tmp_path, zoo, baseline):
    models = dict(zoo, resnet_digits=runs.perturbed(zoo["resnet_digits"], 0.5))
    pr = run_of(tmp_path, "pr", models.values())
    tolerant = GatePolicy.from_dict({"max_drop": 0.10})
    assert quiet_gate(pr, baseline, tolerant)[0].exit_code == 0
    relative = GatePolicy.from_dict({"max_drop": "20%"})
    assert quiet_gate(pr, baseline, relative)[0].exit_code == 0
    floor = GatePolicy.from_dict({"max_drop": 0.10, "metrics": {"top1": {"min_value": 0.97}}})
    result, _ = quiet_gate(pr, baseline, floor)
    failing = [(v.model, v.metric, v.reasons) for v in result.gated if v.status == "regression"]
    below = [m for m in zoo if runs.classification(models[m]).metrics[0].value < 0.97]
    assert [(m, "top1") for m in below] == [(f[0], f[1]) for f in failing]
    assert all("below the floor 0.97" in f[2] for f in failing)
    only_top5 = GatePolicy.from_dict({"metrics": {"top1": {"gate": False}}})
    result, _ = quiet_gate(pr, baseline, only_top5)
    assert {v.metric for v in result.gated} == {"top5"} and result.exit_code == 0


@pytest.mark.parametrize("section,message", [
    ({"alpha": 2}, "gate.alpha: must lie strictly between 0 and 1"),
    ({"max_drop": "lots"}, "gate.max_drop: expected a number or a percentage"),
    ({"metrics": {"top1": {"floor": 0.9}}}, "gate.metrics.top1.floor: unknown field"),
    ({"metrics": {"top1": {"gate": "yes"}}}, "gate.metrics.top1.gate: expected true or false"),
])
def test_bad_policy_names_the_field(section, message):
    with pytest.raises(GatePolicyError, match=message.replace(".", r"\.")):
        GatePolicy.from_dict(section)


def test_unpaired_fallback_when_baseline_has_no_outcomes(tmp_path, zoo, baseline):
    data = json.loads(baseline.read_text())
    for job in data["jobs"].values():
        for metric in job["metrics"].values():
            metric.pop("success", None)
    stripped = tmp_path / "counts-only.json"
    stripped.write_text(json.dumps(data))
    models = dict(zoo, resnet_digits=runs.perturbed(zoo["resnet_digits"], 0.8))
    result, _ = quiet_gate(run_of(tmp_path, "pr", models.values()), stripped)
    top1 = next(v for v in result.gated if v.model == "resnet_digits" and v.metric == "top1")
    assert top1.test == "newcombe-unpaired" and top1.status == "regression" and result.exit_code == 1


# --- inputs and outputs --------------------------------------------------------------------------------------
def test_unreadable_inputs_name_the_file(tmp_path, baseline):
    with pytest.raises(GateInputError, match="results.json: no such file"):
        gate(tmp_path / "nowhere", baseline, stream=io.StringIO(), env={})
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something"}')
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text("[]")
    with pytest.raises(GateInputError, match=r"bad\.json: format: not a visionbench-baseline file"):
        gate(tmp_path / "run", bad, stream=io.StringIO(), env={})
    (tmp_path / "run" / "results.json").write_text('[{"status": "ok", "model": "m"}]')
    with pytest.raises(GateInputError, match=r"results\.json: row 0: missing field 'job_key'"):
        save_baseline(tmp_path / "run", tmp_path / "x.json")


def test_missing_job_is_not_comparable_and_failed_job_fails(tmp_path, zoo, baseline):
    result, _ = quiet_gate(run_of(tmp_path, "pr", list(zoo.values())[:3]), baseline)
    assert result.exit_code == 2
    assert {v.model for v in result.gated if v.status == "not comparable"} == {"swin_digits"}
    run = run_of(tmp_path, "failed", zoo.values())
    rows = json.loads((run / "results.json").read_text())
    rows = [r for r in rows if r["model"] != "vit_digits"] + [
        {"job_key": "x", "status": "failed", "model": "vit_digits", "dataset": "digits-test",
         "task": "classification", "error": "RuntimeError: out of memory"}]
    (run / "results.json").write_text(json.dumps(rows))
    result, _ = quiet_gate(run, baseline)
    assert result.exit_code == 1
    assert {v.status for v in result.gated if v.model == "vit_digits"} == {"failed"}


def test_step_summary_annotations_and_html(tmp_path, zoo, baseline):
    models = dict(zoo, resnet_digits=runs.perturbed(zoo["resnet_digits"], 0.5, seed=3))
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    stream = io.StringIO()
    result = gate(run_of(tmp_path, "pr", models.values()), baseline, stream=stream,
                  env={"GITHUB_STEP_SUMMARY": str(summary)})
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "| resnet_digits | digits-test | classification | top1 |" in text
    assert "REGRESSION" in text and markdown(result) in text
    (error,) = [line for line in annotations(result) if line.startswith("::error")]
    assert error.startswith("::error title=REGRESSION%3A resnet_digits top1::resnet_digits · digits-test")
    assert "\n" not in error
    fragment = html_fragment(result)
    assert fragment.startswith('<section class="regression-check gate-regression"><h2>Regression check</h2>')
    assert fragment.count("<tr class=") == len(result.gated)
    ET.fromstring(junit_xml(result).split("\n", 1)[1])  # well-formed


def test_html_fragment_escapes(tmp_path, zoo):
    model = replace(zoo["resnet_digits"], name="<script>alert(1)</script>")
    base = save_baseline(run_of(tmp_path, "main", [model]), tmp_path / "b.json")
    result, _ = quiet_gate(run_of(tmp_path, "pr", [model]), base)
    fragment = html_fragment(result)
    assert "<script>" not in fragment and "&lt;script&gt;" in fragment
    ET.fromstring(junit_xml(result).split("\n", 1)[1])


def test_outcomes_that_contradict_the_row_are_refused(tmp_path, zoo):
    run = run_of(tmp_path, "main", [zoo["resnet_digits"]])
    rows = json.loads((run / "results.json").read_text())
    rows[0]["value"] -= 0.01  # the row no longer matches its per-sample records
    (run / "results.json").write_text(json.dumps(rows))
    with pytest.raises(GateInputError, match=r"\.jsonl\.gz: per-sample outcomes of top1 give 0\.98"):
        save_baseline(run, tmp_path / "b.json")


def _moved(run: Path, field: str, value: str, env_device: str | None = None) -> None:
    """The run's rows as if made on another device (``env_device``: the torch device its provenance names)."""
    rows = json.loads((run / "results.json").read_text())
    for row in rows:
        row[field] = value
        if env_device is not None:
            row["provenance"]["env"]["device"] = env_device
    (run / "results.json").write_text(json.dumps(rows))


@pytest.mark.parametrize("field, value, env_device", [("precision", "bf16", None), ("device", "NVIDIA H200", "cuda:0")])
def test_another_device_or_precision_is_not_comparable_unless_the_suite_allows_it(tmp_path, zoo, baseline, field,
                                                                                   value, env_device):
    run = run_of(tmp_path, "pr", zoo.values())
    before = json.loads((run / "results.json").read_text())[0][field]
    _moved(run, field, value, env_device)
    result, out = quiet_gate(run, baseline)
    assert result.exit_code == 2 and all(v.status == "not comparable" for v in result.gated)
    assert f"{field} changed: {before} → {value} (a baseline is compared on the same device and precision" in out
    allowed, out = quiet_gate(run, baseline, GatePolicy.from_dict({"across_devices": True}))
    assert allowed.exit_code == 0
    assert f"conditions changed: {field}: {before} → {value}" in out
    with pytest.raises(GatePolicyError, match="gate.across_devices: expected true or false"):
        GatePolicy.from_dict({"across_devices": "yes"})


def test_another_cpu_model_is_comparable_and_shown_among_the_conditions(tmp_path, zoo, baseline):
    run = run_of(tmp_path, "pr", zoo.values())
    before = json.loads((run / "results.json").read_text())[0]["device"]
    _moved(run, "device", "Some Other CPU Model")  # a CI runner on other hardware: still a CPU
    result, out = quiet_gate(run, baseline)
    assert result.exit_code == 0 and not any(v.status == "not comparable" for v in result.gated)
    assert f"conditions changed: device: {before} → Some Other CPU Model" in out


def test_result_serialises_for_the_report(tmp_path, zoo, baseline):
    result, _ = quiet_gate(run_of(tmp_path, "pr", zoo.values()), baseline)
    data = json.loads(json.dumps(result.to_json()))
    assert data["exit_code"] == 0 and len(data["verdicts"]) == 8 and len(data["jobs"]) == 4
