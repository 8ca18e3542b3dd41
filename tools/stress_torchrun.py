#!/usr/bin/env python
"""Stress the torchrun parity: a small suite run by one process, then N times by ``torchrun --standalone
--nproc_per_node=2`` (gloo, CPU), each run's numbers and per-sample records compared with one process's.

    python tools/stress_torchrun.py                 # 20 runs
    python tools/stress_torchrun.py --runs 40 --load 1   # with a busy loop per --load on the side

Prints one line per run, then ``K/N ok``; for every failed run the head of each rank's own stderr (torchrun
``--redirects 2 --log-dir``), where a rank's own error or an abort ("terminate called without an active
exception") shows. Exit status 0 when all N runs are ok. The suite (classification and a 3-step PGD on 40
digits samples, two models) keeps a run to a few seconds; the one-process reference is computed once (its
numbers are deterministic), each torchrun run against it is what the test checks
(tests/test_distributed.py::test_torchrun_two_processes_equal_one_process).
"""
from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

SUITE = {
    "name": "ddp-stress", "version": 1, "defaults": {"batch_size": 8, "seed": 0},
    "models": [{"name": "resnet_digits", "source": "zoo"}, {"name": "vit_digits", "source": "zoo"}],
    "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 40, "seed": 3}}],
    "tasks": [
        {"kind": "classification", "params": {"topk": [1, 5]}},
        {"kind": "pgd", "params": {"eps": ["4/255"], "steps": 3, "random_start": False, "n": 24,
                                   "blackbox_n": 0}},
    ],
}


def numbers(out: Path) -> dict:
    """(model, task, metric, params) -> (value, n, ci_low, ci_high) of the ok rows, as the test compares."""
    rows = json.loads((out / "results.json").read_text())
    return {(r["model"], r["task"], r["metric"], json.dumps(r["params"], sort_keys=True)):
            (r["value"], r["n"], r["ci_low"], r["ci_high"]) for r in rows if r["status"] == "ok"}


def records(out: Path) -> dict[str, bytes]:
    """Each job's per-sample records, decompressed (same job keys, same content in one and two processes)."""
    return {path.name: gzip.open(path, "rb").read() for path in sorted((out / "samples").glob("*.jsonl.gz"))}


def busy() -> None:  # the CPU-load generator: one core's worth of spinning
    while True:
        pass


def rank_stderr_heads(log_dir: Path, chars: int) -> str:
    parts = []
    for path in sorted(log_dir.glob("*/attempt_*/*/stderr.log")):
        text = path.read_text(errors="replace").strip()
        if text:
            parts.append(f"    [local rank {path.parent.name} stderr]\n" +
                         "\n".join("      " + line for line in text[:chars].splitlines()))
    return "\n".join(parts) or "    (no rank wrote to stderr)"


def run_once(index: int, suite: Path, work: Path, env: dict, nproc: int, timeout: float,
             reference: tuple[dict, dict[str, bytes]]) -> tuple[bool, str, str]:
    """(ok, one-line verdict, detail for a failure)"""
    out, logs = work / f"two{index}", work / f"logs{index}"
    command = ["torchrun", "--standalone", f"--nproc_per_node={nproc}", "--redirects", "2", "--log-dir", str(logs),
               str(REPO / "run_bench.py"), "--suite", str(suite), "--no-progress", "--out", str(out)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s", rank_stderr_heads(logs, 1500)
    if proc.returncode != 0:
        tail = "\n".join("      " + line for line in proc.stderr.strip().splitlines()[-8:])
        return False, f"torchrun exit {proc.returncode}", f"{rank_stderr_heads(logs, 1500)}\n    [torchrun]\n{tail}"
    if proc.stdout.count("job(s) run") != 1:
        return False, "the summary was not printed once (rank 0 alone prints it)", proc.stdout[-1500:]
    rows = json.loads((out / "results.json").read_text())
    sizes = {r["world_size"] for r in rows if r["status"] == "ok" and not r.get("derived")}
    if sizes != {nproc}:
        return False, f"world_size {sorted(sizes)} recorded, expected {nproc}", ""
    single, single_records = reference
    parallel = numbers(out)
    if parallel != single:
        differ = sorted(str(k) for k in set(single) | set(parallel) if single.get(k) != parallel.get(k))
        return False, f"{len(differ)} number(s) differ from one process", "\n".join(differ[:10])
    if records(out) != single_records:
        return False, "per-sample records differ from one process", ""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    return True, f"ok, {len(parallel)} numbers equal to one process's", ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="torchrun runs (default 20)")
    parser.add_argument("--load", type=int, default=0, metavar="K",
                        help="busy-loop processes spinning while the runs go (default 0)")
    parser.add_argument("--nproc", type=int, default=2, help="processes per torchrun (default 2)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run before it counts as hung")
    parser.add_argument("--workdir", type=Path, help="keep runs here (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    if shutil.which("torchrun") is None:
        print("error: torchrun not on PATH (activate the environment)", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stress_torchrun_"))
    work.mkdir(parents=True, exist_ok=True)
    suite = work / "stress.yaml"
    suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    one = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--suite", str(suite), "--no-progress",
                          "--out", str(work / "one")], capture_output=True, text=True, env=env, timeout=args.timeout)
    if one.returncode != 0:
        print(f"error: the one-process reference run failed (exit {one.returncode}):\n{one.stderr[-3000:]}",
              file=sys.stderr)
        return 2
    reference = numbers(work / "one"), records(work / "one")
    print(f"one process: {len(reference[0])} numbers, {len(reference[1])} records files "
          f"({time.perf_counter() - started:.1f} s); {args.runs} torchrun run(s), {args.nproc} ranks, "
          f"load {args.load}", flush=True)
    spinners = [multiprocessing.Process(target=busy, daemon=True) for _ in range(args.load)]
    for spinner in spinners:
        spinner.start()
    failures, ok = [], 0
    runs_started = time.perf_counter()
    try:
        for index in range(1, args.runs + 1):
            t0 = time.perf_counter()
            good, verdict, detail = run_once(index, suite, work, env, args.nproc, args.timeout, reference)
            ok += good
            print(f"run {index:3d}/{args.runs}: {verdict} ({time.perf_counter() - t0:.1f} s)", flush=True)
            if not good:
                failures.append((index, verdict, detail))
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()
    for index, verdict, detail in failures:
        print(f"\nrun {index} failed: {verdict}\n{detail}")
    print(f"\n{args.runs} runs in {time.perf_counter() - runs_started:.0f} s")
    print(f"{ok}/{args.runs} ok")
    if args.workdir is None and not failures:
        shutil.rmtree(work, ignore_errors=True)
    elif failures:
        print(f"(runs kept in {work})")
    return 0 if ok == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
