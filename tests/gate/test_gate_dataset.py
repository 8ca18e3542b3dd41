"""Dataset-level metrics (mIoU, mAP) through the paired bootstrap, and timings through the rank test."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from skimage import data as skdata
from skimage.filters import threshold_multiotsu
from torchmetrics.classification import MulticlassJaccardIndex

import gate_runs as runs
from harness.evaluation.state import EvalState
from harness.gate import GatePolicy, gate, save_baseline
from harness.evaluation.detection import COCO_STATS, coco_bbox_statistic
from harness.gate.evidence import series_id
from harness.metrics import Metric
from tests.evaluating import outputs_for

# --- segmentation: 3-class masks of real photos, predicted by shifted thresholds ------------------------------
PHOTOS = [skdata.camera(), skdata.coins(), skdata.moon(), skdata.page(), (skdata.astronaut()[..., 0])]


def _patches() -> list[tuple[np.ndarray, np.ndarray]]:
    """48 crops of 64x64 with their multi-Otsu 3-class label masks."""
    out = []
    for photo in PHOTOS:
        thresholds = threshold_multiotsu(photo, classes=3)
        for row in range(0, photo.shape[0] - 64, photo.shape[0] // 4):
            for col in range(0, photo.shape[1] - 64, photo.shape[1] // 3):
                crop = photo[row:row + 64, col:col + 64].astype(float)
                out.append((crop, np.digitize(crop, thresholds)))
    return out[:48]


PATCHES = _patches()


def _predict(shift: float) -> list[np.ndarray]:
    """A 'model': the photo's own multi-Otsu thresholds moved by ``shift`` grey levels."""
    preds = []
    for photo, (crop, _) in zip([p for p in PHOTOS for _ in range(12)], PATCHES):
        thresholds = threshold_multiotsu(photo, classes=3) + shift
        preds.append(np.digitize(crop, thresholds))
    return preds


def _segmentation_job(shift: float) -> runs.Job:
    """Records written by the harness's own SemanticEvaluator (predictions as one-hot logits)."""
    from types import SimpleNamespace

    from harness.evaluation.samples import SemanticTarget
    from harness.evaluation.semantic import SemanticEvaluator

    ids = [f"patch/{i}" for i in range(len(PATCHES))]
    evaluator = SemanticEvaluator(3)
    targets = [SemanticTarget(torch.as_tensor(truth)) for _, truth in PATCHES]
    logits = [torch.nn.functional.one_hot(torch.as_tensor(p), 3).permute(2, 0, 1).float() for p in _predict(shift)]
    state = evaluator.process(SimpleNamespace(ids=ids, targets=targets), outputs_for(evaluator, logits, "main"))
    statistic = evaluator.evidence("miou", {}).statistic({"main": [r for _, r in state.pass_records("main")]})
    evaluated = next(m.value for m in evaluator.compute(state) if m.name == "miou")
    assert statistic(np.arange(len(ids))) == pytest.approx(evaluated, abs=1e-12)  # the gate reads the real records
    model = runs.LinearModel("seg", np.array([[shift]]), np.zeros(1), np.zeros(1), np.ones(1))
    return runs.Job(model, "segmentation", "segmentation", {}, state,
                    [Metric("miou", statistic(np.arange(len(ids))), len(ids))], ids, dataset="photos",
                    meta={"num_classes": 3})


def test_miou_from_records_equals_torchmetrics():
    job = _segmentation_job(12.0)
    preds = torch.as_tensor(np.stack(_predict(12.0)))
    truth = torch.as_tensor(np.stack([t for _, t in PATCHES]))
    reference = MulticlassJaccardIndex(num_classes=3, average="macro")(preds, truth).item()
    assert job.metrics[0].value == pytest.approx(reference, abs=1e-6)


def test_segmentation_gate_uses_the_paired_bootstrap(tmp_path):
    base = save_baseline(runs.write_run(tmp_path / "main", [_segmentation_job(4.0)]), tmp_path / "b.json")
    stream = io.StringIO()
    same = gate(runs.write_run(tmp_path / "same", [_segmentation_job(4.0)]), base, stream=stream, env={})
    (verdict,) = same.gated
    assert same.exit_code == 0 and verdict.test == "bootstrap-paired" and verdict.diff == 0
    worse = gate(runs.write_run(tmp_path / "worse", [_segmentation_job(30.0)]), base, stream=stream, env={})
    (verdict,) = worse.gated
    assert worse.exit_code == 1 and verdict.status == "regression" and verdict.ci_high < 0
    again = gate(runs.write_run(tmp_path / "worse", [_segmentation_job(30.0)]), base, stream=stream, env={})
    assert (again.gated[0].ci_low, again.gated[0].ci_high) == (verdict.ci_low, verdict.ci_high)  # seeded


# --- detection: re-ided duplicates ----------------------------------------------------------------------------
def _detection_records(seed: int = 0, images: int = 12) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(images):
        gt, dt = [], []
        for _ in range(rng.integers(1, 4)):
            x, y, w, h = rng.uniform(0, 60), rng.uniform(0, 60), rng.uniform(10, 40), rng.uniform(10, 40)
            category = int(rng.integers(1, 3))
            gt.append({"bbox": [x, y, w, h], "category_id": category, "iscrowd": 0, "area": w * h})
            jitter = rng.normal(0, 3, 4)
            dt.append({"bbox": [x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3]],
                       "category_id": category, "score": float(rng.uniform(0.3, 1))})
        dt.append({"bbox": [rng.uniform(0, 60), rng.uniform(0, 60), 20, 20], "category_id": 1,
                   "score": float(rng.uniform(0, 0.8))})  # a false positive
        records.append({"gt": gt, "results": dt, "width": 100, "height": 100})
    return records


def _pycocotools_ap(records: list[dict], image_ids: list[int] | None = None) -> float:
    """AP with pycocotools, record k under image id k + 1; ``image_ids``: evaluate only these ids
    (``params.imgIds``, the way one restricts COCOeval to a subset)."""
    images = [{"id": i + 1, "width": 100, "height": 100} for i in range(len(records))]
    anns, dets = [], []
    for image_id, record in enumerate(records, start=1):
        anns += [{**g, "id": len(anns) + 1, "image_id": image_id} for g in record["gt"]]
        dets += [{**d, "image_id": image_id} for d in record["results"]]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1}, {"id": 2}]}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(dets), "bbox")
        if image_ids is not None:
            evaluation.params.imgIds = image_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0])


def test_map_statistic_equals_pycocotools_and_gives_duplicates_new_ids():
    records = _detection_records()
    ids = [f"img/{i}" for i in range(len(records))]
    statistic = coco_bbox_statistic(records, COCO_STATS["map"])
    assert statistic(np.arange(len(records))) == pytest.approx(_pycocotools_ap(records), abs=1e-12)
    draw = np.array([0, 0, 3, 5, 5, 5, 7, 9, 9, 11, 2, 2])
    # the bootstrap's value is pycocotools' on the resample with every drawn image a distinct image ...
    assert statistic(draw) == pytest.approx(_pycocotools_ap([records[i] for i in draw]), abs=1e-12)
    # ... not what restricting COCOeval to the drawn ids gives: it evaluates each drawn image once
    collapsed = _pycocotools_ap(records, [int(i) + 1 for i in draw])
    assert collapsed == pytest.approx(_pycocotools_ap([records[i] for i in sorted(set(draw))]), abs=1e-12)
    assert statistic(draw) != pytest.approx(collapsed, abs=1e-6)


def _hard_records(seed: int, images: int, ties: bool = True) -> list[dict]:
    """Records with what trips an accumulation up: tied scores across images (``ties``), crowd and out-of-range
    boxes, images without ground truth or without detections, more than 100 detections on one image."""
    records = _detection_records(seed, images)
    rng = np.random.default_rng(seed + 100)
    for i, record in enumerate(records):
        for det in record["results"]:
            det["score"] = round(det["score"], 1) if ties else det["score"]
        if i % 5 == 1:
            record["gt"] = []  # detections only
        if i % 5 == 2:
            record["results"] = []  # ground truth only
        if i % 5 == 3:
            record["gt"].append({"bbox": [5, 5, 50, 50], "category_id": 2, "iscrowd": 1, "area": 2500.0})
            record["gt"].append({"bbox": [1, 1, 4, 4], "category_id": 1, "iscrowd": 0, "area": 16.0})  # small
        if i == 4:
            record["results"] += [{"bbox": [float(x), 3.0, 8.0, 8.0], "category_id": 1,
                                   "score": float(rng.uniform(0, 1))} for x in range(120)]
    return records


@pytest.mark.parametrize("stat", ["map", "map_50", "map_75", "map_small", "map_medium", "map_large"])
def test_the_fast_resampled_statistic_equals_a_full_cocoeval_of_every_draw(stat):
    from harness.evaluation.coco_bootstrap import fast_bbox_statistic

    rng = np.random.default_rng(0)
    # tied scores take the exact path, distinct ones the weighted one: both must be COCOeval's numbers
    for records in (_hard_records(seed=3, images=30), _hard_records(seed=4, images=30, ties=False)):
        fast, full = fast_bbox_statistic(records, COCO_STATS[stat]), coco_bbox_statistic(records, COCO_STATS[stat])
        draws = [np.arange(len(records))] + [rng.integers(0, len(records), len(records)) for _ in range(12)]
        draws.append(np.array([1, 1, 2, 2]))  # images without gt or without detections only
        for draw in draws:
            assert fast(draw) == pytest.approx(full(draw), abs=1e-12), draw


# --- timings: gated only when listed --------------------------------------------------------------------------
def _latency_job(median_ms: float, seed: int) -> runs.Job:
    values = np.random.default_rng(seed).lognormal(np.log(median_ms), 0.05, 40)
    params = {"mode": "model_only", "batch_size": 1, "timer": "perf_counter"}
    state = EvalState()
    state.add_record(series_id(params), "timing", {"values": values.tolist()})
    model = runs.LinearModel("resnet_digits", np.ones((1, 1)), np.zeros(1), np.zeros(1), np.ones(1))
    return runs.Job(model, "latency", "latency", {"modes": ["model_only"]}, state,
                    [Metric("latency_ms_p50", float(np.median(values)), len(values), params, unit="ms")], [])


def test_timings_are_gated_when_listed(tmp_path):
    base = save_baseline(runs.write_run(tmp_path / "main", [_latency_job(10.0, 0)]), tmp_path / "b.json")
    stream = io.StringIO()
    default = gate(runs.write_run(tmp_path / "slow", [_latency_job(13.0, 1)]), base, stream=stream, env={})
    assert default.gated == [] and default.exit_code == 0
    policy = GatePolicy.from_dict({"metrics": {"latency_ms_*": {"max_ratio": 1.2}}})
    slow = gate(tmp_path / "slow", base, policy, stream=stream, env={})
    (verdict,) = slow.gated
    assert verdict.status == "regression" and verdict.test == "mann-whitney" and verdict.ratio > 1.2
    same = gate(runs.write_run(tmp_path / "same", [_latency_job(10.0, 2)]), base, policy, stream=stream, env={})
    assert same.gated[0].status == "pass" and same.exit_code == 0


def _detection_job(jitter: float) -> runs.Job:
    records = _detection_records(seed=5, images=16)
    rng = np.random.default_rng(11)
    for record in records:  # a 'model' whose boxes wander by ``jitter`` pixels
        for det in record["results"]:
            det["bbox"] = [v + float(rng.normal(0, jitter)) for v in det["bbox"][:2]] + det["bbox"][2:]
    ids = [f"img/{i}" for i in range(len(records))]
    state = EvalState()
    for sid, record in zip(ids, records):
        state.add_record(sid, "main", record)
    value = coco_bbox_statistic(records, COCO_STATS["map_50"])(np.arange(len(ids)))
    model = runs.LinearModel("det", np.array([[jitter]]), np.zeros(1), np.zeros(1), np.ones(1))
    ground_truth = {"images": [], "annotations": [], "categories": []}  # the records carry each image's boxes
    return runs.Job(model, "detection", "detection", {}, state, [Metric("map_50", value, len(ids))], ids,
                    dataset="boxes", meta={"ground_truth": ground_truth})


def test_detection_gate_bootstraps_map(tmp_path):
    policy = GatePolicy.from_dict({"resamples": 60})
    base = save_baseline(runs.write_run(tmp_path / "main", [_detection_job(0.0)]), tmp_path / "b.json", policy)
    stream = io.StringIO()
    worse = gate(runs.write_run(tmp_path / "pr", [_detection_job(12.0)]), base, policy, stream=stream, env={})
    (verdict,) = worse.gated
    assert verdict.test == "bootstrap-paired" and verdict.diff < 0
    assert verdict.status == "regression" and worse.exit_code == 1


def test_pq_statistic_reads_the_panoptic_evaluators_records():
    from types import SimpleNamespace

    from harness.evaluation.outputs import PanopticPrediction
    from harness.evaluation.panoptic import PanopticEvaluator
    from harness.evaluation.samples import PanopticTarget

    categories = [{"id": 1, "isthing": 1}, {"id": 2, "isthing": 0}]
    targets, predictions = [], []
    for shift in (0, 3, 6):  # a thing square over stuff; predictions shifted by `shift` pixels
        gt = np.full((32, 32), 2, dtype=np.int64)
        gt[8:20, 8:20] = 1
        pred = np.full((32, 32), 2, dtype=np.int64)
        pred[8 + shift:20 + shift, 8:20] = 1
        targets.append(PanopticTarget(torch.as_tensor(gt), [{"id": 1, "category_id": 1, "iscrowd": 0},
                                                            {"id": 2, "category_id": 2, "iscrowd": 0}]))
        predictions.append(PanopticPrediction(torch.as_tensor(pred), [{"id": 1, "category_id": 1},
                                                                      {"id": 2, "category_id": 2}]))
    ids = ["a", "b", "c"]
    evaluator = PanopticEvaluator(categories)
    state = evaluator.process(SimpleNamespace(ids=ids, targets=targets), outputs_for(evaluator, predictions, "main"))
    pq = next(m.value for m in evaluator.compute(state) if m.name == "pq")
    statistic = evaluator.evidence("pq", {}).statistic({"main": [r for _, r in state.pass_records("main")]})
    assert 0 < pq < 1 and statistic(np.arange(3)) == pytest.approx(pq, abs=1e-12)
