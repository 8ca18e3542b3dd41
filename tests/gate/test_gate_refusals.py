"""Never a PASS from a broken baseline: ``visionbench gate`` on a corrupt, truncated or malformed baseline,
one of another suite, one missing metrics or holding NaN, and a run that scored fewer samples than its
baseline. Each exits 2 with one ``error: not comparable: ...`` line naming the file and the field, leaves
the run folder as it was, and leaves no passing JUnit file behind."""
from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import gate_runs as runs
from harness.cli import main
from harness.gate import save_baseline

PAGE = "<html><body><h1>report</h1><footer></footer></body></html>"


@pytest.fixture(scope="module")
def models():
    return [runs.train("resnet_digits", n_train=1000), runs.train("vit_digits", n_train=700, c=0.5)]


def write_run(folder: Path, models, **kwargs) -> Path:
    runs.write_run(folder, [runs.classification(m, **kwargs) for m in models])
    (folder / "index.html").write_text(PAGE)
    return folder


@pytest.fixture(scope="module")
def baseline(models, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("baseline")
    return save_baseline(write_run(tmp / "main", models), tmp / "baseline.json")


@pytest.fixture
def pr(models, tmp_path) -> Path:
    """A run of the same models: against a sound baseline it passes."""
    return write_run(tmp_path / "pr", models)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def edited(baseline: Path, tmp_path: Path, edit) -> Path:
    data = json.loads(baseline.read_text())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def gate_cli(capsys, run: Path, baseline: Path, junit: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["gate", str(run), str(baseline), "--junit", str(junit)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_not_comparable(capsys, run: Path, baseline: Path, tmp_path: Path, *fragments: str) -> str:
    """Exit 2, one error line holding every fragment, the run folder untouched but for the gate's section,
    and a JUnit file that reports an error, not a pass."""
    junit = tmp_path / "junit.xml"
    junit.write_text("<testsuites><testsuite name='stale' tests='1' failures='0' errors='0'/></testsuites>")
    before = snapshot(run)
    code, out, err = gate_cli(capsys, run, baseline, junit)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith(f"error: not comparable: {baseline}: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in line, line
    after = snapshot(run)
    page = after.pop("index.html").decode()
    assert after == {k: v for k, v in before.items() if k != "index.html"}  # results and records untouched
    assert "Regression gate passed" not in page
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("errors")) >= 1 and suite.get("name") == "visionbench gate"
    return line


# --- files that are not baselines ------------------------------------------------------------------------------
@pytest.mark.parametrize("content, fragments", [
    (b"<html>502 Bad Gateway</html>\n", ["not JSON: Expecting value at line 1 column 1"]),
    (gzip.compress(b'{"format": "visionbench-baseline"}', mtime=0), ["not a baseline: not UTF-8 text (byte 1 of"]),
    (b"", ["empty file, not a baseline"]),
    (b'["format", "visionbench-baseline"]', ["format: not a visionbench-baseline file"]),
])
def test_a_file_that_is_not_a_baseline(capsys, pr, tmp_path, content, fragments):
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    print(assert_not_comparable(capsys, pr, path, tmp_path, *fragments))


def test_a_truncated_baseline(capsys, pr, baseline, tmp_path):
    text = baseline.read_text()
    for cut in (len(text) // 2, len(text) - 3):
        path = tmp_path / f"truncated-{cut}.json"
        path.write_text(text[:cut])
        print(assert_not_comparable(capsys, pr, path, tmp_path, "truncated: the JSON stops at line",
                                    "before the document is complete"))


TOP1 = ("jobs", "resnet_digits | digits-test | classification", "metrics", "top1")


def _set(path: tuple, value):
    def edit(data):
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


def _drop(path: tuple):
    def edit(data):
        node = data
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return edit


JOB = "jobs['resnet_digits | digits-test | classification']"


@pytest.mark.parametrize("edit, fragments", [
    (_set(("jobs",), []), ["jobs: expected an object of jobs, got a list"]),
    (_set(("jobs",), {}), ["jobs: empty: the baseline holds no job to compare with"]),
    (_drop(("jobs",)), ["jobs: missing"]),
    (_set((*TOP1, "value"), "0.98"), [f"{JOB}.metrics.top1.value: expected a number or null, got a string '0.98'"]),
    (_set((*TOP1, "value"), 1.5), [f"{JOB}.metrics.top1.value: 1.5 is not a proportion (0 to 1)"]),
    (_set((*TOP1, "n"), "450"), [f"{JOB}.metrics.top1.n: expected a whole number or null, got a string '450'"]),
    (_drop((*TOP1, "direction")), [f"{JOB}.metrics.top1.direction: missing"]),
    (_set((*TOP1, "kind"), "accuracy"), [f"{JOB}.metrics.top1.kind: 'accuracy' is not proportion, dataset"]),
    (_set((*TOP1, "success"), "ff"),
     [f"{JOB}.metrics.top1.success: expected 114 hex digits (one bit per sample id), got 2"]),
    (_set(TOP1[:2] + ("identity",), "resnet"), [f"{JOB}.identity: expected an object, got a string 'resnet'"]),
    (_set(TOP1[:2] + ("sample_ids",), "0123"), [f"{JOB}.sample_ids: '0123' is not in sample_sets"]),
    (_set(TOP1[:2] + ("model",), "other"), [f"{JOB}: the key does not match its model | dataset | task"]),
    (_set(("version",), 3), ["version: 3 is not supported (expected one of 1, 2)"]),
])
def test_a_baseline_of_the_wrong_schema_names_the_field(capsys, pr, baseline, tmp_path, edit, fragments):
    print(assert_not_comparable(capsys, pr, edited(baseline, tmp_path, edit), tmp_path, *fragments))


# --- baselines that do not vouch for the run -------------------------------------------------------------------
def test_a_baseline_of_another_suite(capsys, pr, baseline, tmp_path):
    code, out, err = gate_cli(capsys, pr, baseline, tmp_path / "junit.xml")
    assert code == 0 and err == "" and "Regression gate passed" in out  # the control: a sound baseline passes
    (pr / "index.html").write_text(PAGE)
    rows = json.loads((pr / "results.json").read_text())
    for row in rows:  # the same model, dataset and task names, in another suite
        row["suite"] = "other-suite"
    (pr / "results.json").write_text(json.dumps(rows))
    print(assert_not_comparable(capsys, pr, baseline, tmp_path,
                                f"source.suite: a baseline of suite 'gate-test', but {pr} is a run of suite "
                                "'other-suite'"))


def test_a_baseline_missing_a_gated_metric(capsys, pr, baseline, tmp_path):
    def drop_top1(data):
        for job in data["jobs"].values():
            del job["metrics"]["top1"]

    line = assert_not_comparable(capsys, pr, edited(baseline, tmp_path, drop_top1), tmp_path,
                                 "2 gated metric(s) cannot be compared",
                                 "top1: gated metric missing from the baseline (save a new baseline)")
    print(line)


@pytest.mark.parametrize("value, fragments", [
    (float("nan"), [f"{JOB}.metrics.top1.value: nan (not a finite number; a baseline writes null"]),
    (float("inf"), [f"{JOB}.metrics.top1.value: inf (not a finite number"]),
    (None, ["1 gated metric(s) cannot be compared, first resnet_digits · digits-test · classification top1: "
            "no baseline value (null or NaN)"]),
])
def test_a_baseline_value_that_is_not_a_number(capsys, pr, baseline, tmp_path, value, fragments):
    print(assert_not_comparable(capsys, pr, edited(baseline, tmp_path, _set((*TOP1, "value"), value)), tmp_path,
                                *fragments))


def test_a_run_value_that_is_not_a_number(capsys, pr, baseline, tmp_path):
    rows = json.loads((pr / "results.json").read_text())
    for row in rows:
        if row["model"] == "resnet_digits" and row["metric"] == "top5":
            row["value"] = None
    (pr / "results.json").write_text(json.dumps(rows))
    (pr / "samples").rename(tmp_path / "no-samples")  # counts only: nothing contradicts the row
    print(assert_not_comparable(capsys, pr, baseline, tmp_path, "top5: no run value (null or NaN)"))


def test_a_run_that_scored_fewer_samples_than_the_baseline(capsys, models, baseline, tmp_path):
    """The run's protocol claims the baseline's 450 samples (as when corrupt files are skipped), but it
    scored 400: compared on those 400 it would pass."""
    run = write_run(tmp_path / "fewer", models, subset=np.arange(400))
    protocol = json.loads((baseline.parent / "main" / "results.json").read_text())[0]["provenance"]
    rows = json.loads((run / "results.json").read_text())
    for row in rows:
        row["provenance"]["sample_ids_sha256"] = protocol["sample_ids_sha256"]
        row["provenance"]["dataset"]["dataset_size"] = protocol["dataset"]["dataset_size"]
    (run / "results.json").write_text(json.dumps(rows))
    print(assert_not_comparable(capsys, run, baseline, tmp_path,
                                "n: 450 → 400 (the run scored fewer samples than the baseline)"))
