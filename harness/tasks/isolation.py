"""Measuring one model in a fresh subprocess, so one model's allocator state and compile caches never
touch the next model's numbers.

The parent sends the suite's model and dataset specs plus the task params as JSON on stdin to a child
interpreter running ``harness.isolated_child.main`` (see ``child_command``); the child rebuilds the model and data from the specs, measures
in-process, and prints the metrics as one JSON line on stdout.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from harness.metrics import Metric
from harness.tasks.base import JobContext

STATIC_METRICS = ("params_m", "gflops", "gmacs")  # counts, not timings: the same in any process


def measure_in_subprocess(ctx: JobContext, params: Any, suite_specs: dict[str, Any]) -> list[Metric]:
    """Run the latency measurement for ``ctx``'s model in a child process and return its metrics."""
    model = suite_specs.get("models", {}).get(ctx.model.name)
    dataset = suite_specs.get("datasets", {}).get(ctx.source.name)
    if model is None or dataset is None:
        raise RuntimeError(f"isolate: true needs the suite's spec of model {ctx.model.name!r} and dataset "
                           f"{ctx.source.name!r} (the task was not loaded from a suite)")
    request = {"model": asdict(model), "dataset": asdict(dataset), "limit": len(ctx.source),
               "params": asdict(replace(params, isolate=False)), "device": str(ctx.device), "seed": ctx.seed,
               "batch_size": ctx.batch_size, "workers": ctx.workers, "plugins": suite_specs.get("plugins", [])}
    child = subprocess.run(child_command(), input=json.dumps(request, default=str), capture_output=True, text=True)
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines() or ["no output"]
        raise RuntimeError(f"isolated measurement of {ctx.model.name} failed: {lines[-1]}")
    metrics = [Metric(**record) for record in json.loads(child.stdout.strip().splitlines()[-1])]
    for metric in metrics:
        if metric.name not in STATIC_METRICS:
            metric.params["isolated"] = True
    return metrics


def child_command() -> list[str]:
    """This interpreter, importing the very ``harness`` this process runs (an installed package or a checkout,
    whatever the current directory), then running ``main`` below."""
    home = str(Path(__file__).resolve().parents[2])  # the folder holding this harness package
    code = f"import sys; sys.path.insert(0, {home!r}); from harness.isolated_child import main; sys.exit(main())"
    return [sys.executable, "-c", code]
