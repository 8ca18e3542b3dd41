"""The dense tasks' report sections, on real runs: detection (AP table, per-class AP heat map, PR curves against
pycocotools, mPC / rPC), segmentation and panoptic (per-class tables, PQ things/stuff, qualitative overlays)."""
from __future__ import annotations

import base64
import contextlib
import io
import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from markupsafe import escape
from PIL import Image

from harness.data.scenes import SEMANTIC_CLASSES, ScenesSource
from harness.evaluation.detection import BACKENDS, coco_evaluate
from harness.evaluation.panoptic import PanopticEvaluator, pq_average, pq_totals
from harness.evaluation.previews import IMAGE_SIDE, LABEL_SIDE, PREVIEW_COUNT, PREVIEW_KEY, label_png
from harness.evaluation.state import EvalState, read_meta, read_records, write_records
from harness.report.detection_figures import job_pr_curves
from harness.report.render import render_html
from harness.report.samples import samples_from
from harness.run import run_suite
from tests.evaluating import outputs_for

TOL = 1e-9
DETECTORS = [{"name": "centernet_resnet_scenes", "source": "zoo"}, {"name": "centernet_pvt_scenes", "source": "zoo"}]


def run(tmp_path_factory, name: str, suite: dict):
    folder = tmp_path_factory.mktemp(name)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    outcome = run_suite(path, out=folder / "out", progress=False)
    assert not outcome.failed, outcome.failed
    return folder / "out", outcome.frame, (folder / "out" / "index.html").read_text(encoding="utf-8")


def figure_after(html: str, title: str) -> str:
    """The HTML of the report section titled ``title`` (up to the next section)."""
    start = html.index(f"<h3>{escape(title)}</h3>")
    end = html.find('<div class="figure"', start + 1)
    return html[start:end if end > 0 else len(html)]


def hover_titles(svg: str) -> list[str]:
    return [t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for t in re.findall(r"<title>([^<]*)</title>", svg)]


def decode_png(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert image.format == "PNG"
    return image


# --- detection ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def detection_run(tmp_path_factory, one_thread_module):
    return run(tmp_path_factory, "det", {
        "name": "det", "version": 1, "defaults": {"batch_size": 20, "seed": 0}, "models": DETECTORS,
        "datasets": [{"name": "scenes-test", "kind": "scenes", "split": "test", "target": "detection"}],
        "tasks": [{"kind": "detection", "params": {"iou_types": ["bbox"], "n": 40}},
                  {"kind": "corruption", "params": {"corruptions": ["gaussian_noise", "brightness"],
                                                    "severities": [2], "n": 8}}]})


def reference_eval(out, job_key: str):
    """pycocotools' COCOeval on the run's own records: the job's ground truth and detections, its images only."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = out / "samples" / f"{job_key}.jsonl.gz"
    records = [r for _, r in read_records(path).pass_records("main")]
    truth = read_meta(path)["ground_truth"]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {**truth, "info": {}}
        gt.createIndex()
        dt = gt.loadRes([dict(r) for record in records for r in record["results"]])
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.params.imgIds = sorted(r["image_id"] for r in records)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation, {c["id"]: c["name"] for c in truth["categories"]}


def assert_curves_equal(recall: np.ndarray, curves: dict, ref) -> None:
    """PR curves at IoU 0.5 and 0.75 equal COCOeval's precision (all areas, 100 detections) averaged over the
    categories it is defined for, at each of its 101 recall thresholds."""
    assert np.array_equal(recall, ref.params.recThrs) and sorted(curves) == [0.5, 0.75]
    for iou, curve in curves.items():
        t = int(np.flatnonzero(np.isclose(ref.params.iouThrs, iou))[0])
        for r in range(len(recall)):
            values = ref.eval["precision"][t, r, :, 0, -1]
            values = values[values > -1]
            if values.size:
                assert abs(curve[r] - values.mean()) <= TOL, (iou, r)
            else:
                assert math.isnan(curve[r])


@pytest.mark.parametrize("case", ["crowd, empty image, category without ground truth, > 100 detections",
                                  "no detections"])
def test_pr_curves_equal_pycocotools_on_edge_cases(tmp_path, case):
    from tests.coco_reference import _typed, edge_ground_truth, edge_results, reference

    truth = edge_ground_truth()
    results = [] if case == "no detections" else _typed(edge_results(truth), "bbox")
    ref = reference(tmp_path, truth, results, "bbox")
    for backend in BACKENDS:
        summary = coco_evaluate(truth, results, [image["id"] for image in truth["images"]], "bbox", backend)
        assert_curves_equal(summary.recall, summary.pr_curves, ref)


def test_detection_report_pr_curves_and_class_ap_equal_pycocotools(detection_run):
    out, frame, html = detection_run
    rows = frame[(frame["task"] == "detection") & (frame["status"] == "ok")]
    assert rows["n"].max() == 40
    for job_key, part in rows.groupby("job_key"):
        ref, names = reference_eval(out, job_key)
        precision = ref.eval["precision"]
        assert abs(part.loc[part["metric"] == "map", "value"].iloc[0] - ref.stats[0]) <= TOL
        with samples_from(out / "samples"):  # what the report draws: the curves from the job's records
            recall, curves = job_pr_curves(job_key, "bbox")
        assert_curves_equal(recall, curves, ref)
        per_class = {p["category"]: v for p, v, m in zip(part["params"], part["value"], part["metric"])
                     if m == "ap_class"}
        for k, category in enumerate(ref.params.catIds):
            values = precision[:, :, k, 0, -1]
            assert abs(per_class[names[category]] - values[values > -1].mean()) <= TOL
    # the heat map shows exactly those per-class AP, one cell per model x category
    heat = figure_after(html, "Per-class AP (bbox; rows grouped by family)")
    cells = {}
    for title in hover_titles(heat):
        match = re.fullmatch(r"(\S+) \((\w+)\) / (\S+): ([0-9.]+)", title)
        if match:
            cells[(match[1], match[3])] = float(match[4])
    expected = {(m, p["category"]): v for m, p, v, metric in zip(rows["model"], rows["params"], rows["value"],
                                                                  rows["metric"]) if metric == "ap_class"}
    assert set(cells) == set(expected) and len({c for _, c in cells}) == 5
    assert all(abs(cells[key] - value) <= 5e-5 for key, value in expected.items())
    # PR curves: two panels, a line per model with its AP
    curves = figure_after(html, "Precision-recall at IoU 0.5 and 0.75 (bbox; COCO's interpolated precision, "
                                "mean over classes, 100 detections per image)")
    assert "IoU 0.5" in curves and "IoU 0.75" in curves
    lines = hover_titles(curves)
    assert sum(t.startswith("centernet_resnet_scenes (cnn), IoU 0.5:") for t in lines) == 1
    assert sum(t.startswith("centernet_pvt_scenes (transformer), IoU 0.75:") for t in lines) == 1


def test_detection_ap_table_has_one_row_per_model(detection_run):
    _, frame, html = detection_run
    table = figure_after(html, "AP by object size (bbox)")
    headings = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert headings == ["model", "family", "AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AR100"]
    models = re.findall(r'<tr data-model="([^"]+)"', table)
    assert sorted(models) == ["centernet_pvt_scenes", "centernet_resnet_scenes"]
    ap = frame[(frame["task"] == "detection") & (frame["metric"] == "map")].set_index("model")["value"]
    assert models[0] == ap.idxmax()  # best AP first
    assert f'data-value="{float(ap[models[0]])!r}"' in table


def test_mpc_and_rpc_by_family_from_the_dense_corruption_task(detection_run):
    _, frame, html = detection_run
    rows = frame[(frame["task"] == "corruption") & frame["metric"].isin(["mpc", "rpc"])]
    assert len(rows) == 4
    chart = figure_after(html, "Robustness by family: mPC and rPC of AP bbox")
    titles = hover_titles(chart)
    for row in rows.itertuples():
        name = "mPC" if row.metric == "mpc" else "rPC"
        assert any(t.startswith(f"{row.model} ({row.family}): {name} {row.value:.4f}") for t in titles), (row, titles)
    heat = hover_titles(figure_after(html, "AP bbox under each corruption (rows grouped by family)"))
    cells = frame[(frame["task"] == "corruption") & (frame["metric"] == "corruption_score")]
    assert len(cells) == 4 and len([t for t in heat if " / " in t]) == 4
    for row in cells.itertuples():
        short = {"gaussian_noise": "gauss", "brightness": "bright"}[row.params["corruption"]]
        assert f"{row.model} ({row.family}) / {short}: {row.value:.4f}" in heat


# --- semantic segmentation ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory, one_thread_module):
    segmenter = {"source": "torchvision", "arch": "lraspp_mobilenet_v3_large", "num_classes": len(SEMANTIC_CLASSES),
                 "preprocess": {"input_size": 96}}
    return run(tmp_path_factory, "seg", {
        "name": "seg", "version": 1, "defaults": {"batch_size": 4, "seed": 0},
        "models": [{"name": "lraspp_a", **segmenter}, {"name": "lraspp_b", "family": "transformer", **segmenter}],
        "datasets": [{"name": "scenes-sem", "kind": "scenes", "split": "test", "target": "semantic"}],
        "tasks": [{"kind": "segmentation", "params": {"n": 6}}]})


def overlay_table(html: str) -> tuple[list[str], dict[str, list[str]]]:
    """(column headings, sample id -> the base64 PNGs of its row) of the first overlays table."""
    table = html[html.index('<table class="overlays">'):]
    table = table[:table.index("</table>")]
    headings = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    rows = {sample: re.findall(r'src="data:image/png;base64,([^"]+)"', body)
            for sample, body in re.findall(r'<tr data-sample="([^"]+)">(.*?)</tr>', table)}
    return headings, rows


def test_segmentation_overlays_line_up_and_decode(segmentation_run):
    out, frame, html = segmentation_run
    headings, rows = overlay_table(html)
    assert headings == ["sample", "image", "ground truth", "lraspp_a cnn", "lraspp_b transformer"]
    jobs = frame.drop_duplicates("model").set_index("model")["job_key"]
    first = [sample for sample, _ in read_records(out / "samples" / f"{jobs['lraspp_a']}.jsonl.gz").pass_records("main")]
    assert list(rows) == first[:PREVIEW_COUNT]  # the first samples of the evaluated subset, in its order
    source = ScenesSource(split="test", target="semantic")
    index = {source.sample_id(i): i for i in range(len(source))}
    for sample, pngs in rows.items():
        assert len(pngs) == 4
        image, truth, *predictions = (decode_png(p) for p in pngs)
        assert image.mode == "P" and max(image.size) <= IMAGE_SIDE and image.size == (128, 128)
        assert len(base64.b64decode(pngs[0])) < 12_000
        assert truth.mode == "P" and truth.size == (128, 128) and max(truth.size) <= LABEL_SIDE
        expected = source.target(index[sample]).mask.numpy()
        assert np.array_equal(np.asarray(truth), expected)  # the palette PNG holds the class indices themselves
        assert all(p.mode == "P" and p.size == (128, 128) for p in predictions)
        assert np.asarray(predictions[0]).max() < len(SEMANTIC_CLASSES)
        assert len(base64.b64decode(pngs[1])) < 2500  # small: about 1-2 kB
    # only the previewed samples carry a preview; the rest of the records stay as they were
    records = dict(read_records(out / "samples" / f"{jobs['lraspp_b']}.jsonl.gz").pass_records("main"))
    assert [s for s, r in records.items() if PREVIEW_KEY in r] == list(rows)
    assert "sky" in figure_after(html, "Qualitative examples: input, ground truth and each model's prediction")


def test_segmentation_per_class_iou_table_is_collapsible(segmentation_run):
    _, frame, html = segmentation_run
    section = figure_after(html, "Per-class IoU")
    assert section.count("<details>") == 1 and "<summary>" in section
    headings = re.findall(r"<th[^>]*>([^<]*)</th>", section)
    classes = [h for h in headings[5:]]
    assert headings[:5] == ["model", "family", "mIoU", "mAcc", "aAcc"] and set(classes) <= set(SEMANTIC_CLASSES)
    stored = frame[frame["metric"] == "iou_class"]
    assert len(classes) == len({p["class"] for p in stored["params"]})
    for row in stored.itertuples():
        assert f'data-value="{float(row.value)!r}"' in section


def test_report_without_records_says_so_in_place(segmentation_run):
    _, frame, _ = segmentation_run
    html = render_html(frame, "no records")  # a frame rendered on its own: no run folder to read
    assert "no previews" in html and "Per-class IoU" in html


# --- panoptic (the task lands from another branch: its evaluator's real records, rows as the runner stores) ----
def panoptic_prediction(target, drop_first_thing: bool) -> SimpleNamespace:
    """The ground truth as a prediction, crowds dropped and, for one model, its first thing segment too."""
    segment_map = torch.as_tensor(target.segment_map).clone()
    kept = [dict(s) for s in target.segments if not s.get("iscrowd")]
    things = [s for s in kept if s["category_id"] < 12]
    if drop_first_thing and things:
        kept.remove(things[0])
    for segment in target.segments:
        if segment not in kept and all(segment["id"] != k["id"] for k in kept):
            segment_map[segment_map == segment["id"]] = 0
    return SimpleNamespace(segment_map=segment_map, segments=[{"id": s["id"], "category_id": s["category_id"]}
                                                              for s in kept])


def test_panoptic_sections_from_the_evaluator_records(tmp_path):
    source = ScenesSource(split="test", target="panoptic")
    categories = source.panoptic_categories()
    frames = []
    for j, (model, family) in enumerate([("pan_cnn", "cnn"), ("pan_vit", "transformer")]):
        evaluator = PanopticEvaluator(categories)
        state = EvalState()
        for start in (0, 4):
            samples = [source.load(i) for i in range(start, start + 4)]
            images = torch.stack([torch.from_numpy(np.array(s.image)).permute(2, 0, 1).float() / 255 for s in samples])
            batch = SimpleNamespace(ids=[s.id for s in samples], targets=[s.target for s in samples], images=images,
                                    indices=torch.arange(start, start + 4))
            state.merge(evaluator.process(batch, outputs_for(evaluator, [panoptic_prediction(s.target, j == 1) for s in samples], "main")))
        metrics = evaluator.compute(state)
        key = f"job{j}"
        write_records(tmp_path / "samples" / f"{key}.jsonl.gz", state, meta={"categories": categories}, job_key=key)
        frames.append(pd.DataFrame([{"job_key": key, "status": "ok", "model": model, "family": family, "arch": model,
                                     "dataset": "scenes-pan", "task": "panoptic", "task_kind": "panoptic",
                                     "metric": m.name, "params": m.params, "value": m.value, "n": m.n,
                                     "ci_low": None, "ci_high": None, "error": None, "provenance": "{}"}
                                    for m in metrics]))
        # the preview leaves the counts alone: the totals equal the records' without it
        plain = [{k: v for k, v in r.items() if k != PREVIEW_KEY} for _, r in state.pass_records("main")]
        assert pq_totals(plain) == pq_totals(r for _, r in state.pass_records("main"))
        mean, _ = pq_average(pq_totals(plain), evaluator.categories)
        assert math.isclose(next(m.value for m in metrics if m.name == "pq"), mean["pq"], abs_tol=1e-12)
    frame = pd.concat(frames, ignore_index=True)
    html = render_html(frame, "panoptic", tmp_path / "samples")
    chart = hover_titles(figure_after(html, "PQ of things and stuff by family"))
    for row in frame[frame["metric"].isin(["pq", "pq_things", "pq_stuff"])].itertuples():
        label = {"pq": "all", "pq_things": "things", "pq_stuff": "stuff"}[row.metric]
        assert f"{row.model} ({row.family}): PQ {label} {row.value:.4f}" in chart
    assert "<details>" in figure_after(html, "Per-class PQ")
    headings, rows = overlay_table(html)
    assert headings == ["sample", "image", "ground truth", "pan_cnn cnn", "pan_vit transformer"]
    assert list(rows) == [source.sample_id(i) for i in range(PREVIEW_COUNT)]
    for pngs in rows.values():
        image, truth, perfect, missing = (decode_png(p) for p in pngs)
        assert image.size == truth.size == (128, 128)
        assert np.asarray(truth).max() == 255  # VOID / crowd and segment borders are drawn black


def test_label_png_downscales_large_maps_to_the_label_side():
    labels = np.arange(512 * 256).reshape(256, 512) % 19
    image = decode_png(label_png(labels))
    assert image.size == (LABEL_SIDE, LABEL_SIDE // 2) and image.mode == "P"
    assert set(np.unique(np.asarray(image))) <= set(range(19))


def test_mpc_family_means_from_synthetic_rows():
    """Two CNNs and a transformer, AP (bbox and segm) and mIoU variants: one chart per variant, the CNNs' mean."""
    rows = []
    for model, family, mpc, rpc in (("r18", "cnn", 0.2, 0.5), ("r50", "cnn", 0.3, 0.7), ("vit", "transformer", 0.25, 0.8)):
        for metric, variant in (("map", {"iou_type": "bbox"}), ("map", {"iou_type": "segm"}), ("miou", {})):
            for name, value in (("mpc", mpc), ("rpc", rpc)):
                rows.append({"job_key": model, "status": "ok", "model": model, "family": family, "arch": model,
                             "dataset": "d", "task": "corruption", "task_kind": "corruption", "metric": name,
                             "params": {**variant, "metric": metric, "mode": "generated"}, "value": value, "n": 10,
                             "ci_low": None, "ci_high": None, "error": None, "provenance": "{}"})
    html = render_html(pd.DataFrame(rows), "synthetic")
    for label in ("AP bbox", "AP segm", "mIoU"):
        titles = hover_titles(figure_after(html, f"Robustness by family: mPC and rPC of {label}"))
        assert "cnn mean rPC 0.6000 (2 models)" in titles
        assert "vit (transformer): mPC 0.2500, clean 0.3125" in titles
        assert not any(t.startswith("transformer mean") for t in titles)  # a family of one: no mean line
