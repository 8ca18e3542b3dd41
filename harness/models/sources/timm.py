"""``source: timm`` (a timm architecture, hub weights with ``pretrained``) and ``source: checkpoint`` (a timm
architecture with local weights; preprocessing and class count from timm's config, nothing downloaded)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data.preprocess import Preprocess
from harness.env import library_versions
from harness.models.checkpoint import state_dict_sha256
from harness.models.source import ModelSource, arch_field, check_known, classifier_model
from harness.models.wrapper import LoadedModel
from harness.registry import MODEL_SOURCES
from harness.schema import Where
from harness.specs import ModelSpec


def pretrained_cfg_name(spec: ModelSpec) -> str:
    """The timm ``arch.tag`` whose pretrained config describes this entry: ``pretrained_cfg`` (a full name or
    just a tag), else the tag in ``arch`` or ``pretrained``, else the bare architecture (timm's default tag)."""
    arch = spec.architecture
    if spec.pretrained_cfg:
        return spec.pretrained_cfg if "." in spec.pretrained_cfg else f"{arch.split('.', 1)[0]}.{spec.pretrained_cfg}"
    if isinstance(spec.pretrained, str) and spec.pretrained and "." not in arch:
        return f"{arch}.{spec.pretrained}"
    return arch


@MODEL_SOURCES.register("timm")
class TimmSource(ModelSource):
    name = "timm"

    def check(self, spec: ModelSpec, where: Where, suite_dir: Path) -> None:
        import timm

        base = spec.architecture.split(".", 1)[0]
        if not timm.is_model(base):
            check_known(spec.architecture, timm.list_models(), "timm", where.at(arch_field(spec)), base)
        if spec.pretrained_cfg is not None:
            _check_pretrained_cfg(spec, where.at("pretrained_cfg"))

    def load(self, spec: ModelSpec, num_classes: int | None) -> LoadedModel:
        """``pretrained`` goes through timm's own hub loading (needs the network)."""
        import timm

        name = pretrained_cfg_name(spec)
        kwargs: dict[str, Any] = dict(spec.kwargs)
        count = spec.num_classes or num_classes
        if count is not None:  # with pretrained weights too: timm then re-initialises the classifier
            kwargs.setdefault("num_classes", count)
        pretrained = bool(spec.pretrained) and spec.source == "timm"
        net = timm.create_model(name, pretrained=pretrained, **kwargs)
        preprocess = Preprocess.from_timm_config(timm.data.resolve_model_data_config(net))
        tag = getattr(net, "pretrained_cfg", {}).get("tag") or None
        if pretrained:
            return classifier_model(spec, net, preprocess, f"timm-hub:{name}", state_dict_sha256(net), tag)
        return classifier_model(spec, net, preprocess, "random-init", None, tag)

    def num_classes(self, spec: ModelSpec) -> int | None:
        from timm.models import get_pretrained_cfg

        try:
            cfg = get_pretrained_cfg(pretrained_cfg_name(spec), allow_unregistered=False)
        except RuntimeError:
            return None
        return int(cfg.num_classes) if cfg is not None and cfg.num_classes else None

    def weights_identity(self, spec: ModelSpec) -> str:
        if spec.pretrained:
            return f"timm:{spec.architecture}:{spec.pretrained}@{library_versions().get('timm')}"
        return "random-init"


@MODEL_SOURCES.register("checkpoint")
class CheckpointSource(TimmSource):
    """A timm architecture whose weights are the entry's ``checkpoint`` (loaded by ``classifier_model``)."""

    name = "checkpoint"


def _check_pretrained_cfg(spec: ModelSpec, where: Where) -> None:
    """``pretrained_cfg`` must name a timm pretrained config of this architecture (resolved offline)."""
    from timm.models import get_pretrained_cfg

    name = pretrained_cfg_name(spec)
    if name.split(".", 1)[0] != spec.architecture.split(".", 1)[0]:
        raise where.error(f"{spec.pretrained_cfg!r} is a config of another architecture than {spec.architecture!r}")
    try:
        found = get_pretrained_cfg(name, allow_unregistered=False)
    except RuntimeError:  # timm: "Invalid pretrained tag"
        found = None
    if found is None:
        raise where.error(f"timm has no pretrained config {name!r}")
