"""pytest-benchmark over the harness's own hot paths: metric accumulation, collation, report rendering.

Normal test runs execute each once (pyproject's addopts has --benchmark-disable); to measure and compare
against a saved baseline see docs/benchmarks.md (``--benchmark-enable --benchmark-autosave``,
``--benchmark-compare --benchmark-compare-fail=mean:10%``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import harness.plugins  # noqa: F401  (registers the latency report section)
from harness.data.loader import collate
from harness.report.render import render_html
from harness.evaluation.topk import TopKEvaluator
from tests.evaluating import outputs_for


def test_topk_accumulation(benchmark):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 1000, generator=generator)
    labels = logits.topk(5, dim=-1).indices[:, 4]  # every label is exactly the 5th guess

    from types import SimpleNamespace

    evaluator = TopKEvaluator((1, 5))
    batches = [SimpleNamespace(ids=[f"{b}/{i}" for i in range(256)], labels=labels) for b in range(4)]

    def accumulate():
        state = evaluator.process(batches[0], outputs_for(evaluator, logits, "main"))
        for batch in batches[1:]:
            state.merge(evaluator.process(batch, outputs_for(evaluator, logits, "main")))
        return evaluator.compute(state)

    top1, top5 = benchmark(accumulate)
    assert top1.n == 1024 and (top1.value, top5.value) == (0.0, 1.0)


def test_collate(benchmark):
    from skimage import data

    photo = torch.from_numpy(data.astronaut()[:224, :224].copy()).permute(2, 0, 1).float() / 255
    items = [(photo, i % 10, i, str(i), (224, 224)) for i in range(63)] + [(None, None, 63, "63", (0, 0))]  # one skipped
    batch = benchmark(collate, items)
    assert batch.images.shape == (63, 3, 224, 224) and batch.skipped == [63]
    assert torch.equal(batch.images[5], photo) and batch.labels[:3].tolist() == [0, 1, 2]


def synthetic_results(models: int = 40) -> pd.DataFrame:
    """A results frame shaped like the store's: classification and latency rows for ``models`` models."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(models):
        family = "cnn" if i % 2 else "transformer"
        base = {"job_key": f"k{i}", "suite": "synthetic", "model": f"model_{i:02d}", "family": family,
                "arch": family, "dataset": "digits-test", "status": "ok", "error": None, "provenance": "{}",
                "ci_low": None, "ci_high": None, "seed": 0, "device": "cpu", "precision": "fp32"}
        rows.append({**base, "task": "classification", "task_kind": "classification", "metric": "top1",
                     "params": {}, "value": float(rng.uniform(0.5, 1)), "n": 450})
        for batch in (1, 8, 32):
            rows.append({**base, "job_key": f"l{i}", "task": "latency", "task_kind": "latency",
                         "metric": "throughput_img_s", "params": {"mode": "model_only", "batch_size": batch},
                         "value": float(rng.uniform(10, 1000)), "n": 50 * batch})
        rows.append({**base, "job_key": f"l{i}", "task": "latency", "task_kind": "latency", "metric": "gflops",
                     "params": {}, "value": float(rng.uniform(0.1, 10)), "n": 1})
        rows.append({**base, "job_key": f"l{i}", "task": "latency", "task_kind": "latency",
                     "metric": "latency_ms_p50", "params": {"mode": "model_only", "batch_size": 1,
                                                            "timer": "perf_counter"},
                     "value": float(rng.uniform(1, 100)), "n": 200})
    return pd.DataFrame(rows)


def test_render_html(benchmark):
    frame = synthetic_results()
    html = benchmark(render_html, frame, "synthetic")
    assert html.count('data-model="model_') >= 2 * 40  # every model in both leaderboards
    assert "Accuracy vs throughput" in html and '<g id="pareto">' in html
