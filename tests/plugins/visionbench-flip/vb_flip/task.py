"""The flip-consistency task: per image, the top-1 class of the image and of its horizontal mirror, from one
pass over the data (two forward calls per batch); consistency is the share of images whose class is kept."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outcomes, Outputs
from harness.evaluation.state import EvalState
from harness.metrics import Metric, declare, proportion
from harness.registry import TASKS
from harness.tasks.base import JobContext, Pass, Task

declare("flip_consistency", "higher", kind="proportion", description="top-1 kept under a horizontal flip",
        protocol="share of images whose top-1 class is the same for the image and its horizontal mirror",
        range=(0.0, 1.0), record_fields=("pred", "pred_flipped"))
declare("flip_top1", "higher", kind="proportion", headline=False, description="top-1 accuracy on mirrored images",
        protocol="top-1 accuracy on the horizontally mirrored images", range=(0.0, 1.0),
        record_fields=("label", "pred_flipped"))


class FlipEvaluator(Evaluator):
    """Records label, prediction and mirrored prediction per image."""

    needs = ("logits", "flipped_logits")

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        state = EvalState()
        preds = outputs["logits"].argmax(-1).tolist()
        flipped = outputs["flipped_logits"].argmax(-1).tolist()
        for sample_id, label, pred, pred_flipped in zip(batch.ids, batch.labels.tolist(), preds, flipped):
            state.add_record(sample_id, outputs.pass_name, {"label": label, "pred": pred, "pred_flipped": pred_flipped})
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        records = [record for _, record in state.pass_records(MAIN_PASS)]
        return [proportion("flip_consistency", sum(r["pred"] == r["pred_flipped"] for r in records), len(records)),
                proportion("flip_top1", sum(r["label"] == r["pred_flipped"] for r in records), len(records))]

    def evidence(self, metric: str, params: dict[str, Any]) -> Outcomes | None:
        success = {"flip_consistency": lambda r: r["pred"] == r["pred_flipped"],
                   "flip_top1": lambda r: r["label"] == r["pred_flipped"]}.get(metric)
        return Outcomes(MAIN_PASS, success) if success else None


@TASKS.register("flip_consistency")
class FlipConsistencyTask(Task):
    """Top-1 kept under a horizontal flip (a plugin task: tests/plugins/visionbench-flip)."""

    kind = "flip_consistency"

    @dataclass
    class Params:
        n: int | None = None  # the first n images (default: all)

        def validate(self, where: Any) -> None:
            if self.n is not None and self.n < 1:
                raise where.at("n").error(f"must be positive, got {self.n}")

    @classmethod
    def offers(cls) -> tuple[str, ...]:
        return ("logits", "flipped_logits")

    @classmethod
    def protocol_facts(cls, params: dict[str, Any], job_metas: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [("mirror", "horizontal, on the width axis of the pixel-space image")]

    def passes(self, ctx: JobContext) -> list[Pass]:
        return [Pass(MAIN_PASS)]

    def outputs(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Any,
                needs: tuple[str, ...]) -> dict[str, Any]:
        images = batch.images
        return {"logits": ctx.logits(images), "flipped_logits": ctx.logits(torch.flip(images, dims=[-1]))}

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        return FlipEvaluator()
