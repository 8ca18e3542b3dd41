"""CNN vs transformer for one suite, answered with statistics: the entry point of the report and the site.

``suite_analysis`` returns (title, safe HTML) sections: the family summary (mean per family with a bootstrap
interval over its models, n models, best model), the matched-pairs table (paired differences with Newcombe
intervals and exact McNemar p-values from the per-sample records), the Pareto plots and the findings paragraph.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
from markupsafe import Markup, escape

from harness.report.findings import findings_text
from harness.report.pairs import (DEFAULT_BAND, PairResult, compare_pairs, declared_pairs, format_p, matched_pairs,
                                  model_costs, points, records_folder)
from harness.report.pareto import pareto_sections
from harness.report.scorecard import scorecard, scorecard_html
from harness.report.tables import family_summary, ok_rows


def latest_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Finished metric rows (tables.ok_rows), the latest of each model x task x dataset x column when the frame
    holds several runs."""
    rows = ok_rows(frame)
    if "finished_at" in rows:
        rows = rows.sort_values("finished_at", kind="stable", na_position="first")
    return rows.drop_duplicates(["model", "task", "dataset", "column"], keep="last")


def suite_analysis(frame: pd.DataFrame, records_dir: Path | None, *, pairs: Iterable[Sequence[str]] = (),
                   band: float = DEFAULT_BAND, anchors: set[str] | None = None) -> list[tuple[str, str]]:
    """(title, safe HTML) sections for one suite's rows.

    ``records_dir``: the run's folder or its ``samples/`` folder of ``<job key>.jsonl.gz`` records (None: no
    paired tests). ``pairs``: the suite's declared pairs; without them, models of different families whose
    cost is within ``band`` are paired. ``anchors``: the ids of the figures on the page (the scorecard's links).
    """
    rows = latest_rows(frame)
    if rows.empty:
        return []
    sections = []
    card = scorecard(rows, records_dir, [list(p) for p in pairs])
    if card:
        sections.append(("Scorecard", scorecard_html(card, anchors)))
    families, summary = family_summary(rows)
    if summary:
        sections.append(("Family summary", family_table(families, summary)))
    model_family = dict(zip(rows["model"], rows["family"].astype(str)))
    cost_name, costs = model_costs(rows)
    declared = [list(p) for p in pairs]
    chosen = declared_pairs(declared) if declared else matched_pairs(model_family, cost_name, costs, band)
    refused: list[str] = []
    results = compare_pairs(rows, chosen, records_dir, refused)
    if refused:  # said where the tests would be: a test left out is not a test passed
        items = "".join(str(Markup("<li>{}</li>").format(reason)) for reason in refused)
        sections.append(("Per-sample records refused", '<p class="figure-error">these records do not verify, so no '
                         f'paired test or figure is computed from them (rerun the suite to recompute the jobs):</p>'
                         f'<ul class="figure-error">{items}</ul>'))
    if results:
        sections.append(("Matched pairs", pairs_table(results)))
    sections += pareto_sections(rows)
    folder = records_folder(records_dir)
    text = findings_text(chosen, results, cost_name, bool(declared), folder is not None and folder.is_dir(), band)
    if refused and chosen and not results:
        text = f"{len(chosen)} pair(s), but their per-sample records do not verify, so no paired test was run."
    sections.append(("Findings", str(Markup('<p class="findings">{}</p>').format(text))))
    return sections


def _num(value: Any) -> str:
    return "–" if value is None or value != value else f"{value:.4f}"


def family_table(families: list[str], summary: list[dict[str, Any]]) -> str:
    head = "".join(str(Markup('<th><span class="fam fam-{0}">{0}</span> mean</th><th>{0} 95% CI</th><th>{0} n</th>'
                              '<th>{0} best</th>').format(f)) for f in families)
    body = []
    for row in summary:
        cells = [Markup('<td class="text">{}</td><td class="text">{}</td><td class="text">{} {}</td>').format(
            row["task"], row["dataset"], row["column"], "↑" if row["higher"] else "↓")]
        for f in families:
            cell = row.get(f)
            if not cell:
                cells.append(Markup("<td>–</td>" * 4))
                continue
            ci = cell["ci"]
            interval = f"{ci[0]:.4f} – {ci[1]:.4f}" if ci else "–"
            note = Markup("<sup>†</sup>") if cell["excluded"] else ""
            cells.append(Markup('<td class="fam-mean" data-family="{}" data-value="{}">{}</td><td>{}</td>'
                                '<td data-value="{}">{}</td><td title="{}">{}{}</td>').format(
                f, cell["mean"], _num(cell["mean"]), interval, cell["count"], cell["count"],
                f"{cell['excluded']} unreliable model(s) left out" if cell["excluded"] else "", _num(cell["best"]),
                note))
        body.append(Markup('<tr data-metric="{}">').format(row["column"]) + Markup("").join(cells) + Markup("</tr>"))
    return (f'<p class="sub">Mean of each family over its models with a 95% percentile-bootstrap interval over '
            f'those models (2,000 resamples; with few models it is rough — n says how many), and the best model '
            f'(↑ higher is better, ↓ lower is better). † unreliable robust accuracy left out of "best".</p>'
            f'<div class="scroll"><table class="sortable" id="family-summary"><thead><tr><th class="text">task</th>'
            f'<th class="text">dataset</th><th class="text">metric</th>{head}</tr></thead><tbody>'
            f'{"".join(body)}</tbody></table></div>')


def pairs_table(results: list[PairResult]) -> str:
    body = []
    for r in results:
        c = r.comparison
        verdict = f"{r.pair.first if c.diff > 0 else r.pair.second} better" if r.significant() else "no significant difference"
        body.append(Markup(
            '<tr data-first="{}" data-second="{}" data-metric="{}" class="{}"><td class="text">{}</td>'
            '<td class="text">{}</td><td class="text">{}</td><td class="text">{} <span class="fam fam-{}">{}</span></td>'
            '<td class="text">{} <span class="fam fam-{}">{}</span></td><td class="text">{}</td><td>{}</td><td>{}</td>'
            '<td data-value="{}">{}</td><td>{} to {}</td><td data-value="{}">{}</td><td data-value="{}">{}</td>'
            '<td>{}</td><td class="text">{}{}</td></tr>').format(
            r.pair.first, r.pair.second, r.column, "significant" if r.significant() else "tied",
            r.task, r.dataset, r.column, r.pair.first, r.families[0], r.families[0], r.pair.second, r.families[1],
            r.families[1], r.pair.why, _num(r.accuracies[0]), _num(r.accuracies[1]), c.diff, points(c.diff),
            points(c.ci_low), points(c.ci_high), c.p_value, format_p(c.p_value), r.p_holm, format_p(r.p_holm), c.n,
            verdict, f" ({r.caveat})" if r.caveat else ""))
    return ('<p class="sub">Each pair on the samples both models were scored on: accuracy of the first minus the '
            'second in percentage points, Newcombe\'s paired 95% interval, the exact McNemar p-value and the same '
            'Holm-adjusted over every comparison here. A difference counts only when the interval excludes 0 and '
            'the adjusted p is below 0.05.</p><div class="scroll"><table class="sortable" id="matched-pairs"><thead>'
            '<tr><th class="text">task</th><th class="text">dataset</th><th class="text">metric</th>'
            '<th class="text">first</th><th class="text">second</th><th class="text">matched on</th>'
            '<th>first acc</th><th>second acc</th><th>difference (points)</th><th>95% CI</th><th>McNemar p</th>'
            '<th>Holm p</th><th>n</th><th class="text">verdict</th></tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")
