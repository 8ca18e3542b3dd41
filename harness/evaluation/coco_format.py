"""COCO format conventions shared by the COCO-style sources and the detection evaluator.

- Boxes: the harness's tensors are XYXY pixels; COCO json is XYWH.
- Masks: compressed RLE through ``pycocotools.mask`` with ``counts`` as ``str`` (JSON-serialisable). An RLE is
  checked before it is decoded: its runs must cover ``size`` exactly (pycocotools' C decoder trusts them and
  reads or writes past its buffer otherwise).
- Annotation id 0: pycocotools' COCOeval stores the matched ground-truth id in ``dtMatches`` and reads 0
  as "unmatched", so a ground-truth annotation with id 0 would be matched many times and its true
  positives counted as false positives. ``nonzero_ann_ids`` shifts every id by one when any is 0.
- Panoptic PNGs encode a segment id as R + 256·G + 256²·B (panopticapi's ``rgb2id`` / ``id2rgb``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torchvision import tv_tensors

from harness.evaluation.samples import DetectionTarget


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(K, 4) XYXY -> (K, 4) COCO XYWH, as float64."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(K, 4) COCO XYWH -> (K, 4) XYXY, as float64."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """(K, H, W) bool -> K compressed RLEs with ``counts`` decoded to ``str``."""
    masks = np.asarray(masks, dtype=np.uint8)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {masks.shape}")
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    return [{"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in rles]


def rle_runs(counts: str | bytes) -> list[int] | None:
    """The run lengths of a compressed RLE string (pycocotools' ``rleFrString``), or None when it is not one
    (a character outside '0'..'o', a value cut short, a negative run)."""
    text = counts.decode("ascii", errors="replace") if isinstance(counts, bytes) else counts
    runs: list[int] = []
    position, length = 0, len(text)
    while position < length:
        value, shift, more = 0, 0, True
        while more:
            if position >= length:
                return None
            char = ord(text[position]) - 48
            if not 0 <= char < 64:
                return None
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position, shift = position + 1, shift + 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            return None
        runs.append(value)
    return runs


def rle_problem(segmentation: dict[str, Any]) -> str | None:
    """Why an RLE (compressed or uncompressed) cannot be decoded as its ``size`` says, or None when it can."""
    height, width = (int(v) for v in segmentation["size"])
    counts = segmentation["counts"]
    runs = list(counts) if isinstance(counts, list) else rle_runs(counts)
    if runs is None:
        return "not a compressed RLE string (pycocotools' encoding: characters '0'..'o')"
    if any(not isinstance(v, (int, np.integer)) or v < 0 for v in runs):
        return "run lengths must be non-negative integers"
    if sum(runs) != height * width:
        return f"the runs cover {sum(runs)} pixels but size {height} x {width} has {height * width}"
    return None


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE) -> (H, W) bool mask."""
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width)) if segmentation \
            else mask_utils.encode(np.zeros((height, width, 1), np.uint8, order="F"))[0]
        return mask_utils.decode(rle).astype(bool)
    problem = rle_problem(segmentation)
    if problem:
        raise ValueError(f"segmentation of size {segmentation['size']}: {problem}")
    if isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


def nonzero_ann_ids(ground_truth: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``ground_truth`` with every annotation id shifted by one if any id is 0 (see the module note).

    Returns (ground truth, whether it was shifted); the input is never modified.
    """
    annotations = ground_truth.get("annotations", [])
    if not any(ann.get("id") == 0 for ann in annotations):
        return ground_truth, False
    shifted = [{**ann, "id": int(ann["id"]) + 1} for ann in annotations]
    return {**ground_truth, "annotations": shifted}, True


def id2rgb(segment_map: np.ndarray) -> np.ndarray:
    """(H, W) int segment ids -> (H, W, 3) uint8 colours, R + 256·G + 256²·B."""
    ids = np.asarray(segment_map, dtype=np.int64)
    if ids.min(initial=0) < 0 or ids.max(initial=0) >= 256 ** 3:
        raise ValueError("panoptic segment ids must be in [0, 256**3)")
    return np.stack([ids % 256, ids // 256 % 256, ids // 256 ** 2], axis=-1).astype(np.uint8)


def rgb2id(colours: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colours -> (H, W) int64 segment ids."""
    colours = np.asarray(colours, dtype=np.int64)
    return colours[..., 0] + 256 * colours[..., 1] + 256 ** 2 * colours[..., 2]


def detection_target_from_coco(annotations: list[dict[str, Any]], image_id_: int, height: int, width: int,
                               masks: np.ndarray | None) -> DetectionTarget:
    """A ``DetectionTarget`` from one image's COCO annotation dicts (XYWH boxes become XYXY)."""
    boxes = xywh_to_xyxy(np.array([a["bbox"] for a in annotations], np.float64))
    return DetectionTarget(
        image_id=image_id_,
        boxes=tv_tensors.BoundingBoxes(torch.from_numpy(boxes).float(), format="XYXY", canvas_size=(height, width)),
        labels=torch.tensor([a["category_id"] for a in annotations], dtype=torch.int64),
        iscrowd=torch.tensor([bool(a.get("iscrowd", 0)) for a in annotations], dtype=torch.bool),
        area=torch.tensor([float(a["area"]) for a in annotations], dtype=torch.float32),
        masks=None if masks is None else tv_tensors.Mask(torch.from_numpy(np.asarray(masks, bool))),
        ann_ids=[int(a["id"]) for a in annotations])
