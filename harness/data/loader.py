"""From an image source to batches of pixel-space tensors at the model's resolution.

Per sample: load the native image -> optional pixel-space op (a corruption) -> the model's eval
transform (resize, centre crop, to [0, 1]; no normalisation: that lives in the model). Targets stay in
the original image's coordinates (dense tasks map predictions back; see harness/evaluation/samples.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from harness.data.base import CorruptImageError, ImageSource
from harness.data.preprocess import Preprocess

# (image, sample index) -> image: applied at native resolution, before the model's preprocessing.
PixelOp = Callable[[Image.Image, int], Image.Image]
Transform = Callable[[Image.Image], torch.Tensor]


class _ToUnitFloat:
    """uint8 CHW tensor -> float32 in [0, 1] (timm's un-normalised transform stops at uint8)."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.float().div_(255) if tensor.dtype == torch.uint8 else tensor.float()


@lru_cache(maxsize=32)
def eval_transform(preprocess: Preprocess) -> Transform:
    """timm's own eval transform for the model's config (resize, crop), ending in [0, 1] float tensors.

    ``crop_mode: none`` is identity geometry (images already at the model's size, e.g. ImageNet-C files)."""
    from timm.data import create_transform
    from torchvision.transforms import Compose, PILToTensor

    if preprocess.crop_mode == "none":
        return Compose([PILToTensor(), _ToUnitFloat()])
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
    """One batch: images (stacked when sizes agree, else a list), targets, stable sample ids."""

    images: torch.Tensor | list[torch.Tensor]
    targets: Any  # int64 tensor of class indices, or a list of dense targets (original coordinates)
    indices: torch.Tensor  # positions in the job's source
    ids: list[str] = field(default_factory=list)
    orig_sizes: list[tuple[int, int]] = field(default_factory=list)  # (H, W) of each native image
    skipped: list[int] = field(default_factory=list)  # indices of undecodable images left out

    @property
    def labels(self) -> torch.Tensor:
        """Class targets (classification datasets)."""
        if not isinstance(self.targets, torch.Tensor):
            raise TypeError("this batch holds dense targets, not class labels")
        return self.targets

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        move = (lambda t: t.to(device, non_blocking=non_blocking))
        images = move(self.images) if isinstance(self.images, torch.Tensor) else [move(i) for i in self.images]
        targets = move(self.targets) if isinstance(self.targets, torch.Tensor) else self.targets
        return replace(self, images=images, targets=targets)

    def pin_memory(self) -> "Batch":
        """Called by DataLoader(pin_memory=True) on custom batch types: page-locked host copies, so the
        following ``to(cuda, non_blocking=True)`` is a real asynchronous copy."""
        images = self.images.pin_memory() if isinstance(self.images, torch.Tensor) else [i.pin_memory() for i in self.images]
        targets = self.targets.pin_memory() if isinstance(self.targets, torch.Tensor) else self.targets
        return replace(self, images=images, targets=targets)

    def __len__(self) -> int:
        return len(self.indices)


def geometry_is_identity(preprocess: Preprocess, native_size: tuple[int, int] | None) -> bool:
    """True when timm's resize + centre crop would hand back the native image unchanged."""
    if native_size is None or tuple(preprocess.input_size[1:]) != tuple(native_size):
        return False
    if preprocess.crop_mode == "none":
        return True
    return all(math.floor(side / preprocess.crop_pct) == side for side in native_size)


Item = tuple  # (image tensor | None, target, index, sample id, (H, W))


class EvalView(Dataset):
    """A source seen through one model's preprocessing; undecodable images fail or are skipped.

    In-memory class sources whose images already have the model's size skip PIL altogether: a whole
    batch is converted at once (same values as the per-image path; checked in tests).
    """

    def __init__(self, source: ImageSource, preprocess: Preprocess, pixel_op: PixelOp | None = None,
                 skip_corrupt: bool = False) -> None:
        self.source, self.pixel_op, self.skip_corrupt = source, pixel_op, skip_corrupt
        self.transform = eval_transform(preprocess)
        self.batched = (pixel_op is None and source.target_kind == "class"
                        and geometry_is_identity(preprocess, source.native_size()))

    def __getitems__(self, indices: list[int]) -> "Batch | list[Item]":
        if not self.batched:
            return [self[i] for i in indices]
        pixels, labels = self.source.load_arrays(indices)
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
        size = tuple(pixels.shape[1:3])
        return Batch(images.div_(255), torch.from_numpy(labels).long(), torch.tensor(indices, dtype=torch.long),
                     [self.source.sample_id(i) for i in indices], [size] * len(indices))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Item:
        try:
            sample = self.source.load(index)
        except CorruptImageError:
            if not self.skip_corrupt:
                raise
            return None, None, index, self.source.sample_id(index), (0, 0)
        image = sample.image
        size = (image.height, image.width)
        if self.pixel_op is not None:
            image = self.pixel_op(image, index)
        return self.transform(image), sample.target, index, sample.id, size


def collate(items: "Batch | list[Item]") -> Batch:
    """Stack images when their sizes agree (else keep a list); class targets become one tensor."""
    if isinstance(items, Batch):  # already batched by EvalView.__getitems__
        return items
    kept = [item for item in items if item[0] is not None]
    skipped = [item[2] for item in items if item[0] is None]
    if not kept:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), [], [],
                     skipped)
    images = [item[0] for item in kept]
    same_size = all(image.shape == images[0].shape for image in images)
    targets = [item[1] for item in kept]
    class_targets = all(isinstance(t, int) for t in targets)
    return Batch(
        torch.stack(images) if same_size else images,
        torch.tensor(targets, dtype=torch.long) if class_targets else targets,
        torch.tensor([item[2] for item in kept], dtype=torch.long),
        [item[3] for item in kept],
        [item[4] for item in kept],
        skipped,
    )


def make_loader(source: ImageSource, preprocess: Preprocess, batch_size: int, workers: int = 0,
                pixel_op: PixelOp | None = None, skip_corrupt: bool = False, pin_memory: bool = False,
                batch_indices: list[int] | None = None) -> DataLoader:
    """In-order batches (never shuffled: resume and shards count batches by position).

    ``batch_indices`` keeps only those batches (a rank's shard); each keeps exactly the samples it has in
    one process, so sharded numbers equal one process's."""
    view = EvalView(source, preprocess, pixel_op, skip_corrupt)
    batches = [list(range(start, min(start + batch_size, len(source)))) for start in range(0, len(source), batch_size)]
    if batch_indices is not None:
        batches = [batches[i] for i in batch_indices]
    return DataLoader(view, batch_sampler=batches, num_workers=workers, collate_fn=collate, pin_memory=pin_memory,
                      persistent_workers=False)


def batch_count(source: ImageSource, batch_size: int) -> int:
    return math.ceil(len(source) / batch_size)
