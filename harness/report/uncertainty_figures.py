"""Report sections "Uncertainty" of the calibration and ood evaluators (harness/evaluation/calibration.py,
harness/evaluation/ood.py), drawn from the stored rows alone.

Calibration (registered under ``ece``): a table of every calibration metric before and after temperature
scaling with T itself; per model a reliability diagram (accuracy per confidence bin as bars, the gap to the
diagonal shaded, the share of samples per bin beneath), before and after T side by side; the best and mean
ECE of CNNs and transformers.

OOD (registered under ``ood_auroc``): per detector a table of AUROC and FPR@95TPR per OOD set and the near /
far means, beside in-distribution top-1; per detector and OOD set the ROC curves, one line per model; the mean
near and far AUROC of CNNs and transformers per detector.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from markupsafe import escape

from harness.metrics import metric_info
from harness.registry import REPORT_SECTIONS
from harness.report.datatable import Cell, Column, Row, Table, mark_best, metric_cell
from harness.report.htmltable import table_html
from harness.report.plotting import FAMILY_LINESTYLES, FAMILY_MARKERS, family_colour, inline_svg, new_figure
from harness.report.tables import models_by_family

CALIBRATION_METRICS = {"ece": "ECE", "rms_ce": "RMS CE", "max_ce": "max CE", "adaptive_ece": "adaptive ECE",
                       "classwise_ece": "classwise ECE", "nll": "NLL", "brier": "Brier", "aurc": "AURC"}
OOD_METRICS = {"ood_auroc": ("AUROC", "higher"), "ood_fpr95": ("FPR@95", "lower")}
OOD_ROLES = {"ood_near": "near", "ood_far": "far"}
FPR95_CAPTION = ("FPR@95TPR: OpenOOD's convention — the fraction of in-distribution samples flagged as OOD at the "
                 "threshold that detects 95% of OOD samples")
FAMILIES = ("cnn", "transformer")


def _param(params: Any, key: str) -> Any:
    return params.get(key) if isinstance(params, dict) else None


def _params_column(rows: pd.DataFrame, key: str) -> pd.Series:
    """One param of every row, None where absent (object dtype: an int bin stays an int, a missing one None)."""
    return pd.Series([_param(p, key) for p in rows["params"]], index=rows.index, dtype=object)


def _families(rows: pd.DataFrame) -> dict[str, str]:
    if "family" not in rows:
        return {str(m): "unknown" for m in rows["model"]}
    return dict(models_by_family(rows))


def _scroll(table: Table, caption: str = "") -> str:
    note = f'<p class="footnote">{escape(caption)}</p>' if caption else ""
    return f'<div class="scroll">{table_html(table, "data sortable")}</div>{note}'


def _table_id(task_rows: pd.DataFrame, what: str) -> str:
    task = task_rows["task"].iloc[0] if "task" in task_rows else "task"
    dataset = task_rows["dataset"].iloc[0] if "dataset" in task_rows else "dataset"
    return f"{what}-{task}-{dataset}"


def _cell(row: Any) -> Cell:
    get = lambda name: getattr(row, name, None)  # noqa: E731  (hand-built frames may lack n / intervals)
    return metric_cell(row.value, get("n"), get("ci_low"), get("ci_high"))


# ---------------------------------------------------------------- calibration
AT_BOUND_MARK = "‡"


def calibration_rows(task_rows: pd.DataFrame) -> pd.DataFrame:
    """The calibration rows of one bin count (the first one stored), with ``x_scaling``, ``x_bins`` and ``x_bin`` columns."""
    wanted = set(CALIBRATION_METRICS) | {"temperature", "reliability_accuracy", "reliability_confidence"}
    rows = task_rows[task_rows["metric"].isin(wanted)]
    rows = rows.assign(x_scaling=[_param(p, "scaling") or ("temperature" if m == "temperature" else None)
                                 for m, p in zip(rows["metric"], rows["params"])],
                       x_bins=_params_column(rows, "bins"), x_bin=_params_column(rows, "bin"))
    rows = rows[rows["x_scaling"].notna()]
    bins = [b for b in rows["x_bins"] if b is not None]
    if bins:
        rows = rows[rows["x_bins"].isna() | (rows["x_bins"] == bins[0])]
    return rows


def _first(rows: pd.DataFrame) -> dict[tuple, Any]:
    found: dict[tuple, Any] = {}
    for r in rows.itertuples():
        found.setdefault((r.model, r.metric, r.x_scaling, r.x_bin), r)
    return found


def unidentified_temperature(task_rows: pd.DataFrame) -> set[str]:
    """Models whose fitted T is at the search bound (``temperature_at_bound``): T and their after-T numbers
    are marked, never shown as a plain calibration."""
    flags = task_rows[(task_rows["metric"] == "temperature_at_bound") & (task_rows["value"] > 0)]
    return set(flags["model"])


def calibration_table(rows: pd.DataFrame, table_id: str, flagged: set[str] = frozenset()) -> Table:
    families = _families(rows)
    cells = _first(rows)
    scaled = any(s == "temperature" for s in rows["x_scaling"])
    columns = [Column("model", "model", numeric=False), Column("family", "family", numeric=False)]
    for metric, label in CALIBRATION_METRICS.items():
        if not any(k[1] == metric for k in cells):
            continue
        columns.append(Column(metric, label, direction="lower", metric=True, description=f"{label}, no scaling"))
        if scaled:
            columns.append(Column(f"{metric}:T", f"{label} (T)", direction="lower", metric=True,
                                  description=f"{label} after temperature scaling"))
    if any(k[1] == "temperature" for k in cells):
        columns.append(Column("temperature", "T", metric=True, description="temperature fitted on the calibration "
                                                                             "split"))
    table_rows = []
    for model, family in families.items():
        row = Row({"model": Cell(model, model), "family": Cell(family, family)}, {"model": model, "family": family})
        for metric in CALIBRATION_METRICS:
            for scaling, key in (("none", metric), ("temperature", f"{metric}:T")):
                found = cells.get((model, metric, scaling, None))
                if found is not None:
                    row.cells[key] = _cell(found)
                    if scaling == "temperature" and model in flagged:
                        row.cells[key].marks = AT_BOUND_MARK
        found = cells.get((model, "temperature", "temperature", None))
        if found is not None:
            row.cells["temperature"] = _cell(found)
            if model in flagged:
                row.cells["temperature"].marks = AT_BOUND_MARK
        table_rows.append(row)
    table = Table(table_id, "calibration", columns, table_rows)
    mark_best(table, {})
    return table


def reliability_figure(rows: pd.DataFrame, model: str, family: str) -> str:
    """Accuracy per confidence bin as bars, the gap to the diagonal shaded, the bin's share of samples below;
    one panel per scaling present (before, after T)."""
    here = rows[(rows["model"] == model) & rows["x_bin"].notna()]
    scalings = [s for s in ("none", "temperature") if (here["x_scaling"] == s).any()]
    if not scalings:
        return ""
    bins = int(here["x_bins"].dropna().iloc[0]) if here["x_bins"].notna().any() else int(here["x_bin"].max()) + 1
    summary = _first(rows[rows["model"] == model])
    figure, axes = new_figure(width=3.7 * len(scalings), height=4.2, ncols=len(scalings))
    axes = np.atleast_1d(axes)
    hover = []
    width = 1.0 / bins
    for ax, scaling in zip(axes, scalings):
        part = here[here["x_scaling"] == scaling]
        accuracy = {int(r.x_bin): (float(r.value), r.n) for r in part[part["metric"] == "reliability_accuracy"].itertuples()}
        confidence = {int(r.x_bin): float(r.value) for r in part[part["metric"] == "reliability_confidence"].itertuples()}
        shown = sorted(accuracy)
        left = [b * width for b in shown]
        acc = [accuracy[b][0] for b in shown]
        conf = [confidence.get(b, (b + 0.5) * width) for b in shown]
        counts = [float(accuracy[b][1]) if accuracy[b][1] is not None and accuracy[b][1] == accuracy[b][1] else 0.0
                  for b in shown]
        bars = ax.bar(left, acc, width=width, align="edge", color=family_colour(family), edgecolor="white",
                      linewidth=0.5, label="accuracy")
        ax.bar(left, [c - a for a, c in zip(acc, conf)], bottom=acc, width=width, align="edge", color="none",
               edgecolor="#d62728", hatch="///", linewidth=0.5, label="gap to confidence")
        ax.plot([0, 1], [0, 1], color="#555", linestyle=":", linewidth=1, label="perfect calibration")
        for bar, b, a, c, n in zip(bars, shown, acc, conf, counts):
            hover.append((bar, f"{model}, bin {b} [{b * width:.3f}, {(b + 1) * width:.3f}): accuracy {a:.4f}, "
                               f"mean confidence {c:.4f}, n = {int(n)}"))
        total = sum(counts) or 1.0
        inset = ax.inset_axes([0.14, 0.64, 0.36, 0.22])
        inset.bar(left, [n / total for n in counts], width=width, align="edge", color="#999")
        inset.set_xlim(0, 1)
        inset.set_title("samples per bin", fontsize=7)
        inset.tick_params(labelsize=6)
        ece = summary.get((model, "ece", scaling, None))
        if scaling == "none":
            panel = "before temperature scaling"
        else:
            t = summary.get((model, "temperature", "temperature", None))
            panel = "after temperature scaling" + (f" (T = {float(t.value):.3f})" if t is not None else "")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-1 confidence", ylabel="accuracy",
               title=panel + (f"\nECE {float(ece.value):.4f}" if ece is not None else ""))
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=7,
                  frameon=False)
    figure.suptitle(f"Reliability diagram: {model} ({family}, {bins} bins)", fontsize=9)
    return inline_svg(figure, hover)


def family_ece(rows: pd.DataFrame, table_id: str) -> Table:
    """Per scaling and family: the best (lowest) ECE and its model, and the mean ECE."""
    families = _families(rows)
    ece = rows[(rows["metric"] == "ece") & rows["x_bin"].isna()]
    columns = [Column("scaling", "scaling", numeric=False), Column("family", "family", numeric=False),
               Column("models", "models"), Column("best", "best ECE", direction="lower", metric=True),
               Column("best_model", "best model", numeric=False), Column("mean", "mean ECE", direction="lower",
                                                                         metric=True)]
    table_rows = []
    for scaling, label in (("none", "none"), ("temperature", "temperature")):
        part = ece[ece["x_scaling"] == scaling]
        for family in FAMILIES:
            values = {m: float(v) for m, v in zip(part["model"], part["value"]) if families.get(m) == family}
            if not values:
                continue
            best = min(values, key=values.get)
            table_rows.append(Row({"scaling": Cell(label, label), "family": Cell(family, family),
                                   "models": Cell(float(len(values)), str(len(values))),
                                   "best": metric_cell(values[best]), "best_model": Cell(best, best),
                                   "mean": metric_cell(float(np.mean(list(values.values()))))},
                                  {"family": family, "scaling": label}))
    return Table(table_id, "CNN vs transformer calibration", columns, table_rows)


@REPORT_SECTIONS.register("ece")
def calibration_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    rows = calibration_rows(task_rows)
    if rows.empty:
        return []
    flagged = unidentified_temperature(task_rows)
    note = f" {AT_BOUND_MARK} {metric_info('temperature').caveat[1]}." if flagged else ""
    sections = [("Uncertainty: calibration before and after temperature scaling",
                 _scroll(calibration_table(rows, _table_id(task_rows, "calibration"), flagged),
                         "Lower is better for every error; (T): after temperature scaling with T fitted on the "
                         "calibration split." + note))]
    comparison = family_ece(rows, _table_id(task_rows, "calibration-family"))
    if comparison.rows:
        sections.append(("Uncertainty: CNN vs transformer ECE", _scroll(comparison)))
    for model, family in _families(rows).items():
        svg = reliability_figure(rows, model, family)
        if svg:
            sections.append((f"Uncertainty: reliability diagram of {model}", svg))
    return sections


# ---------------------------------------------------------------- OOD


def ood_rows(task_rows: pd.DataFrame) -> pd.DataFrame:
    rows = task_rows[task_rows["metric"].isin([*OOD_METRICS, "ood_aupr_in", "ood_aupr_out", "ood_roc_tpr"])]
    return rows.assign(**{f"x_{key}": _params_column(rows, key) for key in ("detector", "role", "dataset", "fpr")})


def ood_sets(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(role, dataset) of every OOD set, near first, each role's mean after its sets."""
    out = []
    for role in OOD_ROLES:
        names = [d for d in dict.fromkeys(rows.loc[rows["x_role"] == role, "x_dataset"]) if d is not None]
        out += [(role, d) for d in names if d != "mean"] + [(role, "mean") for d in names if d == "mean"]
    return out


def in_distribution_top1(model: str, task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> Any:
    for frame in (task_rows, all_rows):
        found = frame[(frame["metric"] == "top1") & (frame["model"] == model)]
        for row in found.itertuples():
            if _param(row.params, "role") is None:
                return row
    return None


def ood_table(rows: pd.DataFrame, detector: str, task_rows: pd.DataFrame, all_rows: pd.DataFrame,
              table_id: str) -> Table:
    here = rows[(rows["x_detector"] == detector) & rows["x_fpr"].isna()]
    sets = ood_sets(here)
    columns = [Column("model", "model", numeric=False), Column("family", "family", numeric=False),
               Column("top1", "ID top-1", direction="higher", metric=True, description="in-distribution top-1")]
    for role, dataset in sets:
        name = f"{OOD_ROLES[role]} mean" if dataset == "mean" else f"{dataset} ({OOD_ROLES[role]})"
        for metric, (label, direction) in OOD_METRICS.items():
            columns.append(Column(f"{role}:{dataset}:{metric}", f"{name} {label}", direction=direction, metric=True))
    cells: dict[tuple, Any] = {}
    for r in here.itertuples():
        cells.setdefault((r.model, r.x_role, r.x_dataset, r.metric), r)
    table_rows = []
    for model, family in _families(here).items():
        row = Row({"model": Cell(model, model), "family": Cell(family, family)}, {"model": model, "family": family})
        top1 = in_distribution_top1(model, task_rows, all_rows)
        if top1 is not None:
            row.cells["top1"] = _cell(top1)
        for role, dataset in sets:
            for metric in OOD_METRICS:
                found = cells.get((model, role, dataset, metric))
                if found is not None:
                    row.cells[f"{role}:{dataset}:{metric}"] = _cell(found)
        table_rows.append(row)
    table = Table(table_id, f"OOD detection ({detector})", columns, table_rows)
    mark_best(table, {})
    return table


def roc_figure(rows: pd.DataFrame, detector: str, role: str, dataset: str) -> str:
    """One line per model: TPR (OOD detected) against FPR on the stored grid, the chance diagonal dotted."""
    here = rows[(rows["metric"] == "ood_roc_tpr") & (rows["x_detector"] == detector) & (rows["x_role"] == role)
                & (rows["x_dataset"] == dataset) & rows["x_fpr"].notna()]
    if here.empty:
        return ""
    auroc = {r.model: float(r.value) for r in rows[(rows["metric"] == "ood_auroc") & (rows["x_detector"] == detector)
                                                  & (rows["x_role"] == role) & (rows["x_dataset"] == dataset)].itertuples()}
    families = _families(here)
    figure, axes = new_figure(width=6.4, height=4.2)
    axes.plot([0, 1], [0, 1], color="#bbb", linestyle=":", linewidth=1, label="chance")
    hover = []
    for model, family in families.items():
        points = sorted({float(f): float(v) for f, v in zip(here.loc[here["model"] == model, "x_fpr"],
                                                           here.loc[here["model"] == model, "value"])}.items())
        label = f"{model} ({family})" + (f", AUROC {auroc[model]:.4f}" if model in auroc else "")
        line, = axes.plot([x for x, _ in points], [y for _, y in points], color=family_colour(family),
                          linestyle=FAMILY_LINESTYLES.get(family, "-"), marker=FAMILY_MARKERS.get(family, "o"),
                          markersize=3, linewidth=1.6, label=label)
        hover.append((line, f"{label} — " + ", ".join(f"FPR {x:.2f}: TPR {y:.4f}" for x, y in points)))
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false-positive rate (in-distribution flagged as OOD)",
             ylabel="true-positive rate (OOD detected)",
             title=f"ROC: {detector} on {dataset} ({OOD_ROLES.get(role, role)} OOD)")
    axes.grid(color="#eee")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
    return inline_svg(figure, hover)


def family_ood(rows: pd.DataFrame, table_id: str) -> Table:
    """Per detector and family: the mean over models of the near and far mean AUROC."""
    means = rows[(rows["metric"] == "ood_auroc") & (rows["x_dataset"] == "mean")]
    families = _families(means)
    columns = [Column("detector", "detector", numeric=False), Column("family", "family", numeric=False),
               Column("models", "models")]
    roles = [r for r in OOD_ROLES if (means["x_role"] == r).any()]
    columns += [Column(role, f"mean {OOD_ROLES[role]} AUROC", direction="higher", metric=True) for role in roles]
    table_rows = []
    for detector in dict.fromkeys(means["x_detector"]):
        for family in FAMILIES:
            part = means[(means["x_detector"] == detector) & means["model"].map(lambda m: families.get(m) == family)]
            if part.empty:
                continue
            row = Row({"detector": Cell(detector, str(detector)), "family": Cell(family, family),
                       "models": Cell(float(part["model"].nunique()), str(part["model"].nunique()))},
                      {"detector": str(detector), "family": family})
            for role in roles:
                values = part.loc[part["x_role"] == role].drop_duplicates("model")["value"]
                if len(values):
                    row.cells[role] = metric_cell(float(values.mean()))
            table_rows.append(row)
    return Table(table_id, "CNN vs transformer OOD detection", columns, table_rows)


@REPORT_SECTIONS.register("ood_auroc")
def ood_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    rows = ood_rows(task_rows)
    detectors = [d for d in dict.fromkeys(rows.loc[rows["metric"] == "ood_auroc", "x_detector"]) if d is not None]
    if not detectors:
        return []
    sections = []
    for detector in detectors:
        table = ood_table(rows, detector, task_rows, all_rows, _table_id(task_rows, f"ood-{detector}"))
        sections.append((f"Uncertainty: OOD detection with {detector} (AUROC, FPR@95TPR)", _scroll(table, FPR95_CAPTION)))
    comparison = family_ood(rows, _table_id(task_rows, "ood-family"))
    if comparison.rows:
        sections.append(("Uncertainty: CNN vs transformer OOD detection (mean AUROC near and far)",
                         _scroll(comparison)))
    for detector in detectors:
        for role, dataset in ood_sets(rows[rows["x_detector"] == detector]):
            if dataset == "mean":
                continue
            svg = roc_figure(rows, detector, role, dataset)
            if svg:
                sections.append((f"Uncertainty: ROC curves of {detector} on {dataset} ({OOD_ROLES[role]} OOD)", svg))
    return sections
