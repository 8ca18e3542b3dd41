"""Panoptic-from-semantic time: ``panoptic_from_semantic`` (one ``scipy.ndimage.label`` per thing class
present, one lookup to renumber) vs a straightforward loop with scikit-image's labelling and one boolean
mask per component, on the same label maps, same run.

    python benchmarks/bench_panoptic_from_semantic.py [--n 10] [--size 256] [--classes 133] [--seed 0] [--quick]

Label maps: smooth random fields quantised into ``--classes`` classes (the first 80 things, as COCO
panoptic's 80 things + 53 stuff), so classes form blobs of many sizes with speckle between them. Both
sides must give the same segments (category and pixel set). Ratio = loop time / harness time (no goal,
informational).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage.measure import label as skimage_label  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402

from harness.evaluation.panoptic_from_semantic import panoptic_from_semantic  # noqa: E402


def label_maps(n: int, size: int, classes: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(n):
        field = ndimage.zoom(rng.random((size // 16, size // 16)), 16, order=1)[:size, :size]
        noise = ndimage.gaussian_filter(rng.random((size, size)), 2)
        maps.append(np.floor((0.8 * field + 0.2 * noise) % 1.0 * classes).astype(np.int64))
    return maps


def loop(labels: np.ndarray, category_ids: list[int], isthing: dict[int, bool], min_area: int) -> list:
    """The method read directly: per class, per component, a boolean mask and its area."""
    segments = []
    for index in np.unique(labels).tolist():
        mask = labels == index
        parts = skimage_label(mask, connectivity=2) if isthing[category_ids[index]] else mask.astype(int)
        for part in range(1, parts.max() + 1):
            component = parts == part
            if component.sum() >= max(min_area, 1):
                segments.append((category_ids[index], component))
    return segments


def same_segments(prediction, reference: list) -> bool:
    """The same partition into segments (a one-to-one pairing of ids, VOID with VOID) with the same categories."""
    segment_map = prediction.segment_map.numpy()
    reference_map = np.zeros(segment_map.shape, dtype=np.int64)
    category = {0: None}
    for k, (category_id, mask) in enumerate(reference, start=1):
        reference_map[mask] = k
        category[k] = category_id
    ours = {0: None, **{s["id"]: s["category_id"] for s in prediction.segments}}
    pairs = np.unique(np.stack([segment_map.ravel(), reference_map.ravel()]), axis=1)
    one_to_one = len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1] == len(ours) == len(category)
    return one_to_one and all(ours[a] == category[b] for a, b in pairs.T.tolist())


def configure(parser) -> None:
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=133)
    parser.add_argument("--min-area", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)


def measure(args) -> list[Figure]:
    torch.set_num_threads(1)
    maps = label_maps(args.n, args.size, args.classes, args.seed)
    category_ids = list(range(1, args.classes + 1))
    isthing = {c: c <= 80 for c in category_ids}

    start = time.perf_counter()
    ours = [panoptic_from_semantic(m, category_ids, isthing, args.min_area) for m in maps]
    harness_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = [loop(m, category_ids, isthing, args.min_area) for m in maps]
    loop_seconds = time.perf_counter() - start

    for prediction, reference in zip(ours, theirs):
        assert same_segments(prediction, reference), "segments differ"
    segments = sum(len(p.segments) for p in ours)
    print(f"{args.n} label maps {args.size}x{args.size}, {args.classes} classes, {segments / args.n:.0f} segments "
          f"per image: harness {harness_seconds / args.n * 1e3:.1f} ms/image, loop {loop_seconds / args.n * 1e3:.1f} "
          f"ms/image, ratio {loop_seconds / harness_seconds:.1f}x (same segments)")
    return [Figure(f"scikit-image mask loop time / harness, {args.n} maps {args.size}x{args.size}, {args.classes} "
                   "classes (same segments)", loop_seconds / harness_seconds, unit="x", digits=1,
                   detail=f"harness {harness_seconds / args.n * 1e3:.1f} vs loop {loop_seconds / args.n * 1e3:.1f} "
                          "ms/image")]


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"n": 2, "size": 96})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
