"""The model-source contract: how a suite entry's ``source`` becomes a LoadedModel.

One ``ModelSource`` subclass per source, registered in ``MODEL_SOURCES`` under the name a suite writes
(``source: timm``); the built-in ones live in harness/models/sources/, a plugin registers its own the same
way. The suite validator, the loader, the class-count check and the cache key ask the source, never the
source's name.
"""
from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from harness.data.preprocess import Preprocess
from harness.models.checkpoint import load_weights
from harness.models.family import infer_family
from harness.models.wrapper import LoadedModel, PixelModel
from harness.schema import Where
from harness.specs import ModelSpec


class ModelSource(ABC):
    name: ClassVar[str]

    def check(self, spec: ModelSpec, where: Where, suite_dir: Path) -> None:
        """Suite-load checks that need no weights (the architecture exists, local folders resolve relative to
        the suite file); ``where.at(key)`` points at a field of the entry. Raise ``where.error(...)``."""

    @abstractmethod
    def load(self, spec: ModelSpec, num_classes: int | None) -> LoadedModel:
        """The model in eval mode, wrapped to take [0, 1] pixels (``num_classes``: the dataset's, when the
        entry gives none)."""

    def output_kind(self, spec: ModelSpec) -> str:
        """The canonical output the model returns (harness/evaluation/outputs.py), known without loading it."""
        return "logits"

    def num_classes(self, spec: ModelSpec) -> int | None:
        """The class count known without building the model or fetching weights (None: unknown)."""
        return None

    def weights_identity(self, spec: ModelSpec) -> str:
        """The weights' identity known before loading (a file's sha256, or a hub name + tag + the version of
        the library that resolves it), so a cached job never loads its model. Default: seeded random init."""
        return "random-init"


def classifier_model(spec: ModelSpec, net: nn.Module, preprocess: Preprocess, weights: str, sha: str | None,
                     tag: str | None, output_kind: str = "logits") -> LoadedModel:
    """A plain network as a LoadedModel: the entry's preprocess overrides, its local ``checkpoint`` loaded into
    the architecture, normalisation inside the module."""
    if spec.preprocess is not None:
        preprocess = replace(preprocess, **spec.preprocess.overrides())
    if spec.checkpoint is not None:
        sha = load_weights(net, spec.checkpoint, spec.trust_pickle)
        weights = f"checkpoint:{spec.checkpoint}"
    net.eval()
    module = PixelModel(net, preprocess.mean, preprocess.std, output_kind).eval()
    return LoadedModel(name=spec.name, source=spec.source, arch=spec.architecture,
                       family=spec.family or infer_family(spec.architecture, net), module=module,
                       preprocess=preprocess, num_classes=_num_classes(net, module, preprocess), weights=weights,
                       weights_sha256=sha, tag=tag, output_kind=output_kind)


def _num_classes(net: nn.Module, module: PixelModel, preprocess: Preprocess) -> int:
    count = getattr(net, "num_classes", None)
    if isinstance(count, int) and count > 0:
        return count
    with torch.no_grad():
        return int(module(torch.zeros(1, *preprocess.input_size)).shape[1])  # (N, C) or (N, C, h, w)


def check_known(arch: str, known: list[str], library: str, where: Where, base: str | None = None) -> None:
    """A one-line error for an architecture ``library`` does not know, with the closest names as hints."""
    if (base or arch) in known:
        return
    close = difflib.get_close_matches(base or arch, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise where.error(f"unknown {library} architecture {arch!r}{hint}")


def arch_field(spec: ModelSpec) -> str:
    """The entry's key that names the architecture (``arch``, else the ``name`` it defaults to)."""
    return "arch" if spec.arch else "name"
