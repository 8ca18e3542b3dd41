"""Corruption costs on the embedded 32x32 digits, and what the cross-model cache saves.

    python benchmarks/bench_corruptions.py [--images 100] [--subset-images 150]

1. ms per image for every corruption x severity (imagecorruptions only, after numba's one-off compile);
2. a corruption subset for the 4 zoo models through the runner, with the in-process cache and without it
   (cache_mb: 0, the bare baseline), timed in the same process; prints the ratio.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from harness.data.digits import digits_arrays
from harness.robustness.corruptions import ALL, SEVERITIES, corrupt_array, sample_seed
from harness.runner import run_suite

SUBSET = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "snow", "fog",
          "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression"]
MODELS = ["resnet_digits", "convnext_digits", "vit_digits", "swin_digits"]


def per_corruption(images: np.ndarray) -> dict[str, list[float]]:
    corrupt_array(images[0], "glass_blur", 1, 0)  # numba compiles glass_blur's kernel on first use
    table = {}
    for name in ALL:
        row = []
        for severity in SEVERITIES:
            start = time.perf_counter()
            for i, image in enumerate(images):
                corrupt_array(image, name, severity, sample_seed(0, name, severity, i))
            row.append((time.perf_counter() - start) / len(images) * 1e3)
        table[name] = row
    return table


def suite_seconds(n: int, corruptions: list[str], cache_mb: int, out: Path) -> tuple[float, float]:
    suite = {"name": "bench-corruption", "version": 1, "defaults": {"batch_size": 128, "seed": 0},
             "models": [{"name": m, "source": "zoo"} for m in MODELS],
             "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": n, "seed": 0}}],
             "tasks": [{"kind": "corruption", "params": {"corruptions": corruptions, "cache_mb": cache_mb}}]}
    path = out / f"suite_{cache_mb}.yaml"
    path.write_text(yaml.safe_dump(suite))
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = run_suite(path, out=out / f"run_{cache_mb}", progress=False, report=False, rerun=True)
    if outcome.failed:
        print("  failed:", *outcome.failed, sep="\n    ")
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--subset-images", type=int, default=150)
    args = parser.parse_args()
    images = digits_arrays()["test"][0][: args.images]
    table = per_corruption(images)
    print(f"ms per 32x32 image ({args.images} images), severities 1..5:")
    for name, row in table.items():
        print(f"  {name:18s}" + "".join(f"{v:7.2f}" for v in row) + f"   mean {np.mean(row):6.2f}")
    cells = sum(np.mean(table[c]) for c in SUBSET) * 5 * args.subset_images / 1e3
    print(f"corrupting the subset once ({len(SUBSET)} corruptions x 5 severities x {args.subset_images} images): "
          f"{cells:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        suite_seconds(8, ["contrast"], 0, Path(tmp))  # warm-up: imports, model files
        bare = suite_seconds(args.subset_images, SUBSET, 0, Path(tmp))
        cached = suite_seconds(args.subset_images, SUBSET, 512, Path(tmp))
    print(f"4 models x {len(SUBSET)} corruptions x 5 severities x {args.subset_images} images (+ clean):")
    print(f"  no cache (bare): {bare[0]:6.1f} s wall, {bare[1]:6.1f} s CPU")
    print(f"  cache          : {cached[0]:6.1f} s wall, {cached[1]:6.1f} s CPU   "
          f"speed-up x{bare[0] / cached[0]:.2f} wall, x{bare[1] / cached[1]:.2f} CPU")


if __name__ == "__main__":
    main()
