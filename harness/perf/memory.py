"""Peak memory of a block of work: the CUDA caching allocator's peak, or the process's peak RSS on CPU.

On Linux the RSS high-water mark (VmHWM) is reset by writing "5" to /proc/self/clear_refs, so the CPU
peak covers just the block; the value is the whole process's resident memory (libraries, data and all).
Where the reset is not possible the peak is the process lifetime's (``ru_maxrss``), stated in ``kind``.
"""
from __future__ import annotations

import resource
from pathlib import Path
from typing import Callable

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class PeakMemory:
    """``with PeakMemory(device) as peak: ...``; then ``peak.mb`` and ``peak.kind``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mb = float("nan")
        self.kind = "cuda_allocator" if device.type == "cuda" else "process_rss"

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif not _reset_rss_peak():
            self.kind = "process_rss_lifetime"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mb = rss_peak_mb()


def _reset_rss_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def rss_peak_mb() -> float:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def release_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# torch.OutOfMemoryError appeared in torch 2.5 as an alias of torch.cuda.OutOfMemoryError, which older
# releases that pyproject allows (torch>=2.1) already have; catching the latter works on both.
OUT_OF_MEMORY: type[BaseException] = torch.cuda.OutOfMemoryError


def find_max_batch(fits: Callable[[int], object], limit: int,
                   on_oom: Callable[[], None] = release_cuda_cache) -> int:
    """Largest batch size in [1, limit] for which ``fits(batch)`` does not run out of memory (``OUT_OF_MEMORY``).

    Doubles from 1 until a batch runs out of memory (or ``limit`` is reached), then bisects between the
    last batch that fitted and the first that did not. Other exceptions propagate.
    """
    if limit < 1:
        raise ValueError(f"batch size limit must be positive, got {limit}")

    def try_batch(batch: int) -> bool:
        try:
            fits(batch)
            return True
        except OUT_OF_MEMORY:
            on_oom()
            return False

    good, bad, batch = 0, limit + 1, 1
    while True:
        if not try_batch(batch):
            bad = batch
            break
        good = batch
        if batch >= limit:
            break
        batch = min(batch * 2, limit)
    while bad - good > 1:
        middle = (good + bad) // 2
        if try_batch(middle):
            good = middle
        else:
            bad = middle
    if good == 0:
        raise MemoryError("out of memory even at batch size 1")
    return good
