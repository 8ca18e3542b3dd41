"""The cost of calibration metrics on a classification job: the same job with and without the calibration
evaluator attached (same logits, no second pass), interleaved in one run.

    python benchmarks/bench_calibration.py [--repeats 9] [--limit N] [--quick]

Ratio = wall time with calibration over wall time without (goal <= 1.05): the median of the paired ratios.
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
from harness.evaluation.calibration import CalibrationEvaluator  # noqa: E402
from harness.loop import run_task  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402
from harness.tasks.base import JobContext  # noqa: E402
from harness.tasks.classification import ClassificationTask  # noqa: E402

GOAL = 1.05


def wall(task: ClassificationTask, ctx: JobContext) -> float:
    start = time.perf_counter()
    run_task(task, ctx)
    return time.perf_counter() - start


def configure(parser) -> None:
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--limit", type=int, help="the first N images of the digits train split (default: all)")


def measure(args) -> list[Figure]:
    torch.manual_seed(0)
    source = DigitsSource("train")
    if args.limit:
        source = SubsetSource(source, range(min(args.limit, len(source))), f"first {args.limit}")
    figures = []
    print(f"{'case':44s} {'plain s':>8s} {'+calibration s':>15s} {'median paired':>14s}")
    for name in ("resnet_digits", "vit_digits"):
        model = load_model(ModelSpec(name=name, source="zoo"))
        ctx = JobContext(model=model, source=source, device=torch.device("cpu"), batch_size=128, seed=0,
                         show_progress=False)
        plain = ClassificationTask(ClassificationTask.Params())
        calibrated = ClassificationTask(ClassificationTask.Params())
        calibrated.attach("calibration", CalibrationEvaluator.Params())
        wall(plain, ctx), wall(calibrated, ctx)  # warm-up
        pairs = [(wall(plain, ctx), wall(calibrated, ctx)) for _ in range(args.repeats)]
        ratios = sorted(c / p for p, c in pairs)
        figure = ratio_figure(f"with / without calibration wall time, {name} on digits train ({len(source)} img)",
                              ratios, min(c for _, c in pairs) / min(p for p, _ in pairs), at_most=GOAL)
        print(f"{name:44s} {min(p for p, _ in pairs):8.3f} {min(c for _, c in pairs):15.3f} {figure.measured:14.3f}")
        figures.append(figure)
    return figures


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"repeats": 1, "limit": 128})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
