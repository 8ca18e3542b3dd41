"""Publishable tables: every cell keeps its number, interval, n and caveats; the best entry and those
statistically tied with it are marked.

One ``Table`` feeds the site's HTML and every export (CSV, JSON, Markdown, LaTeX: harness/report/exports.py),
so a number cannot differ between them.

Tie rule (stated on every page): in a column with a direction, the best entry is the highest (or lowest)
value among trusted entries (robust accuracy flagged unreliable is not trusted); an entry is tied with it
when both have a stored 95% interval and the intervals overlap. Overlap is conservative: it calls a tie
wherever a two-sample test might not separate the two. Without intervals only equal values tie.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.metrics import METRIC_INFO
from harness.report.tables import caveated_cells, headline, leaderboard, shared_params, unreliable_jobs

CAVEATS = {  # symbol -> what it means (each table lists the ones it uses under it)
    "†": "robust accuracy flagged unreliable by a sanity check ({detail}); likely an overestimate, not ranked",
    "‡": "random-init weights: the number says nothing about a trained model",
    "§": "derived across models after the run ({detail}), not measured by one job",
    "*": "partial: {detail}",
    "◊": "{detail}",
}
TIE_RULE = ("★ best; = statistically tied with the best (95% intervals overlap; without intervals only equal "
            "values tie). Robust accuracy flagged unreliable is never ranked.")
SIZE_BUCKETS = [(1.0, "< 1M"), (10.0, "1–10M"), (100.0, "10–100M"), (math.inf, "≥ 100M")]
WORD_METRICS = {"robust_reliable": ("unreliable", "reliable")}  # 0 / 1 shown as words


@dataclass
class Column:
    key: str
    label: str
    numeric: bool = True
    direction: str = "none"
    unit: str = ""
    description: str = ""
    marks: str = ""  # caveat symbols on the heading (e.g. § for a derived metric)
    metric: bool = False  # a measured number (with interval, n, best/tied); else a descriptive one (size, n)


@dataclass
class Cell:
    value: Any = None  # float for numbers, str for text, None when missing
    text: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    best: bool = False
    tied: bool = False
    marks: str = ""  # caveat symbols
    href: str | None = None  # a link (model pages), relative


@dataclass
class Row:
    cells: dict[str, Cell]
    attrs: dict[str, str] = field(default_factory=dict)  # data-* attributes for the page's filters
    anchor: str = ""


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[Row]
    caveats: dict[str, str] = field(default_factory=dict)  # symbol -> text, for this table
    meta: dict[str, Any] = field(default_factory=dict)  # suite, task, dataset, snapshot...

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


def finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def format_value(value: float | None, metric: str = "") -> str:
    """Numbers for people: 4 decimals below 10, thousands separated above; flags as words."""
    if value is None:
        return "–"
    if metric.startswith("flag_"):
        return "raised" if value > 0 else "passed"
    if metric in WORD_METRICS:
        return WORD_METRICS[metric][int(value > 0)]
    if float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:,.2f}"


def size_bucket(params_m: float | None) -> str:
    if params_m is None:
        return "unknown"
    return next(label for limit, label in SIZE_BUCKETS if params_m < limit)


def model_sizes(rows: pd.DataFrame) -> dict[str, float]:
    """model -> parameters in millions: the latency task's count where measured, else the loaded module's."""
    sizes: dict[str, float] = {}
    for model, provenance in zip(rows["model"], rows["provenance"]):
        if model not in sizes and isinstance(provenance, str):
            count = json.loads(provenance).get("model", {}).get("num_params")
            if count:
                sizes[model] = count / 1e6
    measured = rows[rows["metric"] == "params_m"]
    sizes.update({m: float(v) for m, v in zip(measured["model"], measured["value"]) if finite(v) is not None})
    return sizes


def mark_best(table: Table, trusted: dict[tuple[int, str], bool]) -> None:
    """Set ``best`` / ``tied`` in every column with a direction (see the module's tie rule)."""
    for column in table.columns:
        if not column.numeric or column.direction not in ("higher", "lower"):
            continue
        sign = 1 if column.direction == "higher" else -1
        entries = [(i, row.cells[column.key]) for i, row in enumerate(table.rows)
                   if column.key in row.cells and row.cells[column.key].value is not None
                   and trusted.get((i, column.key), True)]
        if not entries:
            continue
        _, best = max(entries, key=lambda e: sign * e[1].value)
        for _, cell in entries:
            if cell.value == best.value:
                cell.best = True
            elif None not in (cell.ci_low, cell.ci_high, best.ci_low, best.ci_high):
                cell.tied = cell.ci_low <= best.ci_high and best.ci_low <= cell.ci_high


def metric_cell(value: Any, n: Any = None, ci_low: Any = None, ci_high: Any = None, metric: str = "") -> Cell:
    number = finite(value)
    return Cell(value=number, text=format_value(number, metric), ci_low=finite(ci_low), ci_high=finite(ci_high),
                n=int(n) if finite(n) is not None else None)


def leaderboard_table(part: pd.DataFrame, table_id: str, sizes: dict[str, float], model_href: dict[str, str],
                      failed: dict[str, str] | None = None, slugs: dict[str, str] | None = None) -> Table:
    """One suite table (a task on a dataset): a row per model, a column per headline metric. A row's anchor is
    ``<table id>--<model slug>`` (``slugs``: model -> its page name; any name is safe in an id and a URL)."""
    from harness.report.collect import file_slug

    def anchor(model: str) -> str:
        return f"{table_id}--{(slugs or {}).get(model) or file_slug(model)}"

    unreliable = unreliable_jobs(part)
    marked = caveated_cells(part)
    task, dataset = part["task"].iloc[0], part["dataset"].iloc[0]
    wide = leaderboard(part)
    shown = headline(part)
    metric_keys = [c for c in wide.columns if c not in ("model", "family", "arch", "dataset", "n")]
    by_column = {c: g for c, g in shown.groupby("column", sort=False)}
    columns = [Column("model", "model", numeric=False), Column("family", "family", numeric=False),
               Column("arch", "arch", numeric=False), Column("size", "params (M)", unit="M")]
    caveats: dict[str, str] = {}
    derived_notes: list[str] = []
    for key in metric_keys:
        rows_of = by_column[key]
        metric = rows_of["metric"].iloc[0]
        info = METRIC_INFO.get(metric)
        derived = bool(rows_of.get("derived", pd.Series([False])).fillna(False).astype(bool).any())
        column = Column(key, key, direction=str(rows_of["direction"].iloc[0] or "none"),
                        unit=str(rows_of["unit"].iloc[0] or ""), description=info.description if info else "",
                        marks="§" if derived else "", metric=True)
        if derived:
            derived_notes.append(f"{key}: {column.description or 'cross-job metric'}")
        columns.append(column)
    if derived_notes:
        caveats["§"] = CAVEATS["§"].format(detail="; ".join(derived_notes))
    columns.append(Column("n", "n"))
    cells_of = {(r.model, r.column): r for r in shown.itertuples()}
    weights = dict(zip(part["model"].tolist(), part["weights"].tolist()))
    rows, trusted = [], {}
    for i, record in enumerate(wide.to_dict("records")):
        model = record["model"]
        cells = {"model": Cell(model, model, href=model_href.get(model)),
                 "family": Cell(record["family"], str(record["family"])),
                 "arch": Cell(record["arch"], str(record["arch"])),
                 "size": metric_cell(sizes.get(model))}
        flags = unreliable.get((model, dataset, task))
        missing = []
        for key in metric_keys:
            source = cells_of.get((model, key))
            if source is None or finite(source.value) is None:
                cells[key] = Cell(None, "–", marks="*")
                missing.append(key)
                continue
            cell = metric_cell(source.value, source.n, source.ci_low, source.ci_high, source.metric)
            if flags and source.metric == "robust_acc":
                cell.marks += "†"
                trusted[(i, key)] = False
                caveats["†"] = CAVEATS["†"].format(detail="; ".join(
                    f"{m}: {', '.join(f)}" for (m, _, _), f in unreliable.items()))
            if (model, key) in marked:
                cell.marks += "◊"
                caveats["◊"] = CAVEATS["◊"].format(detail="; ".join(sorted(set(marked.values()))))
            cells[key] = cell
        ns = {c.n for k, c in cells.items() if k in metric_keys and c.n is not None}
        cells["n"] = Cell(float(max(ns)) if ns else None, f"{max(ns):,}" if len(ns) == 1 else
                          (f"{min(ns):,}–{max(ns):,}" if ns else "–"))
        if weights.get(model) == "random-init":
            cells["model"].marks += "‡"
            caveats["‡"] = CAVEATS["‡"]
        if missing:
            caveats["*"] = CAVEATS["*"].format(detail="– marks a metric this job did not produce")
        attrs = {"model": model, "family": str(record["family"]), "size": size_bucket(sizes.get(model)),
                 "complete": "0" if missing else "1", "task": task, "dataset": dataset}
        rows.append(Row(cells, attrs, anchor=anchor(model)))
    for model, error in (failed or {}).items():
        cells = {"model": Cell(model, model, href=model_href.get(model), marks="*"),
                 "family": Cell(None, "–"), "arch": Cell(None, "–"), "size": metric_cell(sizes.get(model))}
        cells.update({key: Cell(None, "failed") for key in metric_keys})
        cells["n"] = Cell(None, "–")
        caveats["*"] = CAVEATS["*"].format(detail="– marks a metric this job did not produce; failed jobs "
                                                  "are listed with their error under the tables")
        rows.append(Row(cells, {"model": model, "family": "", "size": size_bucket(sizes.get(model)),
                                "complete": "0", "task": task, "dataset": dataset}, anchor=anchor(model)))
    table = Table(table_id, f"{task} · {dataset}", columns, rows, dict(sorted(caveats.items())),
                  {"task": task, "dataset": dataset,
                   "settings": {k: v for k, v in sorted(shared_params(part["params"]).items())}})
    mark_best(table, trusted)
    return table


def drop_empty_columns(table: Table, keys: tuple[str, ...] = ("size",)) -> Table:
    """Leave out optional columns no row has a value in."""
    empty = {k for k in keys if all(r.cells.get(k, Cell()).value is None for r in table.rows)}
    if empty:
        table.columns = [c for c in table.columns if c.key not in empty]
        for row in table.rows:
            for key in empty:
                row.cells.pop(key, None)
    return table
