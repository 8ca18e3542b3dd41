"""CIFAR-10/100 through torchvision (downloads when the network allows and ``download: true``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.data.base import ImageSource, array_digest
from harness.evaluation.samples import Sample
from harness.registry import DATASETS


class _CifarSource(ImageSource):
    dataset_class_name = ""

    def __init__(self, root: Path, split: str = "test", name: str | None = None, download: bool = False,
                 **_: Any) -> None:
        import torchvision.datasets

        if split not in ("train", "test"):
            raise ValueError(f"{self.kind} has splits 'train' and 'test', not {split!r}")
        cls = getattr(torchvision.datasets, self.dataset_class_name)
        self.data = cls(root=str(root), train=split == "train", download=download)
        self.root, self.name, self.split = Path(root), name or self.kind, split
        self.class_names = list(self.data.classes)

    def __len__(self) -> int:
        return len(self.data)

    def load(self, index: int) -> Sample:
        return Sample(self.sample_id(index), Image.fromarray(self.data.data[index]), int(self.data.targets[index]))

    def sample_id(self, index: int) -> str:
        return f"{self.split}/{index:05d}"

    def fingerprint(self) -> dict[str, Any]:
        return {**self.describe(), "content": array_digest(self.data.data, np.asarray(self.data.targets))}

    def native_size(self) -> tuple[int, int]:
        return tuple(self.data.data.shape[1:3])

    def load_arrays(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.data.data[indices], np.asarray(self.data.targets)[indices]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root)}


@DATASETS.register("cifar10")
class Cifar10Source(_CifarSource):
    kind = "cifar10"
    dataset_class_name = "CIFAR10"


@DATASETS.register("cifar100")
class Cifar100Source(_CifarSource):
    kind = "cifar100"
    dataset_class_name = "CIFAR100"
