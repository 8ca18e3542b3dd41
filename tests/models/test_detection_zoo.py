"""The embedded detectors: canonical outputs in original-image pixels, and the shipped weights' scores."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from pycocotools.coco import COCO

from harness.data.scenes import THINGS, ScenesSource
from harness.evaluation.detection import detections_to_coco, score_on_scenes
from harness.zoo.detectors import DETECTORS, INPUT_SIZE


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_random_init_detections_are_canonical_and_load_in_pycocotools(name):
    torch.manual_seed(0)
    model = DETECTORS[name].build(list(THINGS)).eval()
    images = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE)
    sizes = [(256, 200), (100, 300)]  # original (H, W): boxes must come back in those pixels
    outputs = model.detect(images, sizes)
    gt = {"images": [{"id": i + 1, "height": h, "width": w, "file_name": f"{i}.png"} for i, (h, w) in enumerate(sizes)],
          "annotations": [], "categories": [{"id": c, "name": n} for c, n in THINGS.items()]}
    results = []
    for i, (det, (h, w)) in enumerate(zip(outputs, sizes)):
        assert len(det.boxes) == 100 and set(det.labels.tolist()) <= set(THINGS)
        assert (det.boxes[:, 0::2] <= w).all() and (det.boxes[:, 1::2] <= h).all() and (det.boxes >= 0).all()
        assert (det.scores[:-1] >= det.scores[1:]).all()
        results += detections_to_coco(i + 1, det)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        assert len(coco.loadRes(json.loads(json.dumps(results))).getAnnIds()) == 200


# The quality the dense zoo is held to, so that a CNN-vs-transformer comparison on detection means something.
QUALITY_FLOOR = {"cnn": {"map": 0.40, "map_50": 0.70}, "transformer": {"map": 0.30}}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_shipped_weights_score_as_recorded_and_reach_the_zoos_floor(name):
    entry = DETECTORS[name]
    scores = score_on_scenes(entry.load(list(THINGS)), ScenesSource("test"))
    recorded = entry.metadata()["test_bbox"]
    for metric in ("map", "map_50"):
        assert abs(scores[metric] - recorded[metric]) < 1e-3, metric
    for metric, floor in QUALITY_FLOOR[entry.family].items():
        assert scores[metric] >= floor, (metric, scores[metric])
