"""Hugging Face ``transformers`` detectors (DETR, Deformable DETR, Conditional DETR, RT-DETR, YOLOS, ...) as
``detections`` models, through ``AutoModelForObjectDetection`` and the image processor's own
``post_process_object_detection``; instance segmenters (Mask2Former, MaskFormer) through
``AutoModelForUniversalSegmentation`` and ``post_process_instance_segmentation`` (binary masks at the
original size; each box is its mask's extent, right/bottom edges exclusive as COCO's). Optional:
``pip install "visionbench-harness[hf]"``.

An entry (``output: detections``) is built as harness/models/hf_common.py describes; ``kwargs`` go to the
config, e.g. ``processor: {size: {shortest_edge: 800, longest_edge: 1333}}`` sets the resize.

Images go to the processor at their original size as [0, 1] tensors (``do_rescale=False``); it resizes,
normalises and pads, and ``post_process_object_detection`` maps boxes back to the ``target_sizes`` given -
the original sizes - so boxes come out in original-image pixels. ``score_threshold`` is the post-processing
threshold (default 0: every query kept, as DETR's COCO evaluation does; COCO keeps the best 100 per image).
Labels: ``id2label`` names matched to the dataset's category names (harness/models/detection_adapter.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from harness.data.preprocess import Preprocess
from harness.evaluation.outputs import Detections
from harness.models.detection_adapter import DetectorAdapter
from harness.models.family import family_from_name, infer_family
from harness.models.hf_common import build_config, build_model, build_processor, import_transformers, processor_policy
from harness.models.wrapper import LoadedModel
from harness.registry import HF_ADAPTERS
from harness.specs import ModelSpec

DEFAULT_THRESHOLD = 0.0
# model_type -> family: the DETR family puts a CNN backbone under a transformer encoder-decoder
INSTANCE_SEGMENTERS = ("mask2former", "maskformer")  # model types scored as instance segmentation
FAMILIES = {"detr": "hybrid", "deformable_detr": "hybrid", "conditional_detr": "hybrid", "dab_detr": "hybrid",
            "rt_detr": "hybrid", "rt_detr_v2": "hybrid", "d_fine": "hybrid", "yolos": "transformer"}


class HFDetector(DetectorAdapter):
    """An ``AutoModelForObjectDetection`` (or instance-segmentation) model and its image processor."""

    def __init__(self, net: nn.Module, processor: Any, name: str, threshold: float) -> None:
        config = net.config
        super().__init__(net, name, {int(k): v for k, v in config.id2label.items()}, first_label=0,
                         num_labels=int(config.num_labels))
        self.processor, self.threshold = processor, threshold
        self.instances = config.model_type in INSTANCE_SEGMENTERS

    def raw(self, images: list[torch.Tensor]) -> Any:
        """The model's own output for a list of [0, 1] images (resized, normalised and padded by the processor)."""
        inputs = self.processor(images=images, return_tensors="pt", do_rescale=False)
        device = next(self.net.parameters()).device
        return self.net(**{k: v.to(device) for k, v in inputs.items()})

    def decode(self, outputs: Any, sizes: list[tuple[int, int]]) -> list[Detections]:
        """The processor's post-processing, boxes at ``sizes`` (H, W), as ``Detections`` with the model's labels."""
        if self.instances:
            results = self.processor.post_process_instance_segmentation(
                queries_on_cpu(outputs), threshold=self.threshold, target_sizes=sizes, return_binary_maps=True)
            return [instance_detections(r, size) for r, size in zip(results, sizes)]
        results = self.processor.post_process_object_detection(outputs, threshold=self.threshold,
                                                               target_sizes=sizes)
        return [Detections(boxes=r["boxes"].float(), scores=r["scores"].float(), labels=r["labels"].long())
                for r in results]

    def detect(self, images: list[torch.Tensor]) -> list[Detections]:
        return self.decode(self.raw(images), [tuple(image.shape[-2:]) for image in images])


def queries_on_cpu(outputs: Any) -> Any:
    """The outputs with their class and mask logits (what instance post-processing reads) on the CPU.

    transformers' ``post_process_instance_segmentation`` (Mask2Former, MaskFormer) paints the query masks into a
    segment map it creates on the CPU, indexing it with the masks: with CUDA masks that is a device mismatch
    ("indices should be either on cpu or on the same device as the indexed tensor")."""
    return dataclasses.replace(outputs, class_queries_logits=outputs.class_queries_logits.cpu(),
                               masks_queries_logits=outputs.masks_queries_logits.cpu())


def instance_detections(result: dict[str, Any], size: tuple[int, int]) -> Detections:
    """One image of ``post_process_instance_segmentation(..., return_binary_maps=True)`` as ``Detections``."""
    from torchvision.ops import masks_to_boxes

    info = result["segments_info"]
    if not info:  # the processor then returns its (H, W) map of -1
        return Detections(boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.int64),
                          masks=torch.zeros(0, *size, dtype=torch.bool))
    masks = result["segmentation"] > 0.5
    boxes = masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0], device=masks.device)  # inclusive -> COCO extent
    return Detections(boxes=boxes, scores=torch.tensor([s["score"] for s in info], dtype=torch.float32),
                      labels=torch.tensor([s["label_id"] for s in info], dtype=torch.int64), masks=masks)


def _preprocess(processor: Any) -> Preprocess:
    """Images are given at their original size (``crop_mode: none``); ``input_size`` is the processor's
    nominal resize target (used by latency and synthetic inputs)."""
    size = dict(getattr(processor, "size", None) or {})
    side = (size.get("height"), size.get("width")) if "height" in size else (size.get("shortest_edge"),) * 2
    height, width = (int(s) if s else 800 for s in side)
    normalise = getattr(processor, "do_normalize", False)
    mean = tuple(processor.image_mean) if normalise else (0.0, 0.0, 0.0)
    std = tuple(processor.image_std) if normalise else (1.0, 1.0, 1.0)
    return Preprocess(input_size=(3, height, width), crop_pct=1.0, crop_mode="none", mean=mean, std=std)


def _auto_class(transformers: Any, config: Any) -> Any:
    if config.model_type in INSTANCE_SEGMENTERS:
        return transformers.AutoModelForUniversalSegmentation
    return transformers.AutoModelForObjectDetection


def _family(config: Any, net: nn.Module) -> str:
    """The DETR family is a CNN under a transformer; Mask2Former / MaskFormer follow their backbone."""
    if config.model_type in INSTANCE_SEGMENTERS:
        backbone = getattr(getattr(config, "backbone_config", None), "model_type", "") or ""
        return "transformer" if family_from_name(backbone) == "transformer" else "hybrid"
    return FAMILIES.get(config.model_type) or infer_family(config.model_type, net)


def load_hf_detector(spec: ModelSpec) -> LoadedModel:
    """Build the detector a ``source: hf`` entry describes, in eval mode (``kwargs`` go to its config)."""
    transformers = import_transformers()
    config = build_config(spec, spec.kwargs)
    net, weights, sha = build_model(spec, _auto_class(transformers, config), config)
    processor = build_processor(spec, net.config)
    threshold = DEFAULT_THRESHOLD if spec.score_threshold is None else spec.score_threshold
    module = HFDetector(net, processor, spec.name, threshold)
    model_type = net.config.model_type
    post_process = "post_process_instance_segmentation" if module.instances else "post_process_object_detection"
    pipeline = {"adapter": "hf", "model_type": model_type, **processor_policy(processor), "post_process": post_process,
                "score_threshold": threshold,
                "labels": "id2label names matched to category names, else index k -> k-th dataset category"}
    return LoadedModel(name=spec.name, source="hf", arch=spec.architecture,
                       family=spec.family or _family(net.config, net), module=module,
                       preprocess=_preprocess(processor), num_classes=int(net.config.num_labels), weights=weights,
                       weights_sha256=sha, tag=getattr(net.config, "_name_or_path", None) or None,
                       output_kind="detections", pipeline=pipeline)


HF_ADAPTERS.register("detections")(load_hf_detector)
