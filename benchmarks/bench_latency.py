"""Benchmarks of the latency task itself (printed ratios, not timed tests).

(a) The harness's model-only throughput against a bare ``for`` loop timed the same way (one perf_counter
    around N forwards of the same wrapped model on the same batch), interleaved in the same run; medians.
    Goal: agree within 5% (ratio of medians 0.95 .. 1.05).
(b) The spread of the median (p50) latency over three repeats of the same model on CPU,
    spread = (max - min) / median. Goal: <= 5%.

    python benchmarks/bench_latency.py [--model resnet18] [--batch 8] [--iters 30] [--repeats 7] [--threads N] [--quick]
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402

import harness.plugins  # noqa: E402,F401
from harness.data.sources import build_source  # noqa: E402
from harness.env import cpu_model  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.specs import DatasetSpec, ModelSpec  # noqa: E402
from harness.tasks.base import JobContext  # noqa: E402
from harness.tasks.latency import LatencyTask, measure as measure_latency, synthetic_batch  # noqa: E402


def harness_throughput(ctx: JobContext, batch: int, iters: int, warmup: int) -> float:
    params = LatencyTask.Params(modes=["model_only"], warmup_iters=warmup, warmup_seconds=0, min_iters=1,
                                min_seconds=0, throughput_batch_sizes=[batch], throughput_iters=iters)
    return next(m.value for m in measure_latency(ctx, params) if m.name == "throughput_img_s")


def bare_throughput(ctx: JobContext, batch: int, iters: int, warmup: int) -> float:
    model = ctx.model.module.eval()
    images = synthetic_batch(batch, ctx.model.preprocess.input_size, ctx.device, False)
    with torch.inference_mode():
        for _ in range(warmup):
            model(images)
        start = time.perf_counter()
        for _ in range(iters):
            model(images)
        seconds = time.perf_counter() - start
    return batch * iters / seconds


def harness_p50(ctx: JobContext, min_iters: int, warmup: int, warmup_seconds: float = 0.5,
                min_seconds: float = 1.0) -> float:
    params = LatencyTask.Params(modes=["model_only"], warmup_iters=warmup, warmup_seconds=warmup_seconds,
                                min_iters=min_iters, min_seconds=min_seconds, throughput_batch_sizes=[])
    return next(m.value for m in measure_latency(ctx, params) if m.name == "latency_ms_p50")


def configure(parser) -> None:
    parser.add_argument("--model", default="resnet18", help="timm architecture (random weights, own resolution)")
    parser.add_argument("--batch", type=int, default=8, help="throughput batch size")
    parser.add_argument("--iters", type=int, default=30, help="iterations per throughput measurement")
    parser.add_argument("--latency-iters", type=int, default=200, help="timed iterations per latency repeat")
    parser.add_argument("--latency-seconds", type=float, default=1.0, help="minimum seconds per latency repeat")
    parser.add_argument("--warmup-seconds", type=float, default=0.5, help="minimum warm-up per latency repeat")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved harness/bare pairs for (a)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for the whole run")


def measure(args) -> list[Figure]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = load_model(ModelSpec(name=args.model, source="timm"))
    source = build_source(DatasetSpec(name="digits-test", kind="digits"), limit=16)
    ctx = JobContext(model=model, source=source, device=device, batch_size=args.batch, seed=0,
                     show_progress=False)
    print(f"{args.model} at {model.preprocess.input_size}, {cpu_model()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, load average before {os.getloadavg()[0]:.2f}")

    harness_runs, bare_runs = [], []
    for _ in range(args.repeats):  # interleaved so drift in machine load hits both alike
        harness_runs.append(harness_throughput(ctx, args.batch, args.iters, warmup=2))
        bare_runs.append(bare_throughput(ctx, args.batch, args.iters, warmup=2))
    ratio = statistics.median(harness_runs) / statistics.median(bare_runs)
    print(f"(a) model-only throughput at batch {args.batch}, {args.iters} iterations, "
          f"median of {args.repeats} interleaved:")
    print(f"    harness {statistics.median(harness_runs):.2f} img/s {[round(v, 2) for v in harness_runs]}")
    print(f"    bare    {statistics.median(bare_runs):.2f} img/s {[round(v, 2) for v in bare_runs]}")
    paired = statistics.median(h / b for h, b in zip(harness_runs, bare_runs))
    print(f"    ratio of medians harness/bare = {ratio:.3f}  (goal 0.95..1.05)")
    print(f"    median of paired ratios       = {paired:.3f}  (steadier when the machine drifts)")

    medians = [harness_p50(ctx, args.latency_iters, 3, args.warmup_seconds, args.latency_seconds)
               for _ in range(3)]
    spread = (max(medians) - min(medians)) / statistics.median(medians)
    print(f"(b) p50 latency at batch 1 over 3 repeats ({args.latency_iters}+ iterations each): "
          f"{[round(v, 2) for v in medians]} ms")
    print(f"    spread (max-min)/median = {spread:.2%}  (goal <= 5%)")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return [
        Figure(f"(a) model-only img/s harness / bare, {args.model} batch {args.batch} (ratio of medians)", ratio,
               at_least=0.95, at_most=1.05,
               detail=f"{args.repeats} interleaved; median of paired {paired:.3f}"),
        Figure(f"(b) spread of p50 latency over 3 repeats, {args.model} batch 1", 100 * spread, unit="%",
               at_most=5.0, digits=2, detail=f"p50 {statistics.median(medians):.2f} ms"),
    ]


BENCHMARK = Benchmark(__doc__, configure, measure,
                      quick={"batch": 2, "iters": 2, "latency_iters": 3, "latency_seconds": 0.1,
                             "warmup_seconds": 0.0, "repeats": 1})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
