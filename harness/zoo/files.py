"""The embedded zoo's files: float16 safetensors weights and a JSON metadata file per zoo (recipe, scores,
sha256), shared by the detectors, the segmenters and their training scripts."""
from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from torch import nn

ZOO_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BackboneEntry:
    """A zoo model made of a named backbone under a shared head; subclasses build and load it."""

    name: str
    arch: str
    family: str
    backbone: Callable[[], nn.Module]
    metadata_file: ClassVar[Path]

    @property
    def weights_file(self) -> Path:
        return ZOO_DIR / f"{self.name}.safetensors"

    def metadata(self) -> dict[str, Any]:
        """Recipe and test scores as written by the zoo's training script (tools/)."""
        return read_metadata(self.metadata_file, self.name)


def save_half_weights(model: nn.Module, path: Path) -> None:
    """The state dict as float16 safetensors (the zoo's storage format)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()}, str(path))


def load_half_weights(model: nn.Module, path: Path) -> nn.Module:
    """Shipped float16 weights loaded into ``model`` as float32 (strict)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model


def read_metadata(path: Path, name: str) -> dict[str, Any]:
    """One model's entry in a zoo metadata file ({} when absent)."""
    return json.loads(path.read_text(encoding="utf-8")).get(name, {}) if path.exists() else {}


def write_metadata(path: Path, name: str, entry: dict[str, Any]) -> None:
    """Replace one model's entry, under a lock so that parallel training runs can update one file."""
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        metadata = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        metadata[name] = entry
        path.write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    lock_path.unlink(missing_ok=True)
