"""The published site: every run folder under a reports folder as static, self-contained pages.

```
SITE/index.html                      suites and models
SITE/suites/<slug>/index.html        leaderboard: latest result of each job, one table per task x dataset
SITE/suites/<slug>/history.html      every stored run: runs table, each headline metric over runs
SITE/models/<model>.html             one model's numbers across suites, its weights and preprocessing
SITE/data/<table>.{csv,json,md,tex}  every table's exports
SITE/assets/site.{css,js}            shipped once; no page loads anything from the network
```
Links are relative, so the folder works from file:// and on any static host (GitHub Pages).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import defaultdict
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jinja2
import pandas as pd
from markupsafe import Markup

from harness.report.analysis import suite_analysis
from harness.report.collect import PublishedRun, read_runs, slugify
from harness.report.datatable import (TIE_RULE, Cell, Column, Row, Table, drop_empty_columns, format_value,
                                      leaderboard_table, metric_cell, model_sizes, size_bucket)
from harness.report.exports import FORMATS, export
from harness.report.htmltable import table_html
from harness.report.history import history_figures, history_rows, run_order
from harness.report.protocol import protocol_facts, suite_protocol
from harness.report.tables import ok_rows, provenance_summary
from harness.version import __version__

ASSETS = Path(__file__).resolve().parent / "assets"
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class SuitePage:
    run: PublishedRun
    tables: list[Table]
    protocols: dict[str, list[tuple[str, str]]]  # table id -> facts
    failures: list[dict[str, Any]]
    sizes: dict[str, float]
    rows: pd.DataFrame  # the latest finished metric rows, with column labels (tables.ok_rows)


@dataclass
class SiteSummary:
    out: Path
    pages: list[Path]
    tables: int
    seconds: float


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_value
    env.globals["table_html"] = table_html
    return env


def model_slug(model: str) -> str:
    return slugify(model)


def build_suite(run: PublishedRun) -> SuitePage:
    rows = ok_rows(run.latest) if not run.latest.empty else run.latest
    sizes = model_sizes(run.latest) if not run.latest.empty else {}
    failed_jobs = run.latest[run.latest["status"] != "ok"].drop_duplicates(["model", "dataset", "task"])
    hrefs = {m: f"../../models/{model_slug(m)}.html" for m in run.latest["model"].dropna().unique()}
    tables, protocols = [], {}
    groups = rows.groupby(["task", "dataset"], sort=False) if not rows.empty else []
    for (task, dataset), part in groups:
        table_id = slugify(f"{run.slug}--{task}--{dataset}")
        failed = {r.model: r.error for r in failed_jobs.itertuples() if r.task == task and r.dataset == dataset}
        if part["headline"].fillna(True).astype(bool).any():
            table = drop_empty_columns(leaderboard_table(part, table_id, sizes, hrefs, failed))
            table.meta.update({"suite": run.suite, "folder": str(run.folder)})
            tables.append(table)
            protocols[table_id] = protocol_facts(part)
    failures = failed_jobs[["model", "dataset", "task", "error"]].to_dict("records")
    return SuitePage(run, tables, protocols, failures, sizes, rows)


def history_table(run: PublishedRun, order: pd.DataFrame) -> Table:
    columns = [Column("run", "run", numeric=False), Column("started", "started", numeric=False),
               Column("jobs", "jobs stored"), Column("git_commit", "git commit", numeric=False),
               Column("harness_version", "harness", numeric=False), Column("argv", "command", numeric=False)]
    rows = []
    for r in order.itertuples():
        rows.append(Row({"run": Cell(r.run_id, str(r.run_id)), "started": Cell(r.started_at, str(r.started_at)),
                         "jobs": Cell(float(r.jobs), f"{r.jobs:,}"), "git_commit": Cell(r.git_commit, str(r.git_commit or "–")[:12]),
                         "harness_version": Cell(r.harness_version, str(r.harness_version or "–")),
                         "argv": Cell(r.argv, str(r.argv or "–"))}, {"complete": "1"}, anchor=f"run-{r.run_id}"))
    return Table(slugify(f"{run.slug}--runs"), f"{run.suite}: runs", columns, rows, meta={"suite": run.suite})


HISTORY_COLUMNS = ["run_id", "started_at", "model", "family", "task", "dataset", "column", "metric", "value",
                   "ci_low", "ci_high", "n"]


def write_history_values(rows: pd.DataFrame, order: pd.DataFrame, path: Path) -> dict[str, str]:
    """Every stored headline number of every run (long format) as CSV and JSON beside the history page."""
    started = dict(zip(order["run_id"], order["started_at"]))
    long = rows.assign(started_at=rows["run_id"].map(started))
    long = long.reindex(columns=HISTORY_COLUMNS)
    long.to_csv(path.with_suffix(".csv"), index=False)
    long.to_json(path.with_suffix(".json"), orient="records", indent=0)
    return {"csv": path.with_suffix(".csv").name, "json": path.with_suffix(".json").name}


def model_facts(rows: pd.DataFrame, sizes: dict[str, float]) -> dict[str, str]:
    """What the model page says about a model's weights and preprocessing in one suite (``rows``: its rows)."""
    first = rows.iloc[0]
    model = first["model"]
    provenance = next((json.loads(p) for p in rows["provenance"] if isinstance(p, str) and "model" in json.loads(p)),
                      {})
    loaded = provenance.get("model", {})
    flops = rows[rows["metric"] == "gflops"]["value"].dropna()
    facts = {"family": first["family"], "architecture": first["arch"], "source": loaded.get("model_source", "–"),
             "tag": first.get("model_tag") or "–", "weights": first.get("weights") or "–",
             "weights sha256": first.get("weights_sha256") or "–",
             "parameters": f"{sizes[model]:.3f} M" if model in sizes else "–",
             "GFLOPs / image": f"{flops.iloc[0]:.4f}" if len(flops) else "not measured (no latency task)",
             "preprocessing": ", ".join(f"{k} {v}" for k, v in (loaded.get("preprocess") or {}).items()) or "–"}
    return {k: str(v) for k, v in facts.items()}


def model_table(model: str, entries: list[tuple[SuitePage, Table, Row]], frames: list[tuple[SuitePage, pd.DataFrame]]
                ) -> Table:
    """All of one model's numbers: headline cells as ranked in their suite table, then every detail metric."""
    columns = [Column("suite", "suite", numeric=False), Column("task", "task", numeric=False),
               Column("dataset", "dataset", numeric=False), Column("metric", "metric", numeric=False),
               Column("value", "value", metric=True), Column("rank", "rank", numeric=False)]
    rows, caveats = [], {}
    for page, table, row in entries:
        ranked = [c for c in table.columns if c.numeric and c.direction in ("higher", "lower")]
        for column in table.columns:
            if not column.metric:
                continue
            cell = row.cells[column.key]
            rank = "–"
            if column in ranked and cell.value is not None:
                sign = 1 if column.direction == "higher" else -1
                values = [r.cells[column.key].value for r in table.rows if r.cells[column.key].value is not None]
                rank = f"{1 + sum(sign * v > sign * cell.value for v in values)} of {len(values)}"
            marks = cell.marks + column.marks
            caveats.update({m: table.caveats[m] for m in marks if m in table.caveats})
            value = Cell(**{**cell.__dict__, "marks": marks})
            rows.append(Row({"suite": Cell(page.run.suite, page.run.suite, href=f"../suites/{page.run.slug}/index.html#{row.anchor}"),
                             "task": Cell(table.meta["task"], table.meta["task"]),
                             "dataset": Cell(table.meta["dataset"], table.meta["dataset"]),
                             "metric": Cell(column.key, column.key), "value": value, "rank": Cell(rank, rank)},
                            {"task": table.meta["task"], "dataset": table.meta["dataset"], "suite": page.run.suite,
                             "complete": "0" if cell.value is None else "1", "kind": "headline"}))
    for page, frame in frames:
        detail = frame.loc[~frame["headline"].fillna(True).astype(bool),
                           ["task", "dataset", "column", "metric", "value", "n", "ci_low", "ci_high"]]
        for r in detail.itertuples():
            value = metric_cell(r.value, r.n, r.ci_low, r.ci_high, r.metric)
            rows.append(Row({"suite": Cell(page.run.suite, page.run.suite), "task": Cell(r.task, r.task),
                             "dataset": Cell(r.dataset, r.dataset), "metric": Cell(r.column, r.column),
                             "value": value, "rank": Cell("detail", "detail")},
                            {"task": r.task, "dataset": r.dataset, "suite": page.run.suite,
                             "complete": "0" if value.value is None else "1", "kind": "detail"}))
    return Table(slugify(f"model--{model}"), f"{model}: every number", columns, rows, dict(sorted(caveats.items())),
                 {"model": model})


def publish_site(root: Path, out: Path) -> SiteSummary:
    """Write the site for every run folder under ``root`` into ``out`` (replacing earlier pages)."""
    started = time.perf_counter()
    runs = read_runs(root)
    out = Path(out)
    claim_site_folder(out)
    for sub in SITE_PARTS:
        shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("models", "data", "assets"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for asset in ASSETS.iterdir():
        shutil.copyfile(asset, out / "assets" / asset.name)
    published_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    snapshot = f"published {published_at} by visionbench {__version__}"
    env = _env()
    pages: list[Path] = []
    tables_written = 0
    suite_pages = [build_suite(run) for run in runs]
    by_model: dict[str, list[tuple[SuitePage, Table, Row]]] = defaultdict(list)
    frames: dict[str, list[tuple[SuitePage, pd.DataFrame]]] = defaultdict(list)

    def write_exports(table: Table, run_ids: str) -> dict[str, str]:
        nonlocal tables_written
        table.meta["snapshot"] = f"{snapshot}; runs {run_ids}" if run_ids else snapshot
        links = {}
        for fmt, extension in FORMATS.items():
            name = f"{table.id}.{extension}"
            (out / "data" / name).write_text(export(table, fmt), encoding="utf-8")
            links[fmt] = name
        tables_written += 1
        return links

    def render(template: str, path: Path, depth: int, **context: Any) -> None:
        prefix = "../" * depth
        html = env.get_template(template).render(prefix=prefix, tie_rule=TIE_RULE, snapshot=snapshot,
                                                 harness_version=__version__, **context)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
        pages.append(path)

    histories = {page.run.slug: history_data(page.run) for page in suite_pages}
    with figure_workers(len(histories)) as pool:
        # history figures are drawn in a worker process while this one renders the pages
        drawing = {slug: pool.submit(history_figures, values, order) if pool else history_figures(values, order)
                   for slug, (order, values) in histories.items()}
        index_suites = []
        for page in suite_pages:
            run = page.run
            folder = out / "suites" / run.slug
            run_ids = ", ".join(sorted(set(run.latest["run_id"].dropna())))
            downloads = {t.id: write_exports(t, run_ids) for t in page.tables}
            for table in page.tables:
                for row in table.rows:
                    if row.attrs.get("family"):
                        by_model[row.attrs["model"]].append((page, table, row))
            latest_rows = page.rows
            if not latest_rows.empty:
                for model, rows_of_model in latest_rows.groupby("model", sort=False):
                    frames[model].append((page, rows_of_model))
            analysis = [(title, Markup(html)) for title, html in suite_analysis(run.latest, _records_dir(run.folder))]
            provenance = provenance_summary(run.latest) if not run.latest.empty else {}
            protocol = suite_protocol(latest_rows) if not latest_rows.empty else []
            render("site/suite.html.j2", folder / "index.html", 2, title=f"{run.suite} — leaderboard", run=run,
                   tables=page.tables, protocols=page.protocols, downloads=downloads, analysis=analysis,
                   failures=page.failures, provenance=provenance, protocol=protocol, filters=_filters(page.tables),
                   notes=run.notes)
            order, values = histories[run.slug]
            runs_table = history_table(run, order)
            history_downloads = {runs_table.id: write_exports(runs_table, "")}
            values_files = write_history_values(values, order, out / "data" / slugify(f"{run.slug}--history"))
            drawn = drawing[run.slug]
            figures = [(t, Markup(svg)) for t, svg in (drawn.result() if isinstance(drawn, Future) else drawn)]
            render("site/history.html.j2", folder / "history.html", 2, title=f"{run.suite} — history", run=run,
                   runs_table=runs_table, values_files=values_files,
                   families=sorted(set(values["family"].dropna())) if not values.empty else [],
                   values_count=len(values), downloads=history_downloads, figures=figures, provenance=provenance,
                   protocol=protocol, filters={})
            index_suites.append({"run": run, "models": int(run.latest["model"].nunique()),
                                 "jobs": int(run.latest.drop_duplicates(["model", "dataset", "task"]).shape[0]),
                                 "runs": len(order), "tables": len(page.tables), "protocol": protocol,
                                 "latest": str(run.latest["finished_at"].max()) if not run.latest.empty else "–"})
    model_rows = []
    for model in sorted(set(by_model) | set(frames)):
        entries = by_model.get(model, [])
        table = model_table(model, entries, frames.get(model, []))
        downloads = {table.id: write_exports(table, "")}
        facts = [(page.run.suite, page.run.slug, model_facts(rows, page.sizes)) for page, rows in frames.get(model, [])]
        protocols = [(page.run.suite, t.title, page.protocols[t.id]) for page, t, _ in entries]
        render("site/model.html.j2", out / "models" / f"{model_slug(model)}.html", 1, title=f"{model} — model",
               model=model, table=table, downloads=downloads, facts=facts, protocols=protocols,
               filters=_filters([table]), provenance={"model": model, "suites": ", ".join(f[0] for f in facts)})
        first = facts[0][2] if facts else {}
        sizes = [p.sizes[model] for p, _ in frames.get(model, []) if model in p.sizes]
        model_rows.append(Row({"model": Cell(model, model, href=f"models/{model_slug(model)}.html"),
                               "family": Cell(first.get("family"), first.get("family", "–")),
                               "arch": Cell(first.get("architecture"), first.get("architecture", "–")),
                               "size": metric_cell(sizes[0] if sizes else None),
                               "suites": Cell(", ".join(f[0] for f in facts), ", ".join(f[0] for f in facts))},
                              {"model": model, "family": first.get("family", ""),
                               "size": size_bucket(sizes[0] if sizes else None), "complete": "1"},
                              anchor=f"model-{model_slug(model)}"))
    models_table = drop_empty_columns(Table("models", "Models", [
        Column("model", "model", numeric=False), Column("family", "family", numeric=False),
        Column("arch", "arch", numeric=False), Column("size", "params (M)", unit="M"),
        Column("suites", "suites", numeric=False)], model_rows))
    downloads = {models_table.id: write_exports(models_table, "")}
    render("site/index.html.j2", out / "index.html", 0, title="visionbench results", suites=index_suites,
           models_table=models_table, downloads=downloads, filters=_filters([models_table]),
           provenance={"published": published_at, "harness": __version__,
                       "sources": ", ".join(str(r.folder) for r in runs)})
    return SiteSummary(out, pages, tables_written, time.perf_counter() - started)


def history_data(run: PublishedRun) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs in order, headline rows of every run) for a suite's history page."""
    if run.history.empty:
        return pd.DataFrame(columns=["run_id", "started_at", "git_commit", "harness_version", "argv", "jobs",
                                     "label"]), run.history
    return run_order(run.history, run.runs), history_rows(run.history)


@contextmanager
def figure_workers(suites: int) -> Iterator[ProcessPoolExecutor | None]:
    """A worker process for the history figures where there are spare cores and fork (cheap: the harness is
    already imported); None otherwise, and the figures are drawn in this process."""
    cores = os.cpu_count() or 1
    if suites < 1 or cores < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    with ProcessPoolExecutor(max_workers=cores - 1, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool


SITE_PARTS = ("suites", "models", "data", "assets")
SITE_MARKER = ".visionbench-site"


def claim_site_folder(out: Path) -> None:
    """Mark ``out`` as a published site; refuse a folder whose index.html or parts something else wrote
    (republishing replaces them)."""
    from harness.schema import UsageError

    ours = (out / SITE_MARKER).is_file()
    clashes = [p.name for p in (out / "index.html", *(out / sub for sub in SITE_PARTS)) if p.exists()]
    if clashes and not ours:
        raise UsageError(f"--to {out}: holds {clashes[0]} that visionbench publish did not write; "
                         f"give an empty folder or an earlier site")
    out.mkdir(parents=True, exist_ok=True)
    (out / SITE_MARKER).write_text("written by visionbench publish; republishing replaces this site's pages\n")


def _records_dir(folder: Path) -> Path | None:
    samples = folder / "samples"
    return samples if samples.is_dir() else None


def _filters(tables: list[Table]) -> dict[str, list[str]]:
    """Filter choices present in these tables' rows (a filter with one choice is not offered)."""
    choices: dict[str, list[str]] = {}
    for key in ("family", "task", "dataset", "size", "suite"):
        values = sorted({r.attrs[key] for t in tables for r in t.rows if r.attrs.get(key)})
        if len(values) > 1:
            choices[key] = values
    return choices


def publish_text(root: Path, fmt: str, pattern: str | None = None) -> str:
    """The leaderboard tables of every run folder under ``root`` as one Markdown / LaTeX / JSON document (or
    one CSV table): what ``visionbench publish DIR --format FMT`` prints."""
    import fnmatch

    from harness.schema import UsageError

    tables = [t for run in read_runs(root) for t in build_suite(run).tables
              if pattern is None or fnmatch.fnmatchcase(t.id, pattern)]
    if not tables:
        raise UsageError(f"{root}: no table{' matches --table ' + pattern if pattern else ''}")
    if fmt == "csv" and len(tables) > 1:
        raise UsageError(f"--format csv holds one table; pick one with --table (tables: {', '.join(t.id for t in tables)})")
    snapshot = f"published {time.strftime('%Y-%m-%dT%H:%M:%S%z')} by visionbench {__version__} from {root}"
    for table in tables:
        table.meta["snapshot"] = snapshot
    if fmt == "json":
        from harness.report.exports import to_records

        return json.dumps([to_records(t) for t in tables], indent=1, default=str, ensure_ascii=False) + "\n"
    return "\n".join(export(t, fmt) for t in tables)
