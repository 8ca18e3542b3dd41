"""The task's report figure: flip consistency against top-1 on the mirrored images, one dot per model."""
from __future__ import annotations

import pandas as pd

from harness.registry import REPORT_SECTIONS
from harness.report.plotting import scatter


@REPORT_SECTIONS.register("flip_consistency")
def flip_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    points = []
    for (model, dataset), rows in task_rows.groupby(["model", "dataset"], sort=True):
        value = dict(zip(rows["metric"], rows["value"]))
        if "flip_consistency" in value and "flip_top1" in value:
            points.append((f"{model} ({dataset})", str(rows["family"].iloc[0]), float(value["flip_top1"]),
                           float(value["flip_consistency"])))
    if not points:
        return []
    return [("Flip consistency vs mirrored top-1",
             scatter(points, "top-1 on mirrored images", "flip consistency", "flip consistency per model"))]
