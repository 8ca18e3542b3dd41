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
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import jinja2
import pandas as pd
from markupsafe import Markup

from harness.report.analysis import suite_analysis
from harness.report.collect import PublishedRun, file_slug, read_runs, unique_slugs
from harness.report.datatable import (TIE_RULE, Cell, Column, Row, Table, drop_empty_columns, format_value,
                                      leaderboard_table, metric_cell, model_sizes, size_bucket)
from harness.report.exports import FORMATS, export
from harness.report.htmltable import table_html
from harness.report.history import history_figures, history_rows, run_order
from harness.report.paths import PathScrubber
from harness.report.protocol import protocol_facts, suite_protocol
from harness.report.samples import samples_from
from harness.report.sections import figure_anchor, task_anchor, task_figures
from harness.report.tables import ok_rows, provenance_summary
from harness.schema import UsageError
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
    figures: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # table id -> its task's figures


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


def model_slug(model: str, slugs: dict[str, str] | None = None) -> str:
    """The model's page name (models/<slug>.html) and its part of row anchors: bounded, file-name safe, one
    per model (see collect.file_slug)."""
    return (slugs or {}).get(model) or file_slug(model)


def build_suite(run: PublishedRun, slugs: dict[str, str] | None = None, draw: bool = False) -> SuitePage:
    """One suite's tables; ``slugs``: model -> page name (every model of the site, so names cannot clash);
    with ``draw``, each table's task figures too (those of the run's own report)."""
    rows = ok_rows(run.latest) if not run.latest.empty else run.latest
    sizes = model_sizes(run.latest) if not run.latest.empty else {}
    failed_jobs = run.latest[run.latest["status"] != "ok"].drop_duplicates(["model", "dataset", "task"])
    models = run.latest["model"].dropna().unique()
    slugs = slugs or unique_slugs(models)
    hrefs = {m: f"../../models/{model_slug(m, slugs)}.html" for m in models}
    tables, protocols, figures = [], {}, {}
    groups = rows.groupby(["task", "dataset"], sort=False) if not rows.empty else []
    for (task, dataset), part in groups:
        table_id = file_slug(f"{run.slug}--{task}--{dataset}")
        failed = {r.model: r.error for r in failed_jobs.itertuples() if r.task == task and r.dataset == dataset}
        if part["headline"].fillna(True).astype(bool).any():
            table = drop_empty_columns(leaderboard_table(part, table_id, sizes, hrefs, failed, slugs))
            table.meta.update({"suite": run.suite, "folder": run.label or run.folder.name,
                               "anchor": task_anchor(task, dataset)})
            tables.append(table)
            protocols[table_id] = protocol_facts(part)
            if draw:
                with samples_from(_records_dir(run.folder)):
                    figures[table_id] = [(title, html, figure_anchor(task, dataset, title))
                                         for title, html in task_figures(part, rows)]
    failures = failed_jobs[["model", "dataset", "task", "error"]].to_dict("records")
    return SuitePage(run, tables, protocols, failures, sizes, rows, figures)


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
    return Table(file_slug(f"{run.slug}--runs"), f"{run.suite}: runs", columns, rows, meta={"suite": run.suite})


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


def model_table(model: str, entries: list[tuple[SuitePage, Table, Row]], frames: list[tuple[SuitePage, pd.DataFrame]],
                slug: str | None = None, ranked: dict[tuple[int, str], list[float]] | None = None) -> Table:
    """All of one model's numbers: headline cells as ranked in their suite table, then every detail metric.

    ``ranked``: (id of a suite table, column) -> its values, kept by the caller across models so each suite
    column is read once rather than once per model."""
    ranked = {} if ranked is None else ranked
    columns = [Column("suite", "suite", numeric=False), Column("task", "task", numeric=False),
               Column("dataset", "dataset", numeric=False), Column("metric", "metric", numeric=False),
               Column("value", "value", metric=True), Column("rank", "rank", numeric=False)]
    rows, caveats = [], {}
    for page, table, row in entries:
        rankable = [c for c in table.columns if c.numeric and c.direction in ("higher", "lower")]
        for column in table.columns:
            if not column.metric:
                continue
            cell = row.cells[column.key]
            rank = "–"
            if column in rankable and cell.value is not None:
                sign = 1 if column.direction == "higher" else -1
                values = ranked.get((id(table), column.key))
                if values is None:
                    values = ranked[(id(table), column.key)] = [
                        r.cells[column.key].value for r in table.rows if r.cells[column.key].value is not None]
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
    return Table(f"model--{slug or file_slug(model)}", f"{model}: every number", columns, rows,
                 dict(sorted(caveats.items())), {"model": model})


LOCK_WAIT = 600.0  # seconds a publish waits for another one writing the same site


def publish_site(root: Path, out: Path, wait: float = LOCK_WAIT) -> SiteSummary:
    """Write the site for every run folder under ``root`` into ``out`` (replacing earlier pages).

    Every store is read and checked first: one that cannot be published refuses the publish before anything
    is written. The site is built in a folder beside its pages and moved into place when it is complete, so a
    publish that fails leaves the earlier site as it was; two publishes into one folder take turns (a lock
    file in it; the second waits up to ``wait`` seconds, then gives up in one line)."""
    started = time.perf_counter()
    out = Path(out)
    try:
        runs = read_runs(root)
    except UsageError as exc:
        kept = f"; {out} is as it was" if (out / "index.html").exists() else ""
        raise UsageError(f"{exc} — nothing was published{kept}") from None
    check_site_folder(out)
    scrub = PathScrubber(reports=[Path(root)], outputs=[out])
    runs = [redacted(run, scrub) for run in runs]
    with site_lock(out, wait):
        check_site_folder(out)  # again: the folder may have changed while this publish waited
        _clear_leftovers(out)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
        try:
            pages, tables = write_site(runs, staging, scrub, [run.label for run in runs])
            claim_site_folder(out)
            swap_in(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    pages = [out / page.relative_to(staging) for page in pages]
    return SiteSummary(out, pages, tables, time.perf_counter() - started)


def redacted(run: PublishedRun, scrub: PathScrubber) -> PublishedRun:
    """The run as pages show it: no text names an absolute path of this machine (harness/report/paths.py).
    The folder itself stays (the per-sample records are read from it); ``label`` is how pages name it. The
    history's provenance is not shown anywhere, so it is not carried."""
    return replace(run, latest=scrub.frame(run.latest), history=scrub.frame(run.history, drop=("provenance",)),
                   runs=scrub.frame(run.runs), notes=[scrub.text(n) for n in run.notes], label=scrub.path(run.folder))


def write_site(runs: list[PublishedRun], out: Path, scrub: PathScrubber, sources: list[str]) -> tuple[list[Path], int]:
    """Every page, export and asset of the site into the (empty) folder ``out``; returns (pages, tables)."""
    for sub in ("models", "data", "assets"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for asset in ASSETS.iterdir():
        shutil.copyfile(asset, out / "assets" / asset.name)
    published_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    snapshot = f"published {published_at} by visionbench {__version__}"
    env = _env()
    pages: list[Path] = []
    tables_written = 0
    slugs = unique_slugs(m for run in runs for m in run.latest["model"].dropna().unique())
    suite_pages = [build_suite(run, slugs, draw=True) for run in runs]
    by_model: dict[str, list[tuple[SuitePage, Table, Row]]] = defaultdict(list)
    frames: dict[str, list[tuple[SuitePage, pd.DataFrame]]] = defaultdict(list)
    failures: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def write(path: Path, text: str) -> None:
        # the last pass: whatever a page or export says, it names the known folders as published
        path.write_text(scrub.known(text), encoding="utf-8")

    def write_exports(table: Table, run_ids: str) -> dict[str, str]:
        nonlocal tables_written
        table.meta["snapshot"] = f"{snapshot}; runs {run_ids}" if run_ids else snapshot
        links = {}
        for fmt, extension in FORMATS.items():
            name = f"{table.id}.{extension}"
            write(out / "data" / name, export(table, fmt))
            links[fmt] = name
        tables_written += 1
        return links

    def render(template: str, path: Path, depth: int, **context: Any) -> None:
        prefix = "../" * depth
        html = env.get_template(template).render(prefix=prefix, tie_rule=TIE_RULE, snapshot=snapshot,
                                                 harness_version=__version__, **context)
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, html)
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
            for failure in page.failures:
                failures[failure["model"]].append({**failure, "suite": run.suite, "slug": run.slug})
            analysis = [(title, Markup(scrub.known(html)))
                        for title, html in suite_analysis(run.latest, _records_dir(run.folder), anchors={
                            anchor for drawn in page.figures.values() for _, _, anchor in drawn})]
            provenance = provenance_summary(run.latest) if not run.latest.empty else {}
            protocol = suite_protocol(latest_rows) if not latest_rows.empty else []
            render("site/suite.html.j2", folder / "index.html", 2, title=f"{run.suite} — leaderboard", run=run,
                   tables=page.tables, protocols=page.protocols, downloads=downloads, analysis=analysis,
                   figures={table_id: [(title, Markup(scrub.known(html)), anchor)
                                       for title, html, anchor in drawn_figures]
                            for table_id, drawn_figures in page.figures.items()},
                   failures=page.failures, provenance=provenance, protocol=protocol, filters=_filters(page.tables),
                   notes=run.notes)
            order, values = histories[run.slug]
            runs_table = history_table(run, order)
            history_downloads = {runs_table.id: write_exports(runs_table, "")}
            values_files = write_history_values(values, order, out / "data" / file_slug(f"{run.slug}--history"))
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
    model_rows, ranked = [], {}
    for model in sorted(set(by_model) | set(frames) | set(failures)):
        slug = model_slug(model, slugs)
        entries = by_model.get(model, [])
        table = model_table(model, entries, frames.get(model, []), slug, ranked)
        downloads = {table.id: write_exports(table, "")}
        facts = [(page.run.suite, page.run.slug, model_facts(rows, page.sizes)) for page, rows in frames.get(model, [])]
        protocols = [(page.run.suite, t.title, page.protocols[t.id]) for page, t, _ in entries]
        suites = list(dict.fromkeys([f[0] for f in facts] + [f["suite"] for f in failures.get(model, [])]))
        render("site/model.html.j2", out / "models" / f"{slug}.html", 1, title=f"{model} — model",
               model=model, table=table, downloads=downloads, facts=facts, protocols=protocols,
               failures=failures.get(model, []), filters=_filters([table]),
               provenance={"model": model, "suites": ", ".join(suites)})
        first = facts[0][2] if facts else {}
        sizes = [p.sizes[model] for p, _ in frames.get(model, []) if model in p.sizes]
        model_rows.append(Row({"model": Cell(model, model, href=f"models/{slug}.html"),
                               "family": Cell(first.get("family"), first.get("family", "–")),
                               "arch": Cell(first.get("architecture"), first.get("architecture", "–")),
                               "size": metric_cell(sizes[0] if sizes else None),
                               "suites": Cell(", ".join(suites), ", ".join(suites))},
                              {"model": model, "family": first.get("family", ""),
                               "size": size_bucket(sizes[0] if sizes else None), "complete": "1"},
                              anchor=f"model-{slug}"))
    models_table = drop_empty_columns(Table("models", "Models", [
        Column("model", "model", numeric=False), Column("family", "family", numeric=False),
        Column("arch", "arch", numeric=False), Column("size", "params (M)", unit="M"),
        Column("suites", "suites", numeric=False)], model_rows))
    downloads = {models_table.id: write_exports(models_table, "")}
    render("site/index.html.j2", out / "index.html", 0, title="visionbench results", suites=index_suites,
           models_table=models_table, downloads=downloads, filters=_filters([models_table]),
           provenance={"published": published_at, "harness": __version__,
                       "sources": ", ".join(f"{run.suite} ({label})" for run, label in zip(runs, sources))})
    return pages, tables_written


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
SITE_LOCK = ".visionbench-site.lock"
STAGING_PREFIX = ".visionbench-building-"
OLD_PREFIX = ".visionbench-replaced-"


def check_site_folder(out: Path) -> None:
    """Refuse a folder whose index.html or parts something else wrote (republishing replaces them)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--to {out}: exists and is not a folder")
    ours = (out / SITE_MARKER).is_file()
    clashes = [p.name for p in (out / "index.html", *(out / sub for sub in SITE_PARTS)) if p.exists()]
    if clashes and not ours:
        raise UsageError(f"--to {out}: holds {clashes[0]} that visionbench publish did not write; "
                         f"give an empty folder or an earlier site")


def claim_site_folder(out: Path) -> None:
    """Mark ``out`` as a published site (after ``check_site_folder``)."""
    check_site_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SITE_MARKER).write_text("written by visionbench publish; republishing replaces this site's pages\n")


@contextmanager
def site_lock(out: Path, wait: float) -> Iterator[None]:
    """Hold the site's lock (``flock`` on ``out/.visionbench-site.lock``): one publish writes a site at a time.
    Another publish holding it is waited for, ``wait`` seconds at most; then a one-line error."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the staging folder still keeps a failed publish from showing
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / SITE_LOCK, "a+", encoding="utf-8") as handle:
        deadline, told = time.monotonic() + wait, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _lock_holder(handle)
                if time.monotonic() >= deadline:
                    raise UsageError(f"--to {out}: another visionbench publish{holder} is writing this site "
                                     f"(waited {wait:g} s for {SITE_LOCK}); nothing was published") from None
                if not told:
                    print(f"waiting: another visionbench publish{holder} is writing {out}", file=sys.stderr,
                          flush=True)
                    told = True
                time.sleep(0.1)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_holder(handle) -> str:
    handle.seek(0)
    pid = handle.read().strip()
    return f" (pid {pid})" if pid.isdigit() else ""


def _clear_leftovers(out: Path) -> None:
    """Folders a killed publish left behind (under the lock, nobody else is using them)."""
    for leftover in out.iterdir():
        if leftover.is_dir() and leftover.name.startswith((STAGING_PREFIX, OLD_PREFIX)):
            shutil.rmtree(leftover, ignore_errors=True)


def swap_in(staging: Path, out: Path) -> None:
    """Replace the site's index.html and parts by the complete ones in ``staging`` (renames, no copying)."""
    old = Path(tempfile.mkdtemp(prefix=OLD_PREFIX, dir=out))
    try:
        for name in ("index.html", *SITE_PARTS):
            if (out / name).exists():
                (out / name).rename(old / name)
            if (staging / name).exists():
                (staging / name).rename(out / name)
    finally:
        shutil.rmtree(old, ignore_errors=True)


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

    scrub = PathScrubber(reports=[Path(root)])
    runs = [redacted(run, scrub) for run in read_runs(root)]
    slugs = unique_slugs(m for run in runs for m in run.latest["model"].dropna().unique())
    tables = [t for run in runs for t in build_suite(run, slugs).tables
              if pattern is None or fnmatch.fnmatchcase(t.id, pattern)]
    if not tables:
        raise UsageError(f"{root}: no table{' matches --table ' + pattern if pattern else ''}")
    if fmt == "csv" and len(tables) > 1:
        raise UsageError(f"--format csv holds one table; pick one with --table (tables: {', '.join(t.id for t in tables)})")
    snapshot = (f"published {time.strftime('%Y-%m-%dT%H:%M:%S%z')} by visionbench {__version__} "
                f"from {scrub.path(root)}")
    for table in tables:
        table.meta["snapshot"] = snapshot
    if fmt == "json":
        from harness.report.exports import to_records

        text = json.dumps([to_records(t) for t in tables], indent=1, default=str, ensure_ascii=False) + "\n"
    else:
        text = "\n".join(export(t, fmt) for t in tables)
    return scrub.known(text)
