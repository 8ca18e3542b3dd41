"""Train the embedded semantic segmenters (one FPN head, ResNet vs PVT v2 backbone) on the scenes train split.

Seeded and CPU-only. Without ``--steps`` a run lasts ``--cpu-seconds`` of process time (all threads
counted) or, on a shared machine, ``--wall-seconds``, whichever runs out first: the learning-rate schedule follows the used
fraction of the budget, and the steps run are recorded (``--steps N`` reruns a step-based schedule of the
same length). The train split is rendered once into a tensor cache.

Writes ``harness/zoo/<name>.safetensors`` (float16) and the recipe, with the test-split scores of the SAVED
weights, to ``harness/zoo/segmentation_zoo.json``: mIoU / mAcc / aAcc and per-class IoU (the harness's
mmseg-convention confusion matrix), and a PQ estimate from a simple panoptic conversion (stuff from the
semantic map, things as 8-connected components of each thing class).

    python tools/train_segmentation_zoo.py --model fpn_resnet_scenes [--cpu-seconds 1800] [--wall-seconds 2700]
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.data.scenes import (GENERATOR_VERSION, IGNORE_INDEX, SEMANTIC_CATEGORY_IDS, STUFF,  # noqa: E402
                                 ScenesSource)
from harness.evaluation.panoptic import as_categories, pq_average, pq_image, pq_totals  # noqa: E402
from harness.evaluation.semantic import confusion_matrix, scores_from_confusion  # noqa: E402
from harness.zoo.files import save_half_weights, write_metadata  # noqa: E402
from harness.zoo.segmenters import MEAN, METADATA_FILE, NUM_CLASSES, SEGMENTERS, STD  # noqa: E402

DEFAULT_CACHE = Path.home() / ".cache" / "visionbench" / f"scenes_train_semantic_v{GENERATOR_VERSION}.pt"


def load_split(split: str, cache: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 128, 128) uint8 images and (N, 128, 128) uint8 semantic labels, cached as plain tensors."""
    if cache is not None and cache.exists():
        data = torch.load(cache, weights_only=True)
        return data["images"], data["labels"]
    source = ScenesSource(split, target="semantic", cache_size=1)
    scenes = [source.scene(i) for i in range(len(source))]
    images = torch.from_numpy(np.stack([s.image for s in scenes]).transpose(0, 3, 1, 2).copy())
    labels = torch.from_numpy(np.stack([s.semantic() for s in scenes]))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"images": images, "labels": labels}, cache)
    return images, labels


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def semantic_to_panoptic(labels: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Stuff segments straight from the semantic map; one thing segment per 8-connected component."""
    segment_map = np.zeros(labels.shape, np.int64)
    segments = []
    for train_id, category in enumerate(SEMANTIC_CATEGORY_IDS):
        mask = labels == train_id
        if not mask.any():
            continue
        if category in STUFF:
            segment_map[mask] = category * 1000
            segments.append({"id": category * 1000, "category_id": category})
            continue
        count, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        for k in range(1, count):
            segment_map[components == k] = category * 1000 + k
            segments.append({"id": category * 1000 + k, "category_id": category})
    return segment_map, segments


@torch.no_grad()
def score(model: torch.nn.Module, batch_size: int = 100) -> dict:
    """Test-split mIoU / mAcc / aAcc / per-class IoU and the connected-components PQ estimate."""
    model.eval()
    source = ScenesSource("test", target="panoptic")
    categories = as_categories(source.panoptic_categories())
    matrix = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64)
    records = []
    for start in range(0, len(source), batch_size):
        scenes = [source.scene(i) for i in range(start, min(start + batch_size, len(source)))]
        images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2)
        predictions = model(normalise(images)).argmax(1)
        for scene, prediction in zip(scenes, predictions):
            matrix += confusion_matrix(prediction, torch.from_numpy(scene.semantic()), NUM_CLASSES, IGNORE_INDEX)
            gt_map, gt_segments = scene.panoptic()
            records.append(pq_image(gt_map, gt_segments, *semantic_to_panoptic(prediction.numpy())))
    scores = scores_from_confusion(matrix.numpy())
    totals = pq_totals(records)
    pq = {f"{key}{suffix}": round(pq_average(totals, categories, isthing)[0][key], 4)
          for suffix, isthing in (("", None), ("_things", True), ("_stuff", False)) for key in ("pq", "sq", "rq")}
    return {"miou": round(float(scores["miou"]), 4), "macc": round(float(scores["macc"]), 4),
            "aacc": round(float(scores["aacc"]), 4),
            "iou_class": [round(float(v), 4) for v in scores["iou"]], "pq_estimate": pq}


def train(name: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    entry = SEGMENTERS[name]
    model = entry.build()
    images, labels = load_split("train", None if args.no_cache else args.cache)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)

    def step(progress: float) -> float:
        """One optimiser step at ``progress`` in [0, 1] of the run: linear warmup over 3 %, cosine to 0."""
        lr = args.lr * (progress / 0.03 if progress < 0.03 else 0.5 * (1 + math.cos(math.pi * (progress - 0.03) / 0.97)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        chosen = torch.from_numpy(rng.choice(len(images), args.batch_size, replace=False))
        flips = torch.from_numpy(rng.random(args.batch_size) < 0.5)
        batch, target = normalise(images[chosen]), labels[chosen].long()
        batch[flips], target[flips] = batch[flips].flip(-1), target[flips].flip(-1)
        loss = F.cross_entropy(model(batch), target, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    model.train()
    start_cpu, start_wall = time.process_time(), time.time()

    def progress(number: int) -> float:
        """With ``--steps`` the fraction of steps done; else the larger fraction of the CPU or wall budget used
        (the machine is shared: the cosine then ends when the budget does, wherever that falls)."""
        if args.steps is not None:
            return number / args.steps
        return max((time.process_time() - start_cpu) / args.cpu_seconds,
                   (time.time() - start_wall) / args.wall_seconds if args.wall_seconds else 0.0)

    number = 0
    while (done := progress(number)) < 1:
        loss = step(done)
        if number % 100 == 0:
            print(f"{name}: step {number} ({done:.0%}) loss {loss:.3f} (cpu {time.process_time() - start_cpu:.0f}s, "
                  f"wall {time.time() - start_wall:.0f}s)", flush=True)
        number += 1
    cpu_seconds, wall_seconds = time.process_time() - start_cpu, time.time() - start_wall

    path = entry.weights_file
    save_half_weights(model, path)
    scores = score(entry.load())
    print(f"{name}: test {scores}", flush=True)
    return {"arch": entry.arch, "family": entry.family,
            "head": "FPN (strides 4-32 summed at stride 4) + stride-2 image detail branch",
            "num_params": sum(p.numel() for p in model.parameters()),
            "recipe": {"seed": args.seed, "steps_run": number, "batch_size": args.batch_size, "lr": args.lr,
                       "budget": ({"steps": args.steps} if args.steps is not None else
                                  {"cpu_seconds": args.cpu_seconds, "wall_seconds": args.wall_seconds}),
                       "optimizer": "adamw, weight decay 0.05",
                       "schedule": "linear warmup over 3 % of the budget, cosine to 0 at its end",
                       "augmentation": "horizontal flip", "train_split": "scenes train (3000 images)",
                       "loss": "cross-entropy, ignore 255", "threads": torch.get_num_threads(),
                       "torch_version": torch.__version__},
            "train_cpu_seconds": round(cpu_seconds, 1), "train_wall_seconds": round(wall_seconds, 1),
            "test_semantic": {k: v for k, v in scores.items() if k != "pq_estimate"},
            "test_panoptic_estimate": {"method": "stuff from the semantic map, things as 8-connected components",
                                       **scores["pq_estimate"]},
            "weights_dtype": "float16", "weights_bytes": path.stat().st_size,
            "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=sorted(SEGMENTERS))
    parser.add_argument("--cpu-seconds", type=float, default=1800)
    parser.add_argument("--wall-seconds", type=float, help="also stop at this much wall-clock time")
    parser.add_argument("--steps", type=int, help="a fixed number of steps instead of a time budget")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="tensor cache of the rendered train split")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="train and score, but write no metadata")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.model or sorted(SEGMENTERS):
        entry = train(name, args)
        if args.dry_run:
            continue
        write_metadata(METADATA_FILE, name, entry)


if __name__ == "__main__":
    main()
