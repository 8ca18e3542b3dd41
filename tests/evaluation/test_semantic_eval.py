"""Semantic segmentation scoring: mmseg's dataset-level mIoU, parity with torchmetrics, batching invariance,
sliding-window inference."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.segmentation import MeanIoU

from harness.evaluation.samples import SemanticTarget
from harness.evaluation.semantic import (LabelRangeError, SemanticEvaluator, scores_from_records,
                                         sliding_window_logits)
from harness.evaluation.state import merge_all
from harness.metrics import metric_info
from tests.evaluating import outputs_for

IGNORE = 255


def one_hot_logits(prediction: list[list[int]], num_classes: int) -> torch.Tensor:
    """(C, H, W) logits whose argmax is ``prediction``."""
    return F.one_hot(torch.tensor(prediction), num_classes).permute(2, 0, 1).float()


def make_batch(ids: list[str], labels: list[torch.Tensor]) -> SimpleNamespace:
    return SimpleNamespace(ids=ids, targets=[SemanticTarget(mask=label, ignore_index=IGNORE) for label in labels],
                           orig_sizes=[tuple(label.shape) for label in labels], images=None,
                           indices=torch.arange(len(ids)))


def by_name(metrics, name: str) -> float:
    (value,) = [m.value for m in metrics if m.name == name and "class" not in m.params]
    return value


# Hand-built case, 4 classes. Class 2 is predicted but never labelled; class 3 appears nowhere scored
# (it is only predicted on an ignored pixel, which is dropped); one pixel of image A is ignored.
LABEL_A = [[0, 0, 1, 1], [0, IGNORE, 1, 1]]
PRED_A = [[0, 1, 1, 1], [2, 3, 1, 1]]
LABEL_B = [[0, 1], [1, 1]]
PRED_B = [[0, 0], [1, 2]]
# Confusion over both images (rows = label, columns = prediction):
#   label 0: pred 0 x2 (A, B), pred 1 x1 (A), pred 2 x1 (A)      -> [2, 1, 1, 0]
#   label 1: pred 0 x1 (B), pred 1 x5 (A 4, B 1), pred 2 x1 (B)  -> [1, 5, 1, 0]
# class 0: I = 2, label 4, pred 3, U = 5 -> 0.4
# class 1: I = 5, label 7, pred 6, U = 8 -> 0.625
# class 2: I = 0, label 0, pred 2, U = 2 -> 0 (predicted but absent counts 0)
# class 3: U = 0 -> NaN, excluded from the mean
HAND_MIOU = (0.4 + 0.625 + 0.0) / 3
HAND_MACC = (2 / 4 + 5 / 7) / 2  # class 2 has no label pixels: accuracy NaN, excluded
HAND_AACC = 7 / 11
# Per image, mean over (image, class) pairs with a non-zero union (what torchmetrics' MeanIoU averages):
#   A: class 0 I 1 / U 3, class 1 I 4 / U 5, class 2 I 0 / U 1;  B: class 0 1/2, class 1 1/3, class 2 0/1
HAND_PER_IMAGE = (1 / 3 + 4 / 5 + 0 + 1 / 2 + 1 / 3 + 0) / 6


def hand_state(evaluator: SemanticEvaluator):
    batch = make_batch(["a", "b"], [torch.tensor(LABEL_A), torch.tensor(LABEL_B)])
    outputs = [one_hot_logits(PRED_A, 4), one_hot_logits(PRED_B, 4)]
    return evaluator.process(batch, outputs_for(evaluator, outputs, "clean"))


def test_hand_computed_case_with_absent_predicted_absent_and_ignored():
    evaluator = SemanticEvaluator(4, ["road", "car", "sky", "tree"])
    metrics = evaluator.compute(hand_state(evaluator))
    assert by_name(metrics, "miou") == pytest.approx(HAND_MIOU, abs=1e-12)
    assert by_name(metrics, "macc") == pytest.approx(HAND_MACC, abs=1e-12)
    assert by_name(metrics, "aacc") == pytest.approx(HAND_AACC, abs=1e-12)
    per_class = {m.params["class"]: m.value for m in metrics if m.name == "iou_class"}
    assert per_class == pytest.approx({"road": 0.4, "car": 0.625, "sky": 0.0})  # tree: no union, no row
    assert all(m.n == 2 for m in metrics)
    assert metric_info("miou").kind == "dataset" and not metric_info("iou_class").headline


def test_records_are_sparse_and_rescore_to_the_same_numbers():
    evaluator = SemanticEvaluator(4)
    state = hand_state(evaluator)
    record_a = {k: v for k, v in state.records["a"]["clean"].items() if k != "preview"}  # preview: test_dense_report
    assert record_a == {"classes": [0, 1, 2], "intersect": [1, 4, 0], "union": [3, 5, 1], "label": [3, 4, 0]}
    rescored = scores_from_records((r for _, r in state.pass_records("clean")), 4)
    assert rescored["miou"] == pytest.approx(HAND_MIOU, abs=1e-12)
    assert rescored["macc"] == pytest.approx(HAND_MACC, abs=1e-12)


def flat_valid(label: list[list[int]], pred: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    label_t, pred_t = torch.tensor(label).flatten(), torch.tensor(pred).flatten()
    keep = label_t != IGNORE
    return pred_t[keep], label_t[keep]


def test_torchmetrics_jaccard_macro_equals_on_hand_case_but_per_class_absent_differs():
    preds = torch.cat([torch.tensor(PRED_A).flatten(), torch.tensor(PRED_B).flatten()])
    target = torch.cat([torch.tensor(LABEL_A).flatten(), torch.tensor(LABEL_B).flatten()])
    macro = MulticlassJaccardIndex(num_classes=4, average="macro", ignore_index=IGNORE)(preds, target)
    assert float(macro) == pytest.approx(HAND_MIOU, abs=1e-6)
    # Where the definitions differ: torchmetrics reports an absent class's IoU as 0 (zero_division) in
    # average="none"; mmseg's is NaN. Its macro average nevertheless drops zero-union classes (weight 0),
    # so the means coincide (torchmetrics >= 1.x; older releases averaged the absent class in as 0).
    none = MulticlassJaccardIndex(num_classes=4, average="none", ignore_index=IGNORE)(preds, target)
    assert float(none[3]) == 0.0
    evaluator = SemanticEvaluator(4)
    assert all(m.params["class"] != "3" for m in evaluator.compute(hand_state(evaluator)) if m.name == "iou_class")


def test_per_image_averaging_gives_a_different_number():
    metric = MeanIoU(num_classes=4, input_format="index")
    for label, pred in ((LABEL_A, PRED_A), (LABEL_B, PRED_B)):
        p, t = flat_valid(label, pred)  # MeanIoU has no ignore index: score only the kept pixels
        metric.update(p.view(1, 1, -1), t.view(1, 1, -1))
    per_image = float(metric.compute())
    assert per_image == pytest.approx(HAND_PER_IMAGE, abs=1e-6)
    assert abs(per_image - HAND_MIOU) > 0.01  # 0.3278 vs 0.3417


def random_case(seed: int, n: int = 7, num_classes: int = 6):
    generator = torch.Generator().manual_seed(seed)
    labels, logits = [], []
    for i in range(n):
        h, w = 20 + 3 * i, 31 - 2 * i
        label = torch.randint(0, num_classes - 1, (h, w), generator=generator)  # the last class never labelled
        label[torch.rand((h, w), generator=generator) < 0.1] = IGNORE
        labels.append(label)
        logits.append(torch.randn((num_classes, h // 2 + 1, w // 3 + 2), generator=generator))
    return labels, logits


def test_parity_with_torchmetrics_on_resized_logits():
    labels, logits = random_case(0)
    evaluator = SemanticEvaluator(6)
    ids = [str(i) for i in range(len(labels))]
    state = evaluator.process(make_batch(ids, labels), outputs_for(evaluator, logits, "clean"))
    reference = MulticlassJaccardIndex(num_classes=6, average="macro", ignore_index=IGNORE)
    for label, logit in zip(labels, logits):  # mmseg's resize, done independently here
        up = F.interpolate(logit[None], size=label.shape, mode="bilinear", align_corners=False)
        reference.update(up.argmax(1)[0].flatten(), label.flatten())
    assert by_name(evaluator.compute(state), "miou") == pytest.approx(float(reference.compute()), abs=1e-6)


def test_batch_size_and_merge_order_do_not_change_numbers():
    labels, logits = random_case(1, n=9)
    ids = [f"img{i}" for i in range(len(labels))]
    evaluator = SemanticEvaluator(6)

    def states(batch_size: int):
        return [evaluator.process(make_batch(ids[s:s + batch_size], labels[s:s + batch_size]), outputs_for(evaluator, logits[s:s + batch_size], "clean"))
                for s in range(0, len(ids), batch_size)]

    whole = evaluator.compute(merge_all(states(9)))
    for batch_size in (1, 2, 4):
        parts = states(batch_size)
        for ordered in (parts, parts[::-1]):
            assert [(m.name, m.value, m.params) for m in evaluator.compute(merge_all(ordered))] == \
                   [(m.name, m.value, m.params) for m in whole]


def test_several_passes_are_scored_apart():
    evaluator = SemanticEvaluator(4)
    clean = hand_state(evaluator)
    batch = make_batch(["a"], [torch.tensor(LABEL_A)])
    noisy = evaluator.process(batch, outputs_for(evaluator, [one_hot_logits([[0, 0, 1, 1], [0, 0, 1, 1]], 4)], "noise-3"))
    both = clean.merge(noisy)
    miou = {name: next(m.value for m in evaluator.compute(both.restricted(name)) if m.name == "miou")
            for name in both.passes()}
    assert miou == pytest.approx({"clean": HAND_MIOU, "noise-3": 1.0})
    with pytest.raises(ValueError, match=r"passes \['clean', 'noise-3'\]; expected exactly one"):
        evaluator.compute(both)


def test_label_outside_the_class_range_is_a_clear_error():
    evaluator = SemanticEvaluator(2)
    batch = make_batch(["bad.png"], [torch.tensor([[0, 1], [7, IGNORE]])])
    with pytest.raises(LabelRangeError, match=r"'bad.png'.*label value 7 .*0..1"):
        evaluator.process(batch, outputs_for(evaluator, [torch.zeros(2, 2, 2)], "clean"))


def test_sliding_window_grid_and_averaging():
    windows = []

    def recording(x: torch.Tensor) -> torch.Tensor:
        windows.append(tuple(x.shape[-2:]))
        return torch.ones((x.shape[0], 3, x.shape[2] // 2, x.shape[3] // 2))  # logits at half resolution

    images = torch.rand(2, 3, 10, 13)
    out = sliding_window_logits(recording, images, "slide", crop_size=(4, 6), stride=(3, 4))
    # rows: max(10 - 4 + 3 - 1, 0) // 3 + 1 = 3; cols: max(13 - 6 + 4 - 1, 0) // 4 + 1 = 3 (last flush right)
    assert len(windows) == 9 and set(windows) == {(4, 6)}
    assert out.shape == (2, 3, 10, 13) and torch.allclose(out, torch.ones_like(out))


def test_sliding_window_equals_whole_for_a_pointwise_model():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, kernel_size=1)
    images = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        whole = sliding_window_logits(conv, images, "whole")
        slid = sliding_window_logits(conv, images, "slide", crop_size=(8, 8), stride=(5, 6))
        big_crop = sliding_window_logits(conv, images, "slide", crop_size=(64, 64), stride=(32, 32))
    assert torch.allclose(whole, slid, atol=1e-6) and torch.allclose(whole, big_crop, atol=1e-6)
    with pytest.raises(ValueError, match="crop_size"):
        sliding_window_logits(conv, images, "slide")


def test_nan_when_nothing_scored():
    evaluator = SemanticEvaluator(3)
    state = evaluator.process(make_batch(["x"], [torch.full((2, 2), IGNORE)]), outputs_for(evaluator, [torch.zeros(3, 2, 2)], "clean"))
    assert math.isnan(by_name(evaluator.compute(state), "miou"))
    assert np.asarray(state.sums["clean/confusion"]).sum() == 0
