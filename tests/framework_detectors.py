"""Random-init, tiny stand-ins for the torchvision and Hugging Face detectors of suites/detection-coco.yaml,
and a miniature COCO val2017 layout written from the embedded scenes (images rescaled to mixed sizes, so the
adapters' mapping back to each image's original size is exercised)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from harness.data.scenes import THINGS, ScenesSource
from harness.evaluation.coco_format import decode_segmentation, encode_masks

SCENE_CATEGORIES = [{"id": c, "name": n} for c, n in THINGS.items()]
TORCHVISION_ARCHS = ["fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn",
                     "ssdlite320_mobilenet_v3_large", "maskrcnn_resnet50_fpn_v2"]


def tiny_torchvision(arch: str, num_classes: int = len(THINGS) + 1, min_size: int = 64) -> dict[str, Any]:
    """A suite model entry: random init, small inputs, few region proposals (fast on a CPU), a low score
    threshold (random-init RetinaNet / FCOS scores sit near their 0.01 prior)."""
    kwargs: dict[str, Any] = {}
    if not arch.startswith("ssd"):  # SSD's input size is fixed (320)
        kwargs.update(min_size=min_size, max_size=2 * min_size)
    if "rcnn" in arch:
        kwargs.update(rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=20, box_detections_per_img=20)
    else:
        kwargs.update(detections_per_img=20)
    return {"name": arch, "source": "torchvision", "num_classes": num_classes, "kwargs": kwargs,
            "score_threshold": 0.001}


_RESNET = {"model_type": "resnet", "embedding_size": 8, "hidden_sizes": [8, 16, 16, 16], "depths": [1, 1, 1, 1],
           "out_features": ["stage2", "stage3", "stage4"]}
_DETR_SIZES = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 2, "encoder_attention_heads": 2,
               "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "num_queries": 12}
HF_CONFIGS: dict[str, dict[str, Any]] = {
    "detr": {"model_type": "detr", "use_timm_backbone": False, "use_pretrained_backbone": False,
             "backbone_config": {**_RESNET, "out_features": ["stage4"]}, **_DETR_SIZES},
    "deformable_detr": {"model_type": "deformable_detr", "use_timm_backbone": False, "use_pretrained_backbone": False,
                        "backbone_config": _RESNET, "encoder_n_points": 2, "decoder_n_points": 2,
                        "num_feature_levels": 3, **_DETR_SIZES},
    "rt_detr": {"model_type": "rt_detr", "backbone_config": {**_RESNET, "model_type": "rt_detr_resnet"},
                "encoder_hidden_dim": 16, "encoder_in_channels": [16, 16, 16], "decoder_in_channels": [16, 16, 16],
                "d_model": 32, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "encoder_layers": 1, "decoder_layers": 1,
                "encoder_attention_heads": 2, "decoder_attention_heads": 2, "decoder_n_points": 2, "num_queries": 12},
    "mask2former": {"model_type": "mask2former", "use_timm_backbone": False, "use_pretrained_backbone": False,
                    "backbone_config": {**_RESNET, "out_features": ["stage1", "stage2", "stage3", "stage4"]},
                    "hidden_dim": 32, "mask_feature_size": 32, "feature_size": 32, "num_queries": 10, "encoder_layers": 1,
                    "decoder_layers": 2, "dim_feedforward": 32, "num_attention_heads": 2, "encoder_feedforward_dim": 32},
    "yolos": {"model_type": "yolos", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 32, "num_detection_tokens": 12, "image_size": [64, 64], "patch_size": 16},
}


def tiny_hf(name: str, model_type: str, num_classes: int = len(THINGS)) -> dict[str, Any]:
    """A suite model entry: random init from a tiny config, the processor resizing to about 64 px."""
    size = {"height": 64, "width": 64} if model_type == "rt_detr" else {"shortest_edge": 64, "longest_edge": 128}
    return {"name": name, "source": "hf", "config": HF_CONFIGS[model_type], "processor": {"size": size},
            "num_classes": num_classes}


# (width, height) the exported 128 x 128 scenes are rescaled to, in turn: landscape, portrait, square
SIZES = [(160, 96), (96, 144), (128, 128)]


def write_mini_coco(root: Path, n: int = 6) -> Path:
    """``root/val2017/*.png`` + ``root/annotations/instances_val2017.json`` (COCO's layout) from ``n`` test
    scenes, image i rescaled to ``SIZES[i % 3]`` with its boxes, masks and areas; returns root."""
    export = ScenesSource("test", size=n).export(root / "export")
    coco = json.loads(export["instances"].read_text(encoding="utf-8"))
    (root / "val2017").mkdir(parents=True)
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for i, entry in enumerate(coco["images"]):
        width, height = SIZES[i % len(SIZES)]
        with Image.open(export["images"] / entry["file_name"]) as image:
            image.convert("RGB").resize((width, height), Image.BILINEAR).save(root / "val2017" / entry["file_name"])
        for ann in by_image.get(entry["id"], []):
            mask = decode_segmentation(ann["segmentation"], entry["height"], entry["width"])
            resized = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
            rle = encode_masks(resized[None])[0]
            coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            ann.update(segmentation=rle, area=int(mask_utils.area(coded)),
                       bbox=[float(v) for v in mask_utils.toBbox(coded)])
        entry.update(width=width, height=height)
    coco["annotations"] = [a for a in coco["annotations"] if a["area"] > 0]
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(coco), encoding="utf-8")
    return root
