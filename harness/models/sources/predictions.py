"""``source: predictions``: saved outputs of a model run elsewhere, scored as if the model ran here
(harness/models/predictions.py reads the files)."""
from __future__ import annotations

from pathlib import Path

from harness.models.source import ModelSource
from harness.models.wrapper import LoadedModel
from harness.registry import MODEL_SOURCES
from harness.specs import ModelSpec


@MODEL_SOURCES.register("predictions")
class PredictionsSource(ModelSource):
    name = "predictions"

    def load(self, spec: ModelSpec, num_classes: int | None) -> LoadedModel:
        from harness.models.predictions import load_predictions_model

        return load_predictions_model(spec)

    def output_kind(self, spec: ModelSpec) -> str:
        from harness.models.predictions import open_predictions

        return open_predictions(Path(spec.path)).kind

    def weights_identity(self, spec: ModelSpec) -> str:
        from harness.models.predictions import content_sha256

        return content_sha256(Path(spec.path))
