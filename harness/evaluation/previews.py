"""Small qualitative previews kept with a dense task's per-sample records, for the report's overlays.

Only the first ``PREVIEW_COUNT`` samples of the evaluated subset get one (positions in the job's source,
``batch.indices``): the subset is a seeded draw shared by every model of a dataset, so the previews of all
models show the same images and line up side by side. Only the uncorrupted pass keeps previews
(``PREVIEW_PASSES``: a task's ``main`` pass, the corruption task's ``clean`` one), so the 75 corrupted passes
of a corruption run add no pictures to its records. A preview is a dict of base64 PNGs:
``image`` (what the model saw, at the original aspect, at most ``IMAGE_SIDE`` px, in 128 colours), ``truth`` and
``prediction`` (class-index maps as palette PNGs, nearest-downscaled to at most ``LABEL_SIDE`` px; about
1-2 kB each), coloured by class index with the dataset's colours where it has them (the scenes palette, COCO
panoptic ``color``), else a fixed Cityscapes-like palette (ignored / VOID pixels black).
"""
from __future__ import annotations

import base64
import io
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

PREVIEW_COUNT = 3
PREVIEW_KEY = "preview"  # the record key a preview is kept under
PREVIEW_PASSES = ("main", "clean")
LABEL_SIDE = 128
IMAGE_SIDE = 160
IMAGE_COLOURS = 128  # the input preview's palette size
UNLABELLED = 255  # palette index drawn black: ignored pixels, VOID

_CITYSCAPES = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
               (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
               (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)]


def _palette() -> list[int]:
    """256 RGB triples, flattened: Cityscapes' 19 train-id colours, then Pascal VOC's bit-interleaved map."""
    colours = list(_CITYSCAPES)
    for index in range(len(colours), 256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    colours[UNLABELLED] = (0, 0, 0)
    return [v for colour in colours for v in colour]


PALETTE = _palette()


def palette_of(colours: Sequence[Sequence[int] | None] | None = None) -> list[int]:
    """The 256-entry flat palette with class ``i`` coloured ``colours[i]`` where given (the default elsewhere)."""
    palette = list(PALETTE)
    for index, colour in enumerate((colours or [])[:UNLABELLED]):
        if colour is not None and len(colour) == 3:
            palette[3 * index:3 * index + 3] = [int(v) for v in colour]
    return palette


def preview_positions(pass_name: str, batch: Any, count: int = PREVIEW_COUNT) -> set[int]:
    """Positions within ``batch`` of the samples that get a preview (source positions below ``count``)."""
    indices = getattr(batch, "indices", None)
    if indices is None or count <= 0 or pass_name not in PREVIEW_PASSES:
        return set()
    return {i for i, position in enumerate(torch.as_tensor(indices).tolist()) if position < count}


def _encode(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _fit(height: int, width: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def label_png(labels: np.ndarray | torch.Tensor, side: int = LABEL_SIDE, palette: Sequence[int] = PALETTE) -> str:
    """An (H, W) class-index map as a base64 palette PNG of at most ``side`` px (values above 255 black)."""
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    labels = np.where((labels < 0) | (labels > UNLABELLED), UNLABELLED, labels).astype(np.uint8)
    image = Image.fromarray(labels, mode="P")
    image.putpalette(list(palette))
    height, width = labels.shape
    if max(height, width) > side:
        image = image.resize(_fit(height, width, side)[::-1], Image.NEAREST)
    return _encode(image)


def image_png(image: torch.Tensor, original: tuple[int, int], side: int = IMAGE_SIDE, sharp: bool = False) -> str:
    """A (3, h, w) [0, 1] model input as a base64 palette PNG at the original (H, W) aspect, at most ``side`` px
    (``sharp``: scaled to exactly ``side`` by nearest neighbour, so a small input's pixels stay crisp)."""
    pixels = image.detach().float().cpu()[None]
    if sharp:
        size = tuple(max(1, round(s * side / max(original))) for s in original)
        small = torch.nn.functional.interpolate(pixels, size=size, mode="nearest")[0]
    else:
        small = torch.nn.functional.interpolate(pixels, size=_fit(*original, side), mode="bilinear",
                                                align_corners=False, antialias=True)[0]
    pixels = (small.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    # 128 median-cut colours, no dithering: about 8 kB instead of 20 kB for a 128 px photo, banding barely seen
    return _encode(Image.fromarray(pixels, mode="RGB").quantize(IMAGE_COLOURS, Image.Quantize.MEDIANCUT,
                                                                dither=Image.Dither.NONE))


def segment_classes(segment_map: np.ndarray | torch.Tensor, segments: Sequence[Mapping[str, Any]],
                    class_index: Mapping[int, int]) -> np.ndarray:
    """A panoptic segment-id map as a class-index map (VOID and unlisted segments ``UNLABELLED``), with
    each segment's border drawn ``UNLABELLED`` so that touching instances of one class stay apart."""
    ids = segment_map.detach().cpu().numpy() if isinstance(segment_map, torch.Tensor) else np.asarray(segment_map)
    ids = ids.astype(np.int64)
    out = np.full(ids.shape, UNLABELLED, dtype=np.int64)
    for segment in segments:
        out[ids == int(segment["id"])] = class_index.get(int(segment["category_id"]), UNLABELLED)
    border = np.zeros(ids.shape, dtype=bool)
    border[1:, :] |= ids[1:, :] != ids[:-1, :]
    border[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    out[border] = UNLABELLED
    return out


def preview(batch: Any, position: int, truth: np.ndarray | torch.Tensor, prediction: np.ndarray | torch.Tensor,
            palette: Sequence[int] = PALETTE) -> dict[str, str]:
    """The preview of the sample at ``position`` in ``batch``: its input image (when the batch has images)
    and the class-index maps of the ground truth and the prediction (coloured by ``palette_of``'s palette)."""
    out = {"truth": label_png(truth, palette=palette), "prediction": label_png(prediction, palette=palette)}
    images = getattr(batch, "images", None)
    if images is not None:
        original = tuple(truth.shape[-2:])
        out = {"image": image_png(images[position], original), **out}
    return out
