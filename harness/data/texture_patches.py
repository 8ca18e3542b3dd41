"""Texture patches: an embedded far-OOD set for the digits zoo, cut from scikit-image's bundled photos.

Nothing here is a glyph, but every image is rasterised the way ``load_digits`` was made, so the format is
the zoo's own and only the content is out of distribution. Two splits:

- ``textures``: ``PER_IMAGE`` square patches of ``PATCH`` x ``PATCH`` pixels from each of the ``SOURCES``
  (``skimage.data`` images shipped with scikit-image: three textures and seven photos), converted to
  grayscale (PIL's ``L``), at positions drawn uniformly from ``default_rng([SEED, 0, source index])``.
  Each patch is resized to 32x32 (PIL bilinear) and binarised at its own mean (pixels brighter than the
  mean are on), the on-pixels are counted in 4x4 blocks to 8x8 values 0..16, and ``blocks_to_rgb`` gives
  the 32x32 RGB image. A draw whose 8x8 counts are all equal (a flat patch) is dropped and drawn again.
  Labels are the source's position in ``SOURCES`` (class names: the skimage names), source by source.
- ``noise``: a sanity set of ``NOISE`` 8x8 count images, each value uniform on 0..16 from
  ``default_rng([SEED, 1])``, through ``blocks_to_rgb``; one class, ``noise``.

Seeded and fixed, so the set and its fingerprint are the same on every machine with the same skimage images.
Sample ids are ``textures/0000``... and ``noise/0000``..., never a digits split's.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from harness.data.digits import DigitsSource, blocks_to_rgb
from harness.registry import DATASETS

SEED = 20261208
SOURCES = ("brick", "grass", "gravel", "camera", "coffee", "rocket", "astronaut", "coins", "moon", "text")
PER_IMAGE = 40
PATCH = 64  # source pixels on a side; resized to the optdigits bitmap
BITMAP = 32  # the optdigits bitmap side; 4x4 blocks give 8x8
NOISE = 200
MAX_DRAWS = 100 * PER_IMAGE  # a source with (almost) no textured patch is an error, not a hang


def source_gray(name: str) -> np.ndarray:
    """The skimage image ``name`` as a uint8 grayscale H x W array."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    return np.asarray(Image.fromarray(image).convert("L")) if image.ndim == 3 else image.astype(np.uint8)


def patch_blocks(patch: np.ndarray) -> np.ndarray:
    """A grayscale patch as optdigits stores a glyph: 8x8 counts (0..16) of its 32x32 mean-thresholded bitmap."""
    small = np.asarray(Image.fromarray(patch).resize((BITMAP, BITMAP), Image.BILINEAR), dtype=np.float64)
    bitmap = (small > small.mean()).astype(np.int64)
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3))


@lru_cache(maxsize=None)
def texture_blocks() -> tuple[np.ndarray, np.ndarray]:
    """(N x 8 x 8 counts, N labels): PER_IMAGE non-flat patches of each of SOURCES, source by source."""
    blocks, labels = [], []
    for index, name in enumerate(SOURCES):
        gray = source_gray(name)
        rng = np.random.default_rng([SEED, 0, index])
        kept = 0
        for _ in range(MAX_DRAWS):
            top = int(rng.integers(gray.shape[0] - PATCH + 1))
            left = int(rng.integers(gray.shape[1] - PATCH + 1))
            counts = patch_blocks(gray[top:top + PATCH, left:left + PATCH])
            if counts.min() == counts.max():
                continue
            blocks.append(counts)
            labels.append(index)
            kept += 1
            if kept == PER_IMAGE:
                break
        else:
            raise RuntimeError(f"skimage.data.{name}: fewer than {PER_IMAGE} textured patches in {MAX_DRAWS} draws")
    return np.stack(blocks), np.asarray(labels, dtype=np.int64)


@lru_cache(maxsize=None)
def noise_blocks() -> tuple[np.ndarray, np.ndarray]:
    """(NOISE x 8 x 8 counts uniform on 0..16, NOISE zero labels)."""
    rng = np.random.default_rng([SEED, 1])
    return rng.integers(0, 17, size=(NOISE, 8, 8), dtype=np.int64), np.zeros(NOISE, dtype=np.int64)


@DATASETS.register("texture-patches")
class TexturePatchesSource(DigitsSource):
    """Texture and photo patches (``textures``) or uniform block noise (``noise``) in the digits' format."""

    kind = "texture-patches"
    splits = ("textures", "noise")

    def __init__(self, split: str = "textures", name: str = "texture-patches", **_: object) -> None:
        super().__init__(split=split, name=name)
        self.class_names = list(SOURCES) if split == "textures" else ["noise"]

    @staticmethod
    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        blocks, labels = texture_blocks() if split == "textures" else noise_blocks()
        return blocks_to_rgb(blocks), labels
