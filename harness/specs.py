"""The suite's typed specs: what a suite file says, as dataclasses. A leaf: imports nothing of ours.

``validate(where)`` methods get a ``harness.schema.Where`` and raise ``where.error(...)``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from harness.schema import Where

@dataclass
class ModelSpec:
    name: str
    source: Literal["timm", "zoo", "torchvision", "checkpoint"] = "timm"
    arch: str | None = None  # defaults to name (timm / torchvision architecture, or zoo model name)
    pretrained: bool | str = False  # true, or a pretrained tag such as "a1_in1k"
    checkpoint: Path | None = None
    trust_pickle: bool = False
    family: Literal["cnn", "transformer", "hybrid"] | None = None
    num_classes: int | None = None
    kwargs: dict = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return self.arch or self.name

    def validate(self, where: Where) -> None:
        if self.source == "checkpoint" and self.checkpoint is None:
            raise where.error("source 'checkpoint' needs a 'checkpoint' path")
        if self.source == "zoo" and (self.checkpoint or self.pretrained):
            raise where.error("zoo models ship their weights; drop 'checkpoint'/'pretrained'")


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
    target: str | None = None  # the target form of sources offering several (scenes: detection|semantic|panoptic)
    annotations: Path | None = None  # a COCO json (kind coco); default <root>/../annotations/instances_<split>.json
    masks: bool = False  # decode instance masks into the targets (kind coco)


@dataclass
class TaskSpec:
    kind: str
    name: str | None = None
    params: dict = field(default_factory=dict)
    models: list[str] | None = None  # restrict to these model names (fnmatch); default all
    datasets: list[str] | None = None  # restrict to these dataset names; default all

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
    data_root: str = "data"


@dataclass
class SuiteFile:
    name: str
    version: int | str
    models: list[ModelSpec]
    datasets: list[DatasetSpec]
    tasks: list[TaskSpec]
    description: str = ""
    defaults: Defaults = field(default_factory=Defaults)


def stable_hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
