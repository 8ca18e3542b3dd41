"""Classification eval throughput: the harness vs a bare ``model(x)`` loop on the same data, same run.

    python benchmarks/bench_classification.py [--repeats 5]

Bare loop: the dataset already decoded and preprocessed into tensors, then only ``model(x)`` per batch.
Harness: ``run_task(ClassificationTask, ctx)`` on a JobContext — loading, preprocessing, metric accumulation and all.
Ratio = harness images/s over bare images/s (goal >= 0.98): best over best of N interleaved repeats, and
the median of the N paired ratios (steadier when the machine is noisy).
"""
from __future__ import annotations

import argparse
import time

import torch

from harness.data.digits import DigitsSource
from harness.data.loader import make_loader
from harness.evaluation.loop import run_task
from harness.models.loaders import load_model
from harness.specs import ModelSpec
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
    metrics = run_task(task, ctx)
    return metrics[0].n / (time.perf_counter() - start)


def compare(spec: ModelSpec, source, batch_size: int, repeats: int) -> tuple[float, float, float]:
    model = load_model(spec)
    batches = [b.images for b in make_loader(source, model.preprocess, batch_size)]
    ctx = JobContext(model=model, source=source, device=torch.device("cpu"), batch_size=batch_size, seed=0,
                     show_progress=False)
    task = ClassificationTask(ClassificationTask.Params())
    bare_throughput(model.module, batches[:2])  # warm-up
    harness_throughput(ctx, task)
    bare, ours = [], []
    for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
        bare.append(bare_throughput(model.module, batches))
        ours.append(harness_throughput(ctx, task))
    paired = sorted(o / b for o, b in zip(ours, bare))
    return max(bare), max(ours), paired[len(paired) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = [
        (f"{name} (zoo) on digits {split}, batch 128", ModelSpec(name=name, source="zoo"), DigitsSource(split), 128)
        for split in ("test", "train") for name in ("resnet_digits", "vit_digits")
    ]
    print(f"{'case':50s} {'bare img/s':>11s} {'harness img/s':>14s} {'best/best':>10s} {'median paired':>14s}")
    for title, spec, source, batch_size in cases:
        bare, ours, median_ratio = compare(spec, source, batch_size, args.repeats)
        print(f"{title:50s} {bare:11.0f} {ours:14.0f} {ours / bare:10.3f} {median_ratio:14.3f}")


if __name__ == "__main__":
    main()
