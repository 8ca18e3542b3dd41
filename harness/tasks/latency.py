"""Latency and throughput: a performance pass, run after every accuracy job (``performance = True``).

Two modes: ``model_only`` (a synthetic batch already on the device at the model's own resolution) and
``end_to_end`` (the job's dataset: decode, preprocess, pinned host-to-device copy, forward). Latency is
timed per iteration (CUDA events + host perf_counter on CUDA, perf_counter on CPU); throughput is images/s
over N iterations between two synchronisations. Every metric carries its measurement settings as params.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

import torch
from torch import nn

from harness.env import device_name, synchronize
from harness.metrics import Metric, declare
from harness.perf import flops as flop_count
from harness.perf.compiled import check_compiled, compile_module, strict_dynamo
from harness.perf.cuda_graphs import GraphedForward
from harness.perf.memory import PeakMemory, find_max_batch
from harness.perf.peaks import peak_for
from harness.perf.timing import (LatencySamples, clock_for, measure_latency, run_until, summarize, throughput,
                                 time_block)
from harness.registry import TASKS
from harness.tasks.base import JobContext, Task

for _stat in ("mean", "p50", "p90", "p99"):
    declare(f"latency_ms_{_stat}", "lower", "ms", headline=_stat in ("mean", "p50"), kind="timing")
declare("latency_ms_iqr", "lower", "ms", headline=False, kind="timing", description="spread of the latency samples")
declare("throughput_img_s", "higher", "img/s", kind="timing")
declare("peak_memory_mb", "lower", "MB", headline=False)
declare("max_batch_size", "higher", headline=False, description="largest batch that fits in memory")
declare("compile_seconds", "lower", "s", headline=False)
declare("params_m", "none", "M", description="parameters (millions)")
declare("gflops", "none", "GFLOP", description="FLOPs per image at the model's resolution (2 x MACs)")
declare("gmacs", "none", "GMAC", description="multiply-accumulates per image (timm's tables quote these)")
declare("achieved_tflops", "higher", "TFLOP/s", headline=False,
        description="counted model FLOPs per second at that throughput (gflops x img/s)")
declare("mfu", "higher", headline=False,
        description="model FLOPs utilisation: achieved TFLOP/s over the device's dense peak for the precision")

Mode = Literal["model_only", "end_to_end"]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_NEEDS_CUDA = {
    "fp16": "fp16 autocast is not supported on CPU here; use bf16 or fp32 (or a CUDA device)",
    "tf32": "tf32 is a CUDA tensor-core mode; on CPU use fp32 (or a CUDA device)",
}


@TASKS.register("latency")
class LatencyTask(Task):
    """Latency (n, mean, p50, p90, p99, IQR in ms) and throughput (images/s), params, FLOPs, peak memory."""

    kind = "latency"
    performance = True

    @dataclass
    class Params:
        modes: list[Mode] = field(default_factory=lambda: ["model_only"])
        batch_size: int = 1  # latency batch size
        throughput_batch_sizes: list[int | str] = field(default_factory=lambda: [1, 8, "max"])
        warmup_iters: int = 10  # warm-up lasts at least this many iterations AND warmup_seconds
        warmup_seconds: float = 2.0
        min_iters: int = 200  # latency: at least this many timed iterations AND min_seconds
        min_seconds: float = 10.0
        throughput_iters: int = 50  # iterations between the two synchronisations
        # fp16/bf16 via autocast; fp32 is strict IEEE float32 (TF32 off for matmul AND cuDNN, whose defaults
        # differ); tf32 (CUDA only) allows TF32 tensor cores for both
        precision: Literal["fp32", "tf32", "fp16", "bf16"] = "fp32"
        channels_last: bool = False
        compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none"
        compile_backend: str = "inductor"
        cuda_graphs: bool = False  # CUDA only: capture the eager forward in a CUDA graph per batch size, replay it
        peak_tflops: float | None = None  # the device's peak for `precision` (MFU); default: harness/perf/peaks.py
        cudnn_benchmark: bool = True
        threads: int | None = None  # torch.set_num_threads for the measurement (restored afterwards)
        max_batch_limit: int = 1024  # the "max" search never goes beyond this
        cpu_max_batch: int = 64  # ... nor beyond this on CPU, where running out of memory swaps or kills
        isolate: bool = False  # measure in a fresh subprocess (harness/tasks/isolation.py)

        def validate(self, where) -> None:
            for name in ("batch_size", "warmup_iters", "min_iters", "throughput_iters", "max_batch_limit",
                         "cpu_max_batch"):
                if getattr(self, name) < (0 if name == "warmup_iters" else 1):
                    raise where.error(f"{name} must be {'non-negative' if name == 'warmup_iters' else 'positive'}")
            if self.warmup_seconds < 0 or self.min_seconds < 0:
                raise where.error("warmup_seconds and min_seconds must be non-negative")
            if not self.modes:
                raise where.error("modes must list model_only and/or end_to_end")
            for size in self.throughput_batch_sizes:
                if isinstance(size, str) and size != "max" or isinstance(size, int) and size < 1:
                    raise where.error(f"throughput_batch_sizes: {size!r} is neither a positive integer nor 'max'")
            if self.threads is not None and self.threads < 1:
                raise where.error("threads must be positive")
            if self.compile_backend != "inductor" and self.compile not in ("none", "default"):
                raise where.error(f"compile mode {self.compile!r} needs compile_backend 'inductor'")
            if self.cuda_graphs and self.compile != "none":
                raise where.error("cuda_graphs captures the eager model; with torch.compile use compile: "
                                  "reduce-overhead (its own CUDA graphs) instead")
            if self.peak_tflops is not None and self.peak_tflops <= 0:
                raise where.error("peak_tflops must be positive")

    def __init__(self, params: Any, label: str | None = None) -> None:
        super().__init__(params, label)
        self.suite_specs: dict[str, Any] = {}  # model and dataset specs, for rebuilding them in a subprocess

    def check_suite(self, suite: Any, where: Any) -> None:
        cpu_only = suite.defaults.device == "cpu" or (suite.defaults.device == "auto" and not torch.cuda.is_available())
        if self.params.precision in ("fp16", "tf32") and cpu_only:
            raise where.child("precision", {}).error(PRECISION_NEEDS_CUDA[self.params.precision])
        if self.params.cuda_graphs and cpu_only:
            raise where.child("cuda_graphs", {}).error("cuda_graphs needs a CUDA device; the suite runs on CPU")
        self.suite_specs = {"models": {m.name: m for m in suite.models},
                            "datasets": {d.name: d for d in suite.datasets}, "plugins": list(suite.plugins)}

    def measure(self, ctx: JobContext) -> list[Metric]:
        if self.params.isolate:
            from harness.tasks.isolation import measure_in_subprocess

            return measure_in_subprocess(ctx, self.params, self.suite_specs)
        return measure(ctx, self.params)


def measure(ctx: JobContext, p: LatencyTask.Params) -> list[Metric]:
    """All performance metrics of one model (in this process)."""
    device = ctx.device
    check_precision(p.precision, device)
    module = ctx.model.module.eval()
    input_size = ctx.model.preprocess.input_size
    dynamo = strict_dynamo() if p.compile != "none" else contextlib.nullcontext()
    with runtime_settings(p), memory_layout(module, p.channels_last), torch.inference_mode(), dynamo:
        settings = measurement_settings(p, device)
        metrics = static_metrics(module, synthetic_batch(1, input_size, device, False))
        gflops = next(m.value for m in metrics if m.name == "gflops")
        peak = peak_for(device_name(device) if device.type == "cuda" else "", p.precision, p.peak_tflops)
        forward = make_forward(module, p, device)
        if p.compile != "none":
            first = synthetic_batch(p.batch_size, input_size, device, p.channels_last)
            started = time.perf_counter()
            forward(first)
            synchronize(device)
            check_compiled(ctx.model.name)
            metrics.append(Metric("compile_seconds", time.perf_counter() - started, 1,
                                  {**settings, "batch_size": p.batch_size}, unit="s"))
        for mode in p.modes:
            metrics += latency_run(ctx, forward, mode, p, {**settings, "mode": mode, "batch_size": p.batch_size})
        sizes = sorted({size for size in p.throughput_batch_sizes if isinstance(size, int)})
        if "max" in p.throughput_batch_sizes:
            limit = min(p.max_batch_limit, p.cpu_max_batch) if device.type == "cpu" else p.max_batch_limit
            largest = find_max_batch(lambda b: fits(forward, p, device, input_size, b), limit)
            metrics.append(Metric("max_batch_size", float(largest), 1, {**settings, "limit": limit}))
            sizes = sorted({*sizes, largest})
        for mode in p.modes:
            for size in sizes:
                if mode == "end_to_end" and size > len(ctx.source):
                    warnings.warn(f"end_to_end throughput at batch {size} skipped: dataset {ctx.source.name!r} has "
                                  f"only {len(ctx.source)} images", stacklevel=1)
                    continue
                params = {**settings, "mode": mode, "batch_size": size}
                measured = throughput_run(ctx, forward, mode, size, p, params)
                metrics += measured + utilisation_metrics(measured[0], gflops, peak, params)
    return metrics


def latency_run(ctx: JobContext, forward: Callable[[torch.Tensor], Any], mode: str, p: LatencyTask.Params,
                params: dict[str, Any]) -> list[Metric]:
    """Per-iteration latency statistics (after warm-up) and the peak memory while measuring them."""
    step = make_step(mode, ctx, forward, p.batch_size, p.channels_last)
    with PeakMemory(ctx.device) as peak:
        samples = measure_latency(step, ctx.device, p.warmup_iters, p.warmup_seconds, p.min_iters, p.min_seconds)
    return [*latency_metrics(samples, params, ctx.device),
            Metric("peak_memory_mb", peak.mb, len(samples), {**params, "during": "latency", "memory": peak.kind},
                   unit="MB")]


def throughput_run(ctx: JobContext, forward: Callable[[torch.Tensor], Any], mode: str, batch_size: int,
                   p: LatencyTask.Params, params: dict[str, Any]) -> list[Metric]:
    """Images/s over ``throughput_iters`` steps between two synchronisations, after a warm-up at this size."""
    step = make_step(mode, ctx, forward, batch_size, p.channels_last)
    run_until(step, clock_for(ctx.device), p.warmup_iters, p.warmup_seconds)
    with PeakMemory(ctx.device) as peak:
        seconds = time_block(step, ctx.device, p.throughput_iters)
    images = batch_size * p.throughput_iters
    return [Metric("throughput_img_s", throughput(batch_size, seconds, p.throughput_iters), images, params,
                   unit="img/s"),
            Metric("peak_memory_mb", peak.mb, images, {**params, "during": "throughput", "memory": peak.kind},
                   unit="MB")]


def utilisation_metrics(throughput_metric: Metric, gflops_per_image: float, peak: tuple[float, str] | None,
                        params: dict[str, Any]) -> list[Metric]:
    """Achieved TFLOP/s at a measured throughput and, when the device's peak is known, MFU against it."""
    achieved = throughput_metric.value * gflops_per_image / 1e3
    metrics = [Metric("achieved_tflops", achieved, throughput_metric.n, params, unit="TFLOP/s")]
    if peak is not None:
        tflops, source = peak
        metrics.append(Metric("mfu", achieved / tflops, throughput_metric.n,
                              {**params, "peak_tflops": tflops, "peak_source": source}))
    return metrics


def check_precision(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision fp16 is not supported on CPU (autocast to float16 there is slow and partial); "
                         "use bf16 or fp32")
    if precision == "tf32" and device.type != "cuda":
        raise ValueError(PRECISION_NEEDS_CUDA["tf32"])


def measurement_settings(p: LatencyTask.Params, device: torch.device) -> dict[str, Any]:
    """The settings every metric of the measurement carries as params (call inside ``runtime_settings``)."""
    settings: dict[str, Any] = {"precision": p.precision, "channels_last": p.channels_last, "compile": p.compile,
                                "threads": torch.get_num_threads()}
    if device.type == "cuda":
        settings.update({"cuda_graphs": p.cuda_graphs, "cudnn_benchmark": torch.backends.cudnn.benchmark,
                         "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                         "tf32_cudnn": torch.backends.cudnn.allow_tf32})
    return settings


@contextlib.contextmanager
def runtime_settings(p: LatencyTask.Params) -> Iterator[None]:
    """CPU thread count, cudnn.benchmark and TF32 (matmul and cuDNN set alike: off unless precision is tf32)
    for the measurement, restored afterwards."""
    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        if p.threads is not None:
            torch.set_num_threads(p.threads)
        torch.backends.cudnn.benchmark = p.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = p.precision == "tf32"
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


@contextlib.contextmanager
def memory_layout(module: nn.Module, channels_last: bool) -> Iterator[None]:
    """Channels-last weights for the measurement; the model is shared with later jobs, so restore it."""
    if not channels_last:
        yield
        return
    module.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        module.to(memory_format=torch.contiguous_format)


def synthetic_batch(batch_size: int, input_size: tuple[int, int, int], device: torch.device,
                    channels_last: bool) -> torch.Tensor:
    """Pixel-space [0, 1] images at the model's resolution, already on the device."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, *input_size, generator=generator).to(device)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def make_forward(module: nn.Module, p: LatencyTask.Params, device: torch.device) -> Callable[[torch.Tensor], Any]:
    """The callable that is timed: the (optionally compiled) model under autocast for fp16/bf16, captured in
    a CUDA graph with ``cuda_graphs``."""
    model: Callable[[torch.Tensor], Any] = module
    if p.compile != "none":
        model = compile_module(module, p.compile, p.compile_backend)
    forward = autocast(model, device, DTYPES[p.precision]) if p.precision in DTYPES else model  # fp32, tf32: none
    return GraphedForward(forward, device) if p.cuda_graphs else forward


def autocast(model: Callable[[torch.Tensor], Any], device: torch.device,
             dtype: torch.dtype) -> Callable[[torch.Tensor], Any]:
    def autocast_forward(images: torch.Tensor) -> Any:
        with torch.autocast(device.type, dtype=dtype):
            return model(images)

    return autocast_forward


def make_step(mode: str, ctx: JobContext, forward: Callable[[torch.Tensor], Any], batch_size: int,
              channels_last: bool) -> Callable[[], Any]:
    if mode == "model_only":
        images = synthetic_batch(batch_size, ctx.model.preprocess.input_size, ctx.device, channels_last)
        return lambda: forward(images)
    batches = full_batches(ctx, batch_size)

    def end_to_end() -> Any:
        images = next(batches).images
        return forward(images.contiguous(memory_format=torch.channels_last) if channels_last else images)

    return end_to_end


def full_batches(ctx: JobContext, batch_size: int) -> Iterator[Any]:
    """The job's dataset through ``ctx.batches`` (load, preprocess, pinned copy), cycled; partial batches are
    dropped so every timed step has ``batch_size`` images (and compiled models see one shape)."""
    if len(ctx.source) < batch_size:
        raise ValueError(f"end_to_end latency at batch size {batch_size} needs at least {batch_size} images; "
                         f"dataset {ctx.source.name!r} has {len(ctx.source)}")
    loading = dataclasses.replace(ctx, batch_size=batch_size, show_progress=False)
    while True:
        for batch in loading.batches():
            if len(batch) == batch_size:
                yield batch


def fits(forward: Callable[[torch.Tensor], Any], p: LatencyTask.Params, device: torch.device,
         input_size: tuple[int, int, int], batch_size: int) -> None:
    """One forward at ``batch_size`` of the callable that is timed (compiled or eager: their memory differs);
    raises torch.cuda.OutOfMemoryError when it does not fit."""
    images = synthetic_batch(batch_size, input_size, device, p.channels_last)
    forward(images)
    synchronize(device)


def static_metrics(module: nn.Module, example: torch.Tensor) -> list[Metric]:
    """Parameters, per-image GFLOPs and GMACs at the model's resolution. FlopCounterMode's FLOPs are 2 x MACs
    (GMACs are what timm's tables quote)."""
    flops = flop_count.count_flops(module, example)
    return [Metric("params_m", flop_count.count_params(module) / 1e6, 1, unit="M"),
            Metric("gflops", flops / 1e9, 1, unit="GFLOP"),
            Metric("gmacs", flop_count.flops_to_macs(flops) / 1e9, 1, unit="GMAC")]


def latency_metrics(samples: LatencySamples, params: dict[str, Any], device: torch.device) -> list[Metric]:
    """n, mean, p50, p90, p99 and IQR for each timer (CUDA events and host perf_counter on CUDA)."""
    timers = [("perf_counter", samples.host_ms)]
    if device.type == "cuda":
        timers = [("cuda_event", samples.device_ms), ("perf_counter_sync", samples.host_ms)]
    metrics = []
    for timer, values in timers:
        stats = summarize(values)
        for stat in ("mean", "p50", "p90", "p99", "iqr"):
            metrics.append(Metric(f"latency_ms_{stat}", stats[stat], stats["n"], {**params, "timer": timer},
                                  unit="ms"))
    return metrics
