"""ImageNet-style image folders: ``root/<class>/<image>``, with an optional class-index mapping file.

The mapping file maps folder names to label indices of the model's label space (one ``folder index``
pair per line, e.g. ImageNet-A's 200 WordNet ids to their ImageNet-1k indices). Without it, classes
are the sorted folder names, as torchvision's ImageFolder does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.data.base import CorruptImageError, ImageSource, file_manifest_digest
from harness.evaluation.samples import Sample
from harness.registry import DATASETS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".jpeg2000"}


def read_class_map(path: Path) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(",", " ").split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected '<folder> <class index>', got {line.strip()!r}")
        mapping[parts[0]] = int(parts[1])
    return mapping


def open_rgb(path: Path) -> Image.Image:
    """Decode an image fully (so truncation shows here) and convert it to 8-bit RGB (see ``to_rgb8``)."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb8(image, path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"cannot decode image {path}: {exc}") from None


SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def to_rgb8(image: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB from any mode PIL opens, scaled, never clipped: 16-bit grey is divided by 257 (65535 -> 255;
    PIL's own convert clips it at 255), float grey must lie in [0, 1] and is multiplied by 255. 32-bit integer
    grey (mode I, no defined white level) and out-of-range floats are refused (ValueError naming the file).
    Alpha is dropped, keeping the colour under it, as torchvision's and timm's loaders do; palette images go
    through RGBA so a transparent palette entry keeps its colour."""
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image).astype(np.float64) / 257.0
        return Image.fromarray(np.round(grey).astype(np.uint8)).convert("RGB")
    if mode == "I":
        raise ValueError(f"{path}: 32-bit integer pixels (mode I) have no defined white level; "
                         "save the image as 8- or 16-bit")
    if mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        if not np.isfinite(grey).all() or grey.min() < 0 or grey.max() > 1:
            raise ValueError(f"{path}: float pixels (mode F) must lie in [0, 1]; found "
                             f"{np.nanmin(grey):g}..{np.nanmax(grey):g}")
        return Image.fromarray(np.round(grey * 255).astype(np.uint8)).convert("RGB")
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    elif mode == "La":  # premultiplied alpha: PIL converts it to LA only
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    return image.convert("RGB")


def first_image(root: Path) -> Path | None:
    """Any one image file under ``root``'s class folders (stops at the first: cheap on a big folder)."""
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for path in folder.rglob("*"):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                return path
    return None


@DATASETS.register("imagefolder")
class ImageFolderSource(ImageSource):
    kind = "imagefolder"

    def __init__(self, root: Path, split: str = "val", name: str = "imagefolder",
                 class_map: Path | None = None, num_classes: int | None = None, **_: Any) -> None:
        self.root, self.name, self.split = Path(root), name, split
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not folders:
            raise FileNotFoundError(f"{self.root}: no class folders found")
        self.class_map = Path(class_map) if class_map is not None else None
        given = self.folder_classes()
        if given is not None:
            mapping, where = given
            missing = [f for f in folders if f not in mapping]
            if missing and not self.mapped_folders_only:
                raise ValueError(f"{where}: no class index for folder {missing[0]!r}")
            folders = [f for f in folders if f in mapping]
        else:
            mapping = {folder: index for index, folder in enumerate(folders)}
        size = num_classes or max(mapping.values()) + 1
        self.class_names = [str(i) for i in range(size)]
        for folder, index in mapping.items():
            if index < size:
                self.class_names[index] = folder
        mapped = sorted(set(mapping.values()))
        # a class map naming fewer classes than the label space (ImageNet-A/R: 200 of 1k) restricts predictions
        self._valid_classes = mapped if given is not None and len(mapped) < size and self.masked else None
        self.samples = [
            (path, mapping[folder])
            for folder in folders
            for path in sorted((self.root / folder).rglob("*"))
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise ValueError(self.empty_message(self.root, len(folders)))

    @staticmethod
    def empty_message(root: Path, folders: int) -> str:
        return (f"{root}: its {folders} class folder(s) hold no images "
                f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")

    @classmethod
    def check_root(cls, root: Path) -> None:
        """Cheap checks a suite loader runs before anything: class folders exist and hold an image."""
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"{root}: not a directory")
        folders = [p for p in root.iterdir() if p.is_dir()]
        if not folders:
            raise ValueError(f"{root}: no class folders found")
        if first_image(root) is None:
            raise ValueError(cls.empty_message(root, len(folders)))

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Sample:
        path, label = self.samples[index]
        return Sample(self.sample_id(index), open_rgb(path), label)

    masked = True  # a class map of part of the label space restricts the argmax to it (timm's --valid-labels)
    mapped_folders_only = False  # True: folders the mapping does not name are left out instead of refused

    def folder_classes(self) -> tuple[dict[str, int], object] | None:
        """Folder name -> label index and where that mapping comes from (for errors), or None: sorted folders."""
        return (read_class_map(self.class_map), self.class_map) if self.class_map is not None else None

    def map_files(self) -> list[Path]:
        """Files the labels depend on (part of the fingerprint)."""
        return [self.class_map] if self.class_map is not None else []

    def valid_classes(self) -> list[int] | None:
        return self._valid_classes

    def sample_id(self, index: int) -> str:
        """The file path relative to the root: what an ID-list file names."""
        return self.samples[index][0].relative_to(self.root).as_posix()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root)}

    def fingerprint(self) -> dict[str, Any]:
        return {**self.describe(), "valid_classes": self._valid_classes,
                "content": file_manifest_digest(self.root, [path for path, _ in self.samples], self.map_files())}
