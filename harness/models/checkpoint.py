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


def folder_sha256(folder: Path) -> str:
    """A hash of a folder's files (relative names and contents), e.g. a model saved by ``save_pretrained``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def state_dict_sha256(module: nn.Module) -> str:
    """A hash of the weights themselves (name, dtype, shape, bytes), for models that come from a hub."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")  # reshape: a 0-dim tensor (BN's num_batches_tracked) has no byte view
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
        state = _torch_load(path, trust_pickle)
    return _unwrap(state, path)


def _torch_load(path: Path, trust_pickle: bool) -> object:
    """torch.load, telling a pickle that holds more than tensors (refused unless trusted) from a file that is
    not a readable checkpoint at all (corrupt, truncated, another format)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if not trust_pickle and str(exc).startswith("Weights only load failed"):
            raise CheckpointError(
                f"{path}: refusing to load an untrusted pickle (it holds Python objects beyond tensors); convert it "
                "to safetensors, or set 'trust_pickle: true' on this model if you trust its origin"
            ) from None
        raise CheckpointError(f"{path}: cannot read checkpoint: corrupt or not a PyTorch file "
                              f"({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - unpickling garbage raises anything (IndexError, KeyError, ...)
        raise CheckpointError(f"{path}: cannot read checkpoint: corrupt or not a PyTorch file "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


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
    problem = state_dict_mismatch(net.state_dict(), state)
    if problem:
        raise CheckpointError(f"{path}: weights do not fit the architecture: {problem}")
    net.load_state_dict(state, strict=True)
    return file_sha256(path)


def state_dict_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], show: int = 3) -> str | None:
    """How ``given`` differs from ``expected``: counts of missing and unexpected keys and of shape mismatches,
    each with its first few names (a whole list of keys on one line helps nobody)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {list(given[k].shape)} vs {list(expected[k].shape)}" for k in expected
              if k in given and given[k].shape != expected[k].shape]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("with another shape", shapes)):
        if items:
            more = f", ... {len(items) - show} more" if len(items) > show else ""
            parts.append(f"{len(items)} key(s) {label} (first: {', '.join(items[:show])}{more})")
    return "; ".join(parts) or None
