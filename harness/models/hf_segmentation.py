"""Hugging Face ``transformers`` segmenters as ``source: hf`` models (the ``[hf]`` extra): SegFormer and
UperNet (``output: semantic_logits``), Mask2Former and OneFormer (``semantic_logits`` or ``panoptic``).

A model entry::

    - {name: segformer-b0, source: hf, arch: nvidia/segformer-b0-finetuned-ade-512-512, pretrained: true,
       output: semantic_logits}
    - {name: m2f-swin-t, source: hf, arch: facebook/mask2former-swin-tiny-coco-panoptic, pretrained: true,
       output: panoptic}

- ``arch``, ``pretrained``, ``config``, ``processor``: how the model and its processor are built
  (harness/models/hf_common.py: hub name or saved folder, or a random-init config).
- ``kwargs``: ``post_process`` (the panoptic post-processing's ``threshold``, ``mask_threshold``, ``overlap_mask_area_threshold``) and ``labels``: how
  the model's label ids become dataset category ids in panoptic output — ``names`` (``id2label`` names equal
  the dataset's category names; the default, right for the hub's COCO models), ``order`` (label i is the
  dataset's i-th category) or ``ids`` (label ids are category ids).

What runs is the model's own pipeline: images in [0, 1] at their native size go through the image processor
(its resize, normalisation, padding), the model and the processor's own post-processing.
- ``semantic_logits``: SegFormer's / UperNet's logits; for Mask2Former / OneFormer the class-score map that
  ``post_process_semantic_segmentation`` builds before its final resize. The segmentation task resizes it
  to the label bilinearly and takes the argmax, which is what that post-processing does with ``target_sizes``.
- ``panoptic``: ``post_process_panoptic_segmentation`` at each image's size, then the segments of each stuff
  label merged into one (what its ``label_ids_to_fuse`` means to do: one segment per stuff category, as
  panopticapi scores stuff; done here because that option can give two segments one id), and label ids
  mapped to the dataset's category ids when the panoptic task binds the model to its dataset
  (``for_categories``).
A batch goes through together only when its images share one size, so padding never depends on the batch.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from harness.data.preprocess import Preprocess
from harness.evaluation.outputs import PanopticPrediction
from harness.models.family import family_from_modules, family_from_name
from harness.models.hf_common import build_config, build_model, build_processor, import_transformers, processor_policy
from harness.models.wrapper import LoadedModel
from harness.registry import HF_ADAPTERS
from harness.specs import ModelSpec

KWARGS = ("post_process", "labels")  # adapter settings; the config and processor have fields of their own
POST_PROCESS = ("threshold", "mask_threshold", "overlap_mask_area_threshold")
LABEL_MAPPINGS = ("names", "order", "ids")
UNIVERSAL = ("mask2former", "maskformer", "oneformer")  # mask-classification models (query masks + classes)
SEMANTIC = ("segformer", "upernet")  # per-pixel classifiers: their logits are the semantic map


class HFSegmenter(nn.Module):
    """A transformers segmenter with its image processor: [0, 1] pixels in, the canonical output out."""

    def __init__(self, net: nn.Module, processor: Any, output_kind: str, post_process: Mapping[str, float],
                 labels: str = "names", label_to_category: Mapping[int, int] | None = None,
                 fuse: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.net, self.processor, self.output_kind = net, processor, output_kind
        self.post_process, self.labels = dict(post_process), labels
        self.label_to_category, self.fuse = label_to_category, fuse
        self.model_type = net.config.model_type

    def for_categories(self, categories: list[dict[str, Any]]) -> "HFSegmenter":
        """This model answering in the dataset's category ids (sharing the network), stuff labels fused."""
        names = {int(i): str(name) for i, name in self.net.config.id2label.items()}
        to_category = label_mapping(names, categories, self.labels)
        stuff = {c["id"] for c in categories if not c["isthing"]}
        return HFSegmenter(self.net, self.processor, self.output_kind, self.post_process, self.labels, to_category,
                           frozenset(label for label, category in to_category.items() if category in stuff))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor | list[PanopticPrediction]:
        images = list(pixels)
        sizes = [tuple(image.shape[-2:]) for image in images]
        inputs = self.encode(images)
        outputs = self.net(**inputs)
        if self.output_kind == "semantic_logits":
            if self.model_type not in UNIVERSAL:
                return outputs.logits
            scores = self.processor.post_process_semantic_segmentation(outputs, return_segmentation_scores=True)
            return torch.stack([item.segmentation_scores for item in scores])
        # stuff is fused here, not by ``label_ids_to_fuse``: transformers' fusion reuses an old segment id and
        # then counts on from it, so a later segment can get an id already taken (two labels, one id)
        results = self.processor.post_process_panoptic_segmentation(
            outputs, label_ids_to_fuse=set(), target_sizes=sizes, **self.post_process)
        return [self.to_prediction(result) for result in results]

    def encode(self, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The processor's model inputs for pixel images in [0, 1] (no rescaling: they are floats already)."""
        extra = {}
        if self.model_type == "oneformer":  # its text task token: "the task is semantic" / "the task is panoptic"
            extra["task_inputs"] = ["semantic" if self.output_kind == "semantic_logits" else "panoptic"] * len(images)
        encoded = self.processor(images=images, do_rescale=False, return_tensors="pt", **extra)
        device = next(self.net.parameters()).device
        return {key: encoded[key].to(device) for key in ("pixel_values", "pixel_mask", "task_inputs")
                if key in encoded}

    def to_prediction(self, result: dict[str, Any]) -> PanopticPrediction:
        """One post-processed image as a PanopticPrediction: VOID is 0 (HF marks an image without any
        segment -1), every segment of a stuff label merged into its first, labels as dataset category ids."""
        segment_map = result["segmentation"].long().clamp(min=0).cpu()
        infos = result["segments_info"]
        new_id = torch.arange(max([int(info["id"]) for info in infos], default=0) + 1)
        segments: list[dict[str, int]] = []
        first_of_label: dict[int, int] = {}
        for info in infos:
            label, segment = int(info["label_id"]), int(info["id"])
            if label in self.fuse and label in first_of_label:
                new_id[segment] = first_of_label[label]
                continue
            first_of_label[label] = segment
            category = label if self.label_to_category is None else self.label_to_category[label]
            segments.append({"id": segment, "category_id": category})
        return PanopticPrediction(new_id[segment_map], segments)


def label_mapping(labels: Mapping[int, str], categories: list[dict[str, Any]], how: str) -> dict[int, int]:
    """Model label id -> dataset category id; every label the model can predict must land on a category."""
    ids = [int(c["id"]) for c in categories]
    if how == "ids":
        mapping = {label: label for label in labels}
    elif how == "order":
        if len(labels) != len(ids):
            raise ValueError(f"labels: order maps label i to the dataset's i-th category, but the model has "
                             f"{len(labels)} labels and the dataset {len(ids)} categories")
        mapping = {label: ids[position] for position, label in enumerate(sorted(labels))}
    else:
        by_name = {str(c["name"]): int(c["id"]) for c in categories}
        missing = [name for name in labels.values() if name not in by_name]
        if missing:
            raise ValueError(f"model label {missing[0]!r} is not a category name of the dataset ({len(missing)} of "
                             f"{len(labels)} labels unmatched); set kwargs.labels to order or ids")
        mapping = {label: by_name[name] for label, name in labels.items()}
    unknown = sorted(set(mapping.values()) - set(ids))
    if unknown:
        raise ValueError(f"model label id {unknown[0]} is not a category id of the dataset")
    return mapping


def check_entry(spec: ModelSpec) -> None:
    """Mistakes an hf segmenter entry can show before anything loads (raised as the suite's one-line error)."""
    if spec.num_classes is not None or spec.preprocess is not None:
        raise ValueError("num_classes and preprocess do not apply to hf segmenters: their config and image "
                         "processor say it (use config / processor)")
    unknown = [key for key in spec.kwargs if key not in KWARGS]
    if unknown:
        raise ValueError(f"kwargs: unknown key {unknown[0]!r} for an hf segmenter (allowed: {', '.join(KWARGS)})")
    if "post_process" in spec.kwargs and not isinstance(spec.kwargs["post_process"], dict):
        raise ValueError("kwargs.post_process must be a mapping")
    if isinstance(spec.config, dict) and "model_type" not in spec.config:
        raise ValueError("config needs its model_type (e.g. segformer, mask2former)")
    if spec.config is not None and spec.pretrained:
        raise ValueError("config builds random weights; drop it to load pretrained weights")
    bad = [key for key in spec.kwargs.get("post_process", {}) if key not in POST_PROCESS]
    if bad:
        raise ValueError(f"kwargs.post_process: unknown key {bad[0]!r} (allowed: {', '.join(POST_PROCESS)})")
    if spec.kwargs.get("labels", "names") not in LABEL_MAPPINGS:
        raise ValueError(f"kwargs.labels must be one of {', '.join(LABEL_MAPPINGS)}")
    model_type = spec.config.get("model_type") if isinstance(spec.config, dict) else None
    if model_type is not None and model_type not in (*UNIVERSAL, *SEMANTIC):
        raise ValueError(f"config: model_type {model_type!r} is not a supported segmenter "
                         f"({', '.join((*SEMANTIC, *UNIVERSAL))})")
    if model_type in SEMANTIC and spec.output == "panoptic":
        raise ValueError(f"{model_type} is a semantic segmenter: use output semantic_logits (the panoptic task "
                         f"turns it into segments)")


def load_hf_segmenter(spec: ModelSpec) -> LoadedModel:
    """The entry's model and processor, in eval mode, wrapped as an ``HFSegmenter``."""
    check_entry(spec)
    transformers = import_transformers()
    config = build_config(spec, {})
    auto = (transformers.AutoModelForUniversalSegmentation if config.model_type in UNIVERSAL
            else transformers.AutoModelForSemanticSegmentation)
    net, weights, sha = build_model(spec, auto, config)
    processor = build_processor(spec, net.config)
    model_type = net.config.model_type
    if model_type not in (*UNIVERSAL, *SEMANTIC):
        raise ValueError(f"model {spec.name}: {model_type} is not a supported segmenter")
    if model_type in SEMANTIC and spec.output == "panoptic":
        raise ValueError(f"model {spec.name}: {model_type} is a semantic segmenter: use output semantic_logits")
    module = HFSegmenter(net, processor, spec.output, spec.kwargs.get("post_process", {}),
                         spec.kwargs.get("labels", "names"))
    return LoadedModel(name=spec.name, source="hf", arch=spec.architecture, family=spec.family or _family(net),
                       module=module, preprocess=_preprocess(processor), num_classes=int(net.config.num_labels),
                       weights=weights, weights_sha256=sha,
                       tag=spec.pretrained if isinstance(spec.pretrained, str) else None, output_kind=spec.output,
                       pipeline={"adapter": "hf", "model_type": model_type, **processor_policy(processor),
                                 "labels": spec.kwargs.get("labels", "names"),
                                 "post_process": dict(spec.kwargs.get("post_process", {}))})


HF_ADAPTERS.register("semantic_logits")(load_hf_segmenter)
HF_ADAPTERS.register("panoptic")(load_hf_segmenter)


def _preprocess(processor: Any) -> Preprocess:
    """What the processor does, recorded with results; the loader hands over native images (``crop_mode:
    none``) and the processor resizes them itself. ``input_size`` is its nominal size (latency inputs)."""
    image_processor = getattr(processor, "image_processor", processor)
    size = dict(image_processor.size) if image_processor.size is not None else {}
    height = size.get("height") or size.get("shortest_edge") or 512
    width = size.get("width") or size.get("shortest_edge") or 512
    return Preprocess(input_size=(3, int(height), int(width)), crop_pct=1.0, crop_mode="none",
                      mean=tuple(float(v) for v in image_processor.image_mean),
                      std=tuple(float(v) for v in image_processor.image_std))


def _family(net: nn.Module) -> str:
    """The backbone's camp: SegFormer's Mix Transformer, or a mask-classification model's backbone config."""
    if net.config.model_type == "segformer":
        return "transformer"
    backbone = getattr(net.config, "backbone_config", None)
    name = getattr(backbone, "model_type", None) or getattr(net.config, "backbone", None) or ""
    return family_from_name(str(name)) or family_from_modules(net)
