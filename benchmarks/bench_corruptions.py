"""Corruption costs on the embedded 32x32 digits, and what the cross-model cache saves.

    python benchmarks/bench_corruptions.py [--images 100] [--subset-images 150] [--quick]

1. ms per image for every corruption x severity (imagecorruptions only, after numba's one-off compile);
2. a corruption subset for the 4 zoo models through the runner, with the in-process cache and without it
   (cache_mb: 0, the bare baseline), timed in the same process; prints the ratio.

No goal: the figures are informational. A job that fails in the suite runs fails the benchmark.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402

from harness.data.digits import digits_arrays  # noqa: E402
from harness.robustness.corruptions import ALL, SEVERITIES, corrupt_array, sample_seed  # noqa: E402
from harness.run import run_suite  # noqa: E402

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


def suite_seconds(n: int, corruptions: list[str], cache_mb: int, out: Path,
                  models: list[str] = MODELS) -> tuple[float, float]:
    suite = {"name": "bench-corruption", "version": 1, "defaults": {"batch_size": 128, "seed": 0},
             "models": [{"name": m, "source": "zoo"} for m in models],
             "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": n, "seed": 0}}],
             "tasks": [{"kind": "corruption", "params": {"corruptions": corruptions, "cache_mb": cache_mb}}]}
    path = out / f"suite_{cache_mb}.yaml"
    path.write_text(yaml.safe_dump(suite))
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = run_suite(path, out=out / f"run_{cache_mb}", progress=False, report=False, rerun=True)
    if outcome.failed:
        raise RuntimeError("jobs failed:\n  " + "\n  ".join(outcome.failed))
    return time.perf_counter() - wall, time.process_time() - cpu


def configure(parser) -> None:
    parser.add_argument("--images", type=int, default=100, help="images per corruption x severity in part 1")
    parser.add_argument("--subset-images", type=int, default=150, help="images per job in part 2")
    parser.add_argument("--subset", type=int, default=len(SUBSET), help=f"the first N of the {len(SUBSET)} "
                        "corruptions of part 2")
    parser.add_argument("--models", type=int, default=len(MODELS), help=f"the first N of {', '.join(MODELS)}")


def measure(args) -> list[Figure]:
    subset, models = SUBSET[: args.subset], MODELS[: args.models]
    images = digits_arrays()["test"][0][: args.images]
    table = per_corruption(images)
    print(f"ms per 32x32 image ({args.images} images), severities 1..5:")
    for name, row in table.items():
        print(f"  {name:18s}" + "".join(f"{v:7.2f}" for v in row) + f"   mean {np.mean(row):6.2f}")
    cells = sum(np.mean(table[c]) for c in subset) * 5 * args.subset_images / 1e3
    print(f"corrupting the subset once ({len(subset)} corruptions x 5 severities x {args.subset_images} images): "
          f"{cells:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        suite_seconds(8, ["contrast"], 0, Path(tmp), models)  # warm-up: imports, model files
        bare = suite_seconds(args.subset_images, subset, 0, Path(tmp), models)
        cached = suite_seconds(args.subset_images, subset, 512, Path(tmp), models)
    what = f"{len(models)} models x {len(subset)} corruptions x 5 severities x {args.subset_images} images"
    print(f"{what} (+ clean):")
    print(f"  no cache (bare): {bare[0]:6.1f} s wall, {bare[1]:6.1f} s CPU")
    print(f"  cache          : {cached[0]:6.1f} s wall, {cached[1]:6.1f} s CPU   "
          f"speed-up x{bare[0] / cached[0]:.2f} wall, x{bare[1] / cached[1]:.2f} CPU")
    slowest = max(table, key=lambda name: np.mean(table[name]))
    return [
        Figure(f"ms per 32x32 image, mean of {len(table)} corruptions x 5 severities",
               float(np.mean([np.mean(row) for row in table.values()])), unit="ms", digits=2,
               detail=f"slowest {slowest} {np.mean(table[slowest]):.2f} ms"),
        Figure(f"cache speed-up, wall, no cache / cache ({what})", bare[0] / cached[0], unit="x", digits=2,
               detail=f"{bare[0]:.1f} s vs {cached[0]:.1f} s"),
        Figure("cache speed-up, CPU, no cache / cache", bare[1] / cached[1], unit="x", digits=2,
               detail=f"{bare[1]:.1f} s vs {cached[1]:.1f} s"),
    ]


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"images": 1, "subset_images": 8, "subset": 2, "models": 2})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
