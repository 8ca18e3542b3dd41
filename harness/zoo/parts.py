"""What the dense zoo's models share: the two tiny timm backbones (a CNN and a hierarchical transformer, both
``features_only`` with strides 4, 8, 16 and 32, so a detector or segmenter pair differs in its backbone alone)
and the conv-BN-ReLU block of their heads."""
from __future__ import annotations

import timm
from torch import nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def resnet_backbone() -> nn.Module:
    """timm ResNet, BasicBlock (1, 1, 1, 1), widths 32-256: strides 4, 8, 16, 32."""
    return timm.create_model("resnet18", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4),
                             layers=(1, 1, 1, 1), channels=(32, 64, 128, 256), stem_width=16)


def pvt_backbone() -> nn.Module:
    """timm PVT v2 (overlapping patch embeddings, spatial-reduction attention), widths 32-192, depths
    (1, 1, 2, 1): strides 4, 8, 16, 32."""
    return timm.create_model("pvt_v2_b0", pretrained=False, features_only=True, embed_dims=(32, 64, 128, 192),
                             depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 6), mlp_ratios=(4, 4, 4, 4))
