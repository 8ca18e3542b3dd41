"""The statistical analysis shown on each suite page of the published site.

``suite_analysis`` is the one entry point the site calls. For now it gives the family summary (each camp's
mean and best per headline metric, unreliable robustness left out of "best"); matched pairs with McNemar
tests from the per-sample records, Pareto plots and a findings paragraph are to come through here too.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from markupsafe import escape

from harness.report.datatable import format_value
from harness.report.tables import family_summary, ok_rows


def suite_analysis(frame: pd.DataFrame, records_dir: Path | None) -> list[tuple[str, str]]:
    """(title, safe HTML) sections for one suite's latest results; ``records_dir`` holds the per-sample
    records (``<run>/samples``) when they were kept."""
    del records_dir  # the family summary needs only the stored numbers
    rows = ok_rows(frame)
    if rows.empty:
        return []
    families, summary = family_summary(rows)
    if not summary:
        return []
    head = "".join(f'<th>{escape(f)} mean</th><th>{escape(f)} best</th>' for f in families)
    body = []
    for entry in summary:
        cells = []
        for family in families:
            cell = entry.get(family)
            if not cell:
                cells.append("<td>–</td><td>–</td>")
                continue
            excluded = f' <span class="caveat" title="{cell["excluded"]} unreliable model(s) left out">†</span>' \
                if cell["excluded"] else ""
            cells.append(f'<td title="{cell["count"]} model(s)">{format_value(cell["mean"])}</td>'
                         f'<td>{format_value(cell["best"])}{excluded}</td>')
        arrow = "↑" if entry["higher"] else "↓"
        body.append(f'<tr><td class="text">{escape(entry["task"])}</td><td class="text">{escape(entry["dataset"])}'
                    f'</td><td class="text">{escape(entry["column"])} {arrow}</td>{"".join(cells)}</tr>')
    html = ('<p class="sub">Mean and best model of each camp per headline metric (↑ higher is better, ↓ lower). '
            'Means are plain averages over the camp\'s models, without intervals; † unreliable robust accuracy '
            'left out of "best".</p><div class="scroll"><table class="plain" id="family-summary"><thead><tr>'
            '<th class="text">task</th><th class="text">dataset</th><th class="text">metric</th>'
            f'{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')
    return [("CNN vs transformer: family summary", html)]
