"""``source: torchvision``: classifiers, semantic segmenters and detectors (harness/models/torchvision_detection.py)
by architecture name, with torchvision's weights enum for ``pretrained``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from harness.data.preprocess import Preprocess
from harness.env import library_versions
from harness.models.checkpoint import state_dict_sha256
from harness.models.source import ModelSource, arch_field, check_known, classifier_model
from harness.models.wrapper import LoadedModel
from harness.registry import MODEL_SOURCES
from harness.schema import Where
from harness.specs import ModelSpec


def torchvision_task(arch: str) -> str:
    """'segmentation', 'detection' or 'classification': which torchvision model family ``arch`` belongs to."""
    import torchvision

    for family in ("segmentation", "detection"):
        if arch in torchvision.models.list_models(module=getattr(torchvision.models, family)):
            return family
    return "classification"


@MODEL_SOURCES.register("torchvision")
class TorchvisionSource(ModelSource):
    name = "torchvision"

    def check(self, spec: ModelSpec, where: Where, suite_dir: Path) -> None:
        import torchvision

        check_known(spec.architecture, torchvision.models.list_models(), "torchvision", where.at(arch_field(spec)))

    def load(self, spec: ModelSpec, num_classes: int | None) -> LoadedModel:
        if self.output_kind(spec) == "detections":
            from harness.models.torchvision_detection import load_torchvision_detector

            return load_torchvision_detector(spec, build_torchvision)
        net, weights, sha, tag, chosen = build_torchvision(spec, spec.num_classes or num_classes)
        return classifier_model(spec, net, _preprocess(spec.architecture, chosen), weights, sha, tag,
                                self.output_kind(spec))

    def output_kind(self, spec: ModelSpec) -> str:
        return {"segmentation": "semantic_logits", "detection": "detections"}.get(
            torchvision_task(spec.architecture), "logits")

    def num_classes(self, spec: ModelSpec) -> int | None:
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

    def weights_identity(self, spec: ModelSpec) -> str:
        if spec.pretrained:
            return f"torchvision:{spec.architecture}:{spec.pretrained}@{library_versions().get('torchvision')}"
        return "random-init"


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


def _preprocess(arch: str, weights: Any) -> Preprocess:
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
