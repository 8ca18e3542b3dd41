"""From an image source to batches of pixel-space tensors at the model's resolution.

Per sample: load the native image -> optional pixel-space op (a corruption) -> the model's eval
transform (resize, centre crop, to [0, 1]; no normalisation: that lives in the model).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from harness.data.base import CorruptImageError, ImageSource
from harness.models.wrapper import Preprocess

# (image, sample index) -> image: applied at native resolution, before the model's preprocessing.
PixelOp = Callable[[Image.Image, int], Image.Image]


class _ToUnitFloat:
    """uint8 CHW tensor -> float32 in [0, 1] (timm's un-normalised transform stops at uint8)."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.float().div_(255) if tensor.dtype == torch.uint8 else tensor.float()


@lru_cache(maxsize=32)
def eval_transform(preprocess: Preprocess) -> Callable[[Image.Image], torch.Tensor]:
    """timm's own eval transform for the model's config (resize, crop), ending in [0, 1] float tensors."""
    from timm.data import create_transform
    from torchvision.transforms import Compose

    geometry = create_transform(
        input_size=preprocess.input_size,
        is_training=False,
        interpolation=preprocess.interpolation,
        crop_pct=preprocess.crop_pct,
        crop_mode=preprocess.crop_mode,
        normalize=False,
    )
    return Compose([geometry, _ToUnitFloat()])


@dataclass
class Batch:
    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    skipped: list[int] = field(default_factory=list)  # indices of undecodable images left out

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        return Batch(self.images.to(device, non_blocking=non_blocking),
                     self.labels.to(device, non_blocking=non_blocking), self.indices, self.skipped)

    def __len__(self) -> int:
        return len(self.labels)


def geometry_is_identity(preprocess: Preprocess, native_size: tuple[int, int] | None) -> bool:
    """True when timm's resize + centre crop would hand back the native image unchanged."""
    if native_size is None or tuple(preprocess.input_size[1:]) != tuple(native_size):
        return False
    return all(math.floor(side / preprocess.crop_pct) == side for side in native_size)


class EvalView(Dataset):
    """A source seen through one model's preprocessing; undecodable images fail or are skipped.

    In-memory sources whose images already have the model's size skip PIL altogether: a whole batch
    is converted at once (same values as the per-image path; checked in tests).
    """

    def __init__(self, source: ImageSource, preprocess: Preprocess, pixel_op: PixelOp | None = None,
                 skip_corrupt: bool = False) -> None:
        self.source, self.pixel_op, self.skip_corrupt = source, pixel_op, skip_corrupt
        self.transform = eval_transform(preprocess)
        self.batched = pixel_op is None and geometry_is_identity(preprocess, source.native_size())

    def __getitems__(self, indices: list[int]) -> "Batch | list[tuple[torch.Tensor | None, int, int]]":
        if not self.batched:
            return [self[i] for i in indices]
        pixels, labels = self.source.load_arrays(indices)
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
        return Batch(images.div_(255), torch.from_numpy(labels).long(), torch.tensor(indices, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, int]:
        try:
            image, label = self.source.load(index)
        except CorruptImageError:
            if not self.skip_corrupt:
                raise
            return None, -1, index
        if self.pixel_op is not None:
            image = self.pixel_op(image, index)
        return self.transform(image), label, index


def collate(items: "Batch | list[tuple[torch.Tensor | None, int, int]]") -> Batch:
    if isinstance(items, Batch):  # already batched by EvalView.__getitems__
        return items
    kept = [item for item in items if item[0] is not None]
    skipped = [item[2] for item in items if item[0] is None]
    if not kept:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), skipped)
    return Batch(
        torch.stack([item[0] for item in kept]),
        torch.tensor([item[1] for item in kept], dtype=torch.long),
        torch.tensor([item[2] for item in kept], dtype=torch.long),
        skipped,
    )


def make_loader(source: ImageSource, preprocess: Preprocess, batch_size: int, workers: int = 0,
                pixel_op: PixelOp | None = None, skip_corrupt: bool = False,
                pin_memory: bool = False) -> DataLoader:
    """In-order batches (never shuffled: resumable attacks count finished batches by position)."""
    return DataLoader(
        EvalView(source, preprocess, pixel_op, skip_corrupt),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
