"""Run every benchmark (``benchmarks/bench_*.py``), each in its own process, and print one table of figures.

    python benchmarks/run_all.py [--quick] [--only PATTERN ...] [--markdown FILE] [--timeout SECONDS] [--list]

Every ``bench_*.py`` in this folder is run (none is registered by hand, so none is left out), in name order,
as ``python bench_x.py [--quick] --json TMP``; its own output streams through. A benchmark that exits
non-zero, times out or reports no figures is a crash: it is reported in the table, the others still run,
and ``run_all.py`` exits 1 at the end.

The table has one row per figure: benchmark, figure, goal, measured, verdict (``meets`` / ``misses`` against
the goal, ``informational`` where there is none). ``--quick`` runs every benchmark at tiny sizes with one or
two repeats (seconds each: it checks that they still run against today's harness); its verdicts read
``quick (not judged)`` and a slow ratio never fails it: only a crash does (this is what CI runs; it sets
OMP_NUM_THREADS=1 for the benchmarks unless the environment sets it). A full run
takes tens of minutes; timings are only meaningful on an otherwise idle machine. A miss fails a full run
only with ``--fail-on-miss``.

``--markdown FILE`` also writes the table as Markdown: into the block between
``<!-- run_all: begin -->`` and ``<!-- run_all: end -->`` when FILE has one (docs/benchmarks.md does),
else as the whole file.
"""
from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from figures import QUICK_VERDICT, Figure  # noqa: E402

BEGIN, END = "<!-- run_all: begin -->", "<!-- run_all: end -->"
HEADER = ("benchmark", "figure", "goal", "measured", "verdict")
QUICK_TIMEOUT = 300  # seconds per benchmark in quick mode: a hang is a crash


@dataclass
class Outcome:
    name: str
    seconds: float
    figures: list[Figure] = field(default_factory=list)
    error: str | None = None  # why it counts as a crash


def discover(folder: Path = HERE) -> list[Path]:
    return sorted(folder.glob("bench_*.py"))


def short(path: Path) -> str:
    return path.stem


def select(paths: list[Path], patterns: list[str] | None) -> list[Path]:
    """Benchmarks whose name (with or without ``bench_``) contains a pattern or matches it as a glob."""
    if not patterns:
        return paths
    chosen = []
    for path in paths:
        names = (path.stem, path.stem.removeprefix("bench_"))
        if any(p in n or fnmatch.fnmatch(n, p) for p in patterns for n in names):
            chosen.append(path)
    return chosen


def run_one(path: Path, quick: bool, timeout: float | None) -> Outcome:
    """One benchmark in a fresh interpreter (its own process group, so a timeout ends its workers too)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "figures.json"
        command = [sys.executable, str(path.resolve()), *(["--quick"] if quick else []), "--json", str(report)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if quick:  # one thread unless told otherwise: on a shared CI box two threads can be 10-40x slower
            env.setdefault("OMP_NUM_THREADS", "1")
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=HERE.parent, env=env, start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            return Outcome(short(path), time.perf_counter() - started, error=f"timed out after {timeout:g} s")
        except KeyboardInterrupt:
            _kill(process)
            raise
        seconds = time.perf_counter() - started
        if code != 0:
            return Outcome(short(path), seconds, error=f"crashed (exit {code})" if code > 0 else
                           f"crashed (signal {-code})")
        try:
            figures = [Figure.from_json(f) for f in json.loads(report.read_text())["figures"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return Outcome(short(path), seconds, error=f"reported no figures ({type(exc).__name__})")
        if not figures:
            return Outcome(short(path), seconds, error="reported no figures")
        return Outcome(short(path), seconds, figures)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def rows(outcomes: list[Outcome], quick: bool) -> list[tuple[str, ...]]:
    table = []
    for outcome in outcomes:
        if outcome.error:
            table.append((outcome.name, "-", "-", "-", outcome.error))
        for figure in outcome.figures:
            table.append((outcome.name, figure.name, figure.goal(), figure.measured_text(), figure.verdict(quick)))
    return table


def text_table(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *table]) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [HEADER, *table]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(table: list[tuple[str, ...]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in table:
        name, *rest = row
        lines.append("| " + " | ".join([f"`{name}`", *map(cell, rest)]) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def summary(outcomes: list[Outcome], quick: bool) -> str:
    verdicts = [f.verdict(quick) for o in outcomes for f in o.figures]
    crashed = sum(1 for o in outcomes if o.error)
    parts = [f"{len(outcomes)} benchmarks", f"{crashed} crashed"]
    if quick:
        parts.append(f"{len(verdicts)} figures ({QUICK_VERDICT})")
    else:
        parts += [f"{verdicts.count('meets')} figures meet their goal", f"{verdicts.count('misses')} miss",
                  f"{verdicts.count('informational')} informational"]
    return ", ".join(parts)


def write_markdown(path: Path, table: list[tuple[str, ...]], outcomes: list[Outcome], quick: bool, total: float,
                   load: tuple[float, float]) -> None:
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    block = "\n".join([
        BEGIN,
        f"`python benchmarks/run_all.py{' --quick' if quick else ''}`, {when}, on {machine()}; "
        f"load average {load[0]:.1f} before, {load[1]:.1f} after; {total:.0f} s in all; {summary(outcomes, quick)}.",
        "",
        markdown_table(table),
        END,
    ])
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds each); fails only on a crash")
    parser.add_argument("--only", action="append", metavar="PATTERN",
                        help="run the benchmarks whose name contains PATTERN (or matches it as a glob); repeatable")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--timeout", type=float, help="seconds per benchmark before it counts as a crash "
                        f"(default: {QUICK_TIMEOUT} with --quick, none otherwise)")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a figure misses its goal "
                        "(full runs only)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--dir", type=Path, default=HERE, help=argparse.SUPPRESS)  # tests: another folder
    args = parser.parse_args(argv)

    paths = select(discover(args.dir), args.only)
    if args.list:
        print("\n".join(short(p) for p in paths))
        return 0
    if not paths:
        print(f"run_all: no benchmark matches {args.only}; there are: "
              + ", ".join(short(p) for p in discover(args.dir)), file=sys.stderr)
        return 2
    timeout = args.timeout if args.timeout is not None else QUICK_TIMEOUT if args.quick else None
    mode = "quick" if args.quick else "full"
    load_before = os.getloadavg()[0]
    print(f"run_all: {len(paths)} benchmarks, {mode} mode, on {machine()}, load average {load_before:.2f}",
          flush=True)
    started = time.perf_counter()
    outcomes = []
    for path in paths:
        print(f"\n=== {short(path)} ({mode}) ===", flush=True)
        outcome = run_one(path, args.quick, timeout)
        outcomes.append(outcome)
        print(f"--- {outcome.name}: {outcome.error or 'ok'}, {outcome.seconds:.1f} s", flush=True)
    total = time.perf_counter() - started
    load_after = os.getloadavg()[0]

    table = rows(outcomes, args.quick)
    print(f"\n{'quick mode: sizes too small to judge; only a crash fails' if args.quick else 'full run'}, "
          f"load average {load_before:.2f} before, {load_after:.2f} after\n")
    print(text_table(table))
    print()
    print("seconds per benchmark: " + ", ".join(f"{o.name.removeprefix('bench_')} {o.seconds:.1f}" for o in outcomes))
    print(f"total {total:.1f} s; {summary(outcomes, args.quick)}")
    if args.markdown:
        write_markdown(args.markdown, table, outcomes, args.quick, total, (load_before, load_after))
        print(f"table written to {args.markdown}")

    crashed = [o.name for o in outcomes if o.error]
    if crashed:
        print(f"run_all: FAILED: {', '.join(crashed)}", file=sys.stderr)
        return 1
    if args.fail_on_miss and not args.quick and any(f.verdict() == "misses" for o in outcomes for f in o.figures):
        print("run_all: a figure misses its goal (--fail-on-miss)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
