"""PQ scoring time: the harness's vectorised ``PanopticEvaluator`` vs a straightforward per-image loop with
per-segment boolean masks implementing the same (panopticapi) rules, on the same images, same run.

    python benchmarks/bench_pq.py [--n 500] [--size 512] [--seed 0] [--quick]

Images: synthetic panoptic scenes (sky/grass stuff bands, 12-30 person/car rectangles, some crowd, VOID
borders and blobs); each prediction is the ground truth shifted by a few pixels with re-numbered segments,
some categories swapped and spurious segments added. Both sides score the same arrays, generated before
timing. The loop's per-image records must equal ours (counts exactly, IoU sums to 1e-12) and so must PQ.
Ratio = loop time / harness time (how many times faster the harness is; no goal, informational).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402

from harness.evaluation.evaluator import Outputs  # noqa: E402
from harness.evaluation.outputs import PanopticPrediction  # noqa: E402
from harness.evaluation.panoptic import VOID, PanopticEvaluator, pq_average, pq_totals  # noqa: E402
from harness.evaluation.samples import PanopticTarget  # noqa: E402

PERSON, CAR, SKY, GRASS = 1, 2, 3, 4
CATEGORIES = [{"id": PERSON, "name": "person", "isthing": 1}, {"id": CAR, "name": "car", "isthing": 1},
              {"id": SKY, "name": "sky", "isthing": 0}, {"id": GRASS, "name": "grass", "isthing": 0}]


def loop_pq_image(gt_map: np.ndarray, gt_segments: list[dict], pred_map: np.ndarray,
                  pred_segments: list[dict]) -> dict[str, list]:
    """The rules read directly: one boolean mask per segment, every same-category pair tried."""
    gt_info = {s["id"]: s for s in gt_segments}
    pred_info = {s["id"]: s for s in pred_segments}
    void = gt_map == VOID
    gt_masks = {i: gt_map == i for i in gt_info}
    pred_masks = {i: pred_map == i for i in pred_info}
    pred_area = {i: int(mask.sum()) for i, mask in pred_masks.items()}
    stats: dict[int, list] = {}

    def add(category: int, slot: int, value: float = 1) -> None:
        stats.setdefault(category, [0, 0, 0, 0.0])[slot] += value

    gt_matched, pred_matched = set(), set()
    for g, ginfo in gt_info.items():
        if ginfo.get("iscrowd", 0) == 1:
            continue
        gt_area = ginfo["area"] if "area" in ginfo else int(gt_masks[g].sum())
        for p, pinfo in pred_info.items():
            if pinfo["category_id"] != ginfo["category_id"]:
                continue
            intersection = int((gt_masks[g] & pred_masks[p]).sum())
            if intersection == 0:
                continue
            union = pred_area[p] + gt_area - intersection - int((void & pred_masks[p]).sum())
            if intersection / union > 0.5:
                add(ginfo["category_id"], 0)
                add(ginfo["category_id"], 3, intersection / union)
                gt_matched.add(g)
                pred_matched.add(p)
    crowd = {}
    for g, ginfo in gt_info.items():
        if g in gt_matched:
            continue
        if ginfo.get("iscrowd", 0) == 1:
            crowd[ginfo["category_id"]] = g
            continue
        add(ginfo["category_id"], 2)
    for p, pinfo in pred_info.items():
        if p in pred_matched:
            continue
        ignored = int((void & pred_masks[p]).sum())
        if pinfo["category_id"] in crowd:
            ignored += int((gt_masks[crowd[pinfo["category_id"]]] & pred_masks[p]).sum())
        if ignored / pred_area[p] > 0.5:
            continue
        add(pinfo["category_id"], 1)
    return {str(c): [int(v[0]), int(v[1]), int(v[2]), float(v[3])] for c, v in sorted(stats.items())}


def _segments(segment_map: np.ndarray, category: dict[int, int], crowd: set[int] = frozenset()) -> list[dict]:
    ids, counts = np.unique(segment_map, return_counts=True)
    return [{"id": int(i), "category_id": category[int(i)], "iscrowd": int(int(i) in crowd), "area": int(n)}
            for i, n in zip(ids, counts) if i != VOID]


def synthetic_image(rng: np.random.Generator, height: int, width: int):
    """(gt map, gt segments, pred map, pred segments) of one synthetic scene."""
    gt = np.empty((height, width), dtype=np.int64)
    horizon = int(rng.integers(height // 4, 3 * height // 4))
    gt[:horizon], gt[horizon:] = 1, 2
    category = {1: SKY, 2: GRASS}
    crowd: set[int] = set()
    for segment in range(3, 3 + int(rng.integers(12, 31))):
        h, w = int(rng.integers(height // 16, height // 3)), int(rng.integers(width // 16, width // 3))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        gt[y:y + h, x:x + w] = segment
        category[segment] = PERSON if rng.random() < 0.5 else CAR
        if rng.random() < 0.1:
            crowd.add(segment)
    for _ in range(int(rng.integers(1, 4))):  # VOID blobs and a border, as COCO's unlabelled pixels
        h, w = int(rng.integers(2, height // 5)), int(rng.integers(2, width // 5))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        gt[y:y + h, x:x + w] = VOID
    gt[:, :2] = VOID
    pred = np.roll(gt, (int(rng.integers(-height // 32, height // 32 + 1)),
                        int(rng.integers(-width // 32, width // 32 + 1))), axis=(0, 1))
    pred = np.where(pred == VOID, VOID, pred + 1000)
    pred_category = {i + 1000: c if rng.random() > 0.15 or c in (SKY, GRASS) else PERSON + CAR - c
                     for i, c in category.items()}
    for segment in range(5000, 5000 + int(rng.integers(0, 6))):  # spurious predictions
        h, w = int(rng.integers(2, height // 6)), int(rng.integers(2, width // 6))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        pred[y:y + h, x:x + w] = segment
        pred_category[segment] = int(rng.choice([PERSON, CAR, SKY]))
    return gt, _segments(gt, category, crowd), pred, _segments(pred, pred_category)


def configure(parser) -> None:
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)


def measure(args) -> list[Figure]:
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    images = [synthetic_image(rng, args.size, args.size) for _ in range(args.n)]
    ids = [f"img{i:04d}" for i in range(args.n)]
    targets = [PanopticTarget(torch.from_numpy(g), gs) for g, gs, _, _ in images]
    outputs = [PanopticPrediction(torch.from_numpy(p), ps) for _, _, p, ps in images]

    evaluator = PanopticEvaluator(CATEGORIES)
    start = time.perf_counter()
    states = [evaluator.process(SimpleNamespace(ids=ids[s:s + args.batch_size], targets=targets[s:s + args.batch_size]),
                                Outputs("clean", {"panoptic": outputs[s:s + args.batch_size]}))
              for s in range(0, args.n, args.batch_size)]
    ours_state = states[0]
    for state in states[1:]:
        ours_state.merge(state)
    ours_metrics = {m.name: m.value for m in evaluator.compute(ours_state) if m.name != "pq_class"}
    ours_time = time.perf_counter() - start

    start = time.perf_counter()
    loop_records = [loop_pq_image(*image) for image in images]
    mean, _ = pq_average(pq_totals(loop_records), evaluator.categories)
    loop_time = time.perf_counter() - start

    for sample_id, record in zip(ids, loop_records):
        ours = ours_state.records[sample_id]["clean"]
        assert ours.keys() == record.keys(), sample_id
        for key in ours:
            assert ours[key][:3] == record[key][:3] and abs(ours[key][3] - record[key][3]) < 1e-12, (sample_id, key)
    assert all(abs(ours_metrics[k] - mean[k]) < 1e-12 for k in ("pq", "sq", "rq")), (ours_metrics, mean)

    segments = sum(len(g) + len(p) for _, g, _, p in images)
    print(f"{args.n} images {args.size}x{args.size}, {segments / args.n:.1f} segments per image (gt + pred)")
    print(f"PQ {ours_metrics['pq']:.4f} SQ {ours_metrics['sq']:.4f} RQ {ours_metrics['rq']:.4f} "
          f"(things {ours_metrics['pq_things']:.4f}, stuff {ours_metrics['pq_stuff']:.4f}); identical records: yes")
    print(f"harness (vectorised): {ours_time:.2f} s ({1000 * ours_time / args.n:.1f} ms/image)")
    print(f"per-segment mask loop: {loop_time:.2f} s ({1000 * loop_time / args.n:.1f} ms/image)")
    print(f"ratio loop / harness: {loop_time / ours_time:.1f}x")
    return [Figure(f"per-segment mask loop time / harness, {args.n} img {args.size}x{args.size} (same records)",
                   loop_time / ours_time, unit="x", digits=1,
                   detail=f"harness {1000 * ours_time / args.n:.1f} vs loop {1000 * loop_time / args.n:.1f} ms/image")]


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"n": 8, "size": 128})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
