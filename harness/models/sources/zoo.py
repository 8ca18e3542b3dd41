"""``source: zoo``: the embedded models shipped as safetensors: digits classifiers (harness/zoo/__init__.py),
scenes detectors (harness/zoo/detectors.py) and scenes segmenters (harness/zoo/segmenters.py)."""
from __future__ import annotations

from pathlib import Path

from harness.data.preprocess import Preprocess
from harness.models.checkpoint import file_sha256
from harness.models.source import ModelSource, arch_field, classifier_model
from harness.models.wrapper import LoadedModel, PixelModel
from harness.registry import MODEL_SOURCES, ZOO_MODELS
from harness.schema import Where
from harness.specs import ModelSpec
import harness.zoo  # noqa: F401  (registers the digits classifiers)
from harness.zoo.detectors import DETECTORS
from harness.zoo.segmenters import NUM_CLASSES as SEGMENTER_CLASSES, SEGMENTERS


def zoo_names() -> list[str]:
    return [*ZOO_MODELS.list(), *DETECTORS, *SEGMENTERS]


@MODEL_SOURCES.register("zoo")
class ZooSource(ModelSource):
    name = "zoo"

    def check(self, spec: ModelSpec, where: Where, suite_dir: Path) -> None:
        if spec.architecture not in zoo_names():
            raise where.at(arch_field(spec)).error(
                f"unknown zoo model {spec.architecture!r} (known: {', '.join(zoo_names())})")

    def load(self, spec: ModelSpec, num_classes: int | None) -> LoadedModel:
        if spec.architecture in DETECTORS:
            return _detector(spec)
        if spec.architecture in SEGMENTERS:
            return _segmenter(spec)
        from safetensors.torch import load_file

        entry = ZOO_MODELS.get(spec.architecture)
        net = entry.build()
        net.load_state_dict(load_file(str(entry.weights_file)), strict=True)
        return classifier_model(spec, net, Preprocess.from_timm_config(entry.pretrained_cfg()), "zoo",
                                file_sha256(entry.weights_file), "digits")

    def output_kind(self, spec: ModelSpec) -> str:
        if spec.architecture in DETECTORS:
            return "detections"
        return "semantic_logits" if spec.architecture in SEGMENTERS else "logits"

    def num_classes(self, spec: ModelSpec) -> int | None:
        if spec.architecture in DETECTORS:
            return None  # detectors are scored by category, not checked against a class count
        if spec.architecture in SEGMENTERS:
            return SEGMENTER_CLASSES
        return ZOO_MODELS.get(spec.architecture).pretrained_cfg()["num_classes"] \
            if spec.architecture in ZOO_MODELS else None

    def weights_identity(self, spec: ModelSpec) -> str:
        entry = (DETECTORS.get(spec.architecture) or SEGMENTERS.get(spec.architecture)
                 or ZOO_MODELS.get(spec.architecture))
        return file_sha256(entry.weights_file)


def _detector(spec: ModelSpec) -> LoadedModel:
    """128 x 128 inputs, ``detections`` in input pixels (the detection task maps them to each image's size)."""
    from harness.data.scenes import THINGS  # the embedded detectors were trained on the scenes' thing classes
    from harness.zoo.detectors import INPUT_SIZE, MEAN, STD, DetectorModule

    entry = DETECTORS[spec.architecture]
    categories = list(THINGS)
    module = DetectorModule(entry.load(categories)).eval()
    preprocess = Preprocess((3, INPUT_SIZE, INPUT_SIZE), crop_pct=1.0, crop_mode="squash", mean=MEAN, std=STD)
    return LoadedModel(name=spec.name, source="zoo", arch=spec.architecture, family=spec.family or entry.family,
                       module=module, preprocess=preprocess, num_classes=len(categories), weights="zoo",
                       weights_sha256=file_sha256(entry.weights_file), tag="scenes", output_kind="detections")


def _segmenter(spec: ModelSpec) -> LoadedModel:
    """128 x 128 inputs, ``semantic_logits`` over the scenes' 8 semantic classes at the input's resolution (the
    task resizes them to each label's size)."""
    from harness.zoo.segmenters import INPUT_SIZE, MEAN, STD

    entry = SEGMENTERS[spec.architecture]
    module = PixelModel(entry.load(), MEAN, STD, "semantic_logits").eval()
    preprocess = Preprocess((3, INPUT_SIZE, INPUT_SIZE), crop_pct=1.0, crop_mode="squash", mean=MEAN, std=STD)
    return LoadedModel(name=spec.name, source="zoo", arch=spec.architecture, family=spec.family or entry.family,
                       module=module, preprocess=preprocess, num_classes=SEGMENTER_CLASSES, weights="zoo",
                       weights_sha256=file_sha256(entry.weights_file), tag="scenes", output_kind="semantic_logits")
