"""``source: predictions``: saved outputs scored on the same leaderboard without a forward pass.

End to end through the runner: COCO results written from the zoo detector's own detections score exactly what
the detector scores; label PNGs of a segmenter's argmax give its mIoU; the panoptic reader hands the scenes
ground truth back as a perfect prediction; results with masks score as pycocotools scores the same file.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from harness.cli import main
from harness.data.loader import make_loader
from harness.data.scenes import ScenesSource
from harness.evaluation.detection import STAT_NAMES
from harness.evaluation.outputs import LabelMap
from harness.evaluation.panoptic import PanopticEvaluator
from harness.evaluation.semantic import SemanticEvaluator, predict_labels
from harness.evaluation.state import read_records
from harness.models.loaders import load_model
from harness.models.predictions import NATIVE, PredictionsError, content_sha256, open_predictions
from harness.run import run_suite
from harness.schema import SuiteError
from harness.seeding import seed_everything
from harness.specs import ModelSpec
from harness.suite import load_suite
from harness.tasks.base import JobContext
from harness.tasks.segmentation import SegmentationTask
from tests.evaluating import outputs_for

pytestmark = pytest.mark.usefixtures("one_thread")

SCENES = {"name": "scenes", "kind": "scenes", "split": "test", "target": "detection"}


def write(path: Path, suite: dict) -> Path:
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def suite_of(models: list[dict], dataset: dict = SCENES, tasks: list[dict] | None = None, **defaults) -> dict:
    return {"name": "p", "version": 1, "defaults": {"batch_size": 20, **defaults}, "models": models,
            "datasets": [dataset], "tasks": tasks or [{"kind": "detection"}]}


def saved(path: str = "dets.json", name: str = "saved") -> dict:
    return {"name": name, "source": "predictions", "path": path, "family": "cnn"}


def metric_values(frame) -> dict:
    rows = frame[frame["metric"].notna()]
    return {(m, json.dumps(p, sort_keys=True)): (v, n) for m, p, v, n in
            zip(rows["metric"], rows["params"], rows["value"], rows["n"])}


@pytest.fixture(scope="module")
def scenes_coco(tmp_path_factory) -> dict:
    """60 scenes test images exported in COCO layout, as a ``kind: coco`` dataset entry."""
    paths = ScenesSource("test", size=60).export(tmp_path_factory.mktemp("scenes"))
    return {"name": "scenes", "kind": "coco", "split": "test", "root": str(paths["images"])}


def first_batch(source, size: int):
    return next(iter(make_loader(source, NATIVE, size)))


# --- detection ---------------------------------------------------------------------------------------------
def test_saved_detections_score_exactly_what_the_detector_scores(tmp_path, scenes_coco, capsys):
    detector = {"name": "zoo", "source": "zoo", "arch": "centernet_resnet_scenes"}
    ran = run_suite(write(tmp_path / "zoo.yaml", suite_of([detector], scenes_coco)), out=tmp_path / "zoo",
                    progress=False, report=False)
    assert not ran.failed, ran.failed
    state = read_records(next((tmp_path / "zoo" / "samples").glob("*.jsonl.gz")))
    results = [r for _, record in state.pass_records("main") for r in record["results"]]
    assert len(results) > 100
    (tmp_path / "dets.json").write_text(json.dumps(results))

    path = write(tmp_path / "saved.yaml", suite_of([saved()], scenes_coco))
    scored = run_suite(path, out=tmp_path / "out", progress=False, report=False)
    assert not scored.failed, scored.failed
    expected, got = metric_values(ran.frame), metric_values(scored.frame)
    assert got == expected and len(got) == len(STAT_NAMES) + 5  # 12 COCO stats + AP of the 5 categories
    row = scored.frame.iloc[0]
    assert row["weights"] == f"predictions:{tmp_path / 'dets.json'}" and row["family"] == "cnn"
    assert row["weights_sha256"] == content_sha256(tmp_path / "dets.json")

    assert main(["rescore", str(tmp_path / "out")]) == 0  # records as any model's: rescored identically
    assert "identical" in capsys.readouterr().out

    # the cache key holds the predictions' content: the same file is cached, an edited one is scored again
    assert run_suite(path, out=tmp_path / "out", progress=False, report=False).cached == 1
    (tmp_path / "dets.json").write_text(json.dumps(results[1:]))
    again = run_suite(path, out=tmp_path / "out", progress=False, report=False)
    assert again.ran == 1 and metric_values(again.frame) != expected


def _coco_stats(truth: dict, results: list[dict], image_ids: list[int], iou_type: str) -> np.ndarray:
    """pycocotools on its own: loadRes + COCOeval over the given images (results of one IoU type's form)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(truth))
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(json.loads(json.dumps(results))), iou_type)
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def test_results_with_masks_score_as_pycocotools_scores_the_file(tmp_path, scenes_coco):
    """Boxes and RLE masks of the scenes ground truth, jittered, re-labelled, partly dropped, some without a
    bbox (then COCO takes the mask's) and two images without any result (no detections): both IoU types equal
    pycocotools' COCOeval.stats on the same results to 1e-12."""
    truth = json.loads((Path(scenes_coco["root"]).parent / "annotations" / "instances_test.json").read_text())
    rng = np.random.default_rng(0)
    results = []
    for ann in truth["annotations"]:
        if ann["image_id"] in (3, 4) or rng.random() < 0.2:
            continue
        bbox = [float(v) for v in np.asarray(ann["bbox"]) + rng.normal(0, 1.5, 4)]
        bbox[2:] = [max(v, 1.0) for v in bbox[2:]]
        category = ann["category_id"] if rng.random() < 0.85 else 7
        result = {"image_id": ann["image_id"], "category_id": category, "score": float(rng.random()),
                  "segmentation": ann["segmentation"]}
        results.append(result if rng.random() < 0.2 else {**result, "bbox": bbox})
    (tmp_path / "dets.json").write_text(json.dumps(results))
    suite = suite_of([saved()], scenes_coco, [{"kind": "detection", "params": {"iou_types": ["bbox", "segm"],
                                                                             "backend": "pycocotools"}}])
    outcome = run_suite(write(tmp_path / "s.yaml", suite), out=tmp_path / "out", progress=False, report=False)
    assert not outcome.failed, outcome.failed
    rows = outcome.frame.assign(iou=[p.get("iou_type") for p in outcome.frame["params"]]).set_index(["iou", "metric"])

    def rle(result: dict) -> dict:
        return {**result["segmentation"], "counts": result["segmentation"]["counts"].encode()}

    as_bbox = [{"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"],
                "bbox": r.get("bbox") or mask_utils.toBbox(rle(r)).tolist()} for r in results]
    as_segm = [{k: r[k] for k in ("image_id", "category_id", "score", "segmentation")} for r in results]
    image_ids = [image["id"] for image in truth["images"]]
    for iou_type, typed in (("bbox", as_bbox), ("segm", as_segm)):
        reference = _coco_stats(truth, typed, image_ids, iou_type)
        ours = np.array([rows.loc[(iou_type, name), "value"] for name in STAT_NAMES])
        np.testing.assert_allclose(ours, np.where(reference == -1, np.nan, reference), rtol=0, atol=1e-12)
        assert 0.3 < ours[0] < 0.95  # neither trivial nor broken


# --- semantic ----------------------------------------------------------------------------------------------
def test_label_pngs_of_a_segmenters_argmax_give_its_miou(tmp_path):
    # random init: a deep residual net still gives spatially varied argmax maps (the mobile ones give one class)
    segmenter = {"name": "fcn", "source": "torchvision", "arch": "fcn_resnet50", "num_classes": 8,
                 "family": "cnn", "preprocess": {"input_size": 64}}
    dataset = {**SCENES, "target": "semantic", "subset": {"n": 12}}
    # device cpu: compared below with the same model's argmax computed on CPU
    ran = run_suite(write(tmp_path / "m.yaml", suite_of([segmenter], dataset, [{"kind": "segmentation"}],
                                                        batch_size=8, device="cpu")),
                    out=tmp_path / "m", progress=False, report=False)
    assert not ran.failed, ran.failed

    # the same model (seeded as the runner seeds it) through the same loader; its argmax saved as label PNGs
    from harness.data.sources import build_source

    spec = load_suite(str(tmp_path / "m.yaml")).spec
    source = build_source(spec.datasets[0], None, 0)
    seed_everything(0)
    model = load_model(spec.models[0])
    ctx = JobContext(model, source, torch.device("cpu"), 8, 0, show_progress=False)
    task = SegmentationTask(SegmentationTask.Params())
    with torch.inference_mode():
        for batch in ctx.batches():
            for sample_id, logits, target in zip(batch.ids, task.infer(ctx, None, 0, batch), batch.targets):
                labels = predict_labels(logits, tuple(target.mask.shape)).numpy().astype(np.uint8)
                (tmp_path / "pngs" / sample_id).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(labels).save(tmp_path / "pngs" / f"{sample_id}.png")

    scored = run_suite(write(tmp_path / "s.yaml", suite_of([saved("pngs")], dataset, [{"kind": "segmentation"}],
                                                           batch_size=8)),
                       out=tmp_path / "s", progress=False, report=False)
    assert not scored.failed, scored.failed
    assert metric_values(scored.frame) == metric_values(ran.frame)
    assert 0 < scored.frame.set_index("metric").loc["miou", "value"] < 1
    predicted = np.concatenate([np.asarray(Image.open(p)).ravel() for p in (tmp_path / "pngs").rglob("*.png")])
    assert len(predicted) == 12 * 128 * 128 and len(np.unique(predicted)) >= 3


def test_label_png_errors_name_the_file(tmp_path):
    source = ScenesSource("test", target="semantic", size=3)
    batch = first_batch(source, 3)
    folder = tmp_path / "flat"
    folder.mkdir()
    for index in range(3):  # a flat folder: found by file name
        Image.fromarray(source.scene(index).semantic()).save(folder / f"{index:06d}.png")
    reader = open_predictions(folder)
    evaluator = SemanticEvaluator(8)
    metrics = {m.name: m.value for m in evaluator.compute(evaluator.process(batch, outputs_for(evaluator, reader.outputs(batch, source), "main")))}
    assert metrics["miou"] == 1.0 and metrics["aacc"] == 1.0

    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "000001.png")
    with pytest.raises(ValueError, match=r"000001\.png: predicted label map is 64x64 but the label of image "
                                         r"'test/000001' is 128x128"):
        evaluator.process(batch, outputs_for(evaluator, reader.outputs(batch, source), "main"))
    Image.fromarray(np.full((128, 128), 9, np.uint8)).save(folder / "000001.png")
    with pytest.raises(PredictionsError, match=r"000001\.png: value 9 is not a class \(the dataset has classes "
                                               r"0\.\.7\)$"):
        evaluator.process(batch, outputs_for(evaluator, reader.outputs(batch, source), "main"))
    Image.fromarray(source.scene(1).semantic()).save(folder / "000001.png")
    (folder / "000002.png").unlink()
    with pytest.raises(PredictionsError, match=r"flat: no label PNG for image 'test/000002' \(looked for "
                                               r"test/000002\.png, then a unique 000002\.png\)"):
        open_predictions(folder).outputs(batch, source)
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(folder / "000002.png")
    with pytest.raises(ValueError, match=r"000002\.png: label PNGs must be single-channel"):
        open_predictions(folder).outputs(batch, source)
    assert isinstance(open_predictions(folder).outputs(first_batch(source, 1), source)[0], LabelMap)


# --- panoptic ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def panoptic_export(tmp_path_factory) -> tuple[ScenesSource, Path]:
    source = ScenesSource("test", target="panoptic", size=24)
    return source, source.export(tmp_path_factory.mktemp("scenes"))["panoptic"]


def test_the_panoptic_reader_round_trips_the_ground_truth(panoptic_export):
    source, json_path = panoptic_export
    model = load_model(ModelSpec(name="gt", source="predictions", path=str(json_path), family="cnn"))
    assert model.output_kind == "panoptic" and model.module is None and model.provenance()["num_params"] is None
    evaluator = PanopticEvaluator(source.panoptic_categories())
    states = [evaluator.process(batch, outputs_for(evaluator, model.predictions.outputs(batch, source), "main"))
              for batch in make_loader(source, model.preprocess, 10)]
    state = states[0]
    for other in states[1:]:
        state.merge(other)
    metrics = {m.name: (m.value, m.n) for m in evaluator.compute(state)}
    crowded = sum(any(s["iscrowd"] for s in source.target(i).segments) for i in range(len(source)))
    assert crowded > 0  # crowd segments predicted as themselves are absorbed, not false positives
    for name in ("pq", "sq", "rq", "pq_things", "pq_stuff"):
        assert metrics[name] == (1.0, 24)


def test_panoptic_errors_name_the_file_and_field(panoptic_export, tmp_path):
    source, json_path = panoptic_export
    batch = first_batch(source, 4)
    shutil.copytree(json_path.with_suffix(""), tmp_path / "pred")

    def outputs(edit):
        data = json.loads(json_path.read_text())
        edit(data)
        (tmp_path / "pred.json").write_text(json.dumps(data))
        return open_predictions(tmp_path / "pred.json").outputs(batch, source)

    with pytest.raises(PredictionsError, match=r"pred\.json: annotations\[5\]\.image_id: image_id 999 is not in "
                                               r"dataset scenes"):
        outputs(lambda d: d["annotations"][5].update(image_id=999))
    with pytest.raises(PredictionsError, match=r"pred\.json: annotations\[0\]\.segments_info\[0\]\.category_id: "
                                               r"category_id 4 is not in dataset scenes \(its categories: 1, 2, 3, 5, "
                                               r"7, 12, 15, 20\)"):
        outputs(lambda d: d["annotations"][0]["segments_info"][0].update(category_id=4))
    with pytest.raises(PredictionsError, match=r"pred\.json: annotations: no prediction for image_id 2 \(panopticapi"):
        outputs(lambda d: d["annotations"].pop(1))
    with pytest.raises(PredictionsError, match=r"pred\.json: annotations\[0\]\.segments_info\[1\]: missing field 'id'"):
        outputs(lambda d: d["annotations"][0]["segments_info"][1].pop("id"))
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(tmp_path / "pred" / "small.png")
    with pytest.raises(PredictionsError, match=r"small\.png: PNG is 48x32 but image 1 is 128x128"):
        outputs(lambda d: d["annotations"][0].update(file_name="small.png"))
    shutil.rmtree(tmp_path / "pred")
    with pytest.raises(PredictionsError, match=r"pred\.json: no PNG folder .*pred \(COCO-panoptic layout"):
        open_predictions(tmp_path / "pred.json")


# --- detection-file errors ---------------------------------------------------------------------------------
GOOD = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}


@pytest.mark.parametrize("results, message", [
    ([{**GOOD, "score": "high"}], r"dets\.json: \[0\]\.score: expected a number, got 'high'"),
    ([GOOD, {k: v for k, v in GOOD.items() if k != "image_id"}], r"dets\.json: \[1\]: missing field 'image_id'"),
    ([{**GOOD, "bbox": [1, 2, 3]}], r"dets\.json: \[0\]\.bbox: expected \[x, y, width, height\]"),
    ([{**GOOD, "segmentation": {"size": [128, 128], "counts": "PP"}}, GOOD],
     r"dets\.json: \[1\]: no 'segmentation', unlike \[0\]"),
    ({"images": []}, r"dets\.json: neither a list of COCO results \(detection\) nor a COCO-panoptic json"),
])
def test_malformed_results_are_refused_with_the_field(tmp_path, results, message):
    (tmp_path / "dets.json").write_text(json.dumps(results))
    with pytest.raises(PredictionsError, match=message):
        open_predictions(tmp_path / "dets.json")


@pytest.mark.parametrize("result, message", [
    ({**GOOD, "image_id": 301}, r"dets\.json: \[1\]\.image_id: image_id 301 is not in dataset scenes \(refused, as "
                                r"pycocotools' loadRes refuses it\)"),
    ({**GOOD, "category_id": 0}, r"dets\.json: \[1\]\.category_id: category_id 0 is not in dataset scenes \(its "
                                 r"categories: 1, 2, 3, 5, 7\)"),
])
def test_results_outside_the_dataset_are_refused(tmp_path, result, message):
    source = ScenesSource("test", size=4)
    (tmp_path / "dets.json").write_text(json.dumps([GOOD, result]))
    with pytest.raises(PredictionsError, match=message):
        open_predictions(tmp_path / "dets.json").outputs(first_batch(source, 2), source)


def test_segmentation_of_another_size_is_refused(tmp_path):
    source = ScenesSource("test", size=2)
    rle = mask_utils.encode(np.asfortranarray(np.ones((64, 64), np.uint8)))
    (tmp_path / "dets.json").write_text(json.dumps([{**GOOD, "segmentation": {"size": [64, 64],
                                                                               "counts": rle["counts"].decode()}}]))
    with pytest.raises(PredictionsError, match=r"dets\.json: \[0\]\.segmentation\.size: \[64, 64\] \(height, width\) "
                                               r"but image 1 is 128 x 128"):
        open_predictions(tmp_path / "dets.json").outputs(first_batch(source, 2), source)


def test_a_broken_file_fails_its_job_in_one_line(tmp_path):
    (tmp_path / "dets.json").write_text('[{"image_id": 1,')
    outcome = run_suite(write(tmp_path / "s.yaml", suite_of([saved()], limit=4)), out=tmp_path / "out",
                        progress=False, report=False)
    assert len(outcome.failed) == 1
    assert f"PredictionsError: {tmp_path / 'dets.json'}: not valid JSON (" in outcome.failed[0]
    assert "\n" not in outcome.failed[0]


# --- suite validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", [
    {"kind": "classification"}, {"kind": "pgd", "params": {"eps": [0.01]}}, {"kind": "autoattack", "params": {"eps": [0.01]}},
    {"kind": "corruption", "params": {"corruptions": ["gaussian_noise"], "severities": [1]}}, {"kind": "latency"},
])
def test_tasks_that_need_a_forward_pass_refuse_saved_predictions(tmp_path, task):
    (tmp_path / "dets.json").write_text("[]")
    path = write(tmp_path / "s.yaml", suite_of([saved()], tasks=[task]))
    with pytest.raises(SuiteError, match=rf"s\.yaml:\d+: tasks\[0\]\.kind: model saved is precomputed predictions; "
                                         rf"task {task['kind']} needs a forward pass"):
        load_suite(str(path))


def test_the_loop_never_feeds_saved_predictions_to_a_forward_pass_task(tmp_path):
    """Outside a suite too (``run_task``): a task without a ``prediction_kind`` refuses the model."""
    from harness.data.digits import DigitsSource
    from harness.loop import run_task
    from harness.tasks.classification import ClassificationTask

    (tmp_path / "dets.json").write_text("[]")
    model = load_model(ModelSpec(**saved(str(tmp_path / "dets.json"))))
    ctx = JobContext(model, DigitsSource(split="test"), torch.device("cpu"), 8, 0, show_progress=False)
    with pytest.raises(ValueError, match="model saved is precomputed predictions; task classification needs a "
                                         "forward pass"):
        run_task(ClassificationTask(ClassificationTask.Params()), ctx)


def test_a_task_restricted_to_other_models_accepts_the_suite(tmp_path):
    (tmp_path / "dets.json").write_text("[]")
    suite = suite_of([saved(), {"name": "zoo", "source": "zoo", "arch": "centernet_resnet_scenes"}],
                     tasks=[{"kind": "detection"}, {"kind": "latency", "models": ["zoo"]}])
    assert len(load_suite(str(write(tmp_path / "s.yaml", suite))).tasks) == 2
    suite["tasks"][1]["models"] = ["*"]
    with pytest.raises(SuiteError, match=r"tasks\[1\]\.models: model saved is precomputed predictions"):
        load_suite(str(write(tmp_path / "s.yaml", suite)))


@pytest.mark.parametrize("entry, message", [
    (saved("missing.json"), r"models\[0\]\.path: no such file or folder .*missing\.json"),
    ({"name": "x", "source": "predictions", "family": "cnn"}, r"models\[0\]: source 'predictions' needs a 'path'"),
    ({"name": "x", "source": "zoo", "path": "dets.json"}, r"models\[0\]: source 'predictions' needs a 'path'"),
    ({"name": "x", "source": "predictions", "path": "dets.json"}, r"models\[0\]: .*needs 'family'"),
])
def test_suite_entries_are_checked_before_anything_runs(tmp_path, entry, message):
    (tmp_path / "dets.json").write_text("[]")
    with pytest.raises(SuiteError, match=message):
        load_suite(str(write(tmp_path / "s.yaml", suite_of([entry]))))


def test_the_path_may_use_data_root(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dets.json").write_text("[]")
    suite = load_suite(str(write(tmp_path / "s.yaml", suite_of([saved("{data_root}/dets.json")]))),
                       data_root=str(tmp_path / "data"))
    assert suite.spec.models[0].path == str(tmp_path / "data" / "dets.json")
