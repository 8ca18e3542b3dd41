"""A model's eval preprocessing: input size, resize and crop, and the mean/std its wrapper normalises with.

The model resolves it (timm's pretrained config, a framework's preset); the data side applies its geometry
(harness/data/loader.py) and the model wrapper its normalisation (harness/models/wrapper.py). It is recorded with
every result."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Preprocess:
    """Eval preprocessing resolved from the model's pretrained config (recorded with every result)."""

    input_size: tuple[int, int, int]
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    crop_mode: str = "center"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    @classmethod
    def from_timm_config(cls, cfg: dict[str, Any]) -> "Preprocess":
        return cls(
            input_size=tuple(int(v) for v in cfg["input_size"]),
            interpolation=str(cfg.get("interpolation", "bilinear")),
            crop_pct=float(cfg.get("crop_pct", 0.875)),
            crop_mode=str(cfg.get("crop_mode", "center")),
            mean=tuple(float(v) for v in cfg.get("mean", cls.mean)),
            std=tuple(float(v) for v in cfg.get("std", cls.std)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
