"""A suite's history: each headline metric over the runs its store kept, one line per model.

Only measured numbers are drawn (derived ones such as mCE are recomputed for the latest results alone).
"""
from __future__ import annotations

import pandas as pd

from harness.report.plotting import family_colour, inline_svg, new_figure
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
    (colour: family; the page gives the legend). Markers only for short histories, where lines are stubs."""
    position = {run: i for i, run in enumerate(order["run_id"])}
    labels = list(order["label"])
    rows = rows[rows["value"].notna()]
    rows = rows.assign(x=rows["run_id"].fillna("unknown run").map(position)).sort_values("x", kind="stable")
    marker = "o" if len(labels) <= 5 else ""
    step = max(1, len(labels) // 8)
    figures = []
    for (task, dataset, column), part in rows.groupby(["task", "dataset", "column"], sort=False):
        figure, axes = new_figure(7.2, 2.8, layout=None)
        figure.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.25)
        wide = part.pivot_table(index="x", columns="model", values="value", aggfunc="last")
        wide = wide.reindex(range(len(labels)))
        families = part.drop_duplicates("model").set_index("model")["family"]
        # one plot call for every model's line (much faster than one call per line)
        lines = axes.plot(wide.index.to_numpy(), wide.to_numpy(dtype=float), marker=marker, markersize=3,
                          linewidth=1.1, alpha=0.8)
        hover = []
        for artist, model in zip(lines, wide.columns):
            artist.set_color(family_colour(families.get(model)))
            series = wide[model].dropna()
            values = ", ".join(f"run {int(x) + 1}: {y:.4f}" for x, y in series.items())
            hover.append((artist, f"{model} ({families.get(model)}) — {values}"))
        axes.set_xticks(range(0, len(labels), step), labels[::step], rotation=20, ha="right", fontsize=7)
        axes.set_xlim(-0.5, len(labels) - 0.5)
        axes.set_ylabel(column)
        axes.set_title(f"{column} over runs — {task} on {dataset}", fontsize=9)
        figures.append((f"{task} · {dataset} · {column}", inline_svg(figure, hover)))
    return figures
