"""Saved predictions (``source: predictions``): another framework's outputs scored on the same leaderboard,
looked up by sample instead of computed by a forward pass (docs/predictions.md).

The suite entry's ``path`` says which form it is:
- a json **list**: COCO detection results (``image_id``, ``category_id``, ``score``, ``bbox`` XYWH and/or an RLE
  ``segmentation``) -> one ``Detections`` per image, XYXY in original pixels, masks decoded by pycocotools;
- a json **object** with ``annotations``: COCO-panoptic predictions, the PNGs in the folder of the same name
  without ``.json`` (COCO's layout), ids R + 256 G + 256^2 B -> one ``PanopticPrediction`` per image;
- a **folder**: label PNGs (one channel: grey, 16-bit grey or palette indices) -> one ``LabelMap`` per image, in
  the label convention the suite entry declares: train ids as written (the default), or ``reduce_zero_label`` in
  mmseg's own meaning (0 = no class predicted, every other value minus one: what mmseg's ``format_only`` writes
  for ADE20K-style datasets, train id + 1); ``ignore_index`` names the value meaning "no class predicted".

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
  lives, in original pixels, never resized; an RLE whose runs do not cover its size exactly is refused
  (pycocotools would read past its buffer);
- a detection result repeated exactly (image, category, box, score, mask) is refused: results written twice (a
  distributed sampler's padding, shards concatenated twice), which COCOeval would count as false positives;
- an empty results list is a valid "no detections" (every stat 0, for bbox and segm alike);
- a label value that is no class under the declared convention is refused, with a hint when the PNG reads as
  the labels + 1 (mmseg's convention undeclared); a whole prediction set that reads as the ground truth shifted
  by one class is refused by the evaluator (harness/evaluation/semantic.py) with the option to set;
- a panoptic PNG whose segments disagree with its ``segments_info`` (an id in one and not the other) is refused,
  as panopticapi refuses it;
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
from harness.data.preprocess import Preprocess
from harness.evaluation.coco_format import decode_segmentation, rgb2id, rle_problem, xywh_to_xyxy
from harness.evaluation.outputs import SHIFT_RATIO, SHIFT_SHARE, Detections, LabelMap, PanopticPrediction
from harness.models.checkpoint import file_sha256, folder_sha256
from harness.models.wrapper import LoadedModel
from harness.specs import ModelSpec

# images are loaded only for their ids and targets: at their native size, untouched
NATIVE = Preprocess(input_size=(3, 0, 0), crop_mode="none")


class PredictionsError(ValueError):
    """Saved predictions that cannot be scored; the message names the file and the field."""


def load_predictions_model(spec: ModelSpec) -> LoadedModel:
    """A suite entry with ``source: predictions`` as a model without a network; label PNGs record their label
    convention in the model's provenance (``pipeline``)."""
    path = Path(spec.path)
    reader = open_predictions(path, reduce_zero_label=spec.reduce_zero_label, ignore_index=spec.ignore_index)
    pipeline = {"label_convention": reader.convention()} if isinstance(reader, SemanticPredictions) else {}
    return LoadedModel(name=spec.name, source="predictions", arch=spec.architecture, family=spec.family, module=None,
                       preprocess=NATIVE, num_classes=0, weights=f"predictions:{path}",
                       weights_sha256=content_sha256(path), output_kind=reader.kind, pipeline=pipeline,
                       predictions=reader)


def content_sha256(path: Path) -> str:
    """The file's sha256; for a folder (label PNGs, or the PNGs beside a panoptic json) the sha256 of every
    file's relative path and sha256, with the json's when there is one: part of each job's cache key."""
    folder = path if path.is_dir() else path.with_suffix("")
    if not folder.is_dir():
        return file_sha256(path)
    if not path.is_file():
        return folder_sha256(folder)
    return hashlib.sha256(f"{file_sha256(path)}\n{folder_sha256(folder)}".encode()).hexdigest()


def open_predictions(path: Path, reduce_zero_label: bool = False, ignore_index: int | None = None
                     ) -> "DetectionPredictions | SemanticPredictions | PanopticPredictions":
    """The reader for ``path``, by its form (see the module note); the label convention is for label PNGs."""
    if path.is_dir():
        return SemanticPredictions(path, reduce_zero_label, ignore_index)
    if reduce_zero_label or ignore_index is not None:
        raise PredictionsError(f"{path}: reduce_zero_label and ignore_index describe label PNGs (a folder); this "
                               f"is a json")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise PredictionsError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise PredictionsError(f"{path}: not valid JSON (not UTF-8 text: byte {exc.start}: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        ends = ": the file ends early (truncated?)" if exc.pos >= len(text.rstrip()) else ""
        raise PredictionsError(f"{path}: not valid JSON ({exc}){ends}") from None
    if isinstance(data, list):
        return DetectionPredictions(path, data)
    if isinstance(data, dict) and "annotations" in data:
        return PanopticPredictions(path, data)
    raise PredictionsError(f"{path}: neither a list of COCO results (detection) nor a COCO-panoptic json with "
                           f"'annotations'")


def _field(entry: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``entry[key]`` checked to be of ``kind`` (never a bool for numbers)."""
    if not isinstance(entry, dict):
        raise PredictionsError(f"{where}: expected an object with {key!r}, got {entry!r:.40}")
    if key not in entry:
        raise PredictionsError(f"{where}: missing field {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PredictionsError(f"{where}.{key}: expected {getattr(kind, '__name__', 'a number')}, got {value!r:.40}")
    return value


def _check_box(box: list[Any], where: str) -> None:
    """A COCO ``bbox``: four finite numbers, width and height not negative."""
    if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise PredictionsError(f"{where}: expected [x, y, width, height], got {box!r:.60}")
    for name, value in zip(("x", "y", "width", "height"), box):
        if not math.isfinite(value):
            raise PredictionsError(f"{where}: {name} is {value}, not a finite number")
        if name in ("width", "height") and value < 0:
            raise PredictionsError(f"{where}: {name} is negative ({value}): COCO boxes are [x, y, width, height], "
                                   f"not corners")


def _check_rle(segmentation: dict[str, Any], where: str) -> None:
    """The form of a result's RLE (its runs are checked against its size when decoded)."""
    size = segmentation.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                              and v >= 0 for v in size)):
        raise PredictionsError(f"{where}.size: expected [height, width], got {size!r:.40}")
    counts = segmentation.get("counts")
    if not isinstance(counts, str) and not (isinstance(counts, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in counts)):
        raise PredictionsError(f"{where}.counts: expected a compressed RLE string or a list of run lengths, got "
                               f"{counts!r:.40}")


def _identity(result: dict[str, Any]) -> tuple:
    """What makes a detection result itself: two results alike in all of it are one result written twice."""
    segmentation = result.get("segmentation")
    counts = None if segmentation is None else segmentation["counts"]
    return (result["image_id"], result["category_id"], float(result["score"]),
            tuple(result["bbox"]) if "bbox" in result else None,
            tuple(counts) if isinstance(counts, list) else counts)


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
        seen: dict[tuple, int] = {}
        for i, result in enumerate(results):
            where = f"{path}: [{i}]"
            image_id = _field(result, "image_id", int, where)
            _field(result, "category_id", int, where)
            if not math.isfinite(_field(result, "score", (int, float), where)):
                raise PredictionsError(f"{where}.score: not a finite number ({result['score']})")
            if ("segmentation" in result) != self.with_masks:  # one form for the whole file, as loadRes reads it
                raise PredictionsError(f"{where}: {'no' if self.with_masks else 'a'} 'segmentation', unlike [0]")
            if self.with_masks:
                _check_rle(_field(result, "segmentation", dict, where), f"{where}.segmentation")
            if "bbox" in result or not self.with_masks:
                _check_box(_field(result, "bbox", list, where), f"{where}.bbox")
            key = _identity(result)
            if key in seen:
                raise PredictionsError(f"{where}: repeats [{seen[key]}] exactly (image_id, category_id, bbox, score"
                                       f"{', segmentation' if self.with_masks else ''}): results written twice (a "
                                       f"distributed sampler's padding, shards concatenated twice?); COCOeval would "
                                       f"count the copy as a false positive")
            seen[key] = i
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
        with_masks = self.with_masks or not self.results  # no results at all: no boxes and no masks either
        xywh = np.array([result["bbox"] if "bbox" in result else [0.0] * 4 for result in results],
                        dtype=np.float64).reshape(-1, 4)
        for k, result in enumerate(results):  # without a bbox, COCO's loadRes takes the mask's box
            if "bbox" not in result:
                rle = mask_utils.encode(np.asfortranarray(masks[k, :, :, None].astype(np.uint8)))
                xywh[k] = mask_utils.toBbox(rle)[0]
        boxes = xywh_to_xyxy(xywh)
        return Detections(boxes=torch.from_numpy(boxes),
                          scores=torch.tensor([float(r["score"]) for r in results], dtype=torch.float64),
                          labels=torch.tensor([int(r["category_id"]) for r in results], dtype=torch.int64),
                          masks=torch.from_numpy(masks) if with_masks else None)

    def _mask(self, index: int, size: tuple[int, int]) -> np.ndarray:
        segmentation = self.results[index]["segmentation"]
        height, width = size
        if [int(v) for v in segmentation["size"]] != [height, width]:
            raise PredictionsError(f"{self.path}: [{index}].segmentation.size: {segmentation['size']} (height, width) "
                                   f"but image {self.results[index]['image_id']} is {height} x {width}")
        problem = rle_problem(segmentation)
        if problem:
            raise PredictionsError(f"{self.path}: [{index}].segmentation.counts: {problem}")
        return decode_segmentation(segmentation, height, width)


# PNG modes whose pixels are one label each: grey (8 and 16 bit, 1 bit) and palette indices (the indices are the
# labels, not their colours: mmseg's CityscapesMetric writes such PNGs, and VOC's labels are)
LABEL_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I", "1")
NO_CLASS = -1  # a LabelMap pixel with no class predicted (the map's ignore_index)


def read_label_values(path: Path) -> np.ndarray:
    """A label PNG's values, one per pixel, as int64; colour PNGs and unreadable files are refused."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in LABEL_MODES:
                return np.asarray(image, dtype=np.int64)
    except (OSError, SyntaxError, ValueError) as exc:
        raise PredictionsError(f"{path}: cannot read the label PNG ({exc})") from None
    hint = " (colours: a visualisation, such as mmseg's show_dir output, rather than labels?)" \
        if mode in ("RGB", "RGBA", "CMYK", "YCbCr") else ""
    raise PredictionsError(f"{path}: label PNGs must be single-channel class indices (grey, 16-bit grey or palette), "
                           f"got mode {mode}{hint}")


class SemanticPredictions:
    """A folder of label PNGs named like the dataset's images, in a declared label convention."""

    kind = "semantic_labels"

    def __init__(self, folder: Path, reduce_zero_label: bool = False, ignore_index: int | None = None) -> None:
        files = sorted(folder.rglob("*.png"))
        if not files:
            raise PredictionsError(f"{folder}: no .png files (label PNGs named like the dataset's images)")
        self.folder = folder
        self.by_path = {file.relative_to(folder).with_suffix("").as_posix(): file for file in files}
        stems = Counter(file.stem for file in files)
        self.by_stem = {file.stem: file for file in files if stems[file.stem] == 1}
        # mmseg's reduce_zero_label maps 0 and 255 to 255, its ignore index: "no class predicted" here
        self.reduce_zero_label = bool(reduce_zero_label)
        self.ignore_index = ignore_index if ignore_index is not None or not reduce_zero_label else 255

    def convention(self) -> dict[str, Any]:
        """The folder and how its values read as classes (provenance, and the evaluator's convention check)."""
        return {"path": str(self.folder), "reduce_zero_label": self.reduce_zero_label,
                "ignore_index": self.ignore_index}

    def outputs(self, batch: Batch, source: ImageSource) -> list[LabelMap]:
        """The label maps of the batch's images, values read as classes by the convention (a value that is no
        class is refused here, in the file's own values); sizes are checked by the evaluator."""
        return [self.label_map(self.file(sample_id), source.num_classes, target)
                for sample_id, target in zip(batch.ids, batch.targets)]

    def label_map(self, file: Path, num_classes: int, target: Any = None) -> LabelMap:
        values = read_label_values(file)
        none = values == self.ignore_index if self.ignore_index is not None else np.zeros(values.shape, bool)
        if self.reduce_zero_label:
            none |= values == 0
        labels = values - 1 if self.reduce_zero_label else values
        bad = ((labels < 0) | (labels >= num_classes)) & ~none
        if bad.any():
            raise PredictionsError(self._not_a_class(file, int(values[bad][0]), values, num_classes, target))
        if not none.any():
            return LabelMap(torch.from_numpy(labels), str(file))
        return LabelMap(torch.from_numpy(np.where(none, NO_CLASS, labels)), str(file), ignore_index=NO_CLASS)

    def _not_a_class(self, file: Path, value: int, values: np.ndarray, num_classes: int, target: Any) -> str:
        """Why ``value`` is no class, in the file's own values; with the likely cause when the PNG reads as the
        ground truth + 1 (mmseg's format_only convention, undeclared)."""
        if self.reduce_zero_label:
            meaning = (f"under reduce_zero_label: true, values 1..{num_classes} are classes 0..{num_classes - 1}, "
                       f"0 and {self.ignore_index} mean no class")
        else:
            meaning = f"the dataset has classes 0..{num_classes - 1}" + (
                f"; {self.ignore_index} means no class" if self.ignore_index is not None else "")
        message = f"{file}: value {value} is not a class ({meaning})"
        truth = getattr(target, "mask", None)
        if self.reduce_zero_label or truth is None or tuple(truth.shape) != values.shape:
            return message
        truth = np.asarray(torch.as_tensor(truth), dtype=np.int64)
        valid = (truth >= 0) & (truth < num_classes) & (truth != target.ignore_index)
        if not valid.any():
            return message
        as_written = float((values[valid] == truth[valid]).mean())
        shifted = float((values[valid] - 1 == truth[valid]).mean())
        if shifted >= SHIFT_SHARE and shifted >= SHIFT_RATIO * as_written:
            message += (f"; it reads as the labels + 1 ({shifted:.0%} of pixels are label + 1, {as_written:.0%} the "
                        f"label): mmseg's format_only writes train id + 1 for reduce_zero_label datasets such as "
                        f"ADE20K: set 'reduce_zero_label: true' on the model entry")
        return message

    def file(self, sample_id: str) -> Path:
        key = PurePosixPath(sample_id).with_suffix("")
        found = self.by_path.get(key.as_posix()) or self.by_stem.get(key.name)
        if found is None:
            raise PredictionsError(f"{self.folder}: no label PNG for image {sample_id!r} (looked for {key}.png, "
                                   f"then a unique {key.name}.png)")
        return found


# PNG modes read as RGB colours: RGB, RGBA (alpha ignored, as panopticapi's rgb2id reads 3 channels), and the lossless
# reductions PNG optimisers make of RGB images with few colours (palette) or grey colours only (L)
PANOPTIC_MODES = ("RGB", "RGBA", "P", "PA", "L", "LA")


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
            listed: dict[int, int] = {}
            for j, segment in enumerate(_field(annotation, "segments_info", list, where)):
                segment_id = _field(segment, "id", int, f"{where}.segments_info[{j}]")
                _field(segment, "category_id", int, f"{where}.segments_info[{j}]")
                if not 0 < segment_id < 256 ** 3:
                    raise PredictionsError(f"{where}.segments_info[{j}].id: {segment_id} is no segment id (ids are "
                                           f"1..256^3-1, R + 256 G + 256^2 B; 0 is VOID)")
                if segment_id in listed:
                    raise PredictionsError(f"{where}.segments_info[{j}].id: {segment_id} repeats "
                                           f"segments_info[{listed[segment_id]}]")
                listed[segment_id] = j
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
        index, annotation = self.by_image[target.image_id]
        where = f"{self.path}: annotations[{index}]"
        png = self.folder / annotation["file_name"]
        if not png.is_file():
            raise PredictionsError(f"{where}.file_name: no such PNG {png}")
        try:
            with Image.open(png) as image:
                mode = image.mode
                if mode not in PANOPTIC_MODES:
                    raise PredictionsError(f"{png}: a panoptic PNG holds 8-bit RGB segment ids (R + 256 G + 256^2 B), "
                                           f"got mode {mode}")
                segment_map = rgb2id(np.asarray(image.convert("RGB")))  # palette and grey: their RGB colours
        except (OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, PredictionsError):
                raise
            raise PredictionsError(f"{png}: cannot read the panoptic PNG ({exc})") from None
        if segment_map.shape != tuple(target.segment_map.shape):
            raise PredictionsError(f"{png}: PNG is {segment_map.shape[1]}x{segment_map.shape[0]} but image "
                                   f"{target.image_id} is {target.segment_map.shape[1]}x{target.segment_map.shape[0]}")
        segments = [{"id": s["id"], "category_id": s["category_id"]} for s in annotation["segments_info"]]
        present = set(np.unique(segment_map).tolist()) - {0}
        listed = {s["id"]: j for j, s in enumerate(segments)}
        for j, segment in enumerate(segments):  # as panopticapi's pq_compute, which refuses both
            if segment["id"] not in present:
                raise PredictionsError(f"{where}.segments_info[{j}].id: segment {segment['id']} has no pixels in "
                                       f"{png.name} (panopticapi refuses a listed segment missing from the PNG)")
        unlisted = sorted(present - set(listed))
        if unlisted:
            colour = (unlisted[0] % 256, unlisted[0] // 256 % 256, unlisted[0] // 256 ** 2)
            raise PredictionsError(f"{png}: segment id {unlisted[0]} (RGB {colour}, PNG mode {mode}) is in the PNG but "
                                   f"not in annotations[{index}].segments_info ({len(unlisted)} unlisted in all; "
                                   f"panopticapi refuses them)")
        return PanopticPrediction(torch.from_numpy(segment_map), segments)
