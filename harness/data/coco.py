"""The ``coco`` dataset kind: an images folder plus a COCO instances json (e.g. val2017).

Kept exactly as in the file: category ids (never re-indexed), image ids, crowd annotations and images
without annotations (they count for false positives). Samples follow the json's ``images`` order; a
sample's id is its ``file_name``.

Annotation id 0: pycocotools' COCOeval reads a matched ground-truth id of 0 as "unmatched" (see
harness/evaluation/coco_format.py), and several exporters number annotations from 0. Rather than refuse
such files, every annotation id is shifted by one when any id is 0; ``describe()`` records it
(``ann_ids_shifted``). Duplicate annotation ids are an error (pycocotools would silently keep one).

Masks are decoded only with ``masks=True`` (segmentation models, visualisation): the detection evaluator
scores ``segm`` from the json's own segmentations, so boxes-only targets keep memory low.

The json path: ``annotations`` if given (relative to ``root``, or absolute), else ``<root>/../annotations/instances_<split>.json`` (COCO's
layout: ``coco/val2017`` next to ``coco/annotations/instances_val2017.json``).
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.data.base import CorruptImageError, EmptyDatasetError, ImageSource
from harness.evaluation.coco_format import decode_segmentation, detection_target_from_coco, nonzero_ann_ids
from harness.evaluation.samples import DetectionTarget, Sample
from harness.registry import DATASETS


class CocoFormatError(ValueError):
    """A COCO json that cannot be used; the message names the file and the field."""


def read_coco_json(path: Path) -> tuple[dict[str, Any], bool]:
    """Load and check an instances json; returns (dataset with non-zero ann ids, whether ids were shifted)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CocoFormatError(f"{path}: no such annotation file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CocoFormatError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise CocoFormatError(f"{path}: expected a JSON object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise CocoFormatError(f"{path}: missing or non-list field {key!r}")
    image_ids = set()
    for i, image in enumerate(data["images"]):
        for key in ("id", "file_name", "height", "width"):
            if key not in image:
                raise CocoFormatError(f"{path}: images[{i}] has no field {key!r}")
        image_ids.add(image["id"])
    if len(image_ids) != len(data["images"]):
        raise CocoFormatError(f"{path}: images: duplicate image ids")
    category_ids = {category["id"] for category in data["categories"]}
    ann_ids = set()
    for i, ann in enumerate(data["annotations"]):
        for key in ("id", "image_id", "category_id", "bbox"):
            if key not in ann:
                raise CocoFormatError(f"{path}: annotations[{i}] has no field {key!r}")
        if ann["image_id"] not in image_ids:
            raise CocoFormatError(f"{path}: annotations[{i}].image_id {ann['image_id']} is not in images")
        if ann["category_id"] not in category_ids:
            raise CocoFormatError(f"{path}: annotations[{i}].category_id {ann['category_id']} is not in categories")
        if len(ann["bbox"]) != 4:
            raise CocoFormatError(f"{path}: annotations[{i}].bbox must be [x, y, width, height]")
        if ann["id"] in ann_ids:
            raise CocoFormatError(f"{path}: annotations[{i}].id {ann['id']} is used twice")
        ann_ids.add(ann["id"])
    return nonzero_ann_ids(data)


@DATASETS.register("coco")
class CocoSource(ImageSource):
    """COCO instances: ``root`` is the images folder, ``annotations`` the instances json."""

    kind = "coco"
    target_kind = "detection"

    def __init__(self, root: str | Path, split: str = "val2017", name: str = "coco",
                 annotations: str | Path | None = None, masks: bool = False, **_: object) -> None:
        self.root = Path(root)
        self.annotation_file = self.root / annotations if annotations else \
            self.root.parent / "annotations" / f"instances_{split}.json"  # relative to root (absolute stays)
        self.name, self.split, self.masks = name, split, bool(masks)
        self.dataset, self.ann_ids_shifted = read_coco_json(self.annotation_file)
        if not self.dataset["images"]:
            raise EmptyDatasetError(f"{self.annotation_file}: no images")
        self.images = self.dataset["images"]
        self.categories = sorted(self.dataset["categories"], key=lambda c: c["id"])
        self.class_names = [c["name"] for c in self.categories]
        self._by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for ann in self.dataset["annotations"]:
            self._by_image[ann["image_id"]].append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def sample_id(self, index: int) -> str:
        return self.images[index]["file_name"]

    def load(self, index: int) -> Sample:
        entry = self.images[index]
        path = self.root / entry["file_name"]
        try:
            with Image.open(path) as raw:
                image = raw.convert("RGB")
        except FileNotFoundError:
            raise CorruptImageError(f"{path}: listed in {self.annotation_file.name} but missing") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise CorruptImageError(f"{path}: cannot decode image ({exc})") from None
        if image.size != (entry["width"], entry["height"]):
            raise CorruptImageError(f"{path}: is {image.size[0]}x{image.size[1]} but "
                                    f"{self.annotation_file.name} says {entry['width']}x{entry['height']}")
        return Sample(self.sample_id(index), image, self.target(index))

    def target(self, index: int) -> DetectionTarget:
        entry = self.images[index]
        anns = self._by_image.get(entry["id"], [])
        height, width = entry["height"], entry["width"]
        masks = None
        if self.masks:
            masks = np.stack([decode_segmentation(a["segmentation"], height, width) for a in anns]) if anns \
                else np.zeros((0, height, width), bool)
        areas = [{**a, "area": a.get("area", a["bbox"][2] * a["bbox"][3])} for a in anns]
        return detection_target_from_coco(areas, entry["id"], height, width, masks)

    def coco_ground_truth(self) -> dict[str, Any]:
        """The instances dict as read (annotation ids shifted by one if the file used id 0)."""
        return self.dataset

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "annotations": str(self.annotation_file),
                "ann_ids_shifted": self.ann_ids_shifted}

    def fingerprint(self) -> dict[str, Any]:
        """sha256 of the json plus a manifest (file name, byte size) of the listed images."""
        manifest = hashlib.sha256()
        for entry in self.images:
            path = self.root / entry["file_name"]
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise CorruptImageError(f"{path}: listed in {self.annotation_file.name} but missing") from None
            manifest.update(f"{entry['file_name']}\t{size}\n".encode())
        return {**self.describe(), "annotations_sha256": hashlib.sha256(self.annotation_file.read_bytes()).hexdigest(),
                "images_manifest_sha256": manifest.hexdigest()}
