"""The HTML leaderboard: self-contained, escaped, a table per task, family summary, provenance footer."""
from __future__ import annotations

import re

import pandas as pd

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
    assert top1["cnn"] == {"mean": 0.75, "best": 0.8, "count": 2, "excluded": 0}
    assert top1["transformer"]["count"] == 1 and top1["higher"]


def test_column_labels_show_eps_as_fractions_of_255():
    assert column_label("robust_acc", {"eps": 8 / 255, "norm": "Linf"}) == "robust_acc eps=8/255 norm=Linf"
    assert column_label("robust_acc", {"eps": 0.5, "norm": "L2"}) == "robust_acc eps=0.5 norm=L2"
    assert column_label("top1", {}) == "top1"
