"""``source: hf``: Hugging Face ``transformers`` models, one adapter per canonical output the entry's
``output`` names (harness/models/hf_detection.py, harness/models/hf_segmentation.py)."""
from __future__ import annotations

from pathlib import Path

from harness.models.source import ModelSource
from harness.models.wrapper import LoadedModel
from harness.registry import HF_ADAPTERS, MODEL_SOURCES
from harness.schema import Where
from harness.specs import ModelSpec


@MODEL_SOURCES.register("hf")
class HFSource(ModelSource):
    name = "hf"

    def check(self, spec: ModelSpec, where: Where, suite_dir: Path) -> None:
        """Local folders (weights in ``arch``, ``config``, ``processor``) are relative to the suite file like every
        other path; a value naming no such folder stays as written (a hub name). A missing [hf] extra is refused
        when the suite runs (harness/extras.py), not here."""
        if spec.output in ("semantic_logits", "panoptic"):
            from harness.models.hf_segmentation import check_entry

            try:
                check_entry(spec)
            except ValueError as exc:
                raise where.error(str(exc)) from None
        if spec.pretrained and (suite_dir / spec.architecture).is_dir():
            spec.arch = str((suite_dir / spec.architecture).resolve())
        for key in ("config", "processor"):
            value = getattr(spec, key)
            if isinstance(value, str) and (suite_dir / value).is_dir():
                setattr(spec, key, str((suite_dir / value).resolve()))

    def load(self, spec: ModelSpec, num_classes: int | None) -> LoadedModel:
        from harness.models import hf_detection, hf_segmentation  # noqa: F401  (they register the adapters)

        return HF_ADAPTERS.get(spec.output)(spec)

    def output_kind(self, spec: ModelSpec) -> str:
        return spec.output

    def num_classes(self, spec: ModelSpec) -> int | None:
        """Random-init from a config mapping: its label count; hub configs are not fetched here."""
        config = spec.config if isinstance(spec.config, dict) else {}
        return config.get("num_labels") or (len(config["id2label"]) if config.get("id2label") else None)

    def weights_identity(self, spec: ModelSpec) -> str:
        from harness.models.hf_common import hf_weights_identity

        return hf_weights_identity(spec)
