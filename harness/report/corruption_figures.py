"""Report figures for the corruption task: accuracy heatmaps (models x corruptions, corruption x severity);
on dense data mPC / rPC by family (harness/report/dense_corruption_figures.py).

mCE and relative mCE need no figure: they are derived metrics, so they land in the leaderboard as columns.
"""
from __future__ import annotations

import pandas as pd

from harness.registry import REPORT_SECTIONS
from harness.report.plotting import heatmap
from harness.report.tables import models_by_family
from harness.robustness.corruptions import SHORT_NAMES

# Column labels short enough for the heatmap's cells (the paper's abbreviations).



def _cells(task_rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model x corruption x severity with its accuracy."""
    rows = task_rows[task_rows["metric"] == "corruption_acc"]
    return pd.DataFrame({
        "model": rows["model"].astype(str), "family": rows["family"].astype(str),
        "corruption": [p["corruption"] for p in rows["params"]], "severity": [int(p["severity"]) for p in rows["params"]],
        "value": rows["value"].astype(float),
    })


@REPORT_SECTIONS.register("corruption")
def corruption_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    cells = _cells(task_rows)
    if cells.empty:  # dense data (detection, segmentation, panoptic): mPC / rPC
        from harness.report.dense_corruption_figures import dense_corruption_sections

        return dense_corruption_sections(task_rows)
    corruptions = list(dict.fromkeys(cells["corruption"]))
    severities = sorted(set(cells["severity"]))
    models = models_by_family(cells)
    mode = task_rows["params"].iloc[0].get("mode", "")
    clean = dict(task_rows.loc[task_rows["metric"] == "clean_acc", ["model", "value"]].itertuples(index=False, name=None))
    by_corruption = cells.groupby(["model", "corruption"])["value"].mean()
    overview = heatmap(
        [[clean.get(model)] + [by_corruption.get((model, c)) for c in corruptions] for model, _ in models],
        [f"{model} ({family})" for model, family in models], ["clean", *(SHORT_NAMES.get(c, c) for c in corruptions)],
        title=f"Top-1 accuracy per corruption, mean over severities {severities[0]}-{severities[-1]} ({mode})")
    sections = [(f"Accuracy under corruption, mean over severities ({mode}; rows grouped by family)", overview)]
    matrix = cells.set_index(["model", "corruption", "severity"])["value"]
    for model, family in models:
        figure = heatmap([[matrix.get((model, c, s)) for s in severities] for c in corruptions], corruptions,
                         [f"severity {s}" for s in severities], title=f"{model}: accuracy per corruption and severity")
        sections.append((f"{model} ({family}): corruption x severity accuracy ({mode})", figure))
    return sections
