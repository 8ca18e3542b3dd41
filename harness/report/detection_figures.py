"""Report section of the detection task: AP by object size, per-class AP heat map, precision-recall curves.

The table and the heat map come from the stored metrics (harness/evaluation/detection.py: the 12 COCO stats
and the per-class AP ``ap_class``, each with its ``iou_type``). The PR curves at IoU 0.5 and 0.75 (COCOeval's
precision averaged over categories, all areas, 100 detections) are computed here from the job's per-sample
records, with the evaluator's own ``coco_evaluate``: 2 x 101 points per IoU type as stored metric rows would
each carry the job's provenance (which holds the ground truth) into the frame and results.json, which they
multiplied 25-fold on a 40-image run; a figure does not need them in the store. Detection under corruption
(mPC / rPC) is drawn by the corruption task's section (harness/report/dense_corruption_figures.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.evaluation.detection import PR_IOUS, coco_evaluate, coco_results
from harness.registry import REPORT_SECTIONS
from harness.report.model_table import model_table
from harness.report.plotting import family_colour, heatmap, inline_svg, new_figure
from harness.report.samples import job_records
from harness.report.tables import models_by_family

AP_COLUMNS = [("map", "AP"), ("map_50", "AP50"), ("map_75", "AP75"), ("map_small", "AP_S"),
              ("map_medium", "AP_M"), ("map_large", "AP_L"), ("mar_100", "AR100")]
LINESTYLES = ["-", "--", ":", "-."]


def metric_values(rows: pd.DataFrame, metric: str, **params: Any) -> dict[str, float]:
    """model -> value of ``metric`` on the rows whose params include ``params``."""
    part = rows[(rows["metric"] == metric) & rows["params"].map(lambda p: all(p.get(k) == v for k, v in params.items()))]
    return dict(zip(part["model"].astype(str), part["value"].astype(float)))


def iou_types(rows: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(p["iou_type"] for p, m in zip(rows["params"], rows["metric"]) if m == "map"))


def ap_table(rows: pd.DataFrame, iou_type: str) -> str:
    """One row per model: AP, AP50, AP75, AP by object size, AR@100."""
    models = models_by_family(rows)
    values = {(model, key): value for key, _ in AP_COLUMNS
              for model, value in metric_values(rows, key, iou_type=iou_type).items()}
    ranked = sorted(models, key=lambda mf: -values.get((mf[0], "map"), -1.0))
    return model_table(ranked, AP_COLUMNS, values, caption=f"COCO {iou_type} AP (IoU 0.50:0.95 unless named; "
                                                           f"S/M/L: area < 32², 32²-96², > 96²)")


def class_ap_heatmap(rows: pd.DataFrame, iou_type: str) -> str | None:
    """Models (grouped by family) x categories, AP @ IoU 0.50:0.95 of each category."""
    part = rows[(rows["metric"] == "ap_class") & rows["params"].map(lambda p: p.get("iou_type") == iou_type)]
    if part.empty:
        return None
    categories = list(dict.fromkeys(p["category"] for p in part["params"]))
    cell = {(str(m), p["category"]): float(v) for m, p, v in zip(part["model"], part["params"], part["value"])}
    models = models_by_family(part)
    return heatmap([[cell.get((model, c)) for c in categories] for model, _ in models],
                   [f"{model} ({family})" for model, family in models], categories,
                   title=f"per-class {iou_type} AP @ IoU 0.50:0.95")


def job_pr_curves(job_key: str, iou_type: str) -> tuple[np.ndarray, dict[float, np.ndarray]] | None:
    """(recall thresholds, IoU -> precision at each) of one detection job, from its records; None without them."""
    loaded = job_records(job_key)
    if loaded is None:
        return None
    state, meta = loaded
    records = [record for _, record in state.pass_records("main")]
    if not records or "ground_truth" not in meta:
        return None
    summary = coco_evaluate(meta["ground_truth"], coco_results(records, iou_type), [r["image_id"] for r in records],
                            iou_type, copy_results=False)
    return summary.recall, summary.pr_curves


def pr_curves(rows: pd.DataFrame, iou_type: str) -> str:
    """Side by side at IoU 0.5 and 0.75: precision vs recall of every model (colour = family)."""
    jobs = rows[["model", "family", "job_key"]].drop_duplicates("job_key").astype(str)
    curves = {model: job_pr_curves(key, iou_type) for model, _, key in jobs.itertuples(index=False, name=None)}
    missing = sorted(model for model, curve in curves.items() if curve is None)
    if len(missing) == len(curves):
        return ('<p class="figure-error">no precision-recall curves: this report\'s folder holds no per-sample '
                "records of these jobs (run with --log-samples, the default)</p>")
    figure, axes = new_figure(7.2, 3.4, ncols=len(PR_IOUS))
    hover = []
    seen: dict[str, int] = {}
    for model, family in models_by_family(jobs):
        if curves.get(model) is None:
            continue
        recall, by_iou = curves[model]
        style = LINESTYLES[seen.get(family, 0) % len(LINESTYLES)]
        seen[family] = seen.get(family, 0) + 1
        for ax, iou in zip(axes, PR_IOUS):
            ap = metric_values(rows, "map_50" if iou == 0.5 else "map_75", iou_type=iou_type).get(model, float("nan"))
            (line,) = ax.plot(recall, by_iou[iou], style, color=family_colour(family), label=f"{model} (AP {ap:.3f})",
                              linewidth=1.6)
            hover.append((line, f"{model} ({family}), IoU {iou:g}: AP {ap:.4f}"))
    for ax, iou in zip(axes, PR_IOUS):
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", title=f"IoU {iou:g}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[0].set_ylabel("precision (mean over classes)")
    note = f'<p class="sub">no records for {", ".join(missing)}</p>' if missing else ""
    return inline_svg(figure, hover) + note


@REPORT_SECTIONS.register("detection")
def detection_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    sections = []
    for iou_type in iou_types(task_rows):
        sections.append((f"AP by object size ({iou_type})", ap_table(task_rows, iou_type)))
        for title, draw in ((f"Per-class AP ({iou_type}; rows grouped by family)", class_ap_heatmap),
                            (f"Precision-recall at IoU 0.5 and 0.75 ({iou_type}; COCO's interpolated precision, "
                             f"mean over classes, 100 detections per image)", pr_curves)):
            figure = draw(task_rows, iou_type)
            if figure:
                sections.append((title, figure))
    return sections
