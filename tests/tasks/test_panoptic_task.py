"""The panoptic task: oracle models (ground truth as a panoptic or a semantic prediction) give the PQ the
definitions imply; a random torchvision segmenter runs through a suite and rescores; mapping mistakes are
refused with one line."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from harness.cli import main
from harness.data.preprocess import Preprocess
from harness.data.scenes import ScenesSource
from harness.loop import run_task
from harness.evaluation.outputs import PanopticPrediction
from harness.models.wrapper import LoadedModel
from harness.run import run_suite
from harness.tasks.base import JobContext
from harness.tasks.panoptic import PanopticTask

N_IMAGES = 24


def key(image: torch.Tensor) -> str:
    return hashlib.sha256((image * 255).round().byte().cpu().numpy().tobytes()).hexdigest()


class Oracle(nn.Module):
    """Answers each scene with its ground truth: panoptic segments, or one-hot semantic logits (clutter, which
    the semantic labels leave at 255, takes the stuff class behind it)."""

    def __init__(self, source: ScenesSource, kind: str) -> None:
        super().__init__()
        self.kind, self.answers = kind, {}
        for index in range(len(source)):
            scene = source.scene(index)
            if kind == "panoptic":
                segment_map, segments = scene.panoptic()
                answer = PanopticPrediction(torch.from_numpy(segment_map), segments)
            else:
                labels = scene.semantic().astype(np.int64)
                labels[labels == 255] = scene.stuff[labels == 255]
                answer = nn.functional.one_hot(torch.from_numpy(labels), 8).permute(2, 0, 1).float()
            self.answers[key(torch.from_numpy(scene.image).permute(2, 0, 1) / 255)] = answer

    def forward(self, images: torch.Tensor):
        answers = [self.answers[key(image)] for image in images]
        return answers if self.kind == "panoptic" else torch.stack(answers)


def context(model: nn.Module, kind: str, num_classes: int = 8, name: str = "oracle") -> JobContext:
    loaded = LoadedModel(name, "test", "oracle", "cnn", model, Preprocess((3, 128, 128), crop_mode="none"),
                         num_classes, "none", output_kind=kind)
    source = ScenesSource(split="test", target="panoptic", size=N_IMAGES)
    return JobContext(loaded, source, torch.device("cpu"), batch_size=5, seed=0, show_progress=False)


def values(metrics) -> dict[str, float]:
    return {m.name: m.value for m in metrics if m.name != "pq_class"}


def test_ground_truth_as_a_panoptic_prediction_scores_one():
    source = ScenesSource(split="test", target="panoptic", size=N_IMAGES)
    scores = values(run_task(PanopticTask(PanopticTask.Params()), context(Oracle(source, "panoptic"), "panoptic")))
    assert scores == {name: 1.0 for name in scores} and len(scores) == 9


def test_ground_truth_semantics_give_perfect_stuff_and_imperfect_things():
    """Stuff is exact from the semantic map (the clutter guessed behind VOID costs nothing); things lose
    where two of one category touch, occlusion splits one, or a crowd is cut into components."""
    source = ScenesSource(split="test", target="panoptic", size=N_IMAGES)
    metrics = run_task(PanopticTask(PanopticTask.Params(min_area=0)), context(Oracle(source, "semantic"),
                                                                                "semantic_logits"))
    scores = values(metrics)
    assert scores["pq_stuff"] == scores["sq_stuff"] == scores["rq_stuff"] == 1.0
    assert 0.6 < scores["pq_things"] < 1.0 and scores["sq_things"] > 0.95
    assert all(m.n == N_IMAGES for m in metrics)


def test_mapping_mistakes_are_refused_in_one_line():
    source = ScenesSource(split="test", target="panoptic", size=N_IMAGES)
    oracle = Oracle(source, "semantic")
    with pytest.raises(ValueError, match="has 9 classes but 8 semantic classes map"):
        PanopticTask(PanopticTask.Params()).prepare(context(oracle, "semantic_logits", num_classes=9))
    with pytest.raises(ValueError, match="category id 99 of category_ids is not a category"):
        PanopticTask(PanopticTask.Params(category_ids=[12, 15, 20, 1, 2, 3, 5, 99])).prepare(
            context(oracle, "semantic_logits"))
    with pytest.raises(ValueError, match=r"returns logits, not panoptic or semantic_logits \(task panoptic\)"):
        PanopticTask(PanopticTask.Params()).prepare(context(oracle, "logits"))


def test_dataset_without_a_semantic_mapping_needs_category_ids(tmp_path, monkeypatch):
    from harness.data.coco_panoptic import CocoPanopticSource
    from seg_fixtures import write_coco_panoptic

    source = CocoPanopticSource(write_coco_panoptic(tmp_path / "coco"))
    monkeypatch.delattr(CocoPanopticSource, "semantic_category_ids")  # a source that does not know its class order
    ctx = JobContext(context(nn.Identity(), "semantic_logits", 4).model, source, torch.device("cpu"), 2, 0)
    with pytest.raises(ValueError, match="does not say which panoptic category each semantic class is"):
        PanopticTask(PanopticTask.Params()).prepare(ctx)
    assert PanopticTask(PanopticTask.Params(category_ids=[187, 184, 1, 3])).prepare(ctx).source.name == source.name


def test_semantic_segmenter_in_a_suite_scores_pq_and_rescores(tmp_path, capsys, one_thread):
    suite = {"name": "pan", "version": 1, "defaults": {"batch_size": 4, "seed": 0},
             "models": [{"name": "lraspp", "source": "torchvision", "arch": "lraspp_mobilenet_v3_large",
                         "num_classes": 8, "preprocess": {"input_size": 64}}],
             "datasets": [{"name": "scenes", "kind": "scenes", "split": "test", "target": "panoptic",
                           "subset": {"n": 6, "seed": 0}}],
             "tasks": [{"kind": "panoptic", "params": {"min_area": 4}},
                       {"kind": "corruption", "params": {"corruptions": ["gaussian_noise"], "severities": [3], "n": 4,
                                                         "scoring": {"min_area": 4}}}]}
    path = tmp_path / "pan.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    outcome = run_suite(path, out=tmp_path / "out", progress=False)
    assert not outcome.failed, outcome.failed
    corruption = outcome.frame[outcome.frame["task"] == "corruption"].set_index("metric")
    assert {"mpc", "rpc", "corruption_score", "pq"} <= set(corruption.index)  # PQ under corruption (mPC, rPC)
    rows = outcome.frame[outcome.frame["task"] == "panoptic"].set_index("metric")
    for name in ("pq", "sq", "rq", "pq_things", "pq_stuff"):
        assert rows.loc[name, "n"] == 6 and rows.loc[name, "direction"] == "higher"
    assert 0 <= rows.loc["pq", "value"] <= 1
    assert main(["rescore", str(tmp_path / "out")]) == 0
    assert "identical" in capsys.readouterr().out
