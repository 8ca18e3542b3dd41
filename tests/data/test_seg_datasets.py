"""segfolder (ADE20K / Cityscapes / VOC presets) and coco_panoptic sources on miniature fixtures in the
real layouts, and their targets scored end to end by the evaluators."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from harness.data.coco_panoptic import CocoPanopticSource, id_to_rgb, rgb_to_id
from harness.data.segfolder import SegFolderSource
from harness.evaluation.outputs import PanopticPrediction
from harness.evaluation.panoptic import PanopticEvaluator
from harness.evaluation.samples import PanopticTarget, SemanticTarget
from harness.evaluation.semantic import SemanticEvaluator
from harness.registry import DATASETS
from tests.evaluating import outputs_for
from seg_fixtures import write_ade20k, write_cityscapes, write_coco_panoptic, write_voc


@pytest.fixture(scope="module")
def ade20k(tmp_path_factory):
    return write_ade20k(tmp_path_factory.mktemp("ade") / "ADEChallengeData2016")


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    return write_cityscapes(tmp_path_factory.mktemp("cityscapes"))


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return write_voc(tmp_path_factory.mktemp("voc") / "VOC2012")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_coco_panoptic(tmp_path_factory.mktemp("coco"))


def test_kinds_are_registered():
    assert DATASETS.get("segfolder") is SegFolderSource and DATASETS.get("coco_panoptic") is CocoPanopticSource


def test_ade20k_reduces_the_zero_label(ade20k):
    source = SegFolderSource(root=ade20k, split="val", preset="ade20k")  # "val" means ADE's "validation"
    assert len(source) == 3 and source.num_classes == 150 and source.target_kind == "semantic"
    assert source.sample_id(0) == "ADE_val_00000001.jpg"
    sample = source.load(0)
    raw = np.asarray(Image.open(ade20k / "annotations" / "validation" / "ADE_val_00000001.png"), dtype=np.int64)
    mask = sample.target.mask.numpy()
    assert isinstance(sample.target, SemanticTarget) and sample.target.ignore_index == 255
    assert sample.id == "ADE_val_00000001.jpg" and sample.image.size == (mask.shape[1], mask.shape[0])
    assert (mask[raw == 0] == 255).all() and (raw == 0).sum() == 35  # "other" is ignored
    assert np.array_equal(mask[raw > 0], raw[raw > 0] - 1)  # 1..4 become 0..3
    plain = SegFolderSource(root=ade20k, split="validation", preset="ade20k", reduce_zero_label=False)
    assert np.array_equal(plain.load(0).target.mask.numpy(), raw)


def test_cityscapes_pairs_train_ids_in_city_folders(cityscapes):
    source = SegFolderSource(root=cityscapes, split="val", preset="cityscapes")
    assert [source.sample_id(i) for i in range(len(source))] == [
        "frankfurt/frankfurt_000000_000019_leftImg8bit.png", "frankfurt/frankfurt_000001_000019_leftImg8bit.png",
        "lindau/lindau_000000_000019_leftImg8bit.png"]
    assert source.class_names[:3] == ["road", "sidewalk", "building"] and source.num_classes == 19
    mask = source.load(2).target.mask.numpy()
    assert (mask[-6:] == 255).all() and set(np.unique(mask[:-6])) <= set(range(19)) and len(np.unique(mask)) > 10


def test_voc_reads_palette_indices_and_the_split_file(voc):
    source = SegFolderSource(root=voc, split="val", preset="voc")
    assert [source.sample_id(i) for i in range(len(source))] == ["2008_000001.jpg", "2008_000003.jpg"]
    assert source.class_names[8] == "cat" and source.num_classes == 21
    mask = source.load(0).target.mask.numpy()
    assert set(np.unique(mask)) == {0, 8, 255}  # background, cat, the border: indices, not colours


def test_generic_layout_with_a_class_names_file(voc, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("# VOC's first classes\n" + "\n".join(f"class{i}" for i in range(21)) + "\n")
    source = SegFolderSource(root=voc, images="JPEGImages", annotations="SegmentationClass", class_names=names)
    assert len(source) == 3 and source.class_names[20] == "class20"
    with pytest.raises(ValueError, match="num_classes 5 but 21 class names"):
        SegFolderSource(root=voc, images="JPEGImages", annotations="SegmentationClass", class_names=names,
                        num_classes=5)


def test_user_mistakes_name_the_file(voc, ade20k, tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations folder .*labels does not exist"):
        SegFolderSource(root=voc, images="JPEGImages", annotations="labels", num_classes=21)
    with pytest.raises(ValueError, match="needs 'images' and 'annotations'"):
        SegFolderSource(root=voc, num_classes=21)
    with pytest.raises(ValueError, match="unknown segfolder preset 'coco'"):
        SegFolderSource(root=voc, preset="coco")
    broken = tmp_path / "ade"
    shutil.copytree(ade20k, broken)
    (broken / "annotations" / "validation" / "ADE_val_00000002.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 image.* without a label, first .*ADE_val_00000002.png"):
        SegFolderSource(root=broken, split="validation", preset="ade20k")
    rgb_label = broken / "annotations" / "validation" / "ADE_val_00000002.png"
    Image.new("RGB", Image.open(broken / "images" / "validation" / "ADE_val_00000002.jpg").size).save(rgb_label)
    source = SegFolderSource(root=broken, split="validation", preset="ade20k")
    with pytest.raises(ValueError, match="ADE_val_00000002.png: label PNGs must be single-channel"):
        source.load(1)
    Image.new("L", (5, 4)).save(rgb_label)
    with pytest.raises(ValueError, match="ADE_val_00000002.png: label is 5x4 but image"):
        source.load(1)


def test_fingerprint_is_a_manifest_of_content_not_location(ade20k, tmp_path):
    first = SegFolderSource(root=ade20k, split="validation", preset="ade20k").fingerprint()
    moved = tmp_path / "elsewhere"
    shutil.copytree(ade20k, moved)
    assert SegFolderSource(root=moved, split="validation", preset="ade20k").fingerprint() == first
    label = moved / "annotations" / "validation" / "ADE_val_00000003.png"
    label.write_bytes(label.read_bytes() + b"\0")  # one byte more
    assert SegFolderSource(root=moved, split="validation", preset="ade20k").fingerprint()["manifest"] != \
           first["manifest"]
    assert SegFolderSource(root=moved, split="validation", preset="ade20k",
                           reduce_zero_label=False).fingerprint() != first


def test_perfect_semantic_predictions_score_one(cityscapes):
    source = SegFolderSource(root=cityscapes, split="val", preset="cityscapes")
    samples = [source.load(i) for i in range(len(source))]
    logits = []
    for sample in samples:
        label = sample.target.mask.clone()
        label[label == 255] = 0
        logits.append(F.one_hot(label, 19).permute(2, 0, 1).float())
    batch = SimpleNamespace(ids=[s.id for s in samples], targets=[s.target for s in samples])
    evaluator = SemanticEvaluator(source.num_classes, source.class_names)
    metrics = {m.name: m.value for m in evaluator.compute(evaluator.process(batch, outputs_for(evaluator, logits, "clean")))
               if m.name != "iou_class"}
    assert metrics == {"miou": 1.0, "macc": 1.0, "aacc": 1.0}


def test_rgb_id_round_trip():
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 256 * 256 * 3 + 256 * 2 + 7, 256 ** 3 - 1]])
    colours = id_to_rgb(ids)
    assert colours[1, 2].tolist() == [7, 2, 3]  # R + 256 G + 256^2 B
    assert np.array_equal(rgb_to_id(colours), ids)


def test_coco_panoptic_reads_ids_and_categories(coco):
    source = CocoPanopticSource(root=coco, split="val2017")
    assert len(source) == 3 and source.target_kind == "panoptic"
    assert [(c["id"], c["isthing"]) for c in source.categories()] == [(1, 1), (3, 1), (184, 0), (187, 0)]
    sample = source.load(1)
    assert sample.id == "000000000002.jpg" and isinstance(sample.target, PanopticTarget)
    segment_map = sample.target.segment_map.numpy()
    listed = {s["id"]: s for s in sample.target.segments}
    present = set(np.unique(segment_map).tolist()) - {0}
    assert present == set(listed) and min(present) > 2 * 256 * 256  # ids use the blue channel
    assert all(int((segment_map == i).sum()) == s["area"] for i, s in listed.items())
    assert (segment_map[::17] == 0).all() and any(s["iscrowd"] for s in listed.values())
    assert sample.image.size == (segment_map.shape[1], segment_map.shape[0])
    fingerprint = source.fingerprint()
    assert len(fingerprint["json_sha256"]) == 64 and fingerprint == CocoPanopticSource(root=coco).fingerprint()


def test_coco_panoptic_json_mistakes_name_the_file(coco, tmp_path):
    broken = tmp_path / "coco"
    shutil.copytree(coco, broken)
    path = broken / "annotations" / "panoptic_val2017.json"
    path.write_text(path.read_text().replace('"isthing": 0', '"isthin": 0', 1))
    with pytest.raises(ValueError, match=r"panoptic_val2017.json: categories\[2\]: missing field 'isthing'"):
        CocoPanopticSource(root=broken)
    with pytest.raises(FileNotFoundError, match="cannot read panoptic json .*panoptic_test2017.json"):
        CocoPanopticSource(root=broken, split="test2017")


def test_ground_truth_scored_against_itself_is_perfect(coco):
    source = CocoPanopticSource(root=coco)
    samples = [source.load(i) for i in range(len(source))]
    outputs = []
    for sample in samples:  # a prediction: the non-crowd segments, crowd pixels left VOID
        crowd = [s["id"] for s in sample.target.segments if s["iscrowd"]]
        pred_map = sample.target.segment_map.clone()
        pred_map[torch.isin(pred_map, torch.tensor(crowd))] = 0
        outputs.append(PanopticPrediction(pred_map, [{"id": s["id"], "category_id": s["category_id"]}
                                                     for s in sample.target.segments if not s["iscrowd"]]))
    batch = SimpleNamespace(ids=[s.id for s in samples], targets=[s.target for s in samples])
    evaluator = PanopticEvaluator(source.categories())
    metrics = {m.name: m.value for m in evaluator.compute(evaluator.process(batch, outputs_for(evaluator, outputs, "clean")))
               if m.name != "pq_class"}
    assert metrics == {name: 1.0 for name in ("pq", "sq", "rq", "pq_things", "sq_things", "rq_things",
                                              "pq_stuff", "sq_stuff", "rq_stuff")}
