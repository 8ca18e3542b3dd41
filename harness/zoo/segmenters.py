"""Embedded semantic segmenters: ONE light FPN head on a tiny timm CNN (ResNet) or a tiny timm hierarchical
transformer (PVT v2, the encoder family SegFormer's MiT belongs to), both ``features_only`` with strides
4, 8, 16 and 32, so that comparing them isolates the backbone.

The head (a Semantic-FPN / SegFormer-style decoder): every feature map is projected to a common width,
upsampled to stride 4 and summed, refined by two 3x3 convolutions, then upsampled to stride 2 and
concatenated with a stride-2 convolution of the image itself (so thing boundaries are drawn at 2-pixel
rather than 4-pixel resolution), and classified; logits come out at the input resolution.

Input: normalised RGB (``MEAN``/``STD``; the harness's ``PixelModel`` does it) at 128 x 128 (the scenes
size). Output: (N, 8, H, W) logits over the scenes' semantic train ids (3 stuff + 5 things).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.zoo.files import ZOO_DIR, BackboneEntry, load_half_weights
from harness.zoo.parts import conv_bn_relu, pvt_backbone, resnet_backbone

METADATA_FILE = ZOO_DIR / "segmentation_zoo.json"
INPUT_SIZE = 128
NUM_CLASSES = 8  # harness/data/scenes.py SEMANTIC_CLASSES
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class FPNHead(nn.Module):
    """Feature maps of strides 4..32 (+ the image) -> class logits at the image's resolution."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, width: int = 64, detail: int = 16) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.fuse = nn.Sequential(conv_bn_relu(width, width), conv_bn_relu(width, width // 2))
        self.detail = conv_bn_relu(3, detail, stride=2)
        self.refine = conv_bn_relu(width // 2 + detail, width // 2)
        self.classify = nn.Conv2d(width // 2, num_classes, 1)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        size = features[0].shape[-2:]
        fused = sum(F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False) if f.shape[-2:] != size
                    else lat(f) for lat, f in zip(self.lateral, features))
        x = self.fuse(fused)
        detail = self.detail(image)
        x = F.interpolate(x, size=detail.shape[-2:], mode="bilinear", align_corners=False)
        x = self.classify(self.refine(torch.cat([x, detail], 1)))
        return F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)


class Segmenter(nn.Module):
    """A ``features_only`` timm backbone + ``FPNHead``: normalised images -> (N, C, H, W) logits."""

    def __init__(self, backbone: nn.Module, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.head = FPNHead(backbone.feature_info.channels(), num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(list(self.backbone(images)), images)


class SegmenterEntry(BackboneEntry):
    metadata_file = METADATA_FILE

    def build(self) -> Segmenter:
        return Segmenter(self.backbone())

    def load(self) -> Segmenter:
        """The model with its shipped weights (stored as float16, loaded as float32), in eval mode."""
        return load_half_weights(self.build(), self.weights_file).eval()


SEGMENTERS: dict[str, SegmenterEntry] = {
    "fpn_resnet_scenes": SegmenterEntry("fpn_resnet_scenes", "resnet", "cnn", resnet_backbone),
    "fpn_pvt_scenes": SegmenterEntry("fpn_pvt_scenes", "pvt_v2", "transformer", pvt_backbone),
}
