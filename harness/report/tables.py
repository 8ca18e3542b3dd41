"""Turning the long results frame (one row per job x metric) into the leaderboard's tables."""
from __future__ import annotations

import json
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
    """Finished metric rows, each with a leaderboard ``column`` label naming only the params that vary
    within its task (settings shared by every row of a task are shown once, as ``shared_params``)."""
    rows = frame[(frame["status"] == "ok") & frame["metric"].notna()].copy()
    rows["column"] = ""
    for _, part in rows.groupby(["task", "dataset"], sort=False):
        shared = shared_params(part["params"])
        rows.loc[part.index, "column"] = [column_label(m, {k: v for k, v in p.items() if k not in shared})
                                          for m, p in zip(part["metric"], part["params"])]
    return rows


def shared_params(params: pd.Series) -> dict[str, Any]:
    """Params with one and the same value wherever they appear (they distinguish no column)."""
    values: dict[str, set[str]] = {}
    first: dict[str, Any] = {}
    for p in params:
        for key, value in p.items():
            values.setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
            first.setdefault(key, value)
    return {key: first[key] for key, seen in values.items() if len(seen) == 1}


def headline(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that belong in tables: everything but the detail metrics tasks leave to their figures."""
    from harness.registry import DETAIL_METRICS

    return rows[~rows["metric"].isin(DETAIL_METRICS)]


def leaderboard(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model x dataset, one column per metric (+params); the first metric sorts it."""
    rows = headline(rows)
    if rows.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys(rows["column"]))
    keys = ["model", "family", "arch", "dataset"]
    # groupby + unstack rather than pivot_table, which drops a metric whose values are all missing (a job that
    # stored NaN, e.g. n = 0) and with it the column the table is sorted by
    wide = rows.groupby([*keys, "column"], sort=False, dropna=False)["value"].first().unstack("column")
    counts = rows.groupby(keys, sort=False, dropna=False)["n"].max().rename("n")
    wide = wide.reindex(columns=order).join(counts).reset_index()
    return wide.sort_values(order[0], ascending=not higher_is_better(order[0]), kind="stable", na_position="last")


def higher_is_better(column: str) -> bool:
    lowered = column.lower()
    return not any(word in lowered for word in ("latency", "error", "mce", " ce", "_ms", "memory", "flops", "macs",
                                                "params", "skipped", "seconds", "flag_"))


SUMMARY_EXCLUDED_PREFIXES = ("flag_", "masked_gradient", "robust_reliable", "skipped_")


def family_summary(rows: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per task metric with each camp's mean and best value side by side.

    Returns (families present, rows); each row has task, dataset, column, higher and, per family f,
    ``f`` -> {"mean", "best", "count"}. Sanity flags stay in the task tables, not here.
    """
    rows = headline(rows)
    rows = rows[~rows["metric"].str.startswith(SUMMARY_EXCLUDED_PREFIXES)]
    if rows.empty:
        return [], []
    present = set(rows["family"])
    families = [f for f in FAMILY_ORDER if f in present] + sorted(present - set(FAMILY_ORDER))
    out = []
    for (task, dataset, column), part in rows.groupby(["task", "dataset", "column"], sort=False):
        higher = higher_is_better(column)
        entry: dict[str, Any] = {"task": task, "dataset": dataset, "column": column, "higher": higher}
        for family, values in part.groupby("family")["value"]:
            entry[family] = {"mean": values.mean(), "best": values.max() if higher else values.min(),
                             "count": int(values.count())}
        out.append(entry)
    return families, out


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
