"""The corruption task on dense data: images corrupted, targets kept, each cell scored by the dense task's own
evaluator; mPC and rPC as Michaelis et al. define them."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from harness.data.scenes import ScenesSource
from harness.loop import run_task
from harness.models.loaders import load_model
from harness.robustness.corruptions import Corruptor, FillOnceCache
from harness.run import run_suite
from harness.schema import SuiteError, Where, build
from harness.specs import ModelSpec, stable_hash
from harness.suite import load_suite
from harness.tasks.base import JobContext, Pass
from harness.tasks.corruption import CorruptionTask
from harness.tasks.detection import DetectionTask

CELLS = {"corruptions": ["gaussian_noise", "contrast"], "severities": [1, 4]}


def corruption_task(**params) -> CorruptionTask:
    return CorruptionTask(build(CorruptionTask.Params, params, Where(Path("test.yaml"), 0, "params")))


class CorruptedDetection(DetectionTask):
    """The plain detection task on one corruption cell, corrupting exactly as the corruption task's pass does."""

    def __init__(self, corruption: str, severity: int) -> None:
        super().__init__(DetectionTask.Params())
        self.cell = corruption, severity

    def passes(self, ctx):
        from harness.data.base import base_and_indices

        base, ids = base_and_indices(ctx.source)
        corruptor = Corruptor(*self.cell, ctx.seed, ids, FillOnceCache(0), dataset_key=stable_hash(base.describe()))
        return [Pass("main", pixel_op=corruptor)]


@pytest.fixture(scope="module")
def detection_job(one_thread_module):
    model = load_model(ModelSpec(name="centernet_resnet_scenes", source="zoo"))
    source = ScenesSource(split="test", target="detection")
    return JobContext(model, source, torch.device("cpu"), 16, seed=0, show_progress=False)


def by_cell(metrics):
    return {(m.params["corruption"], m.params["severity"]): m.value for m in metrics if m.name == "corruption_score"}


def test_detection_cells_equal_the_detection_task_on_corrupted_images(detection_job):
    metrics = run_task(corruption_task(n=24, **CELLS), detection_job)
    cells = by_cell(metrics)
    assert set(cells) == {(c, s) for c in CELLS["corruptions"] for s in CELLS["severities"]}
    for (corruption, severity), value in cells.items():
        plain = run_task(CorruptedDetection(corruption, severity), detection_job.sample(24))
        assert value == next(m.value for m in plain if m.name == "map" and m.params == {"iou_type": "bbox"})
    clean = {m.name: m.value for m in metrics if m.params.get("iou_type") == "bbox" and "corruption" not in m.params}
    expected = {m.name: m.value for m in run_task(DetectionTask(DetectionTask.Params(n=24)), detection_job)
                if m.params == {"iou_type": "bbox"}}
    assert clean["map"] == expected["map"] and clean["map_50"] == expected["map_50"]
    mpc = math.fsum(cells.values()) / len(cells)
    assert clean["mpc"] == pytest.approx(mpc, abs=1e-12)
    assert clean["rpc"] == pytest.approx(mpc / expected["map"], abs=1e-12)
    assert 0 < clean["rpc"] < 1  # noise and low contrast cost the embedded detector AP


def test_segmentation_cells_score_miou_and_keep_labels(tmp_path):
    """Through the runner on a scenes semantic dataset: one mIoU per cell, mPC / rPC, rescoring identical."""
    suite = {"name": "segc", "version": 1, "defaults": {"batch_size": 4, "seed": 0},
             "models": [{"name": "lraspp", "source": "torchvision", "arch": "lraspp_mobilenet_v3_large",
                         "num_classes": 8, "preprocess": {"input_size": 64}}],
             "datasets": [{"name": "scenes", "kind": "scenes", "split": "test", "target": "semantic"}],
             "tasks": [{"kind": "corruption", "params": {"n": 8, "corruptions": ["fog"], "severities": [2, 5]}}]}
    path = tmp_path / "segc.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    outcome = run_suite(path, out=tmp_path / "out", progress=False)
    assert not outcome.failed, outcome.failed
    rows = outcome.frame
    cells = rows[rows["metric"] == "corruption_score"]
    assert sorted(cells["params"].map(lambda p: (p["corruption"], p["severity"], p["metric"]))) == [
        ("fog", 2, "miou"), ("fog", 5, "miou")]
    miou = rows[rows["metric"] == "miou"]["value"].item()
    mpc = rows[rows["metric"] == "mpc"]["value"].item()
    assert mpc == pytest.approx(cells["value"].mean(), abs=1e-12)
    assert rows[rows["metric"] == "rpc"]["value"].item() == pytest.approx(mpc / miou, abs=1e-12)
    from harness.cli import main

    assert main(["rescore", str(tmp_path / "out")]) == 0


def test_scoring_params_are_checked_against_the_dense_tasks(write_suite):
    base = {"name": "s", "version": 1,
            "models": [{"name": "centernet_resnet_scenes", "source": "zoo"}],
            "datasets": [{"name": "scenes", "kind": "scenes", "split": "test", "target": "detection"}]}
    ok = write_suite({**base, "tasks": [{"kind": "corruption", "params": {"scoring": {"iou_types": ["bbox"]}}}]})
    assert load_suite(ok).tasks[0].params.scoring == {"iou_types": ["bbox"]}
    bad = write_suite({**base, "tasks": [{"kind": "corruption", "params": {"scoring": {"iou_typ": ["bbox"]}}}]})
    with pytest.raises(SuiteError, match=r"suite\.yaml:\d+: .*scoring.*iou_typ.*unknown key"):
        load_suite(bad)


def test_canonical_folders_and_precrop_are_refused_on_dense_data(detection_job):
    with pytest.raises(ValueError, match="precrop are for classification"):
        corruption_task(precrop=[144, 128]).prepare(detection_job)
