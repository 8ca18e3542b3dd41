"""Train the embedded detectors (one CenterNet head, ResNet vs PVT v2 backbone) on the scenes train split.

Seeded and CPU-only. A run is fixed by its number of optimiser steps; without ``--steps`` the script
times 10 steps and picks the number that fits ``--cpu-minutes`` of process time, generating the training
scenes included (recorded, so ``--steps N`` reproduces it). Writes ``harness/zoo/<name>.safetensors``
(float16) and the recipe with the test-split COCO scores of the SAVED weights to ``harness/zoo/detection_zoo.json``.

    python tools/train_detection_zoo.py --model centernet_resnet_scenes [--cpu-minutes 30] [--train-draws 5]
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.data.scenes import THINGS, ScenesSource, coco_annotations  # noqa: E402
from harness.evaluation.coco_format import xywh_to_xyxy  # noqa: E402
from harness.zoo.files import save_half_weights, write_metadata  # noqa: E402
from harness.evaluation.detection import score_on_scenes  # noqa: E402
from harness.zoo.detectors import DETECTORS, INPUT_SIZE, METADATA_FILE as METADATA, STRIDE  # noqa: E402

CATEGORY_IDS = list(THINGS)
GRID = INPUT_SIZE // STRIDE
MAX_OBJECTS = 32


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift keeping IoU >= ``min_overlap`` (three cases)."""
    b1, c1 = height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def build_targets(annotations: list[dict], flip: bool) -> dict[str, np.ndarray]:
    """Heatmap, crowd weight map and the padded per-object cell index / log size / offset of one image."""
    heat = np.zeros((len(CATEGORY_IDS), GRID, GRID), np.float32)
    weight = np.ones((GRID, GRID), np.float32)
    index = np.zeros(MAX_OBJECTS, np.int64)
    size = np.zeros((MAX_OBJECTS, 2), np.float32)
    offset = np.zeros((MAX_OBJECTS, 2), np.float32)
    valid = np.zeros(MAX_OBJECTS, np.float32)
    ys, xs = np.mgrid[0:GRID, 0:GRID]
    k = 0
    for ann in annotations:
        x0, y0, x1, y1 = xywh_to_xyxy(np.array(ann["bbox"]))[0]
        if flip:
            x0, x1 = INPUT_SIZE - x1, INPUT_SIZE - x0
        if ann["iscrowd"]:  # no loss inside crowd regions
            weight[int(y0 // STRIDE):int(math.ceil(y1 / STRIDE)), int(x0 // STRIDE):int(math.ceil(x1 / STRIDE))] = 0
            continue
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        cell_x, cell_y = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
        radius = max(0.0, gaussian_radius((y1 - y0) / STRIDE, (x1 - x0) / STRIDE))
        sigma = (2 * int(radius) + 1) / 6
        channel = CATEGORY_IDS.index(ann["category_id"])
        blob = np.exp(-((xs - cell_x) ** 2 + (ys - cell_y) ** 2) / (2 * sigma ** 2))
        heat[channel] = np.maximum(heat[channel], blob)
        if k < MAX_OBJECTS:
            index[k] = cell_y * GRID + cell_x
            size[k] = np.log([max(x1 - x0, 1.0), max(y1 - y0, 1.0)])
            offset[k] = [cx - cell_x, cy - cell_y]
            valid[k] = 1
            k += 1
    return {"heat": heat, "weight": weight, "index": index, "size": size, "offset": offset, "valid": valid}


def load_train(draws: int) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Images and (unflipped, flipped) targets of ``draws`` draws of the scenes train split (seeds 0, 1, ...):
    the generator gives fresh scenes for free, and none can equal a test scene (another split code)."""
    images, per_flip = [], ([], [])
    for seed in range(draws):
        source = ScenesSource("train", seed=seed, cache_size=1)
        for i in range(len(source)):
            scene = source.scene(i)
            annotations = coco_annotations(scene, source.image_id(i))
            images.append(scene.image)
            for flip, targets in zip((False, True), per_flip):
                targets.append(build_targets(annotations, flip))
    stacked = [{key: torch.from_numpy(np.stack([t[key] for t in targets])) for key in targets[0]}
               for targets in per_flip]
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))), stacked


def centernet_loss(outputs, target) -> torch.Tensor:
    heat_logits, size, offset = outputs
    prob = heat_logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    gt, weight = target["heat"], target["weight"][:, None]
    positive = gt.eq(1).float()
    focal = -(positive * (1 - prob) ** 2 * prob.log()
              + (1 - positive) * (1 - gt) ** 4 * prob ** 2 * (1 - prob).log()) * weight
    valid = target["valid"]
    n_pos = valid.sum().clamp(min=1)

    def gather(field: torch.Tensor) -> torch.Tensor:  # (N, 2, H, W) -> (N, M, 2) at object cells
        flat = field.flatten(2)
        return flat.gather(2, target["index"][:, None, :].expand(-1, 2, -1)).transpose(1, 2)

    size_loss = (F.l1_loss(gather(size), target["size"], reduction="none").sum(-1) * valid).sum() / n_pos
    offset_loss = (F.l1_loss(gather(offset), target["offset"], reduction="none").sum(-1) * valid).sum() / n_pos
    return focal.sum() / n_pos + size_loss + offset_loss


def train(name: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = DETECTORS[name].build(CATEGORY_IDS).to(memory_format=torch.channels_last)  # 1.1-1.3x faster on CPU
    start_cpu, start_wall = time.process_time(), time.time()  # generating the scenes counts too
    images, targets = load_train(args.train_draws)
    print(f"{name}: {len(images)} training scenes in {time.process_time() - start_cpu:.0f} CPU-s", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)

    def step(number: int, total: int) -> float:
        warmup = max(1, total // 30)
        lr = args.lr * (number / warmup if number < warmup else 0.5 * (1 + math.cos(math.pi * (number - warmup) / (total - warmup))))
        for group in optimizer.param_groups:
            group["lr"] = lr
        chosen = torch.from_numpy(rng.choice(len(images), args.batch_size, replace=False))
        flips = torch.from_numpy(rng.random(args.batch_size) < 0.5)
        batch = images[chosen].float() / 255
        batch[flips] = batch[flips].flip(-1)
        batch = batch.contiguous(memory_format=torch.channels_last)
        target = {key: torch.where(flips.view(-1, *[1] * (value.dim() - 1)), targets[1][key][chosen], value[chosen])
                  for key, value in targets[0].items()}
        loss = centernet_loss(model(batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    model.train()
    total = args.steps
    if total is None:  # calibrate on 10 steps (they count as the first steps of the run)
        calibration_cpu = time.process_time()
        for number in range(10):
            step(number, 10_000)
        per_step = (time.process_time() - calibration_cpu) / 10
        total = max(20, int((args.cpu_minutes * 60 - (time.process_time() - start_cpu)) / per_step))
        print(f"{name}: {per_step:.2f} CPU-s/step -> {total} steps", flush=True)
        first = 10
    else:
        first = 0
    steps_run = total
    for number in range(first, total):
        loss = step(number, total)
        if number % 100 == 0:
            print(f"{name}: step {number}/{total} loss {loss:.3f} ({time.time() - start_wall:.0f}s)", flush=True)
        if time.time() - start_wall > args.wall_minutes * 60:  # the schedule was cut short: say so
            print(f"{name}: wall-clock limit reached at step {number}", flush=True)
            steps_run = number + 1
            break
    cpu_seconds, wall_seconds = time.process_time() - start_cpu, time.time() - start_wall

    entry = DETECTORS[name]
    path = entry.weights_file
    save_half_weights(model, path)
    scores = {k: round(v, 4) for k, v in score_on_scenes(entry.load(CATEGORY_IDS), ScenesSource("test")).items()}
    print(f"{name}: test {scores}", flush=True)
    return {"arch": entry.arch, "family": entry.family, "head": f"centernet (stride {STRIDE})",
            "num_params": sum(p.numel() for p in model.parameters()),
            "recipe": {"seed": args.seed, "steps": total, "steps_run": steps_run, "batch_size": args.batch_size,
                       "lr": args.lr,
                       "optimizer": "adamw, weight decay 0.05", "schedule": "linear warmup 1/30, cosine to 0",
                       "augmentation": "horizontal flip",
                       "train_split": f"scenes train, seeds 0-{args.train_draws - 1} ({len(images)} images)",
                       "loss": "focal heatmap + L1 log size + L1 offset", "threads": torch.get_num_threads(),
                       "memory_format": "channels_last",
                       "torch_version": torch.__version__},
            "train_cpu_seconds": round(cpu_seconds, 1), "train_wall_seconds": round(wall_seconds, 1),
            "test_bbox": scores, "weights_dtype": "float16",
            "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=sorted(DETECTORS))
    parser.add_argument("--cpu-minutes", type=float, default=30, help="generating the scenes and the steps")
    parser.add_argument("--train-draws", type=int, default=5, help="draws of the 3,000-scene train split")
    parser.add_argument("--wall-minutes", type=float, default=50)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.model or sorted(DETECTORS):
        entry = train(name, args)
        write_metadata(METADATA, name, entry)


if __name__ == "__main__":
    main()
