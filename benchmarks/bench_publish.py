"""Publishing speed and page size: a site from 50 models x 6 suites x 20 runs of synthetic results.

    python benchmarks/bench_publish.py [--models 50] [--suites 6] [--runs 20] [--data DIR] [--quick]

The results are written through the store's own API (tests/publish_fixtures.py: classification, PGD with
sanity flags, corruptions with a derived mCE, latency; 4 jobs per model per run). Timed: ``publish_site``
(read every store, derive, build every table, render every page and history plot, write every export),
once the harness is imported. Baseline, same run: the bare minimum of publishing the same stores — read
each store and write its latest rows with ``DataFrame.to_html``. Goals: publish <= 10 s, largest page
<= 5 MB.
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO), str(REPO / "tests")]  # figures, this checkout's harness, fixtures

from figures import Benchmark, Figure  # noqa: E402
from publish_fixtures import write_reports  # noqa: E402

from harness.report.collect import find_run_folders  # noqa: E402
from harness.report.site import publish_site  # noqa: E402
from harness.store import ResultStore  # noqa: E402


def bare_publish(root: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for folder in find_run_folders(root):
        store = ResultStore(folder / "results.sqlite")
        store.frame().drop(columns=["provenance"]).to_html(out / f"{folder.name}.html")
        store.close()


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def configure(parser) -> None:
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--suites", type=int, default=6)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--data", type=Path, help="keep the synthetic reports here (reused when present)")


def measure(args) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp) / "reports"
        if not (root.exists() and any(root.rglob("results.sqlite"))):
            started = time.perf_counter()
            write_reports(root, args.models, args.suites, args.runs)
            print(f"synthetic stores written in {time.perf_counter() - started:.1f} s "
                  f"({args.models} models x {args.suites} suites x {args.runs} runs, 4 jobs per model per run)")
        started = time.perf_counter()
        bare_publish(root, Path(tmp) / "bare")
        bare = time.perf_counter() - started
        cpu = _cpu_seconds()
        summary = publish_site(root, Path(tmp) / "site")
        cpu = _cpu_seconds() - cpu
        pages = sorted(summary.pages, key=lambda p: p.stat().st_size)
        largest = pages[-1]
        print(f"publish: {summary.seconds:.2f} s for {len(pages)} pages and {summary.tables} tables "
              f"(goal <= 10 s); bare to_html of the same stores: {bare:.2f} s; ratio {summary.seconds / bare:.1f}x")
        print(f"CPU time of publishing (this process and its figure worker): {cpu:.2f} s; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall time counts the waits of a busy machine)")
        print(f"largest page: {largest.stat().st_size / 1e6:.2f} MB ({largest.relative_to(summary.out)}; goal <= 5 MB); "
              f"site total {sum(p.stat().st_size for p in (Path(tmp) / 'site').rglob('*') if p.is_file()) / 1e6:.1f} MB")
        what = f"{args.models} models x {args.suites} suites x {args.runs} runs"
        return [
            Figure(f"publish wall time, {what}", summary.seconds, unit="s", at_most=10.0, digits=2,
                   detail=f"{len(pages)} pages, {summary.tables} tables; load average {os.getloadavg()[0]:.1f}"),
            Figure("publish / bare DataFrame.to_html of the same stores", summary.seconds / bare, unit="x", digits=1,
                   detail=f"bare {bare:.2f} s"),
            Figure("publish CPU time (this process + figure worker)", cpu, unit="s", digits=2),
            Figure("largest page", largest.stat().st_size / 1e6, unit="MB", at_most=5.0, digits=2,
                   detail=str(largest.relative_to(summary.out))),
        ]


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"models": 3, "suites": 2, "runs": 2})
run = BENCHMARK.run


if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
