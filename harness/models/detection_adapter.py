"""The common half of framework detector adapters (torchvision, Hugging Face): pixel-space images of any size
in, canonical ``Detections`` out, with the model's labels turned into the dataset's category ids.

Images are fed at their original size (the loader's ``crop_mode: none``); each framework resizes and
normalises internally and maps its boxes back to the size it was given, so boxes come out in original-image
pixels and the detection task's ``to_original_size`` is the identity for these models.

Labels -> dataset category ids (``category_lookup``), one rule for every framework:
- the model knows its class names (pretrained weights: torchvision's weights metadata, HF's ``id2label``):
  a label maps to the dataset category of the same name (case-insensitive); labels whose name is not a
  dataset category (torchvision's ``__background__`` / ``N/A``) are dropped. COCO-trained weights on COCO
  thus keep COCO's category ids (torchvision and HF number COCO classes by their category ids).
- it does not (random init, HF's ``LABEL_k`` placeholders): the model's k-th class is the dataset's k-th
  category in id order; torchvision counts from 1 (index 0 is its background), HF from 0. The class count
  must equal the dataset's category count.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from harness.evaluation.outputs import Detections

_PLACEHOLDER_NAME = re.compile(r"LABEL_\d+")


class LabelMappingError(ValueError):
    """A model's labels cannot be matched to a dataset's categories."""


def category_lookup(label_names: Mapping[int, str] | None, first_label: int, num_labels: int,
                    categories: Sequence[Mapping[str, Any]], model: str) -> dict[int, int]:
    """model label id -> dataset category id, by the rule in this module's docstring."""
    ordered = sorted(categories, key=lambda c: c["id"])
    if label_names and not all(_PLACEHOLDER_NAME.fullmatch(str(n)) for n in label_names.values()):
        by_name = {str(c["name"]).lower(): int(c["id"]) for c in ordered}
        lookup = {int(i): by_name[str(n).lower()] for i, n in label_names.items() if str(n).lower() in by_name}
        if not lookup:
            names = ", ".join(str(n) for n in list(label_names.values())[:6])
            raise LabelMappingError(f"model {model}: none of its class names ({names}, ...) is a category of the "
                                    f"dataset ({', '.join(str(c['name']) for c in ordered[:6])}, ...)")
        return lookup
    if num_labels != len(ordered):
        raise LabelMappingError(f"model {model} predicts {num_labels} classes but the dataset has {len(ordered)} "
                                f"categories (give num_classes to match)")
    return {first_label + k: int(c["id"]) for k, c in enumerate(ordered)}


class DetectorAdapter(nn.Module):
    """Base of the framework adapters. Subclasses implement ``detect(images) -> list[Detections]`` with boxes
    in the given images' pixels and the model's own label ids; ``forward`` maps the labels once the adapter
    is bound to a dataset (``for_categories``), else returns them as they are."""

    takes_image_lists = True  # the detection task may pass a list of differently sized images

    def __init__(self, net: nn.Module, name: str, label_names: Mapping[int, str] | None, first_label: int,
                 num_labels: int) -> None:
        super().__init__()
        self.net, self.model_name = net, name
        self.label_names, self.first_label, self.num_labels = label_names, first_label, num_labels
        self.lookup: torch.Tensor | None = None  # model label -> category id (-1: dropped)

    def for_categories(self, categories: Sequence[Mapping[str, Any]]) -> "DetectorAdapter":
        """A copy (sharing the network) whose labels are the dataset's category ids."""
        mapping = category_lookup(self.label_names, self.first_label, self.num_labels, categories, self.model_name)
        table = torch.full((max(mapping) + 1,), -1, dtype=torch.int64)
        table[list(mapping)] = torch.tensor(list(mapping.values()), dtype=torch.int64)
        bound = copy.copy(self)  # shallow: same network, parameters and buffers
        bound.lookup = table
        return bound

    def detect(self, images: list[torch.Tensor]) -> list[Detections]:
        raise NotImplementedError

    def forward(self, images: torch.Tensor | list[torch.Tensor]) -> list[Detections]:
        detections = self.detect(list(images))
        return detections if self.lookup is None else [self.relabel(d) for d in detections]

    def relabel(self, detections: Detections) -> Detections:
        """Labels as dataset category ids; detections of labels without a category are dropped."""
        table = self.lookup.to(detections.labels.device)
        labels = detections.labels.long()
        mapped = torch.where(labels < len(table), table[labels.clamp(max=len(table) - 1)], -1)
        keep = mapped >= 0
        masks = detections.masks[keep] if detections.masks is not None else None
        return Detections(boxes=detections.boxes[keep], scores=detections.scores[keep], labels=mapped[keep],
                          masks=masks)
