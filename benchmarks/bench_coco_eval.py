"""COCO bbox scoring, 5,000 images x 100 detections: pycocotools' own pipeline vs the harness's evaluator.

Baseline: ``COCO`` + ``loadRes`` + ``COCOeval.evaluate/accumulate/summarize`` (pycocotools).
Ours: ``coco_results`` over per-image records + ``coco_evaluate`` with the faster-coco-eval backend.
Both run in this process on the same COCO-like data (80 categories with COCO's non-contiguous ids,
about 7 objects per image, 100 detections per image: jittered objects plus false positives). The goal is
>= 5x with identical stats (to 1e-12); the 12 stats of both are printed with their largest difference.

    python benchmarks/bench_coco_eval.py [--images 5000] [--detections 100] [--quick]
"""
from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402

from harness.evaluation.detection import coco_evaluate, coco_results  # noqa: E402

COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]  # COCO's 80


def make_data(n_images: int, n_dets: int, seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    images, annotations, records = [], [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "height": 480, "width": 640})
        k = int(rng.poisson(7))
        sizes = np.exp(rng.uniform(np.log(8), np.log(300), (k, 2)))
        corners = rng.uniform(0, 1, (k, 2)) * (np.array([640, 480]) - sizes)
        cats = rng.choice(COCO_IDS, k)
        for box, cat in zip(np.concatenate([corners, sizes], 1), cats):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cat),
                                "bbox": [float(v) for v in box], "area": float(box[2] * box[3]),
                                "iscrowd": int(rng.random() < 0.01)})
        results = []
        for box, cat in zip(np.concatenate([corners, sizes], 1), cats):
            if rng.random() < 0.8:
                jitter = rng.normal(0, 0.1, 4) * np.r_[box[2:], box[2:]]
                results.append({"image_id": image_id, "category_id": int(cat), "score": float(rng.uniform(0.3, 1)),
                                "bbox": [float(v) for v in np.r_[box[:2] + jitter[:2], np.maximum(box[2:] + jitter[2:], 1)]]})
        while len(results) < n_dets:
            w, h = np.exp(rng.uniform(np.log(4), np.log(400), 2))
            x, y = rng.uniform(0, 640 - min(w, 639)), rng.uniform(0, 480 - min(h, 479))
            results.append({"image_id": image_id, "category_id": int(rng.choice(COCO_IDS)),
                            "score": float(rng.uniform(0, 0.5)), "bbox": [float(x), float(y), float(w), float(h)]})
        records.append({"image_id": image_id, "masks": False, "results": results[:n_dets]})
    gt = {"info": {}, "images": images, "annotations": annotations,
          "categories": [{"id": c, "name": str(c)} for c in COCO_IDS]}
    return gt, records


def pycocotools_stats(gt: dict, results: list[dict]) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def configure(parser) -> None:
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--detections", type=int, default=100)


def measure(args) -> list[Figure]:
    gt, records = make_data(args.images, args.detections)
    image_ids = [r["image_id"] for r in records]
    print(f"{args.images} images, {len(gt['annotations'])} objects, {args.images * args.detections} detections")

    start = time.perf_counter()
    ours = coco_evaluate(gt, coco_results(records, "bbox"), image_ids, "bbox", "faster_coco_eval",
                         copy_results=False).stats
    ours_s = time.perf_counter() - start

    baseline_results = coco_results(records, "bbox")  # plain result dicts, built outside the timing
    start = time.perf_counter()
    reference = pycocotools_stats(gt, baseline_results)
    base_s = time.perf_counter() - start

    difference = float(np.abs(reference - np.asarray(ours)).max())
    print(f"pycocotools: {base_s:.1f}s   ours (faster-coco-eval): {ours_s:.1f}s   "
          f"ratio {base_s / ours_s:.1f}x (goal >= 5x)")
    print("stats (pycocotools):", np.round(reference, 6).tolist())
    print(f"largest |difference| of the 12 stats: {difference:.3g}")
    what = f"{args.images} img x {args.detections} det"
    return [
        Figure(f"pycocotools time / ours (faster-coco-eval), {what}", base_s / ours_s, unit="x", at_least=5.0,
               digits=1, detail=f"{base_s:.2f} s vs {ours_s:.2f} s"),
        Figure("largest |difference| of the 12 stats vs pycocotools", difference, at_most=1e-12,
               goal_note="<= 1e-12 (identical)", digits=None),
    ]


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"images": 200, "detections": 20})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
