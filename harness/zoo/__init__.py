"""The embedded model zoo: real timm architectures at tiny sizes, trained on the embedded digits data.

Weights ship beside this file as safetensors; ``zoo.json`` records each model's training recipe,
test accuracy and weights hash. ``tools/train_zoo.py`` reproduces them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from harness.registry import ZOO_MODELS

ZOO_DIR = Path(__file__).resolve().parent
METADATA_FILE = ZOO_DIR / "zoo.json"

# The embedded digits data: 32x32 RGB in [0, 1] (see harness/data/digits.py).
DIGITS_INPUT = (3, 32, 32)
DIGITS_MEAN = (0.305, 0.305, 0.305)
DIGITS_STD = (0.324, 0.324, 0.324)
DIGITS_CLASSES = 10


@dataclass(frozen=True)
class ZooEntry:
    name: str
    arch: str  # the timm architecture family the class comes from
    family: str
    build: Callable[[], nn.Module]

    @property
    def weights_file(self) -> Path:
        return ZOO_DIR / f"{self.name}.safetensors"

    def pretrained_cfg(self) -> dict:
        return {
            "input_size": DIGITS_INPUT,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": DIGITS_MEAN,
            "std": DIGITS_STD,
            "num_classes": DIGITS_CLASSES,
        }


def _register(name: str, arch: str, family: str) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    def decorate(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        ZOO_MODELS.register(name)(ZooEntry(name, arch, family, build))
        return build

    return decorate


@_register("resnet_digits", arch="resnet", family="cnn")
def _resnet() -> nn.Module:
    from timm.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=16,
                  num_classes=DIGITS_CLASSES)


@_register("convnext_digits", arch="convnext", family="cnn")
def _convnext() -> nn.Module:
    from timm.models.convnext import ConvNeXt

    return ConvNeXt(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), patch_size=2, kernel_sizes=5,
                    num_classes=DIGITS_CLASSES)


@_register("vit_digits", arch="vit", family="transformer")
def _vit() -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0,
                             num_classes=DIGITS_CLASSES)


@_register("swin_digits", arch="swin", family="transformer")
def _swin() -> nn.Module:
    from timm.models.swin_transformer import SwinTransformer

    return SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=48, depths=(2, 2),
                           num_heads=(3, 6), mlp_ratio=2.0, drop_path_rate=0.0, num_classes=DIGITS_CLASSES)


def metadata() -> dict:
    """Training recipe, accuracy and hash per zoo model, as written by tools/train_zoo.py."""
    if not METADATA_FILE.exists():
        return {}
    return json.loads(METADATA_FILE.read_text(encoding="utf-8"))
