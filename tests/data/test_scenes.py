"""The embedded scenes data: determinism, agreement of the three ground-truth forms, the COCO export and
the ``coco`` kind reading it back."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from harness.data.coco import CocoFormatError, CocoSource
from harness.data.scenes import (HEIGHT, IGNORE_INDEX, SEMANTIC_CATEGORY_IDS, STUFF, THINGS, TRAIN_ID,
                                 ScenesSource, render)
from harness.evaluation.coco_format import rgb2id
from harness.evaluation.samples import DetectionTarget, PanopticTarget, SemanticTarget

N_CHECKED = 60


@pytest.fixture(scope="module")
def source() -> ScenesSource:
    return ScenesSource("test")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, source):
    out = tmp_path_factory.mktemp("scenes")
    return source.export(out)


def test_scene_is_a_pure_function_of_split_index_seed(source):
    for index in (0, 7, 299):
        alone = render("test", index, 0)
        cached = source.scene(index)
        assert np.array_equal(alone.image, cached.image) and np.array_equal(alone.owner, cached.owner)
        assert alone.items == cached.items
    assert not np.array_equal(render("test", 3, 0).image, render("test", 3, 1).image)
    assert not np.array_equal(render("test", 3, 0).image, render("train", 3, 0).image)


def test_split_sizes_ids_and_targets():
    test, train = ScenesSource("test"), ScenesSource("train")
    assert (len(test), len(train)) == (300, 3000)
    sample = test.load(42)
    assert sample.id == "test/000042" and sample.image.mode == "RGB" and sample.image.size == (128, 128)
    assert isinstance(sample.target, DetectionTarget) and sample.target.image_id == 43
    assert train.image_id(0) != test.image_id(0)
    semantic = ScenesSource("test", target="semantic").load(42).target
    assert isinstance(semantic, SemanticTarget) and semantic.mask.dtype == torch.int64
    panoptic = ScenesSource("test", target="panoptic").load(42).target
    assert isinstance(panoptic, PanopticTarget) and panoptic.segment_map.shape == (HEIGHT, HEIGHT)
    assert ScenesSource("test", target="semantic").class_names[TRAIN_ID[1]] == "disc"
    with pytest.raises(ValueError, match="targets"):
        ScenesSource("test", target="depth")


def test_the_three_annotation_forms_agree(source):
    gt = source.coco_ground_truth()
    by_image: dict[int, list] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    seen_crowd = seen_void = False
    for index in range(N_CHECKED):
        scene = source.scene(index)
        anns = by_image.get(source.image_id(index), [])
        semantic = scene.semantic()
        segment_map, segments = scene.panoptic()
        info = {s["id"]: s for s in segments}
        thing_pixels = np.zeros(semantic.shape, bool)
        for ann in anns:
            mask = mask_utils.decode({**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()}) > 0
            segment_id = ann["category_id"] * 1000 + ann["id"] % 100
            assert np.array_equal(mask, segment_map == segment_id)  # instance mask == its panoptic segment
            assert (semantic[mask] == TRAIN_ID[ann["category_id"]]).all()  # and its semantic pixels
            assert info[segment_id]["iscrowd"] == ann["iscrowd"] and info[segment_id]["area"] == ann["area"]
            assert ann["area"] == mask.sum() > 0
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            thing_pixels |= mask
            seen_crowd |= bool(ann["iscrowd"])
        # every thing-class pixel belongs to an annotation; stuff and void agree between the forms
        is_thing = np.isin(semantic, [TRAIN_ID[c] for c in THINGS])
        assert np.array_equal(is_thing, thing_pixels)
        assert np.array_equal(semantic == IGNORE_INDEX, segment_map == 0)
        seen_void |= bool((segment_map == 0).any())
        for segment in segments:
            if segment["category_id"] in STUFF:
                assert (semantic[segment_map == segment["id"]] == TRAIN_ID[segment["category_id"]]).all()
                assert segment["iscrowd"] == 0
        assert sorted(info) == sorted(np.unique(segment_map[segment_map > 0]).tolist())
    assert seen_crowd and seen_void


def test_split_has_crowds_empty_images_all_sizes_and_nonzero_ids(source):
    gt = source.coco_ground_truth()
    ids = [a["id"] for a in gt["annotations"]]
    assert min(ids) >= 1 and len(set(ids)) == len(ids)
    assert sorted(c["id"] for c in gt["categories"]) == [1, 2, 3, 5, 7]
    assert any(a["iscrowd"] for a in gt["annotations"])
    annotated = {a["image_id"] for a in gt["annotations"]}
    assert any(image["id"] not in annotated for image in gt["images"])
    areas = np.array([a["area"] for a in gt["annotations"] if not a["iscrowd"]])
    assert (areas < 32 ** 2).any() and ((areas >= 32 ** 2) & (areas < 96 ** 2)).any() and (areas >= 96 ** 2).any()
    assert {c["id"] for c in source.panoptic_categories() if c["isthing"]} == set(THINGS)
    assert len(SEMANTIC_CATEGORY_IDS) == len(ScenesSource("test", target="semantic").class_names)


def test_export_loads_in_pycocotools_and_reads_back_through_the_coco_kind(source, exported):
    coco = COCO(str(exported["instances"]))
    assert len(coco.getImgIds()) == len(source) and len(coco.getAnnIds()) == len(source.coco_ground_truth()["annotations"])
    reader = CocoSource(root=exported["images"], split="test", masks=True)
    assert reader.coco_ground_truth()["annotations"] == source.coco_ground_truth()["annotations"]
    panoptic = json.loads(exported["panoptic"].read_text())
    for index in range(0, len(source), 37):
        ours, theirs = source.load(index), reader.load(index)
        assert np.array_equal(np.asarray(ours.image), np.asarray(theirs.image))
        a, b = ours.target, theirs.target
        assert a.image_id == b.image_id and a.ann_ids == b.ann_ids
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.iscrowd, b.iscrowd) and torch.equal(a.area, b.area) and torch.equal(a.masks, b.masks)
        name = panoptic["annotations"][index]["file_name"]
        segment_map, segments = source.scene(index).panoptic()
        assert np.array_equal(rgb2id(np.asarray(Image.open(exported["panoptic_pngs"] / name))), segment_map)
        assert panoptic["annotations"][index]["segments_info"] == segments
        semantic = np.asarray(Image.open(exported["semantic_pngs"] / name))
        assert np.array_equal(semantic, source.scene(index).semantic())
    assert CocoSource(root=exported["images"], split="test").load(0).target.masks is None


def _write(tmp_path, data, name="instances.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_coco_kind_shifts_annotation_id_zero_and_refuses_bad_files(tmp_path, exported):
    data = json.loads(exported["instances"].read_text())
    data["annotations"] = data["annotations"][:5]
    data["annotations"][0]["id"] = 0
    shifted = CocoSource(root=exported["images"], annotations=_write(tmp_path, data))
    assert shifted.ann_ids_shifted and min(a["id"] for a in shifted.coco_ground_truth()["annotations"]) == 1
    duplicate = json.loads(json.dumps(data))
    duplicate["annotations"][1]["id"] = duplicate["annotations"][2]["id"]
    with pytest.raises(CocoFormatError, match=r"annotations\[2\]\.id .* used twice"):
        CocoSource(root=exported["images"], annotations=_write(tmp_path, duplicate))
    orphan = json.loads(json.dumps(data))
    orphan["annotations"][1]["image_id"] = 10 ** 9
    with pytest.raises(CocoFormatError, match=r"annotations\[1\]\.image_id"):
        CocoSource(root=exported["images"], annotations=_write(tmp_path, orphan))
    with pytest.raises(CocoFormatError, match="missing or non-list field 'categories'"):
        CocoSource(root=exported["images"], annotations=_write(tmp_path, {"images": [], "annotations": []}))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(CocoFormatError, match="broken.json: not a JSON file"):
        CocoSource(root=exported["images"], annotations=broken)


def test_coco_fingerprint_follows_json_and_images(tmp_path, exported):
    data = json.loads(exported["instances"].read_text())
    data["images"], data["annotations"] = data["images"][:3], []
    first = CocoSource(root=exported["images"], annotations=_write(tmp_path, data)).fingerprint()
    data["images"] = data["images"][:2]
    second = CocoSource(root=exported["images"], annotations=_write(tmp_path, data)).fingerprint()
    assert first["annotations_sha256"] != second["annotations_sha256"]
    assert first["images_manifest_sha256"] != second["images_manifest_sha256"]
    assert ScenesSource("test").fingerprint() == ScenesSource("test").fingerprint()


def test_coco_kind_decodes_polygons_and_uncompressed_rle_like_pycocotools(tmp_path, exported):
    data = json.loads(exported["instances"].read_text())
    image = data["images"][0]
    polygon = {"id": 1, "image_id": image["id"], "category_id": 3, "iscrowd": 0, "area": 300.0,
               "bbox": [10.0, 10.0, 30.0, 20.0], "segmentation": [[10, 10, 40, 12, 25, 30], [50, 50, 60, 50, 60, 70]]}
    raw = np.zeros((image["height"], image["width"]), np.uint8)
    raw[20:40, 70:90] = 1
    counts = mask_utils.encode(np.asfortranarray(raw))
    uncompressed = {"id": 2, "image_id": image["id"], "category_id": 1, "iscrowd": 1, "area": 400.0,
                    "bbox": [70.0, 20.0, 20.0, 20.0],
                    "segmentation": {"size": [image["height"], image["width"]],
                                     "counts": _uncompressed_counts(raw)}}
    data = {**data, "images": [image], "annotations": [polygon, uncompressed]}
    path = _write(tmp_path, data)
    target = CocoSource(root=exported["images"], annotations=path, masks=True).load(0).target
    reference = COCO(str(path))
    for mask, ann_id in zip(target.masks, target.ann_ids):
        assert np.array_equal(mask.numpy(), reference.annToMask(reference.anns[ann_id]) > 0)
    assert np.array_equal(target.masks[1].numpy(), mask_utils.decode(counts) > 0)
    assert target.iscrowd.tolist() == [False, True]


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """Column-major run lengths starting with zeros (COCO's uncompressed RLE)."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0] + runs
