"""X-Y charts (lines, markers, a legend) written as SVG text directly, without matplotlib.

A published site draws a Pareto scatter and a line chart per suite and model group; through matplotlib's layout
and SVG writer each took 0.3-0.7 s, 12 of a 27 s publish (bench_publish.py). Here a chart is a few hundred
elements of text. Axis ticks still come from matplotlib's tick locators (pure arithmetic, no drawing), so the
numbers on the axes are the ones matplotlib would pick. Hover values are SVG ``<title>`` elements inside
``<g id="hover-N">`` groups, as everywhere in the report.
"""
from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from typing import Sequence

from matplotlib.ticker import LogLocator, MaxNLocator

CHAR_W = 6.0  # px: a 10 px sans-serif character, roughly
DASHES = {"-": "", "--": "6 3", ":": "1.5 2.5"}


@dataclass
class Series:
    """Points drawn as one group: a line through them (``dash`` "-", "--", ":"; None for none) and markers
    ("o", "s", "^"; None for none). ``hover``: the group's tooltip (the group gets id ``hover-N``); ``gid``: a
    fixed id instead; ``annotation``: a label beside the first point."""

    points: Sequence[tuple[float, float]]
    colour: str
    marker: str | None = "o"
    dash: str | None = "-"
    marker_size: float = 4.0
    line_width: float = 1.8
    hover: str | None = None
    gid: str | None = None
    annotation: str | None = None


@dataclass
class LegendEntry:
    label: str
    colour: str
    marker: str | None = "o"
    dash: str | None = None


def xml_text(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def svg_start(width: float, height: float) -> str:
    """An inline ``<svg>`` opening tag: natural width, shrunk to fit narrow screens."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'style="width:{width:.0f}px;max-width:100%;height:auto" font-family="sans-serif" font-size="10">')


class _Axis:
    """Data to pixels along one axis, and its ticks (linear with 5% margins as matplotlib's, or log10)."""

    def __init__(self, values: Sequence[float], start: float, end: float, log: bool = False,
                 fixed: tuple[float, float] | None = None, ticks: Sequence[tuple[float, str]] | None = None) -> None:
        self.log, self.start, self.end = log, start, end
        values = [v for v in values if math.isfinite(v) and (v > 0 or not log)] or [1.0]
        low, high = fixed or (min(values), max(values))
        if log:
            low, high = math.log10(low), math.log10(high)
        if high == low:  # one value: a range around it
            half = 0.5 if log or low == 0 else abs(low) * 0.05
            low, high = low - half, high + half
        if not fixed:
            pad = 0.05 * (high - low)
            low, high = low - pad, high + pad
        self.low, self.high = low, high
        if ticks is not None:
            self.ticks = [(v, text) for v, text in ticks if low <= self._scaled(v) <= high]
        elif log:
            found = LogLocator(base=10, subs=(1.0,) if high - low > 1.5 else (1.0, 2.0, 5.0)).tick_values(
                10 ** low, 10 ** high)
            self.ticks = [(float(v), _number(v)) for v in found if low <= math.log10(v) <= high]
        else:
            found = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
            self.ticks = [(float(v), _number(v)) for v in found if low - 1e-12 <= v <= high + 1e-12]

    def _scaled(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def __call__(self, value: float) -> float:
        share = (self._scaled(value) - self.low) / (self.high - self.low)
        return self.start + share * (self.end - self.start)


def _number(value: float) -> str:
    """A tick label: 0.25, 1200, 5e8 (no "+0" exponents), never "-0"."""
    text = re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{value:.6g}")
    return "0" if text == "-0" else text


def _marker(kind: str | None, x: float, y: float, size: float, colour: str) -> str:
    r = size / 2
    if kind == "s":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{size:.1f}" height="{size:.1f}" fill="{colour}"/>'
    if kind == "^":
        return (f'<polygon points="{x:.1f},{y - r * 1.15:.1f} {x - r:.1f},{y + r * 0.85:.1f} '
                f'{x + r:.1f},{y + r * 0.85:.1f}" fill="{colour}"/>')
    if kind == "o":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colour}"/>'
    return ""


def _stroke(colour: str, width: float, dash: str | None) -> str:
    pattern = DASHES.get(dash or "-", "")
    return (f'fill="none" stroke="{colour}" stroke-width="{width}"'
            + (f' stroke-dasharray="{pattern}"' if pattern else ""))


def _unbroken(pixels: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """The runs of two or more consecutive points (None: a gap, where a line breaks)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for pixel in pixels:
        if pixel is not None:
            runs[-1].append(pixel)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if len(run) > 1]


def xy_chart(series: Sequence[Series], x_label: str, y_label: str, title: str, legend: Sequence[LegendEntry] = (),
             log_x: bool = False, x_ticks: Sequence[tuple[float, str]] | None = None,
             y_range: tuple[float, float] | None = None, grid: str = "both", height: float = 345,
             x_tick_angle: float = 0.0, x_range: tuple[float, float] | None = None) -> str:
    """An inline ``<svg>`` chart of ``series`` in draw order (later on top), the legend right of the plot.
    ``grid``: "both", "y" or "none". ``x_tick_angle``: x tick labels turned that many degrees (long labels).
    A non-finite y leaves a gap: the line breaks there and the point has no marker."""
    legend_w = 24 + CHAR_W * 0.85 * max((len(e.label) for e in legend), default=0) if legend else 0
    width = 690.0
    turned = math.sin(math.radians(x_tick_angle)) * CHAR_W * 0.8 * max((len(t) for _, t in x_ticks or ()), default=0)
    left, right, bottom = 62.0, width - 12 - legend_w, height - 42 - turned
    title_lines = textwrap.wrap(title, max(40, int((right - left) / CHAR_W)))
    top = 12 + 14 * len(title_lines)
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x_axis = _Axis(xs, left, right, log=log_x, fixed=x_range, ticks=x_ticks)
    y_axis = _Axis(ys, bottom, top, fixed=y_range)
    parts = [svg_start(width, height)]
    parts += [f'<text x="{(left + right) / 2:.0f}" y="{14 * (k + 1)}" text-anchor="middle" font-size="11">'
              f'{xml_text(line)}</text>' for k, line in enumerate(title_lines)]
    for value, text in x_axis.ticks:
        x = x_axis(value)
        if grid == "both":
            parts.append(f'<line x1="{x:.1f}" y1="{top:.0f}" x2="{x:.1f}" y2="{bottom:.0f}" stroke="#eee"/>')
        label = (f'text-anchor="end" font-size="8" transform="rotate({-x_tick_angle:g} {x:.1f} {bottom + 12:.0f})"'
                 if x_tick_angle else 'text-anchor="middle"')
        parts.append(f'<line x1="{x:.1f}" y1="{bottom:.0f}" x2="{x:.1f}" y2="{bottom + 4:.0f}" stroke="#333"/>'
                     f'<text x="{x:.1f}" y="{bottom + 12 if x_tick_angle else bottom + 15:.0f}" {label}>'
                     f'{xml_text(text)}</text>')
    for value, text in y_axis.ticks:
        y = y_axis(value)
        if grid in ("both", "y"):
            parts.append(f'<line x1="{left:.0f}" y1="{y:.1f}" x2="{right:.0f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<line x1="{left - 4:.0f}" y1="{y:.1f}" x2="{left:.0f}" y2="{y:.1f}" stroke="#333"/>'
                     f'<text x="{left - 7:.0f}" y="{y + 3.5:.1f}" text-anchor="end">{xml_text(text)}</text>')
    parts.append(f'<polyline points="{left:.0f},{top:.0f} {left:.0f},{bottom:.0f} {right:.0f},{bottom:.0f}" '
                 f'fill="none" stroke="#333"/>')
    parts.append(f'<text x="{(left + right) / 2:.0f}" y="{height - 8:.0f}" text-anchor="middle">'
                 f'{xml_text(x_label)}</text>')
    parts.append(f'<text x="14" y="{(top + bottom) / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(top + bottom) / 2:.0f})">{xml_text(y_label)}</text>')
    hovers = 0
    for s in series:
        placed = [(x_axis(x), y_axis(y)) if math.isfinite(y) else None for x, y in s.points]
        pixels = [p for p in placed if p is not None]
        if s.gid:
            group = f'<g id="{xml_text(s.gid)}">'
        elif s.hover is not None:
            group = f'<g id="hover-{hovers}"><title>{xml_text(s.hover)}</title>'
            hovers += 1
        else:
            group = "<g>"
        body = []
        for run in _unbroken(placed) if s.dash else ():
            body.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in run)}" '
                        f'{_stroke(s.colour, s.line_width, s.dash)}/>')
        body += [_marker(s.marker, x, y, s.marker_size, s.colour) for x, y in pixels]
        parts.append(group + "".join(body) + "</g>")
        if s.annotation and pixels:
            x, y = pixels[0]
            parts.append(f'<text x="{x + 6:.1f}" y="{y - 5:.1f}" font-size="9">{xml_text(s.annotation)}</text>')
    for k, entry in enumerate(legend):
        x, y = right + 16, top + 6 + 15 * k
        sample = (f'<line x1="{x:.0f}" y1="{y:.0f}" x2="{x + 18:.0f}" y2="{y:.0f}" '
                  f'{_stroke(entry.colour, 1.8, entry.dash)}/>' if entry.dash else "")
        parts.append(sample + _marker(entry.marker, x + 9, y, 6, entry.colour)
                     + f'<text x="{x + 24:.0f}" y="{y + 3.5:.1f}" font-size="9">{xml_text(entry.label)}</text>')
    return "".join(parts) + "</svg>"
