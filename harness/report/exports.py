"""A published table as CSV, JSON, Markdown and LaTeX.

CSV and JSON carry full-precision values with their 95% interval and n (for people who filter and plot
themselves); Markdown and LaTeX show what the page shows: 4 decimals, the interval in brackets, best and
tied entries in bold with ★ / =, caveat symbols and their footnotes. Every export names its snapshot
(suite, run ids, time of publishing).
"""
from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, Callable

from harness.report.datatable import TIE_RULE, Cell, Table

FORMATS = {"csv": "csv", "json": "json", "md": "md", "latex": "tex"}  # format -> file extension


def _has(table: Table, key: str, attribute: str) -> bool:
    return any(getattr(r.cells.get(key, Cell()), attribute) is not None for r in table.rows)


def flat_columns(table: Table) -> list[tuple[str, str, str]]:
    """(header, column key, cell attribute) for the flat exports: each number with its interval and n."""
    out = []
    for column in table.columns:
        out.append((column.key, column.key, "value"))
        if column.metric:
            out += [(f"{column.key} {a}", column.key, a) for a in ("ci_low", "ci_high", "n") if _has(table, column.key, a)]
    return out


def _caveat_words(row_cells: dict[str, Cell], table: Table) -> str:
    marks = sorted({m for c in row_cells.values() for m in c.marks} | {m for c in table.columns for m in c.marks})
    return "; ".join(f"{m} {table.caveats[m]}" for m in marks if m in table.caveats)


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = flat_columns(table)
    writer.writerow([h for h, _, _ in columns] + ["best", "tied", "caveats"])
    for row in table.rows:
        values = []
        for _, key, attribute in columns:
            value = getattr(row.cells.get(key, Cell()), attribute)
            values.append("" if value is None else repr(value) if isinstance(value, float) else value)
        best = [k for k, c in row.cells.items() if c.best]
        tied = [k for k, c in row.cells.items() if c.tied]
        writer.writerow(values + [" | ".join(best), " | ".join(tied), _caveat_words(row.cells, table)])
    return buffer.getvalue()


def to_records(table: Table) -> dict[str, Any]:
    rows = []
    for row in table.rows:
        out: dict[str, Any] = {}
        for column in table.columns:
            cell = row.cells.get(column.key, Cell())
            if not column.metric:
                out[column.key] = cell.value
                continue
            out[column.key] = {"value": cell.value, "ci_low": cell.ci_low, "ci_high": cell.ci_high, "n": cell.n,
                               "best": cell.best, "tied": cell.tied,
                               "caveats": [table.caveats[m] for m in cell.marks if m in table.caveats]}
        out["caveats"] = _caveat_words(row.cells, table)
        rows.append(out)
    columns = [{"key": c.key, "numeric": c.numeric, "metric": c.metric, "direction": c.direction, "unit": c.unit,
                "description": c.description} for c in table.columns]
    return {"table": table.id, "title": table.title, "meta": table.meta, "tie_rule": TIE_RULE,
            "caveats": table.caveats, "columns": columns, "rows": rows}


def to_json(table: Table) -> str:
    # one line: json's fast C encoder runs only without indentation
    return json.dumps(to_records(table), default=str, ensure_ascii=False, separators=(",", ":")) + "\n"


def cell_text(cell: Cell, metric: bool) -> str:
    """What Markdown and LaTeX show in a cell, before their own escaping and emphasis."""
    if not metric or cell.value is None:
        return f"{cell.text}{cell.marks}"
    text = cell.text
    if cell.ci_low is not None and cell.ci_high is not None:
        text += f" [{cell.ci_low:.4f}, {cell.ci_high:.4f}]"
    return text + (" ★" if cell.best else " =" if cell.tied else "") + cell.marks


def _text_rows(table: Table, escape: Callable[[str], str], emphasis: str) -> list[list[str]]:
    """Each row's cells as Markdown or LaTeX show them: escaped, best and tied entries emphasised."""
    out = []
    for row in table.rows:
        cells = []
        for column in table.columns:
            cell = row.cells.get(column.key, Cell())
            text = escape(cell_text(cell, column.metric))
            cells.append(emphasis.format(text) if cell.best or cell.tied else text)
        out.append(cells)
    return out


def _caption(table: Table) -> list[str]:
    lines = [f"{m} {text}" for m, text in table.caveats.items()]
    snapshot = table.meta.get("snapshot")
    if snapshot:
        lines.append(f"snapshot: {snapshot}")
    return [TIE_RULE, "Numbers: value [95% interval]; n per row.", *lines]


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#])")


def markdown_escape(text: str) -> str:
    """Text as Markdown shows it literally: emphasis, links, code, table pipes and HTML (``<script>`` in a
    model name) backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def to_markdown(table: Table) -> str:
    escape = markdown_escape

    headers = [c.label + (c.marks and f" {c.marks}") for c in table.columns]
    lines = [f"**{escape(table.title)}**", "", "| " + " | ".join(escape(h) for h in headers) + " |",
             "|" + "|".join("---:" if c.numeric else ":---" for c in table.columns) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in _text_rows(table, escape, "**{}**")]
    lines.append("")
    lines += [escape(line) + "  " for line in _caption(table)]
    return "\n".join(lines).rstrip() + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
                  "★": r"$\star$", "†": r"$\dagger$", "‡": r"$\ddagger$", "§": r"\S{}", "–": "--", "≥": r"$\geq$"}


def latex_escape(text: str) -> str:
    """Text as LaTeX typesets it literally (a hyphen before a hyphen gets ``{}`` so ``--`` stays two)."""
    return "".join("-{}" if ch == "-" and text[i + 1:i + 2] == "-" else _LATEX_SPECIAL.get(ch, ch)
                   for i, ch in enumerate(text))


def to_latex(table: Table) -> str:
    """A booktabs tabular inside a table float (needs \\usepackage{booktabs})."""
    spec = "".join("r" if c.numeric else "l" for c in table.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c.label + c.marks) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(cells) + r" \\" for cells in _text_rows(table, latex_escape, r"\textbf{{{}}}")]
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{{latex_escape(table.title)}. {latex_escape(' '.join(_caption(table)))}}}",
              rf"\label{{tab:{table.id}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def export(table: Table, fmt: str) -> str:
    return {"csv": to_csv, "json": to_json, "md": to_markdown, "latex": to_latex}[fmt](table)
