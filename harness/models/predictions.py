"""Saved predictions (``source: predictions``): another framework's outputs scored on the same leaderboard,
looked up by sample instead of computed by a forward pass (docs/predictions.md).

The suite entry's ``path`` says which form it is:
- a json **list**: COCO detection results (``image_id``, ``category_id``, ``score``, ``bbox`` XYWH and/or an RLE
  ``segmentation``) -> one ``Detections`` per image, XYXY in original pixels, masks decoded by pycocotools;
- a json **object** with ``annotations``: COCO-panoptic predictions, the PNGs in the folder of the same name
  without ``.json`` (COCO's layout), ids R + 256 G + 256^2 B -> one ``PanopticPrediction`` per image;
- a **folder**: label PNGs (train ids, one channel) -> one ``LabelMap`` per image.

Matching a sample: detection and panoptic by the target's COCO ``image_id`` (as pycocotools and panopticapi
do); label PNGs by the sample id with its extension replaced by ``.png`` (``test/000003.png``,
``frankfurt/frankfurt_000000_000294_leftImg8bit.png``), else by that file name alone anywhere in the folder
when unique (a flat folder, as mmseg's ``format_only`` writes).

Decisions, each a one-line error naming the file and the field unless said otherwise:
- an ``image_id`` the dataset does not have is refused, for detection as pycocotools' ``loadRes`` refuses it and
  for panoptic too (panopticapi ignores it; an unknown image almost always means another split or dataset);
- a ``category_id`` the dataset does not have is refused (COCOeval would silently drop such results: the usual
  cause is a contiguous 0..N-1 label space written where the dataset's own ids belong);
- an image without results has no detections (COCO's meaning: its objects all count as missed); an image
  without a label PNG or a panoptic entry is refused (panopticapi refuses it too; a label map cannot be empty);
- a PNG or RLE mask of another size than its image is refused: predictions are scored where the ground truth
  lives, in original pixels, never resized;
- label PNGs that match no image, and results for images outside an evaluated subset, are ignored.
Boxes are kept in float64, so COCO's XYWH -> XYXY -> XYWH round trip gives back the file's numbers (exactly
for boxes written from float32 XYXY, as most frameworks' are; to the last bit of float64 otherwise).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from harness.data.base import ImageSource, base_and_indices
from harness.data.loader import Batch
from harness.data.segfolder import read_label_png
from harness.evaluation.coco_format import decode_segmentation, rgb2id, xywh_to_xyxy
from harness.evaluation.outputs import Detections, LabelMap, PanopticPrediction
from harness.models.checkpoint import file_sha256
from harness.models.wrapper import LoadedModel, Preprocess
from harness.specs import ModelSpec

# images are loaded only for their ids and targets: at their native size, untouched
NATIVE = Preprocess(input_size=(3, 0, 0), crop_mode="none")


class PredictionsError(ValueError):
    """Saved predictions that cannot be scored; the message names the file and the field."""


def load_predictions_model(spec: ModelSpec) -> LoadedModel:
    """A suite entry with ``source: predictions`` as a model without a network."""
    path = Path(spec.path)
    reader = open_predictions(path)
    return LoadedModel(name=spec.name, source="predictions", arch=spec.architecture, family=spec.family, module=None,
                       preprocess=NATIVE, num_classes=0, weights=f"predictions:{path}",
                       weights_sha256=content_sha256(path), output_kind=reader.kind, predictions=reader)


def content_sha256(path: Path) -> str:
    """The file's sha256; for a folder (label PNGs, or the PNGs beside a panoptic json) the sha256 of every
    file's relative path and sha256, with the json's when there is one: part of each job's cache key."""
    folder = path if path.is_dir() else path.with_suffix("")
    if not folder.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256(file_sha256(path).encode() if path.is_file() else b"")
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(folder).as_posix()}\t{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def open_predictions(path: Path) -> "DetectionPredictions | SemanticPredictions | PanopticPredictions":
    """The reader for ``path``, by its form (see the module note)."""
    if path.is_dir():
        return SemanticPredictions(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PredictionsError(f"{path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PredictionsError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, list):
        return DetectionPredictions(path, data)
    if isinstance(data, dict) and "annotations" in data:
        return PanopticPredictions(path, data)
    raise PredictionsError(f"{path}: neither a list of COCO results (detection) nor a COCO-panoptic json with "
                           f"'annotations'")


def _field(entry: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``entry[key]`` checked to be of ``kind`` (never a bool for numbers)."""
    if not isinstance(entry, dict) or key not in entry:
        raise PredictionsError(f"{where}: missing field {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PredictionsError(f"{where}.{key}: expected {getattr(kind, '__name__', 'a number')}, got {value!r:.40}")
    return value


class _CheckedOnce:
    """A reader whose whole file is checked against each dataset it is scored on, once (on the first batch)."""

    checked_against: ImageSource | None = None

    def unchecked_dataset(self, source: ImageSource) -> ImageSource | None:
        """The dataset behind ``source`` (the whole file's, not a subset) when not checked yet, else None."""
        base, _ = base_and_indices(source)
        if self.checked_against is base:
            return None
        self.checked_against = base
        return base


def _refuse_unknown(path: Path, entries: list[tuple[str, int]], known: set[int], what: str, dataset: str,
                    hint: str) -> None:
    """The first (field, id) whose id is not in ``known``, as an error."""
    for where, value in entries:
        if value not in known:
            raise PredictionsError(f"{path}: {where}: {what} {value} is not in dataset {dataset} ({hint})")


class DetectionPredictions(_CheckedOnce):
    """COCO detection results, grouped by image."""

    kind = "detections"

    def __init__(self, path: Path, results: list[Any]) -> None:
        self.path, self.results = path, results
        self.with_masks = bool(results) and isinstance(results[0], dict) and "segmentation" in results[0]
        self.by_image: dict[int, list[int]] = {}
        for i, result in enumerate(results):
            where = f"{path}: [{i}]"
            image_id = _field(result, "image_id", int, where)
            _field(result, "category_id", int, where)
            if not math.isfinite(_field(result, "score", (int, float), where)):
                raise PredictionsError(f"{where}.score: not a finite number")
            if ("segmentation" in result) != self.with_masks:  # one form for the whole file, as loadRes reads it
                raise PredictionsError(f"{where}: {'no' if self.with_masks else 'a'} 'segmentation', unlike [0]")
            if self.with_masks:
                segmentation = _field(result, "segmentation", dict, where)
                if "size" not in segmentation or "counts" not in segmentation:
                    raise PredictionsError(f"{where}.segmentation: expected an RLE with 'size' and 'counts'")
            if "bbox" in result or not self.with_masks:
                box = _field(result, "bbox", list, where)
                if len(box) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box) \
                        or min(box[2:]) < 0:
                    raise PredictionsError(f"{where}.bbox: expected [x, y, width, height], got {box!r:.60}")
            self.by_image.setdefault(image_id, []).append(i)

    def outputs(self, batch: Batch, source: ImageSource) -> list[Detections]:
        if (dataset := self.unchecked_dataset(source)) is not None:
            truth = dataset.coco_ground_truth()
            fields = [(f"[{i}].image_id", r["image_id"]) for i, r in enumerate(self.results)]
            _refuse_unknown(self.path, fields, {im["id"] for im in truth["images"]}, "image_id", dataset.name,
                            "refused, as pycocotools' loadRes refuses it")
            fields = [(f"[{i}].category_id", r["category_id"]) for i, r in enumerate(self.results)]
            known = {c["id"] for c in truth["categories"]}
            _refuse_unknown(self.path, fields, known, "category_id", dataset.name,
                            f"its categories: {', '.join(map(str, sorted(known)))}")
        return [self._detections(int(target.image_id), size) for target, size in zip(batch.targets, batch.orig_sizes)]

    def _detections(self, image_id: int, size: tuple[int, int]) -> Detections:
        """One image's results as canonical detections (none when the file has no result for it)."""
        indices = self.by_image.get(image_id, [])
        results = [self.results[i] for i in indices]
        masks = np.stack([self._mask(i, size) for i in indices]) if indices and self.with_masks \
            else np.zeros((0, *size), bool)
        boxes = np.zeros((len(results), 4))
        for k, result in enumerate(results):  # without a bbox, COCO's loadRes takes the mask's box
            xywh = result["bbox"] if "bbox" in result else mask_utils.toBbox(
                mask_utils.encode(np.asfortranarray(masks[k, :, :, None].astype(np.uint8))))[0]
            boxes[k] = xywh_to_xyxy(np.asarray(xywh))[0]
        return Detections(boxes=torch.from_numpy(boxes),
                          scores=torch.tensor([float(r["score"]) for r in results], dtype=torch.float64),
                          labels=torch.tensor([int(r["category_id"]) for r in results], dtype=torch.int64),
                          masks=torch.from_numpy(masks) if self.with_masks else None)

    def _mask(self, index: int, size: tuple[int, int]) -> np.ndarray:
        segmentation = self.results[index]["segmentation"]
        height, width = size
        if [int(v) for v in segmentation["size"]] != [height, width]:
            raise PredictionsError(f"{self.path}: [{index}].segmentation.size: {segmentation['size']} (height, width) "
                                   f"but image {self.results[index]['image_id']} is {height} x {width}")
        return decode_segmentation(segmentation, height, width)


class SemanticPredictions:
    """A folder of label PNGs named like the dataset's images."""

    kind = "semantic_labels"

    def __init__(self, folder: Path) -> None:
        files = sorted(folder.rglob("*.png"))
        if not files:
            raise PredictionsError(f"{folder}: no .png files (label PNGs named like the dataset's images)")
        self.folder = folder
        self.by_path = {file.relative_to(folder).with_suffix("").as_posix(): file for file in files}
        stems = Counter(file.stem for file in files)
        self.by_stem = {file.stem: file for file in files if stems[file.stem] == 1}

    def outputs(self, batch: Batch, source: ImageSource) -> list[LabelMap]:
        """The label maps of the batch's images; sizes and class range are checked by the evaluator."""
        return [LabelMap(torch.from_numpy(read_label_png(file)), str(file)) for file in map(self.file, batch.ids)]

    def file(self, sample_id: str) -> Path:
        key = PurePosixPath(sample_id).with_suffix("")
        found = self.by_path.get(key.as_posix()) or self.by_stem.get(key.name)
        if found is None:
            raise PredictionsError(f"{self.folder}: no label PNG for image {sample_id!r} (looked for {key}.png, "
                                   f"then a unique {key.name}.png)")
        return found


class PanopticPredictions(_CheckedOnce):
    """COCO-panoptic predictions: ``annotations`` (``image_id``, ``file_name``, ``segments_info``) and PNGs."""

    kind = "panoptic"

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.folder = path, path.with_suffix("")
        if not self.folder.is_dir():
            raise PredictionsError(f"{path}: no PNG folder {self.folder} (COCO-panoptic layout: the json's path "
                                   f"without .json)")
        annotations = _field(data, "annotations", list, str(path))
        self.by_image: dict[int, tuple[int, dict[str, Any]]] = {}
        for i, annotation in enumerate(annotations):
            where = f"{path}: annotations[{i}]"
            image_id = _field(annotation, "image_id", int, where)
            _field(annotation, "file_name", str, where)
            for j, segment in enumerate(_field(annotation, "segments_info", list, where)):
                _field(segment, "id", int, f"{where}.segments_info[{j}]")
                _field(segment, "category_id", int, f"{where}.segments_info[{j}]")
            if image_id in self.by_image:
                raise PredictionsError(f"{where}.image_id: {image_id} already predicted by "
                                       f"annotations[{self.by_image[image_id][0]}]")
            self.by_image[image_id] = (i, annotation)

    def outputs(self, batch: Batch, source: ImageSource) -> list[PanopticPrediction]:
        if (dataset := self.unchecked_dataset(source)) is not None:
            fields = [(f"annotations[{i}].image_id", image_id) for image_id, (i, _) in self.by_image.items()]
            _refuse_unknown(self.path, fields, {dataset.image_id(k) for k in range(len(dataset))}, "image_id",
                            dataset.name, "refused: predictions of another split or dataset?")
            fields = [(f"annotations[{i}].segments_info[{j}].category_id", segment["category_id"])
                      for i, annotation in self.by_image.values() for j, segment in enumerate(annotation["segments_info"])]
            known = {c["id"] for c in dataset.panoptic_categories()}
            _refuse_unknown(self.path, fields, known, "category_id", dataset.name,
                            f"its categories: {', '.join(map(str, sorted(known)))}")
        return [self._prediction(target) for target in batch.targets]

    def _prediction(self, target: Any) -> PanopticPrediction:
        if target.image_id not in self.by_image:
            raise PredictionsError(f"{self.path}: annotations: no prediction for image_id {target.image_id} "
                                   f"(panopticapi refuses a missing image too)")
        _, annotation = self.by_image[target.image_id]
        png = self.folder / annotation["file_name"]
        try:
            with Image.open(png) as image:
                segment_map = rgb2id(np.asarray(image.convert("RGB")))
        except (OSError, SyntaxError) as exc:
            raise PredictionsError(f"{png}: cannot read the panoptic PNG ({exc})") from None
        if segment_map.shape != tuple(target.segment_map.shape):
            raise PredictionsError(f"{png}: PNG is {segment_map.shape[1]}x{segment_map.shape[0]} but image "
                                   f"{target.image_id} is {target.segment_map.shape[1]}x{target.segment_map.shape[0]}")
        segments = [{"id": s["id"], "category_id": s["category_id"]} for s in annotation["segments_info"]]
        return PanopticPrediction(torch.from_numpy(segment_map), segments)
