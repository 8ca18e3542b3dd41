"""Turning the long results frame (one row per job x metric) into the leaderboard's tables."""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from harness.formatting import format_param

FAMILY_ORDER = ["cnn", "transformer", "hybrid"]


def format_number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int,)) or (isinstance(value, float) and value.is_integer() and abs(value) >= 100):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def models_by_family(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, family) of ``rows`` grouped by family (CNNs, then transformers, ...), then by name."""
    pairs = rows[["model", "family"]].astype(str).drop_duplicates()
    rank = {family: i for i, family in enumerate(FAMILY_ORDER)}
    return sorted(pairs.itertuples(index=False, name=None), key=lambda mf: (rank.get(mf[1], len(rank)), mf[1], mf[0]))


def column_label(metric: str, params: dict[str, Any]) -> str:
    if not params:
        return metric
    return metric + " " + " ".join(f"{k}={format_param(v)}" for k, v in sorted(params.items()))


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Finished metric rows, each with a leaderboard ``column`` label naming only the params that vary
    within its task (settings shared by every row of a task are shown once, as ``shared_params``)."""
    rows = with_metric_info(frame[(frame["status"] == "ok") & frame["metric"].notna()].copy())
    rows["column"] = ""
    for _, part in rows.groupby(["task", "dataset"], sort=False):
        # label each distinct (metric, params) once: a history holds the same few thousand times (equal params
        # give equal keys)
        keys = [(m, repr(p)) for m, p in zip(part["metric"].tolist(), part["params"].tolist())]
        distinct = dict(zip(keys, part["params"]))
        shared = shared_params(pd.Series(list(distinct.values()), dtype=object))
        labels = {key: column_label(key[0], {k: v for k, v in p.items() if k not in shared})
                  for key, p in distinct.items()}
        rows.loc[part.index, "column"] = [labels[key] for key in keys]
    return rows


def with_metric_info(rows: pd.DataFrame) -> pd.DataFrame:
    """Fill direction / headline / metric_kind from the metric declarations where a frame lacks them
    (frames built by hand or read from older exports)."""
    import harness.plugins  # noqa: F401  (every task's metrics are declared)
    from harness.metrics import METRIC_INFO

    metrics = rows["metric"].tolist()
    for column, attribute, fallback in (("direction", "direction", "none"), ("headline", "headline", True),
                                        ("metric_kind", "kind", "value")):
        declared = {m: getattr(METRIC_INFO[m], attribute) for m in set(metrics) if m in METRIC_INFO}
        known = [declared.get(m, fallback) for m in metrics]
        if column not in rows:
            rows[column] = known
        else:
            rows[column] = [k if v is None or v != v else v for v, k in zip(rows[column].tolist(), known)]
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
    """Rows that belong in tables: headline metrics (detail metrics go to figures and exports)."""
    keep = [v is not False and v == v for v in rows["headline"]]
    return rows[pd.Series(keep, index=rows.index, dtype=bool)]


def column_directions(rows: pd.DataFrame) -> dict[str, str]:
    """Leaderboard column -> its metric's declared direction (higher | lower | none)."""
    return dict(zip(rows["column"], rows["direction"].fillna("none")))


def unreliable_jobs(rows: pd.DataFrame) -> dict[tuple[str, str, str], list[str]]:
    """(model, dataset, task) -> the sanity flags raised, for jobs whose robust accuracy is unreliable."""
    out: dict[tuple[str, str, str], list[str]] = {}
    flagged = rows[(rows["metric"] == "robust_reliable") & (rows["value"] == 0)]
    for row in flagged.itertuples():
        job = rows[(rows["job_key"] == row.job_key) & rows["metric"].str.startswith("flag_") & (rows["value"] > 0)]
        out[(row.model, row.dataset, row.task)] = [m.removeprefix("flag_").replace("_", " ") for m in job["metric"]]
    return out


def caveated_cells(rows: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, leaderboard column) -> why its value is marked: metrics declared with a ``caveat`` whose job
    stored the flag metric > 0 with the same params (``rows`` from ``ok_rows``, one task on one dataset)."""
    from harness.metrics import METRIC_INFO

    caveats = {name: info.caveat for name, info in METRIC_INFO.items() if info.caveat}
    flagging = rows[rows["metric"].isin({flag for flag, _ in caveats.values()})]
    flags = {(key, metric, repr(params)) for key, metric, params, value
             in zip(flagging["job_key"], flagging["metric"], flagging["params"], flagging["value"])
             if value == value and value > 0}
    if not flags:  # the usual case: no job raised a flag, so no row of the table is looked at
        return {}
    marked = rows[rows["metric"].isin(caveats)]
    return {(model, column): caveats[metric][1]
            for key, metric, params, model, column
            in zip(marked["job_key"], marked["metric"], marked["params"], marked["model"], marked["column"])
            if (key, caveats[metric][0], repr(params)) in flags}


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
    return wide.sort_values(order[0], ascending=column_directions(rows).get(order[0]) == "lower", kind="stable",
                            na_position="last")


def family_summary(rows: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per task metric with each camp's mean (and its interval over models) and best value side by side.

    Returns (families present, rows); each row has task, dataset, column, direction and, per family f,
    ``f`` -> {"mean", "ci", "best", "count", "excluded"}. Metrics without a direction are not summarised; robust
    accuracy flagged unreliable is left out of "best" (and counted in ``excluded``).
    """
    unreliable = unreliable_jobs(rows)
    rows = headline(rows)
    rows = rows[rows["direction"].isin(["higher", "lower"])]
    if rows.empty:
        return [], []
    present = set(rows["family"])
    families = [f for f in FAMILY_ORDER if f in present] + sorted(present - set(FAMILY_ORDER))
    out = []
    for (task, dataset, column), part in rows.groupby(["task", "dataset", "column"], sort=False):
        higher = part["direction"].iloc[0] == "higher"
        entry: dict[str, Any] = {"task": task, "dataset": dataset, "column": column, "higher": higher}
        for family, members in part.groupby("family"):
            trusted = members[[(m, d, t) not in unreliable or not str(c).startswith("robust_acc")
                               for m, d, t, c in zip(members["model"], members["dataset"], members["task"],
                                                     members["column"])]]["value"]
            entry[family] = {"mean": members["value"].mean(), "ci": mean_interval(members["value"].dropna()),
                             "count": int(members["value"].count()),
                             "best": (trusted.max() if higher else trusted.min()) if len(trusted) else None,
                             "excluded": len(members) - len(trusted)}
        out.append(entry)
    return families, out


def mean_interval(values: pd.Series, resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of a mean over models (scipy.stats.bootstrap, seeded), or None for
    fewer than two models. With a handful of models it is rough: it says how much the mean rests on one model."""
    from scipy import stats

    values = values.to_numpy(dtype=float)
    if len(values) < 2:
        return None
    if values.min() == values.max():
        return (float(values[0]), float(values[0]))
    result = stats.bootstrap((values,), np.mean, n_resamples=resamples, method="percentile",
                             rng=np.random.default_rng(seed))
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def provenance_summary(frame: pd.DataFrame) -> dict[str, str]:
    """The facts shared by the whole run (or listed when they differ)."""
    facts: dict[str, str] = {}
    for column in ("suite", "suite_version", "suite_hash", "harness_version", "git_commit", "torch_version",
                   "timm_version", "device", "precision", "seed"):
        if column in frame:
            values = sorted({str(v) for v in frame[column].dropna().unique()})
            facts[column] = ", ".join(values) if values else "-"
    if "finished_at" in frame and frame["finished_at"].notna().any():
        facts["finished"] = f"{frame['finished_at'].min()} .. {frame['finished_at'].max()}"
    envs = [json.loads(p).get("env", {}) for p in frame.get("provenance", pd.Series(dtype=str)).dropna()]
    if envs:
        facts["cpu"] = envs[0].get("cpu_model", "-")
        facts["python"] = envs[0].get("python_version", "-")
    return facts
