"""Loading local weights safely: safetensors, or torch.load(weights_only=True). Never a silent pickle."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from torch import nn

_NESTED_KEYS = ("state_dict", "model", "model_ema", "module", "net")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot or must not be loaded; the message names the file."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_sha256(module: nn.Module) -> str:
    """A hash of the weights themselves (name, dtype, shape, bytes), for models that come from a hub."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def read_state_dict(path: Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read weights from ``path``. Pickled checkpoints holding more than tensors are refused
    unless ``trust_pickle`` is set explicitly (a pickle can run arbitrary code when loaded)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
        except pickle.UnpicklingError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "it holds Python objects beyond tensors"
            raise CheckpointError(
                f"{path}: refusing to load an untrusted pickle ({reason}); convert it to safetensors, "
                "or set 'trust_pickle: true' on this model if you trust its origin"
            ) from None
        except (RuntimeError, EOFError, OSError) as exc:
            raise CheckpointError(f"{path}: cannot read checkpoint ({exc})") from None
    return _unwrap(state, path)


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside common training-checkpoint layouts and strip DDP prefixes."""
    for _ in range(3):
        if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
            nested = next((state[k] for k in _NESTED_KEYS if isinstance(state.get(k), dict)), None)
            if nested is None:
                break
            state = nested
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: no state dict of tensors found in checkpoint")
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}


def load_weights(net: nn.Module, path: Path, trust_pickle: bool = False) -> str:
    """Load ``path`` into ``net`` strictly; returns the file's sha256."""
    state = read_state_dict(path, trust_pickle)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(f"{path}: weights do not fit the architecture ({first})") from None
    return file_sha256(path)
