"""Parameter and FLOP counts with torch's own ``FlopCounterMode``.

FlopCounterMode counts FLOPs = 2 x MACs for matmul, convolution and attention (a multiply-add is two
FLOPs); element-wise ops, norms and activations are not counted. We report both GFLOPs and GMACs.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, example: torch.Tensor) -> int:
    """Total FLOPs (2 x MACs) of one forward pass on ``example``."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(example)
    return int(counter.get_total_flops())
