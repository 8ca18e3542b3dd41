"""suites/detection-coco.yaml end to end, offline: its dataset and tasks as shipped, on a miniature COCO val2017
layout (--data-root), with each shipped model replaced by a random-init tiny model of the same architecture."""
from __future__ import annotations

import json

import pytest
import yaml
from pycocotools.coco import COCO

from framework_detectors import tiny_hf, tiny_torchvision, write_mini_coco
from harness.evaluation.state import read_records
from harness.run import run_suite
from harness.schema import SuiteError
from harness.suite import SUITES_DIR, load_suite

HF_TYPES = {"detr-resnet-50": "detr", "deformable-detr": "deformable_detr", "rtdetr-r50vd": "rt_detr",
            "yolos-small": "yolos", "mask2former-swin-small": "mask2former"}
N_IMAGES = 6


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return write_mini_coco(tmp_path_factory.mktemp("coco"), N_IMAGES)


def offline_suite(path) -> dict:
    """The shipped suite with tiny random-init stand-ins of the same names (so the tasks' model patterns hold)."""
    suite = yaml.safe_load((SUITES_DIR / "detection-coco.yaml").read_text(encoding="utf-8"))
    models = []
    for entry in suite["models"]:
        if entry["source"] == "torchvision":
            models.append(tiny_torchvision(entry["name"]))
        else:
            models.append(tiny_hf(entry["name"], HF_TYPES[entry["name"]]))
    suite.update(models=models, defaults={**suite["defaults"], "workers": 0, "batch_size": 4})
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return suite


def test_the_shipped_suite_loads_and_needs_the_coco_data(tmp_path):
    suite = load_suite("detection-coco", data_root=str(tmp_path), check_files=False).spec
    assert {m.source for m in suite.models} == {"torchvision", "hf"}
    assert suite.datasets[0].root == str(tmp_path / "val2017")
    with pytest.raises(SuiteError, match=r"no such directory .*val2017 \(give --data-root"):
        load_suite("detection-coco", data_root=str(tmp_path))


def test_detection_coco_suite_on_a_miniature_coco(coco_root, tmp_path, one_thread):
    suite = offline_suite(tmp_path / "suite.yaml")
    outcome = run_suite(tmp_path / "suite.yaml", out=tmp_path / "out", data_root=str(coco_root), progress=False)
    assert not outcome.failed, outcome.failed
    frame = outcome.frame
    maps = frame[frame["metric"] == "map"]
    expected = {(m["name"], "bbox") for m in suite["models"]}
    expected |= {("maskrcnn_resnet50_fpn_v2", "segm"), ("mask2former-swin-small", "segm")}
    assert {(r.model, r.params["iou_type"]) for r in maps.itertuples()} == expected
    assert (maps["n"] == N_IMAGES).all() and maps["value"].between(-1, 1).all()  # -1: no match at all (COCO)
    ground_truth = COCO(str(coco_root / "annotations" / "instances_val2017.json"))
    sizes = {i["id"]: (i["width"], i["height"]) for i in ground_truth.dataset["images"]}
    assert len(set(sizes.values())) == 3  # mixed sizes: landscape, portrait, square
    for row in frame.drop_duplicates("job_key").itertuples():
        provenance = json.loads(row.provenance) if isinstance(row.provenance, str) else row.provenance
        pipeline = provenance["model"]["pipeline"]
        if row.model.startswith(("fasterrcnn", "retinanet", "fcos", "maskrcnn")):
            assert (pipeline["min_size"], pipeline["max_size"]) == ([64], 128)
        elif row.model.startswith("ssdlite"):
            assert pipeline["fixed_size"] == [320, 320]
        else:
            assert pipeline["adapter"] == "hf"
            assert pipeline["size"] in ({"shortest_edge": 64, "longest_edge": 128}, {"height": 64, "width": 64})
        records = read_records(tmp_path / "out" / "samples" / f"{row.job_key}.jsonl.gz")
        results = [r for passes in records.records.values() for record in passes.values() for r in record["results"]]
        assert results, row.model
        loaded = ground_truth.loadRes(results)  # pycocotools' own loader takes our COCO json
        assert len(loaded.getAnnIds()) == len(results)
        right_edges = []
        for result in results:
            width, height = sizes[result["image_id"]]
            x, y, w, h = result["bbox"]
            assert result["category_id"] in ground_truth.getCatIds()
            if pipeline["adapter"] == "torchvision" or row.model.startswith("mask2former"):  # inside the image
                assert -1e-3 <= x <= x + w <= width + 1e-3 and -1e-3 <= y <= y + h <= height + 1e-3
                right_edges.append((x + w) / width)
            else:  # DETR-style boxes are not clipped; their centres lie in the original image
                assert -1e-3 <= x + w / 2 <= width + 1e-3 and -1e-3 <= y + h / 2 <= height + 1e-3
        # each image reached the network at a 64 px shorter side (SSD: 320 x 320), and its boxes came back
        # spread over the original width, not over the resized one (at most 64 / 96 of it for these sizes)
        assert not right_edges or max(right_edges) > 0.9
