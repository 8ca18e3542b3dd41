"""The float arithmetic of accuracy passes: strict IEEE fp32 by default, TF32 only when a suite asks for it.

torch's defaults differ between its two TF32 switches (cuDNN convolutions may use TF32, matmuls may not), so an
"fp32" number on a GPU would otherwise depend on which kernels a model happens to use, and differ from the CPU's.
Accuracy passes therefore run with both switches off and cuDNN deterministic (no autotuned algorithm choice)
unless the suite sets ``defaults: {precision: tf32}``; the choice and the flags are recorded with every job.
The flags are global: they are set for the job and restored afterwards. Timing tasks set their own (latency).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Literal

import torch

AccuracyPrecision = Literal["fp32", "tf32"]
PRECISIONS = ("fp32", "tf32")


def _flags() -> dict[str, bool]:
    return {"tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}


def _set(flags: dict[str, bool]) -> None:
    torch.backends.cuda.matmul.allow_tf32 = flags["tf32_matmul"]
    torch.backends.cudnn.allow_tf32 = flags["tf32_cudnn"]
    torch.backends.cudnn.deterministic = flags["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]


@contextlib.contextmanager
def accuracy_numerics(precision: AccuracyPrecision = "fp32") -> Iterator[dict[str, Any]]:
    """Within the block, the flags of ``precision``; yields what to record (the mode and the flags in force)."""
    before = _flags()
    tf32 = precision == "tf32"
    _set({"tf32_matmul": tf32, "tf32_cudnn": tf32, "cudnn_deterministic": not tf32, "cudnn_benchmark": False})
    try:
        yield {"precision": precision, **_flags()}
    finally:
        _set(before)
