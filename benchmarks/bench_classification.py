"""Classification eval throughput: the harness vs a bare ``model(x)`` loop on the same data, same run.

    python benchmarks/bench_classification.py [--repeats 15] [--limit N] [--quick]

Bare loop: the dataset already decoded and preprocessed into tensors, then only ``model(x)`` per batch.
Harness: ``run_task(ClassificationTask, ctx)`` on a JobContext — loading, preprocessing, metric accumulation and all.
Ratio = harness images/s over bare images/s (goal >= 0.98, each of the four cases): best over best of N
interleaved repeats, and the median of the N paired ratios (steadier when the machine is noisy; the figure
judged).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402

from figures import Benchmark, Figure, ratio_figure  # noqa: E402

from harness.data.base import SubsetSource  # noqa: E402
from harness.data.digits import DigitsSource  # noqa: E402
from harness.data.loader import make_loader  # noqa: E402
from harness.loop import run_task  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402
from harness.tasks.base import JobContext  # noqa: E402
from harness.tasks.classification import ClassificationTask  # noqa: E402

GOAL = 0.98


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


def compare(spec: ModelSpec, source, batch_size: int, repeats: int) -> tuple[float, float, list[float]]:
    """(best bare img/s, best harness img/s, the sorted paired ratios harness / bare)."""
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
    return max(bare), max(ours), sorted(o / b for o, b in zip(ours, bare))


def configure(parser) -> None:
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--limit", type=int, help="the first N images of each split (default: the whole split)")


def measure(args) -> list[Figure]:
    torch.manual_seed(0)
    cases = []
    for split in ("test", "train"):
        source = DigitsSource(split)
        if args.limit:
            source = SubsetSource(source, range(min(args.limit, len(source))), f"first {args.limit}")
        for name in ("resnet_digits", "vit_digits"):
            cases.append((f"{name} (zoo) on digits {split}, batch 128", ModelSpec(name=name, source="zoo"),
                          source, 128))
    print(f"{'case':50s} {'bare img/s':>11s} {'harness img/s':>14s} {'best/best':>10s} {'median paired':>14s}")
    figures = []
    for title, spec, source, batch_size in cases:
        bare, ours, paired = compare(spec, source, batch_size, args.repeats)
        figure = ratio_figure(f"harness / bare img/s, {spec.name} on digits {source.split} ({len(source)} img)",
                              paired, ours / bare, at_least=GOAL)
        print(f"{title:50s} {bare:11.0f} {ours:14.0f} {ours / bare:10.3f} {figure.measured:14.3f}")
        figures.append(figure)
    return figures


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"repeats": 1, "limit": 128})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
