"""Readers for the canonical precomputed corruption benchmarks, aligned sample-by-sample with the clean set.

- ImageNet-C (Hendrycks & Dietterich 2019): ``root/<corruption>/<severity>/<wnid>/<image>``, the clean
  validation file names under each severity. The clean dataset (an image folder of the val set, or a subset
  of it) says which files to read and their labels (its class map), so clean and corrupted accuracy are
  measured on the same images.
- CIFAR-10-C: ``root/<corruption>.npy`` (uint8, 5 severities x N images x 32 x 32 x 3, severity-major, each
  block in CIFAR-10 test order) and ``root/labels.npy``. The clean dataset's indices pick the rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.data.base import ImageSource, base_and_indices, file_manifest_digest
from harness.evaluation.samples import Sample
from harness.data.folder import ImageFolderSource, open_rgb

LAYOUTS = ("imagenet-c", "cifar10-c")


class ImageNetCSource(ImageSource):
    """One corruption x severity of ImageNet-C: the clean image folder's files, in its order, with its labels."""

    kind = "imagenet-c"

    def __init__(self, root: Path, corruption: str, severity: int, clean: ImageSource) -> None:
        base, indices = base_and_indices(clean)
        if not isinstance(base, ImageFolderSource):
            raise ValueError(f"ImageNet-C files are matched by relative path: the clean dataset {clean.name!r} "
                             f"must be an image folder (kind imagefolder), not {base.kind!r}")
        self.folder = Path(root) / corruption / str(severity)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such ImageNet-C directory (<root>/<corruption>/<severity>)")
        self.samples = [(self.folder / base.sample_id(i), base.samples[i][1]) for i in indices]
        self.ids = [clean.sample_id(i) for i in range(len(clean))]
        missing = [path for path, _ in self.samples if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: no corrupted copy of this clean image "
                                    f"({len(missing)} missing under {self.folder})")
        self.root, self.corruption, self.severity = Path(root), corruption, severity
        self.name, self.split, self.class_names = clean.name, clean.split, clean.class_names

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Sample:
        path, label = self.samples[index]
        return Sample(self.ids[index], open_rgb(path), label)

    def sample_id(self, index: int) -> str:
        return self.ids[index]

    def fingerprint(self) -> dict[str, Any]:
        return {**self.describe(), "content": file_manifest_digest(self.folder, [p for p, _ in self.samples])}

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, "dataset_kind": self.kind, "root": str(self.root),
                "corruption": self.corruption, "severity": self.severity, "dataset_size": len(self)}


class Cifar10CSource(ImageSource):
    """One corruption x severity of CIFAR-10-C, rows picked by the clean source's CIFAR-10 test indices."""

    kind = "cifar10-c"

    def __init__(self, root: Path, corruption: str, severity: int, clean: ImageSource) -> None:
        root = Path(root)
        images_file, labels_file = root / f"{corruption}.npy", root / "labels.npy"
        for path in (images_file, labels_file):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such CIFAR-10-C file (<root>/<corruption>.npy, <root>/labels.npy)")
        self.images = np.load(images_file, mmap_mode="r")
        self.labels = np.load(labels_file, mmap_mode="r")
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"{images_file}: expected uint8 N x H x W x 3, got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels) or len(self.images) % 5:
            raise ValueError(f"{images_file}: {len(self.images)} images for {len(self.labels)} labels; expected "
                             "5 severity blocks of equal size")
        base, indices = base_and_indices(clean)
        self.block = len(self.images) // 5
        if len(base) != self.block:
            raise ValueError(f"{images_file}: {self.block} images per severity but the clean dataset {clean.name!r} "
                             f"has {len(base)}; CIFAR-10-C rows follow the CIFAR-10 test split")
        self.rows = [(severity - 1) * self.block + i for i in indices]
        self.ids = [clean.sample_id(i) for i in range(len(clean))]
        self.images_file = images_file
        self.root, self.corruption, self.severity = root, corruption, severity
        self.name, self.split, self.class_names = clean.name, clean.split, clean.class_names

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int) -> Sample:
        row = self.rows[index]
        return Sample(self.ids[index], Image.fromarray(np.array(self.images[row])), int(self.labels[row]))

    def sample_id(self, index: int) -> str:
        return self.ids[index]

    def fingerprint(self) -> dict[str, Any]:
        return {**self.describe(), "content": file_manifest_digest(self.root, [self.images_file, self.root / "labels.npy"])}

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, "dataset_kind": self.kind, "root": str(self.root),
                "corruption": self.corruption, "severity": self.severity, "dataset_size": len(self)}


def canonical_source(layout: str, root: Path, corruption: str, severity: int, clean: ImageSource) -> ImageSource:
    """The precomputed images of one corruption x severity for the samples of ``clean``."""
    if layout == "imagenet-c":
        return ImageNetCSource(root, corruption, severity, clean)
    if layout == "cifar10-c":
        return Cifar10CSource(root, corruption, severity, clean)
    raise ValueError(f"unknown corruption layout {layout!r} (known: {', '.join(LAYOUTS)})")
