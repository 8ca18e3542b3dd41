"""Write the embedded scenes data in COCO layout (images, instances json, panoptic json + PNGs, semantic PNGs).

    python tools/make_scenes.py OUT_DIR [--split test --split train] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.data.scenes import SPLITS, ScenesSource  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--split", action="append", choices=sorted(SPLITS), help="default: test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for split in args.split or ["test"]:
        start = time.perf_counter()
        source = ScenesSource(split=split, seed=args.seed)
        paths = source.export(args.out_dir)
        print(f"{split}: {len(source)} images in {time.perf_counter() - start:.1f}s -> {paths['instances']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
