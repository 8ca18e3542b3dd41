"""The detection task through the runner: the embedded detectors on the embedded scenes, offline."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import trimmed_suite
from harness.cli import main
from harness.evaluation.outputs import Detections
from harness.run import run_suite
from harness.tasks.detection import to_original_size
from harness.zoo.detectors import DETECTORS


@pytest.mark.slow
def test_detection_suite_reproduces_the_zoos_recorded_scores_and_rescores(tmp_path, capsys):
    """The shipped suite's detection task, every test image: the harness's loop (loader, squash preprocessing at
    the native 128 px, records, evaluator) gives the mAP tools/train_detection_zoo.py recorded for each detector."""
    outcome = run_suite(trimmed_suite(tmp_path, "detection"), out=tmp_path / "out", progress=False,
                        device="cpu")  # compared with numbers recorded on CPU
    assert not outcome.failed, outcome.failed
    rows = outcome.frame[(outcome.frame["metric"] == "map") & (outcome.frame["task"] == "detection")].set_index("model")
    for name in ("centernet_resnet_scenes", "centernet_pvt_scenes"):
        recorded = DETECTORS[name].metadata()["test_bbox"]["map"]
        assert rows.loc[name, "value"] == pytest.approx(recorded, abs=1e-4) and rows.loc[name, "n"] == 300
        assert rows.loc[name, "params"] == {"iou_type": "bbox"}
    families = dict(zip(rows.index, rows["family"]))
    assert families == {"centernet_resnet_scenes": "cnn", "centernet_pvt_scenes": "transformer"}
    assert main(["rescore", str(tmp_path / "out")]) == 0  # the ground truth travels with the records
    assert "identical" in capsys.readouterr().out


def test_boxes_are_mapped_back_to_the_original_image_size():
    detections = Detections(boxes=torch.tensor([[10.0, 20.0, 30.0, 40.0]]), scores=torch.tensor([0.9]),
                            labels=torch.tensor([3]), masks=torch.zeros(1, 64, 64, dtype=torch.bool))
    mapped = to_original_size(detections, (64, 64), (128, 256))  # (H, W): x scales by 4, y by 2
    assert mapped.boxes.tolist() == [[40.0, 40.0, 120.0, 80.0]] and mapped.masks.shape == (1, 128, 256)
    assert to_original_size(detections, (64, 64), (64, 64)) is detections


def test_a_classifier_on_detection_data_is_a_clear_job_failure(tmp_path, write_suite):
    suite = {"name": "d", "version": 1, "models": [{"name": "resnet_digits", "source": "zoo"}],
             "datasets": [{"name": "scenes", "kind": "scenes", "split": "test"}],
             "tasks": [{"kind": "detection"}]}
    classify = {**suite, "tasks": [{"kind": "classification"}]}
    wrong_data = run_suite(write_suite(classify, "classify.yaml"), out=tmp_path / "c", limit=4, progress=False)
    assert len(wrong_data.failed) == 1 and "has detection targets, not class" in wrong_data.failed[0]
    outcome = run_suite(write_suite(suite), out=tmp_path / "out", limit=4, progress=False)
    assert len(outcome.failed) == 1 and "returns logits, not detections" in outcome.failed[0]
    assert json.loads((tmp_path / "out" / "results.json").read_text())[0]["status"] == "failed"


def test_a_limited_run_scores_only_the_drawn_images(tmp_path):
    outcome = run_suite(trimmed_suite(tmp_path, "detection"), out=tmp_path / "out", limit=25, progress=False,
                        models=["centernet_resnet_scenes"])
    assert not outcome.failed, outcome.failed
    row = outcome.frame.set_index("metric").loc["map"]
    assert row["n"] == 25 and 0 <= row["value"] <= 1


def test_the_gate_bootstraps_map_from_a_real_detection_run(tmp_path, capsys):
    """The records the detection task writes are what the gate's paired mAP bootstrap reads."""
    import yaml

    suite = yaml.safe_load(trimmed_suite(tmp_path, "detection").read_text())
    suite["models"] = suite["models"][:1]
    suite["gate"] = {"resamples": 50}
    path = tmp_path / "detection.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    common = ["--suite", str(path), "--limit", "30", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "main"), "--save-baseline", str(tmp_path / "base.json")]) == 0
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "pr"), "--gate", str(tmp_path / "base.json")]) == 0
    out = capsys.readouterr().out
    assert "bootstrap" in out and "map" in out and "Regression gate passed" in out


def test_per_image_coco_evaluation_while_processing_is_chosen_for_cuda_jobs_only():
    """It overlaps the forward passes on CUDA; on a CPU it would hold the GIL they need (DetectionEvaluator)."""
    import dataclasses

    from harness.models.loaders import load_model
    from harness.specs import ModelSpec
    from harness.data.scenes import ScenesSource
    from harness.tasks.base import JobContext

    from harness.tasks.detection import DetectionTask

    task = DetectionTask(DetectionTask.Params(n=8))
    ctx = JobContext(load_model(ModelSpec(name="centernet_resnet_scenes", source="zoo")),
                     ScenesSource(split="test", target="detection"), torch.device("cpu"), 4, seed=0,
                     show_progress=False)
    for device, early in (("cpu", False), ("cuda", True)):  # prepare only reads the device's type
        prepared = task.prepare(dataclasses.replace(ctx, device=torch.device(device)))
        assert (task.evaluator(task.job_meta(prepared))._early is not None) is early
