"""Where each metric's per-sample evidence lives in a job's records: one table, one place.

- ``outcome_vector``: a proportion metric row -> {sample id: success} (the input of the paired McNemar test);
- ``dataset_statistic``: a dataset-level metric row -> its per-image records and a function that
  re-accumulates the metric over any resample of them (the input of the paired bootstrap);
- ``timing_series``: a timing metric row -> its repeated measurements (the input of the rank test).

A metric without an entry here is still gated, with the test that needs no per-sample evidence.
Record layouts are those the task evaluators write (see docs/gate.md, "Per-sample records").
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Callable

import numpy as np

from harness.evaluation.state import EvalState, Record

Params = dict[str, Any]
Outcome = Callable[[Params, Record], "bool | None"]  # None: the sample has no outcome for this row
Statistic = Callable[[np.ndarray], float]


# --- proportions: (task kinds, metric pattern, pass name for the row, success of one record) ----------------
def _topk(metric: str) -> Outcome:
    k = int(metric[3:])
    return lambda params, r: bool(r["correct"]) if k == 1 and "correct" in r else r["label"] in r["topk"][:k]


def _robust(params: Params, record: Record) -> bool:
    return bool(record["robust"][f"{params['norm']}:{float(params['eps'])!r}"])


@dataclass(frozen=True)
class OutcomeRule:
    task_kinds: tuple[str, ...]
    metric: str  # fnmatch pattern
    pass_name: Callable[[Params], str]
    outcome: Callable[[str], Outcome]  # metric name -> outcome of one record


OUTCOME_RULES: list[OutcomeRule] = [
    OutcomeRule(("classification",), "top[0-9]*", lambda p: "main", _topk),
    OutcomeRule(("pgd", "autoattack"), "robust_acc", lambda p: "main", lambda m: _robust),
    OutcomeRule(("pgd", "autoattack"), "clean_acc", lambda p: "main", lambda m: lambda p, r: bool(r["clean"])),
    OutcomeRule(("corruption",), "clean_acc", lambda p: "clean", lambda m: lambda p, r: bool(r["correct"])),
    OutcomeRule(("corruption",), "corruption_acc", lambda p: f"{p['corruption']}/{int(p['severity'])}",
                lambda m: lambda p, r: bool(r["correct"])),
]


def _rule(task_kind: str, metric: str) -> OutcomeRule | None:
    for rule in OUTCOME_RULES:
        if task_kind in rule.task_kinds and fnmatchcase(metric, rule.metric):
            return rule
    return None


def has_outcomes(task_kind: str, metric: str) -> bool:
    return _rule(task_kind, metric) is not None


def outcome_vector(task_kind: str, metric: str, params: Params, state: EvalState) -> dict[str, bool] | None:
    """{sample id: success} for a proportion row, or None when the task keeps no per-sample outcome for it."""
    rule = _rule(task_kind, metric)
    if rule is None:
        return None
    outcome = rule.outcome(metric)
    pass_name = rule.pass_name(params)
    try:
        return {sample_id: outcome(params, record) for sample_id, record in state.pass_records(pass_name)}
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"records of pass {pass_name!r} do not hold the outcome of {metric} {params}: "
                         f"missing {exc}") from None


# --- dataset-level statistics: per-image records re-accumulated over a resample -----------------------------
Preparer = Callable[[list[Record], Params, str], Statistic]  # records (image order), row params, metric


def _miou(records: list[Record], params: Params, metric: str) -> Statistic:
    """mIoU as mmsegmentation: per-class intersection and union summed over images, classes with a union.
    Records as harness/evaluation/semantic.py writes them: parallel lists ``classes``, ``intersect``, ``union``."""
    classes = sorted({c for r in records for c in r["classes"]})
    column = {c: i for i, c in enumerate(classes)}
    inter = np.zeros((len(records), len(classes)))
    union = np.zeros((len(records), len(classes)))
    for row, record in enumerate(records):
        for c, i, u in zip(record["classes"], record["intersect"], record["union"]):
            inter[row, column[c]], union[row, column[c]] = i, u

    def statistic(idx: np.ndarray) -> float:
        i, u = inter[idx].sum(axis=0), union[idx].sum(axis=0)
        present = u > 0
        return float(np.mean(i[present] / u[present])) if present.any() else math.nan

    return statistic


def _pq(records: list[Record], params: Params, metric: str) -> Statistic:
    """PQ as panopticapi: per category IoU sum / (TP + FP/2 + FN/2), averaged over categories seen.
    Records as harness/evaluation/panoptic.py writes them: ``{category id: [tp, fp, fn, iou sum]}``."""
    from harness.evaluation.panoptic import category_counts

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


COCO_STATS = {"map": 0, "map_50": 1, "map_75": 2, "map_small": 3, "map_medium": 4, "map_large": 5}


def _coco_map(records: list[Record], params: Params, metric: str) -> Statistic:
    """COCO bbox AP with pycocotools; every resampled position becomes its own image id, since COCOeval
    keeps one entry per image id and would silently drop a repeated image. Records as
    harness/evaluation/detection.py writes them: ``gt`` (the image's boxes), ``results``, ``width``, ``height``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    index = COCO_STATS[metric]
    categories = sorted({a["category_id"] for r in records for a in r["gt"] + r["results"]})

    def statistic(idx: np.ndarray) -> float:
        images, gts, dts = [], [], []
        for image_id, position in enumerate(idx.tolist(), start=1):
            record = records[position]
            images.append({"id": image_id, "width": record["width"], "height": record["height"]})
            gts += [{**a, "id": len(gts) + 1, "image_id": image_id} for a in [dict(g) for g in record["gt"]]]
            dts += [{k: v for k, v in d.items() if k != "segmentation"} | {"image_id": image_id}
                    for d in record["results"]]
        with contextlib.redirect_stdout(io.StringIO()):
            truth = COCO()
            truth.dataset = {"images": images, "annotations": gts, "categories": [{"id": c} for c in categories]}
            truth.createIndex()
            if not dts:
                return 0.0
            evaluation = COCOeval(truth, truth.loadRes(dts), "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return max(0.0, float(evaluation.stats[index]))  # pycocotools reports -1 when nothing is defined

    return statistic


@dataclass(frozen=True)
class DatasetRule:
    task_kinds: tuple[str, ...]
    metric: str  # fnmatch pattern
    pass_name: str
    prepare: Preparer


DATASET_RULES: list[DatasetRule] = [
    DatasetRule(("segmentation",), "miou", "main", _miou),
    DatasetRule(("panoptic",), "pq", "main", _pq),
    DatasetRule(("detection",), "map*", "main", _coco_map),
]


def dataset_rule(task_kind: str, metric: str) -> DatasetRule | None:
    for rule in DATASET_RULES:
        if task_kind in rule.task_kinds and fnmatchcase(metric, rule.metric) \
                and (rule.prepare is not _coco_map or metric in COCO_STATS):
            return rule
    return None


def dataset_statistic(task_kind: str, metric: str, params: Params, ids: list[str],
                      records: dict[str, Record]) -> Statistic | None:
    """A function of resampled positions into ``ids`` giving the metric, or None if it has no rule."""
    rule = dataset_rule(task_kind, metric)
    if rule is None:
        return None
    try:
        return rule.prepare([records[i] for i in ids], params, metric)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"per-image records do not hold what {metric} needs: missing {exc}") from None


# --- timings -----------------------------------------------------------------------------------------------
TIMING_PASS = "timing"


def series_id(params: Params) -> str:
    """Sample id under which a timing job records one measured series: its settings, canonical JSON."""
    return json.dumps({k: v for k, v in params.items()}, sort_keys=True, separators=(",", ":"))


def timing_series(params: Params, state: EvalState) -> list[float] | None:
    """The repeated measurements behind a timing row (record ``{"values": [...]}`` of pass "timing")."""
    record = state.records.get(series_id(params), {}).get(TIMING_PASS)
    return None if record is None else [float(v) for v in record["values"]]
