"""Pixel-space model wrapper: images in [0, 1] go in, the model's canonical output comes out.

Normalisation lives here, inside the model, so that attack eps, corruptions and latency mean the same
thing for every model in a suite.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from harness.data.preprocess import Preprocess

FAMILIES = ("cnn", "transformer", "hybrid")


def as_logits(output: Any) -> torch.Tensor:
    """The logits tensor inside common classifier outputs (tuples, dicts, HF ModelOutput); never reshaped:
    a dense output is refused where logits are expected (harness.evaluation.outputs.check_logits)."""
    if isinstance(output, torch.Tensor):
        logits = output
    elif isinstance(output, dict) or hasattr(output, "logits"):
        logits = output["logits"] if isinstance(output, dict) else output.logits
    elif isinstance(output, (tuple, list)) and output:
        logits = output[0]
    else:
        raise TypeError(f"cannot read logits from model output of type {type(output).__name__}")
    return logits


def as_semantic_logits(output: Any) -> torch.Tensor:
    """(N, C, h, w) class scores from torchvision's ``{"out": ...}`` or HF's ``.logits``; refuses other shapes."""
    logits = output["out"] if isinstance(output, dict) and "out" in output else as_logits(output)
    if logits.dim() != 4:
        raise TypeError(f"semantic_logits must be (N, C, h, w), got shape {tuple(logits.shape)}")
    return logits


# canonical output kind -> how to read it from the network's own output (harness/evaluation/outputs.py)
OUTPUT_READERS = {"logits": as_logits, "semantic_logits": as_semantic_logits}


class PixelModel(nn.Module):
    """Wraps a network that expects normalised input so it takes pixel-space images in [0, 1] and returns
    its declared canonical output."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 output_kind: str = "logits") -> None:
        super().__init__()
        self.net, self.read_output = net, OUTPUT_READERS[output_kind]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.read_output(self.net(self.normalise(pixels)))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean.to(pixels.dtype)) / self.std.to(pixels.dtype)

    @property
    def has_features(self) -> bool:
        """Whether the network splits into a trunk and a head the timm way (``forward_features`` then
        ``forward_head``), which is where its penultimate embedding is read."""
        return callable(getattr(self.net, "forward_features", None)) and callable(getattr(self.net, "forward_head", None))

    def features_and_logits(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) penultimate embeddings (timm's ``forward_head(pre_logits=True)``: pooled, normed, before the
        classifier) and the (N, C) logits, from one trunk pass: the logits are what ``forward`` returns, since
        timm's own forward is ``forward_head(forward_features(x))``."""
        if not self.has_features:
            raise TypeError(f"{type(self.net).__name__} has no forward_features/forward_head (timm's split of trunk "
                            f"and head), so it gives no penultimate features")
        trunk = self.net.forward_features(self.normalise(pixels))
        return self.net.forward_head(trunk, pre_logits=True).flatten(1), self.read_output(self.net.forward_head(trunk))


class ResizeInput(nn.Module):
    """Resizes pixel-space images to a model's input size inside the (differentiable) forward pass, so an
    attack in one image space for all models reaches each at its own resolution."""

    def __init__(self, model: nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        self.model, self.size = model, tuple(size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        resized = torch.nn.functional.interpolate(pixels, size=self.size, mode="bilinear", align_corners=False,
                                                  antialias=True)
        return self.model(resized.clamp(0, 1))


@dataclass
class LoadedModel:
    """A model ready to evaluate, with everything needed to say where its numbers came from."""

    name: str
    source: str
    arch: str
    family: str
    module: PixelModel | None  # None for saved predictions
    preprocess: Preprocess
    num_classes: int
    weights: str  # where the weights came from: zoo, hub tag, checkpoint path or random-init
    weights_sha256: str | None = None
    tag: str | None = None
    output_kind: str = "logits"  # the canonical output it returns (harness/evaluation/outputs.py)
    # how a framework adapter gets from pixels to that output (resize policy, thresholds, label rule)
    pipeline: dict[str, Any] = field(default_factory=dict)
    # source predictions: saved outputs looked up by sample instead of a forward pass (harness/models/predictions.py)
    predictions: Any = None

    def to_device(self, device: torch.device) -> "LoadedModel":
        if self.module is not None:
            self.module.to(device)
        return self

    def provenance(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "model_source": self.source,
            "arch": self.arch,
            "model_tag": self.tag,
            "family": self.family,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "num_params": sum(p.numel() for p in self.module.net.parameters()) if self.module is not None else None,
            "preprocess": self.preprocess.to_dict(),
            **({"pipeline": self.pipeline} if self.pipeline else {}),
        }
