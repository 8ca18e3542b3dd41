"""What every dataset provides: indexable samples (stable id, native-size RGB image, typed target).

A source declares its ``target_kind`` (class | detection | semantic | panoptic, see
harness/evaluation/samples.py) and a cheap content ``fingerprint`` for cache keys.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.evaluation.samples import Sample


class CorruptImageError(RuntimeError):
    """An image file that cannot be decoded; the message names the file."""


class EmptyDatasetError(ValueError):
    """A dataset with no samples: an error before anything runs, never an 'ok' job with n = 0."""


class ImageSource(ABC):
    """A collection of samples. ``load`` returns a ``Sample`` with an RGB PIL image at its native size."""

    kind: str = ""
    name: str = ""
    split: str = ""
    class_names: list[str] = []
    target_kind: ClassVar[str] = "class"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> Sample: ...

    @classmethod
    def check_root(cls, root: Any) -> None:
        """Cheap checks of a dataset's files when a suite is loaded (raise ValueError / OSError naming them)."""

    def sample_id(self, index: int) -> str:
        """A stable name for sample ``index`` (a relative file path, or the index as text)."""
        return str(index)

    def native_size(self) -> tuple[int, int] | None:
        """(height, width) when every image has the same size and ``load_arrays`` is available."""
        return None

    def load_arrays(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """uint8 N x H x W x 3 pixels and int labels for in-memory class sources (see ``native_size``)."""
        raise NotImplementedError

    def valid_classes(self) -> list[int] | list[list[int]] | None:
        """The label-space subset this dataset covers (ImageNet-A/R's 200 of 1k), or None for all classes.

        Classifiers' logits are restricted to these before argmax (timm's ``--valid-labels``). A list of class
        groups instead (ObjectNet) pools each group's logits by their maximum; labels index the groups."""
        return None

    def describe(self) -> dict[str, Any]:
        """Provenance for results: what data, which split, how many images in all."""
        return {"dataset": self.name, "dataset_kind": self.kind, "split": self.split, "dataset_size": len(self)}

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data's content, cheaply (a manifest hash, a file hash); part of cache keys."""
        return self.describe()


class SubsetSource(ImageSource):
    """A fixed list of indices into another source (a seeded draw, an ID list, or a shard)."""

    def __init__(self, base: ImageSource, indices: list[int], how: str) -> None:
        self.base, self.indices, self.how = base, list(indices), how
        self.kind, self.name, self.split, self.class_names = base.kind, base.name, base.split, base.class_names
        self.target_kind = base.target_kind

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> Sample:
        return self.base.load(self.indices[index])

    def sample_id(self, index: int) -> str:
        return self.base.sample_id(self.indices[index])

    def native_size(self) -> tuple[int, int] | None:
        return self.base.native_size()

    def load_arrays(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.base.load_arrays([self.indices[i] for i in indices])

    def valid_classes(self) -> list[int] | list[list[int]] | None:
        return self.base.valid_classes()

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "subset": self.how, "subset_size": len(self)}

    def fingerprint(self) -> dict[str, Any]:
        return {**self.base.fingerprint(), "subset": self.how}


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 of in-memory arrays (dtype, shape and bytes): the content identity of embedded data."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def file_manifest_digest(root: Path, paths: list[Path], content_files: list[Path] = ()) -> str:
    """A cheap identity of a folder of images: relative paths + sizes + mtimes of ``paths``, plus the
    full content hash of small annotation/map files (``content_files``)."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    for path in content_files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def base_and_indices(source: ImageSource) -> tuple[ImageSource, list[int]]:
    """The full dataset under a (possibly subset) source and each sample's index in it."""
    if isinstance(source, SubsetSource):
        return source.base, list(source.indices)
    return source, list(range(len(source)))


def take_sample(source: ImageSource, n: int | None, seed: int, why: str = "limit") -> ImageSource:
    """``n`` samples, the same for every model: the first ``n`` of a subset (whose order is already a seeded
    random draw or the user's ID list), else a seeded random draw from the whole dataset.

    ``--limit`` and a task's ``n`` use this instead of "the first n", which on a class-sorted folder covers
    only the first classes.
    """
    if n is None or n >= len(source):
        return source
    if isinstance(source, SubsetSource):
        return SubsetSource(source.base, source.indices[:n], f"{source.how}; first {n} ({why})")
    order = np.random.default_rng(seed).permutation(len(source))[:n].tolist()
    return SubsetSource(source, order, f"{why} {n} (random, seed {seed})")
