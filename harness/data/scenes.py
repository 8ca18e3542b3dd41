"""The embedded ``scenes`` data: procedural street/indoor scenes with COCO instances, semantic and panoptic
ground truth, all derived from the same draw. No files and no network.

What a scene holds (128 x 128 RGB):
- **stuff** backgrounds, three classes: ``sky`` (vertical colour gradient with clouds), ``wall`` (a plain
  or brick-textured wall: indoor back walls and street buildings) and ``ground`` (grass / sand / asphalt /
  soil noise textures), split by a tilted, slightly wavy horizon line;
- 0-6 **things** of five categories — ``disc`` (1), ``rectangle`` (2), ``triangle`` (3), ``star`` (5),
  ``cross`` (7): non-contiguous ids, as COCO's, so a re-indexing bug shows — with random colour, size
  (10 to 110 px across, log-uniform, plus 5 % close-ups up to 160 px: mostly COCO "small" and
  "medium", a few "large"), aspect, rotation and shading, drawn back to front so that later shapes
  occlude earlier ones; shapes may be cut by the image border;
- in about a fifth of the images a **crowd**: a cluster of 6-14 tiny shapes of one category, annotated
  as ONE ``iscrowd=1`` region (its mask is the union of their visible pixels), as COCO annotates crowds;
- in about 30 % of the images one or two **unlabelled clutter** blobs: VOID in panoptic (id 0) and
  ``ignore_index`` 255 in the semantic map, the way COCO leaves unlabelled pixels;
- a light blur and sensor noise over the whole image (the labels keep hard pixel edges).
A thing whose visible part is under 40 % of its drawn area (or under 12 px) is not drawn at all, so every
annotated object is recognisable. On the test split: 3.0 things per image on average, 4 % of the
images without any thing (COCO keeps such images), 20 % with a crowd, 29 % with clutter.

Why 128 x 128: a small detector or segmenter must train on 2 CPU cores in about 15 minutes on the 3,000
training images (about 100 images/s through a tiny CNN on one core), while the smallest objects (10 px)
still cover a cell of a stride-8 feature map; generation runs at about 350 images/s on one core.

Ground truth forms, from one ``Scene`` (every form is derived from the same ``owner`` map, so they agree
pixel for pixel):
- COCO instances: ``image_id`` = index + 1 (test) or 1,000,001 + index (train); annotation id =
  image_id * 100 + k (k = 1-based draw slot: never 0, and stable without generating other images);
  RLE masks (pycocotools), ``area`` = the mask's pixel count, ``bbox`` = the mask's tight XYWH box.
- semantic: train ids 0..7 = sky, wall, ground, disc, rectangle, triangle, star, cross (crowd pixels
  take their category; clutter is 255).
- COCO panoptic: segment id = category_id * 1000 (stuff) or category_id * 1000 + k (things, crowds with
  ``iscrowd=1``), 0 = VOID; PNGs encode ids as R + 256·G + 256²·B.

Determinism: scene ``index`` of ``split`` with ``seed`` is drawn from ``numpy.random.default_rng([seed,
split code, index])`` alone, so any image can be regenerated without the others. Splits hold 300 (test)
and 3,000 (train) images, generated lazily and cached in memory.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision import tv_tensors

from harness.data.base import ImageSource
from harness.evaluation.coco_format import detection_target_from_coco, encode_masks, id2rgb
from harness.evaluation.samples import DetectionTarget, PanopticTarget, Sample, SemanticTarget
from harness.registry import DATASETS

GENERATOR_VERSION = 1
HEIGHT = WIDTH = 128
SPLITS = {"test": 300, "train": 3000}
SPLIT_CODE = {"test": 1, "train": 2}
IMAGE_ID_OFFSET = {"test": 0, "train": 1_000_000}
TARGETS = ("detection", "semantic", "panoptic")
IGNORE_INDEX = 255

THINGS: dict[int, str] = {1: "disc", 2: "rectangle", 3: "triangle", 5: "star", 7: "cross"}
STUFF: dict[int, str] = {12: "sky", 15: "wall", 20: "ground"}
SKY, WALL, GROUND = 0, 1, 2  # semantic train ids of the stuff classes
SEMANTIC_CATEGORY_IDS: list[int] = [*STUFF, *THINGS]  # train id -> COCO category id
SEMANTIC_CLASSES: list[str] = [*STUFF.values(), *THINGS.values()]
TRAIN_ID = {cat: i for i, cat in enumerate(SEMANTIC_CATEGORY_IDS)}
PALETTE = {12: [70, 130, 180], 15: [102, 102, 156], 20: [152, 251, 152], 1: [220, 20, 60], 2: [0, 0, 142],
           3: [250, 170, 30], 5: [255, 255, 0], 7: [119, 11, 32]}

MIN_VISIBLE_FRACTION, MIN_VISIBLE_PIXELS = 0.4, 12
CROWD_MIN_VISIBLE_FRACTION, CROWD_MIN_VISIBLE_PIXELS = 0.5, 20


@dataclass
class Scene:
    """One drawn scene. ``owner`` numbers the drawn items 1..K in draw order (0 = background stuff);
    ``items[k - 1]`` is (category id or None for unlabelled clutter, iscrowd)."""

    image: np.ndarray  # (H, W, 3) uint8
    stuff: np.ndarray  # (H, W) uint8 semantic train id of the background
    owner: np.ndarray  # (H, W) uint8
    items: list[tuple[int | None, bool]]

    def instances(self) -> list[tuple[int, int, bool]]:
        """(k, category id, iscrowd) of the annotated things, in draw order."""
        return [(k, cat, crowd) for k, (cat, crowd) in enumerate(self.items, start=1) if cat is not None]

    def semantic(self) -> np.ndarray:
        """(H, W) uint8 train ids; clutter is ``IGNORE_INDEX``."""
        labels = self.stuff.copy()
        for k, (cat, _) in enumerate(self.items, start=1):
            labels[self.owner == k] = IGNORE_INDEX if cat is None else TRAIN_ID[cat]
        return labels

    def panoptic(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(H, W) int64 segment ids (0 = VOID) and COCO-panoptic ``segments_info`` (id order)."""
        segment_map = np.zeros(self.owner.shape, np.int64)
        background = self.owner == 0
        for train_id, cat in enumerate(SEMANTIC_CATEGORY_IDS[:len(STUFF)]):
            segment_map[background & (self.stuff == train_id)] = cat * 1000
        crowd_of = {}
        for k, cat, crowd in self.instances():
            segment_map[self.owner == k] = cat * 1000 + k
            crowd_of[cat * 1000 + k] = crowd
        segments = []
        ids, areas = np.unique(segment_map, return_counts=True)
        for segment_id, area in zip(ids.tolist(), areas.tolist()):
            if segment_id == 0:
                continue
            rle = mask_utils.encode(np.asfortranarray((segment_map == segment_id).astype(np.uint8)))
            segments.append({"id": segment_id, "category_id": segment_id // 1000,
                             "iscrowd": int(crowd_of.get(segment_id, False)), "area": int(area),
                             "bbox": [int(v) for v in mask_utils.toBbox(rle)]})
        return segment_map, segments


def image_id(split: str, index: int) -> int:
    return IMAGE_ID_OFFSET[split] + index + 1


def file_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}.png"


# --- drawing ------------------------------------------------------------------------------------------
_SHIFT = 4  # cv2 sub-pixel bits for polygon vertices


@dataclass
class _Item:
    category: int | None
    iscrowd: bool
    parts: list[tuple[np.ndarray, np.ndarray]]  # (bool mask, RGB colour in [0, 1]) painted in order

    @property
    def mask(self) -> np.ndarray:
        union = np.zeros((HEIGHT, WIDTH), bool)
        for part, _ in self.parts:
            union |= part
        return union


def _noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth value noise in [0, 1] with about ``cells`` features across the image."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(grid, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC), 0, 1)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    pixel = np.array([[[h * 179, s * 255, v * 255]]], np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255


def _layout(rng: np.random.Generator) -> np.ndarray:
    """Stuff train ids: upper part sky (outdoor, street) or wall (indoor), ground below a wavy horizon;
    street scenes add building blocks (wall) in front of the sky."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    scene = rng.choice(["outdoor", "indoor", "street"], p=[0.4, 0.3, 0.3])
    y0 = rng.uniform(0.35, 0.7) * HEIGHT
    horizon = (y0 + rng.uniform(-0.2, 0.2) * (xs - WIDTH / 2)
               + rng.uniform(0, 3) * np.sin(xs * rng.uniform(0.02, 0.1) + rng.uniform(0, 2 * math.pi)))
    stuff = np.where(ys >= horizon, GROUND, WALL if scene == "indoor" else SKY).astype(np.uint8)
    if scene == "street":
        for _ in range(rng.integers(1, 4)):
            left = rng.uniform(-0.2, 0.8) * WIDTH
            right = left + rng.uniform(0.15, 0.5) * WIDTH
            roof = rng.uniform(0.1, 0.9) * y0
            stuff[(xs >= left) & (xs < right) & (ys >= roof) & (stuff == SKY)] = WALL
    return stuff


def _paint_stuff(rng: np.random.Generator, stuff: np.ndarray) -> np.ndarray:
    ys = np.mgrid[0:HEIGHT, 0:WIDTH][0].astype(np.float32) / HEIGHT
    xs = np.mgrid[0:HEIGHT, 0:WIDTH][1].astype(np.float32)
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    # sky: top-to-horizon gradient (day or dusk) with soft clouds
    top, low = (_hsv(rng.uniform(0.55, 0.62), rng.uniform(0.5, 0.8), rng.uniform(0.6, 0.9)),
                _hsv(rng.uniform(0.5, 0.6), rng.uniform(0.1, 0.3), rng.uniform(0.85, 1.0))) \
        if rng.random() < 0.8 else (_hsv(rng.uniform(0.6, 0.7), 0.6, 0.5), _hsv(rng.uniform(0.02, 0.1), 0.6, 0.95))
    sky = top + (low - top) * ys[..., None]
    clouds = np.clip((_noise(rng, 5) - 0.55) * 3, 0, 1)[..., None] * rng.uniform(0.3, 0.9)
    sky = sky * (1 - clouds) + clouds
    # wall: plain or brick, base colour from a few materials
    base = [_hsv(0.03, 0.6, 0.6), _hsv(0.1, 0.25, 0.8), _hsv(0, 0, 0.6), _hsv(rng.random(), 0.3, 0.85)][
        rng.integers(4)] * rng.uniform(0.85, 1.15)
    wall = base * (0.9 + 0.2 * _noise(rng, 16))[..., None]
    if rng.random() < 0.6:
        row = int(rng.integers(5, 10))
        brick = row * int(rng.integers(2, 4))
        rows = (np.arange(HEIGHT)[:, None] // row) % 2
        mortar = (np.arange(HEIGHT)[:, None] % row == 0) | ((xs + rows * brick // 2) % brick < 1)
        wall = np.where(mortar[..., None], wall * 0.6 + 0.3, wall)
    wall = wall * (1.1 - 0.2 * ys[..., None])
    # ground: grass, sand, asphalt or soil, two noise scales, darker near the camera
    ground_base = [_hsv(0.28, 0.6, 0.55), _hsv(0.11, 0.45, 0.8), _hsv(0, 0, 0.4), _hsv(0.07, 0.55, 0.45)][
        rng.integers(4)]
    texture = 0.75 + 0.3 * _noise(rng, 6) + 0.15 * (rng.random((HEIGHT, WIDTH)).astype(np.float32) - 0.5)
    ground = ground_base * texture[..., None] * (1.15 - 0.3 * ys[..., None])
    for train_id, layer in ((SKY, sky), (WALL, wall), (GROUND, ground)):
        image[stuff == train_id] = layer[stuff == train_id]
    return image


def _polygon(points: np.ndarray) -> np.ndarray:
    canvas = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.fillPoly(canvas, [np.round(points * (1 << _SHIFT)).astype(np.int32)], 1, lineType=cv2.LINE_8,
                 shift=_SHIFT)
    return canvas.astype(bool)


def _shape(rng: np.random.Generator, category: int, cx: float, cy: float, r: float) -> np.ndarray:
    """The bool mask of one shape of ``category`` centred at (cx, cy) with half-extent ``r``."""
    angle = rng.uniform(0, 2 * math.pi)
    if category == 1:  # disc (slightly elliptic)
        canvas = np.zeros((HEIGHT, WIDTH), np.uint8)
        scale = 1 << _SHIFT
        cv2.ellipse(canvas, (round(cx * scale), round(cy * scale)),
                    (round(r * scale), round(r * rng.uniform(0.75, 1.0) * scale)), math.degrees(angle), 0, 360,
                    1, -1, cv2.LINE_8, _SHIFT)
        return canvas.astype(bool)
    if category == 2:  # rectangle / square
        aspect = rng.uniform(0.45, 1.0)
        local = np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]]) * r
    elif category == 3:  # triangle, jittered corners
        corners = np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.25, 0.25, 3)
        local = np.stack([np.cos(corners), np.sin(corners)], 1) * r
    elif category == 5:  # five-point star
        corners = np.arange(10) * math.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.5)) * r
        local = np.stack([np.cos(corners) * radius, np.sin(corners) * radius], 1)
    elif category == 7:  # cross (plus sign)
        w = rng.uniform(0.28, 0.4)
        local = np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w],
                          [-1, w], [-1, -w], [-w, -w]]) * r
    else:
        raise ValueError(f"unknown scenes category {category}")
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return _polygon(local @ rotation.T + [cx, cy])


def _thing_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng.random(), rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0))


def _draw_items(rng: np.random.Generator) -> list[_Item]:
    items: list[_Item] = []
    categories = list(THINGS)
    count = 0 if rng.random() < 0.04 else int(rng.integers(1, 7))
    for _ in range(count):
        category = categories[rng.integers(len(categories))]
        r = math.exp(rng.uniform(math.log(5), math.log(56))) if rng.random() >= 0.05 else rng.uniform(56, 80)
        cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        items.append(_Item(category, False, [(_shape(rng, category, cx, cy, r), _thing_colour(rng))]))
    if count and rng.random() < 0.25:
        category = categories[rng.integers(len(categories))]
        cx, cy = rng.uniform(16, WIDTH - 16), rng.uniform(16, HEIGHT - 16)
        spread, colour = rng.uniform(5, 10), _thing_colour(rng)
        parts = []
        for _ in range(rng.integers(6, 15)):
            px, py = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
            tint = np.clip(colour * rng.uniform(0.8, 1.2, 3), 0, 1)
            parts.append((_shape(rng, category, px, py, rng.uniform(2.5, 4.5)), tint))
        items.append(_Item(category, True, parts))
    for _ in range(rng.integers(1, 3) if rng.random() < 0.35 else 0):
        corners = np.sort(rng.uniform(0, 2 * math.pi, rng.integers(5, 10)))
        radius = rng.uniform(4, 12) * rng.uniform(0.5, 1.0, len(corners))
        centre = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        blob = np.stack([np.cos(corners) * radius, np.sin(corners) * radius], 1) + centre
        items.append(_Item(None, False, [(_polygon(blob), _hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.3),
                                                               rng.uniform(0.2, 0.7)))]))
    return [items[i] for i in rng.permutation(len(items))]


def _owner(masks: list[np.ndarray]) -> np.ndarray:
    owner = np.zeros((HEIGHT, WIDTH), np.uint8)
    for k, mask in enumerate(masks, start=1):
        owner[mask] = k
    return owner


def _visible_enough(item: _Item, drawn: int, visible: int) -> bool:
    if item.category is None:
        return visible > 0
    fraction, pixels = ((CROWD_MIN_VISIBLE_FRACTION, CROWD_MIN_VISIBLE_PIXELS) if item.iscrowd
                        else (MIN_VISIBLE_FRACTION, MIN_VISIBLE_PIXELS))
    return visible >= pixels and visible >= fraction * drawn


def render(split: str, index: int, seed: int = 0) -> Scene:
    """Scene ``index`` of ``split``: a pure function of (split, index, seed)."""
    rng = np.random.default_rng([seed, SPLIT_CODE[split], index])
    stuff = _layout(rng)
    image = _paint_stuff(rng, stuff)
    items = _draw_items(rng)
    masks = [item.mask for item in items]
    owner = _owner(masks)
    # dropping an item only uncovers the others, so one filtering pass leaves every kept item visible enough
    keep = [i for i, item in enumerate(items)
            if _visible_enough(item, int(masks[i].sum()), int((owner == i + 1).sum()))]
    items, masks = [items[i] for i in keep], [masks[i] for i in keep]
    owner = _owner(masks)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for item in items:  # painter's order: the same order that built ``owner``
        for mask, colour in item.parts:
            if not mask.any():
                continue
            cy, cx = yy[mask].mean(), xx[mask].mean()
            direction = rng.normal(size=2)
            direction /= np.linalg.norm(direction) + 1e-9
            span = max(float(np.sqrt(mask.sum())), 1.0)
            shade = 1 + 0.35 * ((xx[mask] - cx) * direction[0] + (yy[mask] - cy) * direction[1]) / span
            image[mask] = np.clip(colour[None, :] * shade[:, None], 0, 1)
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    image = image + rng.normal(0, 0.015, image.shape).astype(np.float32)
    pixels = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return Scene(pixels, stuff, owner, [(item.category, item.iscrowd) for item in items])


def coco_annotations(scene: Scene, image_id_: int) -> list[dict[str, Any]]:
    """The scene's COCO instance annotations (RLE masks with str counts)."""
    instances = scene.instances()
    masks = np.stack([scene.owner == k for k, _, _ in instances]) if instances else np.zeros((0, HEIGHT, WIDTH))
    annotations = []
    for (k, category, crowd), rle in zip(instances, encode_masks(masks)):
        coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        annotations.append({"id": image_id_ * 100 + k, "image_id": image_id_, "category_id": category,
                            "segmentation": rle, "area": int(mask_utils.area(coded)),
                            "bbox": [float(v) for v in mask_utils.toBbox(coded)], "iscrowd": int(crowd)})
    return annotations


# --- the dataset kind ---------------------------------------------------------------------------------
@DATASETS.register("scenes")
class ScenesSource(ImageSource):
    """Embedded procedural scenes; ``target`` picks the ground-truth form (detection, semantic, panoptic).

    Scenes are cached (least recently used, ``cache_size`` scenes of about 80 KB each: the whole train
    split takes about 240 MB; pass a smaller ``cache_size`` to trade memory for regeneration time)."""

    kind = "scenes"

    def __init__(self, split: str = "test", name: str = "scenes", target: str | None = None, seed: int = 0,
                 size: int | None = None, cache_size: int = 4096, **_: object) -> None:
        if split not in SPLITS:
            raise ValueError(f"scenes has splits {', '.join(SPLITS)}, not {split!r}")
        target = target or "detection"
        if target not in TARGETS:
            raise ValueError(f"scenes offers targets {', '.join(TARGETS)}, not {target!r}")
        self.name, self.split, self.seed, self.target_kind = name, split, seed, target
        self.size = SPLITS[split] if size is None else int(size)
        self.class_names = (list(THINGS.values()) if target == "detection" else SEMANTIC_CLASSES
                            if target == "semantic" else [*STUFF.values(), *THINGS.values()])
        self._cache: OrderedDict[int, Scene] = OrderedDict()
        self._cache_size = cache_size
        self._coco: dict[str, Any] | None = None

    def __len__(self) -> int:
        return self.size

    def sample_id(self, index: int) -> str:
        return f"{self.split}/{index:06d}"

    def native_size(self) -> tuple[int, int]:
        return (HEIGHT, WIDTH)

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.size:
            raise IndexError(f"scenes {self.split} has {self.size} images, no index {index}")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        scene = render(self.split, index, self.seed)
        self._cache[index] = scene
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return scene

    def image_id(self, index: int) -> int:
        return image_id(self.split, index)

    def load(self, index: int) -> Sample:
        scene = self.scene(index)
        return Sample(self.sample_id(index), Image.fromarray(scene.image), self.target(index))

    def target(self, index: int) -> DetectionTarget | SemanticTarget | PanopticTarget:
        scene = self.scene(index)
        if self.target_kind == "semantic":
            return SemanticTarget(tv_tensors.Mask(torch.from_numpy(scene.semantic().astype(np.int64))),
                                  IGNORE_INDEX)
        if self.target_kind == "panoptic":
            segment_map, segments = scene.panoptic()
            return PanopticTarget(torch.from_numpy(segment_map), segments, self.image_id(index))
        return detection_target(scene, self.image_id(index))

    # --- whole-split ground truth -------------------------------------------------------------------------
    def coco_ground_truth(self) -> dict[str, Any]:
        """The split's COCO instances dict (info, licenses, images, annotations, categories)."""
        if self._coco is None:
            images, annotations = [], []
            for index in range(self.size):
                images.append(self._image_entry(index))
                annotations.extend(coco_annotations(self.scene(index), self.image_id(index)))
            categories = [{"id": cat, "name": name, "supercategory": "shape"} for cat, name in THINGS.items()]
            self._coco = {"info": self._info(), "licenses": [], "images": images, "annotations": annotations,
                          "categories": categories}
        return self._coco

    @property
    def class_colours(self) -> list[list[int]] | None:
        """RGB of each semantic train id (the colours the report's previews use); None for other targets."""
        return [PALETTE[c] for c in SEMANTIC_CATEGORY_IDS] if self.target_kind == "semantic" else None

    def panoptic_categories(self) -> list[dict[str, Any]]:
        """COCO-panoptic categories: things (isthing 1) then stuff (isthing 0), with display colours."""
        return ([{"id": c, "name": n, "supercategory": "shape", "isthing": 1, "color": PALETTE[c]}
                 for c, n in THINGS.items()]
                + [{"id": c, "name": n, "supercategory": "background", "isthing": 0, "color": PALETTE[c]}
                   for c, n in STUFF.items()])

    def categories(self) -> list[dict[str, Any]]:
        """The panoptic categories (``id``, ``name``, ``isthing``), what ``PanopticEvaluator`` takes."""
        return self.panoptic_categories()

    def semantic_category_ids(self) -> list[int]:
        """The panoptic category id of each semantic train id (a semantic model's channel order)."""
        return list(SEMANTIC_CATEGORY_IDS)

    def semantic_categories(self) -> list[dict[str, Any]]:
        """Train id -> COCO category id and name (the semantic map's channel order)."""
        return [{"train_id": i, "id": c, "name": n}
                for i, (c, n) in enumerate(zip(SEMANTIC_CATEGORY_IDS, SEMANTIC_CLASSES))]

    def export(self, out_dir: Path | str) -> dict[str, Path]:
        """Write the split in COCO layout: ``images/``, ``annotations/instances_<split>.json``,
        ``annotations/panoptic_<split>.json`` + ``annotations/panoptic_<split>/`` PNGs and
        ``annotations/semantic_<split>/`` PNGs (train ids, 255 = ignore)."""
        out = Path(out_dir)
        paths = {"images": out / "images", "instances": out / "annotations" / f"instances_{self.split}.json",
                 "panoptic": out / "annotations" / f"panoptic_{self.split}.json",
                 "panoptic_pngs": out / "annotations" / f"panoptic_{self.split}",
                 "semantic_pngs": out / "annotations" / f"semantic_{self.split}"}
        for key in ("images", "panoptic_pngs", "semantic_pngs"):
            paths[key].mkdir(parents=True, exist_ok=True)
        panoptic_annotations = []
        for index in range(self.size):
            scene, name = self.scene(index), file_name(self.split, index)
            Image.fromarray(scene.image).save(paths["images"] / name)
            Image.fromarray(scene.semantic()).save(paths["semantic_pngs"] / name)
            segment_map, segments = scene.panoptic()
            Image.fromarray(id2rgb(segment_map)).save(paths["panoptic_pngs"] / name)
            panoptic_annotations.append({"image_id": self.image_id(index), "file_name": name,
                                         "segments_info": segments})
        coco = self.coco_ground_truth()
        paths["instances"].write_text(json.dumps(coco), encoding="utf-8")
        panoptic = {"info": coco["info"], "licenses": [], "images": coco["images"],
                    "annotations": panoptic_annotations, "categories": self.panoptic_categories()}
        paths["panoptic"].write_text(json.dumps(panoptic), encoding="utf-8")
        return paths

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "target": self.target_kind, "generator_version": GENERATOR_VERSION,
                "seed": self.seed}

    def fingerprint(self) -> dict[str, Any]:
        # the generator is deterministic; a probe image guards against numpy / OpenCV drawing changes
        probe = self.scene(0)
        digest = hashlib.sha256(probe.image.tobytes() + probe.owner.tobytes()).hexdigest()[:16]
        return {**self.describe(), "probe_sha256": digest}

    def _image_entry(self, index: int) -> dict[str, Any]:
        return {"id": self.image_id(index), "file_name": file_name(self.split, index), "height": HEIGHT,
                "width": WIDTH}

    def _info(self) -> dict[str, Any]:
        return {"description": f"visionbench embedded scenes, split {self.split}",
                "version": str(GENERATOR_VERSION), "seed": self.seed}


def detection_target(scene: Scene, image_id_: int) -> DetectionTarget:
    """The scene's things as a ``DetectionTarget`` (XYXY boxes, masks), built from its COCO annotations."""
    annotations = coco_annotations(scene, image_id_)
    return detection_target_from_coco(annotations, image_id_, HEIGHT, WIDTH,
                                      np.stack([scene.owner == (a["id"] - image_id_ * 100) for a in annotations])
                                      if annotations else np.zeros((0, HEIGHT, WIDTH), bool))
