"""Parameter and FLOP counts with torch's own ``FlopCounterMode``.

FlopCounterMode counts FLOPs = 2 x MACs for matmul, convolution and attention (a multiply-add is two
FLOPs); element-wise ops, norms and activations are not counted. The latency task reports both: ``gflops``
and ``gmacs`` (= gflops / 2 exactly, since every counted op is a multiply-add; timm's tables quote GMACs).
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


def flops_to_macs(flops: int) -> float:
    """Multiply-accumulates for FlopCounterMode's count (it counts 2 FLOPs per multiply-add and nothing else)."""
    return flops / 2
