"""Which camp a model belongs to: cnn, transformer or hybrid."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where a module is inspected: naming a family (the testbeds) needs none
    from torch import nn

# Checked in order: hybrids first, since "mobilevit" and "levit" also contain "vit".
_NAME_RULES: tuple[tuple[str, str], ...] = (
    ("hybrid", r"coat|maxvit|maxxvit|levit|mobilevit|convit|fastvit|efficientvit|edgenext|nextvit|vit_.*_r\d|hybrid"),
    ("transformer", r"vit|deit|swin|beit|eva|cait|xcit|pit_|tnt_|twins|crossvit|volo|mvitv2|hiera|dino"),
    ("cnn", r"resnet|resnext|efficientnet|mobilenet|convnext|regnet|densenet|vgg|inception|ghostnet|mnasnet|"
            r"dla|dpn|hrnet|rexnet|squeezenet|shufflenet|alexnet|googlenet|cspnet|darknet|nfnet|repvgg|senet|"
            r"res2net|resnest|tresnet|xception|lcnet|fbnet|hardcorenas|tinynet|spnasnet|mixnet|convmixer"),
)


def family_from_name(arch: str) -> str | None:
    lowered = arch.lower()
    for family, pattern in _NAME_RULES:
        if re.search(pattern, lowered):
            return family
    return None


def family_from_modules(net: nn.Module) -> str:
    """Fallback for unknown names: look for attention and for convolutions beyond a patch-embedding stem."""
    from torch import nn

    attention = conv = 0
    for name, module in net.named_modules():
        kind = type(module).__name__.lower()
        if isinstance(module, nn.MultiheadAttention) or kind.endswith("attention"):
            attention += 1
        elif isinstance(module, nn.Conv2d) and "patch_embed" not in name and "stem" not in name:
            conv += 1
    if attention and conv:
        return "hybrid"
    return "transformer" if attention else "cnn"


def infer_family(arch: str, net: nn.Module) -> str:
    return family_from_name(arch) or family_from_modules(net)
