"""Embedded detectors: ONE CenterNet-style head on a tiny timm CNN (ResNet) or a tiny timm hierarchical
transformer (PVT v2), both ``features_only`` with strides 4-32 (harness/zoo/parts.py, the backbones of the
segmentation zoo), so that comparing them isolates the backbone (as the Swin paper compares ResNet-50 and
Swin-T under the same detector).

The head (Zhou et al. 2019, "Objects as Points"): context from the stride-8-32 maps, fused at stride 8, is
added to the stride-4 map, then three branches predict per stride-4 cell a class heatmap (focal loss on
Gaussian peaks), the box size (log width/height in pixels) and the sub-cell centre offset. Decoding keeps
3x3 local maxima of the heatmap, the 100 best over all classes, as XYXY boxes in input pixels, rescaled to
the original image.

Input: RGB in [0, 1] at 128 x 128 (the scenes size); normalisation is inside the model.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.evaluation.outputs import Detections
from harness.zoo.files import ZOO_DIR, BackboneEntry, load_half_weights
from harness.zoo.parts import conv_bn_relu, pvt_backbone, resnet_backbone

METADATA_FILE = ZOO_DIR / "detection_zoo.json"
INPUT_SIZE = 128
STRIDE = 4
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class CenterNetHead(nn.Module):
    """Feature maps of strides 4, 8, 16, ... -> (heatmap logits, log size, offset) at ``STRIDE`` (4).

    The coarse maps (stride >= 8, where the context is) are projected to ``width``, summed at stride 8 and
    fused; the result is upsampled and added to the projected stride-4 map, and a ``fine_width`` layer feeds
    the three branches at stride 4, where even the smallest objects (10 px) get a cell of their own (narrow,
    because a stride-4 layer costs four times a stride-8 one)."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, width: int = 64, fine_width: int = 32) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.fuse = nn.Sequential(conv_bn_relu(width, width), conv_bn_relu(width, width))
        self.fine = conv_bn_relu(width, fine_width)

        def branch(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(fine_width, fine_width, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(fine_width, out, 1))

        self.heat, self.size, self.offset = branch(num_classes), branch(2), branch(2)
        nn.init.constant_(self.heat[-1].bias, -math.log((1 - 0.1) / 0.1))  # prior 0.1, as CenterNet

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fine, coarse = self.lateral[0](features[0]), features[1:]
        size = coarse[0].shape[-2:]
        context = self.fuse(sum(F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False)
                                if f.shape[-2:] != size else lat(f) for lat, f in zip(self.lateral[1:], coarse)))
        x = self.fine(fine + F.interpolate(context, size=fine.shape[-2:], mode="bilinear", align_corners=False))
        return self.heat(x), self.size(x), self.offset(x)


class CenterNetDetector(nn.Module):
    """A ``features_only`` timm backbone + ``CenterNetHead``; ``category_ids`` map heatmap channels to
    dataset category ids."""

    def __init__(self, backbone: nn.Module, category_ids: Sequence[int]) -> None:
        super().__init__()
        self.backbone = backbone
        reductions = backbone.feature_info.reduction()
        if reductions[0] != STRIDE:
            raise ValueError(f"the finest backbone feature must have stride {STRIDE}, got {reductions}")
        self.head = CenterNetHead(backbone.feature_info.channels(), len(category_ids))
        self.register_buffer("category_ids", torch.tensor(list(category_ids), dtype=torch.int64), persistent=False)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(list(self.backbone((images - self.mean) / self.std)))

    @torch.no_grad()
    def detect(self, images: torch.Tensor, orig_sizes: Sequence[tuple[int, int]] | None = None,
               top_k: int = 100) -> list[Detections]:
        """Canonical detections per image, boxes in original pixels (``orig_sizes`` (H, W); default input)."""
        heat, size, offset = self(images)
        return decode(heat, size, offset, self.category_ids, images.shape[-2:], orig_sizes, top_k)


def decode(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, category_ids: torch.Tensor,
           input_size: Sequence[int], orig_sizes: Sequence[tuple[int, int]] | None, top_k: int = 100
           ) -> list[Detections]:
    scores = heat.sigmoid()
    peaks = scores * (F.max_pool2d(scores, 3, stride=1, padding=1) == scores)
    n, c, h, w = peaks.shape
    best, index = peaks.flatten(1).topk(min(top_k, c * h * w), dim=1)
    classes, cell = index // (h * w), index % (h * w)
    ys, xs = (cell // w).float(), (cell % w).float()
    out = []
    for i in range(n):
        off = offset[i].flatten(1)[:, cell[i]]
        wh = size[i].flatten(1)[:, cell[i]].clamp(max=8).exp()
        cx, cy = (xs[i] + off[0]) * STRIDE, (ys[i] + off[1]) * STRIDE
        boxes = torch.stack([cx - wh[0] / 2, cy - wh[1] / 2, cx + wh[0] / 2, cy + wh[1] / 2], 1)
        height, width = orig_sizes[i] if orig_sizes is not None else tuple(input_size)
        scale = torch.tensor([width / input_size[1], height / input_size[0]] * 2, device=boxes.device)
        boxes = (boxes * scale).clamp(min=0)
        boxes = torch.minimum(boxes, torch.tensor([width, height, width, height], device=boxes.device))
        out.append(Detections(boxes=boxes, scores=best[i], labels=category_ids[classes[i]]))
    return out


class DetectorModule(nn.Module):
    """A detector as the harness runs it: pixel-space images in, canonical ``Detections`` out (in the input's
    pixels); ``net`` is the detector itself (for parameter counts and provenance)."""

    def __init__(self, net: CenterNetDetector) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> list[Detections]:
        return self.net.detect(images)


class DetectorEntry(BackboneEntry):
    metadata_file = METADATA_FILE

    def build(self, category_ids: Sequence[int]) -> CenterNetDetector:
        return CenterNetDetector(self.backbone(), category_ids)

    def load(self, category_ids: Sequence[int]) -> CenterNetDetector:
        """The model with its shipped weights (stored as float16, loaded as float32)."""
        return load_half_weights(self.build(category_ids), self.weights_file)


DETECTORS: dict[str, DetectorEntry] = {
    "centernet_resnet_scenes": DetectorEntry("centernet_resnet_scenes", "resnet", "cnn", resnet_backbone),
    "centernet_pvt_scenes": DetectorEntry("centernet_pvt_scenes", "pvt_v2", "transformer", pvt_backbone),
}
