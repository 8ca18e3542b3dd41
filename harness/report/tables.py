"""Turning the long results frame (one row per job x metric) into the leaderboard's tables."""
from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pandas as pd

FAMILY_ORDER = ["cnn", "transformer", "hybrid"]


def format_param(value: Any) -> str:
    """Show pixel-space eps as k/255 where it is one, so 0.0313725 reads 8/255."""
    if isinstance(value, float):
        k = value * 255
        if value > 0 and abs(k - round(k)) < 1e-6 and round(k) < 255:
            return f"{round(k)}/255"
        return f"{value:g}"
    return str(value)


def column_label(metric: str, params: dict[str, Any]) -> str:
    if not params:
        return metric
    return metric + " " + " ".join(f"{k}={format_param(v)}" for k, v in sorted(params.items()))


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[(frame["status"] == "ok") & frame["metric"].notna()].copy()
    rows["column"] = [column_label(m, p) for m, p in zip(rows["metric"], rows["params"])]
    return rows


def leaderboard(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model x dataset, one column per metric (+params); the first metric sorts it."""
    if rows.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys(rows["column"]))
    wide = rows.pivot_table(index=["model", "family", "arch", "dataset"], columns="column", values="value",
                            aggfunc="first", sort=False)
    counts = rows.groupby(["model", "family", "arch", "dataset"], sort=False)["n"].max().rename("n")
    wide = wide.reindex(columns=[c for c in order if c in wide.columns]).join(counts).reset_index()
    return wide.sort_values(order[0], ascending=not higher_is_better(order[0]), kind="stable")


def higher_is_better(column: str) -> bool:
    lowered = column.lower()
    return not any(word in lowered for word in ("latency", "error", "mce", " ce", "_ms", "memory", "flops", "params",
                                                "skipped", "seconds"))


def family_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per task metric: mean and best value for each camp, with how many models it averages."""
    if rows.empty:
        return pd.DataFrame()
    grouped = rows.groupby(["task", "dataset", "column", "family"], sort=False)["value"]
    summary = grouped.agg(["mean", "max", "min", "count"]).reset_index()
    summary["best"] = [mx if higher_is_better(c) else mn for c, mx, mn in
                       zip(summary["column"], summary["max"], summary["min"])]
    summary["family"] = pd.Categorical(summary["family"], categories=FAMILY_ORDER + sorted(
        set(summary["family"]) - set(FAMILY_ORDER)), ordered=True)
    return summary.drop(columns=["max", "min"]).sort_values(["task", "dataset", "column", "family"], kind="stable")


def provenance_summary(frame: pd.DataFrame) -> dict[str, str]:
    """The facts shared by the whole run (or listed when they differ)."""
    facts: dict[str, str] = {}
    for column in ("suite", "suite_version", "suite_hash", "harness_version", "git_commit", "torch_version",
                   "timm_version", "device", "precision", "seed"):
        if column in frame:
            values = sorted({str(v) for v in frame[column].dropna()})
            facts[column] = ", ".join(values) if values else "-"
    if "finished_at" in frame and frame["finished_at"].notna().any():
        facts["finished"] = f"{frame['finished_at'].min()} .. {frame['finished_at'].max()}"
    envs = [json.loads(p).get("env", {}) for p in frame.get("provenance", pd.Series(dtype=str)).dropna()]
    if envs:
        facts["cpu"] = envs[0].get("cpu_model", "-")
        facts["python"] = envs[0].get("python_version", "-")
    return facts
