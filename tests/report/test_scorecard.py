"""The CNN-vs-transformer scorecard on a real run of suites/scorecard.yaml (trimmed to what a test affords):
every axis re-accumulated from the per-sample records equals the stored numbers, the tests are the named ones
(McNemar against statsmodels, Holm against statsmodels), the exports agree, and the report opens on it in
Chromium with every link landing on the figure or table behind it."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.report.analysis import latest_rows
from harness.report.scorecard import scorecard, scorecard_pairs
from harness.store import ResultStore
from harness.suite import SUITES_DIR

REPO = Path(__file__).resolve().parents[2]
PAIRS = [["resnet_digits", "vit_digits"], ["convnext_digits", "swin_digits"]]


@pytest.fixture(scope="module")
def scorecard_run(tmp_path_factory) -> Path:
    """suites/scorecard.yaml with its attacks, corruptions and occlusion cut down (latency left out: it is
    timed, not scored per sample), run through the command line on 150 samples per dataset."""
    raw = yaml.safe_load((SUITES_DIR / "scorecard.yaml").read_text())
    cuts = {"pgd": {"eps": ["4/255", "8/255"], "steps": 3, "n": 60},
            "autoattack": {"n": 40, "blackbox_n": 0, "steps": 3},
            "corruption": {"corruptions": ["gaussian_noise", "contrast"], "severities": [2, 4], "n": 60},
            "occlusion": {"variants": ["random", "offset"], "fractions": [0.25, 0.5, 0.75], "n": 80}}
    raw["tasks"] = [{**t, "params": {**t.get("params", {}), **cuts.get(t["kind"], {})}} for t in raw["tasks"]
                    if t["kind"] != "latency"]
    folder = tmp_path_factory.mktemp("scorecard")
    suite = folder / "scorecard.yaml"
    suite.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = folder / "out"
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--suite", str(suite), "--out", str(out),
                             "--limit", "150", "--no-progress"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def rows_of(run: Path) -> pd.DataFrame:
    return latest_rows(ResultStore(run / "results.sqlite").frame())


def stored(rows: pd.DataFrame, row, model: str) -> float:
    part = rows[(rows["model"] == model) & (rows["task"] == row.task) & (rows["dataset"] == row.dataset) &
                (rows["metric"] == row.metric)]
    return float(part[[p == row.params for p in part["params"]]]["value"].iloc[0])


def test_every_axis_is_re_accumulated_from_the_records_to_the_stored_numbers(scorecard_run):
    rows = rows_of(scorecard_run)
    card = scorecard(rows, scorecard_run / "samples", PAIRS)
    assert [r.key for r in card] == ["clean", "pgd", "autoattack", "corruption", "shift", "shift",
                                     "occlusion-random", "occlusion-offset", "calibration", "ood-near", "ood-far"]
    for row in card:
        assert row.pairs == PAIRS and row.pairing == "declared"
        sign = -1 if row.direction == "lower" else 1
        # every model scored the same samples, so the statistic on all of them is the stored number (corruption:
        # the per-sample mean over the cells, whose mean is the stored mean corruption accuracy)
        expected = np.mean([sign * (stored(rows, row, t) - stored(rows, row, c)) for c, t in PAIRS])
        assert row.effect == pytest.approx(expected, abs=1e-9), row.axis
        assert row.test == "bootstrap-paired" and row.ci_low <= row.effect <= row.ci_high, row.axis
        assert row.n and row.p_value is not None and row.p_holm >= row.p_value
        assert row.verdict.endswith("(over 2 pairs)")
    ecs = next(r for r in card if r.key == "calibration")
    assert ecs.params["scaling"] == "temperature" and ecs.axis == "calibration: ECE (temperature scaling)"
    best = {r.key: r.best for r in card}
    clean = rows[(rows["metric"] == "top1") & (rows["task"] == "classification")]
    top = clean.sort_values("value").drop_duplicates("family", keep="last").set_index("family")["value"]
    assert best["clean"]["cnn"]["value"] == top["cnn"] and best["clean"]["transformer"]["value"] == top["transformer"]


def test_holm_across_the_axes_is_statsmodels_and_verdicts_follow_interval_and_adjusted_p(scorecard_run):
    from statsmodels.stats.multitest import multipletests

    card = scorecard(rows_of(scorecard_run), scorecard_run / "samples", PAIRS)
    tested = [r for r in card if r.p_value is not None]
    adjusted = multipletests([r.p_value for r in tested], method="holm")[1]
    assert [r.p_holm for r in tested] == pytest.approx(list(adjusted), abs=1e-12)
    for row in tested:
        excludes = row.ci_low > 0 or row.ci_high < 0
        assert row.significant == (excludes and row.p_holm < 0.05)
        if row.significant:
            winner = "transformers" if row.effect > 0 else "CNNs"
            assert row.verdict.startswith(f"{winner} {row.better}")
        else:
            assert row.verdict.startswith(f"no significant difference at n = {row.n}")


def test_one_pair_on_a_proportion_is_mcnemar_and_the_verdict_says_single_pair(scorecard_run):
    from statsmodels.stats.contingency_tables import mcnemar

    from harness.evaluation.state import load_records

    rows = rows_of(scorecard_run)
    card = scorecard(rows, scorecard_run / "samples", [["resnet_digits", "vit_digits"]])
    clean = next(r for r in card if r.key == "clean")
    assert clean.test == "mcnemar-exact" and "(from a single pair)" in clean.verdict
    outcomes = {}
    for model in ("resnet_digits", "vit_digits"):
        key = rows[(rows["model"] == model) & (rows["metric"] == "top1") & (rows["task"] == "classification")]
        state, _ = load_records(scorecard_run / "samples" / f"{key['job_key'].iloc[0]}.jsonl.gz")
        outcomes[model] = {i: r["topk"][0] == r["label"] for i, r in state.pass_records("main")}
    cnn, vit = outcomes["resnet_digits"], outcomes["vit_digits"]
    table = [[sum(cnn[i] and vit[i] for i in cnn), sum(cnn[i] and not vit[i] for i in cnn)],
             [sum(not cnn[i] and vit[i] for i in cnn), sum(not cnn[i] and not vit[i] for i in cnn)]]
    assert clean.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)
    assert clean.effect == pytest.approx((table[1][0] - table[0][1]) / len(cnn), abs=1e-12)


def test_without_declared_pairs_models_within_a_point_and_x1_5_params_are_paired():
    frame = pd.DataFrame([
        {"model": m, "family": f, "metric": metric, "task": "classification", "task_kind": kind, "dataset": "d",
         "params": {}, "value": v, "job_key": m, "provenance": None}
        for m, f, top1, params in [("c1", "cnn", 0.800, 10.0), ("c2", "cnn", 0.900, 30.0),
                                   ("t1", "transformer", 0.805, 14.0), ("t2", "transformer", 0.8095, 16.0),
                                   ("t3", "transformer", 0.900, 50.0)]
        for metric, kind, v in (("top1", "classification", top1), ("params_m", "latency", params))])
    pairs, how = scorecard_pairs(frame)
    # t2 is 15.99M vs c1's 10M: x1.6, outside the band; c2 vs t3 is x1.67; t2 vs c1 is within a point but not x1.5
    assert how == "matched" and [(p.first, p.second) for p in pairs] == [("c1", "t1")]


def test_the_exports_agree_with_the_scorecard(scorecard_run):
    card = scorecard(rows_of(scorecard_run), scorecard_run / "samples", PAIRS)
    table = list(csv.DictReader(io.StringIO((scorecard_run / "scorecard.csv").read_text())))
    exported = json.loads((scorecard_run / "scorecard.json").read_text())
    markdown = (scorecard_run / "scorecard.md").read_text().splitlines()
    assert [r["axis"] for r in table] == [r["axis"] for r in exported] == [r.axis for r in card]
    assert [r["verdict"] for r in table] == [r.verdict for r in card]
    assert [float(r["effect"]) for r in table] == pytest.approx([r.effect for r in card], abs=1e-9)
    assert markdown[0].startswith("| axis | best CNN | best transformer |") and len(markdown) >= len(card) + 2
    assert all(any(line.startswith(f"| {r.axis} |") for line in markdown) for r in card)


@pytest.mark.browser
def test_the_report_opens_on_the_scorecard_and_every_cell_links_to_what_is_behind_it(scorecard_run):
    from selenium.webdriver.common.by import By

    from chromium import start_chromium

    browser = start_chromium()
    try:
        browser.get((scorecard_run / "index.html").as_uri())
        first = browser.find_element(By.TAG_NAME, "h2")
        assert first.text == "CNN vs transformer"
        table = browser.find_element(By.ID, "scorecard")
        assert table.is_displayed() and table.location["y"] < 1600  # on the first screen
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 11 and all(len(r.find_elements(By.TAG_NAME, "a")) == 3 for r in rows)
        targets = {a.get_attribute("href").split("#", 1)[1] for a in table.find_elements(By.TAG_NAME, "a")}
        for target in targets:
            element = browser.find_element(By.ID, target)
            assert element.is_displayed(), target
        figures = {t for t in targets if t.count("--") >= 2}  # task--dataset--figure title
        assert any("occlusion" in t for t in figures) and any("robust-accuracy-vs-linf-eps" in t for t in figures)
        occlusion = next(r for r in rows if r.get_attribute("data-axis") == "occlusion-offset")
        occlusion.find_element(By.TAG_NAME, "a").click()
        target = browser.find_element(By.ID, occlusion.find_element(By.TAG_NAME, "a").get_attribute("href")
                                      .split("#", 1)[1])
        assert browser.execute_script("const r = arguments[0].getBoundingClientRect(); return r.top >= -1 && "
                                      "r.top < window.innerHeight;", target)
        assert target.find_element(By.TAG_NAME, "svg").is_displayed()
        # the occluded examples: every image decodes, clean and three fractions per variant
        examples = browser.find_element(By.CSS_SELECTOR, "table.occlusion-examples")
        images = examples.find_elements(By.TAG_NAME, "img")
        assert len(images) == 2 * 2 * 4
        assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                   for i in images)
    finally:
        browser.quit()
