"""Report figures of a dense task under corruption (detection AP, segmentation mIoU, panoptic PQ):
mPC and rPC by family (Michaelis et al. 2019) and the headline metric per model x corruption.

Rows as harness/robustness/mpc.py stores them: ``mpc`` / ``rpc`` with params ``{metric, iou_type?, mode}``
and ``corruption_score`` with ``{metric, corruption, severity, iou_type?, mode}``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.robustness.corruptions import SHORT_NAMES
from harness.report.plotting import family_colour, heatmap, inline_svg, new_figure
from harness.report.tables import models_by_family

LABELS = {"map": "AP", "miou": "mIoU", "pq": "PQ"}


def _variant(params: dict) -> tuple[str, str]:
    """(headline metric, variant such as the iou_type) a row belongs to."""
    return str(params.get("metric", "")), str(params.get("iou_type", ""))


def mpc_by_family(rows: pd.DataFrame, metric: str, variant: str) -> str | None:
    """Two panels, models grouped by family: mPC (bars) with the clean score (mPC / rPC, ticks), and rPC with
    each family's mean (dashed)."""
    def values(name: str) -> dict[str, float]:
        part = rows[(rows["metric"] == name) & rows["params"].map(lambda p: _variant(p) == (metric, variant))]
        return dict(zip(part["model"].astype(str), part["value"].astype(float)))

    mpc, rpc = values("mpc"), values("rpc")
    models = [mf for mf in models_by_family(rows) if mf[0] in mpc]
    if not models:
        return None
    label = LABELS.get(metric, metric) + (f" ({variant})" if variant else "")
    figure, (left, right) = new_figure(7.2, 3.4, ncols=2)
    x = np.arange(len(models))
    hover = []
    for i, (model, family) in enumerate(models):
        bar = left.bar(i, mpc[model], color=family_colour(family), width=0.7)[0]
        clean = mpc[model] / rpc[model] if rpc.get(model) else None
        text = f"{model} ({family}): mPC {mpc[model]:.4f}" + (f", clean {clean:.4f}" if clean is not None else "")
        hover.append((bar, text))
        if clean is not None:
            left.plot([i - 0.35, i + 0.35], [clean, clean], color="black", linewidth=1.5)
        if model in rpc:
            hover.append((right.bar(i, rpc[model], color=family_colour(family), width=0.7)[0],
                          f"{model} ({family}): rPC {rpc[model]:.4f}"))
    for family in dict.fromkeys(f for _, f in models):
        members = [i for i, (m, f) in enumerate(models) if f == family and m in rpc]
        if len(members) > 1:  # a family of one: its mean is its bar
            mean = float(np.mean([rpc[models[i][0]] for i in members]))
            line = right.plot([min(members) - 0.4, max(members) + 0.4], [mean, mean], "--",
                              color=family_colour(family), linewidth=1.2)[0]
            hover.append((line, f"{family} mean rPC {mean:.4f} ({len(members)} models)"))
    for ax, title in ((left, f"mPC, {label} (black: clean)"), (right, "rPC = mPC / clean")):
        ax.set_xticks(x, [m for m, _ in models], rotation=20, ha="right")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    left.set_ylabel(label)
    right.set_ylim(0, max(1.0, max(rpc.values(), default=1.0) * 1.05))
    return inline_svg(figure, hover)


def corruption_heatmap(rows: pd.DataFrame, metric: str, variant: str) -> str | None:
    """Models x corruptions: the headline metric, mean over severities."""
    part = rows[(rows["metric"] == "corruption_score") & rows["params"].map(lambda p: _variant(p) == (metric, variant))]
    if part.empty:
        return None
    cells = pd.DataFrame({"model": part["model"].astype(str), "corruption": [p["corruption"] for p in part["params"]],
                          "severity": [int(p["severity"]) for p in part["params"]], "value": part["value"].astype(float)})
    corruptions = list(dict.fromkeys(cells["corruption"]))
    severities = sorted(set(cells["severity"]))
    mean = cells.groupby(["model", "corruption"])["value"].mean()
    models = models_by_family(part)
    label = LABELS.get(metric, metric) + (f" ({variant})" if variant else "")
    return heatmap([[mean.get((model, c)) for c in corruptions] for model, _ in models],
                   [f"{model} ({family})" for model, family in models], [SHORT_NAMES.get(c, c) for c in corruptions],
                   title=f"{label} per corruption, " + (f"severity {severities[0]}" if len(severities) == 1 else
                                                         f"mean over severities {severities[0]}-{severities[-1]}"))


def dense_corruption_sections(task_rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The figures of every (headline metric, variant) with an mPC in ``task_rows``."""
    sections = []
    variants = dict.fromkeys(_variant(p) for p, m in zip(task_rows["params"], task_rows["metric"]) if m == "mpc")
    for metric, variant in variants:
        label = LABELS.get(metric, metric) + (f" {variant}" if variant else "")
        for title, draw in ((f"Robustness by family: mPC and rPC of {label}", mpc_by_family),
                            (f"{label} under each corruption (rows grouped by family)", corruption_heatmap)):
            figure = draw(task_rows, metric, variant)
            if figure is not None:
                sections.append((title, figure))
    return sections
