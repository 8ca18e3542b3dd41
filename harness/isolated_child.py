"""The child side of an isolated measurement (see harness/tasks/isolation.py): rebuild the model and data from
their specs in this fresh process, measure, print the metrics as one JSON line."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from harness.metrics import Metric
from harness.tasks.base import JobContext


def measure_request(request: dict[str, Any]) -> list[Metric]:
    """The child's side: rebuild model and data from their specs and measure in this fresh process."""
    from harness.plugins import load_modules  # importing it registers the built-ins and installed plugins
    from harness.data.sources import build_source
    from harness.models.loaders import load_model
    from harness.seeding import seed_everything
    from harness.schema import Where, build
    from harness.specs import DatasetSpec, ModelSpec
    from harness.tasks.latency import LatencyTask, measure

    load_modules(request.get("plugins", []))  # the suite's plugins: a model source or dataset kind may be theirs
    where = Where(Path("<isolation request>"), 0, "")
    device = torch.device(request["device"])
    model = load_model(build(ModelSpec, request["model"], where.child("model", {}))).to_device(device)
    source = build_source(build(DatasetSpec, request["dataset"], where.child("dataset", {})), request["limit"])
    params = build(LatencyTask.Params, request["params"], where.child("params", {}))
    seed_everything(request["seed"])
    ctx = JobContext(model=model, source=source, device=device, batch_size=request["batch_size"],
                     seed=request["seed"], workers=request["workers"], show_progress=False)
    return measure(ctx, params)


def main() -> int:
    metrics = measure_request(json.load(sys.stdin))
    print(json.dumps([asdict(m) for m in metrics]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
