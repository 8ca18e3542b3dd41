"""The HTML leaderboard: self-contained, escaped, a table per task, family summary, provenance footer."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from harness.report.render import render_html
from harness.report.tables import column_label, family_summary, leaderboard, ok_rows


def fake_frame(models: dict[str, tuple[str, float]]) -> pd.DataFrame:
    rows = []
    for i, (model, (family, top1)) in enumerate(models.items()):
        for metric, value in (("top1", top1), ("top5", min(1.0, top1 + 0.05))):
            rows.append({"job_key": f"k{i}", "status": "ok", "error": None, "seconds": 1.0,
                         "finished_at": "2026-11-23T20:00:00+0000", "provenance": "{}", "suite": "s",
                         "suite_version": "1", "suite_hash": "abc", "model": model, "family": family, "arch": model,
                         "model_tag": None, "weights": "zoo", "weights_sha256": "f" * 64, "dataset": "digits",
                         "split": "test", "task": "classification", "task_kind": "classification", "seed": 0,
                         "device": "cpu", "precision": "fp32", "torch_version": "2", "timm_version": "1",
                         "harness_version": "0.1.0", "git_commit": None, "metric": metric, "params": {},
                         "value": value, "n": 450, "ci_low": value - 0.01, "ci_high": min(1.0, value + 0.01),
                         "unit": ""})
    return pd.DataFrame(rows)


def test_report_is_self_contained_and_escapes_names():
    frame = fake_frame({"<script>alert(1)</script>": ("cnn", 0.9), "vit": ("transformer", 0.8)})
    html = render_html(frame, "suite & co")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "suite &amp; co" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no CDN, no network
    assert "@import" not in html


def test_leaderboard_sorts_by_first_metric_and_summarises_families():
    frame = fake_frame({"a": ("cnn", 0.7), "b": ("transformer", 0.9), "c": ("cnn", 0.8)})
    rows = ok_rows(frame)
    table = leaderboard(rows)
    assert list(table["model"]) == ["b", "c", "a"]
    families, summary = family_summary(rows)
    assert families == ["cnn", "transformer"]
    top1 = next(row for row in summary if row["column"] == "top1")
    cnn = top1["cnn"]
    assert {k: cnn[k] for k in ("mean", "best", "count", "excluded")} == {"mean": 0.75, "best": 0.8, "count": 2,
                                                                          "excluded": 0}
    # percentile bootstrap of a two-model mean: resampled means are 0.7, 0.75 or 0.8
    assert cnn["ci"] == pytest.approx((0.7, 0.8))
    assert top1["transformer"]["count"] == 1 and top1["transformer"]["ci"] is None and top1["higher"]


def test_column_labels_show_eps_as_fractions_of_255():
    assert column_label("robust_acc", {"eps": 8 / 255, "norm": "Linf"}) == "robust_acc eps=8/255 norm=Linf"
    assert column_label("robust_acc", {"eps": 0.5, "norm": "L2"}) == "robust_acc eps=0.5 norm=L2"
    assert column_label("top1", {}) == "top1"


def job_rows(key: str, model: str, task: str, kind: str, metrics: list[tuple[str | None, dict, float | None]],
             family: str = "cnn") -> list[dict]:
    base = fake_frame({model: (family, 0.5)}).iloc[0].to_dict()
    return [{**base, "job_key": key, "task": task, "task_kind": kind, "metric": metric, "params": params,
             "value": value, "n": 0 if value is None else 10, "ci_low": None, "ci_high": None}
            for metric, params, value in metrics]


def test_report_renders_whatever_the_store_holds_missing_metrics_included():
    """An 'ok' job stored with n = 0 (all metrics NaN) used to fail every later render with KeyError: 'top1'."""
    nan = float("nan")
    rows = [
        *job_rows("c1", "empty_folder_model", "classification", "classification", [("top1", {}, nan),
                                                                                   ("top5", {}, nan)]),
        *job_rows("c2", "no_metrics", "classification", "classification", [(None, {}, None)]),
        *job_rows("l1", "empty_folder_model", "latency", "latency", [
            ("throughput_img_s", {"mode": "model_only", "batch_size": 1}, 100.0),
            ("latency_ms_p50", {"mode": "model_only", "timer": "perf_counter"}, nan),
            ("gflops", {}, 1.5)]),
        *job_rows("p1", "empty_folder_model", "pgd", "pgd", [("clean_acc", {}, nan),
                                                             ("robust_acc", {"eps": 8 / 255, "norm": "Linf"}, nan)]),
        *job_rows("k1", "empty_folder_model", "corruption", "corruption", [
            ("clean_acc", {"mode": "generated"}, nan),
            ("corruption_acc", {"mode": "generated", "corruption": "fog", "severity": 1}, nan)]),
    ]
    frame = pd.concat([fake_frame({"a": ("cnn", 0.7)}), pd.DataFrame(rows)], ignore_index=True)
    html = render_html(frame, "s")
    assert "empty_folder_model" in html and "no_metrics" in html and "finished without any metric" in html
    table = leaderboard(ok_rows(frame[frame["task"] == "classification"]))
    assert list(table["model"]) == ["a", "empty_folder_model"]  # missing values sort last
    assert pd.isna(table.set_index("model").loc["empty_folder_model", "top1"])
    assert ">–<" in html  # shown as missing, not dropped


def test_terminal_table_shows_headline_metrics_per_task():
    from harness.report.terminal import results_table

    frame = pd.DataFrame([
        {"job_key": "a", "model": "m1", "family": "cnn", "arch": "a", "dataset": "d", "task": "classification",
         "task_kind": "classification", "status": "ok", "metric": "top1", "params": {}, "value": 0.91234, "n": 450},
        {"job_key": "a", "model": "m1", "family": "cnn", "arch": "a", "dataset": "d", "task": "classification",
         "task_kind": "classification", "status": "ok", "metric": "corruption_acc", "params": {"severity": 1},
         "value": 0.5, "n": 450},
    ])
    table = results_table(frame)
    assert "classification on d (n = 450)" in table and "0.9123" in table
    assert "corruption_acc" not in table  # detail metrics stay in the report


def test_the_heatmap_is_svg_with_a_hover_per_value_escaped_labels_and_grey_missing_cells():
    import xml.etree.ElementTree as ElementTree

    from harness.report.plotting import heatmap

    svg = heatmap([[0.9, None, 0.3], [0.1, 0.6, float("nan")]], ["resnet<b>", "vit"],
                  ["clean", "gaussian_noise", "fog"], "Top-1 accuracy per corruption")
    root = ElementTree.fromstring(svg)  # well-formed, escaped
    ns = "{http://www.w3.org/2000/svg}"
    hovers = [g for g in root.iter(f"{ns}g") if g.get("id", "").startswith("hover-")]
    assert [g.find(f"{ns}title").text for g in hovers] == [
        "resnet<b> / clean: 0.9000", "resnet<b> / fog: 0.3000", "vit / clean: 0.1000", "vit / gaussian_noise: 0.6000"]
    assert [g.find(f"{ns}text").text for g in hovers] == ["0.90", "0.30", "0.10", "0.60"]
    fills = [r.get("fill") for r in root.iter(f"{ns}rect")]
    assert fills.count("#eeeeee") == 2 and len(fills) == 6  # the two missing cells
    dark, light = (g.find(f"{ns}rect").get("fill") for g in hovers[:2])
    assert dark != light and hovers[0].find(f"{ns}text").get("fill") == "white"  # 0.9: dark cell, white text
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "Top-1 accuracy per corruption" in texts and "resnet<b>" in texts and "gaussian_noise" in texts
