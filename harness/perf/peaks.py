"""Peak dense TFLOP/s of common GPUs by precision, for model FLOPs utilisation (MFU).

MFU = the model's counted FLOPs per second (``FlopCounterMode``: matmul, convolution, attention; no
element-wise work) / the device's peak for the precision the measurement ran in. The peaks are NVIDIA's
datasheet figures *without* structured sparsity (datasheets often print the sparse figure, twice the dense
one): ``fp32`` is the CUDA-core rate, ``tf32``/``fp16``/``bf16`` the tensor-core rates with fp32
accumulation (what autocast uses). A device missing here, or a clocked-down part, takes the latency task's
``peak_tflops`` override; without either, MFU is not reported (achieved TFLOP/s still is).
"""
from __future__ import annotations

import re

# (pattern searched in torch.cuda.get_device_name, label, {precision: dense TFLOP/s}); first match wins,
# so more specific names (H100 PCIe before H100, A100 before A10, L40S before L40 before L4) come first.
PEAKS: list[tuple[str, str, dict[str, float]]] = [
    (r"H200 NVL", "NVIDIA H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    (r"H200", "NVIDIA H200 SXM", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5}),
    (r"H100 PCIe", "NVIDIA H100 PCIe", {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5}),
    (r"H100 NVL", "NVIDIA H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    (r"H100", "NVIDIA H100 SXM", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5}),
    (r"A100", "NVIDIA A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    (r"L40S", "NVIDIA L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05}),
    (r"L40\b", "NVIDIA L40", {"fp32": 90.5, "tf32": 90.5, "bf16": 181.0, "fp16": 181.0}),
    (r"\bL4\b", "NVIDIA L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    (r"\bA10\b", "NVIDIA A10", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    (r"RTX 4090", "NVIDIA GeForce RTX 4090", {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2}),
    (r"RTX 3090", "NVIDIA GeForce RTX 3090", {"fp32": 35.6, "tf32": 35.6, "bf16": 71.0, "fp16": 71.0}),
    (r"V100", "NVIDIA V100 SXM2", {"fp32": 15.7, "fp16": 125.0}),
    (r"\bT4\b", "NVIDIA T4", {"fp32": 8.1, "fp16": 65.0}),
]


def device_peak(device_name: str, precision: str) -> tuple[float, str] | None:
    """(dense peak TFLOP/s, the table row it came from) for a device name and precision, or None."""
    for pattern, label, peaks in PEAKS:
        if re.search(pattern, device_name):
            return (peaks[precision], label) if precision in peaks else None
    return None


def peak_for(device_name: str, precision: str, override: float | None) -> tuple[float, str] | None:
    """The peak MFU is measured against: the user's ``override`` (TFLOP/s) if given, else the table's."""
    if override is not None:
        return override, "user (peak_tflops)"
    return device_peak(device_name, precision)
