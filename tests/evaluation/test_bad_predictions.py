"""Saved predictions that are wrong in the ways real files are: each case asserts the one line a user sees and
that nothing finished is lost (the good model of the same suite is still scored and stored, the bad job is
stored as failed with that line), or that the suite is refused before anything runs.

Also the label convention of saved label PNGs: mmsegmentation's ``format_only`` output for ADE20K-style
datasets (``reduce_zero_label=True``) writes train id + 1; files written exactly that way in the test are scored
as mmseg's own ``IoUMetric`` scores them when the convention is declared, and refused with the option to set
when it is not.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import time
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
from harness.data.scenes import ScenesSource
from harness.evaluation.detection import STAT_NAMES
from harness.evaluation.semantic import scores_from_records
from harness.evaluation.state import read_records
from harness.run import run_suite
from harness.schema import SuiteError
from harness.store import ResultStore
from harness.suite import load_suite

pytestmark = pytest.mark.usefixtures("one_thread")


def write_suite(path: Path, models: list[dict], dataset: dict, tasks: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"name": "bad", "version": 1, "defaults": {"batch_size": 4}, "models": models,
                                    "datasets": [dataset], "tasks": tasks}, sort_keys=False))
    return path


def saved(name: str, path: Path | str, **extra) -> dict:
    return {"name": name, "source": "predictions", "path": str(path), "family": "cnn", **extra}


def run_pair(tmp_path: Path, dataset: dict, task: dict, good: Path, bad: Path):
    """A suite with a good and a bad predictions model; returns (outcome, the stored frame)."""
    suite = write_suite(tmp_path / "s.yaml", [saved("good", good), saved("bad", bad)], dataset, [task])
    outcome = run_suite(suite, out=tmp_path / "out", progress=False, report=False)
    store = ResultStore(tmp_path / "out" / "results.sqlite")  # what is on disk, not what the run returned
    try:
        return outcome, store.frame()
    finally:
        store.close()


def assert_bad_job_failed(outcome, frame, title: str, message: str, good_metric: str) -> None:
    """Exactly the bad job failed, with exactly ``message`` (one line, no traceback); the good model's
    numbers are stored."""
    assert outcome.failed == [f"bad x {title}: {message}"]
    assert "\n" not in message and "Traceback" not in message
    bad = frame[frame["model"] == "bad"]
    assert list(bad["status"]) == ["failed"] and list(bad["error"]) == [message]
    good = frame[(frame["model"] == "good") & (frame["metric"] == good_metric)]  # one row per IoU type
    assert len(good) and set(good["status"]) == {"ok"} and set(good["value"]) == {1.0}


def assert_bad_job_scored(outcome, frame, metric: str) -> float:
    assert not outcome.failed, outcome.failed
    rows = frame[(frame["model"] == "bad") & (frame["metric"] == metric)]
    assert list(rows["status"]) == ["ok"]
    return float(rows["value"].iloc[0])


# --- external detections -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coco_export(tmp_path_factory) -> dict:
    """Six scenes images in COCO layout (a ``kind: coco`` entry) and their ground truth as perfect results."""
    paths = ScenesSource("test", size=6).export(tmp_path_factory.mktemp("coco"))
    truth = json.loads(paths["instances"].read_text())
    good = paths["images"].parent / "good.json"
    good.write_text(json.dumps([{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                                 "score": 0.9, "segmentation": a["segmentation"]} for a in truth["annotations"]]))
    return {"dataset": {"name": "scenes", "kind": "coco", "split": "test", "root": str(paths["images"]),
                        "masks": True},
            "truth": truth, "good": good}


def _good_results(coco_export) -> list[dict]:
    return json.loads(coco_export["good"].read_text())


def _ones_rle(height: int, width: int) -> str:
    return mask_utils.encode(np.asfortranarray(np.ones((height, width), np.uint8)))["counts"].decode()


DETECTION_CASES = {
    # name: (file text from the good results, the message after "PredictionsError: <file>: ")
    "truncated json": (lambda good: json.dumps(good)[:200],
                       r"not valid JSON \(Expecting .*\(char 200\)\): the file ends early \(truncated\?\)"),
    "malformed json": (lambda good: "[{'image_id': 1}]",
                       re.escape("not valid JSON (Expecting property name enclosed in double quotes: line 1 column 3 "
                                 "(char 2))")),
    "not an object": (lambda good: json.dumps([None]), re.escape("[0]: expected an object with 'image_id', got None")),
    "nan width": (lambda good: json.dumps(good).replace(f"\"bbox\": {json.dumps(good[2]['bbox'])}",
                                                        '"bbox": [1.0, 2.0, NaN, 4.0]', 1),
                  re.escape("[2].bbox: width is nan, not a finite number")),
    "negative height": (lambda good: json.dumps(good[:3] + [{**good[3], "bbox": [30.0, 40.0, 10.0, -12.0]}]),
                        re.escape("[3].bbox: height is negative (-12.0): COCO boxes are [x, y, width, height], "
                                  "not corners")),
    "score as a string": (lambda good: json.dumps([{**good[0], "score": "0.9"}]),
                          re.escape("[0].score: expected a number, got '0.9'")),
    "unknown image_id": (lambda good: json.dumps(good + [{**good[0], "image_id": 4242}]),
                         r"\[\d+\]\.image_id: image_id 4242 is not in dataset scenes \(refused, as pycocotools' "
                         r"loadRes refuses it\)"),
    "unknown category_id": (lambda good: json.dumps(good + [{**good[0], "category_id": 0}]),
                            r"\[\d+\]\.category_id: category_id 0 is not in dataset scenes \(its categories: 1, 2, "
                            r"3, 5, 7\)"),
    "results written twice": (lambda good: json.dumps(good + good),
                              r"\[\d+\]: repeats \[0\] exactly \(image_id, category_id, bbox, score, segmentation\): "
                              r"results written twice \(a distributed sampler's padding, shards concatenated "
                              r"twice\?\); COCOeval would count the copy as a false positive"),
    "rle counts of the wrong type": (lambda good: json.dumps([{**g, "segmentation": {**g["segmentation"], "counts": 5}}
                                                              if i == 1 else g for i, g in enumerate(good)]),
                                     re.escape("[1].segmentation.counts: expected a compressed RLE string or a list "
                                               "of run lengths, got 5")),
    "rle runs that miss its size": (lambda good: json.dumps([{**good[0], "segmentation": {
        "size": [128, 128], "counts": _ones_rle(64, 128)}}] + good[1:]),
        re.escape("[0].segmentation.counts: the runs cover 8192 pixels but size 128 x 128 has 16384")),
}


@pytest.mark.parametrize("case", list(DETECTION_CASES))
def test_bad_detection_file_fails_its_job_alone(tmp_path, coco_export, case):
    text, message = DETECTION_CASES[case]
    bad = tmp_path / "bad.json"
    bad.write_text(text(_good_results(coco_export)))
    task = {"kind": "detection", "params": {"iou_types": ["bbox", "segm"]}}
    outcome, frame = run_pair(tmp_path, coco_export["dataset"], task, coco_export["good"], bad)
    (failure,) = outcome.failed
    expected = f"bad x scenes x detection: PredictionsError: {bad}: "
    assert failure.startswith(expected) and re.fullmatch(message, failure[len(expected):]), failure
    assert_bad_job_failed(outcome, frame, "scenes x detection", failure.split(": ", 1)[1], "map")


def test_an_empty_results_list_scores_zero_for_boxes_and_masks(tmp_path, coco_export):
    """No detections at all is a valid result: every stat 0 (NaN where COCO leaves it undefined), bbox and segm
    alike; before, segm refused the file for having no masks."""
    (tmp_path / "empty.json").write_text("[]")
    task = {"kind": "detection", "params": {"iou_types": ["bbox", "segm"]}}
    outcome, frame = run_pair(tmp_path, coco_export["dataset"], task, coco_export["good"], tmp_path / "empty.json")
    rows = frame[(frame["model"] == "bad") & frame["metric"].isin(["map", "mar_100"])]
    assert not outcome.failed, outcome.failed
    assert sorted((r["params"]["iou_type"], r["metric"], r["value"]) for _, r in rows.iterrows()) == [
        ("bbox", "map", 0.0), ("bbox", "mar_100", 0.0), ("segm", "map", 0.0), ("segm", "mar_100", 0.0)]


def test_100000_detections_on_one_image_score_as_pycocotools(tmp_path, coco_export):
    """All 100,000 are read and kept in the records; COCOeval keeps the 100 best per image and category
    (maxDets), as pycocotools does on the same file; seconds, not minutes."""
    rng = np.random.default_rng(0)
    truth, good = coco_export["truth"], _good_results(coco_export)
    boxes = [{"image_id": truth["images"][0]["id"], "category_id": int(rng.choice([1, 2, 3, 5, 7])),
              "bbox": [float(x), float(y), float(w), float(h)], "score": float(s)}
             for x, y, w, h, s in zip(rng.uniform(0, 100, 100_000), rng.uniform(0, 100, 100_000),
                                      rng.uniform(2, 28, 100_000), rng.uniform(2, 28, 100_000), rng.random(100_000))]
    results = [{k: v for k, v in r.items() if k != "segmentation"} for r in good] + boxes
    (tmp_path / "many.json").write_text(json.dumps(results))
    started = time.perf_counter()
    outcome, frame = run_pair(tmp_path, coco_export["dataset"], {"kind": "detection"}, coco_export["good"],
                              tmp_path / "many.json")
    assert time.perf_counter() - started < 120
    assert_bad_job_scored(outcome, frame, "map")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(truth))
        gt.createIndex()
        reference = COCOeval(gt, gt.loadRes(json.loads(json.dumps(results))), "bbox")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    ours = frame[(frame["model"] == "bad") & frame["metric"].isin(STAT_NAMES)].set_index("metric")["value"]
    expected = np.where(reference.stats == -1, np.nan, reference.stats)
    np.testing.assert_allclose([ours[name] for name in STAT_NAMES], expected, rtol=0, atol=1e-12)
    assert 0 < ours["map"] < 1  # the flood costs precision on that image, the others stay perfect
    key = frame.loc[frame["model"] == "bad", "job_key"].iloc[0]
    records = read_records(tmp_path / "out" / "samples" / f"{key}.jsonl.gz")
    assert sum(len(r["results"]) for _, r in records.pass_records("main")) == len(results)  # none dropped


# --- label PNGs (semantic) -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def label_folder(tmp_path_factory) -> dict:
    """Six scenes images with their label PNGs as a ``kind: segfolder`` entry, and those labels as perfect
    predictions."""
    root = tmp_path_factory.mktemp("seg")
    paths = ScenesSource("test", size=6).export(root)
    good = root / "good"
    shutil.copytree(paths["semantic_pngs"], good)
    return {"dataset": {"name": "scenes", "kind": "segfolder", "split": "test", "root": str(root),
                        "images": "images", "annotations": "annotations/semantic_test", "num_classes": 8},
            "good": good}


def _labels(folder: Path, name: str = "test_000001.png") -> np.ndarray:
    return np.asarray(Image.open(folder / name))


def _palette_png(labels: np.ndarray, path: Path) -> None:
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([v for i in range(256) for v in ((37 * i) % 256, (91 * i) % 256, (173 * i) % 256)])
    image.save(path)


LABEL_CASES = {
    # name: (how test_000001.png is rewritten, the message after "<file>: ", the exception name)
    "wrong size": (lambda labels, path: Image.fromarray(labels[:64, :96]).save(path),
                   re.escape("predicted label map is 96x64 but the label of image 'test_000001.png' is 128x128"),
                   "ValueError"),
    "rgba colours": (lambda labels, path: Image.fromarray(np.stack([labels] * 3 + [np.full_like(labels, 255)], -1))
                     .save(path),
                     re.escape("label PNGs must be single-channel class indices (grey, 16-bit grey or palette), got "
                               "mode RGBA (colours: a visualisation, such as mmseg's show_dir output, rather than "
                               "labels?)"), "PredictionsError"),
    "label beyond the class count": (lambda labels, path: Image.fromarray(
        np.where(labels == 3, 11, labels.astype(np.int64)).astype(np.uint8)).save(path),
                                     re.escape("value 11 is not a class (the dataset has classes 0..7)"),
                                     "PredictionsError"),
    "16-bit label beyond the class count": (lambda labels, path: Image.fromarray(
        np.where(labels == 3, 300, labels.astype(np.int64)).astype(np.uint16)).save(path),
        re.escape("value 300 is not a class (the dataset has classes 0..7)"), "PredictionsError"),
    "not a png": (lambda labels, path: path.write_bytes(b"GIF89a not really"),
                  r"cannot read the label PNG \(cannot identify image file .*\)", "PredictionsError"),
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_bad_label_png_fails_its_job_alone(tmp_path, label_folder, case):
    edit, message, exception = LABEL_CASES[case]
    bad = tmp_path / "bad"
    shutil.copytree(label_folder["good"], bad)
    edit(_labels(bad), bad / "test_000001.png")
    outcome, frame = run_pair(tmp_path, label_folder["dataset"], {"kind": "segmentation"}, label_folder["good"], bad)
    (failure,) = outcome.failed
    expected = f"bad x scenes x segmentation: {exception}: {bad / 'test_000001.png'}: "
    assert failure.startswith(expected) and re.fullmatch(message, failure[len(expected):]), failure
    assert_bad_job_failed(outcome, frame, "scenes x segmentation", failure.split(": ", 1)[1], "miou")


@pytest.mark.parametrize("form", ["palette", "16-bit grey"])
def test_palette_and_16_bit_label_pngs_are_read_as_their_indices(tmp_path, label_folder, form):
    """A palette PNG's indices are its labels (mmseg's CityscapesMetric writes such PNGs, VOC's labels are
    such PNGs), whatever colours its palette gives them; 16-bit grey PNGs hold their values."""
    bad = tmp_path / "written"
    shutil.copytree(label_folder["good"], bad)
    for path in bad.glob("*.png"):
        labels = _labels(bad, path.name)
        _palette_png(labels, path) if form == "palette" else Image.fromarray(labels.astype(np.uint16)).save(path)
        assert Image.open(path).mode == ("P" if form == "palette" else "I;16")
    outcome, frame = run_pair(tmp_path, label_folder["dataset"], {"kind": "segmentation"}, label_folder["good"], bad)
    assert assert_bad_job_scored(outcome, frame, "miou") == 1.0


# --- panoptic -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def panoptic_export(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pan")
    paths = ScenesSource("test", size=6).export(root)
    return {"dataset": {"name": "scenes", "kind": "coco_panoptic", "split": "test", "root": str(root),
                        "images": "images", "annotations": "annotations/panoptic_test.json"},
            "good": paths["panoptic"]}


def _first_segments(data: dict) -> list[dict]:
    return data["annotations"][1]["segments_info"]


PANOPTIC_CASES = {
    # name: (edit of the json, edit of image 2's PNG (segment ids array -> written file), message after ": ")
    "segments_info names an id absent from the PNG": (
        lambda data: _first_segments(data).append({"id": 4242, "category_id": _first_segments(data)[0]["category_id"]}),
        None, r"{json}: annotations\[1\]\.segments_info\[\d+\]\.id: segment 4242 has no pixels in test_000001\.png "
              r"\(panopticapi refuses a listed segment missing from the PNG\)"),
    "the PNG has a segment segments_info lacks": (
        lambda data: _first_segments(data).pop(0), None,
        r"{png}: segment id \d+ \(RGB \(\d+, \d+, \d+\), PNG mode RGB\) is in the PNG but not in "
        r"annotations\[1\]\.segments_info \(1 unlisted in all; panopticapi refuses them\)"),
    "a segment id listed twice": (
        lambda data: _first_segments(data).append(dict(_first_segments(data)[0])), None,
        r"{json}: annotations\[1\]\.segments_info\[\d+\]\.id: \d+ repeats segments_info\[0\]"),
    "a 16-bit grey PNG": (
        None, lambda ids, path: Image.fromarray(ids.astype(np.uint16)).save(path),
        r"{png}: a panoptic PNG holds 8-bit RGB segment ids \(R \+ 256 G \+ 256\^2 B\), got mode I;16"),
    "its PNG is missing": (
        None, lambda ids, path: path.unlink(), r"{json}: annotations\[1\]\.file_name: no such PNG {png}"),
}


@pytest.mark.parametrize("case", list(PANOPTIC_CASES))
def test_bad_panoptic_prediction_fails_its_job_alone(tmp_path, panoptic_export, case):
    edit_json, edit_png, message = PANOPTIC_CASES[case]
    good = panoptic_export["good"]
    bad_json, bad_pngs = tmp_path / "bad.json", tmp_path / "bad"
    shutil.copytree(good.with_suffix(""), bad_pngs)
    data = json.loads(good.read_text())
    if edit_json:
        edit_json(data)
    bad_json.write_text(json.dumps(data))
    png = bad_pngs / data["annotations"][1]["file_name"]
    if edit_png:
        colours = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
        edit_png(colours[..., 0] + 256 * colours[..., 1] + 256 ** 2 * colours[..., 2], png)
    outcome, frame = run_pair(tmp_path, panoptic_export["dataset"], {"kind": "panoptic"}, good, bad_json)
    (failure,) = outcome.failed
    expected = "bad x scenes x panoptic: PredictionsError: "
    pattern = message.format(json=re.escape(str(bad_json)), png=re.escape(str(png)))
    assert failure.startswith(expected) and re.fullmatch(pattern, failure[len(expected):]), failure
    assert_bad_job_failed(outcome, frame, "scenes x panoptic", failure.split(": ", 1)[1], "pq")


# --- the label convention of saved label PNGs: mmseg's reduce_zero_label -----------------------------------
CLASSES = 6
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def _grey(name: str) -> tuple[np.ndarray, np.ndarray]:
    import skimage.data
    from skimage.transform import resize

    rgb = getattr(skimage.data, name)()[..., :3]
    rgb = (resize(rgb, (72, 96), anti_aliasing=True) * 255).round().astype(np.uint8)
    return rgb, rgb.astype(np.float64).mean(axis=2) / 255


def _classes(grey: np.ndarray) -> np.ndarray:
    """Train ids 0..CLASSES-1 from brightness bands: a real photo's regions, not noise."""
    return np.minimum((grey * CLASSES).astype(np.int64), CLASSES - 1)


@pytest.fixture(scope="module")
def ade_like(tmp_path_factory) -> dict:
    """An ADE20K-layout dataset (preset ade20k: 0 = "other", class k stored as k + 1) from real photos, and a
    "model"'s train-id predictions for it (the brightness bands of a blurred copy: wrong at region borders, as
    a real segmenter is)."""
    from scipy.ndimage import gaussian_filter, sobel

    root = tmp_path_factory.mktemp("ade")
    for folder in ("images/validation", "annotations/validation"):
        (root / folder).mkdir(parents=True)
    truth, predicted = {}, {}
    for k, name in enumerate(PHOTOS):
        stem = f"ADE_val_{k + 1:08d}"
        rgb, grey = _grey(name)
        Image.fromarray(rgb).save(root / "images/validation" / f"{stem}.jpg", quality=95)
        raw = _classes(grey) + 1
        raw[np.hypot(sobel(grey, 0), sobel(grey, 1)) > 0.9] = 0  # strong edges unlabelled ("other"), as in ADE
        Image.fromarray(raw.astype(np.uint8)).save(root / "annotations/validation" / f"{stem}.png")
        truth[stem] = raw
        predicted[stem] = _classes(gaussian_filter(grey, 2.5))
    dataset = {"name": "ade", "kind": "segfolder", "preset": "ade20k", "split": "validation", "root": str(root),
               "num_classes": CLASSES}
    return {"root": root, "dataset": dataset, "truth": truth, "predicted": predicted}


def write_like_mmseg_format_only(folder: Path, predicted: dict[str, np.ndarray]) -> Path:
    """What mmseg's IoUMetric writes with ``format_only`` / ``output_dir`` for a reduce_zero_label dataset
    (mmseg/evaluation/metrics/iou_metric.py): ``<image basename>.png`` in one flat folder, the train-id argmax
    plus one (``output_mask + 1``), ``Image.fromarray(output_mask.astype(np.uint8))``: an 8-bit grey PNG."""
    folder.mkdir()
    for stem, train_ids in predicted.items():
        Image.fromarray((train_ids + 1).astype(np.uint8)).save(folder / f"{stem}.png")
    return folder


def mmseg_miou(truth: dict[str, np.ndarray], written: dict[str, np.ndarray]) -> float:
    """mmseg's own pipeline on the same data: LoadAnnotations(reduce_zero_label=True) on both label maps
    (uint8: 0 -> 255, minus one, 254 -> 255), then IoUMetric.intersect_and_union (torch.histc over 0..C-1,
    ignore_index 255) summed over images and total_area_to_metrics' nan-mean of IoU."""
    def reduce(seg: np.ndarray) -> np.ndarray:
        seg = seg.astype(np.uint8).copy()
        seg[seg == 0] = 255
        seg = seg - 1
        seg[seg == 254] = 255
        return seg

    totals = np.zeros((3, CLASSES))
    for stem, raw in truth.items():
        label, pred = torch.from_numpy(reduce(raw)).long(), torch.from_numpy(reduce(written[stem])).long()
        mask = label != 255
        pred, label = pred[mask], label[mask]

        def hist(x):
            return torch.histc(x.float(), bins=CLASSES, min=0, max=CLASSES - 1).double().numpy()

        totals += [hist(pred[pred == label]), hist(pred), hist(label)]
    intersect, area_pred, area_label = totals
    with np.errstate(invalid="ignore"):
        return float(np.nanmean(intersect / (area_pred + area_label - intersect)))


def test_mmseg_format_only_files_score_as_mmseg_with_reduce_zero_label(tmp_path, ade_like):
    preds = write_like_mmseg_format_only(tmp_path / "format_only", ade_like["predicted"])
    written = {p.stem: np.asarray(Image.open(p)) for p in preds.glob("*.png")}
    assert Image.open(next(preds.glob("*.png"))).mode == "L" and min(v.min() for v in written.values()) >= 1
    suite = write_suite(tmp_path / "s.yaml", [saved("segformer_mmseg", preds, reduce_zero_label=True)],
                        ade_like["dataset"], [{"kind": "segmentation"}])
    outcome = run_suite(suite, out=tmp_path / "out", progress=False, report=False)
    assert not outcome.failed, outcome.failed
    rows = outcome.frame.set_index("metric")
    expected = mmseg_miou(ade_like["truth"], written)
    assert 0.3 < expected < 0.95
    assert abs(rows.loc["miou", "value"] - expected) <= 1e-12
    provenance = json.loads(rows.loc["miou", "provenance"])
    assert provenance["model"]["pipeline"] == {"label_convention": {"path": str(preds), "reduce_zero_label": True,
                                                                    "ignore_index": 255}}
    assert main(["rescore", str(tmp_path / "out")]) == 0


def test_mmseg_files_without_the_convention_are_refused_with_the_option(tmp_path, ade_like):
    """The files as mmseg writes them: the top class written as C is no class in 0..C-1, and the PNG reads as the
    labels + 1, so the message names the option."""
    preds = write_like_mmseg_format_only(tmp_path / "format_only", ade_like["predicted"])
    suite = write_suite(tmp_path / "s.yaml", [saved("segformer_mmseg", preds)], ade_like["dataset"],
                        [{"kind": "segmentation"}])
    outcome = run_suite(suite, out=tmp_path / "out", progress=False, report=False)
    (failure,) = outcome.failed
    assert re.fullmatch(
        rf"segformer_mmseg x ade x segmentation: PredictionsError: {re.escape(str(preds))}/ADE_val_\d+\.png: value "
        rf"{CLASSES} is not a class \(the dataset has classes 0\.\.{CLASSES - 1}\); it reads as the labels \+ 1 "
        rf"\(\d+% of pixels are label \+ 1, \d+% the label\): mmseg's format_only writes train id \+ 1 for "
        rf"reduce_zero_label datasets such as ADE20K: set 'reduce_zero_label: true' on the model entry",
        failure), failure


def test_a_prediction_set_shifted_by_one_is_refused_not_misscored(tmp_path, ade_like):
    """mmseg's files for a model that never predicts the last class: every value is a class, so only the
    histogram gives the convention away; scoring them as written would publish a near-zero mIoU."""
    never_top = {stem: np.minimum(p, CLASSES - 2) for stem, p in ade_like["predicted"].items()}
    preds = write_like_mmseg_format_only(tmp_path / "format_only", never_top)
    written = {p.stem: np.asarray(Image.open(p)) for p in preds.glob("*.png")}
    suite = write_suite(tmp_path / "s.yaml", [saved("segformer_mmseg", preds), saved("declared", preds,
                                                                                   reduce_zero_label=True)],
                        ade_like["dataset"], [{"kind": "segmentation"}])
    outcome = run_suite(suite, out=tmp_path / "out", progress=False, report=False)
    (failure,) = outcome.failed
    corrected = mmseg_miou(ade_like["truth"], written)
    match = re.fullmatch(
        rf"segformer_mmseg x ade x segmentation: LabelShiftError: {re.escape(str(preds))}: the label PNGs read as "
        r"the ground truth's classes shifted by \+1 \((\d+)% of the scored pixels are predicted as label \+ 1, "
        r"(\d+)% as the label; mIoU ([0-9.]+) as written, ([0-9.]+) with every value lowered by one\); mmseg's "
        r"format_only writes train id \+ 1 for reduce_zero_label datasets such as ADE20K: set "
        r"'reduce_zero_label: true' on model segformer_mmseg", failure)
    assert match, failure
    assert float(match[3]) < corrected / 3 and match[4] == f"{corrected:.4f}"
    declared = outcome.frame[(outcome.frame["model"] == "declared") & (outcome.frame["metric"] == "miou")]
    assert list(declared["status"]) == ["ok"] and abs(declared["value"].iloc[0] - corrected) <= 1e-12


def test_no_class_pixels_count_as_mmseg_counts_them(tmp_path, ade_like):
    """Under reduce_zero_label a written 0 means no class predicted (mmseg's reduction makes it 255): in the
    label's area, a miss, and in no class's predicted area; the records give the gate the same mIoU."""
    preds = write_like_mmseg_format_only(tmp_path / "format_only", ade_like["predicted"])
    written = {}
    for path in preds.glob("*.png"):
        values = np.asarray(Image.open(path)).copy()
        values[:, :20] = 0  # the model abstains on a strip
        Image.fromarray(values).save(path)
        written[path.stem] = values
    suite = write_suite(tmp_path / "s.yaml", [saved("abstains", preds, reduce_zero_label=True)], ade_like["dataset"],
                        [{"kind": "segmentation"}])
    outcome = run_suite(suite, out=tmp_path / "out", progress=False, report=False)
    assert not outcome.failed, outcome.failed
    miou = outcome.frame.set_index("metric").loc["miou", "value"]
    assert abs(miou - mmseg_miou(ade_like["truth"], written)) <= 1e-12
    full = mmseg_miou(ade_like["truth"], {s: p + 1 for s, p in ade_like["predicted"].items()})
    assert miou < full  # the strip costs: misses, not ignored pixels
    records = read_records(next((tmp_path / "out" / "samples").glob("*.jsonl.gz")))
    assert abs(scores_from_records([r for _, r in records.pass_records("main")], CLASSES)["miou"] - miou) <= 1e-12


@pytest.mark.parametrize("entry, message", [
    ({"reduce_zero_label": True, "path": "dets.json"},
     r"s\.yaml:\d+: models\[0\]\.reduce_zero_label: describes the labels of saved label PNGs: it applies to source "
     r"'predictions' with a folder 'path' \(semantic segmentation\)"),
    ({"ignore_index": 255, "source": "zoo", "arch": "centernet_resnet_scenes", "path": None},
     r"s\.yaml:\d+: models\[0\]\.ignore_index: describes the labels of saved label PNGs"),
    ({"ignore_index": 70000}, r"s\.yaml:\d+: models\[0\]\.ignore_index: must be a PNG value in 0\.\.65535, got 70000"),
    ({"reduce_zero_label": "yes"}, r"s\.yaml:\d+: models\[0\]\.reduce_zero_label: expected true or false, got 'yes'"),
])
def test_the_label_convention_is_checked_with_the_suite(tmp_path, entry, message):
    (tmp_path / "pngs").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "pngs" / "a.png")
    (tmp_path / "dets.json").write_text("[]")
    model = {k: v for k, v in {**saved("m", "pngs"), **entry}.items() if v is not None}
    suite = write_suite(tmp_path / "s.yaml", [model], {"name": "scenes", "kind": "scenes", "target": "semantic"},
                        [{"kind": "segmentation"}])
    with pytest.raises(SuiteError, match=message):
        load_suite(str(suite))
