"""The embedded digits data: scikit-learn's 8x8 handwritten digits, shipped inside the package.

Fixed, documented split: ``train_test_split(test_size=0.25, random_state=0, stratify=labels)`` gives
1,347 train and 450 test images. The zoo trained on train, so a held-out split for fitting (temperature
scaling's ``calibration`` role) comes from test: ``test-calib`` and ``test-holdout`` are its two stratified
halves (``train_test_split(test_size=0.5, random_state=0, stratify=...)`` of the test positions, 225 each);
their sample ids are the test split's, so an overlap with ``test`` shows. Each 8x8 image (values 0..16) is scaled to [0, 1], upsampled x4 with
bilinear interpolation (align_corners=False) to 32x32, replicated to RGB and stored as uint8, so the
data behaves like any other image set (corruptions, resizing, PIL).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from harness.data.base import ImageSource, array_digest
from harness.evaluation.samples import Sample
from harness.registry import DATASETS

SPLIT_SEED = 0
TEST_FRACTION = 0.25
SIZE = 32


def blocks_to_rgb(blocks: np.ndarray) -> np.ndarray:
    """N x 8 x 8 block counts (0..16, as in load_digits) to the uint8 N x 32 x 32 x 3 images the zoo sees."""
    small = torch.from_numpy(np.asarray(blocks, dtype=np.float32) / 16.0).unsqueeze(1)
    big = torch.nn.functional.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    pixels = (big.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(1).numpy()
    return np.repeat(pixels[..., None], 3, axis=-1)


@lru_cache(maxsize=1)
def digits_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (uint8 N x 32 x 32 x 3, int64 N), 'test': ...} built deterministically from load_digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    rgb = blocks_to_rgb(digits.images)
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return {"train": (rgb[train_idx], labels[train_idx]), "test": (rgb[test_idx], labels[test_idx])}


@lru_cache(maxsize=1)
def test_halves() -> dict[str, np.ndarray]:
    """Positions in the test split of its two stratified halves, ``test-calib`` and ``test-holdout``."""
    from sklearn.model_selection import train_test_split

    labels = digits_arrays()["test"][1]
    calib, holdout = train_test_split(np.arange(len(labels)), test_size=0.5, random_state=SPLIT_SEED, stratify=labels)
    return {"test-calib": np.sort(calib), "test-holdout": np.sort(holdout)}


@DATASETS.register("digits")
class DigitsSource(ImageSource):
    kind = "digits"
    splits: tuple[str, ...] = ("train", "test", "test-calib", "test-holdout")

    def __init__(self, split: str = "test", name: str = "digits", **_: object) -> None:
        if split not in self.splits:
            raise ValueError(f"{self.kind} has splits {', '.join(map(repr, self.splits))}, not {split!r}")
        self.name, self.split = name, split
        self.images, self.labels = self.arrays(split)
        self.class_names = [str(d) for d in range(10)]

    @staticmethod
    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        if split in ("test-calib", "test-holdout"):
            images, labels = digits_arrays()["test"]
            return images[test_halves()[split]], labels[test_halves()[split]]
        return digits_arrays()[split]

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> Sample:
        return Sample(self.sample_id(index), Image.fromarray(self.images[index]), int(self.labels[index]))

    def sample_id(self, index: int) -> str:
        if self.split in ("test-calib", "test-holdout"):
            return f"test/{int(test_halves()[self.split][index]):04d}"
        return f"{self.split}/{index:04d}"

    def fingerprint(self) -> dict:
        return {**self.describe(), "content": array_digest(self.images, self.labels)}

    def native_size(self) -> tuple[int, int]:
        return (SIZE, SIZE)

    def load_arrays(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.images[indices], self.labels[indices]
