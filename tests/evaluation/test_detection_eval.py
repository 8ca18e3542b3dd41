"""COCO detection evaluation: parity with pycocotools' own pipeline (COCO(json) -> loadRes -> COCOeval) to
1e-9 on the scenes data and on hand-built edge cases, for both backends."""
from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from harness.data.scenes import ScenesSource
from harness.evaluation.detection import (BACKENDS, STAT_NAMES, DetectionEvaluator, coco_evaluate, coco_results)
from harness.evaluation.outputs import Detections
from harness.evaluation.samples import DetectionTarget
from harness.evaluation.state import EvalState, merge_all
from harness.metrics import metric_info
from tests.coco_reference import _rle, _typed, edge_ground_truth, edge_results, reference
from tests.evaluating import outputs_for

TOL = 1e-9


def assert_matches_reference(metrics, ref: COCOeval, iou_type: str) -> None:
    values = {m.name: m.value for m in metrics if m.params["iou_type"] == iou_type and m.name != "ap_class"}
    assert list(values) == list(STAT_NAMES)
    for name, expected in zip(STAT_NAMES, ref.stats):
        got = values[name]
        if expected == -1:
            assert math.isnan(got), name
        else:
            assert abs(got - expected) <= TOL, (iou_type, name, got, expected)
    precision = ref.eval["precision"]
    names = {c["id"]: c["name"] for c in ref.cocoGt.dataset["categories"]}
    per_class = {m.params["category"]: m.value for m in metrics if m.name == "ap_class"
                 and m.params["iou_type"] == iou_type}
    for k, cat in enumerate(ref.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        if p.size:
            assert abs(per_class[names[cat]] - p.mean()) <= TOL
        else:
            assert math.isnan(per_class[names[cat]])


# --- building evaluator inputs ------------------------------------------------------------------------
def as_detections(results: list[dict], height: int, width: int, with_masks: bool) -> Detections:
    """XYWH COCO results of one image -> canonical XYXY ``Detections`` (the evaluator must convert back)."""
    boxes = torch.tensor([r["bbox"] for r in results], dtype=torch.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    masks = None
    if with_masks:
        masks = torch.from_numpy(np.stack([mask_utils.decode({**r["segmentation"],
                                                              "counts": r["segmentation"]["counts"].encode()}) > 0
                                           for r in results]) if results else np.zeros((0, height, width), bool))
    return Detections(boxes=boxes, scores=torch.tensor([r["score"] for r in results], dtype=torch.float64),
                      labels=torch.tensor([r["category_id"] for r in results], dtype=torch.int64), masks=masks)


def run_evaluator(ground_truth, results, backend, iou_types=("bbox", "segm"), image_ids=None, batch_size=16,
                  with_masks=True):
    evaluator = DetectionEvaluator(ground_truth, iou_types, backend)
    images = [im for im in ground_truth["images"] if image_ids is None or im["id"] in image_ids]
    states = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = SimpleNamespace(ids=[f"img{im['id']}" for im in chunk],
                                targets=[SimpleNamespace(image_id=im["id"]) for im in chunk])
        outputs = [as_detections([r for r in results if r["image_id"] == im["id"]], im["height"], im["width"],
                                 with_masks) for im in chunk]
        states.append(evaluator.process(batch, outputs_for(evaluator, outputs, "clean")))
    state = EvalState.from_json(json.loads(json.dumps(merge_all(states).to_json())))  # records are plain data
    return evaluator.compute(state)


def synthetic_results(ground_truth: dict, seed: int, with_masks: bool = True) -> list[dict]:
    """Plausible detections: jittered boxes / shifted masks of most objects, wrong classes, false positives."""
    rng = np.random.default_rng(seed)
    categories = [c["id"] for c in ground_truth["categories"]]
    sizes = {im["id"]: (im["height"], im["width"]) for im in ground_truth["images"]}
    results = []
    for ann in ground_truth["annotations"]:
        if rng.random() < 0.15:  # missed
            continue
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
        box = [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
        category = ann["category_id"] if rng.random() > 0.1 else int(rng.choice(categories))
        result = {"image_id": ann["image_id"], "category_id": category, "bbox": [float(v) for v in box],
                  "score": float(rng.uniform(0.3, 1.0))}
        if with_masks:
            rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
            mask = np.roll(mask_utils.decode(rle), tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
            result["segmentation"] = _rle(mask)
        results.append(result)
    for image_id, (height, width) in sizes.items():  # false positives
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, width - 12), rng.uniform(0, height - 12)
            w, h = rng.uniform(4, 40), rng.uniform(4, 40)
            result = {"image_id": image_id, "category_id": int(rng.choice(categories)),
                      "bbox": [float(x), float(y), float(w), float(h)], "score": float(rng.uniform(0, 0.6))}
            if with_masks:
                mask = np.zeros((height, width), np.uint8)
                mask[int(y):int(y + h), int(x):int(x + w)] = 1
                result["segmentation"] = _rle(mask)
            results.append(result)
    return results


@pytest.fixture(scope="module")
def scenes_gt() -> dict:
    gt = ScenesSource("test").coco_ground_truth()
    return {**gt, "images": gt["images"][:120],
            "annotations": [a for a in gt["annotations"] if a["image_id"] <= 120]}


# --- parity on the scenes data ----------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_scenes_parity_with_pycocotools(tmp_path, scenes_gt, backend):
    results = synthetic_results(scenes_gt, seed=1)
    metrics = run_evaluator(scenes_gt, results, backend)
    for iou_type in ("bbox", "segm"):
        typed = [{k: v for k, v in r.items() if k != ("segmentation" if iou_type == "bbox" else "bbox")}
                 for r in results]
        ref = reference(tmp_path, scenes_gt, typed, iou_type)
        assert 0.1 < ref.stats[0] < 0.9  # a plausible, non-degenerate case
        assert_matches_reference(metrics, ref, iou_type)
    assert all(m.n == len(scenes_gt["images"]) for m in metrics)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tied_scores_parity(tmp_path, scenes_gt, backend):
    """Many equal scores: the order among ties (stable sorts, image order) must match the reference."""
    results = synthetic_results(scenes_gt, seed=3, with_masks=False)
    for result in results:
        result["score"] = round(result["score"], 1)
    metrics = run_evaluator(scenes_gt, results, backend, ("bbox",), with_masks=False)
    assert_matches_reference(metrics, reference(tmp_path, scenes_gt, results, "bbox"), "bbox")


def test_record_order_does_not_matter(scenes_gt):
    """Ranks gather shards in any order: merging per-image records in another order gives the same numbers,
    even with tied scores (COCOeval orders images by id, not by record)."""
    results = synthetic_results(scenes_gt, seed=4, with_masks=False)
    for result in results:
        result["score"] = round(result["score"], 1)
    evaluator = DetectionEvaluator(scenes_gt, ("bbox",))
    states = []
    for image in scenes_gt["images"]:
        batch = SimpleNamespace(ids=[str(image["id"])], targets=[SimpleNamespace(image_id=image["id"])])
        mine = [r for r in results if r["image_id"] == image["id"]]
        states.append(evaluator.process(batch, outputs_for(evaluator, [as_detections(mine, 128, 128, False)], "clean")))
    shuffled = [states[i] for i in np.random.default_rng(0).permutation(len(states))]
    one, other = evaluator.compute(merge_all(states)), evaluator.compute(merge_all(shuffled))
    assert [(m.name, m.params, m.value) for m in one] == [(m.name, m.params, m.value) for m in other]


def test_batch_size_and_subset(tmp_path, scenes_gt):
    results = synthetic_results(scenes_gt, seed=2, with_masks=False)
    a = run_evaluator(scenes_gt, results, "faster_coco_eval", ("bbox",), batch_size=7, with_masks=False)
    b = run_evaluator(scenes_gt, results, "faster_coco_eval", ("bbox",), batch_size=50, with_masks=False)
    assert [(m.name, m.params, m.value) for m in a] == [(m.name, m.params, m.value) for m in b]
    # scoring a subset == pycocotools on a ground truth holding only those images
    subset = set(range(1, 121, 3))
    metrics = run_evaluator(scenes_gt, results, "faster_coco_eval", ("bbox",), image_ids=subset, with_masks=False)
    small_gt = {**scenes_gt, "images": [im for im in scenes_gt["images"] if im["id"] in subset],
                "annotations": [x for x in scenes_gt["annotations"] if x["image_id"] in subset]}
    ref = reference(tmp_path, small_gt, [r for r in results if r["image_id"] in subset], "bbox")
    assert_matches_reference(metrics, ref, "bbox")
    assert metrics[0].n == len(subset)


# --- hand-built edge cases --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_cases_parity(tmp_path, backend):
    gt = edge_ground_truth()
    assert "info" not in gt
    results = edge_results(gt)
    metrics = run_evaluator(gt, results, backend)
    for iou_type in ("bbox", "segm"):
        assert_matches_reference(metrics, reference(tmp_path, gt, _typed(results, iou_type), iou_type), iou_type)
    ap = {(m.params["iou_type"], m.params["category"]): m.value for m in metrics if m.name == "ap_class"}
    assert math.isnan(ap["bbox", "b"]) and math.isnan(ap["bbox", "c"])  # no ground truth: NaN, not 0
    # the >100 case bites: keeping only the best 100 on image 3 drops its only true positive
    rec = {m.name: m.value for m in metrics if m.params["iou_type"] == "bbox"}
    assert rec["mar_100"] < 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_detections(tmp_path, backend):
    gt = edge_ground_truth()
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] != 4]  # no large object left
    metrics = run_evaluator(gt, [], backend)
    for iou_type in ("bbox", "segm"):
        ref = reference(tmp_path, gt, [], iou_type)
        assert_matches_reference(metrics, ref, iou_type)
    values = {m.name: m.value for m in metrics if m.params["iou_type"] == "bbox"}
    assert values["map"] == 0.0 and values["mar_100"] == 0.0 and math.isnan(values["map_large"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_annotation_id_zero_is_shifted(tmp_path, backend):
    gt = edge_ground_truth()
    results = edge_results(gt)
    zero = copy.deepcopy(gt)
    for ann in zero["annotations"]:
        ann["id"] -= 1  # ids 0..4
    metrics = run_evaluator(zero, results, backend, ("bbox",))
    ref = reference(tmp_path, gt, _typed(results, "bbox"), "bbox")  # the same data with ids 1..5
    assert_matches_reference(metrics, ref, "bbox")
    naive = reference(tmp_path, zero, _typed(results, "bbox"), "bbox")  # what pycocotools does with id 0
    assert not np.allclose(naive.stats, ref.stats)


def test_predictions_outside_the_ground_truth(tmp_path):
    gt = edge_ground_truth()
    results = _typed(edge_results(gt), "bbox")
    stray = results + [{"image_id": 77, "category_id": 1, "bbox": [1.0, 1.0, 5.0, 5.0], "score": 0.99}]
    summary = coco_evaluate(gt, stray, [1, 2, 3, 4], "bbox", "pycocotools")  # dropped, not an assert
    assert np.allclose(summary.stats, reference(tmp_path, gt, results, "bbox").stats, atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="image id 77 is not in the ground truth"):
        coco_evaluate(gt, results, [1, 77], "bbox")
    evaluator = DetectionEvaluator(gt, ("bbox",))
    batch = SimpleNamespace(ids=["x"], targets=[SimpleNamespace(image_id=77)])
    empty = Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="sample 'x': image id 77"):
        evaluator.process(batch, outputs_for(evaluator, [empty], "clean"))


def test_records_results_and_declarations():
    gt = edge_ground_truth()
    evaluator = DetectionEvaluator(gt, ("bbox", "segm"))
    target = DetectionTarget(1, None, torch.zeros(0), torch.zeros(0), torch.zeros(0))
    batch = SimpleNamespace(ids=["a"], targets=[target])
    detections = Detections(torch.tensor([[10.0, 20.0, 40.0, 60.0]]), torch.tensor([0.5]), torch.tensor([4]))
    state = evaluator.process(batch, outputs_for(evaluator, [detections], "clean"))
    record = state.records["a"]["clean"]
    assert record["results"] == [{"image_id": 1, "category_id": 4, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.5}]
    assert coco_results([record], "bbox") == record["results"]
    with pytest.raises(ValueError, match="segm evaluation needs instance masks"):
        evaluator.compute(state)
    broken = Detections(torch.tensor([[0.0, 0.0, float("nan"), 5.0]]), torch.tensor([0.5]), torch.tensor([1]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluator.process(SimpleNamespace(ids=["b"], targets=[target]), outputs_for(evaluator, [broken], "clean"))
    assert metric_info("map").kind == "dataset" and metric_info("map").direction == "higher"
    assert metric_info("ap_class").headline is False


# --- size buckets: which area decides small / medium / large -------------------------------------------------
def _ring(x: int, y: int, side: int = 40, thickness: int = 3) -> np.ndarray:
    """A hollow square: its box is side² (1600 px: medium), its mask 4·t·(side - t) (444 px: small)."""
    mask = np.zeros((200, 200), np.uint8)
    mask[y:y + side, x:x + side] = 1
    mask[y + thickness:y + side - thickness, x + thickness:x + side - thickness] = 0
    return mask


def _square(x: int, y: int, side: int = 20) -> np.ndarray:
    mask = np.zeros((200, 200), np.uint8)
    mask[y:y + side, x:x + side] = 1
    return mask


def bucket_ground_truth(area_from: str) -> dict:
    """A ring (mask area small, box area medium) and a small square. ``area_from``: what the converter wrote into
    ``area`` - the mask's pixels (COCO's own files; detectron2's ``convert_to_coco_dict`` for annotations with a
    segmentation) or the box's w·h (mmdet's ``CocoMetric.gt_to_coco_json``)."""
    anns = []
    for ann_id, mask in ((1, _ring(20, 20)), (2, _square(120, 120))):
        rle = _rle(mask)
        bbox = mask_utils.toBbox({**rle, "counts": rle["counts"].encode()}).tolist()
        area = float(mask.sum()) if area_from == "mask" else bbox[2] * bbox[3]
        anns.append({"id": ann_id, "image_id": 1, "category_id": 1, "bbox": bbox, "area": area, "iscrowd": 0,
                     "segmentation": rle})
    return {"images": [{"id": 1, "file_name": "1.png", "height": 200, "width": 200}],
            "categories": [{"id": 1, "name": "a"}], "annotations": anns}


def bucket_results() -> list[dict]:
    """Both objects found, and a false-positive ring elsewhere (mask area small, box area medium)."""
    out = []
    for mask, score in ((_ring(20, 20), 0.9), (_ring(130, 20), 0.8), (_square(120, 120), 0.7)):
        rle = _rle(mask)
        bbox = mask_utils.toBbox({**rle, "counts": rle["counts"].encode()}).tolist()
        out.append({"image_id": 1, "category_id": 1, "bbox": bbox, "score": score, "segmentation": rle})
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("area_from", ["mask", "box"])
def test_size_buckets_follow_the_ground_truths_area_field(tmp_path, backend, area_from):
    """pycocotools buckets a ground-truth object by its ``area`` field, for bbox and segm alike, and a detection
    by its own area: w·h of its box for bbox, its mask's pixels for segm once the result carries no ``bbox``
    (our segm results never do; mmdet's and detectron2's evaluators pop it before ``loadRes`` too, else
    ``loadRes`` takes w·h). Both backends bucket exactly as pycocotools does."""
    gt, results = bucket_ground_truth(area_from), bucket_results()
    metrics = run_evaluator(gt, results, backend)
    for iou_type in ("bbox", "segm"):
        assert_matches_reference(metrics, reference(tmp_path, gt, _typed(results, iou_type), iou_type), iou_type)
    value = {(m.params["iou_type"], m.name): m.value for m in metrics if m.name != "ap_class"}
    # the false-positive ring, ranked above the square: outside "small" by its box (bbox: ignored there), inside
    # by its mask (segm: a false positive there)
    assert value["bbox", "map_small"] == pytest.approx(1.0) and value["segm", "map_small"] < 0.9
    if area_from == "mask":  # the ring is small, in both IoU types, though its box is 40 x 40: no medium object
        assert math.isnan(value["bbox", "map_medium"]) and math.isnan(value["segm", "map_medium"])
    else:  # the ring is medium in both IoU types, though its mask has 444 pixels
        assert value["bbox", "map_medium"] == pytest.approx(1.0) and value["segm", "map_medium"] == pytest.approx(1.0)
        assert value["segm", "map_small"] == pytest.approx(0.5)  # the square alone, after the false positive
    # segm results that kept their bbox would be bucketed by the box's area instead: another number
    kept = reference(tmp_path, gt, results, "segm")
    assert not np.allclose(kept.stats[3:6], [value["segm", n] if not math.isnan(value["segm", n]) else -1
                                             for n in ("map_small", "map_medium", "map_large")])


@pytest.mark.parametrize("backend", BACKENDS)
def test_ground_truth_without_area_is_bucketed_by_its_box(tmp_path, backend):
    """An instances json without ``area`` (some converters omit it): pycocotools raises KeyError and
    faster_coco_eval reads 0 (every object small); both backends take w·h of the box, as the targets do, and
    equal pycocotools on the same json with that area written in."""
    gt = bucket_ground_truth("box")
    bare = copy.deepcopy(gt)
    for ann in bare["annotations"]:
        del ann["area"]
    results = bucket_results()
    metrics = run_evaluator(bare, results, backend)
    for iou_type in ("bbox", "segm"):
        assert_matches_reference(metrics, reference(tmp_path, gt, _typed(results, iou_type), iou_type), iou_type)
    medium = {m.params["iou_type"]: m.value for m in metrics if m.name == "map_medium"}
    assert medium == {"bbox": pytest.approx(1.0), "segm": pytest.approx(1.0)}  # the 40 x 40 ring, by its box


# --- per-image evaluations made while processing (faster-coco-eval) ----------------------------------
def _processed(ground_truth, results, iou_types=("bbox", "segm"), batch_size=16, images=None):
    """The evaluator that processed the images (default: all) in batches, and the merged state as records
    round-trip."""
    evaluator = DetectionEvaluator(ground_truth, iou_types, "faster_coco_eval", evaluate_while_processing=True)
    images = ground_truth["images"] if images is None else images
    states = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = SimpleNamespace(ids=[f"img{im['id']}" for im in chunk],
                                targets=[SimpleNamespace(image_id=im["id"]) for im in chunk])
        outputs = [as_detections([r for r in results if r["image_id"] == im["id"]], im["height"], im["width"], True)
                   for im in chunk]
        states.append(evaluator.process(batch, outputs_for(evaluator, outputs, "clean")))
    return evaluator, EvalState.from_json(json.loads(json.dumps(merge_all(states).to_json())))


def _values(metrics):
    return {(m.name, json.dumps(m.params, sort_keys=True)): m.value for m in metrics}


def test_the_images_evaluated_while_processing_give_one_full_cocoevals_numbers(scenes_gt):
    evaluator, state = _processed(scenes_gt, synthetic_results(scenes_gt, seed=5))
    pairs = list(state.pass_records("clean"))
    ids = [record["image_id"] for _, record in pairs]
    assert evaluator._early.matches("clean", pairs)
    for iou_type in ("bbox", "segm"):  # the stitched path is the one taken
        assert evaluator._early.stitched("clean", iou_type, ids) is not None
    stitched = _values(evaluator.compute(state))
    full = _values(DetectionEvaluator(scenes_gt, ("bbox", "segm"), "faster_coco_eval").compute(state))
    assert stitched.keys() == full.keys() and len(full) > 24
    assert all(stitched[k] == full[k] or (math.isnan(stitched[k]) and math.isnan(full[k])) for k in full), \
        [(k, stitched[k], full[k]) for k in full if stitched[k] != full[k]]


def test_records_the_evaluator_did_not_evaluate_as_they_are_are_scored_by_a_full_cocoeval(scenes_gt):
    evaluator, state = _processed(scenes_gt, synthetic_results(scenes_gt, seed=6), iou_types=("bbox",))
    changed = EvalState.from_json(json.loads(json.dumps(state.to_json())))  # a deep copy
    sample_id, record = next(iter(changed.pass_records("clean")))
    assert record["results"] and record["gt"]
    record["results"] = []  # e.g. a saved batch of another run, resumed
    assert not evaluator._early.matches("clean", list(changed.pass_records("clean")))
    fresh = DetectionEvaluator(scenes_gt, ("bbox",), "faster_coco_eval")
    assert _values(evaluator.compute(changed)) == _values(fresh.compute(changed))
    assert _values(evaluator.compute(changed)) != _values(evaluator.compute(state))
    # another rank's images, which this evaluator never processed, take the full path too
    other, _ = _processed(scenes_gt, synthetic_results(scenes_gt, seed=6), iou_types=("bbox",),
                          images=scenes_gt["images"][:32])
    pairs = list(state.pass_records("clean"))
    assert not other._early.matches("clean", pairs)
    assert other._early.stitched("clean", "bbox", [record["image_id"] for _, record in pairs]) is None
    assert _values(other.compute(state)) == _values(evaluator.compute(state))
