"""Semantic segmentation folders: images plus single-channel label PNGs, in the common layouts.

Presets (every field can be overridden in the suite's dataset entry):
- ``ade20k``: ``images/<split>/*.jpg`` + ``annotations/<split>/*.png`` (split ``validation``; ``val`` is
  accepted), 150 classes, ``reduce_zero_label``: label 0 ("other") becomes the ignore index and every
  other value is lowered by one, as mmseg's ``LoadAnnotations(reduce_zero_label=True)``.
- ``cityscapes``: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` + ``gtFine/<split>/<city>/
  *_gtFine_labelTrainIds.png`` (the 19 training classes; 255 = ignore, as cityscapesScripts writes them).
- ``voc``: ``JPEGImages/<id>.jpg`` + ``SegmentationClass/<id>.png`` (palette PNGs, 255 on object borders)
  for the ids in ``ImageSets/Segmentation/<split>.txt``; 21 classes with background.
Without a preset, ``images`` and ``annotations`` name the folders; a label is the image's relative path
with a ``.png`` suffix.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors

from harness.data.base import CorruptImageError, EmptyDatasetError, ImageSource
from harness.data.folder import IMAGE_SUFFIXES, open_rgb
from harness.evaluation.samples import Sample, SemanticTarget
from harness.registry import DATASETS

CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle"]
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]


@dataclass(frozen=True)
class Layout:
    images: str  # folder relative to root; {split} is replaced
    annotations: str
    image_suffix: str | None  # None: any image suffix
    label_suffix: str  # replaces the image suffix
    num_classes: int | None
    class_names: tuple[str, ...] = ()
    reduce_zero_label: bool = False
    split_file: str | None = None  # a list of ids (file stems), relative to root
    split_alias: tuple[tuple[str, str], ...] = ()


PRESETS = {
    "ade20k": Layout("images/{split}", "annotations/{split}", ".jpg", ".png", 150, reduce_zero_label=True,
                     split_alias=(("val", "validation"), ("train", "training"))),
    "cityscapes": Layout("leftImg8bit/{split}", "gtFine/{split}", "_leftImg8bit.png", "_gtFine_labelTrainIds.png",
                         19, tuple(CITYSCAPES_CLASSES)),
    "voc": Layout("JPEGImages", "SegmentationClass", ".jpg", ".png", 21, tuple(VOC_CLASSES),
                  split_file="ImageSets/Segmentation/{split}.txt"),
}


def read_class_names(path: Path) -> list[str]:
    """One class name per line, in label order (blank lines and ``#`` comments skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FileNotFoundError(f"{path}: cannot read the class-names file ({exc.strerror})") from None
    names = [line.split("#", 1)[0].strip() for line in lines]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"{path}: the class-names file lists no classes")
    return names


def manifest_hash(root: Path, paths: list[Path]) -> str:
    """sha256 of the relative paths and byte sizes: a cheap content identity for cache keys."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def read_label_png(path: Path) -> np.ndarray:
    """A single-channel label PNG (grey or palette indices) as int64; RGB colour labels are refused."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I", "I;16", "1"):
                raise ValueError(f"{path}: label PNGs must be single-channel class indices, got mode {image.mode}")
            return np.asarray(image, dtype=np.int64)
    except (OSError, SyntaxError) as exc:
        raise CorruptImageError(f"cannot decode label {path}: {exc}") from None


@DATASETS.register("segfolder")
class SegFolderSource(ImageSource):
    kind = "segfolder"
    target_kind = "semantic"

    def __init__(self, root: Path | str, split: str = "val", name: str = "segfolder", preset: str | None = None,
                 images: str | None = None, annotations: str | None = None, ignore_index: int | None = None,
                 reduce_zero_label: bool | None = None, class_names: Path | str | None = None,
                 num_classes: int | None = None, **_: Any) -> None:
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"dataset {name}: unknown segfolder preset {preset!r} (known: {', '.join(PRESETS)})")
        layout = PRESETS.get(preset or "", Layout("", "", None, ".png", None))
        if preset is None and (images is None or annotations is None):
            raise ValueError(f"dataset {name}: a segfolder without a preset needs 'images' and 'annotations'")
        self.root, self.name, self.preset = Path(root), name, preset
        self.split = dict(layout.split_alias).get(split, split)
        self.ignore_index = 255 if ignore_index is None else int(ignore_index)
        self.reduce_zero_label = layout.reduce_zero_label if reduce_zero_label is None else bool(reduce_zero_label)
        self.image_dir = self.root / (images or layout.images).format(split=self.split)
        self.label_dir = self.root / (annotations or layout.annotations).format(split=self.split)
        for what, folder in (("images", self.image_dir), ("annotations", self.label_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"dataset {name}: {what} folder {folder} does not exist")
        if layout.split_file is not None:
            split_file = self.root / layout.split_file.format(split=self.split)
            self.samples = self._from_split_file(split_file, layout)
        else:
            self.samples = self._from_folders(layout)
        if not self.samples:
            raise EmptyDatasetError(f"dataset {name}: no images found under {self.image_dir}")
        if class_names is not None:
            self.class_names = read_class_names(Path(class_names))
        elif layout.class_names:
            self.class_names = list(layout.class_names)
        else:
            size = num_classes or layout.num_classes
            if size is None:
                raise ValueError(f"dataset {name}: give 'class_names' (a file) or 'num_classes'")
            self.class_names = [str(i) for i in range(size)]
        if num_classes is not None and num_classes != len(self.class_names):
            raise ValueError(f"dataset {name}: num_classes {num_classes} but {len(self.class_names)} class names")

    def _from_folders(self, layout: Layout) -> list[tuple[Path, Path]]:
        suffix = layout.image_suffix
        images = sorted(p for p in self.image_dir.rglob("*") if p.is_file() and (
            p.name.endswith(suffix) if suffix else p.suffix.lower() in IMAGE_SUFFIXES))
        pairs = []
        for image in images:
            relative = image.relative_to(self.image_dir).as_posix()
            stem = relative[: -len(suffix)] if suffix else relative[: -len(image.suffix)]
            pairs.append((image, self.label_dir / f"{stem}{layout.label_suffix}"))
        missing = [label for _, label in pairs if not label.is_file()]
        if missing:
            raise FileNotFoundError(f"dataset {self.name}: {len(missing)} image(s) without a label, first "
                                    f"{missing[0]} missing")
        return pairs

    def _from_split_file(self, split_file: Path, layout: Layout) -> list[tuple[Path, Path]]:
        if not split_file.is_file():
            raise FileNotFoundError(f"dataset {self.name}: split file {split_file} does not exist")
        ids = [line.strip() for line in split_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        pairs = [(self.image_dir / f"{i}{layout.image_suffix}", self.label_dir / f"{i}{layout.label_suffix}")
                 for i in ids]
        for image, label in pairs:
            if not image.is_file() or not label.is_file():
                raise FileNotFoundError(f"{split_file}: id {image.stem!r} has no "
                                        f"{'image ' + str(image) if not image.is_file() else 'label ' + str(label)}")
        return pairs

    def __len__(self) -> int:
        return len(self.samples)

    def sample_id(self, index: int) -> str:
        """The image path relative to the images folder (``frankfurt/frankfurt_..._leftImg8bit.png``)."""
        return self.samples[index][0].relative_to(self.image_dir).as_posix()

    def load(self, index: int) -> Sample:
        image_path, label_path = self.samples[index]
        image = open_rgb(image_path)
        label = read_label_png(label_path)
        if label.shape != (image.height, image.width):
            raise ValueError(f"{label_path}: label is {label.shape[1]}x{label.shape[0]} but image {image_path.name} "
                             f"is {image.width}x{image.height}")
        if self.reduce_zero_label:
            reduced = label - 1
            reduced[(label == 0) | (label == self.ignore_index)] = self.ignore_index
            label = reduced
        mask = tv_tensors.Mask(torch.from_numpy(label))
        return Sample(self.sample_id(index), image, SemanticTarget(mask=mask, ignore_index=self.ignore_index))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root), "preset": self.preset,
                "ignore_index": self.ignore_index, "reduce_zero_label": self.reduce_zero_label,
                "num_classes": self.num_classes}

    def fingerprint(self) -> dict[str, Any]:
        files = [path for pair in self.samples for path in pair]
        described = {k: v for k, v in self.describe().items() if k != "root"}  # content, not location
        return {**described, "manifest": manifest_hash(self.root, files),
                "class_names": hashlib.sha256(json.dumps(self.class_names).encode()).hexdigest()[:16]}
