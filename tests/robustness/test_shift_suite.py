"""suites/shift.yaml end to end: each zoo model's effective robustness equals a hand computation from the
shipped digits testbed's CSV (numpy's polyfit on logit axes) and the run's own top-1 rows; the testbed's
shipped weights reproduce its CSV; a shift the testbed lacks stops the suite before any forward pass."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.data.digits import digits_arrays
from tests.conftest import timm_stand_ins
from harness.data.printed_digits import PrintedDigitsSource
from harness.robustness import digits_testbed
from harness.suite import SUITES_DIR

REPO = Path(__file__).resolve().parents[2]
SHIFTS = ("printed", "printed-hard")


def logit(p):
    return np.log(p / (1 - p))


def run_suite(suite: Path | str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--suite", str(suite), "--out", str(out),
                           "--no-progress", *extra], capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def shift_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shift-run")
    result = run_suite("shift", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def shift_run(shift_out) -> pd.DataFrame:
    frame = pd.read_csv(shift_out / "results.csv")
    frame["dataset_param"] = [json.loads(p).get("dataset") if isinstance(p, str) else None for p in frame["params"]]
    return frame


def value(frame: pd.DataFrame, model: str, metric: str, dataset: str | None) -> pd.Series:
    rows = frame[(frame["model"] == model) & (frame["metric"] == metric)]
    rows = rows[rows["dataset_param"].isna()] if dataset is None else rows[rows["dataset_param"] == dataset]
    assert len(rows) == 1, (model, metric, dataset, len(rows))
    return rows.iloc[0]


def test_every_zoo_model_is_placed_on_the_digits_trend_as_by_hand(shift_run):
    testbed = pd.read_csv(digits_testbed.RESULTS)
    assert (shift_run["status"] == "ok").all()
    models = sorted(shift_run["model"].unique())
    assert models == ["convnext_digits", "resnet_digits", "swin_digits", "vit_digits"]
    for shift in SHIFTS:
        rows = testbed[testbed["shift"] == shift]
        slope, intercept = np.polyfit(logit(rows["id_accuracy"].to_numpy()), logit(rows["shifted_accuracy"].to_numpy()), 1)
        for model in models:
            id_top1 = value(shift_run, model, "top1", None)["value"]
            shifted_top1 = value(shift_run, model, "top1", shift)["value"]
            er = value(shift_run, model, "effective_robustness", shift)
            expected = 1 / (1 + np.exp(-(slope * logit(id_top1) + intercept)))
            assert er["value"] == pytest.approx(shifted_top1 - expected, abs=1e-9)
            assert er["ci_low"] <= er["value"] <= er["ci_high"] and er["ci_high"] - er["ci_low"] < 0.5
            relative = value(shift_run, model, "relative_robustness", shift)
            assert relative["value"] == pytest.approx(shifted_top1 - id_top1, abs=1e-12)
            assert value(shift_run, model, "trend_slope", shift)["value"] == pytest.approx(slope, rel=1e-9)
            assert value(shift_run, model, "trend_intercept", shift)["value"] == pytest.approx(intercept, rel=1e-9)
            assert value(shift_run, model, "trend_models", shift)["value"] == len(rows) == 12
            outside = not rows["id_accuracy"].min() <= id_top1 <= rows["id_accuracy"].max()
            assert value(shift_run, model, "trend_extrapolated", shift)["value"] == float(outside)
            assert er["n"] == 500  # the shifted set's samples


def test_the_printed_shifts_cost_every_zoo_model_accuracy_and_the_hard_level_more(shift_run):
    for model in shift_run["model"].unique():
        id_top1 = value(shift_run, model, "top1", None)["value"]
        printed, hard = (value(shift_run, model, "top1", s)["value"] for s in SHIFTS)
        assert id_top1 > 0.95 and id_top1 - 0.05 > printed > hard + 0.1


def test_the_shipped_testbed_weights_reproduce_its_results_csv():
    results = pd.read_csv(digits_testbed.RESULTS).set_index(["model", "shift"])
    assert sorted(results.index.get_level_values("model").unique()) == sorted(m.name for m in digits_testbed.MODELS)
    test_x, test_y = digits_arrays()["test"]
    shifted = {level: PrintedDigitsSource(level) for level in SHIFTS}
    id_accuracies = []
    for spec in digits_testbed.MODELS:
        model = digits_testbed.load(spec)
        id_accuracy = (digits_testbed.predictions(model, test_x) == test_y).mean()
        id_accuracies.append(id_accuracy)
        for level, source in shifted.items():
            row = results.loc[(spec.name, level)]
            assert row["id_accuracy"] == pytest.approx(id_accuracy, abs=1e-6)
            assert row["shifted_accuracy"] == pytest.approx(
                (digits_testbed.predictions(model, source.images) == source.labels).mean(), abs=1e-6)
    assert max(id_accuracies) - min(id_accuracies) > 0.1  # a trend needs a spread of in-distribution accuracy


def test_shipped_weights_and_data_stay_within_20_mb():
    shipped = [p for folder in ("harness/zoo", "harness/testbeds", "tests/fixtures")
               for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    total = sum(p.stat().st_size for p in shipped)
    assert 10e6 < total <= 20e6, f"{total / 1e6:.1f} MB shipped"


def broken_suite(tmp_path: Path, **evaluator) -> Path:
    raw = yaml.safe_load((SUITES_DIR / "shift.yaml").read_text())
    raw["datasets"].append({"name": "digits-train", "kind": "digits", "split": "train"})
    raw["tasks"][0]["roles"] = {"shifted": ["printed", "digits-train"]}
    raw["tasks"][0]["evaluators"] = [{"kind": "effective_robustness", **evaluator}]
    path = tmp_path / "shift.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("evaluator, message", [
    ({"testbed": "digits"}, "shifted dataset 'digits-train':"),
    ({"testbed": "digits", "shifts": {"digits-train": "printed-harder"}}, "no rows for shift 'printed-harder'"),
    ({"testbed": "digits", "shifts": {"digits-train": "printed", "svhn": "printed"}}, "'svhn' is not one of"),
    ({"testbed": "no-such-testbed.csv"}, "unknown testbed 'no-such-testbed.csv'"),
    ({"testbed": "digits", "shifts": {"digits-train": "printed"}, "real": True}, "real: true needs a testbed with it"),
])
def test_a_shift_the_testbed_lacks_stops_the_suite_before_it_runs(tmp_path, evaluator, message):
    result = run_suite(broken_suite(tmp_path, **evaluator), tmp_path / "out")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "shift.yaml:" in lines[0] and "evaluators[0]" in lines[0]
    assert not (tmp_path / "out" / "results.csv").exists()


def test_a_mapped_shift_runs_and_names_the_testbed_shift_it_used(tmp_path):
    path = broken_suite(tmp_path, testbed="digits", shifts={"digits-train": "printed"})
    raw = yaml.safe_load(path.read_text())
    raw["models"] = raw["models"][:1]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = run_suite(path, tmp_path / "out", "--limit", "40")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    er = frame[frame["metric"] == "effective_robustness"]
    placed = {json.loads(p)["dataset"]: json.loads(p)["shift"] for p in er["params"]}
    assert placed == {"printed": "printed", "digits-train": "printed"}


def test_the_report_shows_the_shift_plot_and_table_with_extrapolation_beside_the_number(shift_out, shift_run):
    html = (shift_out / "index.html").read_text()
    assert "Natural distribution shift: top-1, relative and effective robustness" in html
    for shift in SHIFTS:
        assert f"Shifted vs in-distribution top-1: {shift} (digits testbed, 12 models, logit axes)" in html
    assert html.count('<g id="testbed">') == 2 and html.count('<g id="trend">') == 2
    table = html[html.index('id="table-shift-classification-digits-test"'):]
    table = table[:table.index("</table>")]
    for model in shift_run["model"].unique():
        er = value(shift_run, model, "effective_robustness", "printed")
        assert f"<title>{model} (" in html  # hover on each model's point
        row = table[table.index(f'<tr data-model="{model}"'):]
        cell = row[row.index('data-col="printed:effective"'):]
        cell = cell[:cell.index("</td>")]
        assert float(cell.split('data-value="')[1].split('"')[0]) == pytest.approx(er["value"], abs=1e-12)
        extrapolated = value(shift_run, model, "trend_extrapolated", "printed")["value"] == 1
        assert ("◊" in cell) == extrapolated
    comparison = html[html.index("CNN vs transformer: above or below the trend"):]
    comparison = comparison[:comparison.index("</div>")]
    # the zoo's one cost-matched pair (swin 211k vs convnext 263k params) on both shifts: n = 2, never significant
    er = {(m, s): value(shift_run, m, "effective_robustness", s)["value"] for m in ("swin_digits", "convnext_digits")
          for s in SHIFTS}
    mean = np.mean([er[("swin_digits", s)] - er[("convnext_digits", s)] for s in SHIFTS])
    assert "no significant difference at n = 2" in comparison and f"{mean:+.4f}" in comparison
    assert "swin_digits (211k params) − convnext_digits (263k params)" in comparison
    assert "A single pair" in comparison
    # the leaderboard's own effective-robustness cells carry the same mark, and its columns do not split
    leaderboard = html[html.index('<table class="sortable leaderboard"'):]
    leaderboard = leaderboard[:leaderboard.index("</table>")]
    assert leaderboard.count("effective_robustness dataset=printed ") == 1
    assert leaderboard.count('title="in-distribution top-1 outside') == int(
        shift_run.loc[shift_run["metric"] == "trend_extrapolated", "value"].sum())


def write_mini_imagenet_shifts(root: Path) -> dict[str, int]:
    """The layout suites/shift-imagenet.yaml reads, two photos per class folder; returns images per folder set."""
    from harness.data.imagenet_shifts import timm_info
    from tests.conftest import photo
    from tests.shift_layouts import write_objectnet

    synsets = timm_info("imagenet_synsets.txt").read_text().split()
    r_synsets = timm_info("imagenet_r_synsets.txt").read_text().split()
    a_synsets = timm_info("imagenet_a_synsets.txt").read_text().split()
    r_only = next(s for s in r_synsets if s not in a_synsets)
    a_only = next(s for s in a_synsets if s not in r_synsets)
    neither = next(s for s in synsets if s not in r_synsets and s not in a_synsets)
    names = iter(["chelsea", "astronaut", "camera", "coffee", "rocket", "coins"] * 4)
    layout = {"val": [r_only, a_only, neither], "imagenetv2-matched-frequency": [str(synsets.index(s)) for s in
                                                                                 (r_only, a_only, neither)],
              "sketch": [r_only, neither], "imagenet-r": [r_only], "imagenet-a": [a_only]}
    counts = {}
    for folder, classes in layout.items():
        for wnid in classes:
            (root / folder / wnid).mkdir(parents=True)
            for _ in range(2):
                name = next(names)
                number = len(list((root / folder).rglob("*.JPEG"))) + 1
                file = f"ILSVRC2012_val_{number:08d}.JPEG" if folder == "val" else f"{name}.jpg"  # ReaL's keys
                photo(name, max_side=160).save(root / folder / wnid / file, quality=90)
        counts[folder] = 2 * len(classes)
    write_objectnet(root / "objectnet-1.0", {"alarm_clock": [synsets.index(r_only)], "banana": [synsets.index(neither)],
                                             "bench": [703]})
    counts["objectnet"], counts["val-objectnet"] = 5, 4  # air_freshener is no ImageNet class; a_only is unmapped
    return counts


def test_the_imagenet_shift_suite_runs_on_a_miniature_layout(tmp_path, one_thread):
    """suites/shift-imagenet.yaml as shipped (datasets, tasks, evaluators), its hub models replaced by tiny
    random-init timm stand-ins with a CNN's and a transformer's name."""
    from harness.robustness.testbeds import trend_of

    counts = write_mini_imagenet_shifts(tmp_path / "data")
    suite = yaml.safe_load((SUITES_DIR / "shift-imagenet.yaml").read_text())
    models = timm_stand_ins(tmp_path)
    suite.update(models=models, defaults={**suite["defaults"], "workers": 0, "batch_size": 4})
    for dataset in suite["datasets"]:
        if "class_map" in dataset:
            dataset["class_map"] = str(SUITES_DIR / dataset["class_map"])
    path = tmp_path / "shift-imagenet.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    result = run_suite(path, tmp_path / "out", "--data-root", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    frame["dataset_param"] = [json.loads(p).get("dataset") if isinstance(p, str) else None for p in frame["params"]]
    er = frame[frame["metric"] == "effective_robustness"]
    assert sorted(set(zip(er["model"], er["dataset_param"]))) == sorted(
        (m, s) for m in ("resnet50", "vit_base_patch16_224") for s in ("imagenet-a", "imagenet-r", "imagenet-sketch",
                                                                       "imagenetv2", "imagenet-real"))
    id_n = {"imagenet-val": counts["val"], "imagenet-val-r200": 2, "imagenet-val-a200": 2}
    shifted_n = {"imagenetv2": counts["imagenetv2-matched-frequency"], "imagenet-sketch": counts["sketch"],
                 "imagenet-r": counts["imagenet-r"], "imagenet-a": counts["imagenet-a"]}
    for row in er.itertuples():
        id_row = frame[(frame["job_key"] == row.job_key) & (frame["metric"] == "top1") & frame["dataset_param"].isna()]
        shifted = frame[(frame["job_key"] == row.job_key) & (frame["metric"] == "top1")
                        & (frame["dataset_param"] == row.dataset_param)]
        if row.dataset_param == "imagenet-real":  # the val pass itself, scored with the ReaL sets (real: true)
            shifted = frame[(frame["job_key"] == row.job_key) & (frame["metric"] == "real_top1")]
            assert row.n == shifted["n"].iloc[0]
            shifted_n["imagenet-real"] = row.n
        assert id_row["n"].iloc[0] == id_n[row.dataset] and shifted["n"].iloc[0] == shifted_n[row.dataset_param]
        expected = trend_of("timm", row.dataset_param).expected(id_row["value"].iloc[0])
        assert row.value == pytest.approx(shifted["value"].iloc[0] - expected, abs=1e-9)
    objectnet = frame[(frame["task"] == "shift-objectnet") & (frame["metric"] == "top1")]
    assert sorted(zip(objectnet["model"], objectnet["dataset_param"].fillna("val"), objectnet["n"])) == sorted(
        (m, d, counts[c]) for m in ("resnet50", "vit_base_patch16_224")
        for d, c in (("objectnet", "objectnet"), ("val", "val-objectnet")))
    real = frame[frame["metric"] == "real_top1"]
    assert len(real) == 2 and real["n"].between(1, counts["val"]).all()  # val images with an empty ReaL set drop out
    page = (tmp_path / "out" / "index.html").read_text()
    for shift in ("imagenet-r", "imagenet-real"):
        assert f"Shifted vs in-distribution top-1: {shift} (timm testbed, 1266 models, logit axes)" in page
