"""CNN vs transformer with statistics: matched pairs from real per-sample records (McNemar and the paired interval
against statsmodels), Holm, family intervals, Pareto plots, findings that claim only what the statistics support."""
from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from harness.gate.stats import paired_proportions, z_value
from harness.report.analysis import suite_analysis
from harness.report.findings import findings_text
from harness.report.pairs import (Pair, PairResult, compare_pairs, declared_pairs, holm, matched_pairs,
                                  model_costs)
from harness.report.plotting import pareto_front
from harness.report.pareto import pareto_sections, robust_vs_clean
from harness.report.tables import ok_rows


def read_table(html: str, table_id: str | None = None) -> pd.DataFrame:
    """A table of the page as text cells, read back with an HTML parser (html5lib)."""
    import html5lib

    tree = html5lib.parse(html, namespaceHTMLElements=False)
    table = next(t for t in tree.iter("table") if table_id is None or t.get("id") == table_id)
    text = lambda cell: "".join(cell.itertext()).strip()  # noqa: E731
    header = [text(th) for th in table.iter("th")]
    return pd.DataFrame([[text(td) for td in tr.iter("td")] for tr in table.find("tbody").iter("tr")], columns=header)


def run_frame(out: Path) -> pd.DataFrame:
    frame = pd.DataFrame(json.loads((out / "results.json").read_text()))
    frame["provenance"] = frame["provenance"].map(json.dumps)  # as the store holds it
    return frame


def raw_outcomes(out: Path, job_key: str) -> dict[str, bool]:
    """Top-1 correctness per sample, read straight from the records file (not through the harness)."""
    with gzip.open(out / "samples" / f"{job_key}.jsonl.gz", "rt") as lines:
        rows = [json.loads(line) for line in lines]
    return {r["sample_id"]: r["record"]["topk"][0] == r["record"]["label"] for r in rows if "record" in r}


def newcombe_by_hand(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """Newcombe (1998) method 10 for p1 - p2, p1 = (a + b) / n, p2 = (a + c) / n, from statsmodels' Wilson limits."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = proportion_confint(a + b, n, alpha=0.05, method="wilson")
    l2, u2 = proportion_confint(a + c, n, alpha=0.05, method="wilson")
    if a + b == n:
        u1 = 1.0  # at the ends the harness's Wilson limit is the exact 1 (statsmodels: 1 - 1e-16)
    if a + c == n:
        u2 = 1.0
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    phi = 0.0 if denominator == 0 else (max(cross - n / 2, 0) if cross > 0 else cross) / math.sqrt(denominator)
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    return low, high


# ---- on a real run: the classification suite's four zoo models, per-sample records on disk ----------------

def test_cost_matched_pair_statistics_equal_statsmodels_on_real_records(classification_run):
    frame = run_frame(classification_run)
    rows = ok_rows(frame)
    cost_name, costs = model_costs(rows)
    assert cost_name == "parameters" and costs["convnext_digits"] == 263498  # from provenance (no latency task)
    families = dict(zip(rows["model"], rows["family"]))
    pairs = matched_pairs(families, cost_name, costs, band=0.25)
    # the only CNN x transformer couple within 25 %: 263k vs 211k parameters (resnet 326k, vit 142k are not)
    assert [(p.first, p.second) for p in pairs] == [("convnext_digits", "swin_digits")]
    results = compare_pairs(rows, pairs, classification_run / "samples")
    assert [r.column for r in results] == ["top1", "top5"]
    top1 = results[0]
    keys = dict(zip(rows.loc[rows["metric"] == "top1", "model"], rows.loc[rows["metric"] == "top1", "job_key"]))
    first, second = raw_outcomes(classification_run, keys["convnext_digits"]), \
        raw_outcomes(classification_run, keys["swin_digits"])
    assert set(first) == set(second) and len(first) == 60
    a = sum(first[i] and second[i] for i in first)
    b = sum(first[i] and not second[i] for i in first)
    c = sum(not first[i] and second[i] for i in first)
    d = 60 - a - b - c
    assert top1.comparison.n == 60 and top1.comparison.diff == pytest.approx((b - c) / 60, abs=1e-12)
    assert top1.comparison.p_value == pytest.approx(mcnemar([[a, b], [c, d]], exact=True).pvalue, abs=1e-12)
    low, high = newcombe_by_hand(a, b, c, d)
    assert (top1.comparison.ci_low, top1.comparison.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert top1.accuracies == pytest.approx(((a + b) / 60, (a + c) / 60))


def test_suite_analysis_on_a_real_run_reports_pairs_pareto_and_findings(classification_run):
    sections = dict(suite_analysis(run_frame(classification_run), classification_run))
    # no cost or attack: no Pareto plot; the scorecard has its clean-accuracy row (tests/report/test_scorecard.py)
    assert list(sections) == ["Scorecard", "Family summary", "Matched pairs", "Findings"]
    assert 'id="family-summary"' in sections["Family summary"] and "95% CI" in sections["Family summary"]
    table = read_table(sections["Matched pairs"])
    assert list(table["first"].str.split().str[0]) == ["convnext_digits"] * 2
    assert set(table["verdict"]) == {"no significant difference"}  # 60 samples, at most one discordant pair
    findings = sections["Findings"]
    assert "None of the 2 comparisons of 1 pair(s) matched on parameters within ±25%" in findings
    assert "beats" not in findings
    # without records there is no paired test, and the paragraph says why
    assert "no per-sample records were found" in dict(suite_analysis(run_frame(classification_run), None))["Findings"]


def test_declared_pairs_come_from_the_suite_and_reach_the_report(classification_run, tmp_path, write_suite):
    from harness.report.render import write_report
    from harness.schema import SuiteError
    from harness.suite import load_suite
    from tests.conftest import zoo_suite

    suite = zoo_suite(("resnet_digits", "vit_digits"))
    with pytest.raises(SuiteError, match=r"suite.yaml:\d+: pairs: pair 0 must name two different models.*'nope'"):
        load_suite(str(write_suite({**suite, "pairs": [["resnet_digits", "nope"]]})))
    loaded = load_suite(str(write_suite({**suite, "pairs": [["resnet_digits", "vit_digits"]]})))
    assert loaded.spec.pairs == [["resnet_digits", "vit_digits"]]
    shutil.copytree(classification_run / "samples", tmp_path / "out" / "samples")
    html = write_report(run_frame(classification_run), tmp_path / "out", loaded).read_text()
    pairs_table = read_table(html, "matched-pairs")
    assert {tuple(r.split()[0] for r in pair) for pair in zip(pairs_table["first"], pairs_table["second"])} == \
        {("resnet_digits", "vit_digits")}
    assert set(pairs_table["matched on"]) == {"declared in the suite"}
    assert "2 comparisons of 1 pair(s) declared in the suite" in html


# ---- statistics and wording ---------------------------------------------------------------------------------

def test_holm_equals_statsmodels():
    p_values = [0.01, 0.04, 0.03, 0.2, 0.0004, 1.0, 0.04]
    assert holm(p_values) == pytest.approx(list(multipletests(p_values, method="holm")[1]), abs=1e-12)
    assert holm([]) == []


def _result(first: list[bool], second: list[bool], p_holm: float | None = None) -> PairResult:
    comparison = paired_proportions(second, first)  # first minus second
    return PairResult(Pair("cnn_a", "vit_b", "declared in the suite"), "classification", "digits-test", "top1",
                      ("cnn", "transformer"), (float(np.mean(first)), float(np.mean(second))), comparison,
                      comparison.p_value if p_holm is None else p_holm)


def test_findings_state_a_difference_only_when_the_statistics_support_it():
    clear = _result([True] * 180 + [False] * 20, [True] * 150 + [False] * 50)  # 30 discordant, all one way
    text = findings_text([clear.pair], [clear], "parameters", declared=True, records=True)
    c = clear.comparison
    assert text.startswith(f"On digits-test, cnn_a (cnn) beats vit_b (transformer) on top1 (classification) by "
                           f"15.0 points (95% CI {100 * c.ci_low:.1f}–{100 * c.ci_high:.1f}, McNemar p = < 0.001")
    assert "n = 200" in text
    reverse = _result([True] * 150 + [False] * 50, [True] * 180 + [False] * 20)
    assert "vit_b (transformer) beats cnn_a (cnn) by" not in findings_text([reverse.pair], [reverse], "p", True, True)
    assert "vit_b (transformer) beats cnn_a (cnn) on top1" in findings_text([reverse.pair], [reverse], "p", True, True)
    # significant before adjustment, not after: no claim
    adjusted = _result([True] * 180 + [False] * 20, [True] * 150 + [False] * 50, p_holm=0.2)
    assert "beats" not in findings_text([adjusted.pair], [adjusted], "parameters", True, True)
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(20, 300))
        first = rng.random(n) < rng.uniform(0.5, 1)
        second = np.where(rng.random(n) < 0.8, first, rng.random(n) < rng.uniform(0.5, 1))
        result = _result(first.tolist(), second.tolist())
        text = findings_text([result.pair], [result], "parameters", True, True)
        excludes_zero = result.comparison.ci_low > 0 or result.comparison.ci_high < 0
        assert ("beats" in text) == (excludes_zero and result.p_holm < 0.05)
        if "beats" not in text:
            assert "None of the 1 comparisons" in text


def test_findings_without_pairs_say_how_to_get_them():
    text = findings_text([], [], "parameters", declared=False, records=True)
    assert "No two models of different families are within ±25% of each other's parameters" in text
    assert "pairs:" in text


# ---- family intervals, Pareto ------------------------------------------------------------------------------

def test_pareto_front_keeps_the_undominated_points():
    points = [(10, 0.9), (30, 0.8), (20, 0.95), (5, 0.97), (25, 0.7)]
    assert pareto_front(points, x_higher=True) == [(5, 0.97), (20, 0.95), (30, 0.8)]
    assert pareto_front(points, x_higher=False) == [(5, 0.97)]  # lower cost and higher accuracy: one winner


def synthetic_rows() -> pd.DataFrame:
    rows = []
    models = {"res": ("cnn", 0.90, 120.0, 1.2, 0.30), "conv": ("cnn", 0.93, 60.0, 2.0, 0.10),
              "vit": ("transformer", 0.95, 40.0, 1.8, 0.00), "deit": ("transformer", 0.85, 200.0, 1.0, 0.05)}
    for i, (model, (family, top1, speed, flops, robust)) in enumerate(models.items()):
        base = {"model": model, "family": family, "arch": model, "dataset": "d", "status": "ok", "n": 100,
                "provenance": "{}", "ci_low": None, "ci_high": None}
        rows += [{**base, "job_key": f"c{i}", "task": "classification", "task_kind": "classification",
                  "metric": "top1", "params": {}, "value": top1},
                 {**base, "job_key": f"l{i}", "task": "latency", "task_kind": "latency", "metric": "throughput_img_s",
                  "params": {"mode": "model_only", "batch_size": 8}, "value": speed},
                 {**base, "job_key": f"l{i}", "task": "latency", "task_kind": "latency", "metric": "gflops",
                  "params": {}, "value": flops},
                 {**base, "job_key": f"p{i}", "task": "pgd", "task_kind": "pgd", "metric": "clean_acc",
                  "params": {}, "value": top1},
                 {**base, "job_key": f"p{i}", "task": "pgd", "task_kind": "pgd", "metric": "robust_acc",
                  "params": {"norm": "Linf", "eps": 8 / 255}, "value": robust},
                 {**base, "job_key": f"p{i}", "task": "pgd", "task_kind": "pgd", "metric": "robust_acc",
                  "params": {"norm": "Linf", "eps": 16 / 255}, "value": 0.0}]
    return pd.DataFrame(rows)


def test_pareto_plots_and_cost_matching_use_flops_when_measured():
    frame = synthetic_rows()
    rows = ok_rows(frame)
    sections = dict(pareto_sections(rows))
    assert list(sections) == ["Accuracy vs throughput (Pareto front dashed)", "Accuracy vs FLOPs (Pareto front dashed)",
                              "Robust vs clean accuracy (pgd on d, Linf eps=8/255; Pareto front dashed)"]
    for html in sections.values():
        assert html.startswith("<svg") and '<g id="pareto">' in html and html.count("<title>") == 4
    assert "<title>vit (transformer): images/s 40, top-1 accuracy 0.9500</title>" in \
        sections["Accuracy vs throughput (Pareto front dashed)"]
    threat, points = robust_vs_clean(rows[rows["task"] == "pgd"])  # 16/255 breaks everyone: 8/255 is shown
    assert threat == "Linf eps=8/255" and ("res", "cnn", 0.90, 0.30) in points
    cost_name, costs = model_costs(rows)
    assert cost_name == "GFLOPs" and costs == {"res": 1.2, "conv": 2.0, "vit": 1.8, "deit": 1.0}
    pairs = matched_pairs(dict(zip(rows["model"], rows["family"])), cost_name, costs, band=0.25)
    assert {(p.first, p.second) for p in pairs} == {("conv", "vit"), ("deit", "res")}
    assert declared_pairs([["a", "b"]]) == [Pair("a", "b", "declared in the suite")]
    analysis = dict(suite_analysis(frame, None))
    assert "Matched pairs" not in analysis and "no per-sample records were found" in analysis["Findings"]
    summary = read_table(analysis["Family summary"]).set_index("metric")
    assert summary.loc["top1 ↑", "cnn n"] == "2" and summary.loc["top1 ↑", "cnn mean"] == "0.9150"
    assert summary.loc["top1 ↑", "cnn 95% CI"] == "0.9000 – 0.9300"
