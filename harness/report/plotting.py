"""Figures drawn with matplotlib and inlined as SVG, so a report stays one file that needs no network.

Every figure module of the report draws through here: one backend, one family palette, one way to inline.
Hover values come from SVG ``<title>`` elements (``hover_titles``), which browsers show as tooltips.
"""
from __future__ import annotations

import io
import re
from typing import Sequence

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


def new_figure(width: float = 7.2, height: float = 3.6, layout: str | None = "constrained") -> tuple[Figure, plt.Axes]:
    """A figure and its axes, sized in inches (7.2 x 3.6 fits the report's column). ``layout=None`` skips
    the constrained layout (a third of the drawing time) for pages with many figures and fixed margins."""
    figure, axes = plt.subplots(figsize=(width, height), layout=layout)
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
