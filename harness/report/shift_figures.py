"""Report section of the effective_robustness evaluator: the classic plot (shifted vs in-distribution top-1 on
the trend's logit or probit axes: the testbed's models grey, its fit line, y = x, the suite's models coloured
by family and labelled; one panel per shift) and a table of top-1, relative and effective robustness with
their intervals, extrapolated placements marked beside the number.

The line drawn is the one the numbers were computed on (the stored trend rows), not a refit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from markupsafe import escape

from harness.gate.stats import sign_flip_p
from harness.registry import REPORT_SECTIONS
from harness.report.datatable import Cell, Column, Row, Table, metric_cell
from harness.report.htmltable import table_html
from harness.report.pairs import format_cost, matched_pairs, model_costs
from harness.report.plotting import FAMILY_MARKERS, OTHER_COLOUR, family_colour, inline_svg, new_figure
from harness.report.tables import models_by_family
from harness.robustness.effective import transform
from harness.robustness.testbeds import BadTestbedError, load_testbed

ACCURACY_TICKS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Placed:
    model: str
    family: str
    id_top1: float
    shifted_top1: float
    relative: Any  # the stored rows (value, n, ci_low, ci_high)
    effective: Any
    extrapolated: bool


@dataclass(frozen=True)
class ShiftPanel:
    dataset: str
    testbed: str
    shift: str
    scale: str
    subset: str
    slope: float
    intercept: float
    r2: float
    n_models: int
    models: list[Placed]


def _dataset_of(params: Any) -> str | None:
    return params.get("dataset") if isinstance(params, dict) else None


def panels(task_rows: pd.DataFrame) -> list[ShiftPanel]:
    """One panel per shifted dataset with effective robustness rows, from the stored rows alone."""
    rows = task_rows.assign(_dataset=[_dataset_of(p) for p in task_rows["params"]])
    top1 = rows[rows["metric"] == "top1"]
    id_top1 = {m: float(v) for m, v, d in zip(top1["model"], top1["value"], top1["_dataset"]) if pd.isna(d)}
    out = []
    for dataset in dict.fromkeys(rows.loc[rows["metric"] == "effective_robustness", "_dataset"]):
        here = rows[rows["_dataset"] == dataset]
        detail = {(r.model, r.metric): r for r in here.itertuples()}
        placed = []
        for model, family in models_by_family(here[here["metric"] == "effective_robustness"]):
            if model not in id_top1:
                continue
            relative = detail[(model, "relative_robustness")]
            shifted = detail.get((model, "top1"))  # none for ReaL: no pass of its own, shifted = ID + relative
            shifted_top1 = float(shifted.value) if shifted is not None else id_top1[model] + float(relative.value)
            extrapolated = detail.get((model, "trend_extrapolated"))
            placed.append(Placed(model, family, id_top1[model], shifted_top1, relative,
                                 detail[(model, "effective_robustness")], bool(extrapolated and extrapolated.value > 0)))
        if not placed:
            continue
        first = detail[(placed[0].model, "effective_robustness")].params
        trend = {m: float(detail[(placed[0].model, f"trend_{m}")].value) for m in ("slope", "intercept", "r2", "models")}
        out.append(ShiftPanel(dataset, first["testbed"], first["shift"], first["scale"], first.get("subset", "all"),
                              trend["slope"], trend["intercept"], trend["r2"], int(trend["models"]), placed))
    return out


def _testbed_points(panel: ShiftPanel) -> pd.DataFrame | None:
    try:
        rows = load_testbed(panel.testbed, panel.shift)
    except (BadTestbedError, OSError):
        return None  # a user's CSV testbed on another machine: the line is still drawn from the stored trend
    return rows if panel.subset == "all" else rows[rows["family"] == panel.subset]


def shift_figure(panel: ShiftPanel) -> str:
    figure, axes = new_figure(width=6.4, height=6.4)
    t = lambda p: transform(np.asarray(p, dtype=float), panel.scale)  # noqa: E731
    testbed = _testbed_points(panel)
    hover = []
    xs = [m.id_top1 for m in panel.models]
    ys = [m.shifted_top1 for m in panel.models]
    if testbed is not None and len(testbed):
        grey = axes.scatter(t(testbed["id_accuracy"]), t(testbed["shifted_accuracy"]), s=9, color="#bbb",
                            linewidths=0, zorder=1, label=f"testbed {panel.testbed} ({len(testbed)} models)")
        grey.set_gid("testbed")
        xs += list(testbed["id_accuracy"])
        ys += list(testbed["shifted_accuracy"])
    low, high = max(min(xs + ys) * 0.8, 1e-3), 1 - (1 - max(xs + ys)) * 0.5
    grid = np.linspace(t(low), t(min(high, 1 - 1e-4)), 50)
    fit, = axes.plot(grid, panel.slope * grid + panel.intercept, color="#555", linewidth=1.4, zorder=2,
                     label=f"trend: slope {panel.slope:.3f}, intercept {panel.intercept:.3f}, R² {panel.r2:.3f}")
    fit.set_gid("trend")
    axes.plot(grid, grid, color="#999", linestyle=":", linewidth=1, zorder=2, label="y = x")
    for m in panel.models:
        marker = FAMILY_MARKERS.get(m.family, "o")
        colour = family_colour(m.family)
        dot, = axes.plot([t(m.id_top1)], [t(m.shifted_top1)], linestyle="", marker=marker, markersize=8,
                         color=colour, markerfacecolor="white" if m.extrapolated else colour, zorder=3)
        axes.annotate(m.model, (t(m.id_top1), t(m.shifted_top1)), xytext=(5, 4), textcoords="offset points",
                      fontsize=8)
        hover.append((dot, f"{m.model} ({m.family}): in-distribution {m.id_top1:.4f}, {panel.dataset} "
                           f"{m.shifted_top1:.4f}, effective robustness {m.effective.value:+.4f}"
                           + (" (extrapolated trend)" if m.extrapolated else "")))
    ticks: list[float] = []
    for p in (p for p in ACCURACY_TICKS if low <= p <= high):  # no two labels closer than 7% of the axis
        if not ticks or t(p) - t(ticks[-1]) >= 0.07 * (t(high) - t(low)):
            ticks.append(p)
    axes.set_xticks(t(ticks), [f"{p:g}" for p in ticks])
    axes.set_yticks(t(ticks), [f"{p:g}" for p in ticks])
    axes.set_xlim(t(low), t(high))
    axes.set_ylim(t(low), t(high))
    axes.set(xlabel=f"in-distribution top-1 ({panel.scale} axis)", ylabel=f"{panel.dataset} top-1 ({panel.scale} axis)",
             title=f"{panel.dataset}: placed on the {panel.testbed} testbed's {panel.shift} trend")
    axes.grid(color="#eee")
    families = list(dict.fromkeys(m.family for m in panel.models))
    from matplotlib.lines import Line2D

    handles = axes.get_legend_handles_labels()[0] + [
        Line2D([], [], color=family_colour(f), marker=FAMILY_MARKERS.get(f, "o"), linestyle="", label=f)
        for f in families]
    if any(m.extrapolated for m in panel.models):
        handles.append(Line2D([], [], color=OTHER_COLOUR, marker="o", markerfacecolor="white", linestyle="",
                              label="hollow: extrapolated trend"))
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False, fontsize=8)
    return inline_svg(figure, hover)


def shift_table(panels_: list[ShiftPanel], table_id: str) -> Table:
    columns = [Column("model", "model", numeric=False), Column("family", "family", numeric=False),
               Column("id", "in-distribution top-1", direction="higher", metric=True)]
    for p in panels_:
        columns += [Column(f"{p.dataset}:top1", f"{p.dataset} top-1", direction="higher", metric=True),
                    Column(f"{p.dataset}:relative", f"{p.dataset} relative", direction="higher", metric=True,
                           description="shifted minus in-distribution top-1"),
                    Column(f"{p.dataset}:effective", f"{p.dataset} effective", direction="higher", metric=True,
                           description=f"above the {p.testbed} testbed's {p.shift} trend ({p.scale})")]
    rows: dict[str, Row] = {}
    for p in panels_:
        for m in p.models:
            row = rows.setdefault(m.model, Row({"model": Cell(m.model, m.model), "family": Cell(m.family, m.family),
                                                "id": metric_cell(m.id_top1)}, {"model": m.model, "family": m.family}))
            row.cells[f"{p.dataset}:top1"] = metric_cell(m.shifted_top1, m.effective.n)
            row.cells[f"{p.dataset}:relative"] = metric_cell(m.relative.value, m.relative.n, m.relative.ci_low,
                                                             m.relative.ci_high)
            effective = metric_cell(m.effective.value, m.effective.n, m.effective.ci_low, m.effective.ci_high)
            if m.extrapolated:
                effective.marks = "◊"
            row.cells[f"{p.dataset}:effective"] = effective
    return Table(table_id, "natural distribution shift", columns, list(rows.values()))


def family_comparison(panels_: list[ShiftPanel], all_rows: pd.DataFrame) -> str:
    """Do transformers sit above the trend more than CNNs? Per shift the best of each family; then, over the
    cost-matched CNN-transformer pairs and every shift, the transformer's minus the CNN's effective robustness
    with an exact sign-flip test of its mean (each (pair, shift) one paired difference)."""
    lines = []
    for p in panels_:
        best = {}
        for m in p.models:
            if m.family in ("cnn", "transformer") and (m.family not in best or m.effective.value > best[m.family].effective.value):
                best[m.family] = m
        if len(best) == 2:
            lines.append(f"{escape(p.dataset)}: best CNN {escape(best['cnn'].model)} {best['cnn'].effective.value:+.4f}, "
                         f"best transformer {escape(best['transformer'].model)} {best['transformer'].effective.value:+.4f}")
    families = {m.model: m.family for p in panels_ for m in p.models if m.family in ("cnn", "transformer")}
    cost_name, costs = model_costs(all_rows[all_rows["model"].isin(list(families))])
    pairs = matched_pairs(families, cost_name, costs)
    effective = {(p.dataset, m.model): m.effective.value for p in panels_ for m in p.models}
    differences, used = [], []
    for pair in pairs:
        cnn, transformer = (pair.first, pair.second) if families[pair.first] == "cnn" else (pair.second, pair.first)
        used.append(f"{escape(transformer)} ({format_cost(cost_name, costs[transformer])}) − {escape(cnn)} "
                    f"({format_cost(cost_name, costs[cnn])})")
        differences += [effective[(p.dataset, transformer)] - effective[(p.dataset, cnn)] for p in panels_
                        if (p.dataset, transformer) in effective and (p.dataset, cnn) in effective]
    if not differences:
        verdict = ("No CNN-transformer pair of comparable cost: no paired test (the best of each family is "
                   "above; a comparison of unmatched models says little).")
    else:
        n, mean, p_value = len(differences), float(np.mean(differences)), sign_flip_p(differences)
        if p_value < 0.05:
            verdict = ("transformers sit above the trend more than CNNs" if mean > 0 else
                       "CNNs sit above the trend more than transformers")
        else:
            verdict = f"no significant difference at n = {n}"
        floor = 2 / 2 ** n if n <= 16 else 0.0
        verdict = (f"<strong>{verdict}</strong>: mean transformer − CNN effective robustness {mean:+.4f} over "
                   f"{n} (pair, shift) difference(s), exact sign-flip p = {p_value:.3g}"
                   + (f" (the smallest p possible at this n is {floor:.3g})" if floor >= 0.05 else "")
                   + f". Pairs: {'; '.join(used)}." + (" A single pair: an observation about two models, not about "
                                                       "the families." if len(pairs) == 1 else ""))
    best_text = "<br>".join(lines)
    return f'<p class="sub">{best_text}</p><p>{verdict}</p>' if best_text else f"<p>{verdict}</p>"


@REPORT_SECTIONS.register("effective_robustness")
def shift_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    found = panels(task_rows)
    if not found:
        return []
    task, dataset = task_rows["task"].iloc[0], task_rows["dataset"].iloc[0]
    table = shift_table(found, f"shift-{task}-{dataset}")
    marked = any(m.extrapolated for p in found for m in p.models)
    note = ("<p class=\"footnote\">Intervals: 95% bootstrap over each model's samples, the trend held fixed. "
            + ("◊ in-distribution top-1 outside the testbed's range: the trend is extrapolated there, so the "
               "effective robustness rests on the fit's shape beyond its data.</p>" if marked else "</p>"))
    sections = [("Natural distribution shift: top-1, relative and effective robustness",
                 f'<div class="scroll">{table_html(table, "data sortable")}</div>{note}')]
    sections.append(("CNN vs transformer: above or below the trend", family_comparison(found, all_rows)))
    for panel in found:
        sections.append((f"Shifted vs in-distribution top-1: {panel.dataset} ({panel.testbed} testbed, "
                         f"{panel.n_models} models, {panel.scale} axes)", shift_figure(panel)))
    return sections
