"""COCO bbox AP over resampled images without re-running COCOeval for every draw.

COCOeval's ``evaluate`` matches detections to ground truth image by image (per category, area range and IoU
threshold): a resample of whole images does not change any image's matches. Only ``accumulate`` sees the set:
it concatenates the images' detections in image order, stable-sorts them by score, and turns the cumulative
true and false positives into precision at 101 recall points. So ``evaluate`` runs once, on the evaluated
images, and each draw repeats pycocotools' accumulation over the drawn images' stored matches (a repeated
image counts twice, as a distinct image id would in COCOeval) — the same numbers as a full COCOeval of the
resampled set, at a fraction of the cost.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

Record = dict[str, Any]
# COCOeval.stats index -> (IoU threshold index or None for the mean over all ten, area range index)
STATS = {0: (None, 0), 1: (0, 0), 2: (5, 0), 3: (None, 1), 4: (None, 2), 5: (None, 3)}


def coco_eval_of(records: list[Record], area: int | None = None, threshold: int | None = None):
    """A COCOeval (bbox) over the records' images, image ids 1..n in record order, after ``evaluate``; with
    ``area`` / ``threshold``, only that area range (maxDets 100) / IoU threshold is evaluated."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories = sorted({a["category_id"] for r in records for a in r["gt"] + r["results"]})
    images, gts, dts = [], [], []
    for image_id, record in enumerate(records, start=1):
        images.append({"id": image_id, "width": record["width"], "height": record["height"]})
        gts += [{**a, "id": len(gts) + 1, "image_id": image_id} for a in [dict(g) for g in record["gt"]]]
        dts += [{k: v for k, v in d.items() if k != "segmentation"} | {"image_id": image_id} for d in record["results"]]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": gts, "categories": [{"id": c} for c in categories]}
        truth.createIndex()
        if not dts:
            return None
        evaluation = COCOeval(truth, truth.loadRes(dts), "bbox")
        params = evaluation.params
        if area is not None:
            params.areaRng, params.areaRngLbl = [params.areaRng[area]], [params.areaRngLbl[area]]
            params.maxDets = [params.maxDets[-1]]
        if threshold is not None:
            params.iouThrs = params.iouThrs[threshold:threshold + 1]
        evaluation.evaluate()
    return evaluation


class _Category:
    """One category at one area range: every image's detections (maxDets 100) in pycocotools' accumulation
    order for the evaluated set — by score, stable over image then rank — with their matches."""

    def __init__(self, entries: list[dict | None]) -> None:
        kept = [(i, e) for i, e in enumerate(entries) if e is not None]  # COCOeval keeps no entry for an image
        self.positives = np.zeros(len(entries), dtype=np.int64)  # without ground truth or detections here
        thresholds = kept[0][1]["dtMatches"].shape[0] if kept else 1
        for i, entry in kept:
            self.positives[i] = len(entry["gtIgnore"]) - np.count_nonzero(entry["gtIgnore"])
        sizes = [len(e["dtScores"]) for _, e in kept]
        owner = np.repeat(np.asarray([i for i, _ in kept], dtype=np.int64), sizes)
        score = np.concatenate([np.asarray(e["dtScores"], dtype=float) for _, e in kept]) if kept else np.zeros(0)
        matched = (np.concatenate([np.asarray(e["dtMatches"]).reshape(thresholds, -1) for _, e in kept], axis=1)
                   if kept else np.zeros((thresholds, 0))) != 0
        ignored = (np.concatenate([np.asarray(e["dtIgnore"]).reshape(thresholds, -1) for _, e in kept], axis=1)
                   if kept else np.zeros((thresholds, 0))) != 0
        tp_all, fp_all = matched & ~ignored, ~matched & ~ignored
        counted = ~ignored.all(axis=0)  # a detection ignored at every threshold changes no sum
        owner, score, tp_all, fp_all = owner[counted], score[counted], tp_all[:, counted], fp_all[:, counted]
        self.order = np.argsort(-score, kind="mergesort")  # (image order, then each image's own rank order)
        self.owner, self.scores = owner[self.order], score[self.order]
        self.tps, self.fps = tp_all[:, self.order], fp_all[:, self.order]
        # pycocotools' precision envelope only ever takes its value at a true positive (a false positive lowers
        # precision, and the envelope is a maximum over later ranks): per threshold, the ranks of the TPs
        self.true_ranks = [np.flatnonzero(row) for row in self.tps]
        # which detections count (TP or FP) per threshold; one row for all when ignores do not depend on it
        scored = self.tps | self.fps
        self.shared_counted = bool((scored == scored[:1]).all()) if len(scored) else True
        self.scored_by_threshold = scored[:1] if self.shared_counted else scored
        # a score shared by two detections: a draw's image order decides which comes first, as in COCOeval
        self.ties = bool(np.any(self.scores[1:] == self.scores[:-1]))
        if self.ties:  # each image's detections (in its own rank order) as positions in the sorted arrays
            self.tps, self.fps = self.tps.astype(np.int32), self.fps.astype(np.int32)
            self.starts = np.searchsorted(owner, np.arange(len(entries) + 1))  # owner: image order, unsorted
            self.sorted_position = np.empty_like(self.order)
            self.sorted_position[self.order] = np.arange(len(self.order))

    def precision(self, idx: np.ndarray, counts: np.ndarray, recall_thresholds: np.ndarray) -> np.ndarray | None:
        """(T, R) interpolated precision over the drawn images (``counts``: draws per image), as
        COCOeval.accumulate over the resampled set; None where it is undefined (no non-ignored ground truth)."""
        npig = int((self.positives * counts).sum())
        if npig == 0:
            return None
        if self.ties:  # the exact order of the resampled set: its detections, sorted stably as COCOeval does
            return _interpolated(*self._expanded(idx), npig, recall_thresholds)
        # distinct scores: a detection drawn c times is c consecutive copies, i.e. a weight of c. Within such a
        # run of TP copies precision rises, so the envelope at any recall reached inside the run is at least
        # the run's last copy's: per threshold, the values at each TP's last copy are all COCOeval reads.
        weights = counts[self.owner]
        ranked = np.cumsum(self.scored_by_threshold * weights, axis=1)  # detections counted up to each rank (exact ints)
        out = np.zeros((len(self.true_ranks), len(recall_thresholds)))
        for t, ranks in enumerate(self.true_ranks):
            if not len(ranks):
                continue
            tp = np.cumsum(weights[ranks]).astype(float)
            total = ranked[0 if self.shared_counted else t, ranks].astype(float)
            precision = tp / (total + np.spacing(1))  # = tp / (fp + tp + eps) at those ranks
            precision = np.maximum.accumulate(precision[::-1])[::-1]
            where = np.searchsorted(tp / npig, recall_thresholds, side="left")
            inside = where < len(ranks)
            out[t, inside] = precision[where[inside]]
        return out

    def _expanded(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative TP / FP over the resampled set's detections in COCOeval's own order."""
        columns = [self.sorted_position[self.starts[i]:self.starts[i + 1]] for i in idx.tolist()]
        columns = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
        columns = columns[np.argsort(-self.scores[columns], kind="mergesort")]
        return (np.cumsum(self.tps[:, columns], axis=1).astype(float),
                np.cumsum(self.fps[:, columns], axis=1).astype(float))


def _interpolated(tp: np.ndarray, fp: np.ndarray, npig: int, recall_thresholds: np.ndarray) -> np.ndarray:
    """COCOeval.accumulate's (T, R) precision from cumulative TP / FP over ranked detections."""
    out = np.zeros((tp.shape[0], len(recall_thresholds)))
    if not tp.shape[1]:
        return out
    recall = tp / npig
    precision = tp / (fp + tp + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # COCOeval's backward max
    for t in range(tp.shape[0]):
        where = np.searchsorted(recall[t], recall_thresholds, side="left")
        inside = where < len(recall[t])
        out[t, inside] = precision[t, where[inside]]
    return out


def fast_bbox_statistic(records: list[Record], index: int):
    """``COCOeval.stats[index]`` (AP, AP50, AP75, AP small/medium/large) over resampled positions into
    ``records``, equal to a full COCOeval of the resampled images (tested against it)."""
    threshold, area = STATS[index]
    evaluation = coco_eval_of(records, area, threshold)
    if evaluation is None:
        return lambda idx: 0.0
    params = evaluation.params
    n_images = len(params.imgIds)
    categories = [_Category(evaluation.evalImgs[k * n_images:(k + 1) * n_images]) for k in range(len(params.catIds))]
    recall_thresholds = np.asarray(params.recThrs)

    def statistic(idx: np.ndarray) -> float:
        idx = np.asarray(idx)
        counts = np.bincount(idx, minlength=n_images)
        values = [p for c in categories if (p := c.precision(idx, counts, recall_thresholds)) is not None]
        if not values:
            return 0.0  # pycocotools reports -1 when nothing is defined
        return max(0.0, float(np.mean(np.concatenate([v.ravel() for v in values]))))

    return statistic
