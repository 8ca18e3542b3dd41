"""The latency task: timer statistics, FLOPs, OOM back-off, peak memory, settings, and a tiny suite end to end."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from harness.perf.flops import count_flops, count_params
from harness.perf.memory import PeakMemory, find_max_batch
from harness.perf.timing import CpuClock, measure_latency, run_until, summarize, throughput, time_block
from harness.registry import ZOO_MODELS

CPU = torch.device("cpu")
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class VirtualClock:
    """Stands in for the ``time`` module inside harness.perf.timing: a sleep-like workload advances it by
    exactly its duration, so timings are exact even on a loaded machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def workload(self, ms: float):
        calls = []

        def step() -> None:
            calls.append(1)
            self.now += ms / 1e3

        return step, calls


@pytest.fixture
def clock(monkeypatch) -> VirtualClock:
    from harness.perf import timing

    virtual = VirtualClock()
    monkeypatch.setattr(timing, "time", virtual)
    return virtual


def busy_wait(ms: float):
    """A real sleep-like workload that takes at least ``ms`` of wall time without yielding the CPU."""
    calls = []

    def step() -> None:
        calls.append(1)
        end = time.perf_counter() + ms / 1e3
        while time.perf_counter() < end:
            pass

    return step, calls


# ---- timer statistics ------------------------------------------------------------------------------------

def test_summary_percentiles_match_numpy():
    samples = np.random.default_rng(0).lognormal(mean=1.0, sigma=0.5, size=257).tolist()
    stats = summarize(samples)
    q25, q50, q75, q90, q99 = np.percentile(samples, [25, 50, 75, 90, 99])
    assert stats["n"] == 257
    assert stats["mean"] == pytest.approx(np.mean(samples), rel=1e-12)
    assert stats["p50"] == pytest.approx(q50, rel=1e-12)
    assert stats["p90"] == pytest.approx(q90, rel=1e-12)
    assert stats["p99"] == pytest.approx(q99, rel=1e-12)
    assert stats["iqr"] == pytest.approx(q75 - q25, rel=1e-12)


def test_summary_of_one_sample_and_of_none():
    assert summarize([4.0]) == {"n": 1, "mean": 4.0, "p50": 4.0, "p90": 4.0, "p99": 4.0, "iqr": 0.0}
    with pytest.raises(ValueError, match="no timing samples"):
        summarize([])


def test_latency_loop_times_a_known_workload(clock):
    step, calls = clock.workload(3.0)
    samples = measure_latency(step, CPU, warmup_iters=2, warmup_seconds=0.0, min_iters=25, min_seconds=0.0)
    assert len(samples) == 25 and len(calls) == 27  # warm-up iterations are run but not recorded
    assert samples.device_ms == []  # no CUDA events on CPU
    assert samples.host_ms == pytest.approx([3.0] * 25)
    assert summarize(samples.host_ms)["p50"] == pytest.approx(3.0) and summarize(samples.host_ms)["iqr"] < 1e-6


def test_latency_loop_on_the_real_clock_never_undercuts_the_workload():
    step, calls = busy_wait(3.0)
    samples = measure_latency(step, CPU, warmup_iters=1, warmup_seconds=0.0, min_iters=20, min_seconds=0.0)
    assert len(samples) == 20 and len(calls) == 21
    assert min(samples.host_ms) >= 3.0
    assert min(samples.host_ms) < 9.0  # generous: other processes may preempt any single iteration


def test_warmup_and_measurement_last_both_minimum_iterations_and_seconds(clock):
    step, calls = clock.workload(1000 / 64)  # 2**-6 s: exact in binary floating point
    started = clock.now
    samples = measure_latency(step, CPU, warmup_iters=3, warmup_seconds=0.25, min_iters=5, min_seconds=0.125)
    assert len(calls) == 16 + 8  # warm-up: 0.25 s outlasts 3 iterations; then 0.125 s outlasts 5 iterations
    assert len(samples) == 8 and clock.now - started == 0.375
    by_count = run_until(step, CpuClock(), min_iters=7, min_seconds=0.0)
    assert len(by_count) == 7


def test_throughput_block_has_one_measurement_around_n_steps(clock):
    step, calls = clock.workload(2.0)
    seconds = time_block(step, CPU, iters=10)
    assert len(calls) == 10 and seconds == pytest.approx(0.02)
    assert throughput(4, seconds, 10) == pytest.approx(2000.0)


# ---- FLOPs, params, memory, OOM back-off -------------------------------------------------------------

def test_flops_and_params_of_conv_and_linear_against_a_hand_count():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    conv_macs = 16 * 16 * 8 * (3 * 3 * 3)  # output pixels x out channels x (kernel area x in channels)
    linear_macs = 8 * 16 * 16 * 10
    assert count_flops(model, torch.rand(1, 3, 16, 16)) == 2 * (conv_macs + linear_macs)  # FLOPs = 2 x MACs
    assert count_flops(model, torch.rand(2, 3, 16, 16)) == 4 * (conv_macs + linear_macs)
    assert count_params(model) == (3 * 3 * 3 * 8 + 8) + (8 * 16 * 16 * 10 + 10)
    from harness.tasks.latency import static_metrics

    counts = {m.name: m for m in static_metrics(model, torch.rand(1, 3, 16, 16))}
    assert counts["gmacs"].value == pytest.approx((conv_macs + linear_macs) / 1e9, rel=1e-12)
    assert counts["gflops"].value == pytest.approx(2 * counts["gmacs"].value, rel=1e-12)
    assert (counts["gmacs"].unit, counts["gflops"].unit) == ("GMAC", "GFLOP")


class FakeAllocator:
    """Pretends a batch needs one unit of memory per image and raises CUDA's OOM beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.tried, self.released = capacity, [], 0

    def fits(self, batch: int) -> None:
        self.tried.append(batch)
        if batch > self.capacity:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (tried batch {batch})")

    def release(self) -> None:
        self.released += 1


@pytest.mark.parametrize("capacity", [1, 2, 37, 64, 100])
def test_max_batch_search_backs_off_on_oom(capacity):
    fake = FakeAllocator(capacity)
    assert find_max_batch(fake.fits, limit=1024, on_oom=fake.release) == capacity
    failed = [b for b in fake.tried if b > capacity]
    assert fake.released == len(failed) >= 1  # every OOM released the cache before the next try
    assert len(fake.tried) == len(set(fake.tried))  # no batch size tried twice
    assert len(fake.tried) <= 2 * 11  # doubling then bisection: logarithmic in the limit


def test_max_batch_search_respects_the_limit_and_reports_no_fit():
    fake = FakeAllocator(10_000)
    assert find_max_batch(fake.fits, limit=48, on_oom=fake.release) == 48
    assert max(fake.tried) == 48 and fake.released == 0
    with pytest.raises(MemoryError, match="batch size 1"):
        find_max_batch(FakeAllocator(0).fits, limit=8, on_oom=lambda: None)


def test_max_batch_search_propagates_other_errors():
    def broken(batch: int) -> None:
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        find_max_batch(broken, limit=8, on_oom=lambda: None)


def test_cpu_peak_memory_sees_an_allocation_inside_the_block():
    def resident_mb() -> float:  # the current RSS (not the lifetime peak, which earlier tests may have raised)
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    before = resident_mb()
    with PeakMemory(CPU) as peak:
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, written so it is resident
        del block
    assert peak.kind == "process_rss"
    assert peak.mb - before >= 150


# ---- the task's settings --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_ctx(tmp_path_factory):
    from harness.data.sources import build_source
    from harness.models.loaders import load_model
    from harness.specs import DatasetSpec, ModelSpec
    from harness.tasks.base import JobContext
    import harness.plugins  # noqa: F401

    model = load_model(ModelSpec(name="resnet_digits", source="zoo"))
    source = build_source(DatasetSpec(name="digits-test", kind="digits"), limit=16)
    return JobContext(model=model, source=source, device=CPU, batch_size=8, seed=0,
                      show_progress=False)


def quick_params(**overrides):
    from harness.tasks.latency import LatencyTask

    base = dict(warmup_iters=1, warmup_seconds=0.0, min_iters=5, min_seconds=0.0, throughput_iters=2,
                throughput_batch_sizes=[2])
    return LatencyTask.Params(**{**base, **overrides})


def test_bf16_channels_last_and_threads_are_applied_and_restored(digits_ctx):
    from harness.tasks.latency import measure

    threads = torch.get_num_threads()
    metrics = measure(digits_ctx, quick_params(precision="bf16", channels_last=True, threads=1))
    p50 = next(m for m in metrics if m.name == "latency_ms_p50")
    assert p50.params == {"precision": "bf16", "channels_last": True, "compile": "none", "threads": 1,
                          "mode": "model_only", "batch_size": 1, "timer": "perf_counter"}
    assert p50.unit == "ms" and p50.n == 5 and p50.value > 0
    assert torch.get_num_threads() == threads
    conv = digits_ctx.model.module.net.conv1.weight
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last)  # layout restored


def test_fp16_on_cpu_is_rejected_with_a_clear_message(digits_ctx):
    from harness.tasks.latency import measure

    with pytest.raises(ValueError, match="fp16 is not supported on CPU.*bf16 or fp32"):
        measure(digits_ctx, quick_params(precision="fp16"))


def test_compile_time_is_reported_apart(digits_ctx):
    from harness.tasks.latency import measure

    metrics = measure(digits_ctx, quick_params(compile="default", compile_backend="eager"))
    compiled = [m for m in metrics if m.name == "compile_seconds"]
    assert len(compiled) == 1 and compiled[0].value > 0 and compiled[0].unit == "s"
    assert all(m.params.get("compile") == "default" for m in metrics if m.name.startswith("latency_ms"))


def write_suite(tmp_path: Path, latency_params: dict, device: str = "cpu") -> Path:
    suite = {
        "name": "tiny-latency", "version": 1, "defaults": {"batch_size": 16, "device": device},
        "models": [{"name": "resnet_digits", "source": "zoo"}, {"name": "vit_digits", "source": "zoo"}],
        "datasets": [{"name": "digits-test", "kind": "digits", "subset": {"n": 16, "seed": 0}}],
        "tasks": [{"kind": "classification", "params": {"topk": [1]}},
                  {"kind": "latency", "params": latency_params}],
    }
    path = tmp_path / "tiny_latency.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    return path


@pytest.mark.parametrize("bad, message", [
    ({"throughput_batch_sizes": [4, "huge"]}, "throughput_batch_sizes: 'huge' is neither"),
    ({"precision": "fp16"}, "precision: fp16 autocast is not supported on CPU"),
    ({"min_iters": 0}, "min_iters must be positive"),
    ({"modes": ["model_only", "offline"]}, "must be one of model_only, end_to_end"),
])
def test_bad_params_are_one_line_errors_naming_file_and_field(tmp_path, bad, message):
    from harness.schema import SuiteError
    from harness.suite import load_suite

    path = write_suite(tmp_path, bad)
    with pytest.raises(SuiteError) as error:
        load_suite(str(path))
    text = str(error.value)
    assert text.startswith(f"{path}:") and "tasks[1].params" in text and message in text and "\n" not in text


# ---- a tiny suite end to end ------------------------------------------------------------------------------

def test_tiny_latency_suite_end_to_end(tmp_path):
    from harness.run import run_suite

    path = write_suite(tmp_path, {"modes": ["model_only", "end_to_end"], "warmup_iters": 1, "warmup_seconds": 0,
                                  "min_iters": 8, "min_seconds": 0, "throughput_iters": 2,
                                  "throughput_batch_sizes": [1, 4, "max"], "cpu_max_batch": 8, "threads": 1})
    threads = torch.get_num_threads()
    outcome = run_suite(path, out=tmp_path / "out", progress=False)
    assert outcome.failed == [] and torch.get_num_threads() == threads
    rows = outcome.frame[outcome.frame["task"] == "latency"]
    for model, part in rows.groupby("model"):
        by = lambda name: part[part["metric"] == name]  # noqa: E731
        for mode in ("model_only", "end_to_end"):
            stats = {m: float(by(m)[by(m)["params"].map(lambda p: p["mode"] == mode)]["value"].iloc[0])
                     for m in ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99")}
            assert 0 < stats["latency_ms_p50"] <= stats["latency_ms_p90"] <= stats["latency_ms_p99"]
        assert set(by("latency_ms_mean")["n"]) == {8}
        assert by("max_batch_size")["value"].tolist() == [8.0]  # capped on CPU
        sizes = sorted((p["mode"], p["batch_size"]) for p in by("throughput_img_s")["params"])
        assert sizes == sorted((m, b) for m in ("model_only", "end_to_end") for b in (1, 4, 8))
        assert (by("throughput_img_s")["value"] > 0).all() and (by("gflops")["value"] > 0).all()
        assert all(p["threads"] == 1 and p["precision"] == "fp32" for p in by("throughput_img_s")["params"])
    html = (tmp_path / "out" / "index.html").read_text()
    assert "Accuracy vs throughput" in html and '<g id="pareto">' in html and "throughput_img_s" in html


def test_isolated_measurement_runs_in_a_fresh_process(tmp_path, monkeypatch):
    from harness.run import run_suite

    monkeypatch.chdir(tmp_path)  # the child must find this harness without the repo as the current directory
    monkeypatch.delenv("PYTHONPATH", raising=False)
    path = write_suite(tmp_path, {"warmup_iters": 1, "warmup_seconds": 0, "min_iters": 5, "min_seconds": 0,
                                  "throughput_iters": 2, "throughput_batch_sizes": [2], "isolate": True})
    outcome = run_suite(path, out=tmp_path / "out", progress=False, models=["resnet_digits"])
    assert outcome.failed == []
    rows = outcome.frame[outcome.frame["task"] == "latency"]
    p50 = rows[rows["metric"] == "latency_ms_p50"]
    assert len(p50) == 1 and p50["params"].iloc[0]["isolated"] is True and p50["value"].iloc[0] > 0
    for static in ("gflops", "gmacs", "params_m"):  # counts, not timings
        assert "isolated" not in rows[rows["metric"] == static]["params"].iloc[0]
    net = ZOO_MODELS.get("resnet_digits").build()
    assert rows[rows["metric"] == "params_m"]["value"].iloc[0] == pytest.approx(count_params(net) / 1e6)


def test_pareto_join_uses_each_models_best_throughput():
    from harness.report.latency_figures import accuracy_vs_throughput

    def row(model, family, task_kind, metric, value, params):
        return {"model": model, "family": family, "dataset": "d", "task_kind": task_kind, "metric": metric,
                "value": value, "params": params}

    rows = pd.DataFrame([
        row("a", "cnn", "latency", "throughput_img_s", 10.0, {"mode": "model_only", "batch_size": 1}),
        row("a", "cnn", "latency", "throughput_img_s", 30.0, {"mode": "model_only", "batch_size": 8}),
        row("a", "cnn", "latency", "throughput_img_s", 99.0, {"mode": "end_to_end", "batch_size": 8}),
        row("b", "transformer", "latency", "throughput_img_s", 20.0, {"mode": "model_only", "batch_size": 8}),
        row("a", "cnn", "classification", "top1", 0.9, {}),
        row("b", "transformer", "classification", "top1", 0.95, {}),
    ])
    points = accuracy_vs_throughput(rows[rows["task_kind"] == "latency"], rows)
    assert sorted(points) == [("a", "cnn", 30.0, 0.9), ("b", "transformer", 20.0, 0.95)]


# ---- CUDA ---------------------------------------------------------------------------------------------

@cuda_only
def test_cuda_clock_gives_event_and_host_times():
    from harness.perf.timing import CudaClock

    device = torch.device("cuda")
    a = torch.rand(2048, 2048, device=device)
    samples = measure_latency(lambda: a @ a, device, warmup_iters=2, warmup_seconds=0, min_iters=10, min_seconds=0)
    assert len(samples.device_ms) == len(samples.host_ms) == 10
    assert all(d > 0 for d in samples.device_ms)
    # the host time spans the device work plus launch and synchronize overhead
    assert np.median(samples.host_ms) >= 0.9 * np.median(samples.device_ms)
    assert isinstance(CudaClock(device).time(lambda: a @ a)[1], float)


@cuda_only
def test_cuda_peak_memory_and_fp16_measurement(digits_ctx):
    from dataclasses import replace

    from harness.tasks.latency import measure

    device = torch.device("cuda")
    with PeakMemory(device) as peak:
        block = torch.empty(64 * 2**20, dtype=torch.uint8, device=device)
        del block
    assert peak.kind == "cuda_allocator" and peak.mb >= 63
    digits_ctx.model.to_device(device)
    try:
        ctx = replace(digits_ctx, device=device)
        metrics = measure(ctx, quick_params(precision="fp16", modes=["model_only", "end_to_end"],
                                            throughput_batch_sizes=[2, "max"], max_batch_limit=16))
    finally:
        digits_ctx.model.to_device(CPU)
    timers = {m.params["timer"] for m in metrics if m.name == "latency_ms_p50"}
    assert timers == {"cuda_event", "perf_counter_sync"}
    assert [m.value for m in metrics if m.name == "max_batch_size"] == [16.0]
    assert all(m.params["cudnn_benchmark"] is True for m in metrics if m.name == "throughput_img_s")


def test_end_to_end_throughput_skips_batches_larger_than_the_dataset(digits_ctx):
    from harness.tasks.latency import measure

    with pytest.warns(UserWarning, match="batch 32 skipped: dataset 'digits-test' has only 16 images"):
        metrics = measure(digits_ctx, quick_params(modes=["model_only", "end_to_end"], throughput_batch_sizes=[32]))
    measured = [(m.params["mode"], m.params["batch_size"]) for m in metrics if m.name == "throughput_img_s"]
    assert measured == [("model_only", 32)]


# ---- CUDA paths, checked on CPU (the call pattern with torch.cuda mocked; the real run needs a GPU) ---------

def test_cuda_clock_records_its_events_on_the_models_device_stream(monkeypatch):
    """On cuda:1 with cuda:0 current, bare ``Event.record()`` lands on cuda:0's stream and reads ~0 ms."""
    from harness.perf import timing

    log = []

    class Stream:
        def __init__(self, device):
            self.device = torch.device(device)

    class Event:
        def __init__(self, enable_timing=False):
            self.stream = None

        def record(self, stream=None):
            log.append(("record", stream.device if stream is not None else current[-1]))

        def elapsed_time(self, other):
            return 1.5

    current = [torch.device("cuda:0")]

    class DeviceContext:
        def __init__(self, device):
            self.device = torch.device(device)

        def __enter__(self):
            current.append(self.device)

        def __exit__(self, *exc):
            current.pop()

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "device", DeviceContext)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream(device or current[-1]))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append(("sync", torch.device(device))))
    model_device = torch.device("cuda:1")
    host_ms, device_ms = timing.CudaClock(model_device).time(lambda: log.append(("step", current[-1])))
    assert device_ms == 1.5 and host_ms >= 0
    assert log == [("sync", model_device), ("record", model_device), ("step", model_device),
                   ("record", model_device), ("sync", model_device)]


def test_max_batch_search_works_without_torch_OutOfMemoryError(monkeypatch):
    """torch < 2.5 (allowed by pyproject) has only torch.cuda.OutOfMemoryError."""
    monkeypatch.delattr(torch, "OutOfMemoryError", raising=False)
    assert find_max_batch(FakeAllocator(5).fits, limit=64, on_oom=lambda: None) == 5


def test_tf32_is_set_explicitly_for_both_matmul_and_cudnn_and_recorded(monkeypatch):
    from harness.tasks.latency import check_precision, measurement_settings, runtime_settings

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # torch's defaults
    try:
        cuda = torch.device("cuda")  # a device object needs no GPU
        with runtime_settings(quick_params(precision="fp32")):
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
            fp32 = measurement_settings(quick_params(precision="fp32"), cuda)
        with runtime_settings(quick_params(precision="tf32")):
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
            tf32 = measurement_settings(quick_params(precision="tf32"), cuda)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, True)  # restored
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert (fp32["tf32_matmul"], fp32["tf32_cudnn"], fp32["precision"]) == (False, False, "fp32")
    assert (tf32["tf32_matmul"], tf32["tf32_cudnn"], tf32["precision"]) == (True, True, "tf32")
    with pytest.raises(ValueError, match="tf32 is a CUDA tensor-core mode"):
        check_precision("tf32", CPU)


def test_tf32_in_a_cpu_suite_is_a_suite_error(tmp_path):
    from harness.schema import SuiteError
    from harness.suite import load_suite

    path = write_suite(tmp_path, {"precision": "tf32"})
    with pytest.raises(SuiteError, match=r"tasks\[1\]\.params\.precision: tf32 is a CUDA tensor-core mode"):
        load_suite(str(path))


@pytest.fixture
def counting_backend():
    """A Dynamo backend that runs the captured graph eagerly and records the image batch sizes it ran."""
    from torch._dynamo import register_backend

    sizes: list[int] = []

    def counting(gm, example_inputs):
        def run(*args):
            sizes.extend(a.shape[0] for a in args if isinstance(a, torch.Tensor) and a.dim() == 4 and a.shape[1] == 3)
            return gm.forward(*args)

        return run

    register_backend(counting, name="harness_test_counting")
    return sizes


@pytest.fixture
def tiny_ctx(digits_ctx):
    """The digits job with a tiny conv net in place of the ResNet: compiling it takes a fraction of the time."""
    import dataclasses

    from harness.models.wrapper import PixelModel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    module = PixelModel(net, (0.5,) * 3, (0.25,) * 3).eval()
    return dataclasses.replace(digits_ctx, model=dataclasses.replace(digits_ctx.model, module=module))


def test_max_batch_search_runs_the_compiled_module_that_is_timed(tiny_ctx, counting_backend):
    from harness.tasks.latency import measure

    metrics = measure(tiny_ctx, quick_params(compile="default", compile_backend="harness_test_counting",
                                               throughput_batch_sizes=["max"], cpu_max_batch=4))
    assert next(m for m in metrics if m.name == "max_batch_size").value == 4
    assert 2 in counting_backend  # batch 2 is only ever run by the search (1 -> 2 -> 4)


def test_each_compiled_job_starts_from_a_fresh_dynamo(tiny_ctx, monkeypatch):
    import torch._dynamo

    from harness.tasks.latency import measure

    resets = []
    real = torch._dynamo.reset
    monkeypatch.setattr(torch._dynamo, "reset", lambda: (resets.append(1), real())[1])
    measure(tiny_ctx, quick_params(compile="default", compile_backend="eager"))
    assert resets  # at the start (and end) of the job
    measure(tiny_ctx, quick_params(compile="default", compile_backend="eager"))
    assert len(resets) >= 4


def test_a_graph_break_fails_loudly_instead_of_timing_eager_code(digits_ctx):
    import dataclasses

    from harness.tasks.latency import measure

    class Breaks(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            torch._dynamo.graph_break()
            return self.net(x)

    ctx = dataclasses.replace(digits_ctx, model=dataclasses.replace(digits_ctx.model, module=Breaks(
        digits_ctx.model.module)))
    with pytest.raises(Exception, match="(?i)graph.break"):
        measure(ctx, quick_params(compile="default", compile_backend="eager"))


def test_recompile_limit_raises_instead_of_falling_back_to_eager():
    import torch._dynamo

    from harness.perf.compiled import CompileFallbackError, check_compiled, compile_module, strict_dynamo

    with strict_dynamo():
        with pytest.raises(CompileFallbackError, match="ran eager code"):
            check_compiled("nothing-compiled-yet")
        torch._dynamo.config.recompile_limit, limit = 1, torch._dynamo.config.recompile_limit
        try:
            forward = compile_module(nn.Linear(4, 2).double(), "default", "eager")
            forward(torch.ones(1, 4, dtype=torch.float64))
            check_compiled("linear")
            with pytest.raises(Exception, match="fail_on_recompile_limit_hit|fail_on_cache_limit_hit"):
                forward(torch.ones(1, 4))  # another dtype: a recompile past the limit would otherwise run eager
        finally:
            torch._dynamo.config.recompile_limit = limit


# ---- achieved TFLOP/s, MFU and CUDA graphs ------------------------------------------------------------------

def test_peak_table_matches_device_names_as_torch_reports_them():
    from harness.perf.peaks import device_peak, peak_for

    assert device_peak("NVIDIA H100 80GB HBM3", "bf16") == (989.5, "NVIDIA H100 SXM")
    assert device_peak("NVIDIA H100 PCIe", "tf32") == (378.0, "NVIDIA H100 PCIe")
    assert device_peak("NVIDIA H200", "fp32") == (67.0, "NVIDIA H200 SXM")
    assert device_peak("NVIDIA A100-SXM4-80GB", "fp16") == (312.0, "NVIDIA A100")
    assert device_peak("NVIDIA A10", "tf32") == (62.5, "NVIDIA A10")  # not taken for an A100
    assert device_peak("NVIDIA L4", "bf16") == (121.0, "NVIDIA L4")  # not taken for an L40S
    assert device_peak("NVIDIA L40S", "bf16") == (362.05, "NVIDIA L40S")
    assert device_peak("Tesla V100-SXM2-16GB", "bf16") is None  # no bf16 tensor cores: no peak, no MFU
    assert device_peak("cpu", "fp32") is None
    assert peak_for("cpu", "fp32", 2.5) == (2.5, "user (peak_tflops)")
    assert peak_for("NVIDIA H200", "bf16", 800.0) == (800.0, "user (peak_tflops)")  # the override wins


def test_achieved_tflops_and_mfu_follow_from_the_measured_throughput_and_flops(digits_ctx):
    from harness.tasks.latency import measure

    metrics = measure(digits_ctx, quick_params(throughput_batch_sizes=[2, 4], peak_tflops=0.5))
    gflops = next(m.value for m in metrics if m.name == "gflops")
    throughputs = [m for m in metrics if m.name == "throughput_img_s"]
    achieved = [m for m in metrics if m.name == "achieved_tflops"]
    mfu = [m for m in metrics if m.name == "mfu"]
    assert len(throughputs) == len(achieved) == len(mfu) == 2
    for t, a, u in zip(throughputs, achieved, mfu):
        assert a.params == t.params and a.n == t.n and a.unit == "TFLOP/s"
        assert a.value == pytest.approx(t.value * gflops / 1e3, rel=1e-12)
        assert u.value == pytest.approx(a.value / 0.5, rel=1e-12)
        assert u.params == {**t.params, "peak_tflops": 0.5, "peak_source": "user (peak_tflops)"}
    # without an override a CPU has no known peak: achieved TFLOP/s, but no MFU
    metrics = measure(digits_ctx, quick_params())
    assert [m.name for m in metrics].count("achieved_tflops") == 1 and "mfu" not in {m.name for m in metrics}


@pytest.mark.parametrize("params, field, message", [
    ({"cuda_graphs": True}, "tasks[1].params.cuda_graphs", "cuda_graphs needs a CUDA device"),
    ({"cuda_graphs": True, "compile": "reduce-overhead"}, "tasks[1].params",
     "cuda_graphs captures the eager model"),
    ({"peak_tflops": 0}, "tasks[1].params", "peak_tflops must be positive"),
])
def test_cuda_graphs_and_peak_settings_are_checked_when_the_suite_loads(tmp_path, params, field, message):
    from harness.schema import SuiteError
    from harness.suite import load_suite

    path = write_suite(tmp_path, params)
    with pytest.raises(SuiteError) as error:
        load_suite(str(path))
    text = str(error.value)
    assert text.startswith(f"{path}:") and field in text and message in text and "\n" not in text


def test_cuda_graphs_refuse_a_cpu_device_in_code_too(digits_ctx):
    from harness.tasks.latency import measure

    with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device"):
        measure(digits_ctx, quick_params(cuda_graphs=True))


@cuda_only
def test_a_graphed_forward_replays_the_eager_forward_and_recaptures_per_shape():
    from harness.perf.cuda_graphs import GraphedForward

    device = torch.device("cuda")
    model = ZOO_MODELS.get("resnet_digits").build().to(device).eval()
    with torch.inference_mode():
        graphed = GraphedForward(model, device)
        for batch in (1, 4, 4, 1):
            images = torch.rand(batch, 3, 32, 32, device=device)
            assert torch.allclose(graphed(images), model(images), rtol=1e-5, atol=1e-6)
    assert graphed.captures == 3  # 1, 4, then 1 again (one graph held at a time)


@cuda_only
def test_cuda_graphs_in_the_latency_task_record_the_setting(digits_ctx):
    from dataclasses import replace

    from harness.tasks.latency import measure

    device = torch.device("cuda")
    digits_ctx.model.to_device(device)
    try:
        metrics = measure(replace(digits_ctx, device=device),
                          quick_params(cuda_graphs=True, modes=["model_only", "end_to_end"], precision="bf16"))
    finally:
        digits_ctx.model.to_device(CPU)
    assert all(m.params["cuda_graphs"] is True for m in metrics if m.name == "throughput_img_s")
    assert {m.name for m in metrics} >= {"latency_ms_p50", "throughput_img_s", "achieved_tflops", "mfu"}
