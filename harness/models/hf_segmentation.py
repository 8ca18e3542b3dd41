"""Hugging Face ``transformers`` segmenters as ``source: hf`` models (the ``[hf]`` extra): SegFormer and
UperNet (``output: semantic_logits``), Mask2Former and OneFormer (``semantic_logits`` or ``panoptic``).

A model entry::

    - {name: segformer-b0, source: hf, arch: nvidia/segformer-b0-finetuned-ade-512-512, pretrained: true,
       output: semantic_logits}
    - {name: m2f-swin-t, source: hf, arch: facebook/mask2former-swin-tiny-coco-panoptic, pretrained: true,
       output: panoptic}

- ``arch``: a hub name or a local directory (what ``save_pretrained`` writes: config, weights, processor).
- ``pretrained``: true (or a hub revision) loads the weights with ``from_pretrained``; false builds the
  architecture with random weights from the config of ``arch``, or offline from ``kwargs.config``.
- ``kwargs``: ``config`` (a transformers config as a mapping with its ``model_type``: random weights, no
  download), ``processor`` (image-processor settings over its defaults), ``post_process`` (the panoptic
  post-processing's ``threshold``, ``mask_threshold``, ``overlap_mask_area_threshold``) and ``labels``: how
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

import hashlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from harness.evaluation.outputs import PanopticPrediction
from harness.models.checkpoint import file_sha256, state_dict_sha256
from harness.models.family import family_from_modules, family_from_name
from harness.models.wrapper import LoadedModel, Preprocess
from harness.registry import HF_ADAPTERS
from harness.specs import ModelSpec

KWARGS = ("config", "processor", "post_process", "labels")
POST_PROCESS = ("threshold", "mask_threshold", "overlap_mask_area_threshold")
LABEL_MAPPINGS = ("names", "order", "ids")
UNIVERSAL = ("mask2former", "maskformer", "oneformer")  # mask-classification models (query masks + classes)
SEMANTIC = ("segformer", "upernet")  # per-pixel classifiers: their logits are the semantic map
# image processors that need no files, for random-init models built from ``kwargs.config``
DEFAULT_PROCESSORS = {"segformer": "SegformerImageProcessor", "upernet": "SegformerImageProcessor",
                      "mask2former": "Mask2FormerImageProcessor", "maskformer": "MaskFormerImageProcessor"}


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
    """Mistakes an hf entry can show before anything loads (raised as the suite's one-line error)."""
    if spec.num_classes is not None or spec.checkpoint is not None or spec.preprocess is not None:
        raise ValueError("num_classes, checkpoint and preprocess do not apply to hf models: their config, "
                         "weights and image processor say it (use kwargs.config / kwargs.processor)")
    unknown = [key for key in spec.kwargs if key not in KWARGS]
    if unknown:
        raise ValueError(f"kwargs: unknown key {unknown[0]!r} for an hf segmenter (allowed: {', '.join(KWARGS)})")
    for key in ("config", "processor", "post_process"):
        if key in spec.kwargs and not isinstance(spec.kwargs[key], dict):
            raise ValueError(f"kwargs.{key} must be a mapping")
    config = spec.kwargs.get("config")
    if config is not None and "model_type" not in config:
        raise ValueError("kwargs.config needs its model_type (e.g. segformer, mask2former)")
    if config is not None and spec.pretrained:
        raise ValueError("kwargs.config builds random weights; drop it to load pretrained weights")
    bad = [key for key in spec.kwargs.get("post_process", {}) if key not in POST_PROCESS]
    if bad:
        raise ValueError(f"kwargs.post_process: unknown key {bad[0]!r} (allowed: {', '.join(POST_PROCESS)})")
    if spec.kwargs.get("labels", "names") not in LABEL_MAPPINGS:
        raise ValueError(f"kwargs.labels must be one of {', '.join(LABEL_MAPPINGS)}")
    model_type = config.get("model_type") if config else None
    if model_type is not None and model_type not in (*UNIVERSAL, *SEMANTIC):
        raise ValueError(f"kwargs.config: model_type {model_type!r} is not a supported segmenter "
                         f"({', '.join((*SEMANTIC, *UNIVERSAL))})")
    if model_type in SEMANTIC and spec.output == "panoptic":
        raise ValueError(f"{model_type} is a semantic segmenter: use output semantic_logits (the panoptic task "
                         f"turns it into segments)")


def load_hf_segmenter(spec: ModelSpec) -> LoadedModel:
    """The entry's model and processor, in eval mode, wrapped as an ``HFSegmenter``."""
    check_entry(spec)
    net, processor = _build(spec)
    model_type = net.config.model_type
    if model_type not in (*UNIVERSAL, *SEMANTIC):
        raise ValueError(f"model {spec.name}: {model_type} is not a supported segmenter")
    if model_type in SEMANTIC and spec.output == "panoptic":
        raise ValueError(f"model {spec.name}: {model_type} is a semantic segmenter: use output semantic_logits")
    module = HFSegmenter(net.eval(), processor, spec.output, spec.kwargs.get("post_process", {}),
                         spec.kwargs.get("labels", "names"))
    weights, sha = "random-init", None
    if spec.pretrained and Path(spec.architecture).is_dir():
        weights, sha = f"hf-local:{spec.architecture}", hf_weights_identity(spec)
    elif spec.pretrained:
        weights, sha = f"hf-hub:{spec.architecture}", state_dict_sha256(net)
    return LoadedModel(name=spec.name, source="hf", arch=spec.architecture, family=spec.family or _family(net),
                       module=module, preprocess=_preprocess(processor), num_classes=int(net.config.num_labels),
                       weights=weights, weights_sha256=sha,
                       tag=spec.pretrained if isinstance(spec.pretrained, str) else None, output_kind=spec.output)


HF_ADAPTERS.register("semantic_logits")(load_hf_segmenter)
HF_ADAPTERS.register("panoptic")(load_hf_segmenter)


def hf_weights_identity(spec: ModelSpec) -> str:
    """Known before loading: a local directory's files (sha256 of each), else the hub name + revision + the
    transformers version that resolves it; random weights (seeded; the config is part of the entry) name the
    transformers version that initialises them."""
    folder = Path(spec.architecture)
    if folder.is_dir():
        digest = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
        return digest.hexdigest()
    import transformers

    if spec.pretrained:
        revision = spec.pretrained if isinstance(spec.pretrained, str) else "main"
        return f"hf:{spec.architecture}@{revision}:transformers {transformers.__version__}"
    return f"random-init:transformers {transformers.__version__}"


def _build(spec: ModelSpec) -> tuple[nn.Module, Any]:
    import transformers

    revision = {"revision": spec.pretrained} if isinstance(spec.pretrained, str) else {}
    config_kwargs = spec.kwargs.get("config")
    if config_kwargs is not None:
        config = transformers.AutoConfig.for_model(**config_kwargs)
    else:
        config = transformers.AutoConfig.from_pretrained(spec.architecture, **revision)
    auto = (transformers.AutoModelForUniversalSegmentation if config.model_type in UNIVERSAL
            else transformers.AutoModelForSemanticSegmentation)
    if spec.pretrained:
        net = auto.from_pretrained(spec.architecture, **revision)
    else:
        net = auto.from_config(config)
    processor_kwargs = dict(spec.kwargs.get("processor", {}))
    if config_kwargs is None:
        processor_class = (transformers.AutoProcessor if config.model_type == "oneformer"  # image + text tokenizer
                           else transformers.AutoImageProcessor)
        processor = processor_class.from_pretrained(spec.architecture, **revision, **processor_kwargs)
    elif config.model_type in DEFAULT_PROCESSORS:
        processor = getattr(transformers, DEFAULT_PROCESSORS[config.model_type])(**processor_kwargs)
    else:
        raise ValueError(f"model {spec.name}: {config.model_type}'s processor needs files (OneFormer's holds a "
                         f"tokenizer): give a hub name or a saved directory as arch instead of kwargs.config")
    return net, processor


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
