"""Object detection (and instance segmentation): COCO mAP/mAR through pycocotools or faster-coco-eval
(harness/evaluation/detection.py). The model returns ``detections``; boxes (and masks) are mapped from the
model's input pixels back to each image's original size here, so scoring happens where COCO's ground truth
lives, whatever resize the model needed."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from harness.data.base import base_and_indices
from harness.data.loader import Batch
from harness.evaluation.detection import DEFAULT_BACKEND, DetectionEvaluator
from harness.evaluation.evaluator import Evaluator
from harness.evaluation.outputs import Detections
from harness.pipeline import overlaps_forward
from harness.registry import TASKS
from harness.tasks.base import JobContext, Pass, Task


def to_original_size(detections: Detections, input_size: tuple[int, int], original: tuple[int, int]) -> Detections:
    """Boxes from a (squash-)resized input back to the original (H, W); masks resized to it."""
    (in_h, in_w), (height, width) = input_size, original
    if (in_h, in_w) == (height, width):
        return detections
    scale = torch.tensor([width / in_w, height / in_h] * 2, device=detections.boxes.device)
    masks = detections.masks
    if masks is not None:
        masks = torch.nn.functional.interpolate(masks[:, None].float(), size=(height, width), mode="nearest")[:, 0] > 0.5
    return replace(detections, boxes=detections.boxes * scale, masks=masks)


@TASKS.register("detection")
class DetectionTask(Task):
    """COCO mAP / mAR (bbox and/or segm), per-class AP, on a dataset of COCO instances."""

    kind = "detection"
    evaluate_while_processing = False  # set by prepare for the job's device; False for rescoring
    target_kind = "detection"
    output_kind = "detections"
    prediction_kind = "detections"

    @dataclass
    class Params:
        iou_types: list[Literal["bbox", "segm"]] = field(default_factory=lambda: ["bbox"])
        backend: Literal["faster_coco_eval", "pycocotools"] = DEFAULT_BACKEND
        n: int | None = None  # evaluate n images: the first n of the dataset's subset, else a seeded draw

        def validate(self, where: Any) -> None:
            if not self.iou_types:
                raise where.error("iou_types: list bbox and/or segm")
            if self.n is not None and self.n <= 0:
                raise where.error("n must be positive")

    def prepare(self, ctx: JobContext) -> JobContext:
        """Framework adapters (harness/models/detection_adapter.py) are bound to the dataset's categories here,
        so their labels come out as the dataset's category ids."""
        ctx = super().prepare(ctx)
        # COCO's per-image matching on the digest thread where it overlaps the forward passes (see
        # DetectionEvaluator); the job's evaluator is made right after prepare, for this job's device
        self.evaluate_while_processing = overlaps_forward(ctx.device)
        module = ctx.model.module
        if hasattr(module, "for_categories"):
            categories = base_and_indices(ctx.source)[0].coco_ground_truth()["categories"]
            ctx = replace(ctx, model=replace(ctx.model, module=module.for_categories(categories)))
        return ctx

    def infer(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Batch) -> list[Detections]:
        """Mixed-size images go to the model as a list when it takes lists (framework detectors), else stacked."""
        module, images = ctx.model.module, batch.images
        if not isinstance(images, torch.Tensor) and not getattr(module, "takes_image_lists", False):
            images = torch.stack(images)
        sizes = [tuple(image.shape[-2:]) for image in images]
        return [to_original_size(d, size, original) for d, size, original in zip(module(images), sizes, batch.orig_sizes)]

    def job_meta(self, ctx: JobContext) -> dict[str, Any]:
        """The ground truth travels with the records, so rescoring and the gate need no dataset."""
        dataset, _ = base_and_indices(ctx.source)  # the whole file's; scoring keeps the evaluated images
        return {"ground_truth": dataset.coco_ground_truth()}

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        return DetectionEvaluator(meta["ground_truth"], tuple(self.params.iou_types), self.params.backend,
                                  self.evaluate_while_processing)
