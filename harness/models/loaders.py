"""Building a LoadedModel from a suite's model entry: its ``source`` names a registered ModelSource
(harness/models/source.py; the built-in ones in harness/models/sources/), which does the work."""
from __future__ import annotations

from harness.models.checkpoint import file_sha256
from harness.models.source import ModelSource
import harness.models.sources  # noqa: F401  (registers the built-in sources)
from harness.models.wrapper import LoadedModel
from harness.registry import MODEL_SOURCES
from harness.specs import ModelSpec


def model_source(spec: ModelSpec) -> ModelSource:
    return MODEL_SOURCES.get(spec.source)()


def load_model(spec: ModelSpec, num_classes: int | None = None) -> LoadedModel:
    """Build the model a suite entry describes, in eval mode, wrapped to take [0, 1] pixels."""
    return model_source(spec).load(spec, num_classes)


def declared_output_kind(spec: ModelSpec) -> str:
    """The canonical output a suite entry's model returns (harness/evaluation/outputs.py)."""
    return model_source(spec).output_kind(spec)


def declared_num_classes(spec: ModelSpec) -> int | None:
    """The model's class count as known without building it or loading weights (None when unknown):
    ``num_classes`` in the entry (or its kwargs), else what its source knows."""
    if spec.num_classes is not None:
        return spec.num_classes
    if isinstance(spec.kwargs.get("num_classes"), int):
        return spec.kwargs["num_classes"]
    return model_source(spec).num_classes(spec)


def weights_identity(spec: ModelSpec) -> str:
    """The weights' identity known before loading, so cached jobs never load their model: a local checkpoint's
    sha256, else the source's (a file's sha256, or the hub name + tag + the library version that resolves it:
    hub tags are immutable releases)."""
    if spec.checkpoint is not None:
        return file_sha256(spec.checkpoint)
    return model_source(spec).weights_identity(spec)
