"""Embedded detectors: ONE CenterNet-style head on a tiny timm CNN or a tiny timm ViT (``features_only``),
so that comparing them isolates the backbone (as the Swin paper compares ResNet-50 and Swin-T under the
same detector).

The head (Zhou et al. 2019, "Objects as Points"): the backbone's feature maps (strides 8, 16, 32 for the
ResNet; stride 8 alone for the ViT) are projected to a common width, upsampled to stride 8 and summed,
then three branches predict per cell a class heatmap (focal loss on Gaussian peaks), the box size
(log width/height in pixels) and the sub-cell centre offset. Decoding keeps 3x3 local maxima of the
heatmap, the 100 best over all classes, as XYXY boxes in input pixels, rescaled to the original image.

Input: RGB in [0, 1] at 128 x 128 (the scenes size); normalisation is inside the model.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from harness.evaluation.outputs import Detections
from harness.zoo.files import ZOO_DIR, BackboneEntry, load_half_weights

METADATA_FILE = ZOO_DIR / "detection_zoo.json"
INPUT_SIZE = 128
STRIDE = 8
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class CenterNetHead(nn.Module):
    """Feature maps of strides >= ``STRIDE`` -> (heatmap logits, log size, offset) at ``STRIDE``."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.heat = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, num_classes, 1))
        self.size = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, 2, 1))
        self.offset = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(width, 2, 1))
        nn.init.constant_(self.heat[-1].bias, -math.log((1 - 0.1) / 0.1))  # prior 0.1, as CenterNet

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = features[0].shape[-2:]
        fused = sum(F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False) if f.shape[-2:] != size
                    else lat(f) for lat, f in zip(self.lateral, features))
        x = self.fuse(fused)
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


# --- the two backbones (random init; trained by tools/train_detection_zoo.py) -------------------------
def resnet_backbone() -> nn.Module:
    """timm ResNet, BasicBlock (1, 1, 1, 1), widths 32-256: strides 8, 16, 32."""
    return timm.create_model("resnet18", pretrained=False, features_only=True, out_indices=(2, 3, 4),
                             layers=(1, 1, 1, 1), channels=(32, 64, 128, 256), stem_width=16)


def vit_backbone() -> nn.Module:
    """timm ViT, patch 8 at 128 px (16 x 16 tokens), width 128, depth 4: stride 8."""
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, features_only=True, out_indices=(-1,),
                             img_size=INPUT_SIZE, patch_size=STRIDE, embed_dim=128, depth=4, num_heads=4,
                             mlp_ratio=2.0)


class DetectorEntry(BackboneEntry):
    metadata_file = METADATA_FILE

    def build(self, category_ids: Sequence[int]) -> CenterNetDetector:
        return CenterNetDetector(self.backbone(), category_ids)

    def load(self, category_ids: Sequence[int]) -> CenterNetDetector:
        """The model with its shipped weights (stored as float16, loaded as float32)."""
        return load_half_weights(self.build(category_ids), self.weights_file)


DETECTORS: dict[str, DetectorEntry] = {
    "centernet_resnet_scenes": DetectorEntry("centernet_resnet_scenes", "resnet", "cnn", resnet_backbone),
    "centernet_vit_scenes": DetectorEntry("centernet_vit_scenes", "vit", "transformer", vit_backbone),
}
