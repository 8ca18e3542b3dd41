"""Panoptic segmentation: PQ / SQ / RQ (all, things, stuff) and per-category PQ with panopticapi's rules
(harness/evaluation/panoptic.py).

Two kinds of model are scored:
- ``panoptic`` models return a ``PanopticPrediction`` per image (segment map + category ids). A model whose
  labels are its own (Hugging Face's ``id2label``) offers ``for_categories(categories)``, which returns the
  module answering in the dataset's category ids; the task binds it for the job.
- ``semantic_logits`` models are turned into panoptic predictions by a documented method
  (harness/evaluation/panoptic_from_semantic.py: stuff from the argmax map, things as connected components,
  segments under ``min_area`` pixels VOID). Semantic class ``i`` is the panoptic category
  ``category_ids[i]``: the task's ``category_ids`` param, else the dataset's own mapping
  (``semantic_category_ids()``); without either the job is refused, never guessed.
Predictions are scored at each image's original size.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

from harness.data.base import ImageSource, base_and_indices
from harness.data.loader import Batch
from harness.evaluation.evaluator import Evaluator
from harness.evaluation.outputs import PanopticPrediction
from harness.evaluation.panoptic import PanopticEvaluator
from harness.evaluation.panoptic_from_semantic import panoptic_from_semantic
from harness.evaluation.semantic import predict_labels
from harness.registry import TASKS
from harness.tasks.base import JobContext, Pass, Task


def per_image(module: Callable[[torch.Tensor], Any], images: torch.Tensor | list[torch.Tensor]) -> list[Any]:
    """The module's outputs, one per image: one batched call on a stacked batch, else one call per image."""
    if isinstance(images, torch.Tensor):
        return list(module(images))
    return [module(image.unsqueeze(0))[0] for image in images]


def resize_panoptic(prediction: PanopticPrediction, size: tuple[int, int]) -> PanopticPrediction:
    """The prediction at (H, W) (nearest neighbour); segments that lose every pixel are dropped."""
    if tuple(prediction.segment_map.shape[-2:]) == tuple(size):
        return prediction
    segment_map = F.interpolate(prediction.segment_map[None, None].double(), size=tuple(size), mode="nearest")
    segment_map = segment_map[0, 0].long()
    kept = set(torch.unique(segment_map).tolist())
    return PanopticPrediction(segment_map, [s for s in prediction.segments if int(s["id"]) in kept])


def dataset_categories(source: ImageSource) -> list[dict[str, Any]]:
    """The panoptic dataset's categories (``id``, ``name``, ``isthing``)."""
    base, _ = base_and_indices(source)
    return base.categories()  # type: ignore[attr-defined]  (every panoptic source provides them)


@TASKS.register("panoptic")
class PanopticTask(Task):
    """PQ / SQ / RQ over a dataset of COCO-panoptic ground truth, from panoptic or semantic models."""

    kind = "panoptic"
    target_kind = "panoptic"
    output_kind = "panoptic"
    output_kinds = ("panoptic", "semantic_logits")
    prediction_kind = "panoptic"  # saved COCO-panoptic json + PNGs (source: predictions)

    @dataclass
    class Params:
        min_area: int = 16  # semantic models: a stuff region or thing component under this many pixels is VOID
        category_ids: list[int] | None = None  # semantic models: category id of each class index (else the dataset's)
        n: int | None = None  # evaluate n images: the first n of the dataset's subset, else a seeded draw

        def validate(self, where: Any) -> None:
            if self.min_area < 0:
                raise where.error("min_area must be >= 0")
            if self.category_ids is not None and len(set(self.category_ids)) != len(self.category_ids):
                raise where.error("category_ids repeats a category id")
            if self.n is not None and self.n <= 0:
                raise where.error("n must be positive")

    def prepare(self, ctx: JobContext) -> JobContext:
        ctx = super().prepare(ctx)
        if ctx.model.output_kind == "semantic_logits":
            self.semantic_category_ids(ctx)  # refuse an unknown or mismatched mapping before any forward pass
            return ctx
        bind = getattr(ctx.model.module, "for_categories", None)
        if bind is None:
            return ctx
        return replace(ctx, model=replace(ctx.model, module=bind(dataset_categories(ctx.source))))

    def semantic_category_ids(self, ctx: JobContext) -> list[int]:
        """Semantic class index -> panoptic category id, checked against the model and the dataset."""
        ids = self.params.category_ids
        if ids is None:
            base, _ = base_and_indices(ctx.source)
            known = getattr(base, "semantic_category_ids", None)
            if known is None:
                raise ValueError(f"dataset {ctx.source.name!r} does not say which panoptic category each semantic "
                                 f"class is; give the task's category_ids (task {self.label})")
            ids = known()
        if ctx.model.num_classes != len(ids):
            raise ValueError(f"model {ctx.model.name} has {ctx.model.num_classes} classes but {len(ids)} semantic "
                             f"classes map to panoptic categories (task {self.label})")
        unknown = sorted(set(ids) - {c["id"] for c in dataset_categories(ctx.source)})
        if unknown:
            raise ValueError(f"category id {unknown[0]} of category_ids is not a category of dataset "
                             f"{ctx.source.name!r} (task {self.label})")
        return list(ids)

    def infer(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Batch) -> list[PanopticPrediction]:
        outputs = per_image(ctx.model.module, batch.images)
        if ctx.model.output_kind == "panoptic":
            return [resize_panoptic(p, size) for p, size in zip(outputs, batch.orig_sizes)]
        ids = self.semantic_category_ids(ctx)
        isthing = {c["id"]: c["isthing"] == 1 for c in dataset_categories(ctx.source)}
        # logits resized to the label and argmax'd exactly as the segmentation task scores them
        return [panoptic_from_semantic(predict_labels(logits, size), ids, isthing, self.params.min_area)
                for logits, size in zip(outputs, batch.orig_sizes)]

    def job_meta(self, ctx: JobContext) -> dict[str, Any]:
        """The categories (with ``isthing``) travel with the records, so rescoring needs no dataset."""
        meta: dict[str, Any] = {"categories": dataset_categories(ctx.source)}
        if ctx.model.output_kind == "semantic_logits":
            meta["semantic_category_ids"] = self.semantic_category_ids(ctx)
        return meta

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        return PanopticEvaluator(meta["categories"])
