"""CUDA graphs without torch.compile: capture the eager forward once per input shape, then replay it.

At batch 1 a fast GPU spends most of a forward waiting for the host to launch kernels; a replayed graph
launches them all at once. ``compile: reduce-overhead`` does the same through Inductor; this captures the
model as it is (no compilation, no graph breaks to worry about), for models or setups where compiling is
not wanted. Replays write into the same output tensors, so a caller must use (or copy) an output before the
next call, which is what a timing loop does.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

Forward = Callable[[torch.Tensor], Any]


class GraphedForward:
    """``forward`` captured in a CUDA graph for the most recent input shape (re-captured when it changes,
    so a sweep over batch sizes holds one graph at a time)."""

    warmup_iters = 3  # eager calls on a side stream before capture (cuDNN autotuning, lazy allocations)

    def __init__(self, forward: Forward, device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError(f"cuda_graphs needs a CUDA device (the job runs on {device})")
        self.forward, self.device = forward, device
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_input: torch.Tensor | None = None
        self.static_output: Any = None
        self.captures = 0

    def __call__(self, images: torch.Tensor) -> Any:
        if self.static_input is None or not _same_layout(self.static_input, images):
            self._capture(images)
        assert self.graph is not None and self.static_input is not None
        if images.data_ptr() != self.static_input.data_ptr():
            self.static_input.copy_(images)
        self.graph.replay()
        return self.static_output

    def _capture(self, images: torch.Tensor) -> None:
        self.graph = self.static_input = self.static_output = None  # free the previous shape's graph first
        static_input = images.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_iters):
                self.forward(static_input)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = self.forward(static_input)
        self.graph, self.static_input, self.static_output = graph, static_input, static_output
        self.captures += 1


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.stride() == b.stride() and a.device == b.device
