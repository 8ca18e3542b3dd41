"""What every Hugging Face ``transformers`` adapter shares (``source: hf``, the ``[hf]`` extra): building the
config, the model and its image processor from a suite entry, and the weights' identity for cache keys.

An entry is built one of three ways:
- ``pretrained: true`` (or a hub revision): ``from_pretrained(arch)`` for model and processor; ``arch`` is a
  hub name (needs the network) or a local folder written by ``save_pretrained`` (offline).
- ``config: {model_type: ..., ...}``: a random-init model from those config kwargs (offline); the image
  processor is the model type's default one.
- ``config: path/to/folder``: a random-init model from the folder's config.json.
``processor`` overrides the image processor (kwargs, or a folder holding preprocessor_config.json);
``num_classes`` sets the config's ``num_labels``. The adapters (hf_detection.py, hf_segmentation.py) are
registered per canonical output in ``HF_ADAPTERS``; an entry's ``output`` picks one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from harness.extras import install_hint
from harness.models.checkpoint import folder_sha256, load_weights, state_dict_sha256
from harness.specs import ModelSpec

INSTALL_HINT = f"source hf needs the transformers package: {install_hint('hf')}"


def import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return transformers


def _revision(spec: ModelSpec) -> dict[str, str]:
    return {"revision": spec.pretrained} if isinstance(spec.pretrained, str) else {}


def build_config(spec: ModelSpec, overrides: Mapping[str, Any]) -> Any:
    """The entry's config: the pretrained model's, or the random-init ``config`` (kwargs or folder); then
    ``overrides`` (config attributes) and ``num_classes`` (as ``num_labels``)."""
    transformers = import_transformers()
    overrides = dict(overrides)
    if spec.num_classes is not None:
        overrides["num_labels"] = spec.num_classes
    if spec.pretrained:
        return transformers.AutoConfig.from_pretrained(spec.architecture, **_revision(spec), **overrides)
    if isinstance(spec.config, str):
        return transformers.AutoConfig.from_pretrained(spec.config, **overrides)
    kwargs = {**spec.config, **overrides}
    model_type = kwargs.pop("model_type", None)
    if model_type is None:
        raise ValueError(f"model {spec.name}: config needs a model_type (e.g. detr, segformer, mask2former)")
    try:
        return transformers.AutoConfig.for_model(model_type, **kwargs)
    except ValueError as exc:  # unknown model_type
        raise ValueError(f"model {spec.name}: {str(exc).splitlines()[0]}") from None


def build_model(spec: ModelSpec, auto_class: Any, config: Any) -> tuple[nn.Module, str, str | None]:
    """(network in eval mode, where its weights came from, their sha256) for the entry."""
    folder = Path(spec.architecture)
    if spec.pretrained:
        net = auto_class.from_pretrained(spec.architecture, config=config, **_revision(spec))
        weights = f"hf-local:{spec.architecture}" if folder.is_dir() else f"hf-hub:{spec.architecture}"
        sha = hf_weights_identity(spec) if folder.is_dir() else state_dict_sha256(net)
    else:
        net, weights, sha = auto_class.from_config(config), "random-init", None
    if spec.checkpoint is not None:
        sha = load_weights(net, spec.checkpoint, spec.trust_pickle)
        weights = f"checkpoint:{spec.checkpoint}"
    return net.eval(), weights, sha


def build_processor(spec: ModelSpec, config: Any) -> Any:
    """The image processor: a folder, the pretrained model's, or the model type's default; ``processor``
    kwargs override. OneFormer's is a processor with a tokenizer (its task token), which needs files."""
    transformers = import_transformers()
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    needs_text = config.model_type == "oneformer"
    auto = transformers.AutoProcessor if needs_text else transformers.AutoImageProcessor
    if isinstance(spec.processor, str):
        return auto.from_pretrained(spec.processor)
    overrides = dict(spec.processor or {})
    if spec.pretrained:
        return auto.from_pretrained(spec.architecture, **_revision(spec), **overrides)
    if needs_text:
        raise ValueError(f"model {spec.name}: oneformer's processor holds a tokenizer: give a saved folder as "
                         f"'processor' (or as arch, with pretrained: true)")
    classes = IMAGE_PROCESSOR_MAPPING[type(config)]  # {"torchvision": fast class, "pil": slow class}
    return (classes.get("torchvision") or classes["pil"])(**overrides)


def processor_policy(processor: Any) -> dict[str, Any]:
    """What the image processor does to an image, JSON-safe, for provenance."""
    image_processor = getattr(processor, "image_processor", processor)
    keys = ("size", "do_resize", "resample", "do_normalize", "image_mean", "image_std", "do_pad", "pad_size")
    settings = json.loads(image_processor.to_json_string())  # enums as values
    return {"processor": type(image_processor).__name__, **{k: settings[k] for k in keys if k in settings}}


def hf_weights_identity(spec: ModelSpec) -> str:
    """Known before loading: a local folder's files (sha256 of each), else the hub name + revision + the
    transformers version that resolves it; random weights (seeded; the config is part of the entry) name the
    transformers version that initialises them."""
    folder = Path(spec.architecture)
    if spec.pretrained and folder.is_dir():
        return folder_sha256(folder)
    transformers = import_transformers()
    if spec.pretrained:
        revision = spec.pretrained if isinstance(spec.pretrained, str) else "main"
        return f"hf:{spec.architecture}@{revision}:transformers {transformers.__version__}"
    return f"random-init:transformers {transformers.__version__}"
