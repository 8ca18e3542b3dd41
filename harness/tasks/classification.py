"""Top-k classification accuracy, accumulated over the whole dataset."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness.metrics import Metric, proportion
from harness.registry import TASKS
from harness.tasks.base import JobContext, Task


class TopKAccuracy:
    """Evaluator in two halves: ``process`` adds per-batch counts, ``compute`` is a pure function of them.

    The state is a few integers, so batch size cannot change a number and ranks can be summed.
    """

    def __init__(self, ks: tuple[int, ...] = (1, 5), prefix: str = "top") -> None:
        self.ks, self.prefix = tuple(ks), prefix
        self.correct = {k: 0 for k in self.ks}
        self.n = 0

    def process(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Count hits; returns the per-sample top-1 correctness (reused by robustness tasks)."""
        kmax = min(max(self.ks), logits.shape[-1])
        top = logits.topk(kmax, dim=-1).indices
        hits = top == labels.unsqueeze(-1)
        for k in self.ks:
            self.correct[k] += int(hits[:, : min(k, kmax)].any(dim=-1).sum())
        self.n += len(labels)
        return hits[:, 0]

    def state(self) -> dict[str, int]:
        return {"n": self.n, **{f"k{k}": v for k, v in self.correct.items()}}

    def merge(self, other_state: dict[str, int]) -> None:
        self.n += other_state["n"]
        for k in self.ks:
            self.correct[k] += other_state[f"k{k}"]

    def compute(self, **params: object) -> list[Metric]:
        return [proportion(f"{self.prefix}{k}", self.correct[k], self.n, **params) for k in self.ks]


@TASKS.register("classification")
class ClassificationTask(Task):
    kind = "classification"

    @dataclass
    class Params:
        topk: list[int] = field(default_factory=lambda: [1, 5])

        def validate(self, where) -> None:
            if not self.topk or any(k < 1 for k in self.topk):
                raise where.error("topk must list positive integers")

    def run(self, ctx: JobContext) -> list[Metric]:
        accuracy = TopKAccuracy(tuple(self.params.topk))
        with torch.inference_mode():
            for batch in ctx.batches(desc=f"{ctx.model.name} {self.label}"):
                accuracy.process(ctx.logits(batch.images), batch.labels)
        return accuracy.compute()
