"""Timing loops and their statistics.

CPU steps are timed with ``time.perf_counter``. CUDA steps are timed twice: with CUDA events (device
time of the queued work) and on the host with perf_counter around ``torch.cuda.synchronize`` (what a
caller waiting for the result sees). Loops follow MLPerf's rule: keep going until BOTH the minimum
iteration count and the minimum duration are reached.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from harness.env import synchronize

Step = Callable[[], Any]


@dataclass
class LatencySamples:
    """Per-iteration times in milliseconds; ``device_ms`` only on CUDA (from CUDA events)."""

    host_ms: list[float] = field(default_factory=list)
    device_ms: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.host_ms)


def summarize(samples_ms: list[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99 and IQR (p75 - p25); percentiles by linear interpolation between order
    statistics (``statistics.quantiles(method="inclusive")``, the same rule as numpy's default)."""
    if not samples_ms:
        raise ValueError("no timing samples to summarise")
    if len(samples_ms) == 1:
        only = float(samples_ms[0])
        return {"n": 1, "mean": only, "p50": only, "p90": only, "p99": only, "iqr": 0.0}
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")  # cuts[k - 1] is the k-th percentile
    return {"n": len(samples_ms), "mean": statistics.fmean(samples_ms), "p50": cuts[49], "p90": cuts[89],
            "p99": cuts[98], "iqr": cuts[74] - cuts[24]}


class CpuClock:
    """Host wall time of one step."""

    def time(self, step: Step) -> tuple[float, float | None]:
        start = time.perf_counter()
        step()
        return (time.perf_counter() - start) * 1e3, None


class CudaClock:
    """CUDA-event time of one step, plus host perf_counter time around the synchronize that ends it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time(self, step: Step) -> tuple[float, float | None]:
        # The events go on the model's device's current stream, where ``step`` queues its kernels: a bare
        # ``record()`` uses the *current* device's stream, so timing cuda:1 from cuda:0 would read ~0 ms.
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            torch.cuda.synchronize(self.device)
            host_start = time.perf_counter()
            self.start.record(stream)
            step()
            self.end.record(stream)
            torch.cuda.synchronize(self.device)
            host_ms = (time.perf_counter() - host_start) * 1e3
        return host_ms, self.start.elapsed_time(self.end)


def clock_for(device: torch.device) -> CpuClock | CudaClock:
    return CudaClock(device) if device.type == "cuda" else CpuClock()


def run_until(step: Step, clock: CpuClock | CudaClock, min_iters: int, min_seconds: float) -> LatencySamples:
    """Time ``step`` repeatedly until at least ``min_iters`` iterations AND ``min_seconds`` have passed."""
    samples = LatencySamples()
    started = time.perf_counter()
    while len(samples) < min_iters or time.perf_counter() - started < min_seconds:
        host_ms, device_ms = clock.time(step)
        samples.host_ms.append(host_ms)
        if device_ms is not None:
            samples.device_ms.append(device_ms)
    return samples


def measure_latency(step: Step, device: torch.device, warmup_iters: int, warmup_seconds: float, min_iters: int,
                    min_seconds: float) -> LatencySamples:
    """Warm up (discarded), then time each iteration of ``step`` on its own."""
    clock = clock_for(device)
    run_until(step, clock, warmup_iters, warmup_seconds)
    return run_until(step, clock, min_iters, min_seconds)


def time_block(step: Step, device: torch.device, iters: int) -> float:
    """Seconds for ``iters`` back-to-back steps with one synchronisation before and one after."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    synchronize(device)
    return time.perf_counter() - start


def throughput(images_per_step: int, seconds: float, iters: int) -> float:
    return images_per_step * iters / seconds if seconds > 0 else math.nan
