"""A small sortable HTML table of models x values, for the task sections' own tables (AP by object size,
per-class IoU / PQ); it uses the leaderboard page's styles and its click-to-sort script."""
from __future__ import annotations

from typing import Mapping, Sequence

from markupsafe import escape

from harness.report.tables import format_number


def model_table(models: Sequence[tuple[str, str]], columns: Sequence[tuple[str, str]],
                values: Mapping[tuple[str, str], float], caption: str = "") -> str:
    """One row per (model, family), one column per (key, heading); ``values[(model, key)]`` (missing: –)."""
    head = "".join(f"<th>{escape(heading)}</th>" for _, heading in columns)
    body = []
    for model, family in models:
        cells = []
        for key, _ in columns:
            value = values.get((model, key))
            data = "" if value is None or value != value else repr(float(value))
            cells.append(f'<td data-value="{data}">{format_number(value)}</td>')
        body.append(f'<tr data-model="{escape(model)}" data-family="{escape(family)}"><td class="text">{escape(model)}'
                    f'</td><td class="text" data-value="{escape(family)}"><span class="fam fam-{escape(family)}">'
                    f'{escape(family)}</span></td>{"".join(cells)}</tr>')
    caption_html = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="sortable">{caption_html}<thead><tr><th class="text">model</th>'
            f'<th class="text">family</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')
