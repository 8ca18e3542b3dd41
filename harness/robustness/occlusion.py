"""Occluding a model's input (Naseer et al. 2021, "Intriguing Properties of Vision Transformers").

The input is divided into ``grid x grid`` square cells (the paper's 14 x 14 grid of 16-pixel patches at 224
px; at another input size the same grid, cell edges at ``round(i * size / grid)``), so a cell index means the
same region of the image for every model and the drops are paired across models whatever their resolution.

- ``random``: drop ``round(f * N)`` cells of a seeded per-sample order (one order per sample and seed, so
  the cells dropped at 0.2 include those at 0.1: the curve of one sample is monotone in what it hides);
- ``offset``: the same cells with the grid shifted by half a cell (wrapping around the border, so every cell
  keeps its area), so occluders do not line up with a ViT's own patch grid;
- ``salient`` / ``nonsalient``: cells ranked by a reference model's saliency (gradient x input of its top-1
  logit, pooled per cell), the most (foreground) or least (background) salient dropped first;
- ``pixels``: independent pixels of a seeded per-sample order at the model's input size, as a control.

Dropped pixels take ``fill``: 0 (black, as in the paper), the model's normalisation mean (0 after
normalisation) or seeded uniform noise; the image is in [0, 1] and unnormalised here.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from harness.seeding import derive_seed

VARIANTS = ("random", "offset", "salient", "nonsalient", "pixels")
SALIENCY_VARIANTS = ("salient", "nonsalient")
FILLS = ("zero", "mean", "noise")
SALIENCY_METHODS = ("gradient_x_input",)


def dropped_count(fraction: float, total: int) -> int:
    """round(f * N), halves rounded up (Python's round would take 0.5 * 14 to 7 but 0.5 * 10 to 5 by parity)."""
    return int(math.floor(fraction * total + 0.5))


def cell_edges(size: int, grid: int) -> list[int]:
    return [round(i * size / grid) for i in range(grid + 1)]


def cell_masks(height: int, width: int, grid: int, offset: bool = False) -> torch.Tensor:
    """(grid * grid, H, W) bool: cell ``r * grid + c`` of the grid, shifted by half a cell when ``offset``."""
    rows, cols = cell_edges(height, grid), cell_edges(width, grid)
    masks = torch.zeros(grid * grid, height, width, dtype=torch.bool)
    for r in range(grid):
        for c in range(grid):
            masks[r * grid + c, rows[r]:rows[r + 1], cols[c]:cols[c + 1]] = True
    if offset:
        masks = torch.roll(masks, shifts=(round(height / grid / 2), round(width / grid / 2)), dims=(1, 2))
    return masks


def drop_order(seed: int, sample_id: str, cells: int) -> np.ndarray:
    """The order in which a sample's cells are dropped: a permutation seeded by (seed, sample id) alone."""
    return np.random.default_rng(derive_seed(seed, "occlusion", str(sample_id))).permutation(cells)


def pixel_order(seed: int, sample_id: str, height: int, width: int) -> torch.Tensor:
    """(H, W) ranks: pixel p is masked at fraction f when its rank < round(f * H * W)."""
    rng = np.random.default_rng(derive_seed(seed, "occlusion-pixels", str(sample_id)))
    ranks = np.empty(height * width, dtype=np.int64)
    ranks[rng.permutation(height * width)] = np.arange(height * width)
    return torch.from_numpy(ranks.reshape(height, width))


def saliency_order(saliency: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Cells from most to least salient: the mean of an (H, W) saliency map over each cell (ties by index)."""
    flat = masks.flatten(1).float()
    pooled = (flat @ saliency.flatten().float().cpu()) / flat.sum(1).clamp(min=1)
    return np.argsort(-pooled.numpy(), kind="stable")


def gradient_x_input(module: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) saliency: |sum over channels of x * d(top-1 logit)/dx| for a pixel-space classifier.

    The top-1 class is the model's own prediction (no label is read), so the map is the same whatever the
    ground truth, as a fixed reference map for every model should be."""
    with torch.inference_mode(False), torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        logits = module(x)
        chosen = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(chosen, x)
    return (grad * x.detach()).sum(1).abs()


def fill_image(fill: str, image: torch.Tensor, mean: Sequence[float], seed: int, sample_id: str) -> torch.Tensor:
    """What a dropped pixel of ``image`` (C, H, W) becomes."""
    if fill == "zero":
        return torch.zeros_like(image)
    if fill == "mean":
        return torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1).expand_as(image)
    generator = torch.Generator().manual_seed(derive_seed(seed, "occlusion-noise", str(sample_id)) % 2**63)
    return torch.rand(image.shape, generator=generator).to(image.device, image.dtype)


def occlude(image: torch.Tensor, mask: torch.Tensor, filler: torch.Tensor) -> torch.Tensor:
    """``image`` with the pixels of the (H, W) ``mask`` replaced by ``filler``'s."""
    return torch.where(mask.to(image.device), filler, image)
