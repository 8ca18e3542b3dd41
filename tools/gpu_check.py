"""The prepared GPU check's measurements (``tools/gpu_check.sh`` runs the tests, then this).

On one CUDA device, in this order, each part's raw results written as CSV under ``--out``:

1. the latency task on timm architectures (random weights: offline) in tf32, fp16 and bf16, each with and
   without ``cuda_graphs``: p50 latency at batch 1, model-only throughput at batch 1 and 256, MFU;
2. timm's own ``benchmark.py`` on the same models (when ``--timm-benchmark PATH`` or ``$TIMM_BENCHMARK``
   points at it; timm's wheel does not ship it), and the harness-over-timm throughput ratio at batch 256;
3. benchmarks/bench_detection_eval.py on cuda (loading and COCO's per-image matching beside the model);
4. the robustness suite with ``--device cuda`` and with ``--device cpu``, every number compared within the
   stated tolerance (``TOLERANCE``);

then one Markdown table per part in ``gpu_check.md`` (and on stdout), with the tests' summary from the
JUnit file the shell script wrote. ``--quick`` shrinks everything to seconds (one model, fewer iterations).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
MODELS = ["resnet50", "convnext_tiny", "vit_base_patch16_224", "swin_tiny_patch4_window7_224"]
PRECISIONS = ["tf32", "fp16", "bf16"]
TIMM_AMP = {"tf32": [], "fp16": ["--amp", "--amp-dtype", "float16"], "bf16": ["--amp", "--amp-dtype", "bfloat16"]}
# --device cuda vs cpu: strict fp32 on both, but convolution and matmul kernels sum in other orders, so a
# logit can move by ~1e-6 and flip a near-tie: every number must agree within 1 point absolute (for rates
# in [0, 1]: 0.01) or 1% relative, whichever is larger.
TOLERANCE = {"absolute": 0.01, "relative": 0.01}


def latency_suite(models: list[str], quick: bool) -> dict[str, Any]:
    """One latency task per (precision, cuda_graphs), named ``latency-<precision>[-graphs]``."""
    timing = ({"warmup_iters": 2, "warmup_seconds": 0, "min_iters": 5, "min_seconds": 0, "throughput_iters": 2,
               "throughput_batch_sizes": [1, 8]} if quick else
              {"warmup_iters": 10, "warmup_seconds": 0.5, "min_iters": 50, "min_seconds": 1.0,
               "throughput_iters": 20, "throughput_batch_sizes": [1, 256]})
    tasks = [{"kind": "latency", "name": f"latency-{precision}{'-graphs' if graphs else ''}",
              "params": {"modes": ["model_only"], "batch_size": 1, "precision": precision, "cuda_graphs": graphs,
                         **timing}}
             for precision in PRECISIONS for graphs in (False, True)]
    return {"name": "gpu-check-latency", "version": 1, "defaults": {"batch_size": 8, "device": "cuda", "seed": 0},
            "models": [{"name": m, "source": "timm", "pretrained": False} for m in models],
            "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 8, "seed": 0}}],
            "tasks": tasks}


def run_latency(models: list[str], out: Path, quick: bool) -> pd.DataFrame:
    from harness.run import run_suite

    path = out / "latency_suite.yaml"
    path.write_text(yaml.safe_dump(latency_suite(models, quick), sort_keys=False))
    outcome = run_suite(path, out=out / "latency", progress=False, report=False)
    frame = outcome.frame[outcome.frame["status"] == "ok"].copy()
    frame.assign(params=frame["params"].map(json.dumps)).to_csv(out / "latency.csv", index=False)
    return frame


def latency_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A row per (model, precision, cuda_graphs): p50 at batch 1 (CUDA events), images/s and MFU per batch."""
    rows: dict[tuple, dict[str, Any]] = {}
    for record in frame.itertuples():
        p = record.params
        if p.get("mode") != "model_only":
            continue
        row = rows.setdefault((record.model, p["precision"], p.get("cuda_graphs", False)),
                              {"model": record.model, "precision": p["precision"],
                               "cuda_graphs": p.get("cuda_graphs", False)})
        if record.metric == "latency_ms_p50" and p.get("timer", "cuda_event") == "cuda_event":
            row["p50_ms_b1"] = record.value
        elif record.metric == "throughput_img_s":
            row[f"img_s_b{p['batch_size']}"] = record.value
        elif record.metric == "mfu":
            row[f"mfu_b{p['batch_size']}"] = record.value
    return pd.DataFrame(list(rows.values()))


def run_timm_benchmark(script: Path, models: list[str], batch: int, out: Path) -> pd.DataFrame:
    """timm's benchmark.py at ``batch`` for each model and precision (timm's fp32 default runs TF32)."""
    rows = []
    for model in models:
        for precision in PRECISIONS:
            results = out / f"timm_{model}_{precision}.csv"
            command = [sys.executable, str(script), "--bench", "inference", "--model", model, "-b", str(batch),
                       "--img-size", "224", "--num-warm-iter", "10", "--num-bench-iter", "40",
                       "--results-file", str(results), *TIMM_AMP[precision]]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not results.exists():
                print(f"gpu_check: timm benchmark.py failed for {model} {precision}: {done.stderr[-300:]}")
                continue
            with results.open() as handle:
                first = next(csv.DictReader(handle))
            rows.append({"model": model, "precision": precision,
                         "timm_img_s": float(first["infer_samples_per_sec"])})
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "timm_benchmark.csv", index=False)
    return frame


def run_detection_overlap(out: Path, quick: bool) -> list[dict[str, Any]]:
    """benchmarks/bench_detection_eval.py on cuda: the detection job (loading ahead, COCO's per-image matching
    on the digest thread) over a bare loop; its figures as JSON."""
    figures = out / "detection_eval.json"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_detection_eval.py"), "--device", "cuda",
               "--json", str(figures), *(["--quick"] if quick else [])]
    done = subprocess.run(command, capture_output=True, text=True)
    (out / "detection_eval.log").write_text(done.stdout + done.stderr)
    return json.loads(figures.read_text())["figures"] if done.returncode == 0 and figures.exists() else []


def run_robustness(out: Path, limit: int | None) -> tuple[pd.DataFrame, dict[str, float]]:
    """The robustness suite on cuda, then on cpu: the comparison, and each run's wall seconds."""
    from harness.run import run_suite

    frames, seconds = {}, {}
    for device in ("cuda", "cpu"):
        started = time.perf_counter()
        outcome = run_suite("robustness", device=device, out=out / f"robustness-{device}", progress=False,
                            report=False, limit=limit)
        seconds[device] = time.perf_counter() - started
        frames[device] = outcome.frame[outcome.frame["status"] == "ok"]
        frames[device].assign(params=frames[device]["params"].map(json.dumps)).to_csv(
            out / f"robustness_{device}.csv", index=False)
    compared = device_comparison(frames["cpu"], frames["cuda"])
    compared.to_csv(out / "robustness_cuda_vs_cpu.csv", index=False)
    return compared, seconds


def device_comparison(cpu: pd.DataFrame, cuda: pd.DataFrame, tolerance: dict[str, float] = TOLERANCE) -> pd.DataFrame:
    """Every metric of the CPU run beside the CUDA run's (model, dataset, task, metric, params), with |delta|
    and whether it is within ``tolerance``; a number present in only one run is out of tolerance."""
    key = ["model", "dataset", "task", "metric", "params_key"]

    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["metric"].notna()]
        return frame.assign(params_key=frame["params"].map(lambda p: json.dumps(p, sort_keys=True)))[[*key, "value"]]

    both = keyed(cpu).merge(keyed(cuda), on=key, how="outer", suffixes=("_cpu", "_cuda"))
    delta = (both["value_cuda"] - both["value_cpu"]).abs()
    allowed = (both["value_cpu"].abs() * tolerance["relative"]).clip(lower=tolerance["absolute"])
    return both.assign(abs_delta=delta, within=(delta <= allowed) | (both["value_cpu"].isna() & both["value_cuda"].isna()))


def tests_summary(junit: Path) -> dict[str, Any]:
    """Counts from pytest's JUnit XML, and the failing tests' ids."""
    if not junit.exists():
        return {"ran": False}
    root = ElementTree.parse(junit).getroot()
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failing = []
    for suite in root.iter("testsuite"):
        for name in counts:
            counts[name] += int(suite.get(name, 0))
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failing.append(f"{case.get('classname')}::{case.get('name')}")
    return {"ran": True, **counts, "failing": failing}


def frame_markdown(frame: pd.DataFrame) -> str:
    """A Markdown table of ``frame``, numbers to 4 significant digits."""
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")

    rows = [list(frame.columns), ["---"] * len(frame.columns), *[[cell(v) for v in row] for row in frame.values]]
    return "\n".join("| " + " | ".join(map(str, row)) + " |" for row in rows)


def markdown(device: str, tests: dict[str, Any], latency: pd.DataFrame, timm: pd.DataFrame | None,
             compared: pd.DataFrame | None, seconds: dict[str, float],
             detection: list[dict[str, Any]] | None = None) -> str:
    lines = [f"# GPU check on {device}", ""]
    if tests.get("ran"):
        passed = tests["tests"] - tests["failures"] - tests["errors"] - tests["skipped"]
        lines += [f"Tests: {passed} passed, {tests['failures']} failed, {tests['errors']} errors, "
                  f"{tests['skipped']} skipped.", *[f"- failing: `{t}`" for t in tests["failing"]], ""]
    if not latency.empty:
        table = latency
        if timm is not None and not timm.empty:
            table = table.merge(timm, on=["model", "precision"], how="left")
            big = max(c for c in table.columns if c.startswith("img_s_b"))
            table = table.assign(harness_over_timm=table[big] / table["timm_img_s"])
        lines += ["## Latency task (model only)", "", frame_markdown(table), ""]
    if detection is not None:
        lines += ["## Detection evaluation over a bare loop (CUDA)", "",
                  *([f"- {f['name']}: {f['measured_text']} (goal {f['goal']})" for f in detection] or
                    ["- the benchmark failed: see detection_eval.log"]), ""]
    if compared is not None:
        out = compared[~compared["within"]]
        lines += ["## Robustness suite: --device cuda vs --device cpu", "",
                  f"{len(compared)} numbers; {int((compared['abs_delta'] == 0).sum())} identical; "
                  f"{len(out)} outside the tolerance (|delta| <= max({TOLERANCE['absolute']}, "
                  f"{TOLERANCE['relative']:.0%} of the CPU value)); max |delta| {compared['abs_delta'].max():.4g}; "
                  f"wall: cuda {seconds.get('cuda', float('nan')):.1f} s, cpu {seconds.get('cpu', float('nan')):.1f} s.",
                  ""]
        if len(out):
            lines += [frame_markdown(out.drop(columns=["params_key"]).head(20)), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--junit", type=Path, help="the JUnit XML of the CUDA test run, for the summary")
    parser.add_argument("--timm-benchmark", type=Path, default=os.environ.get("TIMM_BENCHMARK") or None)
    parser.add_argument("--quick", action="store_true", help="one model, a few iterations, 64 robustness samples")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    models = MODELS[:1] if args.quick else MODELS
    tests = tests_summary(args.junit) if args.junit else {"ran": False}
    latency = latency_table(run_latency(models, args.out, args.quick))
    timm = None
    if args.timm_benchmark is not None and args.timm_benchmark.exists():
        timm = run_timm_benchmark(args.timm_benchmark, models, 8 if args.quick else 256, args.out)
    detection = run_detection_overlap(args.out, args.quick)
    compared, seconds = run_robustness(args.out, 64 if args.quick else None)
    report = markdown(device, tests, latency, timm, compared, seconds, detection)
    (args.out / "gpu_check.md").write_text(report + "\n")
    print(report)
    failed = tests.get("failures", 0) + tests.get("errors", 0)
    return 1 if failed or not compared["within"].all() else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
