"""Benchmarks of the latency task itself (printed ratios, not timed tests).

(a) The harness's model-only throughput against a bare ``for`` loop timed the same way (one perf_counter
    around N forwards of the same wrapped model on the same batch), interleaved in the same run; medians.
    Goal: agree within 5%.
(b) The spread of the median (p50) latency over three repeats of the same model on CPU,
    spread = (max - min) / median. Goal: <= 5%.

    python benchmarks/bench_latency.py [--model resnet18] [--batch 8] [--iters 10] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness.plugins  # noqa: E402,F401
from harness.data.sources import build_source  # noqa: E402
from harness.env import cpu_model  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.specs import DatasetSpec, ModelSpec  # noqa: E402
from harness.tasks.base import JobContext  # noqa: E402
from harness.tasks.latency import LatencyTask, measure, synthetic_batch  # noqa: E402


def harness_throughput(ctx: JobContext, batch: int, iters: int, warmup: int) -> float:
    params = LatencyTask.Params(modes=["model_only"], warmup_iters=warmup, warmup_seconds=0, min_iters=1,
                                min_seconds=0, throughput_batch_sizes=[batch], throughput_iters=iters)
    return next(m.value for m in measure(ctx, params) if m.name == "throughput_img_s")


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


def harness_p50(ctx: JobContext, min_iters: int, warmup: int) -> float:
    params = LatencyTask.Params(modes=["model_only"], warmup_iters=warmup, warmup_seconds=0.5, min_iters=min_iters,
                                min_seconds=1.0, throughput_batch_sizes=[])
    return next(m.value for m in measure(ctx, params) if m.name == "latency_ms_p50")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="timm architecture (random weights, own resolution)")
    parser.add_argument("--batch", type=int, default=8, help="throughput batch size")
    parser.add_argument("--iters", type=int, default=30, help="iterations per throughput measurement")
    parser.add_argument("--latency-iters", type=int, default=200, help="timed iterations per latency repeat")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved harness/bare pairs for (a)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for the whole run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = load_model(ModelSpec(name=args.model, source="timm"))
    source = build_source(DatasetSpec(name="digits-test", kind="digits"), limit=16)
    with tempfile.TemporaryDirectory() as scratch:
        ctx = JobContext(model=model, source=source, device=device, batch_size=args.batch, seed=0,
                         state_dir=Path(scratch), show_progress=False)
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
        verdict = "PASS" if abs(ratio - 1) <= 0.05 else "FAIL"
        print(f"    ratio of medians harness/bare = {ratio:.3f}  (goal 0.95..1.05: {verdict})")
        print(f"    median of paired ratios       = {paired:.3f}  (steadier when the machine drifts)")

        medians = [harness_p50(ctx, args.latency_iters, warmup=3) for _ in range(3)]
        spread = (max(medians) - min(medians)) / statistics.median(medians)
        print(f"(b) p50 latency at batch 1 over 3 repeats ({args.latency_iters}+ iterations each): "
              f"{[round(v, 2) for v in medians]} ms")
        print(f"    spread (max-min)/median = {spread:.2%}  (goal <= 5%: {'PASS' if spread <= 0.05 else 'FAIL'})")
        print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
