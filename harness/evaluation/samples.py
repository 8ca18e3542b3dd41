"""Samples and their targets: a pixel-space image plus a target whose type the dataset kind declares.

Dense targets are in the ORIGINAL image's coordinates (COCO and mmseg score there); a model's own
resize never touches them, and its predictions are mapped back instead. Every sample has a stable id
(a file name or a dataset index as text) that survives subsets, shards and resume.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

import torch
from PIL import Image
from torchvision import tv_tensors

TargetKind = Literal["class", "detection", "semantic", "panoptic"]
TARGET_KINDS: tuple[str, ...] = ("class", "detection", "semantic", "panoptic")


@dataclass
class DetectionTarget:
    """COCO-style ground truth of one image; category ids as in the source file (never re-indexed)."""

    image_id: int
    boxes: tv_tensors.BoundingBoxes  # (K, 4) XYXY pixels of the original image
    labels: torch.Tensor  # (K,) int64 category ids
    iscrowd: torch.Tensor  # (K,) bool
    area: torch.Tensor  # (K,) float: COCO's area (the mask's pixel count when there are masks)
    masks: tv_tensors.Mask | None = None  # (K, H, W) bool instance masks, when the source has them
    ann_ids: list[int] = field(default_factory=list)  # COCO annotation ids (never 0)


@dataclass
class SemanticTarget:
    """A per-pixel class map; pixels equal to ``ignore_index`` are not scored."""

    mask: tv_tensors.Mask  # (H, W) int64
    ignore_index: int = 255


@dataclass
class PanopticTarget:
    """A COCO-panoptic ground truth: segment-id map (0 = VOID) plus ``segments_info`` entries
    (``id``, ``category_id``, ``iscrowd``, ``area``)."""

    segment_map: torch.Tensor  # (H, W) int64 segment ids
    segments: list[dict[str, Any]]
    image_id: int | None = None  # the COCO image id (saved predictions are matched on it, as panopticapi does)


Target = Union[int, DetectionTarget, SemanticTarget, PanopticTarget]


@dataclass
class Sample:
    """One dataset item: its stable id, the native-size RGB image and the target."""

    id: str
    image: Image.Image
    target: Target
