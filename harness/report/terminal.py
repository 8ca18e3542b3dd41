"""The compact results table printed at the end of a run: headline metrics, one row per model x task."""
from __future__ import annotations

import pandas as pd

from harness.report.tables import headline, ok_rows


def results_table(frame: pd.DataFrame, max_columns: int = 6) -> str:
    """Plain text (no colour codes, fit for CI logs): model, dataset, task and its first headline metrics."""
    rows = headline(ok_rows(frame))
    rows = rows[rows["metric_kind"] != "timing"] if not rows.empty else rows
    if rows.empty:
        return ""
    lines = []
    for (task, dataset), part in rows.groupby(["task", "dataset"], sort=False):
        columns = list(dict.fromkeys(part["column"]))[:max_columns]
        shown = part[part["column"].isin(columns)]
        wide = shown.pivot_table(index="model", columns="column", values="value",
                                                              aggfunc="first", sort=False)
        wide = wide.reindex(columns=columns)
        wide.columns.name, wide.index.name = None, None
        first = shown[shown["column"] == columns[0]]["n"]  # the evaluated split's (role passes have their own n)
        lines.append(f"{task} on {dataset} (n = {int(first.max())})")
        lines.append(wide.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
        lines.append("")
    return "\n".join(lines).rstrip()
