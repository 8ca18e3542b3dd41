"""Small inline-SVG charts for the self-contained report: line chart, heatmap, scatter.

Inline SVG keeps the report one file with no scripts or network; colours follow the model family.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

FAMILY_COLOURS = {"cnn": "#1f77b4", "transformer": "#d62728", "hybrid": "#2ca02c"}
FAMILY_DASH = {"cnn": "", "transformer": "6 3", "hybrid": "2 2"}
WIDTH, HEIGHT = 720, 360
LEFT, RIGHT, TOP, BOTTOM = 60, 250, 20, 50


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / count))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= count:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _axes(x0: float, x1: float, y0: float, y1: float, x_label: str, y_label: str,
          x_ticks: Sequence[tuple[float, str]] | None = None) -> tuple[list[str], object, object]:
    sx = _scale(x0, x1, LEFT, WIDTH - RIGHT)
    sy = _scale(y0, y1, HEIGHT - BOTTOM, TOP)
    parts = [f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>']
    for value, text in x_ticks or [(t, f"{t:g}") for t in _ticks(x0, x1)]:
        parts.append(f'<text x="{sx(value):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(text)}</text>')
    for value in _ticks(y0, y1):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">{value:g}</text>')
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 10}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    return parts, sx, sy


def _svg(parts: list[str], label: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(label)}" font-size="11" font-family="sans-serif">'
            + "".join(parts) + "</svg>")


def line_chart(series: dict[str, tuple[str, list[tuple[float, float]]]], x_label: str, y_label: str,
               title: str, x_tick_labels: Sequence[tuple[float, str]] | None = None,
               y_range: tuple[float, float] | None = None) -> str:
    """``series``: name -> (family, [(x, y), ...]); one line per model, coloured and dashed by family."""
    points = [p for _, pts in series.values() for p in pts]
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    y0, y1 = y_range or (min(ys), max(ys))
    parts, sx, sy = _axes(min(xs), max(xs), y0, y1, x_label, y_label, x_tick_labels)
    for row, (name, (family, pts)) in enumerate(sorted(series.items())):
        colour, dash = FAMILY_COLOURS.get(family, "#7f7f7f"), FAMILY_DASH.get(family, "")
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(pts))
        parts.append(f'<polyline class="series" data-model="{escape(name)}" data-family="{escape(family)}" '
                     f'points="{path}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        for x, y in pts:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                         f'<title>{escape(name)}: {y:.4f}</title></circle>')
        ly = TOP + 14 * row + 8
        parts.append(f'<line x1="{WIDTH - RIGHT + 10}" x2="{WIDTH - RIGHT + 30}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                     f'stroke-width="2" stroke-dasharray="{dash}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 34}" y="{ly + 4}">{escape(name)} ({escape(family)})</text>')
    return _svg(parts, title)


def scatter(points: list[tuple[str, str, float, float]], x_label: str, y_label: str, title: str,
            frontier: bool = False, log_x: bool = False) -> str:
    """``points``: (name, family, x, y). With ``frontier``, draw the Pareto front (higher x and y better)."""
    if not points:
        return ""
    tx = (lambda v: math.log10(max(v, 1e-12))) if log_x else (lambda v: v)
    xs, ys = [tx(p[2]) for p in points], [p[3] for p in points]
    pad_x, pad_y = (max(xs) - min(xs)) * 0.05 or 0.5, (max(ys) - min(ys)) * 0.05 or 0.05
    ticks = [(t, f"{10 ** t:.3g}") for t in _ticks(min(xs) - pad_x, max(xs) + pad_x)] if log_x else None
    parts, sx, sy = _axes(min(xs) - pad_x, max(xs) + pad_x, min(ys) - pad_y, max(ys) + pad_y, x_label, y_label, ticks)
    if frontier:
        front, best_y = [], -math.inf
        for name, family, x, y in sorted(points, key=lambda p: -p[2]):
            if y > best_y:
                front.append((tx(x), y))
                best_y = y
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(front))
        parts.append(f'<polyline class="pareto" points="{path}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
    for name, family, x, y in points:
        colour = FAMILY_COLOURS.get(family, "#7f7f7f")
        parts.append(f'<circle class="point" data-model="{escape(name)}" data-family="{escape(family)}" '
                     f'cx="{sx(tx(x)):.1f}" cy="{sy(y):.1f}" r="5" fill="{colour}"><title>{escape(name)}: '
                     f'{x:.4g}, {y:.4f}</title></circle>')
        parts.append(f'<text x="{sx(tx(x)) + 7:.1f}" y="{sy(y) - 6:.1f}">{escape(name)}</text>')
    for row, (family, colour) in enumerate(FAMILY_COLOURS.items()):
        ly = TOP + 14 * row + 8
        parts.append(f'<circle cx="{WIDTH - RIGHT + 20}" cy="{ly}" r="5" fill="{colour}"/>'
                     f'<text x="{WIDTH - RIGHT + 30}" y="{ly + 4}">{family}</text>')
    return _svg(parts, title)


def heatmap(values: list[list[float | None]], row_labels: list[str], col_labels: list[str], title: str,
            low: float = 0.0, high: float = 1.0) -> str:
    """A matrix of values in [low, high] as coloured cells (white = low, dark blue = high), numbers inside."""
    cell_w, cell_h, left, top = 52, 22, 150, 30
    width, height = left + cell_w * len(col_labels) + 10, top + cell_h * len(row_labels) + 10
    parts = []
    for j, label in enumerate(col_labels):
        parts.append(f'<text x="{left + cell_w * j + cell_w / 2}" y="{top - 8}" text-anchor="middle">{escape(label)}</text>')
    for i, label in enumerate(row_labels):
        y = top + cell_h * i
        parts.append(f'<text x="{left - 6}" y="{y + cell_h / 2 + 4}" text-anchor="end">{escape(label)}</text>')
        for j, value in enumerate(values[i]):
            x = left + cell_w * j
            if value is None or (isinstance(value, float) and math.isnan(value)):
                parts.append(f'<rect x="{x}" y="{y}" width="{cell_w - 1}" height="{cell_h - 1}" fill="#eee"/>')
                continue
            t = min(1.0, max(0.0, (value - low) / ((high - low) or 1)))
            shade = (int(247 - t * 239), int(251 - t * 203), int(255 - t * 148))
            ink = "#fff" if t > 0.55 else "#000"
            parts.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell_w - 1}" height="{cell_h - 1}" '
                         f'fill="rgb{shade}"><title>{escape(row_labels[i])} / {escape(col_labels[j])}: {value:.4f}'
                         f'</title></rect><text x="{x + cell_w / 2}" y="{y + cell_h / 2 + 4}" text-anchor="middle" '
                         f'fill="{ink}">{value:.2f}</text>')
    return _svg(parts, title, width, height)
