"""What every dataset provides: indexable pixel-space images with integer labels."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from PIL import Image


class CorruptImageError(RuntimeError):
    """An image file that cannot be decoded; the message names the file."""


class ImageSource(ABC):
    """A labelled image collection. ``load`` returns an RGB PIL image at its native size and its label."""

    kind: str = ""
    name: str = ""
    split: str = ""
    class_names: list[str] = []

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> tuple[Image.Image, int]: ...

    def native_size(self) -> tuple[int, int] | None:
        """(height, width) when every image has the same size and ``load_arrays`` is available."""
        return None

    def load_arrays(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """uint8 N x H x W x 3 pixels and int labels for in-memory sources (see ``native_size``)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Provenance for results: what data, which split, how many images in all."""
        return {"dataset": self.name, "dataset_kind": self.kind, "split": self.split, "dataset_size": len(self)}


class SubsetSource(ImageSource):
    """A fixed list of indices into another source (a seeded sample, an ID list, or --limit)."""

    def __init__(self, base: ImageSource, indices: list[int], how: str) -> None:
        self.base, self.indices, self.how = base, list(indices), how
        self.kind, self.name, self.split, self.class_names = base.kind, base.name, base.split, base.class_names

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> tuple[Image.Image, int]:
        return self.base.load(self.indices[index])

    def native_size(self) -> tuple[int, int] | None:
        return self.base.native_size()

    def load_arrays(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.base.load_arrays([self.indices[i] for i in indices])

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "subset": self.how}


def take_first(source: ImageSource, n: int | None) -> ImageSource:
    """The first ``n`` samples (of a subset, if it is one), kept as indices into the full dataset."""
    if n is None or n >= len(source):
        return source
    if isinstance(source, SubsetSource):
        return SubsetSource(source.base, source.indices[:n], f"{source.how}; first {n}")
    return SubsetSource(source, list(range(n)), f"first {n}")
