"""The cost of per-sample records: classification eval time with records vs a counts-only evaluator.

    python benchmarks/bench_records.py [--repeats 15]

With records (the harness's default): ``TopKEvaluator`` keeps label, top-k and correctness per sample id,
finished batches are kept for resume (written every few seconds), and the job's records are written as
gzip JSON lines.
Without: an evaluator that keeps only the top-k counts, saves nothing and writes nothing (what a
counts-only harness would do). Same model, data and loop, same run. Ratio = time with / time without
(goal <= 1.02): the median of N interleaved paired ratios.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import harness.plugins  # noqa: F401
from harness.data.digits import DigitsSource
from harness.distributed import World
from harness.evaluation.evaluator import Evaluator
from harness.evaluation.loop import evaluate_shard, merge_pieces
from harness.evaluation.partial import PartialStore
from harness.evaluation.state import EvalState, write_records
from harness.metrics import Metric, proportion
from harness.models.loaders import load_model
from harness.specs import ModelSpec
from harness.tasks.base import JobContext
from harness.tasks.classification import ClassificationTask


class CountsOnly(Evaluator):
    """Top-k counts as sums: no per-sample record."""

    def __init__(self, ks: tuple[int, ...]) -> None:
        self.ks = ks

    def process(self, pass_name: str, batch: Any, outputs: torch.Tensor) -> EvalState:
        state = EvalState()
        hits = outputs.topk(max(self.ks), dim=-1).indices == batch.labels.unsqueeze(-1)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    params = ClassificationTask.Params(topk=[1, 5])
    with_records, counts_only = ClassificationTask(params), CountsOnlyTask(params)
    print(f"{'case':46s} {'with records s':>15s} {'counts only s':>14s} {'median ratio':>13s}")
    for name in ("resnet_digits", "convnext_digits", "vit_digits", "swin_digits"):
        for split, batch_size in (("test", 128), ("train", 128)):
            model = load_model(ModelSpec(name=name, source="zoo"))
            ctx = JobContext(model=model, source=DigitsSource(split), device=torch.device("cpu"),
                             batch_size=batch_size, seed=0, show_progress=False)
            timed(with_records, ctx, True), timed(counts_only, ctx, False)  # warm-up
            pairs = [(timed(with_records, ctx, True), timed(counts_only, ctx, False)) for _ in range(args.repeats)]
            ratios = sorted(a / b for a, b in pairs)
            print(f"{name + ' on digits ' + split:46s} {min(a for a, _ in pairs):15.4f} "
                  f"{min(b for _, b in pairs):14.4f} {ratios[len(ratios) // 2]:13.3f}")


if __name__ == "__main__":
    main()
