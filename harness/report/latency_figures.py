"""Report figures for the latency task: throughput vs batch size, latency vs FLOPs; points and lines coloured
by family so the two camps can be told apart. The accuracy-vs-cost Pareto plots are the suite analysis's
(harness/report/pareto.py), which joins these numbers with the accuracy of other tasks."""
from __future__ import annotations

import math

import pandas as pd

from harness.registry import REPORT_SECTIONS
from harness.report import plotting

THROUGHPUT, LATENCY, FLOPS = "throughput_img_s", "latency_ms_p50", "gflops"


def best_throughput(rows: pd.DataFrame, mode: str = "model_only") -> pd.DataFrame:
    """Per model (and dataset): the highest model-only images/s over the measured batch sizes."""
    part = rows[(rows["metric"] == THROUGHPUT) & rows["params"].map(lambda p: p.get("mode") == mode)]
    if part.empty:
        return part
    return part.loc[part.groupby(["model", "dataset"])["value"].idxmax()]


def accuracy_vs_throughput(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str, float, float]]:
    """(model, family, images/s, top-1) for models with both numbers."""
    return with_top1(best_throughput(task_rows), all_rows)


def accuracy_vs_flops(rows: pd.DataFrame) -> list[tuple[str, str, float, float]]:
    """(model, family, GFLOPs per image, top-1) for models with both numbers."""
    return with_top1(rows[rows["metric"] == FLOPS], rows)


def with_top1(cost_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str, float, float]]:
    """(model, family, cost, top-1) per cost row; top-1 from the classification task on the same dataset, else
    the model's only classification top-1."""
    top1 = all_rows[(all_rows["task_kind"] == "classification") & (all_rows["metric"] == "top1")]
    points = []
    for row in cost_rows.itertuples():
        same = top1[(top1["model"] == row.model) & (top1["dataset"] == row.dataset)]
        if same.empty:
            same = top1[top1["model"] == row.model]
            if len(same) != 1:
                continue
        points.append((row.model, row.family, float(row.value), float(same["value"].iloc[0])))
    return points


def throughput_by_batch(task_rows: pd.DataFrame, mode: str = "model_only") -> dict[str, tuple[str, list]]:
    part = task_rows[(task_rows["metric"] == THROUGHPUT) & task_rows["params"].map(lambda p: p.get("mode") == mode)]
    series: dict[str, tuple[str, list]] = {}
    for row in part.itertuples():
        family, points = series.setdefault(row.model, (row.family, []))
        points.append((math.log2(row.params["batch_size"]), float(row.value)))
    return series


def latency_vs_flops(task_rows: pd.DataFrame) -> list[tuple[str, str, float, float]]:
    """(model, family, GFLOPs, p50 ms) for the model-only latency by the host timer."""
    flops = task_rows[task_rows["metric"] == FLOPS].set_index("model")["value"]
    latency = task_rows[(task_rows["metric"] == LATENCY) & task_rows["params"].map(
        lambda p: p.get("mode") == "model_only" and p.get("timer") in ("perf_counter", "perf_counter_sync"))]
    return [(r.model, r.family, float(flops[r.model]), float(r.value)) for r in latency.itertuples()
            if r.model in flops.index]


@REPORT_SECTIONS.register("latency")
def latency_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    sections = []
    series = throughput_by_batch(task_rows)
    if series:
        sizes = sorted({x for _, pts in series.values() for x, _ in pts})
        ticks = [(x, f"{2 ** x:g}") for x in sizes]
        sections.append(("Throughput vs batch size (model only)", plotting.line_chart(
            series, "batch size", "images/s", "throughput vs batch size", x_tick_labels=ticks)))
    scatter = latency_vs_flops(task_rows)
    if scatter:
        sections.append(("Latency vs FLOPs (model only, p50)", plotting.scatter(
            scatter, "GFLOPs per image (log scale)", "p50 latency (ms)", "latency vs FLOPs", log_x=True)))
    return sections
