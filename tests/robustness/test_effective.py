"""Effective robustness against a testbed: the trend and each model's distance from it agree with a hand
computation from timm's own CSVs (numpy's polyfit on the logit / probit of the published top-1)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from harness.robustness.effective import bootstrap_interval, fit_trend
from harness.robustness.testbeds import TIMM_DIR, BadTestbedError, place, trend_of, timm_testbed

SHIFT_FILES = {"imagenetv2": ("results-imagenet.csv", "results-imagenetv2-matched-frequency.csv"),
               "imagenet-r": ("results-imagenet-r-clean.csv", "results-imagenet-r.csv")}
HANDFUL = ["resnet50.a1_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k", "convnext_tiny.fb_in1k",
           "deit_small_patch16_224.fb_in1k", "efficientnet_b0.ra_in1k"]


def by_hand(shift: str, scale: str):
    """The published top-1 pairs straight from the CSVs, and numpy's least-squares line on the chosen axes."""
    id_file, shifted_file = SHIFT_FILES[shift]
    ids = pd.read_csv(TIMM_DIR / id_file).drop_duplicates("model").set_index("model")["top1"] / 100
    shifted = pd.read_csv(TIMM_DIR / shifted_file).drop_duplicates("model").set_index("model")["top1"] / 100
    common = ids.index.intersection(shifted.index)
    axis = (lambda p: np.log(p / (1 - p))) if scale == "logit" else norm.ppf
    inverse = (lambda z: 1 / (1 + np.exp(-z))) if scale == "logit" else norm.cdf
    slope, intercept = np.polyfit(axis(ids[common].to_numpy()), axis(shifted[common].to_numpy()), 1)
    return ids, shifted, len(common), slope, intercept, lambda i, s: s - inverse(slope * axis(i) + intercept)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "effective-robustness", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("shift, scale", [("imagenetv2", "logit"), ("imagenet-r", "probit")])
def test_the_cli_places_published_rows_as_a_hand_computation_does(shift, scale):
    ids, shifted, n, slope, intercept, effective = by_hand(shift, scale)
    for model in HANDFUL:
        done = cli("--shift", shift, "--scale", scale, "--id", repr(float(ids[model])), "--shifted", repr(float(shifted[model])),
                   "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["trend"]["n_models"] == n > 1200
        assert result["trend"]["slope"] == pytest.approx(slope, rel=1e-9)
        assert result["trend"]["intercept"] == pytest.approx(intercept, rel=1e-9, abs=1e-12)
        assert result["effective_robustness"] == pytest.approx(effective(ids[model], shifted[model]), abs=1e-12)
        assert result["relative_robustness"] == pytest.approx(shifted[model] - ids[model], abs=1e-12)


def test_the_imagenetv2_trend_is_the_published_near_linear_one():
    trend = trend_of("timm", "imagenetv2")
    # Recht et al. 2019 / Miller et al. 2021: on logit axes ImageNetV2 accuracy is a line of ID accuracy, R² ~ 0.99
    assert trend.r2 > 0.98 and 0.85 < trend.slope < 1.0 and trend.intercept < 0
    cnn, transformer = (trend_of("timm", "imagenetv2", subset=s) for s in ("cnn", "transformer"))
    assert cnn.n_models + transformer.n_models < trend.n_models and min(cnn.n_models, transformer.n_models) > 300


def test_the_human_readable_line_names_the_protocol_and_the_fit():
    done = cli("--shift", "imagenet-a", "--id", "0.95", "--shifted", "0.40")
    assert done.returncode == 0, done.stderr
    assert "ImageNet-A, 200-class masked, against ImageNet val on the same 200 classes" in done.stdout
    assert "effective robustness" in done.stdout and "R²" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--shift", "imagenet-c"], "testbed timm has no shift 'imagenet-c' (known: imagenetv2, "),
    (["--shift", "imagenetv2", "--id", "80.1", "--shifted", "69"], "in-distribution accuracy must be a fraction"),
    (["--shift", "imagenetv2", "--id", "0.8"], "give both --id and --shifted"),
    (["--shift", "imagenetv2", "--subset", "cnns"], "testbed timm has no subset 'cnns' (all, cnn, hybrid, transformer)"),
    (["--shift", "imagenetv2", "--testbed", "nowhere.csv"], "unknown testbed 'nowhere.csv'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    done = cli(*args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_testbed_csv_of_ones_own_is_fit_and_checked(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.uniform(0.5, 0.95, 12)
    rows = pd.DataFrame({"model": [f"m{i}" for i in range(12)], "shift": "printed",
                         "id_accuracy": ids, "shifted_accuracy": ids - 0.2})
    path = tmp_path / "testbed.csv"
    rows.to_csv(path, index=False)
    placement = place(0.9, 0.8, "printed", testbed=str(path))
    expected = fit_trend(ids, ids - 0.2).expected(0.9)
    assert placement.expected == pytest.approx(float(expected)) and placement.effective_robustness > 0
    assert place(0.99, 0.8, "printed", testbed=str(path)).extrapolated
    rows.loc[3, "shifted_accuracy"] = 71.0
    rows.to_csv(path, index=False)
    with pytest.raises(BadTestbedError, match=r"testbed.csv: row 5: shifted_accuracy must be a fraction in \[0, 1\]"):
        place(0.9, 0.8, "printed", testbed=str(path))


def test_the_interval_resamples_the_model_s_samples_around_its_point():
    trend = fit_trend([0.6, 0.7, 0.8, 0.9], [0.4, 0.5, 0.62, 0.75])
    small = bootstrap_interval(trend, [True] * 80 + [False] * 20, [True] * 60 + [False] * 40)
    large = bootstrap_interval(trend, [True] * 800 + [False] * 200, [True] * 600 + [False] * 400)
    point = float(trend.effective_robustness(0.8, 0.6))
    assert small[0] < point < small[1] and large[0] < point < large[1]
    assert (large[1] - large[0]) < 0.5 * (small[1] - small[0])  # a 10x sample: about a third as wide
    assert bootstrap_interval(trend, [True] * 80 + [False] * 20, [True] * 60 + [False] * 40) == small  # seeded


def test_every_timm_shift_reads_with_families_from_the_names():
    for shift in SHIFT_FILES:
        rows = timm_testbed(shift)
        assert rows["id_accuracy"].between(0, 1).all() and rows["shifted_accuracy"].between(0, 1).all()
        assert (rows["family"] == "unknown").mean() < 0.2
