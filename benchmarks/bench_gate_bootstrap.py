"""The gate's mAP paired bootstrap: 1,000 resamples over 5,000 images on one core (goal <= 10 s), and the same
Comparison (difference, interval, p) as a full COCOeval of every draw.

    python benchmarks/bench_gate_bootstrap.py [--images 5000] [--resamples 1000] [--check-images 200]
        [--check-resamples 40] [--quick]

Records: seeded synthetic COCO-style images (1-12 objects of 5 categories, sizes from small to large, a
detection per object with jittered boxes and scores plus false positives; a second "model" with wider
jitter), as the detection evaluator keeps them. Timed: ``harness.gate.stats.paired_bootstrap`` on the two
statistics ``DetectionEvaluator.evidence`` gives (``coco_bootstrap.fast_bbox_statistic``), preparation
included. Parity: on ``--check-images`` images both statistics and a bootstrap of ``--check-resamples`` draws
are recomputed with a full COCOeval per draw (``detection.coco_bbox_statistic``, the previous gate path);
the figure is the largest difference, and the per-draw cost of the full path, extrapolated to the timed
size, is shown beside the timing.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402

from harness.evaluation.coco_bootstrap import fast_bbox_statistic  # noqa: E402
from harness.evaluation.detection import COCO_STATS, coco_bbox_statistic  # noqa: E402
from harness.gate.stats import paired_bootstrap  # noqa: E402


def configure(parser) -> None:
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--check-images", type=int, default=200)
    parser.add_argument("--check-resamples", type=int, default=40)


def synthetic_records(images: int, jitter: float, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)  # the same scenes for both models: only the detections' noise differs
    noise = np.random.default_rng(seed + int(jitter * 1000))
    records = []
    for _ in range(images):
        gt, dt = [], []
        for _ in range(int(rng.integers(1, 13))):
            w, h = float(rng.uniform(8, 200)), float(rng.uniform(8, 200))
            x, y = float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h))
            category = int(rng.integers(1, 6))
            gt.append({"bbox": [x, y, w, h], "category_id": category, "iscrowd": 0, "area": w * h})
            if noise.uniform() < 0.85:  # found
                d = noise.normal(0, jitter, 4) * [w, h, w, h]
                dt.append({"bbox": [x + d[0], y + d[1], max(1.0, w + d[2]), max(1.0, h + d[3])],
                           "category_id": category, "score": float(noise.uniform(0.3, 1.0))})
        for _ in range(int(noise.integers(0, 4))):  # false positives
            dt.append({"bbox": [float(noise.uniform(0, 560)), float(noise.uniform(0, 400)), 40.0, 40.0],
                       "category_id": int(noise.integers(1, 6)), "score": float(noise.uniform(0.0, 0.7))})
        records.append({"gt": gt, "results": dt, "width": 640, "height": 480})
    return records


def bootstrap(statistic_of, base: list[dict], new: list[dict], resamples: int):
    index = COCO_STATS["map"]
    return paired_bootstrap(len(base), statistic_of(base, index), statistic_of(new, index), resamples, seed=0)


def measure(args) -> list[Figure]:
    base, new = synthetic_records(args.images, 0.05), synthetic_records(args.images, 0.08)
    begin = time.perf_counter()
    fast = bootstrap(fast_bbox_statistic, base, new, args.resamples)
    seconds = time.perf_counter() - begin
    small_base, small_new = base[:args.check_images], new[:args.check_images]
    fast_small = bootstrap(fast_bbox_statistic, small_base, small_new, args.check_resamples)
    begin = time.perf_counter()
    full_small = bootstrap(coco_bbox_statistic, small_base, small_new, args.check_resamples)
    per_draw = (time.perf_counter() - begin) / (args.check_resamples + 1) * args.images / args.check_images
    differences = [abs(a - b) for a, b in zip((fast_small.diff, fast_small.ci_low, fast_small.ci_high),
                                              (full_small.diff, full_small.ci_low, full_small.ci_high))]
    same_p = fast_small.p_value == full_small.p_value
    print(f"{args.images} images, {args.resamples} resamples: {seconds:.2f} s (diff {fast.diff:+.4f}, "
          f"95% CI {fast.ci_low:+.4f} .. {fast.ci_high:+.4f}, p {fast.p_value:.3g}); a full COCOeval per draw "
          f"would take about {per_draw * (args.resamples + 1):.0f} s")
    return [
        Figure(f"mAP paired bootstrap, {args.resamples} resamples over {args.images} images (one core)", seconds,
               "s", at_most=10.0, digits=2,
               detail=f"a full COCOeval per draw: ~{per_draw * (args.resamples + 1):.0f} s"),
        Figure(f"fast vs full-COCOeval bootstrap on {args.check_images} images x {args.check_resamples} draws: "
               "largest difference of diff / interval", max(differences), at_most=1e-12, digits=None,
               detail="same p" if same_p else f"p {fast_small.p_value} vs {full_small.p_value}"),
    ]


BENCHMARK = Benchmark(__doc__, configure, measure,
                      quick={"images": 300, "resamples": 50, "check_images": 30, "check_resamples": 5})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
