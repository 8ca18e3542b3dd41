"""``torch.compile`` for timing, loudly: a model timed as "compiled" must really run compiled code.

Dynamo falls back to eager without an error in three ways: a graph break (part of the model runs eager),
a recompile limit hit (after ``recompile_limit`` guards failures for one code object — easy when one
process compiles many models — the frame runs eager from then on), and an error swallowed by
``suppress_errors``. For a measurement each is an error:

* every job starts from a fresh Dynamo state (``torch._dynamo.reset()``), so earlier models' compiled
  code and recompile counts never spill into this one;
* the model is compiled with ``fullgraph=True``: a graph break raises instead of splitting the model;
* while measuring, Dynamo's ``fail_on_recompile_limit_hit`` is on and ``suppress_errors`` off;
* after the first call, ``check_compiled`` verifies Dynamo captured at least one graph.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import nn


class CompileFallbackError(RuntimeError):
    """torch.compile did not produce compiled code for the whole model; the message says why."""


def _config_flags() -> dict[str, bool]:
    """Dynamo config switches that turn silent eager fallbacks into errors, under this torch's names."""
    config = torch._dynamo.config
    flags = {"suppress_errors": False}
    for name in ("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit"):  # the name changed in torch 2.6
        if hasattr(config, name):
            flags[name] = True
            break
    return flags


@contextlib.contextmanager
def strict_dynamo() -> Iterator[None]:
    """Fresh Dynamo state, and fallbacks to eager raise, for the duration of one job's measurement."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    config = torch._dynamo.config
    saved = {name: getattr(config, name) for name in _config_flags()}
    try:
        for name, value in _config_flags().items():
            setattr(config, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(config, name, value)
        torch._dynamo.reset()


def compile_module(module: nn.Module, mode: str, backend: str) -> Callable[[torch.Tensor], Any]:
    """The whole model as one graph (``fullgraph=True``), or an error when it cannot be."""
    if backend == "inductor":
        return torch.compile(module, mode=None if mode == "default" else mode, fullgraph=True)
    return torch.compile(module, backend=backend, fullgraph=True)


def check_compiled(name: str) -> None:
    """Raise unless Dynamo captured a graph since ``strict_dynamo`` began (else the timed code is eager)."""
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    breaks = sum(counters["graph_break"].values())
    if graphs < 1 or breaks:
        raise CompileFallbackError(
            f"torch.compile of {name} ran eager code ({graphs} graph(s) captured, {breaks} graph break(s)); "
            "refusing to report eager timings as compiled")
