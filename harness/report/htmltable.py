"""A published table as an HTML ``<table>``: every cell carries its exact value, interval and n as data
attributes (what the page's script sorts on and what tests read back), and shows them as text.

Built in Python rather than with a template macro per cell: a site has tens of thousands of cells.
"""
from __future__ import annotations

from markupsafe import Markup, escape

from harness.report.datatable import Cell, Column, Table, format_value


def _attr(value: object) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(escape(str(value)))


def heading_html(column: Column) -> str:
    title = column.description
    if column.direction in ("higher", "lower"):
        title = (f"{title} — " if title else "") + f"{column.direction} is better"
    arrow = {"higher": " ↑", "lower": " ↓"}.get(column.direction, "")
    marks = f'<sup class="caveat">{escape(column.marks)}</sup>' if column.marks else ""
    title_attr = f' title="{escape(title)}"' if title else ""
    kind = "num" if column.numeric else "text"
    return f'<th data-col="{escape(column.key)}" class="{kind}"{title_attr}>{escape(column.label)}{arrow}{marks}</th>'


def cell_html(cell: Cell, column: Column, anchor: str = "") -> str:
    classes = ("num" if column.numeric else "text") + (" best" if cell.best else "") + (" tied" if cell.tied else "")
    attrs = f' data-col="{escape(column.key)}" class="{classes}" data-value="{_attr(cell.value)}"'
    inner = (f'<a href="{escape(cell.href)}">{escape(cell.text)}</a>' if cell.href
             else f'<span class="v">{escape(cell.text)}</span>')
    if cell.ci_low is not None and cell.ci_high is not None:
        attrs += f' data-ci-low="{_attr(cell.ci_low)}" data-ci-high="{_attr(cell.ci_high)}"'
        if column.numeric and cell.value is not None:
            inner += f'<span class="ci"> [{format_value(cell.ci_low)}, {format_value(cell.ci_high)}]</span>'
    if cell.n is not None:
        attrs += f' data-n="{cell.n}" title="n = {cell.n}"'
    if cell.best:
        inner += '<span class="mark" title="best">★</span>'
    elif cell.tied:
        inner += '<span class="mark" title="statistically tied with the best">=</span>'
    if cell.marks:
        inner += f'<sup class="caveat">{escape(cell.marks)}</sup>'
    if anchor:
        inner += f' <a class="permalink" href="#{escape(anchor)}" title="link to this row">¶</a>'
    return f"<td{attrs}>{inner}</td>"


def table_html(table: Table, classes: str = "data") -> Markup:
    """``classes``: "data" is what the site's script sorts and filters; add "sortable" for the run report's."""
    head = "".join(heading_html(c) for c in table.columns)
    body = []
    for row in table.rows:
        attrs = (f' id="{escape(row.anchor)}"' if row.anchor else "") + "".join(
            f' data-{escape(k)}="{escape(v)}"' for k, v in row.attrs.items())
        cells = "".join(cell_html(row.cells.get(c.key, Cell()), c, row.anchor if i == 0 else "")
                        for i, c in enumerate(table.columns))
        body.append(f"<tr{attrs}>{cells}</tr>")
    return Markup(f'<table class="{escape(classes)}" id="table-{escape(table.id)}" data-table="{escape(table.id)}">'
                  f'<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody></table>")
