"""The suite's typed specs: what a suite file says, as dataclasses. A leaf: imports nothing of ours.

``validate(where)`` methods get a ``harness.schema.Where`` and raise ``where.error(...)``.
"""
from __future__ import annotations

import hashlib
import os
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from harness.schema import Where

# What a device may be called, in a suite or on the command line (``torch.device`` accepts many more).
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# A suite name becomes a folder name (reports/<name>): no path separators, no leading dot.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def device_problem(name: str) -> str | None:
    """Why ``name`` is not a device this harness runs on, or None when it is one."""
    if DEVICE_PATTERN.fullmatch(name):
        return None
    return f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)"


@dataclass
class PreprocessSpec:
    """Eval preprocessing overrides for a model entry; unset fields keep the resolved config's value."""

    input_size: list[int] | None = None  # [3, H, W], or a single int for a square input
    crop_pct: float | None = None
    crop_mode: Literal["center", "squash", "border"] | None = None
    interpolation: Literal["bilinear", "bicubic", "nearest", "lanczos", "box", "hamming"] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None

    def validate(self, where: Where) -> None:
        if self.input_size is not None:
            if len(self.input_size) == 1:
                self.input_size = [3, self.input_size[0], self.input_size[0]]
            if len(self.input_size) != 3 or self.input_size[0] != 3 or min(self.input_size) < 1:
                raise where.error(f"input_size must be [3, H, W] or one side length, got {self.input_size}")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise where.error(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is not None and len(values) != 3:
                raise where.error(f"{key} needs 3 values (R, G, B), got {len(values)}")
        if self.std is not None and min(self.std) <= 0:
            raise where.error("std values must be positive")

    def overrides(self) -> dict[str, Any]:
        """The fields that are set, as timm pretrained-config keys."""
        return {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.__dict__.items() if v is not None}


@dataclass
class ModelSpec:
    name: str
    source: str = "timm"  # a registered model source (harness/models/sources/, or a plugin's)
    arch: str | None = None  # defaults to name (timm / torchvision architecture, zoo model name, HF hub name or folder)
    pretrained: bool | str = False  # true, or a pretrained tag such as "a1_in1k"
    checkpoint: Path | None = None
    trust_pickle: bool = False
    family: Literal["cnn", "transformer", "hybrid"] | None = None
    num_classes: int | None = None
    kwargs: dict = field(default_factory=dict)
    # timm "arch.tag" whose pretrained config (preprocessing, class count) describes local weights; no download
    pretrained_cfg: str | None = None
    preprocess: PreprocessSpec | None = None
    # source hf: the model config for random init - config kwargs (with ``model_type``) or a local folder - and
    # image-processor overrides (kwargs, or a folder holding preprocessor_config.json)
    config: dict | str | None = None
    processor: dict | str | None = None
    score_threshold: float | None = None  # detectors: keep detections scoring at least this
    # source predictions: saved outputs scored without a forward pass (docs/predictions.md): a COCO results json,
    # a COCO-panoptic json (PNGs in the folder of the same name) or a folder of label PNGs; may use {data_root}
    path: str | None = None
    # source predictions, label PNGs only: the files' label convention (docs/predictions.md). reduce_zero_label in
    # mmseg's own meaning (its format_only writes train id + 1 for such datasets): value 0 means no class predicted
    # and every other value is lowered by one; ignore_index: the value meaning no class predicted (default 255
    # with reduce_zero_label, as mmseg's reduction gives; else none: every pixel must be a class)
    reduce_zero_label: bool = False
    ignore_index: int | None = None
    output: Literal["semantic_logits", "panoptic", "detections"] | None = None  # source hf: what the model returns

    @property
    def architecture(self) -> str:
        return self.arch or self.name

    def validate(self, where: Where) -> None:
        if self.source == "checkpoint" and self.checkpoint is None:
            raise where.error("source 'checkpoint' needs a 'checkpoint' path")
        if self.source == "zoo" and self.pretrained:
            raise where.error("zoo models ship their weights; drop 'pretrained' (a 'checkpoint' loads your own "
                              "weights into the zoo architecture)")
        if self.pretrained_cfg is not None and self.source not in ("timm", "checkpoint"):
            raise where.error("'pretrained_cfg' names a timm config; it applies to sources timm and checkpoint")
        if self.num_classes is not None and self.num_classes < 1:
            raise where.error("'num_classes' must be positive")
        if (self.source == "hf") != (self.output is not None):
            raise where.error("source 'hf' needs 'output' (semantic_logits, panoptic or detections: what the model "
                              "returns)" if self.source == "hf" else "'output' applies to source hf only")
        if (self.config is not None or self.processor is not None) and self.source != "hf":
            raise where.error("'config' and 'processor' apply to source hf")
        if self.source == "hf" and not self.pretrained and self.config is None:
            raise where.error("source hf needs 'pretrained: true' (hub or folder weights) or a 'config' to build "
                              "a random-init model from")
        if (self.path is not None) != (self.source == "predictions"):
            raise where.error("source 'predictions' needs a 'path' (saved outputs), and 'path' is for that source only")
        if self.source == "predictions" and (self.pretrained or self.checkpoint or self.family is None):
            raise where.error("source 'predictions' takes no weights ('pretrained', 'checkpoint') and needs 'family' "
                              "(cnn, transformer or hybrid: saved outputs do not say which camp made them)")
        for key in ("reduce_zero_label", "ignore_index"):
            if getattr(self, key) not in (False, None) and (self.source != "predictions"
                                                           or str(self.path).lower().endswith(".json")):
                raise where.at(key).error("describes the labels of saved label PNGs: it applies to source "
                                          "'predictions' with a folder 'path' (semantic segmentation)")
        if self.ignore_index is not None and not 0 <= self.ignore_index <= 65535:
            raise where.at("ignore_index").error(f"must be a PNG value in 0..65535, got {self.ignore_index}")


@dataclass
class SubsetSpec:
    n: int | None = None
    seed: int = 0
    ids: Path | None = None  # a file listing sample ids (relative paths for image folders, indices otherwise)

    def validate(self, where: Where) -> None:
        if (self.n is None) == (self.ids is None):
            raise where.error("give exactly one of 'n' (a seeded random subset) or 'ids' (an ID-list file)")
        if self.n is not None and self.n <= 0:
            raise where.error("'n' must be positive")


@dataclass
class DatasetSpec:
    name: str
    kind: str
    split: str = "test"
    root: str | None = None  # may use {data_root}
    subset: SubsetSpec | None = None
    class_map: Path | None = None
    on_corrupt: Literal["fail", "skip"] = "fail"
    download: bool = False
    num_classes: int | None = None
    # dense-prediction sources (scenes, coco, segfolder, coco_panoptic); None = the kind's or preset's default
    target: str | None = None  # the target form of sources offering several (scenes: detection|semantic|panoptic)
    preset: Literal["ade20k", "cityscapes", "voc"] | None = None  # segfolder layout
    images: str | None = None  # image folder, relative to root
    annotations: str | None = None  # label-PNG folder (segfolder), panoptic json (coco_panoptic), instances json
    #                                 (coco; default <root>/../annotations/instances_<split>.json) or the release's
    #                                 mappings folder (objectnet; default <root>/../mappings)
    masks: bool = False  # decode instance masks into the targets (kind coco)
    ignore_index: int | None = None  # label value left unscored (segfolder; default 255)
    reduce_zero_label: bool | None = None  # ADE20K's labels: 0 becomes ignore_index, every other value minus 1
    class_names: Path | None = None  # a text file, one class name per line in label order
    # ImageNet-R / -A (harness/data/imagenet_shifts.py): "masked" restricts the argmax to the set's 200 classes
    # (the standard protocol), "1000-way" scores it over all 1000
    protocol: Literal["masked", "1000-way"] | None = None


@dataclass
class TaskSpec:
    kind: str
    name: str | None = None
    params: dict = field(default_factory=dict)
    models: list[str] | None = None  # restrict to these model names (fnmatch); default all
    datasets: list[str] | None = None  # restrict to these dataset names; default all
    # extra evaluators fed the same passes: each {kind: <registered evaluator>, name: ..., <its params>}
    evaluators: list[dict] | None = None
    # datasets by role beside the evaluated one (``eval``), e.g. {shifted: [a, b]}; the roles a task takes are
    # its ``dataset_roles``
    roles: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.name or self.kind


@dataclass
class Defaults:
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    limit: int | None = None
    data_root: str = "data"  # relative to the suite file; --data-root on the command line replaces it
    # accuracy passes on CUDA: strict IEEE fp32 (TF32 off, cuDNN deterministic) or tf32 (harness/numerics.py)
    precision: str = "fp32"

    def validate(self, where: Where) -> None:
        if self.precision not in ("fp32", "tf32"):
            raise where.at("precision").error(f"must be fp32 or tf32 (accuracy passes; timings set their own "
                                              f"precision in the latency task), got {self.precision!r}")
        for key, least in (("batch_size", 1), ("workers", 0), ("limit", 1)):
            value = getattr(self, key)
            if value is not None and value < least:
                raise where.at(key).error(f"must be {'positive' if least else 'non-negative'}, got {value}")
        problem = device_problem(self.device)
        if problem:
            raise where.at("device").error(problem)


@dataclass
class SuiteFile:
    name: str
    version: int | str
    models: list[ModelSpec]
    datasets: list[DatasetSpec]
    tasks: list[TaskSpec]
    description: str = ""
    defaults: Defaults = field(default_factory=Defaults)
    gate: dict | None = None  # regression-gate policy (harness/gate/policy.py, docs/gate.md)
    pairs: list[list[str]] = field(default_factory=list)  # [[model, model], ...]: the report's matched pairs
    # modules to import before the suite is checked (they register tasks, evaluators...: harness/plugins.py)
    plugins: list[str] = field(default_factory=list)

    def validate(self, where: Where) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise where.at("name").error(
                f"{self.name!r} is not a valid suite name (letters, digits, '-', '_', '.'; no path separators; "
                "it names the output folder)")
        names = {m.name for m in self.models}
        for i, pair in enumerate(self.pairs):
            unknown = [m for m in pair if m not in names]
            if len(pair) != 2 or pair[0] == pair[1] or unknown:
                problem = f"unknown model {unknown[0]!r}" if unknown else f"got {pair}"
                raise where.at("pairs").error(f"pair {i} must name two different models of the suite ({problem})")


def stable_hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand_data_root(root: str, data_root: str, base: Path) -> str:
    """``root`` with ``{data_root}`` filled in, as an absolute path; what stays relative is relative to
    ``base``, the folder of the suite file that wrote it."""
    return os.path.abspath(base / Path(root.replace("{data_root}", data_root)).expanduser())
