"""Figures inlined as SVG, so a report stays one file that needs no network: scatters, line charts and heatmaps
written as SVG directly (a site draws hundreds), the rest drawn with matplotlib.

Every figure module of the report draws through here: one backend, one family palette, one way to inline.
Hover values come from SVG ``<title>`` elements (``hover_titles``), which browsers show as tooltips.
"""
from __future__ import annotations

import io
import re
import textwrap
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures are only ever written as SVG
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from harness.report.svg_chart import LegendEntry, Series, svg_start, xml_text, xy_chart  # noqa: E402

FAMILY_COLOURS = {"cnn": "#1f77b4", "transformer": "#d62728", "hybrid": "#2ca02c"}
FAMILY_MARKERS = {"cnn": "o", "transformer": "s", "hybrid": "^"}
FAMILY_LINESTYLES = {"cnn": "-", "transformer": "--", "hybrid": ":"}
OTHER_COLOUR = "#7f7f7f"

plt.rcParams.update({"svg.fonttype": "none",  # text stays text: selectable, searchable, small
                     "svg.hashsalt": "visionbench",  # stable ids: the same figure gives the same bytes
                     "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def family_colour(family: str | None) -> str:
    return FAMILY_COLOURS.get(family or "", OTHER_COLOUR)


def new_figure(width: float = 7.2, height: float = 3.6, ncols: int = 1,
               layout: str | None = "constrained") -> tuple[Figure, Any]:
    """A figure and its axes (an array of ``ncols`` side by side when more than one), sized in inches (7.2 x 3.6
    fits the report's column). ``layout=None`` skips the constrained layout (a third of the drawing time) for
    pages with many figures and fixed margins."""
    figure, axes = plt.subplots(1, ncols, figsize=(width, height), layout=layout)
    return figure, axes


def inline_svg(figure: Figure, hover_titles: Sequence[tuple[object, str]] = ()) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no fixed pixel size), then closed.

    ``hover_titles``: (artist, text) pairs; each artist gets a gid and its SVG group a ``<title>`` tooltip.
    """
    for index, (artist, _) in enumerate(hover_titles):
        artist.set_gid(f"hover-{index}")
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)  # RDF boilerplate with URLs
    # natural width (a small figure stays small), shrunk to fit narrow screens
    svg = re.sub(r'(<svg[^>]*?) width="([^"]*)" height="[^"]*"', r'\1 style="width:\2;max-width:100%;height:auto"',
                 svg, count=1)
    for index, (_, text) in enumerate(hover_titles):
        svg = svg.replace(f'<g id="hover-{index}">', f'<g id="hover-{index}"><title>{xml_text(text)}</title>', 1)
    return svg


def line_chart(series: dict[str, tuple[str, list[tuple[float, float]]]], x_label: str, y_label: str, title: str,
               x_tick_labels: Sequence[tuple[float, str]] | None = None,
               y_range: tuple[float, float] | None = None) -> str:
    """``series``: name -> (family, [(x, y), ...]); one line per series, coloured and dashed by family; hovering
    a line shows its values. Written as SVG directly (``svg_chart``)."""
    if not any(points for _, points in series.values()):
        return ""
    labels = dict(x_tick_labels or ())
    lines, legend = [], []
    for name, (family, points) in sorted(series.items()):
        points = sorted(points)
        colour, marker = family_colour(family), FAMILY_MARKERS.get(family, "o")
        dash = FAMILY_LINESTYLES.get(family, "-")
        values = ", ".join(f"{labels.get(x, f'{x:g}')}: {y:.4f}" for x, y in points)
        lines.append(Series(points, colour, marker, dash, hover=f"{name} ({family}) — {values}"))
        legend.append(LegendEntry(f"{name} ({family})", colour, marker, dash))
    return xy_chart(lines, x_label, y_label, title, legend, x_ticks=x_tick_labels, y_range=y_range, grid="y",
                    height=max(345, 40 + 15 * len(series) + 30))


def pareto_front(points: Sequence[tuple[float, float]], x_higher: bool = True) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (y higher is better; x higher or lower), sorted by x."""
    ordered = sorted(points, key=lambda p: (-p[0] if x_higher else p[0], -p[1]))
    front, best_y = [], -float("inf")
    for x, y in ordered:
        if y > best_y:
            front.append((x, y))
            best_y = y
    return sorted(front)


def scatter(points: Sequence[tuple[str, str, float, float]], x_label: str, y_label: str, title: str,
            frontier: str | None = None, log_x: bool = False) -> str:
    """``points``: (name, family, x, y), coloured by family, hover shows the values. With ``frontier``
    ("higher" or "lower": which x is better; higher y is always better), the Pareto front is drawn dashed
    (SVG group id ``pareto``). Written as SVG directly (``svg_chart``)."""
    if not points:
        return ""
    drawn = []
    if frontier:
        front = pareto_front([(x, y) for _, _, x, y in points], x_higher=frontier == "higher")
        drawn.append(Series(front, "#999", marker=None, dash="--", line_width=1, gid="pareto"))
    for name, family, x, y in points:
        drawn.append(Series([(x, y)], family_colour(family), FAMILY_MARKERS.get(family, "o"), dash=None,
                            marker_size=7, annotation=name,
                            hover=f"{name} ({family}): {x_label.split(' (')[0]} {x:.4g}, {y_label} {y:.4f}"))
    families = dict.fromkeys(family for _, family, _, _ in points)
    legend = [LegendEntry(f, family_colour(f), FAMILY_MARKERS.get(f, "o")) for f in families]
    return xy_chart(drawn, x_label, y_label, title, legend, log_x=log_x)


def heatmap(values: list[list[float | None]], row_labels: list[str], col_labels: list[str], title: str,
            low: float = 0.0, high: float = 1.0) -> str:
    """A matrix of values in [low, high] as coloured cells (white = low, dark blue = high: matplotlib's Blues),
    numbers inside, missing cells grey; hovering a cell shows its row, column and value.

    Written as SVG directly, not through matplotlib: a site draws one per model and suite (300 for 50 models
    x 6 suites), and matplotlib's layout and SVG writer took 0.17 s each, 52 of a publish's 64 s."""
    from matplotlib.colors import to_hex

    colours = plt.get_cmap("Blues")
    cell_w, cell_h, char_w = 48, 20, 6.2  # px; char_w: a 10 px sans-serif character, roughly
    diagonal = [0.72 * char_w * len(label) for label in col_labels]  # column labels run down-left at 45 degrees
    left = max(12 + char_w * max((len(label) for label in row_labels), default=0),
               (diagonal[0] if diagonal else 0) - cell_w / 2 + 8)  # the first column's label stays on the page
    bottom = 16 + max(diagonal, default=0)
    title_lines = textwrap.wrap(title, max(30, int((left + cell_w * len(col_labels)) / char_w)))
    top = 8 + 14 * len(title_lines)
    width, height = left + cell_w * len(col_labels) + 12, top + cell_h * len(row_labels) + bottom
    parts = [svg_start(width, height)]
    parts += [f'<text x="{width / 2:.0f}" y="{14 * (k + 1)}" text-anchor="middle">{xml_text(line)}</text>'
              for k, line in enumerate(title_lines)]
    hovers = 0
    for i, row in enumerate(values):
        y = top + i * cell_h
        parts.append(f'<text x="{left - 6:.0f}" y="{y + cell_h / 2 + 3.5:.1f}" text-anchor="end">'
                     f'{xml_text(row_labels[i])}</text>')
        for j, value in enumerate(row):
            x = left + j * cell_w
            missing = value is None or value != value
            rect = (f'<rect x="{x:.0f}" y="{y:.0f}" width="{cell_w}" height="{cell_h}" stroke="white" '
                    f'fill="{"#eeeeee" if missing else ""}')
            if missing:
                parts.append(rect + '"/>')
                continue
            share = min(1.0, max(0.0, (value - low) / ((high - low) or 1)))
            text_colour = "white" if share > 0.55 else "black"
            parts.append(f'<g id="hover-{hovers}"><title>{xml_text(f"{row_labels[i]} / {col_labels[j]}: {value:.4f}")}'
                         f'</title>{rect}{to_hex(colours(share))}"/><text x="{x + cell_w / 2:.0f}" '
                         f'y="{y + cell_h / 2 + 3.5:.1f}" text-anchor="middle" fill="{text_colour}">{value:.2f}'
                         f'</text></g>')
            hovers += 1
    label_y = top + cell_h * len(row_labels) + 10
    parts += [f'<text x="{left + (j + 0.5) * cell_w:.0f}" y="{label_y:.0f}" text-anchor="end" '
              f'transform="rotate(-45 {left + (j + 0.5) * cell_w:.0f} {label_y:.0f})">{xml_text(label)}</text>'
              for j, label in enumerate(col_labels)]
    return "".join(parts) + "</svg>"

