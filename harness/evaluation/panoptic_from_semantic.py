"""Panoptic predictions from a semantic segmenter: stuff from the semantic map, things as connected components.

The heuristic that panoptic baselines without an instance head use (e.g. the "semantic only" rows of
Kirillov et al., *Panoptic Segmentation*, 2019, and Cityscapes' instance-from-semantic baselines):

- every pixel takes its class from the semantic argmax map;
- a **stuff** class becomes one segment holding all its pixels (panopticapi counts one segment per stuff
  category and image);
- a **thing** class is split into its connected components (8-connectivity, ``scipy.ndimage.label``), one
  segment each: touching instances of one class merge, which is that method's known limit;
- a segment smaller than ``min_area`` pixels becomes VOID (0): panopticapi never counts VOID pixels of a
  prediction as a false positive, so speckle costs nothing instead of adding false positives.

The class index -> category id mapping is explicit (``category_ids[i]`` is the panoptic category of
semantic class ``i``); the dataset provides it, nothing is guessed from names or counts.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from scipy import ndimage

from harness.evaluation.outputs import PanopticPrediction

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def panoptic_from_semantic(labels: np.ndarray | torch.Tensor, category_ids: Sequence[int],
                           isthing: Mapping[int, bool], min_area: int = 0) -> PanopticPrediction:
    """A ``PanopticPrediction`` from one (H, W) map of semantic class indices.

    ``category_ids[i]``: the panoptic category id of class ``i``; ``isthing[category id]``: thing or stuff.
    Segment ids are 1, 2, ... in order of class index, then of component (scipy's raster order)."""
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a semantic label map is (H, W), got shape {labels.shape}")
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, -1)
    if low < 0 or high >= len(category_ids):
        raise ValueError(f"class index {high if high >= len(category_ids) else low} has no panoptic category "
                         f"({len(category_ids)} classes are mapped)")
    segment_map = np.zeros(labels.shape, dtype=np.int64)
    segments: list[dict[str, int]] = []
    # each class's bounding box, all in one pass: the per-class work stays inside it
    for index, box in enumerate(ndimage.find_objects(labels + 1)):
        if box is None:
            continue
        category = int(category_ids[index])
        mask = labels[box] == index
        if isthing[category]:
            components, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
            areas = np.bincount(components.ravel(), minlength=count + 1)
            kept = np.flatnonzero(areas[1:] >= max(min_area, 1)) + 1
            # new ids for the kept components in one lookup: 0 (VOID) for background and dropped ones
            lookup = np.zeros(count + 1, dtype=np.int64)
            lookup[kept] = np.arange(len(segments) + 1, len(segments) + 1 + len(kept))
            segment_map[box][mask] = lookup[components[mask]]
            segments += [{"id": int(lookup[k]), "category_id": category, "area": int(areas[k])} for k in kept]
        else:
            area = int(mask.sum())
            if area >= max(min_area, 1):
                segments.append({"id": len(segments) + 1, "category_id": category, "area": area})
                segment_map[box][mask] = len(segments)
    return PanopticPrediction(torch.from_numpy(segment_map), segments)
