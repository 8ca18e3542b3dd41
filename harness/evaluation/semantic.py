"""Semantic segmentation scoring with mmsegmentation's conventions (``mmseg/evaluation/metrics/iou_metric.py``).

- Logits at any resolution are resized bilinearly (``align_corners=False``) to each image's label size,
  then argmax'd; pixels equal to the target's ``ignore_index`` are dropped. Label maps (``LabelMap``, e.g.
  saved PNGs) are scored as they are and must have the label's size; their pixels with no class predicted
  (the map's own ``ignore_index``) count as mmseg's ``IoUMetric`` counts a prediction outside 0..C-1: in the
  label's area (a miss) and in no class's predicted area.
- Intersection and union are summed over the whole dataset (one confusion matrix), never averaged per
  image. IoU of a class = intersection / union; a class with zero union (absent from labels and
  predictions) is NaN and left out of the mean; a class predicted but absent from the labels has IoU 0.
- ``macc`` is the nan-mean of per-class accuracy (intersection / label area; NaN for a class with no
  label pixels), ``aacc`` the overall pixel accuracy.

The state of a batch holds one C x C int64 confusion matrix per pass (``sums``, rows = label, columns =
prediction; plus ``<pass>/unpredicted``, per label class the pixels with no class predicted, when any) and,
per image, the sparse per-class intersection / union / label area (``records``) from
which the gate can bootstrap over images; the first few samples' records also keep a small ``preview``
(input, ground truth and prediction as PNGs; harness/evaluation/previews.py) for the report's overlays.

Saved label maps (``saved``: the predictions' folder and label convention, docs/predictions.md) get one more
check on the merged state: a prediction set that reads as the ground truth shifted by one class (most pixels
predicted as label + 1, or label - 1, far more than as the label, over several classes) is refused with the
option that fixes it, instead of a near-zero mIoU published as if it were the model's.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outputs, Resampled, Statistic
from harness.evaluation.outputs import SHIFT_CLASSES, SHIFT_RATIO, SHIFT_SHARE, LabelMap
from harness.evaluation.previews import PREVIEW_COUNT, PREVIEW_KEY, palette_of, preview, preview_positions
from harness.evaluation.state import EvalState, Record
from harness.metrics import Metric, declare

declare("miou", "higher", kind="dataset",
        description="mean IoU over classes present in labels or predictions (dataset-level, mmseg)")
declare("macc", "higher", kind="dataset", description="mean per-class pixel accuracy over classes with labels")
declare("aacc", "higher", kind="dataset", description="overall pixel accuracy (ignored pixels excluded)")
declare("iou_class", "higher", kind="dataset", headline=False, description="IoU of one class (dataset-level)")

CONFUSION = "confusion"
UNPREDICTED = "unpredicted"  # per label class: pixels of a label map with no class predicted


class LabelRangeError(ValueError):
    """A label pixel outside 0..C-1 that is not the ignore index (wrong class count or preset)."""


class LabelShiftError(ValueError):
    """Saved label maps whose classes read as the ground truth's shifted by one: a label-convention mistake."""


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) or (N, C, h, w) logits resized bilinearly to ``size`` (H, W), as mmseg's ``resize``."""
    batched = logits if logits.dim() == 4 else logits.unsqueeze(0)
    if tuple(batched.shape[-2:]) != tuple(size):
        batched = F.interpolate(batched.float(), size=tuple(size), mode="bilinear", align_corners=False)
    return batched if logits.dim() == 4 else batched[0]


def predict_labels(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The (H, W) argmax of one image's (C, h, w) logits resized to ``size``. Channels-last memory makes
    the resize and the per-pixel argmax contiguous (about 2.5x faster on CPU); the values are the same."""
    batched = logits.unsqueeze(0).contiguous(memory_format=torch.channels_last)
    return resize_logits(batched, size).argmax(dim=1)[0]


def confusion_matrix(prediction: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int,
                     sample_id: str = "") -> torch.Tensor:
    """(C, C) int64 counts, rows = label class, columns = predicted class, ignored pixels dropped."""
    label, prediction = label.long(), prediction.long()
    counted = (label >= 0) & (label < num_classes) & (label != ignore_index)
    bad = ~counted & (label != ignore_index)
    if bool(bad.any()):
        raise LabelRangeError(f"sample {sample_id!r}: label value {int(label[bad][0])} is outside "
                              f"0..{num_classes - 1} and is not the ignore index {ignore_index}")
    square = num_classes * num_classes
    index = torch.where(counted, label * num_classes + prediction, square)  # uncounted pixels: one extra bin
    return torch.bincount(index.flatten(), minlength=square + 1)[:square].reshape(num_classes, num_classes)


def sliding_window_logits(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                          mode: Literal["whole", "slide"] = "whole", crop_size: Sequence[int] | None = None,
                          stride: Sequence[int] | None = None) -> torch.Tensor:
    """Segmentation logits for ``images`` (N, 3, H, W): one forward pass ("whole"), or mmseg's
    ``slide_inference``: crops of ``crop_size`` every ``stride`` pixels (the last crop flush with the
    border), each crop's logits resized to the crop, overlapping logits averaged. Returns (N, C, h, w)
    ("whole": the model's own resolution) or (N, C, H, W) ("slide")."""
    if mode == "whole":
        return model(images)
    if mode != "slide":
        raise ValueError(f"inference mode must be 'whole' or 'slide', not {mode!r}")
    if crop_size is None or stride is None:
        raise ValueError("sliding-window inference needs 'crop_size' and 'stride' (height, width)")
    (crop_h, crop_w), (stride_h, stride_w) = crop_size, stride
    if min(crop_h, crop_w, stride_h, stride_w) <= 0:
        raise ValueError(f"crop_size {tuple(crop_size)} and stride {tuple(stride)} must be positive")
    n, _, height, width = images.shape
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    total: torch.Tensor | None = None
    count = torch.zeros((1, 1, height, width), device=images.device)
    for row in range(rows):
        for col in range(cols):
            y2, x2 = min(row * stride_h + crop_h, height), min(col * stride_w + crop_w, width)
            y1, x1 = max(y2 - crop_h, 0), max(x2 - crop_w, 0)
            crop = resize_logits(model(images[:, :, y1:y2, x1:x2]), (y2 - y1, x2 - x1))
            if total is None:
                total = crop.new_zeros((n, crop.shape[1], height, width))
            total[:, :, y1:y2, x1:x2] += crop
            count[:, :, y1:y2, x1:x2] += 1
    assert total is not None
    return total / count


class SemanticEvaluator(Evaluator):
    """mIoU / mAcc / aAcc over a dataset; ``process`` per batch, ``compute`` pure on the merged state."""

    needs = ("semantic_logits", "semantic_labels")  # either one

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None,
                 previews: int = PREVIEW_COUNT, colours: Sequence[Sequence[int]] | None = None,
                 saved: dict[str, Any] | None = None) -> None:
        """``previews``: how many of the first samples keep a preview; ``colours``: RGB per class for it;
        ``saved``: the saved label PNGs being scored (their folder, model and label convention), which turns
        on the label-convention check of ``compute``."""
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes, self.previews, self.palette = num_classes, previews, palette_of(colours)
        self.saved = saved
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} classes")

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        """The state of one batch: the outputs are ``semantic_logits`` (N, C, h, w) or ``semantic_labels``
        (a ``LabelMap`` per image), targets ``SemanticTarget`` at the original image size."""
        pass_name, outputs = outputs.pass_name, outputs.first(*self.needs)
        state = EvalState()
        total = torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64)
        unpredicted_total = torch.zeros(self.num_classes, dtype=torch.int64)
        previewed = preview_positions(pass_name, batch, self.previews)
        for position, (sample_id, output, target) in enumerate(zip(batch.ids, outputs, batch.targets, strict=True)):
            label = torch.as_tensor(target.mask)
            prediction, none = self._prediction(sample_id, output, tuple(label.shape[-2:]))
            label = label.to(prediction.device)
            scored = prediction if none is None else torch.where(none, torch.zeros_like(prediction), prediction)
            matrix = confusion_matrix(scored, label, self.num_classes, target.ignore_index, sample_id).cpu()
            unpredicted = None
            if none is not None:  # counted above as predicted class 0: moved to "no class predicted"
                counted = none & (label >= 0) & (label < self.num_classes) & (label != target.ignore_index)
                unpredicted = torch.bincount(label[counted].long().cpu(), minlength=self.num_classes)
                matrix[:, 0] -= unpredicted
                unpredicted_total += unpredicted
            total += matrix
            record = _sparse_record(matrix, unpredicted)
            if position in previewed:
                shown = prediction if none is None else torch.where(none, torch.full_like(prediction, -1), prediction)
                record[PREVIEW_KEY] = preview(batch, position, label, shown, self.palette)
            state.add_record(sample_id, pass_name, record)
        state.add_sum(f"{pass_name}/{CONFUSION}", total.numpy())
        if bool(unpredicted_total.any()):
            state.add_sum(f"{pass_name}/{UNPREDICTED}", unpredicted_total.numpy())
        return state

    def _prediction(self, sample_id: str, output: torch.Tensor | LabelMap,
                    size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (H, W) predicted classes and the pixels with no class predicted (None when there are none): a
        label map as it is (checked: a class outside 0..C-1 would land in another cell of the confusion
        matrix), logits resized to the label and argmax'd."""
        if isinstance(output, LabelMap):
            labels, where = output.labels.long(), output.origin or f"sample {sample_id!r}"
            if tuple(labels.shape) != size:
                raise ValueError(f"{where}: predicted label map is {labels.shape[-1]}x{labels.shape[0]} but the "
                                 f"label of image {sample_id!r} is {size[1]}x{size[0]}")
            none = labels == output.ignore_index if output.ignore_index is not None else None
            outside = (labels < 0) | (labels >= self.num_classes)
            if none is not None:
                outside &= ~none
            if bool(outside.any()):
                raise ValueError(f"{where}: predicted class {int(labels[outside][0])} is outside "
                                 f"0..{self.num_classes - 1}")
            return labels, (none if none is not None and bool(none.any()) else None)
        if output.shape[0] != self.num_classes:
            raise ValueError(f"sample {sample_id!r}: {output.shape[0]} logit channels for {self.num_classes} classes")
        return predict_labels(output, size), None

    def compute(self, state: EvalState) -> list[Metric]:
        """Metrics of the one pass in ``state``."""
        name = state.only_pass()
        key = f"{name}/{CONFUSION}"
        if key not in state.sums:
            raise KeyError(f"no confusion matrix for pass {name!r} in the evaluator state")
        n = sum(1 for _ in state.pass_records(name))
        matrix = np.asarray(state.sums[key], dtype=np.int64)
        unpredicted = np.asarray(state.sums.get(f"{name}/{UNPREDICTED}", np.zeros(len(matrix))), dtype=np.int64)
        if self.saved is not None:
            check_label_convention(matrix, unpredicted, self.saved)
        scores = scores_from_confusion(matrix, unpredicted)
        metrics = [Metric("miou", scores["miou"], n), Metric("macc", scores["macc"], n),
                   Metric("aacc", scores["aacc"], n)]
        return metrics + [Metric("iou_class", float(iou), n, {"class": self.class_names[c]})
                          for c, iou in enumerate(scores["iou"]) if not math.isnan(iou)]

    def evidence(self, metric: str, params: dict[str, Any]) -> Resampled | None:
        return Resampled((MAIN_PASS,), miou_statistic) if metric == "miou" else None


def miou_statistic(records: list[Record]) -> Statistic:
    """mIoU as mmsegmentation over resampled images: per-class intersection and union summed over the
    images, averaged over the classes with a union (records' parallel lists ``classes``, ``intersect``,
    ``union``)."""
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


def scores_from_confusion(matrix: np.ndarray, unpredicted: np.ndarray | None = None) -> dict[str, Any]:
    """mmseg's ``total_area_to_metrics`` on a (C, C) confusion matrix (rows = label) and, per label class, the
    pixels with no class predicted (in the label's area, in no prediction's)."""
    intersect = np.diag(matrix)
    label = matrix.sum(axis=1) + (0 if unpredicted is None else np.asarray(unpredicted))
    return _scores(intersect, label + matrix.sum(axis=0) - intersect, label)


def label_shift(matrix: np.ndarray) -> tuple[int, float, float] | None:
    """(+1 when predictions read as label + 1, -1 as label - 1, the shifted share, the diagonal's share) of a
    (C, C) confusion matrix, or None when it does not read as shifted."""
    matrix = np.asarray(matrix, dtype=np.int64)
    total, diagonal = int(matrix.sum()), np.diagonal(matrix)
    if total == 0 or len(matrix) <= SHIFT_CLASSES:
        return None
    for shift in (1, -1):
        band = np.diagonal(matrix, offset=shift)  # +1: M[c, c + 1] (label c predicted c + 1); -1: M[c + 1, c]
        own = diagonal[:-1] if shift == 1 else diagonal[1:]  # the same rows' diagonal cells
        share = band.sum() / total
        if share >= SHIFT_SHARE and band.sum() >= SHIFT_RATIO * diagonal.sum() \
                and int((band > own).sum()) >= SHIFT_CLASSES:
            return shift, float(share), float(diagonal.sum() / total)
    return None


def check_label_convention(matrix: np.ndarray, unpredicted: np.ndarray, saved: dict[str, Any]) -> None:
    """Refuse saved label maps that read as the ground truth shifted by one class, naming the option to set.
    ``saved``: ``path``, ``model``, ``reduce_zero_label``, ``ignore_index`` (docs/predictions.md)."""
    found = label_shift(matrix)
    if found is None:
        return
    shift, share, agree = found
    path, model = saved.get("path", "label PNGs"), saved.get("model", "?")
    reduced = bool(saved.get("reduce_zero_label"))
    as_written = scores_from_confusion(matrix, unpredicted)["miou"]
    evidence = (f"{share:.0%} of the scored pixels are predicted as label {'+' if shift > 0 else '-'} 1, "
                f"{agree:.0%} as the label; mIoU {as_written:.4f} as written")
    if shift > 0:
        fixed = np.zeros_like(matrix)  # every value lowered by one: class 0 becomes "no class predicted"
        fixed[:, :-1] = matrix[:, 1:]
        corrected = scores_from_confusion(fixed, unpredicted + matrix[:, 0])["miou"]
        evidence += f", {corrected:.4f} with every value lowered by one"
        advice = ("mmseg's format_only writes train id + 1 for reduce_zero_label datasets such as ADE20K: set "
                  f"'reduce_zero_label: true' on model {model}" if not reduced else
                  f"the files are offset by one more than reduce_zero_label removes: check how model {model}'s "
                  "PNGs were written")
    else:
        advice = (f"the files hold train ids already: drop 'reduce_zero_label' from model {model}" if reduced else
                  "the dataset's labels read one above the predictions': an ADE20K-style dataset (0 = other) "
                  "needs 'reduce_zero_label: true' on its dataset entry")
    raise LabelShiftError(f"{path}: the label PNGs read as the ground truth's classes shifted by {shift:+d} "
                          f"({evidence}); {advice}")


def scores_from_records(records: Iterable[dict[str, Any]], num_classes: int) -> dict[str, Any]:
    """The same scores from per-image records (what the gate resamples); equal to the confusion's."""
    intersect, union, label = (np.zeros(num_classes, dtype=np.int64) for _ in range(3))
    for record in records:
        classes = np.asarray(record["classes"], dtype=np.int64)
        intersect[classes] += record["intersect"]
        union[classes] += record["union"]
        label[classes] += record["label"]
    return _scores(intersect, union, label)


def _scores(intersect: np.ndarray, union: np.ndarray, label: np.ndarray) -> dict[str, Any]:
    """Per-class IoU and accuracy (NaN on 0/0) and their nan-means, from dataset-level integer areas."""
    intersect, union, label = (np.asarray(a, dtype=np.float64) for a in (intersect, union, label))
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, acc = intersect / union, intersect / label
        aacc = intersect.sum() / label.sum()
    return {"iou": iou, "acc": acc, "miou": _nanmean(iou), "macc": _nanmean(acc), "aacc": float(aacc)}


def _sparse_record(matrix: torch.Tensor, unpredicted: torch.Tensor | None = None) -> dict[str, Any]:
    """Per-class intersection, union and label area of one image, for the classes it involves."""
    intersect = torch.diagonal(matrix)
    label = matrix.sum(dim=1) + (0 if unpredicted is None else unpredicted)
    union = label + matrix.sum(dim=0) - intersect
    classes = torch.nonzero(union).flatten()
    return {"classes": classes.tolist(), "intersect": intersect[classes].tolist(),
            "union": union[classes].tolist(), "label": label[classes].tolist()}


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan
