"""Classification eval throughput: the harness vs a bare ``model(x)`` loop on the same data, same run.

    python benchmarks/bench_classification.py [--repeats 5]

Bare loop: the dataset already decoded and preprocessed into tensors, then only ``model(x)`` per batch.
Harness: ``ClassificationTask.run`` on a JobContext — loading, preprocessing, metric accumulation and all.
Ratio = harness images/s over bare images/s (goal >= 0.98). Best of N repeats for each, interleaved.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from harness.data.digits import DigitsSource
from harness.data.loader import make_loader
from harness.models.loaders import load_model
from harness.suite import ModelSpec
from harness.tasks.base import JobContext
from harness.tasks.classification import ClassificationTask


def bare_throughput(model, batches: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for images in batches:
            model(images)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def harness_throughput(ctx: JobContext, task: ClassificationTask) -> float:
    start = time.perf_counter()
    metrics = task.run(ctx)
    return metrics[0].n / (time.perf_counter() - start)


def compare(spec: ModelSpec, source, batch_size: int, repeats: int) -> tuple[float, float]:
    model = load_model(spec)
    batches = [b.images for b in make_loader(source, model.preprocess, batch_size)]
    ctx = JobContext(model=model, source=source, device=torch.device("cpu"), batch_size=batch_size, seed=0,
                     state_dir=Path(tempfile.mkdtemp()), show_progress=False)
    task = ClassificationTask(ClassificationTask.Params())
    bare_throughput(model.module, batches[:2])  # warm-up
    harness_throughput(ctx, task)
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(bare_throughput(model.module, batches))
        ours.append(harness_throughput(ctx, task))
    return max(bare), max(ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = [
        ("resnet_digits (zoo) on digits test, batch 128", ModelSpec(name="resnet_digits", source="zoo"),
         DigitsSource("test"), 128),
        ("vit_digits (zoo) on digits test, batch 128", ModelSpec(name="vit_digits", source="zoo"),
         DigitsSource("test"), 128),
    ]
    print(f"{'case':50s} {'bare img/s':>11s} {'harness img/s':>14s} {'ratio':>6s}")
    for title, spec, source, batch_size in cases:
        bare, ours = compare(spec, source, batch_size, args.repeats)
        print(f"{title:50s} {bare:11.0f} {ours:14.0f} {ours / bare:6.3f}")


if __name__ == "__main__":
    main()
