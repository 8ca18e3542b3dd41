"""The embedded segmenters: zoo models returning ``semantic_logits``, shipped weights as recorded, scores through
the runner, and the offline ``segmentation`` suite end to end."""
from __future__ import annotations

import hashlib

import pytest
import torch

from conftest import trimmed_suite
from harness.cli import main
from harness.data.scenes import IGNORE_INDEX, ScenesSource
from harness.evaluation.semantic import confusion_matrix, predict_labels, scores_from_confusion
from harness.models.loaders import declared_num_classes, declared_output_kind, load_model
from harness.models.wrapper import PixelModel
from harness.run import run_suite
from harness.specs import ModelSpec
from harness.suite import load_suite
from harness.zoo.segmenters import INPUT_SIZE, MEAN, NUM_CLASSES, SEGMENTERS, STD, ZOO_DIR

NAMES = sorted(SEGMENTERS)
MIOU_FLOOR = 0.3  # on the first 30 test images: the shipped weights clear it, random init does not come close


def _shipped(name: str):
    entry = SEGMENTERS[name]
    if not entry.weights_file.exists():
        pytest.skip(f"{entry.weights_file.name} not trained yet (tools/train_segmentation_zoo.py)")
    return entry


def _miou(module: torch.nn.Module, count: int = 30) -> float:
    """Dataset-level mIoU of a pixel-space module on the first ``count`` scenes test images."""
    source = ScenesSource("test", target="semantic")
    images = torch.stack([torch.from_numpy(source.scene(i).image).permute(2, 0, 1) for i in range(count)]) / 255
    with torch.no_grad():
        logits = module(images)
    matrix = sum(confusion_matrix(predict_labels(logit, (INPUT_SIZE, INPUT_SIZE)), source.target(i).mask,
                                  NUM_CLASSES, IGNORE_INDEX) for i, logit in enumerate(logits))
    return float(scores_from_confusion(matrix.numpy())["miou"])


@pytest.mark.parametrize("name", NAMES)
def test_zoo_entry_loads_as_a_semantic_segmenter(name):
    spec = ModelSpec(name=name, source="zoo")
    assert declared_output_kind(spec) == "semantic_logits" and declared_num_classes(spec) == NUM_CLASSES
    entry = _shipped(name)
    model = load_model(spec)
    assert (model.output_kind, model.num_classes, model.family) == ("semantic_logits", NUM_CLASSES, entry.family)
    with torch.no_grad():
        assert model.module(torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE)).shape == (2, NUM_CLASSES, INPUT_SIZE, INPUT_SIZE)
    assert model.weights_sha256 == entry.metadata()["weights_sha256"]


@pytest.mark.parametrize("name", NAMES)
def test_shipped_weights_match_their_metadata_and_fit_the_zoo_budget(name):
    entry = _shipped(name)
    data = entry.weights_file.read_bytes()
    meta = entry.metadata()
    assert hashlib.sha256(data).hexdigest() == meta["weights_sha256"]
    assert len(data) == meta["weights_bytes"] <= 3.3e6 and meta["weights_dtype"] == "float16"
    assert meta["num_params"] == sum(p.numel() for p in entry.build().parameters())
    # the zoo's share of the 20 MB of weights and data (tests/robustness/test_shift_suite.py checks the whole)
    assert sum(p.stat().st_size for p in ZOO_DIR.glob("*.safetensors")) <= 16e6


@pytest.mark.parametrize("name", NAMES)
def test_trained_weights_clear_a_miou_floor_that_random_init_misses(name):
    trained = _miou(load_model(ModelSpec(name=name, source="zoo")).module)
    torch.manual_seed(0)
    random_init = _miou(PixelModel(SEGMENTERS[name].build().eval(), MEAN, STD, "semantic_logits"))
    assert trained >= MIOU_FLOOR > random_init + 0.15


def test_suite_validates_and_a_limited_run_scores_the_drawn_images(tmp_path):
    for name in NAMES:
        _shipped(name)
    suite = load_suite("segmentation")
    assert {m.name for m in suite.spec.models} == set(NAMES)
    assert [t.kind for t in suite.tasks] == ["segmentation", "panoptic", "corruption"]
    path = trimmed_suite(tmp_path, "segmentation", corruptions=["fog"], severities=[3])
    outcome = run_suite(path, out=tmp_path / "out", limit=30, progress=False)
    assert not outcome.failed, outcome.failed
    frame = outcome.frame
    rows = frame[(frame["metric"] == "miou") & (frame["task"] == "segmentation")].set_index("model")
    assert set(rows.index) == set(NAMES) and (rows["n"] == 30).all()
    assert (rows["value"] >= MIOU_FLOOR).all(), rows["value"]
    assert dict(zip(rows.index, rows["family"])) == {n: SEGMENTERS[n].family for n in NAMES}
    for metric in ("pq", "pq_things", "pq_stuff", "mpc", "rpc"):
        values = frame[frame["metric"] == metric].set_index("model")["value"]
        assert set(values.index) == set(NAMES) and values.between(0, 1.5).all(), (metric, values)


@pytest.mark.slow
def test_segmentation_suite_reproduces_the_zoos_recorded_miou_and_rescores(tmp_path, capsys):
    """Every test image through the harness's loop (loader, squash preprocessing at the native 128 px, records,
    evaluator) gives the mIoU tools/train_segmentation_zoo.py recorded for each segmenter."""
    for name in NAMES:
        _shipped(name)
    outcome = run_suite(trimmed_suite(tmp_path, "segmentation"), out=tmp_path / "out", progress=False,
                        device="cpu")  # compared with numbers recorded on CPU
    assert not outcome.failed, outcome.failed
    frame = outcome.frame[outcome.frame["task"] == "segmentation"]
    for name in NAMES:
        recorded = SEGMENTERS[name].metadata()["test_semantic"]
        rows = frame[frame["model"] == name].set_index("metric")
        for metric in ("miou", "macc", "aacc"):
            assert rows.loc[metric, "value"] == pytest.approx(recorded[metric], abs=1e-3), (name, metric)
        assert rows.loc["miou", "n"] == 300
    assert main(["rescore", str(tmp_path / "out")]) == 0
    assert "identical" in capsys.readouterr().out
