"""Panoptic quality: panopticapi's rules on hand-built images, merge invariance, a torchmetrics cross-check
where the two definitions coincide, and the same records as a straightforward per-segment-mask loop."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torchmetrics.detection import PanopticQuality

from harness.evaluation.outputs import PanopticPrediction
from harness.evaluation.panoptic import PanopticEvaluator, PanopticFormatError, pq_image
from harness.evaluation.samples import PanopticTarget
from harness.evaluation.state import merge_all
from harness.metrics import metric_info
from tests.evaluating import batch_and_outputs

PERSON, CAR, SKY, GRASS, DOG = 1, 2, 3, 4, 5
CATEGORIES = [{"id": PERSON, "name": "person", "isthing": 1}, {"id": CAR, "name": "car", "isthing": 1},
              {"id": SKY, "name": "sky", "isthing": 0}, {"id": GRASS, "name": "grass", "isthing": 0},
              {"id": DOG, "name": "dog", "isthing": 1}]  # dog appears in no image: skipped in every mean


def row(width: int, *spans: tuple[int, int, int]) -> np.ndarray:
    """A 1 x width segment map: (segment id, first column, last column inclusive) spans, the rest VOID."""
    out = np.zeros((1, width), dtype=np.int64)
    for segment, first, last in spans:
        out[0, first:last + 1] = segment
    return out


def seg(segment_id: int, category: int, area: int | None = None, crowd: int = 0) -> dict:
    info = {"id": segment_id, "category_id": category, "iscrowd": crowd}
    if area is not None:
        info["area"] = area
    return info


# Each image: (gt map, gt segments, pred map, pred segments).
IMAGES = {
    # A: person gt 21 px, pred 11 px inside it -> IoU 11/21 = 0.524 > 0.5: TP (iou 11/21)
    "A": (row(30, (1, 0, 20)), [seg(1, PERSON, 21)], row(30, (5, 0, 10)), [seg(5, PERSON)]),
    # B: pred 10 px inside the 21 px person -> IoU 10/21 = 0.476: person FN 1 and FP 1 (nothing on VOID)
    "B": (row(30, (1, 0, 20)), [seg(1, PERSON, 21)], row(30, (5, 0, 9)), [seg(5, PERSON)]),
    # C: car gt 6 px then VOID; pred car 9 covers 14 px (6 car + 8 VOID): union = 14 + 6 - 6 - 8 = 6,
    #    IoU 1.0: TP (iou 1). (Counting VOID in the union would give 6/14 and no match.)
    #    pred car 10 lies wholly on VOID (16/16 > 1/2): neither matched nor a false positive.
    "C": (row(30, (3, 0, 5)), [seg(3, CAR, 6)], row(30, (9, 0, 13), (10, 14, 29)), [seg(9, CAR), seg(10, CAR)]),
    # D: gt person crowd 4 (cols 0-9), person 6 (10-19), sky 7 (20-29), grass 8 (30-39).
    #    pred person 1 (0-5) lies on the person crowd: 6/6 absorbed, no FP.
    #    pred car 12 (6-9) lies on the PERSON crowd: a crowd absorbs only its own category: car FP 1.
    #    pred person 2 (10-21): 10 px on person 6, 2 on sky; union = 12 + 10 - 10 = 12: IoU 5/6, TP.
    #    pred sky 3 (22-29): 8 of sky's 10 px: IoU 8/10, TP.  (stuff)
    #    pred grass 13 (30-34): 5 of grass's 10 px: IoU exactly 0.5 is NOT > 0.5: grass FN 1, FP 1.
    "D": (row(40, (4, 0, 9), (6, 10, 19), (7, 20, 29), (8, 30, 39)),
          [seg(4, PERSON, 10, crowd=1), seg(6, PERSON, 10), seg(7, SKY, 10), seg(8, GRASS, 10)],
          row(40, (1, 0, 5), (12, 6, 9), (2, 10, 21), (3, 22, 29), (13, 30, 34)),
          [seg(1, PERSON), seg(12, CAR), seg(2, PERSON), seg(3, SKY), seg(13, GRASS)]),
    # E: VOID cols 0-4, sky 1 (5-9). pred person 1 (3-6): 2 of 4 px on VOID is not MORE than half: person FP 1.
    #    pred sky 2 (7-9): 3 of sky's 5 px, union 3 + 5 - 3 = 5: IoU 0.6, TP.
    "E": (row(10, (1, 5, 9)), [seg(1, SKY, 5)], row(10, (1, 3, 6), (2, 7, 9)), [seg(1, PERSON), seg(2, SKY)]),
}
# Totals: person tp 2 (A, D), fp 2 (B, E), fn 1 (B), iou 11/21 + 5/6 = 57/42
#         car    tp 1 (C),    fp 1 (D),          iou 1
#         sky    tp 2 (D, E),                    iou 0.8 + 0.6 = 1.4
#         grass  tp 0,        fp 1 (D), fn 1 (D), iou 0
#         dog    nothing: skipped
PER_CLASS = {  # (pq, sq, rq) = (iou / (tp + fp/2 + fn/2), iou / tp, tp / (tp + fp/2 + fn/2))
    "person": ((57 / 42) / 3.5, (57 / 42) / 2, 2 / 3.5),
    "car": (1 / 1.5, 1.0, 1 / 1.5),
    "sky": (1.4 / 2, 1.4 / 2, 1.0),
    "grass": (0.0, 0.0, 0.0),
}


def mean(names: list[str], slot: int) -> float:
    return sum(PER_CLASS[n][slot] for n in names) / len(names)


EXPECTED = {
    "pq": mean(["person", "car", "sky", "grass"], 0), "sq": mean(["person", "car", "sky", "grass"], 1),
    "rq": mean(["person", "car", "sky", "grass"], 2),
    "pq_things": mean(["person", "car"], 0), "sq_things": mean(["person", "car"], 1),
    "rq_things": mean(["person", "car"], 2),
    "pq_stuff": mean(["sky", "grass"], 0), "sq_stuff": mean(["sky", "grass"], 1), "rq_stuff": mean(["sky", "grass"], 2),
}


def batch_of(names: list[str], images: dict = IMAGES) -> tuple[SimpleNamespace, list[PanopticPrediction]]:
    targets, outputs = [], []
    for name in names:
        gt_map, gt_segments, pred_map, pred_segments = images[name]
        targets.append(PanopticTarget(torch.from_numpy(gt_map), gt_segments))
        outputs.append(PanopticPrediction(torch.from_numpy(pred_map), pred_segments))
    batch = SimpleNamespace(ids=list(names), targets=targets, images=None, indices=torch.arange(len(names)),
                            orig_sizes=[tuple(t.segment_map.shape) for t in targets])
    return batch, outputs


def values(metrics) -> dict[str, float]:
    return {m.name: m.value for m in metrics if m.name != "pq_class"}


def test_hand_built_cases_follow_panopticapi():
    evaluator = PanopticEvaluator(CATEGORIES, previews=0)  # the counts alone (previews: test_dense_report)
    state = evaluator.process(*batch_and_outputs(evaluator, batch_of(list(IMAGES)), "clean"))
    assert state.records["A"]["clean"] == {str(PERSON): [1, 0, 0, pytest.approx(11 / 21)]}
    assert state.records["B"]["clean"] == {str(PERSON): [0, 1, 1, 0.0]}
    assert state.records["C"]["clean"] == {str(CAR): [1, 0, 0, 1.0]}
    assert state.records["D"]["clean"] == {str(PERSON): [1, 0, 0, pytest.approx(5 / 6)], str(CAR): [0, 1, 0, 0.0],
                                           str(SKY): [1, 0, 0, pytest.approx(0.8)], str(GRASS): [0, 1, 1, 0.0]}
    assert state.records["E"]["clean"] == {str(PERSON): [0, 1, 0, 0.0], str(SKY): [1, 0, 0, pytest.approx(0.6)]}
    metrics = evaluator.compute(state)
    assert values(metrics) == pytest.approx(EXPECTED, abs=1e-12)
    per_class = {m.params["class"]: m.value for m in metrics if m.name == "pq_class"}
    assert per_class == pytest.approx({name: v[0] for name, v in PER_CLASS.items()}, abs=1e-12)  # no dog row
    assert all(m.n == 5 for m in metrics)
    assert metric_info("pq_stuff").kind == "dataset" and not metric_info("pq_class").headline


def test_only_the_last_crowd_segment_of_a_category_absorbs():
    # panopticapi keeps one crowd segment per category (a dict overwritten in segments_info order).
    gt = row(20, (1, 0, 9), (2, 10, 19))
    pred = row(20, (7, 0, 9))  # wholly on the FIRST person crowd
    first_listed_last = pq_image(gt, [seg(2, PERSON, 10, 1), seg(1, PERSON, 10, 1)], pred, [seg(7, PERSON)])
    second_listed_last = pq_image(gt, [seg(1, PERSON, 10, 1), seg(2, PERSON, 10, 1)], pred, [seg(7, PERSON)])
    assert first_listed_last == {}  # absorbed
    assert second_listed_last == {str(PERSON): [0, 1, 0, 0.0]}


def test_ground_truth_area_comes_from_segments_info_when_given():
    gt, pred = row(10, (1, 0, 5)), row(10, (2, 0, 3))
    # pixel count 6: IoU 4/6 matches; a json area of 9 makes the union 9 and IoU 4/9: no match
    assert pq_image(gt, [seg(1, CAR)], pred, [seg(2, CAR)])[str(CAR)][0] == 1
    assert pq_image(gt, [seg(1, CAR, 9)], pred, [seg(2, CAR)])[str(CAR)][:3] == [0, 1, 1]


def test_merge_order_and_batching_do_not_change_numbers():
    evaluator = PanopticEvaluator(CATEGORIES)
    names = list(IMAGES)
    whole = evaluator.compute(evaluator.process(*batch_and_outputs(evaluator, batch_of(names), "clean")))
    singles = [evaluator.process(*batch_and_outputs(evaluator, batch_of([n]), "clean")) for n in names]
    pairs = [evaluator.process(*batch_and_outputs(evaluator, batch_of(names[i:i + 2]), "clean")) for i in range(0, len(names), 2)]
    for states in (singles, singles[::-1], pairs[::-1]):
        assert [(m.name, m.value, m.params) for m in evaluator.compute(merge_all(states))] == \
               [(m.name, m.value, m.params) for m in whole]


def test_no_counted_category_gives_nan_not_an_error():
    evaluator = PanopticEvaluator(CATEGORIES)
    images = {"void": (row(5), [], row(5), [])}
    metrics = values(evaluator.compute(evaluator.process(*batch_and_outputs(evaluator, batch_of(["void"], images), "clean"))))
    assert all(math.isnan(v) for v in metrics.values())


@pytest.mark.parametrize("pred_map, pred_segments, message", [
    (row(4, (3, 0, 1)), [], "segment id 3 is in the segment map but not in its segments list"),
    (row(4, (3, 0, 1)), [seg(3, CAR), seg(4, CAR)], "segment id 4 is listed but has no pixels"),
    (row(4, (3, 0, 1)), [seg(3, 99)], "category id 99 is not a dataset category"),
    (row(5, (3, 0, 1)), [seg(3, CAR)], "prediction is"),
])
def test_malformed_predictions_are_named(pred_map, pred_segments, message):
    evaluator = PanopticEvaluator(CATEGORIES)
    images = {"img7": (row(4, (1, 0, 3)), [seg(1, CAR, 4)], pred_map, pred_segments)}
    with pytest.raises(PanopticFormatError, match=f"'img7'.*{message}"):
        evaluator.process(*batch_and_outputs(evaluator, batch_of(["img7"], images), "clean"))


def random_scene(rng: np.random.Generator, size: int = 32, block: int = 8) -> np.ndarray:
    """(H, W, 2) (category, instance) map: one category per block; a thing block is its own instance,
    all blocks of one stuff category form one segment (instance 0)."""
    cells = size // block
    category = rng.choice([PERSON, CAR, SKY, GRASS], size=(cells, cells))
    instance = np.where(np.isin(category, [PERSON, CAR]), np.arange(1, cells * cells + 1).reshape(cells, cells), 0)
    pairs = np.stack([category, instance], axis=-1)
    return pairs.repeat(block, axis=0).repeat(block, axis=1)


def to_segments(pairs: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    flat = pairs.reshape(-1, 2)
    unique, inverse = np.unique(flat, axis=0, return_inverse=True)
    segment_map = (inverse.reshape(pairs.shape[:2]) + 1).astype(np.int64)
    counts = np.bincount(inverse.ravel(), minlength=len(unique))
    return segment_map, [seg(i + 1, int(c), int(counts[i])) for i, (c, _) in enumerate(unique)]


def test_cross_check_with_torchmetrics_without_void_or_crowd():
    # torchmetrics' PanopticQuality has no crowd and marks void by category; without either, the rules agree.
    rng = np.random.default_rng(0)
    images, gts, preds = {}, [], []
    for i in range(6):
        gt = random_scene(rng)
        pred = np.roll(gt, shift=int(rng.integers(-5, 6)), axis=int(rng.integers(0, 2))).copy()
        relabel = rng.random(pred.shape[:2]) < 0.05
        pred[relabel, 0] = SKY  # scattered stuff pixels
        pred[relabel, 1] = 0
        gts.append(gt)
        preds.append(pred)
        images[str(i)] = (*to_segments(gt), *to_segments(pred))
    evaluator = PanopticEvaluator(CATEGORIES)
    ours = values(evaluator.compute(evaluator.process(*batch_and_outputs(evaluator, batch_of(list(images), images), "clean"))))
    reference = PanopticQuality(things={PERSON, CAR, DOG}, stuffs={SKY, GRASS}, return_sq_and_rq=True)
    pq, sq, rq = reference(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(gts))).tolist()
    assert (ours["pq"], ours["sq"], ours["rq"]) == pytest.approx((pq, sq, rq), abs=1e-6)
    assert 0.2 < ours["pq"] < 0.95  # a non-trivial case: some matches, some misses


def test_same_records_as_a_per_segment_mask_loop():
    spec = importlib.util.spec_from_file_location(
        "bench_pq", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pq.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(1)
    for gt_map, gt_segments, pred_map, pred_segments in [IMAGES[n] for n in IMAGES] + \
            [bench.synthetic_image(rng, 48, 64) for _ in range(8)]:
        ours = pq_image(gt_map, gt_segments, pred_map, pred_segments)
        loop = bench.loop_pq_image(gt_map, gt_segments, pred_map, pred_segments)
        assert ours.keys() == loop.keys()
        for key in ours:
            assert ours[key][:3] == loop[key][:3] and ours[key][3] == pytest.approx(loop[key][3], abs=1e-12)


def test_ground_truth_ids_missing_from_segments_info_are_not_void():
    # panopticapi skips such pixels when matching but does not count them as VOID: a prediction lying on
    # them is a false positive, and they stay in the union.
    gt = row(10, (1, 0, 3), (9, 4, 9))  # id 9 is not listed
    pred = row(10, (5, 4, 9), (6, 0, 5))  # 5 wholly on id 9; 6: 4 px on car 1 + 2 px on id 9
    record = pq_image(gt, [seg(1, CAR, 4)], pred, [seg(5, CAR), seg(6, CAR)])
    assert record == {str(CAR): [1, 1, 0, pytest.approx(4 / 6)]}  # union 6 + 4 - 4 = 6
