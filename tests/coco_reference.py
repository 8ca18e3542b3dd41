"""pycocotools' own pipeline (COCO(json) -> loadRes -> COCOeval) as the reference, and hand-built edge
cases (crowd, empty image, categories without ground truth, > 100 detections): shared by the evaluator's
and the report's parity tests."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def reference(tmp_path, ground_truth: dict, results: list[dict], iou_type: str) -> COCOeval:
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(ground_truth))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        if results:
            dt_path.write_text(json.dumps(results))
            coco_dt = coco_gt.loadRes(str(dt_path))
        else:  # loadRes cannot take an empty list: an empty annotation file through COCO() instead
            dt_path.write_text(json.dumps({"images": ground_truth["images"], "annotations": [],
                                           "categories": ground_truth["categories"]}))
            coco_dt = COCO(str(dt_path))
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}


def edge_ground_truth() -> dict:
    """4 images, categories 1, 4, 9 (4 and 9 have no ground truth); no ``info``.

    image 1: two cat-1 boxes and a crowd region; image 2: empty; image 3: one cat-1 box (for >100 dets);
    image 4: a large cat-1 box."""
    def box(ann_id, image_id, bbox, crowd=0):
        x, y, w, h = bbox
        mask = np.zeros((200, 200), np.uint8)
        mask[y:y + h, x:x + w] = 1
        return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [float(v) for v in bbox],
                "area": float(w * h), "iscrowd": crowd, "segmentation": _rle(mask)}
    return {"images": [{"id": i, "file_name": f"{i}.png", "height": 200, "width": 200} for i in (1, 2, 3, 4)],
            "categories": [{"id": 1, "name": "a"}, {"id": 4, "name": "b"}, {"id": 9, "name": "c"}],
            "annotations": [box(1, 1, (10, 10, 20, 20)), box(2, 1, (50, 50, 30, 30)),
                            box(3, 1, (100, 100, 60, 60), crowd=1), box(4, 3, (20, 20, 40, 40)),
                            box(5, 4, (0, 0, 150, 150))]}


def edge_results(gt: dict) -> list[dict]:
    def det(image_id, bbox, score, category=1):
        x, y, w, h = bbox
        mask = np.zeros((200, 200), np.uint8)
        mask[y:y + h, x:x + w] = 1
        return {"image_id": image_id, "category_id": category, "bbox": [float(v) for v in bbox],
                "score": score, "segmentation": _rle(mask)}
    results = [det(1, (11, 10, 20, 20), 0.9), det(1, (52, 50, 30, 28), 0.6),
               det(1, (105, 105, 20, 20), 0.95), det(1, (120, 120, 20, 20), 0.5),  # inside the crowd: ignored
               det(2, (5, 5, 10, 10), 0.7), det(2, (30, 30, 10, 10), 0.3, category=9),  # empty image: FPs
               det(4, (2, 0, 148, 150), 0.8)]
    rng = np.random.default_rng(0)
    for i in range(130):  # > 100 detections on image 3; the true one has a low-ranked score
        x, y = rng.integers(0, 180, 2)
        results.append(det(3, (int(x), int(y), 15, 15), float(0.5 + i / 1000)))
    results.append(det(3, (20, 20, 40, 40), 0.45))
    return results


def _typed(results: list[dict], iou_type: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k != ("segmentation" if iou_type == "bbox" else "bbox")} for r in results]
