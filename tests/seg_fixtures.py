"""Miniature segmentation datasets in the real layouts (ADE20K, Cityscapes, Pascal VOC, COCO panoptic),
built from scikit-image photos with labels derived from the photos' own grey levels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from conftest import photo
from harness.data.coco_panoptic import id_to_rgb

PHOTOS = ["chelsea", "coffee", "astronaut", "rocket", "camera"]


def grey_classes(image: Image.Image, n: int) -> np.ndarray:
    """A class map from grey-level quantiles: 0..n-1, every class present."""
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    edges = np.quantile(grey, np.linspace(0, 1, n + 1)[1:-1])
    return np.digitize(grey, edges).astype(np.int64)


def write_ade20k(root: Path, photos: list[str] = PHOTOS[:3]) -> Path:
    """``images/validation/ADE_val_*.jpg`` + ``annotations/validation/ADE_val_*.png`` with raw labels
    0 ("other", top-left corner) and 1..4; returns root. The expected reduced labels are the raw minus 1."""
    for split in ("validation", "training"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(photos, start=1):
        image = photo(name, 96)
        raw = grey_classes(image, 4) + 1
        raw[:5, :7] = 0
        stem = f"ADE_val_{number:08d}"
        image.save(root / "images" / "validation" / f"{stem}.jpg", quality=90)
        Image.fromarray(raw.astype(np.uint8), mode="L").save(root / "annotations" / "validation" / f"{stem}.png")
    image = photo("camera", 64)  # a training image that the validation split must not list
    image.save(root / "images" / "training" / "ADE_train_00000001.jpg")
    Image.fromarray(grey_classes(image, 4).astype(np.uint8)).save(root / "annotations" / "training" /
                                                                    "ADE_train_00000001.png")
    return root


def write_cityscapes(root: Path) -> Path:
    """``leftImg8bit/val/<city>/*_leftImg8bit.png`` + ``gtFine/val/<city>/*_gtFine_labelTrainIds.png``
    (train ids 0..18, 255 on the bottom rows like the ego-vehicle); returns root."""
    layout = {"frankfurt": ["chelsea", "coffee"], "lindau": ["astronaut"]}
    for city, names in layout.items():
        (root / "leftImg8bit" / "val" / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / "val" / city).mkdir(parents=True, exist_ok=True)
        for number, name in enumerate(names):
            image = photo(name, 128)
            train_ids = grey_classes(image, 19)
            train_ids[-6:] = 255
            stem = f"{city}_{number:06d}_000019"
            image.save(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png")
            Image.fromarray(train_ids.astype(np.uint8)).save(
                root / "gtFine" / "val" / city / f"{stem}_gtFine_labelTrainIds.png")
            # the other gtFine files of the real layout sit alongside and must be ignored
            Image.fromarray((train_ids % 34).astype(np.uint8)).save(
                root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
    return root


def voc_palette() -> list[int]:
    """Pascal VOC's colour map (bit-interleaved class index), 256 entries."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def write_voc(root: Path) -> Path:
    """``JPEGImages``, palette ``SegmentationClass`` PNGs (background, one object class, 255 on the
    object's border) and ``ImageSets/Segmentation/{train,val}.txt``; returns root."""
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    objects = {"2008_000001": ("chelsea", 8), "2008_000002": ("coffee", 11), "2008_000003": ("rocket", 4)}
    for stem, (name, voc_class) in objects.items():
        image = photo(name, 100)
        object_mask = grey_classes(image, 2) == 1
        border = ndimage.binary_dilation(object_mask, iterations=2) & ~ndimage.binary_erosion(object_mask, iterations=1)
        label = np.where(object_mask, voc_class, 0).astype(np.uint8)
        label[border] = 255
        image.save(root / "JPEGImages" / f"{stem}.jpg", quality=90)
        png = Image.fromarray(label, mode="P")
        png.putpalette(voc_palette())
        png.save(root / "SegmentationClass" / f"{stem}.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2008_000001\n2008_000003\n")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2008_000002\n")
    return root


COCO_CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person", "isthing": 1},
                   {"id": 3, "name": "car", "supercategory": "vehicle", "isthing": 1},
                   {"id": 184, "name": "tree-merged", "supercategory": "plant", "isthing": 0},
                   {"id": 187, "name": "sky-other-merged", "supercategory": "sky", "isthing": 0}]


def panoptic_from_photo(image: Image.Image, first_id: int) -> tuple[np.ndarray, list[dict]]:
    """Sky = the darkest grey third, tree = the middle third, and each connected blob of the brightest
    third a person instance (the largest one a crowd region); ids start at ``first_id``. Unlabelled
    1-pixel lines stay VOID."""
    classes = grey_classes(image, 3)
    segment_map = np.zeros(classes.shape, dtype=np.int64)
    segments: list[dict] = []
    next_id = first_id

    def add(mask: np.ndarray, category: int, crowd: int = 0) -> None:
        nonlocal next_id
        segment_map[mask] = next_id
        ys, xs = np.nonzero(mask)
        segments.append({"id": next_id, "category_id": category, "iscrowd": crowd, "area": int(mask.sum()),
                         "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]})
        next_id += 1

    add(classes == 0, 187)
    add(classes == 1, 184)
    blobs, count = ndimage.label(classes == 2)
    sizes = np.bincount(blobs.ravel())[1:]
    for blob in np.argsort(-sizes)[:6]:  # the six largest blobs
        add(blobs == blob + 1, 1, crowd=int(blob == np.argmax(sizes)))
    segment_map[::17, :] = 0
    for segment in segments:
        segment["area"] = int((segment_map == segment["id"]).sum())
    return segment_map, [s for s in segments if s["area"]]


def write_coco_panoptic(root: Path, photos: list[str] = PHOTOS[:3]) -> Path:
    """``val2017/*.jpg`` + ``annotations/panoptic_val2017.json`` + ``annotations/panoptic_val2017/*.png``
    (ids encoded R + 256 G + 256^2 B; ids large enough to use all three channels); returns root."""
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "panoptic_val2017").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for number, name in enumerate(photos, start=1):
        image = photo(name, 96)
        file_name = f"{number:012d}.jpg"
        image.save(root / "val2017" / file_name, quality=90)
        segment_map, segments = panoptic_from_photo(image, first_id=256 * 256 * number + 256 * 7 + 1)
        Image.fromarray(id_to_rgb(segment_map)).save(root / "annotations" / "panoptic_val2017" /
                                                     file_name.replace(".jpg", ".png"))
        images.append({"id": number, "file_name": file_name, "height": image.height, "width": image.width})
        annotations.append({"image_id": number, "file_name": file_name.replace(".jpg", ".png"),
                            "segments_info": segments})
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": COCO_CATEGORIES}))
    return root


def write_scenes_coco_panoptic(root: Path, size: int = 6) -> Path:
    """The embedded scenes' test split exported (``ScenesSource.export``) and laid out as COCO panoptic val2017:
    ``val2017/*.png`` + ``annotations/panoptic_val2017.json`` + ``annotations/panoptic_val2017/``; returns root."""
    from harness.data.scenes import ScenesSource

    paths = ScenesSource(split="test", target="panoptic", size=size).export(root / "export")
    paths["images"].rename(root / "val2017")
    (root / "annotations").mkdir(exist_ok=True)
    paths["panoptic_pngs"].rename(root / "annotations" / "panoptic_val2017")
    paths["panoptic"].rename(root / "annotations" / "panoptic_val2017.json")
    return root
