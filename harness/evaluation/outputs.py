"""Canonical model outputs. A model adapter declares which one it returns and converts its framework's
output to it; nothing downstream guesses from shapes.

- ``logits``: (N, C) float tensor, one row per image.
- ``detections``: one ``Detections`` per image, in the original image's pixel coordinates.
- ``semantic_logits``: (N, C, h, w) float tensor at any resolution; the evaluator resizes to the label.
- ``semantic_labels``: one ``LabelMap`` per image: classes already decided, at the label's size (saved
  predictions). Scored as they are: no resize (which would invent labels at class borders) and no one-hot
  detour (C x H x W floats per image to hand the argmax back what the file already says).
- ``panoptic``: one ``PanopticPrediction`` per image, at the original image's size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

OutputKind = Literal["logits", "detections", "semantic_logits", "semantic_labels", "panoptic"]
OUTPUT_KINDS: tuple[str, ...] = ("logits", "detections", "semantic_logits", "semantic_labels", "panoptic")

# which canonical output scores which target kind
OUTPUT_FOR_TARGET = {"class": "logits", "detection": "detections", "semantic": "semantic_logits",
                     "panoptic": "panoptic"}


# When a label map reads as off by one class (mmseg's format_only writes train id + 1 for reduce_zero_label
# datasets): a shift is called only on strong evidence: the shifted band holds at least SHIFT_SHARE of the scored
# pixels and SHIFT_RATIO times the diagonal, and beats the diagonal in at least SHIFT_CLASSES classes (a model that
# merely predicts one wrong class everywhere, or a random one, is scored, not refused). Shared by the semantic
# evaluator and the saved-predictions reader, so it lives with the outputs they both read.
SHIFT_SHARE, SHIFT_RATIO, SHIFT_CLASSES = 0.25, 3.0, 3


@dataclass
class Detections:
    """Detections of one image: XYXY boxes in original pixels, scores, dataset category ids, optional masks."""

    boxes: torch.Tensor  # (K, 4) float
    scores: torch.Tensor  # (K,) float
    labels: torch.Tensor  # (K,) int64
    masks: torch.Tensor | None = None  # (K, H, W) bool at the original size


@dataclass
class LabelMap:
    """One image's predicted classes: (H, W) int64 train ids at the original image size; pixels equal to
    ``ignore_index`` (when set) have no class predicted and count as missed for their label (mmseg's rule)."""

    labels: torch.Tensor
    origin: str = ""  # where it was read from (a file), named in errors
    ignore_index: int | None = None


@dataclass
class PanopticPrediction:
    """A predicted segment-id map (0 = VOID) and its segments (``id``, ``category_id``)."""

    segment_map: torch.Tensor  # (H, W) int64
    segments: list[dict[str, Any]]


class OutputKindError(TypeError):
    """A model's output is not the canonical form it declared."""


def check_logits(output: torch.Tensor, model: str) -> torch.Tensor:
    """``logits`` must be (N, C): a dense map is never flattened into 'logits'."""
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise OutputKindError(f"model {model} declares 'logits' output but returned {shape}; "
                              f"a classifier must return (N, C)")
    return output
