"""The "Uncertainty" report sections (calibration under ``ece``, OOD under ``ood_auroc``) from hand-built rows
in the shape the evaluators store them (harness/evaluation/calibration.py, harness/evaluation/ood.py)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

import harness.report.sections  # noqa: F401  (imports every section module, the uncertainty one included)
from harness.registry import REPORT_SECTIONS
from harness.report.sections import task_figures

BINS = 15
MODELS = (("cnn_a", "cnn"), ("vit<b>", "transformer"))
CALIBRATION = {  # model -> scaling -> metric -> value
    "cnn_a": {"none": {"ece": 0.081, "rms_ce": 0.102, "max_ce": 0.31, "adaptive_ece": 0.079, "classwise_ece": 0.012,
                       "nll": 0.45, "brier": 0.21, "aurc": 0.052},
              "temperature": {"ece": 0.021, "rms_ce": 0.033, "max_ce": 0.12, "adaptive_ece": 0.024,
                              "classwise_ece": 0.008, "nll": 0.38, "brier": 0.19, "aurc": 0.051}},
    "vit<b>": {"none": {"ece": 0.043, "rms_ce": 0.061, "max_ce": 0.22, "adaptive_ece": 0.041, "classwise_ece": 0.009,
                        "nll": 0.36, "brier": 0.17, "aurc": 0.041},
               "temperature": {"ece": 0.017, "rms_ce": 0.025, "max_ce": 0.09, "adaptive_ece": 0.018,
                               "classwise_ece": 0.007, "nll": 0.33, "brier": 0.16, "aurc": 0.040}},
}
TEMPERATURE = {"cnn_a": 1.7, "vit<b>": 1.2}
OOD_SETS = (("ood_near", "letters"), ("ood_far", "textures"))
AUROC = {("msp", "cnn_a", "letters"): 0.81, ("msp", "cnn_a", "textures"): 0.93,
         ("msp", "vit<b>", "letters"): 0.86, ("msp", "vit<b>", "textures"): 0.95,
         ("knn", "cnn_a", "letters"): 0.84, ("knn", "cnn_a", "textures"): 0.97,
         ("knn", "vit<b>", "letters"): 0.88, ("knn", "vit<b>", "textures"): 0.99}
TOP1 = {"cnn_a": 0.912, "vit<b>": 0.934}


def _row(model: str, family: str, metric: str, value: float, params: dict, n: int | None = 1000) -> dict:
    return {"model": model, "family": family, "metric": metric, "value": value, "n": n, "params": params,
            "ci_low": None, "ci_high": None}


def frame() -> pd.DataFrame:
    rows = []
    for model, family in MODELS:
        rows.append(_row(model, family, "top1", TOP1[model], {}))
        for scaling, metrics in CALIBRATION[model].items():
            params = {"bins": BINS, "scaling": scaling, **({"fit_on": "digits-val"} if scaling == "temperature" else {}),
                      "evaluator": "calibration"}
            rows += [_row(model, family, m, v, params) for m, v in metrics.items()]
            for b in range(BINS):
                if b < 5:
                    continue  # empty low-confidence bins have no rows
                confidence = (b + 0.5) / BINS
                accuracy = confidence - (0.05 if scaling == "none" else 0.01)
                where = {**params, "bin": b}
                rows += [_row(model, family, "reliability_accuracy", accuracy, where, n=10 * b),
                         _row(model, family, "reliability_confidence", confidence, where, n=10 * b)]
        rows.append(_row(model, family, "temperature", TEMPERATURE[model], {"fit_on": "digits-val",
                                                                            "evaluator": "calibration"}, n=500))
        for detector in ("msp", "knn"):
            for role, dataset in OOD_SETS:
                params = {"detector": detector, "role": role, "dataset": dataset, "evaluator": "ood"}
                auroc = AUROC[(detector, model, dataset)]
                rows += [_row(model, family, "ood_auroc", auroc, params, n=300),
                         _row(model, family, "ood_fpr95", 1 - auroc + 0.1, params, n=300),
                         _row(model, family, "ood_aupr_in", auroc, params, n=300),
                         _row(model, family, "ood_aupr_out", auroc, params, n=300)]
                for fpr in np.round(np.linspace(0, 1, 21), 2):
                    rows.append(_row(model, family, "ood_roc_tpr", float(min(1.0, fpr ** (1 - auroc))),
                                     {**params, "fpr": float(fpr)}, n=300))
                mean = {"detector": detector, "role": role, "dataset": "mean", "evaluator": "ood"}
                rows += [_row(model, family, "ood_auroc", auroc, mean, n=300),
                         _row(model, family, "ood_fpr95", 1 - auroc + 0.1, mean, n=300)]
    return pd.DataFrame(rows).assign(task="classify", task_kind="classification", dataset="digits-test")


def _cells(html: str, model: str) -> dict[str, float]:
    """column key -> data-value of one model's row of the first table in ``html``."""
    row = re.search(rf'<tr data-model="{re.escape(model)}".*?</tr>', html).group(0)
    return {k: float(v) for k, v in re.findall(r'data-col="([^"]+)" class="num[^"]*" data-value="([^"]+)"', row)}


def test_calibration_sections_table_reliability_and_family_comparison():
    rows = frame()
    sections = dict(REPORT_SECTIONS.get("ece")(rows, rows))
    table = sections["Uncertainty: calibration before and after temperature scaling"]
    cells = _cells(table, "cnn_a")
    for scaling, key in (("none", "{}"), ("temperature", "{}:T")):
        for metric, value in CALIBRATION["cnn_a"][scaling].items():
            assert cells[key.format(metric)] == value
    assert cells["temperature"] == 1.7
    assert _cells(table, "vit&lt;b&gt;")["ece:T"] == 0.017 and "<b>" not in table  # names escaped
    family = sections["Uncertainty: CNN vs transformer ECE"]
    cnn = re.search(r'<tr data-family="cnn" data-scaling="none">.*?</tr>', family).group(0)
    assert 'data-col="best" class="num best" data-value="0.081"' not in cnn  # the transformer's ECE is lower
    assert 'data-value="0.081"' in cnn and 'data-value="cnn_a"' in cnn
    for model, _ in MODELS:
        svg = sections[f"Uncertainty: reliability diagram of {model}"]
        assert svg.startswith("<svg") and "Reliability diagram" in svg and "after temperature scaling" in svg
        assert svg.count('<g id="hover-') == 2 * (BINS - 5)  # one hoverable bar per non-empty bin, both panels
    assert "T = 1.700" in sections["Uncertainty: reliability diagram of cnn_a"]


def test_ood_sections_tables_roc_curves_and_family_comparison():
    rows = frame()
    sections = dict(REPORT_SECTIONS.get("ood_auroc")(rows, rows))
    for detector in ("msp", "knn"):
        table = sections[f"Uncertainty: OOD detection with {detector} (AUROC, FPR@95TPR)"]
        assert "OpenOOD&#39;s convention" in table or "OpenOOD's convention" in table
        cells = _cells(table, "cnn_a")
        assert cells["top1"] == TOP1["cnn_a"]
        assert cells["ood_near:letters:ood_auroc"] == AUROC[(detector, "cnn_a", "letters")]
        assert cells["ood_far:textures:ood_fpr95"] == 1 - AUROC[(detector, "cnn_a", "textures")] + 0.1
        assert cells["ood_near:mean:ood_auroc"] == AUROC[(detector, "cnn_a", "letters")]
        for role, dataset in OOD_SETS:
            svg = sections[f"Uncertainty: ROC curves of {detector} on {dataset} ({role[4:]} OOD)"]
            assert svg.startswith("<svg") and f"ROC: {detector} on {dataset}" in svg
            assert svg.count('<g id="hover-') == len(MODELS)  # one line per model
            assert "stroke: #1f77b4" in svg and "stroke: #d62728" in svg  # coloured by family
    family = sections["Uncertainty: CNN vs transformer OOD detection (mean AUROC near and far)"]
    knn_vit = re.search(r'<tr data-detector="knn" data-family="transformer">.*?</tr>', family).group(0)
    assert 'data-col="ood_near" class="num" data-value="0.88"' in knn_vit
    assert 'data-col="ood_far" class="num" data-value="0.99"' in knn_vit


def test_sections_reach_the_page_and_a_broken_figure_does_not_break_it():
    rows = frame()
    titles = [t for t, _ in task_figures(rows, rows)]
    assert "Uncertainty: calibration before and after temperature scaling" in titles
    assert "Uncertainty: OOD detection with msp (AUROC, FPR@95TPR)" in titles
    broken = rows.copy()
    broken.loc[broken["metric"] == "reliability_accuracy", "params"] = [
        {"scaling": "none", "bins": BINS, "bin": "not a bin"}] * int((broken["metric"] == "reliability_accuracy").sum())
    titles = [t for t, _ in task_figures(broken, broken)]
    assert "Figures not drawn" in titles  # the calibration figures, reported in their place
    assert "Uncertainty: OOD detection with msp (AUROC, FPR@95TPR)" in titles
