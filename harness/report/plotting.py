"""Figures drawn with matplotlib and inlined as SVG, so a report stays one file that needs no network.

Every figure module of the report draws through here: one backend, one family palette, one way to inline.
Hover values come from SVG ``<title>`` elements (``hover_titles``), which browsers show as tooltips.
"""
from __future__ import annotations

import io
import re
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures are only ever written as SVG
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

FAMILY_COLOURS = {"cnn": "#1f77b4", "transformer": "#d62728", "hybrid": "#2ca02c"}
FAMILY_MARKERS = {"cnn": "o", "transformer": "s", "hybrid": "^"}
FAMILY_LINESTYLES = {"cnn": "-", "transformer": "--", "hybrid": ":"}
OTHER_COLOUR = "#7f7f7f"

plt.rcParams.update({"svg.fonttype": "none",  # text stays text: selectable, searchable, small
                     "svg.hashsalt": "visionbench",  # stable ids: the same figure gives the same bytes
                     "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def family_colour(family: str | None) -> str:
    return FAMILY_COLOURS.get(family or "", OTHER_COLOUR)


def new_figure(width: float = 7.2, height: float = 3.6, ncols: int = 1) -> tuple[Figure, Any]:
    """A figure and its axes (an array of ``ncols`` side by side when more than one), sized in inches
    (7.2 x 3.6 fits the report's column)."""
    figure, axes = plt.subplots(1, ncols, figsize=(width, height), layout="constrained")
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
    svg = re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r'\1 style="max-width:100%;height:auto"', svg, count=1)
    for index, (_, text) in enumerate(hover_titles):
        title = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        svg = svg.replace(f'<g id="hover-{index}">', f'<g id="hover-{index}"><title>{title}</title>', 1)
    return svg


def heatmap(values: Sequence[Sequence[float | None]], row_labels: Sequence[str], col_labels: Sequence[str],
            title: str, low: float = 0.0, high: float = 1.0, value_label: str = "") -> str:
    """A matrix of values in [low, high] as coloured cells (missing values grey), each cell's value on hover
    and, when the cells are wide enough, written inside. Returns the inline SVG."""
    import numpy as np
    from matplotlib.patches import Rectangle

    n_rows, n_cols = len(row_labels), len(col_labels)
    width = min(12.0, max(7.2, 3.0 + 0.45 * n_cols))  # the report's column, wider for many columns
    figure, axes = new_figure(width, 1.2 + 0.3 * n_rows + 0.06 * max(map(len, col_labels), default=0))
    cmap = plt.get_cmap("Blues")
    hover = []
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            missing = value is None or value != value
            t = 0.0 if missing else min(1.0, max(0.0, (float(value) - low) / ((high - low) or 1.0)))
            cell = Rectangle((j, i), 1, 1, facecolor="#e6e6e6" if missing else cmap(0.05 + 0.9 * t),
                             edgecolor="white", linewidth=0.8)
            axes.add_patch(cell)
            shown = "no value" if missing else f"{float(value):.4f}"
            hover.append((cell, f"{row_labels[i]} / {col_labels[j]}: {shown}"))
            if not missing and width / max(n_cols, 1) >= 0.4:
                axes.text(j + 0.5, i + 0.5, f"{float(value):.2f}", ha="center", va="center", fontsize=7,
                          color="white" if t > 0.55 else "black")
    axes.set_xlim(0, n_cols)
    axes.set_ylim(n_rows, 0)
    crowded = sum(map(len, col_labels)) * 0.08 > width - 3  # labels wider than their cells: slant them
    axes.set_xticks(np.arange(n_cols) + 0.5, list(col_labels), rotation=45 if crowded else 0,
                    ha="right" if crowded else "center")
    axes.set_yticks(np.arange(n_rows) + 0.5, list(row_labels))
    axes.tick_params(length=0)
    for side in ("left", "bottom"):
        axes.spines[side].set_visible(False)
    mappable = plt.cm.ScalarMappable(norm=matplotlib.colors.Normalize(low, high), cmap=cmap)
    figure.colorbar(mappable, ax=axes, fraction=0.03, pad=0.01, label=value_label)
    axes.set_title(title)
    return inline_svg(figure, hover)
