"""Semantic segmentation: mIoU, mAcc, aAcc with mmsegmentation's dataset-level conventions
(harness/evaluation/semantic.py). The model returns ``semantic_logits`` at its own resolution; the evaluator
resizes them to each label's original size, so any preprocessing resize never touches the scoring."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from harness.data.base import base_and_indices
from harness.data.loader import Batch
from harness.evaluation.evaluator import Evaluator
from harness.evaluation.semantic import SemanticEvaluator, sliding_window_logits
from harness.registry import TASKS
from harness.tasks.base import JobContext, Pass, Task


@TASKS.register("segmentation")
class SegmentationTask(Task):
    """mIoU / mAcc / aAcc and per-class IoU over a dataset of semantic masks (whole or sliding-window inference)."""

    kind = "segmentation"
    target_kind = "semantic"
    output_kind = "semantic_logits"
    prediction_kind = "semantic_labels"

    @dataclass
    class Params:
        mode: Literal["whole", "slide"] = "whole"
        crop_size: list[int] | None = None  # slide: (height, width) of each window, in model-input pixels
        stride: list[int] | None = None  # slide: step between windows
        n: int | None = None  # evaluate n images: the first n of the dataset's subset, else a seeded draw

        def validate(self, where: Any) -> None:
            if self.mode == "slide" and (not self.crop_size or not self.stride or len(self.crop_size) != 2
                                         or len(self.stride) != 2 or min(*self.crop_size, *self.stride) < 1):
                raise where.error("slide mode needs crop_size and stride, each [height, width] of positive pixels")
            if self.n is not None and self.n <= 0:
                raise where.error("n must be positive")

    def infer(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Batch) -> list[torch.Tensor]:
        """One (C, h, w) logits map per image: a batched forward, or image by image for mixed sizes and
        sliding windows."""
        p = self.params
        if isinstance(batch.images, torch.Tensor) and p.mode == "whole":
            return list(ctx.model.module(batch.images))
        return [sliding_window_logits(ctx.model.module, image.unsqueeze(0), p.mode, p.crop_size, p.stride)[0]
                for image in batch.images]

    def job_meta(self, ctx: JobContext) -> dict[str, Any]:
        """Class count and names, the dataset's class colours when it has them (for the report's previews), and
        for saved label PNGs their folder and label convention (the evaluator checks it: docs/predictions.md)."""
        base, _ = base_and_indices(ctx.source)
        colours = getattr(base, "class_colours", None)
        convention = getattr(ctx.model.predictions, "convention", None)
        return {"num_classes": ctx.source.num_classes, "class_names": list(ctx.source.class_names),
                **({"class_colours": colours} if colours else {}),
                **({"saved_labels": {"model": ctx.model.name, **convention()}} if convention else {})}

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        return SemanticEvaluator(meta["num_classes"], meta.get("class_names"), colours=meta.get("class_colours"),
                                 saved=meta.get("saved_labels"))
