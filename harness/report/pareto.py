"""Pareto plots of a suite: accuracy vs throughput, accuracy vs FLOPs, robust vs clean accuracy.

Points are coloured by family; the dashed line joins the models no other model beats on both axes.
"""
from __future__ import annotations

import pandas as pd

from harness.report.latency_figures import accuracy_vs_flops, accuracy_vs_throughput
from harness.report.plotting import scatter
from harness.formatting import format_param
from harness.report.tables import unreliable_jobs

Point = tuple[str, str, float, float]  # model, family, x, y


def robust_vs_clean(task_rows: pd.DataFrame) -> tuple[str, list[Point]]:
    """(threat label, [(model, family, clean accuracy, robust accuracy)]) of one attack task, at the largest eps
    where some model keeps any robust accuracy (where the models still differ); clean accuracy is the task's
    own, on the same samples. Models whose robustness is flagged unreliable are labelled so."""
    robust = task_rows[task_rows["metric"] == "robust_acc"]
    if robust.empty:
        return "", []
    threats = robust.assign(norm=[p.get("norm") for p in robust["params"]],
                            eps=[float(p.get("eps", 0)) for p in robust["params"]])
    alive = threats[threats["value"] > 0]
    norm, eps = max(zip(alive["norm"], alive["eps"]) if len(alive) else zip(threats["norm"], threats["eps"]),
                    key=lambda t: t[1])
    chosen = threats[(threats["norm"] == norm) & (threats["eps"] == eps)]
    clean = task_rows[task_rows["metric"] == "clean_acc"].groupby("model")["value"].first()
    unreliable = {model for model, _, _ in unreliable_jobs(task_rows)}
    points = [(f"{r.model} (unreliable)" if r.model in unreliable else r.model, r.family, float(clean[r.model]),
               float(r.value)) for r in chosen.itertuples() if r.model in clean.index]
    return f"{norm} eps={format_param(eps)}", points


def pareto_sections(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The Pareto plots the suite's metrics allow (none when it measured neither cost nor robustness)."""
    rows = rows[rows["value"].notna()]
    sections = []
    speed = accuracy_vs_throughput(rows[rows["task_kind"] == "latency"], rows)
    if speed:
        sections.append(("Accuracy vs throughput (Pareto front dashed)", scatter(
            speed, "images/s (model only, best batch size; log scale)", "top-1 accuracy",
            "accuracy vs throughput", frontier="higher", log_x=True)))
    flops = accuracy_vs_flops(rows)
    if flops:
        sections.append(("Accuracy vs FLOPs (Pareto front dashed)", scatter(
            flops, "GFLOPs per image (log scale)", "top-1 accuracy", "accuracy vs FLOPs",
            frontier="lower", log_x=True)))
    for (task, dataset), part in rows[rows["task_kind"].isin(["pgd", "autoattack"])].groupby(["task", "dataset"]):
        threat, points = robust_vs_clean(part)
        if points:
            sections.append((f"Robust vs clean accuracy ({task} on {dataset}, {threat}; Pareto front dashed)", scatter(
                points, "clean accuracy", f"robust accuracy ({threat})", f"{task}: robust vs clean accuracy",
                frontier="higher")))
    return sections
