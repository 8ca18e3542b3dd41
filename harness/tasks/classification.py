"""Top-k classification accuracy, accumulated over the whole dataset from per-sample records."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.evaluation.evaluator import Evaluator, of_roles
from harness.evaluation.topk import TopKEvaluator
from harness.registry import TASKS
from harness.tasks.base import JobContext, Pass, Task


@TASKS.register("classification")
class ClassificationTask(Task):
    """Top-k accuracy (logits restricted to the dataset's classes when its class map covers a subset)."""

    kind = "classification"
    version = 2  # 2: records per sample; label-space subsets restrict logits
    dataset_roles = {"shifted": "many"}  # top-k on each shifted dataset too, tagged with its role and name

    @dataclass
    class Params:
        topk: list[int] = field(default_factory=lambda: [1, 5])

        def validate(self, where) -> None:
            if not self.topk or any(k < 1 or k > 10 for k in self.topk):
                raise where.error("topk must list integers from 1 to 10")

    @classmethod
    def offers(cls) -> tuple[str, ...]:
        return ("logits", "features")

    def outputs(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Any,
                needs: tuple[str, ...]) -> dict[str, Any]:
        """Logits, and the penultimate features from the same forward when an attached evaluator reads them."""
        if "features" not in needs:
            return super().outputs(ctx, pass_, batch_index, batch, needs)
        features, logits = ctx.features_and_logits(batch.images)
        return {"logits": logits, "features": features}

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        own = of_roles(meta.get("role_classes"), self.dataset_roles)  # not the roles attached evaluators bring
        return TopKEvaluator(tuple(self.params.topk), meta.get("valid_classes"), role_classes=own)
