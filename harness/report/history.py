"""A suite's history: each headline metric over the runs its store kept, one line per model.

Only measured numbers are drawn (derived ones such as mCE are recomputed for the latest results alone).
"""
from __future__ import annotations

import pandas as pd

from harness.report.plotting import family_colour
from harness.report.svg_chart import Series, xy_chart
from harness.report.tables import headline, ok_rows


def run_order(history: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run that produced results, oldest first: run_id, label, start time, commit, jobs stored."""
    run_ids = history["run_id"].fillna("unknown run")
    order = pd.DataFrame({"first_result": history.groupby(run_ids)["finished_at"].min(),
                          "jobs": history.groupby(run_ids)["job_key"].nunique()})
    order.index.name = "run_id"
    info = runs.set_index("run_id")[["started_at", "git_commit", "harness_version", "argv"]] if not runs.empty \
        else pd.DataFrame(columns=["started_at", "git_commit", "harness_version", "argv"])
    order = order.join(info, how="left").reset_index()
    order["started_at"] = order["started_at"].fillna(order["first_result"])
    order = order.sort_values(["first_result", "started_at"], kind="stable").reset_index(drop=True)
    order["label"] = [f"{i + 1} · {str(s)[:16].replace('T', ' ')}" for i, s in enumerate(order["started_at"])]
    return order


def history_rows(history: pd.DataFrame) -> pd.DataFrame:
    """Headline metric rows of every stored attempt, with their leaderboard column labels: the results
    (a direction: higher or lower is better), not properties of the model such as its parameter count."""
    ok = history[(history["status"] == "ok") & history["metric"].notna()]
    if ok.empty:
        return ok
    rows = headline(ok_rows(ok))
    return rows[rows["direction"].isin(["higher", "lower"])]


def history_figures(rows: pd.DataFrame, order: pd.DataFrame) -> list[tuple[str, str]]:
    """(title, inline SVG) per task x dataset x headline column: value over runs, a line per model
    (colour: family; the page gives the legend), broken where a run has no value for the model. Markers
    only for short histories, where lines are stubs."""
    position = {run: i for i, run in enumerate(order["run_id"])}
    labels = list(order["label"])
    rows = rows[rows["value"].notna()]
    rows = rows.assign(x=rows["run_id"].fillna("unknown run").map(position)).sort_values("x", kind="stable")
    marker = "o" if len(labels) <= 5 else None
    step = max(1, len(labels) // 8)
    ticks = [(float(i), labels[i]) for i in range(0, len(labels), step)]
    figures = []
    for (task, dataset, column), part in rows.groupby(["task", "dataset", "column"], sort=False):
        wide = part.pivot_table(index="x", columns="model", values="value", aggfunc="last")
        wide = wide.reindex(range(len(labels)))
        families = part.drop_duplicates("model").set_index("model")["family"]
        series = []
        for model in wide.columns:
            values = wide[model].tolist()
            shown = ", ".join(f"run {x + 1}: {y:.4f}" for x, y in enumerate(values) if y == y)
            series.append(Series(list(enumerate(values)), family_colour(families.get(model)), marker=marker,
                                 marker_size=5, line_width=1.1, hover=f"{model} ({families.get(model)}) — {shown}"))
        figures.append((f"{task} · {dataset} · {column}",
                        xy_chart(series, "", column, f"{column} over runs — {task} on {dataset}", x_ticks=ticks,
                                 x_tick_angle=20, x_range=(-0.5, len(labels) - 0.5), grid="y", height=290)))
    return figures
