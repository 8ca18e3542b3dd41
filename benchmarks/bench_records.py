"""The cost of per-sample records: classification eval time with records vs a counts-only evaluator.

    python benchmarks/bench_records.py [--repeats 15] [--models ...] [--splits test train] [--limit N] [--quick]

With records (the harness's default): ``TopKEvaluator`` keeps label, top-k and correctness per sample id,
finished batches are kept for resume (written every few seconds), and the job's records are written as
gzip JSON lines.
Without: an evaluator that keeps only the top-k counts, saves nothing and writes nothing (what a
counts-only harness would do). Same model, data and loop, same run. Ratio = time with / time without
(goal <= 1.02, each case): the median of N interleaved paired ratios.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402

from figures import Benchmark, Figure, median, pairs  # noqa: E402

import harness.plugins  # noqa: E402,F401
from harness.data.base import SubsetSource  # noqa: E402
from harness.data.digits import DigitsSource  # noqa: E402
from harness.distributed import World  # noqa: E402
from harness.evaluation.evaluator import Evaluator, Outputs  # noqa: E402
from harness.loop import evaluate_shard, merge_pieces  # noqa: E402
from harness.evaluation.partial import PartialStore  # noqa: E402
from harness.evaluation.state import EvalState, write_records  # noqa: E402
from harness.metrics import Metric, proportion  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402
from harness.tasks.base import JobContext  # noqa: E402
from harness.tasks.classification import ClassificationTask  # noqa: E402


class CountsOnly(Evaluator):
    """Top-k counts as sums: no per-sample record."""

    def __init__(self, ks: tuple[int, ...]) -> None:
        self.ks = ks

    needs = ("logits",)

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        state = EvalState()
        hits = outputs["logits"].topk(max(self.ks), dim=-1).indices == batch.labels.unsqueeze(-1)
        state.add_sum("n", len(batch))
        for k in self.ks:
            state.add_sum(f"k{k}", int(hits[:, :k].any(-1).sum()))
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        return [proportion(f"top{k}", state.sums[f"k{k}"], state.sums["n"]) for k in self.ks]


class CountsOnlyTask(ClassificationTask):
    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        return CountsOnly(tuple(self.params.topk))


class NoSaving(PartialStore):
    def save(self, *args: Any) -> None:
        pass


def timed(task: ClassificationTask, ctx: JobContext, records: bool) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        partial = PartialStore(Path(scratch) / "partial") if records else NoSaving(Path(scratch) / "partial")
        state = merge_pieces([evaluate_shard(task, ctx, partial, World())])
        task.evaluator({}).compute(state)
        if records:
            write_records(Path(scratch) / "samples.jsonl.gz", state, meta={})
        return time.perf_counter() - start


MODELS = ["resnet_digits", "convnext_digits", "vit_digits", "swin_digits"]
GOAL = 1.02


def configure(parser) -> None:
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--models", nargs="+", default=MODELS, help="zoo classifiers")
    parser.add_argument("--splits", nargs="+", default=["test", "train"], choices=["test", "train"])
    parser.add_argument("--limit", type=int, help="the first N images of each split (default: the whole split)")


def measure(args) -> list[Figure]:
    params = ClassificationTask.Params(topk=[1, 5])
    with_records, counts_only = ClassificationTask(params), CountsOnlyTask(params)
    print(f"{'case':46s} {'with records s':>15s} {'counts only s':>14s} {'median ratio':>13s}")
    figures = []
    for name in args.models:
        for split, batch_size in [(split, 128) for split in args.splits]:
            source = DigitsSource(split)
            if args.limit:
                source = SubsetSource(source, range(min(args.limit, len(source))), f"first {args.limit}")
            model = load_model(ModelSpec(name=name, source="zoo"))
            ctx = JobContext(model=model, source=source, device=torch.device("cpu"),
                             batch_size=batch_size, seed=0, show_progress=False)
            timed(with_records, ctx, True), timed(counts_only, ctx, False)  # warm-up
            timings = [(timed(with_records, ctx, True), timed(counts_only, ctx, False)) for _ in range(args.repeats)]
            ratio = median([a / b for a, b in timings])
            best_with, best_without = min(a for a, _ in timings), min(b for _, b in timings)
            print(f"{name + ' on digits ' + split:46s} {best_with:15.4f} {best_without:14.4f} {ratio:13.3f}")
            figures.append(Figure(f"time with records / counts only, {name} on digits {split} ({len(source)} img)",
                                  ratio, at_most=GOAL,
                                  detail=f"median of {pairs(len(timings))}; best {best_with:.4f} s vs {best_without:.4f} s"))
    return figures


BENCHMARK = Benchmark(__doc__, configure, measure,
                      quick={"repeats": 1, "models": ["resnet_digits", "vit_digits"], "splits": ["test"], "limit": 128})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
