"""COCO panoptic: images, a folder of panoptic PNGs and the panoptic json (``categories`` with ``isthing``).

Layout (COCO's, also panopticapi's defaults): ``<root>/<split>/*.jpg``, ``<root>/annotations/panoptic_<split>.json``
and its PNGs in ``<root>/annotations/panoptic_<split>/`` (the json path without ``.json``). A PNG's pixel
holds segment id ``R + 256 G + 256^2 B`` (panopticapi's ``rgb2id``); 0 is VOID. Samples follow the json's
``annotations`` order, as ``pq_compute`` does.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from harness.data.base import CorruptImageError, EmptyDatasetError, ImageSource
from harness.data.folder import open_rgb
from harness.data.segfolder import manifest_hash
from harness.evaluation.samples import PanopticTarget, Sample
from harness.registry import DATASETS


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colours to int64 segment ids: R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(segment_map: np.ndarray) -> np.ndarray:
    """The inverse of ``rgb_to_id``: int segment ids (< 256^3) to (H, W, 3) uint8 colours."""
    ids = np.asarray(segment_map, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // (256 * 256) % 256], axis=-1).astype(np.uint8)


def _field(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise ValueError(f"{where}: missing field {key!r}")
    return entry[key]


@DATASETS.register("coco_panoptic")
class CocoPanopticSource(ImageSource):
    kind = "coco_panoptic"
    target_kind = "panoptic"

    def __init__(self, root: Path | str, split: str = "val2017", name: str = "coco_panoptic",
                 images: str | None = None, annotations: str | None = None, **_: Any) -> None:
        self.root, self.split, self.name = Path(root), split, name
        self.json_path = self.root / (annotations or f"annotations/panoptic_{split}.json")
        self.image_dir = self.root / (images or split)
        self.png_dir = self.json_path.with_suffix("")
        try:
            data = json.loads(self.json_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise FileNotFoundError(f"dataset {name}: cannot read panoptic json {self.json_path} "
                                    f"({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.json_path}: not valid json ({exc.msg}, line {exc.lineno})") from None
        for what, folder in (("images", self.image_dir), ("panoptic PNG", self.png_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"dataset {name}: {what} folder {folder} does not exist")
        where = str(self.json_path)
        self._categories = [{"id": int(_field(c, "id", f"{where}: categories[{i}]")),
                             "name": str(_field(c, "name", f"{where}: categories[{i}]")),
                             "isthing": int(_field(c, "isthing", f"{where}: categories[{i}]"))}
                            for i, c in enumerate(_field(data, "categories", where))]
        files = {int(_field(im, "id", f"{where}: images[{i}]")): str(_field(im, "file_name", f"{where}: images[{i}]"))
                 for i, im in enumerate(_field(data, "images", where))}
        self.annotations = []
        for i, ann in enumerate(_field(data, "annotations", where)):
            at = f"{where}: annotations[{i}]"
            image_id = int(_field(ann, "image_id", at))
            if image_id not in files:
                raise ValueError(f"{at}: image_id {image_id} is not in 'images'")
            self.annotations.append((image_id, files[image_id], str(_field(ann, "file_name", at)),
                                     list(_field(ann, "segments_info", at))))
        if not self.annotations:
            raise EmptyDatasetError(f"dataset {name}: {self.json_path} has no annotations")
        self.class_names = [c["name"] for c in self._categories]

    def categories(self) -> list[dict[str, Any]]:
        """The json's categories (``id``, ``name``, ``isthing``), what ``PanopticEvaluator`` takes."""
        return [dict(c) for c in self._categories]

    def panoptic_categories(self) -> list[dict[str, Any]]:
        """``categories`` under the name the scenes source gives them, so panoptic code asks any source alike."""
        return self.categories()

    def image_id(self, index: int) -> int:
        return self.annotations[index][0]

    def __len__(self) -> int:
        return len(self.annotations)

    def sample_id(self, index: int) -> str:
        """The image's file name, as the json's ``images`` entry gives it."""
        return self.annotations[index][1]

    def load(self, index: int) -> Sample:
        image_id, image_file, png_file, segments = self.annotations[index]
        image = open_rgb(self.image_dir / image_file)
        png_path = self.png_dir / png_file
        try:
            with Image.open(png_path) as png:
                segment_map = rgb_to_id(np.asarray(png.convert("RGB")))
        except (OSError, SyntaxError) as exc:
            raise CorruptImageError(f"cannot decode panoptic PNG {png_path}: {exc}") from None
        if segment_map.shape != (image.height, image.width):
            raise ValueError(f"{png_path}: panoptic PNG is {segment_map.shape[1]}x{segment_map.shape[0]} but image "
                             f"{image_file} is {image.width}x{image.height}")
        target = PanopticTarget(torch.from_numpy(segment_map), [dict(s) for s in segments], image_id)
        return Sample(self.sample_id(index), image, target)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root), "annotations": str(self.json_path)}

    def fingerprint(self) -> dict[str, Any]:
        files = [self.image_dir / a[1] for a in self.annotations] + [self.png_dir / a[2] for a in self.annotations]
        return {"dataset": self.name, "dataset_kind": self.kind, "split": self.split, "dataset_size": len(self),
                "json_sha256": hashlib.sha256(self.json_path.read_bytes()).hexdigest(),
                "manifest": manifest_hash(self.root, files)}
