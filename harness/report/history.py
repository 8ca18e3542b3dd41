"""A suite's history: each headline metric over the runs its store kept, one line per model.

Only measured numbers are drawn (derived ones such as mCE are recomputed for the latest results alone).
"""
from __future__ import annotations

import pandas as pd

from harness.report.plotting import family_colour, inline_svg, new_figure
from harness.report.tables import headline, ok_rows


def run_order(history: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run that produced results, oldest first: run_id, label (start time), commit."""
    finished = history.groupby(history["run_id"].fillna("unknown run"))["finished_at"].min().rename("first_result")
    order = finished.reset_index().rename(columns={"index": "run_id"})
    info = runs.set_index("run_id") if not runs.empty else pd.DataFrame()
    order["started_at"] = [info["started_at"].get(r, None) if not info.empty else None for r in order["run_id"]]
    order["started_at"] = order["started_at"].fillna(order["first_result"])
    for column in ("git_commit", "harness_version", "argv"):
        order[column] = [info[column].get(r, None) if not info.empty and column in info else None
                         for r in order["run_id"]]
    order["jobs"] = [int(history.loc[history["run_id"].fillna("unknown run") == r, "job_key"].nunique())
                     for r in order["run_id"]]
    return order.sort_values("started_at", kind="stable").reset_index(drop=True)


def history_rows(history: pd.DataFrame) -> pd.DataFrame:
    """Headline metric rows of every stored attempt, with their leaderboard column labels."""
    ok = history[(history["status"] == "ok") & history["metric"].notna()]
    return headline(ok_rows(ok)) if not ok.empty else ok


def history_figures(rows: pd.DataFrame, order: pd.DataFrame) -> list[tuple[str, str]]:
    """(title, inline SVG) per task x dataset x headline column: value over runs, a line per model."""
    position = {run: i for i, run in enumerate(order["run_id"])}
    labels = [str(s)[:16].replace("T", " ") for s in order["started_at"]]
    rows = rows.assign(x=rows["run_id"].fillna("unknown run").map(position))
    figures = []
    for (task, dataset, column), part in rows.groupby(["task", "dataset", "column"], sort=False):
        figure, axes = new_figure(7.2, 3.2)
        hover = []
        for model, line in part.sort_values("x").groupby("model", sort=True):
            line = line.dropna(subset=["value"])
            if line.empty:
                continue
            family = line["family"].iloc[0]
            (artist,) = axes.plot(line["x"], line["value"], marker="o", markersize=3, linewidth=1.2,
                                  color=family_colour(family), alpha=0.8)
            values = ", ".join(f"{labels[int(x)]}: {v:.4f}" for x, v in zip(line["x"], line["value"]))
            hover.append((artist, f"{model} ({family}) — {values}"))
        for family in sorted(set(part["family"].dropna())):
            axes.plot([], [], color=family_colour(family), label=family)
        axes.legend(loc="best", fontsize=8, frameon=False)
        step = max(1, len(labels) // 10)
        axes.set_xticks(range(0, len(labels), step), labels[::step], rotation=30, ha="right", fontsize=7)
        axes.set_xlim(-0.5, len(labels) - 0.5)
        axes.set_xlabel("run (start time)")
        axes.set_ylabel(column)
        axes.set_title(f"{column} over runs — {task} on {dataset}", fontsize=9)
        figures.append((f"{task} · {dataset} · {column}", inline_svg(figure, hover)))
    return figures
