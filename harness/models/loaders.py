"""Building a LoadedModel from a suite's model entry, per source: zoo, timm, torchvision, checkpoint, hf
(detectors: harness/models/torchvision_detection.py, harness/models/hf_detection.py)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from harness.data.preprocess import Preprocess
from harness.models.checkpoint import file_sha256, load_weights, state_dict_sha256
from harness.models.family import infer_family
from harness.models.wrapper import LoadedModel, PixelModel
from harness.registry import HF_ADAPTERS, MODEL_SOURCES, ZOO_MODELS
import harness.zoo  # noqa: F401  (registers the embedded zoo)
from harness.specs import ModelSpec
from harness.zoo.detectors import DETECTORS
from harness.zoo.segmenters import NUM_CLASSES as SEGMENTER_CLASSES, SEGMENTERS


def load_model(spec: ModelSpec, num_classes: int | None = None) -> LoadedModel:
    """Build the model a suite entry describes, in eval mode, wrapped to take [0, 1] pixels."""
    if spec.source == "predictions":
        from harness.models.predictions import load_predictions_model

        return load_predictions_model(spec)
    if spec.source == "zoo" and spec.architecture in DETECTORS:
        return load_zoo_detector(spec)
    if spec.source == "zoo" and spec.architecture in SEGMENTERS:
        return load_zoo_segmenter(spec)
    if spec.source == "hf":  # transformers models: one adapter per canonical output (harness/models/hf_*.py)
        from harness.models import hf_detection, hf_segmentation  # noqa: F401  (they register the adapters)

        return HF_ADAPTERS.get(spec.output)(spec)
    if declared_output_kind(spec) == "detections":
        from harness.models.torchvision_detection import load_torchvision_detector

        return load_torchvision_detector(spec, build_torchvision)
    net, preprocess, weights, sha, tag = MODEL_SOURCES.get(spec.source)(spec, spec.num_classes or num_classes)
    if spec.preprocess is not None:
        preprocess = replace(preprocess, **spec.preprocess.overrides())
    if spec.checkpoint is not None:  # local weights into the architecture (timm, torchvision or zoo)
        sha = load_weights(net, spec.checkpoint, spec.trust_pickle)
        weights = f"checkpoint:{spec.checkpoint}"
    net.eval()
    output_kind = declared_output_kind(spec)
    module = PixelModel(net, preprocess.mean, preprocess.std, output_kind).eval()
    arch = spec.architecture
    return LoadedModel(
        name=spec.name,
        source=spec.source,
        arch=arch,
        family=spec.family or infer_family(arch, net),
        module=module,
        preprocess=preprocess,
        num_classes=_num_classes(net, module, preprocess),
        weights=weights,
        weights_sha256=sha,
        tag=tag,
        output_kind=output_kind,
    )


def load_zoo_detector(spec: ModelSpec) -> LoadedModel:
    """An embedded detector (harness/zoo/detectors.py): 128 x 128 inputs, ``detections`` in input pixels
    (the detection task maps them to each image's original size)."""
    from harness.data.scenes import THINGS  # the embedded detectors were trained on the scenes' thing classes
    from harness.zoo.detectors import INPUT_SIZE, MEAN, STD, DetectorModule

    entry = DETECTORS[spec.architecture]
    categories = list(THINGS)
    module = DetectorModule(entry.load(categories)).eval()
    preprocess = Preprocess((3, INPUT_SIZE, INPUT_SIZE), crop_pct=1.0, crop_mode="squash", mean=MEAN, std=STD)
    return LoadedModel(name=spec.name, source="zoo", arch=spec.architecture, family=spec.family or entry.family,
                       module=module, preprocess=preprocess, num_classes=len(categories), weights="zoo",
                       weights_sha256=file_sha256(entry.weights_file), tag="scenes", output_kind="detections")


def load_zoo_segmenter(spec: ModelSpec) -> LoadedModel:
    """An embedded semantic segmenter (harness/zoo/segmenters.py): 128 x 128 inputs, ``semantic_logits`` over
    the scenes' 8 semantic classes at the input's resolution (the task resizes them to each label's size)."""
    from harness.zoo.segmenters import INPUT_SIZE, MEAN, STD

    entry = SEGMENTERS[spec.architecture]
    module = PixelModel(entry.load(), MEAN, STD, "semantic_logits").eval()
    preprocess = Preprocess((3, INPUT_SIZE, INPUT_SIZE), crop_pct=1.0, crop_mode="squash", mean=MEAN, std=STD)
    return LoadedModel(name=spec.name, source="zoo", arch=spec.architecture, family=spec.family or entry.family,
                       module=module, preprocess=preprocess, num_classes=SEGMENTER_CLASSES, weights="zoo",
                       weights_sha256=file_sha256(entry.weights_file), tag="scenes", output_kind="semantic_logits")


def torchvision_task(arch: str) -> str:
    """'segmentation', 'detection' or 'classification': which torchvision model family ``arch`` belongs to."""
    import torchvision

    for family in ("segmentation", "detection"):
        if arch in torchvision.models.list_models(module=getattr(torchvision.models, family)):
            return family
    return "classification"


def declared_output_kind(spec: ModelSpec) -> str:
    """The canonical output a suite entry's model returns (harness/evaluation/outputs.py)."""
    if spec.source == "hf":
        return spec.output
    if spec.source == "torchvision" and torchvision_task(spec.architecture) == "segmentation":
        return "semantic_logits"
    if spec.source == "torchvision" and torchvision_task(spec.architecture) == "detection":
        return "detections"
    if spec.source == "zoo" and spec.architecture in SEGMENTERS:
        return "semantic_logits"
    return "logits"


def _num_classes(net: nn.Module, module: PixelModel, preprocess: Preprocess) -> int:
    count = getattr(net, "num_classes", None)
    if isinstance(count, int) and count > 0:
        return count
    with torch.no_grad():
        return int(module(torch.zeros(1, *preprocess.input_size)).shape[1])  # (N, C) or (N, C, h, w)


def pretrained_cfg_name(spec: ModelSpec) -> str:
    """The timm ``arch.tag`` whose pretrained config describes this entry: ``pretrained_cfg`` (a full name or
    just a tag), else the tag in ``arch`` or ``pretrained``, else the bare architecture (timm's default tag)."""
    arch = spec.architecture
    if spec.pretrained_cfg:
        return spec.pretrained_cfg if "." in spec.pretrained_cfg else f"{arch.split('.', 1)[0]}.{spec.pretrained_cfg}"
    if isinstance(spec.pretrained, str) and spec.pretrained and "." not in arch:
        return f"{arch}.{spec.pretrained}"
    return arch


def declared_num_classes(spec: ModelSpec) -> int | None:
    """The model's class count as known without building it or loading weights (None when unknown):
    ``num_classes`` in the entry, the zoo entry's, or the timm pretrained config's."""
    if spec.num_classes is not None:
        return spec.num_classes
    if isinstance(spec.kwargs.get("num_classes"), int):
        return spec.kwargs["num_classes"]
    if spec.source == "hf":  # random-init from a config mapping: its label count; hub configs are not fetched here
        config = spec.config if isinstance(spec.config, dict) else {}
        return config.get("num_labels") or (len(config["id2label"]) if config.get("id2label") else None)
    if spec.source == "zoo":
        if spec.architecture in DETECTORS:
            return None  # detectors are scored by category, not checked against a class count
        if spec.architecture in SEGMENTERS:
            return SEGMENTER_CLASSES
        entry = ZOO_MODELS.get(spec.architecture) if spec.architecture in ZOO_MODELS else None
        return entry.pretrained_cfg()["num_classes"] if entry else None
    if spec.source in ("timm", "checkpoint"):
        from timm.models import get_pretrained_cfg

        try:
            cfg = get_pretrained_cfg(pretrained_cfg_name(spec), allow_unregistered=False)
        except RuntimeError:
            return None
        return int(cfg.num_classes) if cfg is not None and cfg.num_classes else None
    if spec.source == "torchvision":
        return _torchvision_num_classes(spec)
    return None


def _torchvision_num_classes(spec: ModelSpec) -> int | None:
    """From the weights' metadata (no download); torchvision's classifiers default to 1000 classes."""
    import torchvision

    if not spec.pretrained:
        return 1000
    try:
        enum = torchvision.models.get_model_weights(spec.architecture)
        chosen = enum.DEFAULT if spec.pretrained is True else enum[spec.pretrained]
    except (KeyError, ValueError):
        return None
    categories = chosen.meta.get("categories")
    return len(categories) if categories else None


@MODEL_SOURCES.register("zoo")
def _from_zoo(spec: ModelSpec, num_classes: int | None) -> tuple[nn.Module, Preprocess, str, str, str | None]:
    from safetensors.torch import load_file

    entry = ZOO_MODELS.get(spec.architecture)
    net = entry.build()
    net.load_state_dict(load_file(str(entry.weights_file)), strict=True)
    return net, Preprocess.from_timm_config(entry.pretrained_cfg()), "zoo", file_sha256(entry.weights_file), "digits"


@MODEL_SOURCES.register("timm")
def _from_timm(spec: ModelSpec, num_classes: int | None) -> tuple[nn.Module, Preprocess, str, str, str | None]:
    """timm by name; ``pretrained`` goes through timm's normal hub loading (needs the network)."""
    import timm

    name = pretrained_cfg_name(spec)
    kwargs: dict[str, Any] = dict(spec.kwargs)
    if num_classes is not None:  # with pretrained weights too: timm then re-initialises the classifier
        kwargs.setdefault("num_classes", num_classes)
    net = timm.create_model(name, pretrained=bool(spec.pretrained), **kwargs)
    preprocess = Preprocess.from_timm_config(timm.data.resolve_model_data_config(net))
    tag = getattr(net, "pretrained_cfg", {}).get("tag") or None
    if spec.pretrained:
        return net, preprocess, f"timm-hub:{name}", state_dict_sha256(net), tag
    return net, preprocess, "random-init", None, tag


@MODEL_SOURCES.register("checkpoint")
def _from_checkpoint(spec: ModelSpec, num_classes: int | None) -> tuple[nn.Module, Preprocess, str, str, str | None]:
    """A timm architecture with local weights (loaded by load_model from spec.checkpoint); its preprocessing
    and class count come from ``pretrained_cfg`` when given (timm's config only: nothing is downloaded)."""
    local = ModelSpec(**{**spec.__dict__, "pretrained": False, "checkpoint": None})
    return _from_timm(local, num_classes)


@MODEL_SOURCES.register("torchvision")
def _from_torchvision(spec: ModelSpec, num_classes: int | None) -> tuple[nn.Module, Preprocess, str, str, str | None]:
    net, weights, sha, tag, chosen = build_torchvision(spec, num_classes)
    return net, _torchvision_preprocess(spec.architecture, chosen), weights, sha, tag


def build_torchvision(spec: ModelSpec, num_classes: int | None) -> tuple[nn.Module, str, str | None, str | None, Any]:
    """``get_model`` with the entry's weights and kwargs: (net, weights origin, sha256, tag, weights enum or None)."""
    import torchvision

    weights = None
    if spec.pretrained:
        tag = spec.pretrained if isinstance(spec.pretrained, str) else "DEFAULT"
        weights = torchvision.models.get_model_weights(spec.architecture)[tag] if tag != "DEFAULT" else "DEFAULT"
    kwargs = dict(spec.kwargs)
    if num_classes is not None:  # with weights, torchvision refuses a count other than theirs: loud, not dropped
        kwargs.setdefault("num_classes", num_classes)
    if torchvision_task(spec.architecture) != "classification":
        kwargs.setdefault("weights_backbone", None)  # else torchvision silently downloads ImageNet backbone weights
    net = torchvision.models.get_model(spec.architecture, weights=weights, **kwargs)
    if weights is None:
        return net, "random-init", None, None, None
    return net, f"torchvision:{spec.architecture}.{weights}", state_dict_sha256(net), str(weights), weights


def _torchvision_preprocess(arch: str, weights: Any) -> Preprocess:
    """torchvision's preset as a Preprocess: classification's resize / crop; segmentation's resize to 520
    (squashed to a square here so images batch; predictions are resized back to each label's size)."""
    import torchvision

    if torchvision_task(arch) == "segmentation":
        size = 520
        if weights is not None:
            enum = torchvision.models.get_model_weights(arch)
            size = int((enum.DEFAULT if weights == "DEFAULT" else weights).transforms().resize_size[0])
        return Preprocess(input_size=(3, size, size), crop_pct=1.0, crop_mode="squash")
    crop, resize, interpolation = 224, 256, "bilinear"
    if weights is not None:
        enum = torchvision.models.get_model_weights(arch)
        chosen = enum.DEFAULT if weights == "DEFAULT" else weights
        preset = chosen.transforms()
        crop = int(preset.crop_size[0])
        resize = int(preset.resize_size[0])
        interpolation = preset.interpolation.value
    return Preprocess(input_size=(3, crop, crop), interpolation=interpolation, crop_pct=crop / resize)
