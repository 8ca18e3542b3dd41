"""ImageNet-C corruptions (imagecorruptions library) as seeded, cacheable pixel-space ops.

Determinism: ``imagecorruptions`` draws from three RNGs, all seeded here per
(seed, corruption, severity, sample) so one image's corruption never depends on which images came before:
- numpy's global legacy RNG (``np.random.normal/poisson/uniform/randint``: noise, motion-blur angle, snow,
  frost crop, fog plasma, spatter, elastic) -> ``np.random.seed``; the caller's global state is restored after;
- ``impulse_noise`` passes its ``seed`` argument to ``skimage.util.random_noise`` (a fresh ``default_rng``);
- ``glass_blur`` seeds numba's own RNG inside its jitted shuffle from its ``seed`` argument (OS entropy if None).
cv2, scipy.ndimage and the skimage filters used are deterministic.

Small images: the library needs at least 32x32 pixels (the embedded digits and CIFAR are exactly 32x32, and all
19 corruptions run there; frost crops a patch of its rescaled frost photo). One defect shows at that size:
``spatter`` severities 1-3 divide by the maximum of the spatter mask, which is 0/0 when no spatter survives the
threshold (about 3% of 32x32 digits at severity 1); the library then casts NaN to uint8 (a black image on x86).
We return the clean image in that case, which is what the formula means when there is no spatter at all.
Note that the severity constants are ImageNet-C's, tuned for 224x224: on 32x32 images they are not CIFAR-10-C's.
"""
from __future__ import annotations

import zlib
from collections import OrderedDict
from typing import Hashable, Iterable, Sequence

import numpy as np
from imagecorruptions import corrupt, get_corruption_names
from PIL import Image

GROUPS = {group: tuple(get_corruption_names(group))
          for group in ("common", "validation", "all", "noise", "blur", "weather", "digital")}
COMMON = GROUPS["common"]  # the 15 ImageNet-C corruptions
EXTRA = GROUPS["validation"]  # speckle_noise, gaussian_blur, spatter, saturate
ALL = GROUPS["all"]
SHORT_NAMES = {"gaussian_noise": "gauss", "shot_noise": "shot", "impulse_noise": "impulse",  # figure labels
               "defocus_blur": "defocus", "glass_blur": "glass", "motion_blur": "motion", "zoom_blur": "zoom",
               "brightness": "bright", "elastic_transform": "elastic", "pixelate": "pixel",
               "jpeg_compression": "jpeg", "speckle_noise": "speckle", "gaussian_blur": "g-blur"}

SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIDE = 32  # imagecorruptions refuses smaller images
SEEDED_BY_ARGUMENT = ("impulse_noise", "glass_blur")  # RNGs outside numpy's global state


def expand_names(names: Iterable[str]) -> list[str]:
    """Corruption names and group names (``common``, ``noise``, ...) -> unique names, in order."""
    out: list[str] = []
    for name in names:
        if name in GROUPS:
            out.extend(GROUPS[name])
        elif name in ALL:
            out.append(name)
        else:
            raise ValueError(f"unknown corruption {name!r} (known: {', '.join(ALL)}; groups: {', '.join(GROUPS)})")
    return list(dict.fromkeys(out))


def sample_seed(seed: int, corruption: str, severity: int, sample: int) -> int:
    """An independent 32-bit seed per (run seed, corruption, severity, sample)."""
    entropy = [seed % 2**32, zlib.crc32(corruption.encode()), severity, sample]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def corrupt_array(image: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """``imagecorruptions.corrupt`` with every RNG it uses seeded from ``seed`` (uint8 HxWx3 in and out)."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"corruptions need images of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {width}x{height}")
    kwargs = {"seed": seed} if corruption in SEEDED_BY_ARGUMENT else {}
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        if corruption != "spatter":
            return corrupt(image, corruption_name=corruption, severity=severity, **kwargs)
        with np.errstate(invalid="raise"):
            try:
                return corrupt(image, corruption_name=corruption, severity=severity)
            except FloatingPointError:  # empty spatter mask: 0/0 in the library (see module docstring)
                return image.copy()
    finally:
        np.random.set_state(saved)


def resize_crop(image: Image.Image, resize: int, crop: int) -> Image.Image:
    """ImageNet-C's geometry before corrupting: shorter side to ``resize`` (bilinear), centre ``crop``."""
    from torchvision.transforms.functional import InterpolationMode, center_crop, resize as tv_resize

    return center_crop(tv_resize(image, resize, interpolation=InterpolationMode.BILINEAR), crop)


class FillOnceCache:
    """Corrupted images kept in memory up to ``max_bytes``; once full, new entries are not stored.

    Every model scans the same (corruption, severity, sample) sequence, so an LRU smaller than that
    sequence would evict each entry just before it is needed again and never hit; keeping the first
    entries that fit gives hits in proportion to the budget instead.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.size, self.hits, self.misses = max_bytes, 0, 0, 0
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get(self, key: Hashable) -> np.ndarray | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
        else:
            self.hits += 1
        return item

    def put(self, key: Hashable, array: np.ndarray) -> None:
        if key not in self._items and self.size + array.nbytes <= self.max_bytes:
            array.setflags(write=False)
            self._items[key] = array
            self.size += array.nbytes

    def __len__(self) -> int:
        return len(self._items)


class Corruptor:
    """The pixel op for one (corruption, severity): ``(image, index) -> corrupted image``.

    ``sample_ids[index]`` is the sample's stable identity (its index in the full dataset), so a sample's
    corruption does not change with the subset, ``--limit`` or processing order.
    """

    def __init__(self, corruption: str, severity: int, seed: int, sample_ids: Sequence[int],
                 cache: FillOnceCache | None = None, dataset_key: str = "",
                 precrop: tuple[int, int] | None = None) -> None:
        if corruption not in ALL:
            raise ValueError(f"unknown corruption {corruption!r}")
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of 1..5, got {severity!r}")
        self.corruption, self.severity, self.seed = corruption, severity, seed
        self.sample_ids, self.cache, self.dataset_key, self.precrop = sample_ids, cache, dataset_key, precrop

    def __call__(self, image: Image.Image, index: int) -> Image.Image:
        sample = int(self.sample_ids[index])
        key = (self.dataset_key, sample, self.corruption, self.severity, self.seed, self.precrop)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is None:
            if self.precrop is not None:
                image = resize_crop(image, *self.precrop)
            seed = sample_seed(self.seed, self.corruption, self.severity, sample)
            cached = corrupt_array(np.asarray(image.convert("RGB")), self.corruption, self.severity, seed)
            if self.cache is not None:
                self.cache.put(key, cached)
        return Image.fromarray(cached)


# AlexNet's ImageNet-C top-1 error per corruption, averaged over the 5 severities: the published denominators
# of CE/mCE (Hendrycks & Dietterich, ICLR 2019, https://arxiv.org/abs/1903.12261). Values as distributed with
# github.com/hendrycks/robustness and reused verbatim by AugMix (google-research/augmix, imagenet.py) and
# mmpretrain; the three agree digit for digit. The clean error (for relative mCE) is not in those files: we use
# torchvision's published top-1 of its pretrained AlexNet (AlexNet_Weights.IMAGENET1K_V1: 56.522%), the model
# family the paper evaluated (hendrycks/robustness ImageNet-C/test.py loads torchvision's alexnet-owt weights);
# tests check it against torchvision's metadata. Relative mCE against this table is therefore approximate.
ALEXNET_IMAGENET_C = {
    "clean": 1 - 0.56522,
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640,
    "defocus_blur": 0.819880, "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360,
    "snow": 0.866816, "frost": 0.826572, "fog": 0.819324, "brightness": 0.564592,
    "contrast": 0.853204, "elastic_transform": 0.646056, "pixelate": 0.717840, "jpeg_compression": 0.606500,
}
REFERENCE_TABLES = {"alexnet-imagenet-c": ALEXNET_IMAGENET_C}
