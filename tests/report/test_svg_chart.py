"""The direct SVG charts: well-formed, points where their values say, matplotlib's ticks, hovers and escaping."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from matplotlib.ticker import MaxNLocator

from harness.report.plotting import line_chart, scatter
from harness.report.svg_chart import LegendEntry, Series, xy_chart

NS = "{http://www.w3.org/2000/svg}"


def _circles(svg: str) -> list[tuple[float, float]]:
    return [(float(c.get("cx")), float(c.get("cy"))) for c in ET.fromstring(svg).iter(f"{NS}circle")]


def test_points_land_where_their_values_say_on_linear_and_log_axes():
    svg = xy_chart([Series([(1.0, 0.2), (2.0, 0.4), (4.0, 0.8)], "#123456", dash=None)], "x", "y", "t")
    (x1, y1), (x2, y2), (x4, y4) = _circles(svg)
    assert x1 < x2 < x4 and y1 > y2 > y4  # y grows upwards
    assert abs((x4 - x2) - 2 * (x2 - x1)) < 0.2 and abs((y2 - y4) - 2 * (y1 - y2)) < 0.2  # linear
    log = xy_chart([Series([(10.0, 1.0), (100.0, 1.0), (1000.0, 1.0)], "#000", dash=None)], "x", "y", "t",
                   log_x=True)
    (a, _), (b, _), (c, _) = _circles(log)
    assert abs((b - a) - (c - b)) < 0.2  # decades evenly spaced
    assert ">100<" in log and ">1000<" in log


def test_linear_ticks_are_matplotlibs_and_a_fixed_range_holds():
    svg = xy_chart([Series([(0.0, 0.13), (7.0, 0.91)], "#000")], "x", "y", "t", y_range=(0.0, 1.0))
    labels = re.findall(r'text-anchor="end">([^<]+)</text>', svg)  # the y axis's tick labels
    assert labels == ["0", "0.2", "0.4", "0.6", "0.8", "1"]
    x_labels = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
    expected = [f"{v:g}" for v in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(-0.35, 7.35)
                if -0.35 <= v <= 7.35]  # matplotlib's 5% margins around 0..7
    assert [label for label in x_labels if label in expected] == expected


def test_hover_groups_titles_escaping_and_the_pareto_group():
    points = [("a<b>", "cnn", 100.0, 0.7), ("vit", "transformer", 50.0, 0.8), ("slow", "cnn", 40.0, 0.6)]
    svg = scatter(points, "images/s (model only)", "top-1", "acc & speed", frontier="higher")
    root = ET.fromstring(svg)  # well-formed: every name escaped
    hovers = [g for g in root.iter(f"{NS}g") if g.get("id", "").startswith("hover-")]
    assert [g.find(f"{NS}title").text for g in hovers] == [
        "a<b> (cnn): images/s 100, top-1 0.7000", "vit (transformer): images/s 50, top-1 0.8000",
        "slow (cnn): images/s 40, top-1 0.6000"]
    assert svg.count("<title>") == 3 and "a&lt;b&gt;" in svg and "acc &amp; speed" in svg
    (pareto,) = [g for g in root.iter(f"{NS}g") if g.get("id") == "pareto"]
    front = pareto.find(f"{NS}polyline").get("points").split()
    assert len(front) == 2  # a (fastest) and vit (most accurate); slow is beaten on both
    assert scatter([], "x", "y", "t") == ""


def test_line_chart_has_one_hoverable_line_per_series_and_a_legend_entry_each():
    series = {"m1": ("cnn", [(2.0, 0.5), (0.0, 0.9)]), "m2": ("transformer", [(0.0, 0.8), (2.0, 0.7)])}
    svg = line_chart(series, "eps", "accuracy", "curves", [(0.0, "0"), (2.0, "2/255")], (0.0, 1.0))
    root = ET.fromstring(svg)
    lines = [g for g in root.iter(f"{NS}g") if g.get("id", "").startswith("hover-")]
    assert [g.find(f"{NS}title").text for g in lines] == ["m1 (cnn) — 0: 0.9000, 2/255: 0.5000",
                                                          "m2 (transformer) — 0: 0.8000, 2/255: 0.7000"]
    assert all(g.find(f"{NS}polyline") is not None for g in lines)
    assert 'stroke-dasharray="6 3"' in svg  # the transformer's dashes
    assert ">m1 (cnn)<" in svg and ">m2 (transformer)<" in svg and ">2/255<" in svg
    legend = xy_chart([], "x", "y", "t", [LegendEntry("only", "#000")])
    assert ">only<" in legend and ET.fromstring(legend) is not None


def test_a_missing_value_breaks_the_line_and_turned_labels_keep_their_text():
    nan = float("nan")
    points = [(0.0, 0.5), (1.0, 0.6), (2.0, nan), (3.0, 0.7), (4.0, 0.8), (5.0, nan), (6.0, 0.9)]
    ticks = [(float(i), f"{i + 1} · 2026-12-0{i + 1} 10:00") for i in range(7)]
    svg = xy_chart([Series(points, "#000", hover="m")], "", "top1", "t", x_ticks=ticks, x_tick_angle=20,
                   x_range=(-0.5, 6.5))
    lines = [p.get("points").split() for p in ET.fromstring(svg).iter(f"{NS}polyline") if p.get("stroke") == "#000"]
    assert [len(line) for line in lines] == [2, 2]  # runs 1-2 and 4-5; run 7 stands alone (a marker only)
    assert len(_circles(svg)) == 5  # no marker where the value is missing
    turned = [t for t in ET.fromstring(svg).iter(f"{NS}text") if "rotate(-20" in (t.get("transform") or "")]
    assert [t.text for t in turned] == [label for _, label in ticks]
    x0, x6 = (float(t.get("x")) for t in (turned[0], turned[-1]))
    assert x0 > 62 and x6 < 690 - 12  # the fixed range's half-run margins keep both ends inside the plot
