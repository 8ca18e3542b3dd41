"""Rendering the self-contained HTML leaderboard and the CSV/JSON exports."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import jinja2
import pandas as pd
from markupsafe import Markup

from harness.version import __version__
from harness.report.analysis import latest_rows, suite_analysis
from harness.report.scorecard import scorecard, write_exports
from harness.report.paths import PathScrubber
from harness.report.samples import samples_from
from harness.report.sections import figure_anchor, not_drawn, task_anchor, task_figures
from harness.formatting import format_param
from harness.report.tables import (caveated_cells, column_directions, format_number, leaderboard, ok_rows,
                                   provenance_summary, shared_params, unreliable_jobs)

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    return env


def build_context(frame: pd.DataFrame, title: str, records_dir: Path | None = None,
                  pairs: Sequence[Sequence[str]] = ()) -> dict[str, Any]:
    rows = ok_rows(frame)
    unreliable = unreliable_jobs(rows)
    tasks = []
    for (task, dataset), part in rows.groupby(["task", "dataset"], sort=False):
        table = leaderboard(part)
        metric_columns = [c for c in table.columns if c not in ("model", "family", "arch", "dataset", "n")]
        ci = {(r.model, r.column): (r.ci_low, r.ci_high) for r in part.itertuples() if pd.notna(r.ci_low)}
        tasks.append({
            "task": task, "dataset": dataset, "kind": part["task_kind"].iloc[0], "columns": metric_columns,
            "settings": {k: format_param(v) for k, v in sorted(shared_params(part["params"]).items())},
            "higher": {c: column_directions(part).get(c) == "higher" for c in metric_columns},
            "rows": [{**row, "caveat": unreliable.get((row["model"], dataset, task))} for row in table.to_dict("records")],
            "ci": ci,
            "caveats": {f"{model}|{column}": why for (model, column), why in caveated_cells(part).items()},
            "anchor": task_anchor(task, dataset),
            "extras": [{"title": t, "html": Markup(h), "id": figure_anchor(task, dataset, t)}
                       for t, h in task_figures(part, rows)],
        })
    failed = frame[frame["status"] != "ok"].drop_duplicates("job_key")
    with_metrics = set(frame.loc[frame["metric"].notna(), "job_key"]) if not frame.empty else set()
    empty = frame[(frame["status"] == "ok") & ~frame["job_key"].isin(with_metrics)].drop_duplicates("job_key")
    empty = empty.assign(error="finished without any metric")
    return {
        "title": title,
        "tasks": tasks,
        "analysis": [{"title": t, "html": Markup(h)} for t, h in _analysis(
            frame, records_dir, pairs, {extra["id"] for task in tasks for extra in task["extras"]})],
        "failures": pd.concat([failed, empty])[["model", "dataset", "task", "error"]].to_dict("records"),
        "provenance": provenance_summary(frame),
        "harness_version": __version__,
        "job_count": int(frame["job_key"].nunique()) if not frame.empty else 0,
    }


def _analysis(frame: pd.DataFrame, records_dir: Path | None, pairs: Sequence[Sequence[str]],
              anchors: set[str]) -> list[tuple[str, str]]:
    try:
        return suite_analysis(frame, records_dir, pairs=pairs, anchors=anchors)
    except Exception as exc:  # noqa: BLE001 - as for figures: the tables are still written
        return [not_drawn("the CNN-vs-transformer analysis", exc)]


def render_html(frame: pd.DataFrame, title: str, records_dir: Path | None = None,
                pairs: Sequence[Sequence[str]] = ()) -> str:
    """The page; ``records_dir`` (the run's per-sample records) enables the matched-pair tests, the PR curves
    and the segmentation overlays."""
    with samples_from(records_dir):
        return _env().get_template("leaderboard.html.j2").render(**build_context(frame, title, records_dir, pairs))


def export_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain records for JSON: params as objects, provenance parsed, NaN as null."""
    records = []
    for record in frame.to_dict("records"):
        record["provenance"] = json.loads(record["provenance"]) if isinstance(record.get("provenance"), str) else None
        records.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})
    return records


def write_report(frame: pd.DataFrame, out_dir: Path, suite: Any) -> Path:
    """Write index.html, results.csv and results.json into ``out_dir``; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{suite.name} v{suite.spec.version}" if hasattr(suite, "spec") else str(suite)
    flat = frame.drop(columns=["provenance"]).copy()
    flat["params"] = flat["params"].map(lambda p: json.dumps(p, sort_keys=True) if p else "")
    flat.to_csv(out_dir / "results.csv", index=False)
    (out_dir / "results.json").write_text(json.dumps(export_records(frame), indent=1, default=str), encoding="utf-8")
    html_path = out_dir / "index.html"
    pairs = getattr(getattr(suite, "spec", None), "pairs", ())
    # the page is shared: it names no absolute path of this machine (results.csv / results.json, the run's own
    # record beside its store, keep them)
    scrub = PathScrubber(reports=[out_dir])
    html = render_html(scrub.frame(frame), title, out_dir / "samples", pairs)
    html_path.write_text(scrub.known(html), encoding="utf-8")
    try:
        write_exports(scorecard(latest_rows(frame), out_dir / "samples", pairs), out_dir)
    except Exception as exc:  # noqa: BLE001 - the page says what went wrong; the report stays written
        print(f"scorecard exports not written: {type(exc).__name__}: {exc}")
    return html_path


def add_report_section(out_dir: Path, title: str, safe_html: str) -> Path:
    """Insert a section (already escaped HTML, e.g. the regression gate's verdicts) before the report's footer."""
    html_path = Path(out_dir) / "index.html"
    page = html_path.read_text(encoding="utf-8")
    anchor = title.lower().replace(" ", "-")
    safe_html = PathScrubber(reports=[Path(out_dir)]).known(safe_html)  # as the page: no absolute path
    section = f'<h2 id="{anchor}">{Markup.escape(title)}</h2>\n{safe_html}\n'
    html_path.write_text(page.replace("<footer>", section + "<footer>", 1), encoding="utf-8")
    return html_path
