"""torchvision detection and instance-segmentation models (Faster R-CNN, RetinaNet, FCOS, SSD/SSDlite,
Mask R-CNN, ...) as ``detections`` models.

Built by ``torchvision.models.get_model`` with the weights enum (``pretrained: true`` or a tag such as
``COCO_V1``), ``weights_backbone=None`` (torchvision would otherwise download ImageNet backbone weights
silently) and the entry's ``kwargs`` - among them the size policy ``min_size`` / ``max_size`` (torchvision's
default upscales every image's shorter side to 800 px). The network's own ``GeneralizedRCNNTransform``
normalises, resizes and maps boxes (and pasted masks) back to the size it was given; images are given at
their original size, so detections come out in original-image pixels. Mask R-CNN's mask probabilities are
thresholded at 0.5 (torchvision's reference evaluation does the same). Labels: see
harness/models/detection_adapter.py.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import torch
from torch import nn

from harness.data.preprocess import Preprocess
from harness.evaluation.outputs import Detections
from harness.models.detection_adapter import DetectorAdapter
from harness.models.wrapper import LoadedModel
from harness.specs import ModelSpec

MASK_THRESHOLD = 0.5
COCO_LAYOUT = 91  # torchvision's COCO class count: index = COCO category id, 0 = background, gaps named "N/A"


class TorchvisionDetector(DetectorAdapter):
    """A torchvision detector: a list of [0, 1] images in, ``Detections`` at each image's own size out."""

    def detect(self, images: list[torch.Tensor]) -> list[Detections]:
        out = []
        for result in self.net(images):
            masks = result.get("masks")
            out.append(Detections(boxes=result["boxes"], scores=result["scores"], labels=result["labels"],
                                  masks=None if masks is None else masks[:, 0] > MASK_THRESHOLD))
        return out


def size_policy(net: nn.Module) -> dict[str, Any]:
    """How the network resizes its input (read from its transform, so it is what actually ran)."""
    transform = net.transform
    common = {"image_mean": list(transform.image_mean), "image_std": list(transform.image_std),
              "interpolation": "bilinear"}
    if transform.fixed_size is not None:
        return {"resize": "fixed size (aspect not kept)", "fixed_size": list(transform.fixed_size), **common}
    return {"resize": "shorter side to min_size, longer side at most max_size (aspect kept)",
            "min_size": list(transform.min_size), "max_size": transform.max_size,
            "size_divisible": transform.size_divisible, **common}


def detector_preprocess(net: nn.Module) -> Preprocess:
    """Images reach the network at their original size (``crop_mode: none``); ``input_size`` is the nominal
    size the network resizes to (used by latency and synthetic inputs)."""
    transform = net.transform
    side = transform.fixed_size or (transform.min_size[-1], transform.min_size[-1])
    return Preprocess(input_size=(3, int(side[0]), int(side[1])), crop_pct=1.0, crop_mode="none",
                      mean=tuple(transform.image_mean), std=tuple(transform.image_std))


def _threshold_kwarg(arch: str) -> str:
    return "box_score_thresh" if "rcnn" in arch else "score_thresh"


def _label_names(arch: str, weights: Any, num_classes: int) -> dict[int, str] | None:
    """Class names by label index: the weights' categories, or COCO's for a random-init model in COCO's
    layout (91 classes, torchvision's default); None for other random-init class counts."""
    import torchvision

    if weights is None and num_classes != COCO_LAYOUT:
        return None
    enum = torchvision.models.get_model_weights(arch)
    chosen = enum.DEFAULT if weights in (None, "DEFAULT") else weights
    categories = chosen.meta.get("categories") or []
    return dict(enumerate(categories)) if len(categories) == num_classes else None


def _num_classes(net: nn.Module) -> int:
    heads = getattr(net, "roi_heads", None)
    if heads is not None:
        return int(heads.box_predictor.cls_score.out_features)
    head = net.head.classification_head
    return int(getattr(head, "num_classes", 0) or head.num_columns)


def load_torchvision_detector(spec: ModelSpec, build: Callable[..., tuple]) -> LoadedModel:
    """Build the detector a ``source: torchvision`` entry describes, in eval mode (``build``: loaders'
    ``build_torchvision``, passed in so this module does not import the loaders)."""
    from harness.models.checkpoint import load_weights
    from harness.models.family import infer_family

    arch = spec.architecture
    if spec.score_threshold is not None:
        spec = replace(spec, kwargs={**spec.kwargs, _threshold_kwarg(arch): spec.score_threshold})
    net, weights, sha, tag, chosen = build(spec, spec.num_classes)
    if spec.checkpoint is not None:
        sha = load_weights(net, spec.checkpoint, spec.trust_pickle)
        weights = f"checkpoint:{spec.checkpoint}"
    net.eval()
    num_classes = _num_classes(net)
    names = _label_names(arch, chosen, num_classes)
    module = TorchvisionDetector(net, spec.name, names, first_label=1, num_labels=num_classes - 1)
    labels = "class names (weights' categories)" if names else "index k -> k-th dataset category (0 = background)"
    pipeline = {"adapter": "torchvision", **size_policy(net), "mask_threshold": MASK_THRESHOLD, "labels": labels,
                "score_threshold": _score_threshold(net)}
    return LoadedModel(name=spec.name, source="torchvision", arch=arch, family=spec.family or infer_family(arch, net),
                       module=module, preprocess=detector_preprocess(net), num_classes=num_classes, weights=weights,
                       weights_sha256=sha, tag=tag, output_kind="detections", pipeline=pipeline)


def _score_threshold(net: nn.Module) -> float | None:
    heads = getattr(net, "roi_heads", None)
    value = heads.score_thresh if heads is not None else getattr(net, "score_thresh", None)
    return None if value is None else float(value)
