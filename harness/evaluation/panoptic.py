"""Panoptic quality with exactly panopticapi's ``pq_compute`` rules (``panopticapi/evaluation.py``).

Per image, with segment id 0 = VOID:
- a ground-truth and a predicted segment of the same category match when IoU > 0.5, where the union
  leaves out the predicted segment's pixels on VOID: ``union = pred_area + gt_area - intersection -
  overlap(VOID, pred)``; ``gt_area`` is the ``area`` of ``segments_info`` when given (as panopticapi reads
  it from the json), else the pixel count;
- crowd ground-truth segments (``iscrowd == 1``) are never matched; per category, the crowd segment kept
  is the last one listed (panopticapi's dict overwrite);
- unmatched non-crowd ground truth is a false negative; an unmatched prediction is a false positive unless
  more than half of its area lies on VOID plus its category's crowd segment;
- ground-truth ids absent from ``segments_info`` are neither VOID nor matchable (panopticapi skips them).
Over the dataset, per category: PQ = sum IoU / (TP + FP/2 + FN/2), SQ = sum IoU / TP (0 without TP),
RQ = TP / (TP + FP/2 + FN/2); categories with no TP, FP or FN are left out of the averages.

Each image's record is ``{category id (text): [tp, fp, fn, iou_sum]}`` for the categories it touches, so
records merge in any order (IoU sums are added with ``math.fsum``) and the gate can resample images. The
first few samples' records also hold a ``preview`` (harness/evaluation/previews.py; ``category_counts``
leaves it out) for the report's overlays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from harness.evaluation.previews import (PREVIEW_COUNT, PREVIEW_KEY, palette_of, preview, preview_positions,
                                        segment_classes)
from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outputs, Resampled, Statistic
from harness.evaluation.state import EvalState, Record
from harness.metrics import Metric, declare

VOID = 0
OFFSET = 256 * 256 * 256  # segment ids come from 24-bit RGB, so gt * OFFSET + pred is a unique pair key

for _group, _what in (("", "all categories"), ("_things", "thing categories"), ("_stuff", "stuff categories")):
    declare(f"pq{_group}", "higher", kind="dataset", description=f"panoptic quality over {_what} (panopticapi)")
    declare(f"sq{_group}", "higher", kind="dataset", description=f"segmentation quality over {_what}")
    declare(f"rq{_group}", "higher", kind="dataset", description=f"recognition quality over {_what}")
declare("pq_class", "higher", kind="dataset", headline=False, description="panoptic quality of one category")


class PanopticFormatError(ValueError):
    """A prediction or ground truth whose segment map and segment list disagree."""


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    isthing: bool


def as_categories(categories: Iterable[Mapping[str, Any]]) -> list[Category]:
    """COCO-panoptic ``categories`` entries (``id``, ``isthing``, optional ``name``) as ``Category``."""
    return [Category(int(c["id"]), str(c.get("name", c["id"])), c.get("isthing", 0) == 1) for c in categories]


def _segment_table(segments: Sequence[Mapping[str, Any]], what: str, sample_id: str) -> tuple[np.ndarray, ...]:
    """Segment ids sorted, with their list positions; duplicates and non-positive ids are errors."""
    ids = np.array([int(s["id"]) for s in segments], dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    if len(ids) and (np.diff(ids[order]) == 0).any():
        raise PanopticFormatError(f"sample {sample_id!r}: {what} segments_info repeats a segment id")
    if (ids <= VOID).any():
        raise PanopticFormatError(f"sample {sample_id!r}: {what} segments_info lists id {ids.min()}; ids are "
                                  f"positive (0 is VOID)")
    return ids[order], order


def _dense_index(segment_map: np.ndarray, sorted_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Each pixel's index: 0 for VOID, 1 + its position among ``sorted_ids``; plus a mask of pixels whose
    id is not listed (None when every pixel is VOID or listed, the usual case)."""
    keys = np.concatenate([[VOID], sorted_ids, [np.iinfo(np.int64).max]])  # the sentinel bounds the search
    index = np.searchsorted(keys, segment_map)
    unlisted = keys[index] != segment_map
    return index, (unlisted if unlisted.any() else None)


def pq_image(gt_map: np.ndarray, gt_segments: Sequence[Mapping[str, Any]], pred_map: np.ndarray,
             pred_segments: Sequence[Mapping[str, Any]], category_ids: set[int] | None = None,
             sample_id: str = "") -> dict[str, list[float]]:
    """One image's per-category ``[tp, fp, fn, iou_sum]`` under panopticapi's rules (keys: category ids as text).

    All pixel work is one bincount over (gt segment, pred segment) pairs; the matching itself works on the
    small segments x segments intersection table."""
    gt_map, pred_map = np.asarray(gt_map, dtype=np.int64), np.asarray(pred_map, dtype=np.int64)
    if gt_map.shape != pred_map.shape:
        raise PanopticFormatError(f"sample {sample_id!r}: prediction is {pred_map.shape[-2:]} but the ground "
                                  f"truth is {gt_map.shape[-2:]}")
    gt_ids, gt_order = _segment_table(gt_segments, "ground-truth", sample_id)
    pred_ids, pred_order = _segment_table(pred_segments, "predicted", sample_id)
    n_gt, n_pred = len(gt_ids), len(pred_ids)

    # table rows: VOID, the gt segments (sorted by id), ids missing from segments_info; columns: VOID, pred
    gt_row, gt_unlisted = _dense_index(gt_map, gt_ids)
    if gt_unlisted is not None:
        gt_row[gt_unlisted] = n_gt + 1
    pred_col, pred_unlisted = _dense_index(pred_map, pred_ids)
    if pred_unlisted is not None:
        raise PanopticFormatError(f"sample {sample_id!r}: predicted segment id {int(pred_map[pred_unlisted][0])} "
                                  f"is in the segment map but not in its segments list")
    table = np.bincount((gt_row * (n_pred + 1) + pred_col).ravel(), minlength=(n_gt + 2) * (n_pred + 1))
    table = table.reshape(n_gt + 2, n_pred + 1)

    pred_area = table[:, 1:].sum(axis=0)
    if (pred_area == 0).any():
        missing = int(pred_ids[np.flatnonzero(pred_area == 0)[0]])
        raise PanopticFormatError(f"sample {sample_id!r}: predicted segment id {missing} is listed but has no "
                                  f"pixels in the segment map")
    pred_info = [pred_segments[i] for i in pred_order]
    pred_cat = np.array([int(s["category_id"]) for s in pred_info], dtype=np.int64)
    if category_ids is not None:
        unknown = [c for c in pred_cat.tolist() if c not in category_ids]
        if unknown:
            raise PanopticFormatError(f"sample {sample_id!r}: predicted category id {unknown[0]} is not a "
                                      f"dataset category")
    gt_info = [gt_segments[i] for i in gt_order]
    gt_cat = np.array([int(s["category_id"]) for s in gt_info], dtype=np.int64)
    gt_crowd = np.array([s.get("iscrowd", 0) == 1 for s in gt_info], dtype=bool)
    gt_area = np.array([s["area"] if "area" in s else table[1 + i].sum() for i, s in enumerate(gt_info)],
                       dtype=np.int64)

    intersection = table[1:n_gt + 1, 1:]
    void_overlap = table[0, 1:]
    eligible = (intersection > 0) & (gt_cat[:, None] == pred_cat[None, :]) & ~gt_crowd[:, None]
    union = pred_area[None, :] + gt_area[:, None] - intersection - void_overlap[None, :]
    iou = np.divide(intersection, union, out=np.zeros(intersection.shape), where=eligible)
    matched = eligible & (iou > 0.5)
    gt_hit, pred_hit = np.nonzero(matched)

    counts: dict[int, list[float]] = {}

    def add(category: int, slot: int, value: float = 1) -> None:
        counts.setdefault(category, [0, 0, 0, 0.0])[slot] += value

    for g, p in zip(gt_hit.tolist(), pred_hit.tolist()):
        add(int(gt_cat[g]), 0)
        add(int(gt_cat[g]), 3, float(iou[g, p]))
    gt_matched = matched.any(axis=1)
    crowd_of: dict[int, int] = {}  # category -> its crowd segment; in list order, so the last one wins
    for position in np.argsort(gt_order, kind="stable").tolist():
        if gt_crowd[position]:
            crowd_of[int(gt_cat[position])] = position
        elif not gt_matched[position]:
            add(int(gt_cat[position]), 2)
    pred_matched = matched.any(axis=0)
    for p in np.flatnonzero(~pred_matched).tolist():
        category = int(pred_cat[p])
        ignored = int(void_overlap[p])
        if category in crowd_of:
            ignored += int(intersection[crowd_of[category], p])
        if ignored / pred_area[p] <= 0.5:
            add(category, 1)
    return {str(c): [int(v[0]), int(v[1]), int(v[2]), float(v[3])] for c, v in sorted(counts.items())}


def category_counts(record: Mapping[str, Any]) -> Iterable[tuple[str, Sequence[float]]]:
    """(category id as text, [tp, fp, fn, iou_sum]) of one image's record (its preview left out)."""
    return ((key, value) for key, value in record.items() if key != PREVIEW_KEY)


def pq_totals(records: Iterable[Mapping[str, Any]]) -> dict[int, tuple[int, int, int, float]]:
    """Per-category dataset totals ``(tp, fp, fn, iou_sum)``; the IoU sum is exact in any record order."""
    counts: dict[int, list[int]] = {}
    ious: dict[int, list[float]] = {}
    for record in records:
        for key, (tp, fp, fn, iou) in category_counts(record):
            total = counts.setdefault(int(key), [0, 0, 0])
            total[0], total[1], total[2] = total[0] + int(tp), total[1] + int(fp), total[2] + int(fn)
            ious.setdefault(int(key), []).append(float(iou))
    return {c: (*counts[c], math.fsum(ious[c])) for c in counts}


def pq_average(totals: Mapping[int, tuple[int, int, int, float]], categories: Sequence[Category],
               isthing: bool | None = None) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
    """panopticapi's ``PQStat.pq_average``: mean PQ/SQ/RQ over the categories (of one kind) that have any
    TP, FP or FN; NaN when none has. Also each counted category's own PQ/SQ/RQ."""
    per_class: dict[int, dict[str, float]] = {}
    for category in categories:
        if isthing is not None and category.isthing != isthing:
            continue
        tp, fp, fn, iou = totals.get(category.id, (0, 0, 0, 0.0))
        if tp + fp + fn == 0:
            continue
        denominator = tp + 0.5 * fp + 0.5 * fn
        per_class[category.id] = {"pq": iou / denominator, "sq": iou / tp if tp else 0.0, "rq": tp / denominator}
    n = len(per_class)
    mean = {key: (sum(v[key] for v in per_class.values()) / n if n else math.nan) for key in ("pq", "sq", "rq")}
    return {**mean, "n": n}, per_class


class PanopticEvaluator(Evaluator):
    needs = ("panoptic",)

    """PQ / SQ / RQ (all, things, stuff) and per-category PQ; ``process`` per batch, ``compute`` pure."""

    def __init__(self, categories: Iterable[Mapping[str, Any] | Category], previews: int = PREVIEW_COUNT) -> None:
        categories = list(categories)
        self.categories = [c if isinstance(c, Category) else as_categories([c])[0] for c in categories]
        if not self.categories:
            raise ValueError("a panoptic evaluator needs the dataset's categories")
        self.category_ids = {c.id for c in self.categories}
        self.class_index = {c.id: i for i, c in enumerate(self.categories)}  # preview colours: the categories'
        self.palette = palette_of([c.get("color") if isinstance(c, Mapping) else None for c in categories])
        self.previews = previews

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        """The state of one batch: the outputs are ``PanopticPrediction``s, targets ``PanopticTarget``s,
        both at the original image size."""
        pass_name, outputs = outputs.pass_name, outputs["panoptic"]
        state = EvalState()
        previewed = preview_positions(pass_name, batch, self.previews)
        for position, (sample_id, prediction, target) in enumerate(zip(batch.ids, outputs, batch.targets,
                                                                       strict=True)):
            record: dict[str, Any] = pq_image(_numpy(target.segment_map), target.segments,
                                              _numpy(prediction.segment_map), prediction.segments,
                                              self.category_ids, sample_id)
            if position in previewed:
                record[PREVIEW_KEY] = preview(
                    batch, position, segment_classes(target.segment_map, target.segments, self.class_index),
                    segment_classes(prediction.segment_map, prediction.segments, self.class_index), self.palette)
            state.add_record(sample_id, pass_name, record)
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        """Metrics of the one pass in ``state``."""
        names = {c.id: c.name for c in self.categories}
        records = [record for _, record in state.pass_records(state.only_pass())]
        totals = pq_totals(records)
        metrics: list[Metric] = []
        for suffix, isthing in (("", None), ("_things", True), ("_stuff", False)):
            mean, per_class = pq_average(totals, self.categories, isthing)
            metrics += [Metric(f"{key}{suffix}", mean[key], len(records)) for key in ("pq", "sq", "rq")]
            if isthing is None:
                metrics += [Metric("pq_class", value["pq"], len(records), {"class": names[category]})
                            for category, value in per_class.items()]
        return metrics

    def evidence(self, metric: str, params: dict[str, Any]) -> Resampled | None:
        return Resampled((MAIN_PASS,), pq_statistic) if metric == "pq" else None


def pq_statistic(records: list[Record]) -> Statistic:
    """PQ as panopticapi over resampled images: per category IoU sum / (TP + FP/2 + FN/2), averaged over
    the categories seen."""
    cats = sorted({c for r in records for c, _ in category_counts(r)}, key=str)
    column = {c: i for i, c in enumerate(cats)}
    counts = np.zeros((len(records), len(cats), 4))  # tp, fp, fn, iou sum
    for row, record in enumerate(records):
        for c, values in category_counts(record):
            counts[row, column[c]] = values[:4]

    def statistic(idx: np.ndarray) -> float:
        tp, fp, fn, iou = counts[idx].sum(axis=0).T
        seen = tp + fp + fn > 0
        return float(np.mean(iou[seen] / (tp[seen] + fp[seen] / 2 + fn[seen] / 2))) if seen.any() else math.nan

    return statistic


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
