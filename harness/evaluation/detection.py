"""COCO detection / instance-segmentation evaluation: per-image COCO results as records, COCOeval on merge.

``process`` turns each image's canonical ``Detections`` (XYXY boxes in original pixels, dataset category
ids, optional masks) into COCO result dicts — ``bbox`` as XYWH, ``segmentation`` as compressed RLE with
``counts`` as str — and stores them as the record of that sample: ``{"image_id", "masks", "results"}``.
``compute`` is a pure function of the merged records and the ground truth: it runs COCOeval once per IoU
type over exactly the images evaluated (``params.imgIds``), so a subset, a shard or a resumed run scores
the images it saw and nothing else.

Backends: ``pycocotools`` (the reference) and ``faster_coco_eval`` (the same algorithm in C++; the
default, because its 12 stats and per-class AP equal pycocotools' on every case in
tests/evaluation/test_detection_eval.py).

Decisions on COCO's traps:
- No detections at all: pycocotools' ``loadRes([])`` crashes (it reads ``anns[0]``); an empty result set
  is built directly, and COCOeval then gives 0 for every stat with ground truth and -1 where COCO leaves it
  undefined.
- COCOeval's -1 (no ground truth in that category / area range) becomes NaN, never 0; per-class AP of a
  category without ground truth is NaN and COCO's mean already excludes it.
- Records whose ``image_id`` is not in the ground truth are an error (wrong dataset for this ground truth).
  Results handed to ``coco_evaluate`` for images outside ``image_ids`` are dropped: scoring is restricted
  to the evaluated images (pycocotools would assert).
- Ground-truth annotation id 0 (COCOeval's "unmatched" marker): ids are shifted by one first.
- A ground truth without ``info``: an empty ``info`` is supplied.
- A ground-truth annotation without ``area``: w·h of its box is supplied (the targets' convention,
  harness/data/coco.py). pycocotools would raise ``KeyError: 'area'`` and faster_coco_eval would read 0 and call
  every such object small. Where ``area`` is given it decides the object's size bucket as written, for bbox and
  segm alike (docs/dense.md): COCO's files hold mask areas, mmdet's converter box areas.
- More than 100 detections per image: kept in the records; COCOeval keeps the 100 best per image and
  category (``maxDets``), as in the reference.
- ``segm`` results carry no ``bbox`` (as torchvision's reference evaluator), so ``loadRes`` takes their area
  from the mask, which is what COCO's small/medium/large ranges use for masks.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from harness.evaluation.coco_bootstrap import coco_eval_of, fast_bbox_statistic
from harness.evaluation.coco_incremental import ImageEvaluations
from harness.evaluation.coco_format import encode_masks, nonzero_ann_ids, xyxy_to_xywh
from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outputs, Resampled, Statistic
from harness.evaluation.outputs import Detections
from harness.evaluation.state import EvalState, Record, merge_all
from harness.metrics import Metric, declare

IOU_TYPES = ("bbox", "segm")
BACKENDS = ("faster_coco_eval", "pycocotools")
DEFAULT_BACKEND = "faster_coco_eval"

# COCOeval.stats order; names as torchmetrics' MeanAveragePrecision
STAT_NAMES = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
              "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")
_STAT_TEXT = ("AP @ IoU 0.50:0.95", "AP @ IoU 0.50", "AP @ IoU 0.75", "AP, small objects (area < 32²)",
              "AP, medium objects (32² to 96²)", "AP, large objects (area > 96²)", "AR, 1 detection per image",
              "AR, 10 detections per image", "AR, 100 detections per image", "AR, small objects",
              "AR, medium objects", "AR, large objects")
for _name, _text in zip(STAT_NAMES, _STAT_TEXT):
    declare(_name, "higher", kind="dataset", description=f"COCO {_text} (COCOeval.stats; NaN where COCO gives -1)")
declare("ap_class", "higher", headline=False, kind="dataset",
        description="COCO AP @ IoU 0.50:0.95 of one category (NaN when the category has no ground truth)")
PR_IOUS = (0.5, 0.75)  # IoU thresholds whose precision-recall curve a summary keeps (the report draws them)


def detections_to_coco(image_id: int, detections: Detections, with_masks: bool = True) -> list[dict[str, Any]]:
    """One image's detections as COCO result dicts (XYWH ``bbox``, ``score``, RLE ``segmentation``)."""
    boxes = xyxy_to_xywh(detections.boxes.detach().cpu().numpy())
    scores = detections.scores.detach().cpu().numpy().astype(np.float64).reshape(-1)
    labels = detections.labels.detach().cpu().numpy().astype(np.int64).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"image {image_id}: detections have {len(boxes)} boxes, {len(scores)} scores, "
                         f"{len(labels)} labels")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError(f"image {image_id}: detections contain NaN or infinite boxes or scores")
    results = [{"image_id": int(image_id), "category_id": int(label), "bbox": [float(v) for v in box],
                "score": float(score)} for box, score, label in zip(boxes, scores, labels)]
    if with_masks and detections.masks is not None:
        rles = encode_masks(detections.masks.detach().cpu().numpy().astype(bool))
        if len(rles) != len(results):
            raise ValueError(f"image {image_id}: {len(rles)} masks for {len(results)} detections")
        for result, rle in zip(results, rles):
            result["segmentation"] = rle
    return results


def coco_results(records: Iterable[Record], iou_type: str) -> list[dict[str, Any]]:
    """The COCO results list of ``records`` for one IoU type (fresh dicts: ``loadRes`` mutates them).

    ``bbox`` results carry no ``segmentation`` and ``segm`` results no ``bbox`` (see the module note).
    """
    _check_iou_type(iou_type)
    out = []
    for record in records:
        if iou_type == "bbox":
            out.extend({"image_id": r["image_id"], "category_id": r["category_id"], "bbox": list(r["bbox"]),
                        "score": r["score"]} for r in record["results"])
        elif not record["masks"]:
            raise ValueError(f"segm evaluation needs instance masks, but the model gave none for image "
                             f"{record['image_id']} (use iou_types: [bbox])")
        else:
            out.extend({"image_id": r["image_id"], "category_id": r["category_id"],
                        "segmentation": dict(r["segmentation"]), "score": r["score"]} for r in record["results"])
    return out


@dataclass
class CocoSummary:
    """COCOeval's 12 stats (-1 kept as COCO gives it), per-category AP and the number of images scored."""

    iou_type: str
    stats: np.ndarray  # (12,)
    category_ap: dict[int, float]  # category id -> AP @ 0.50:0.95 (NaN without ground truth)
    n_images: int
    recall: np.ndarray  # (101,) COCO's recall thresholds
    pr_curves: dict[float, np.ndarray]  # IoU (PR_IOUS) -> (101,) precision, mean over categories (NaN: none)

    def metrics(self, category_names: dict[int, str]) -> list[Metric]:
        out = [Metric(name, _nan_if_undefined(value), self.n_images, {"iou_type": self.iou_type})
               for name, value in zip(STAT_NAMES, self.stats)]
        out += [Metric("ap_class", ap, self.n_images,
                       {"iou_type": self.iou_type, "category": category_names.get(cat, str(cat))})
                for cat, ap in self.category_ap.items()]
        return out


def coco_evaluate(ground_truth: dict[str, Any], results: list[dict[str, Any]], image_ids: Sequence[int],
                  iou_type: str, backend: str = DEFAULT_BACKEND, copy_results: bool = True) -> CocoSummary:
    """COCOeval over ``image_ids`` only; ``results`` on other images are dropped. Inputs are left untouched
    (``loadRes`` writes ids and areas into result dicts: ``copy_results=False`` lets it consume fresh ones,
    such as ``coco_results``' output)."""
    _check_iou_type(iou_type)
    truth = CocoTruth(ground_truth, backend)
    image_ids = truth.check_ids(image_ids)
    wanted = set(image_ids)
    results = [r for r in results if r["image_id"] in wanted]
    evaluator = truth.evaluated(_copy_annotations(results) if copy_results else results, image_ids, iou_type)
    return summarize(evaluator, iou_type, len(image_ids))


class CocoTruth:
    """A ground truth prepared for COCOeval once (ids shifted off 0, areas supplied, annotations copied, since
    COCOeval and loadRes write into them), to evaluate any set of its images against."""

    def __init__(self, ground_truth: dict[str, Any], backend: str = DEFAULT_BACKEND) -> None:
        self.coco_cls, self.eval_cls = _backend(backend)
        ground_truth, _ = nonzero_ann_ids(ground_truth)
        self.ground_truth = {**ground_truth, "info": ground_truth.get("info") or {},
                             "annotations": _with_areas(_copy_annotations(ground_truth["annotations"]))}
        self.known = {image["id"] for image in self.ground_truth["images"]}
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = self.coco_cls()
            self.coco.dataset = self.ground_truth
            self.coco.createIndex()

    def check_ids(self, image_ids: Iterable[int]) -> list[int]:
        """The ids sorted and unique, or an error naming one the ground truth lacks."""
        image_ids = sorted(set(int(i) for i in image_ids))
        unknown = [i for i in image_ids if i not in self.known]
        if unknown:
            raise ValueError(f"image id {unknown[0]} is not in the ground truth ({len(unknown)} unknown image ids): "
                             f"predictions and ground truth come from different datasets")
        return image_ids

    def evaluated(self, results: list[dict[str, Any]], image_ids: list[int], iou_type: str, **options: Any) -> Any:
        """A COCOeval of ``results`` (consumed: loadRes writes into them) over ``image_ids``, after evaluate()."""
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = self.coco.loadRes(results) if results else _empty_results(self.coco_cls, self.ground_truth)
            evaluator = self.eval_cls(self.coco, coco_dt, iou_type, **options)
            evaluator.params.imgIds = image_ids
            evaluator.evaluate()
        return evaluator

    def accumulating(self, evaluations: list[Any], image_ids: Sequence[int], iou_type: str) -> Any:
        """A faster-coco-eval COCOeval holding per-image ``evaluations`` ([category][area][image] over the
        sorted ``image_ids``) as its own ``evaluate`` would have left them, ready for accumulate(); the
        parameters are normalised as evaluate() normalises them (its torch evaluator does the same)."""
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = self.eval_cls(self.coco, _empty_results(self.coco_cls, self.ground_truth), iou_type,
                                      separate_eval=True)
        params = evaluator.params
        params.imgIds = list(np.unique(self.check_ids(image_ids)))
        params.catIds = list(np.unique(params.catIds))
        params.maxDets = sorted(params.maxDets)
        evaluator._paramsEval = copy.deepcopy(params)
        evaluator._evalImgs_cpp = evaluations
        return evaluator


def summarize(evaluator: Any, iou_type: str, n_images: int) -> CocoSummary:
    """The summary of an evaluated COCOeval (accumulate, summarize, per-category AP, PR curves)."""
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.accumulate()
        evaluator.summarize()
    stats = np.asarray(evaluator.stats[:len(STAT_NAMES)], dtype=np.float64)
    precision = np.asarray(evaluator.eval["precision"])  # (iou, recall, category, area, maxDets)
    category_ap = {}
    for k, category in enumerate(evaluator.params.catIds):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        category_ap[int(category)] = float(values.mean()) if values.size else math.nan
    recall = np.asarray(evaluator.params.recThrs, dtype=np.float64)
    return CocoSummary(iou_type, stats, category_ap, n_images, recall,
                       {iou: pr_curve(precision, evaluator.params.iouThrs, iou) for iou in PR_IOUS})


def pr_curve(precision: np.ndarray, iou_thresholds: Sequence[float], iou: float) -> np.ndarray:
    """COCOeval's precision at each recall threshold for one IoU, all areas, the largest maxDets, averaged
    over the categories it is defined for (COCO's -1 = no ground truth left out; NaN where none is)."""
    matches = np.flatnonzero(np.isclose(np.asarray(iou_thresholds, dtype=np.float64), iou))
    if not matches.size:
        raise ValueError(f"IoU {iou} is not one of COCOeval's thresholds")
    values = np.asarray(precision[matches[0], :, :, 0, -1], dtype=np.float64)  # (recall, category)
    defined = values > -1
    counts = defined.sum(axis=1)
    sums = np.where(defined, values, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(values), math.nan), where=counts > 0)


class DetectionEvaluator(Evaluator):
    needs = ("detections",)

    """COCO mAP/mAR (bbox and/or segm) against a COCO instances ground truth (``source.coco_ground_truth()``)."""

    def __init__(self, ground_truth: dict[str, Any], iou_types: Sequence[str] = IOU_TYPES,
                 backend: str = DEFAULT_BACKEND, evaluate_while_processing: bool = False) -> None:
        """``evaluate_while_processing`` (faster-coco-eval only): COCO's per-image evaluations are made in
        ``process``, so ``compute`` only accumulates (coco_incremental.py). That pays where ``process`` runs
        beside the forward passes: on CUDA. On a CPU the evaluations hold the GIL the forward pass needs, and
        made batch by batch they cost more than one COCOeval at the end (0.61 s vs 0.41 s per 300 scenes)."""
        for iou_type in iou_types:
            _check_iou_type(iou_type)
        _backend(backend)
        self.ground_truth, self.iou_types, self.backend = ground_truth, tuple(iou_types), backend
        self.category_names = {c["id"]: c["name"] for c in ground_truth.get("categories", [])}
        self._images = {image["id"]: image for image in ground_truth.get("images", [])}
        self._image_ids = set(self._images)
        self._truth_of: dict[int, list[dict[str, Any]]] = {}
        for annotation in ground_truth.get("annotations", []):
            self._truth_of.setdefault(annotation["image_id"], []).append(annotation)
        # faster-coco-eval: each batch's images evaluated as it is processed (harness/evaluation/coco_incremental.py)
        early = evaluate_while_processing and backend == "faster_coco_eval"
        self._early = ImageEvaluations() if early else None
        self._truth: CocoTruth | None = None  # the prepared ground truth, built on first use

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        """One batch's state: a record per sample with its image id and COCO results."""
        pass_name, outputs = outputs.pass_name, outputs["detections"]
        if len(outputs) != len(batch.ids):
            raise ValueError(f"{len(outputs)} detection outputs for a batch of {len(batch.ids)} images")
        state = EvalState()
        for sample_id, target, detections in zip(batch.ids, batch.targets, outputs):
            image_id = int(target.image_id)
            if image_id not in self._image_ids:
                raise ValueError(f"sample {sample_id!r}: image id {image_id} is not in the ground truth")
            image = self._images[image_id]
            state.add_record(sample_id, pass_name, {
                "image_id": image_id, "masks": detections.masks is not None,
                "results": detections_to_coco(image_id, detections, with_masks="segm" in self.iou_types),
                # the image's ground truth (boxes only) and size: a paired bootstrap needs no dataset
                "width": image.get("width"), "height": image.get("height"),
                "gt": [{k: a[k] for k in ("bbox", "category_id", "iscrowd", "area") if k in a}
                       for a in self._truth_of.get(image_id, [])]})
        if self._early is not None:
            self._evaluate_images(pass_name, list(state.pass_records(pass_name)))
        return state

    def _evaluate_images(self, pass_name: str, records: list[tuple[str, Record]]) -> None:
        """COCO's per-image evaluations of one batch, kept for ``compute`` (see coco_incremental.py)."""
        assert self._early is not None
        if self._truth is None:
            self._truth = CocoTruth(self.ground_truth, self.backend)
        plain = [record for _, record in records]
        image_ids = self._truth.check_ids(record["image_id"] for record in plain)
        for iou_type in self.iou_types:
            if iou_type == "segm" and not all(record["masks"] for record in plain):
                continue  # compute takes the ordinary path, which names the image without masks
            evaluated = self._truth.evaluated(coco_results(plain, iou_type), image_ids, iou_type, separate_eval=True)
            self._early.add(pass_name, iou_type, evaluated)
        for sample_id, record in records:
            self._early.note(pass_name, sample_id, record)

    def compute(self, state: EvalState) -> list[Metric]:
        """Metrics of the one pass in ``state``: from the images' evaluations made while processing when they
        cover exactly these records, else by a full COCOeval of them (the same numbers either way)."""
        pass_name = state.only_pass()
        pairs = list(state.pass_records(pass_name))
        records = [record for _, record in pairs]
        image_ids = [record["image_id"] for record in records]
        early = self._early is not None and self._truth is not None and self._early.matches(pass_name, pairs)
        metrics: list[Metric] = []
        for iou_type in self.iou_types:
            stitched = self._early.stitched(pass_name, iou_type, image_ids) if early else None
            if stitched is not None:
                summary = summarize(self._truth.accumulating(stitched, image_ids, iou_type), iou_type,
                                    len(image_ids))
            else:
                summary = coco_evaluate(self.ground_truth, coco_results(records, iou_type), image_ids, iou_type,
                                        self.backend, copy_results=False)
            metrics += summary.metrics(self.category_names)
        return metrics

    def evidence(self, metric: str, params: dict[str, Any]) -> Resampled | None:
        if metric not in COCO_STATS or params.get("iou_type", "bbox") != "bbox":
            return None
        return Resampled((MAIN_PASS,), lambda records: fast_bbox_statistic(records, COCO_STATS[metric]))


COCO_STATS = {"map": 0, "map_50": 1, "map_75": 2, "map_small": 3, "map_medium": 4, "map_large": 5}


def coco_bbox_statistic(records: list[Record], index: int) -> Statistic:
    """COCO bbox AP (``COCOeval.stats[index]``) over resampled images by a full COCOeval of each draw: the
    reference that ``coco_bootstrap.fast_bbox_statistic`` (what the gate uses) is tested against. Every
    resampled position becomes its own image id, since COCOeval keeps one entry per image id and would
    silently drop a repeated image."""
    def statistic(idx: np.ndarray) -> float:
        evaluation = coco_eval_of([records[position] for position in idx.tolist()])
        if evaluation is None:
            return 0.0
        with contextlib.redirect_stdout(io.StringIO()):
            evaluation.accumulate()
            evaluation.summarize()
        return max(0.0, float(evaluation.stats[index]))  # pycocotools reports -1 when nothing is defined

    return statistic


def _copy_annotations(annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies deep enough for COCOeval's writes (it adds keys and may re-encode RLE ``counts``)."""
    return [{**a, "segmentation": dict(a["segmentation"])} if isinstance(a.get("segmentation"), dict) else dict(a)
            for a in annotations]


def _with_areas(annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ground-truth annotations with ``area`` where it is missing: w·h of the box (see the module note)."""
    return [a if "area" in a else {**a, "area": float(a["bbox"][2]) * float(a["bbox"][3])} for a in annotations]


def _empty_results(coco_cls: type, ground_truth: dict[str, Any]) -> Any:
    """A results object with no detections (what ``loadRes([])`` should have returned)."""
    empty = coco_cls()
    empty.dataset = {"info": ground_truth["info"], "images": list(ground_truth["images"]),
                     "categories": list(ground_truth["categories"]), "annotations": []}
    empty.createIndex()
    return empty


def _backend(name: str) -> tuple[type, type]:
    if name == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        return COCO, COCOeval
    if name == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster
        return COCO, COCOeval_faster
    raise ValueError(f"unknown COCO backend {name!r} (known: {', '.join(BACKENDS)})")


def _check_iou_type(iou_type: str) -> None:
    if iou_type not in IOU_TYPES:
        raise ValueError(f"unknown iou_type {iou_type!r} (known: {', '.join(IOU_TYPES)})")


def _nan_if_undefined(value: float) -> float:
    return math.nan if value == -1 else float(value)


def score_on_scenes(model: Any, source: Any, batch_size: int = 100) -> dict[str, float]:
    """COCO bbox stats of a zoo detector (``model.detect(images) -> list[Detections]``) on a scenes source
    (native 128 x 128 images, no resize): the zoo's recorded scores and its training script use it."""
    model.eval()
    evaluator = DetectionEvaluator(source.coco_ground_truth(), ("bbox",))
    states = []
    for start in range(0, len(source), batch_size):
        indices = range(start, min(start + batch_size, len(source)))
        images = torch.from_numpy(np.stack([source.scene(i).image for i in indices])).permute(0, 3, 1, 2) / 255
        batch = SimpleNamespace(ids=[source.sample_id(i) for i in indices],
                                targets=[SimpleNamespace(image_id=source.image_id(i)) for i in indices])
        states.append(evaluator.process(batch, Outputs("clean", {"detections": model.detect(images)})))
    return {m.name: m.value for m in evaluator.compute(merge_all(states)) if m.name != "ap_class"}
