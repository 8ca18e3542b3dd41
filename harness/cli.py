"""Command line: argument parsing only; the work happens in harness.runner."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

LISTABLE = ("suites", "models", "datasets", "tasks")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="Benchmark and robustness evaluation of vision models (CNNs vs transformers).",
    )
    parser.add_argument("--suite", help="suite name (see --list suites) or path to a suite YAML file")
    parser.add_argument("--list", choices=LISTABLE, help="list what is available and exit")
    parser.add_argument("--models", nargs="+", metavar="PATTERN", help="only models matching these fnmatch patterns")
    parser.add_argument("--limit", type=int, help="evaluate only the first N samples of each dataset")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the suite's, else auto)")
    parser.add_argument("--batch-size", type=int, help="evaluation batch size")
    parser.add_argument("--seed", type=int, help="seed for everything random")
    parser.add_argument("--workers", type=int, help="data-loading worker processes")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<suite>)")
    parser.add_argument("--data-root", help="root folder substituted for {data_root} in dataset paths")
    parser.add_argument("--rerun", action="store_true", help="ignore cached results and run every job again")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    if not args.suite and not args.list:
        parser.error("give --suite NAME|PATH or --list suites|models|datasets|tasks")
    for name in ("limit", "batch_size", "workers"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "workers" else 1):
            parser.error(f"--{name.replace('_', '-')} must be {'non-negative' if name == 'workers' else 'positive'}")
    return args


class UsageError(ValueError):
    """A bad command-line value; printed as one line naming the flag, exit code 2."""


def check_device_flag(name: str | None) -> None:
    """Validate ``--device`` here, so a bad flag is blamed on the command line and not on the suite file."""
    if name is None:
        return
    from harness.env import resolve_device

    try:
        resolve_device(name)
    except ValueError as exc:
        raise UsageError(f"--device {name}: {exc}") from None


def check_output_dir(out: Path | None, label: str = "--out") -> None:
    """``out`` must be a folder we can create or write to; checked before anything runs, creating nothing.
    ``label`` names what the user gave (the flag, or e.g. "output folder" for the default one)."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"{label} {out}: exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{label} {out}: {existing} is not a folder")
    try:  # os.access says yes to root everywhere; a real file tells the truth (read-only mounts, /proc)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(f"{label} {out}: cannot write in {existing} ({exc.strerror})") from None


def list_available(what: str) -> list[str]:
    import harness.plugins  # noqa: F401
    from harness.registry import DATASETS, TASKS, ZOO_MODELS
    from harness.suite import list_suites

    if what == "suites":
        return [f"{name:28s} {description}" for name, description in list_suites()]
    if what == "models":
        zoo = [f"{name:28s} zoo  {entry.family:12s} (embedded, offline)" for name, entry in ZOO_MODELS.items()]
        return zoo + ["timm:<arch>[.<tag>]           any timm architecture (timm.list_models)",
                      "torchvision:<arch>            any torchvision classification model",
                      "checkpoint                    a timm architecture with local safetensors / .pt weights"]
    registry = DATASETS if what == "datasets" else TASKS
    return [f"{name:28s} {(entry.__doc__ or '').strip().splitlines()[0] if entry.__doc__ else ''}"
            for name, entry in registry.items()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from harness.schema import SuiteError

    try:
        if args.list:
            print("\n".join(list_available(args.list)))
            return 0
        check_device_flag(args.device)
        check_output_dir(args.out)
        from harness.runner import run_suite

        outcome = run_suite(args.suite, models=args.models, limit=args.limit, device=args.device,
                            batch_size=args.batch_size, seed=args.seed, workers=args.workers, out=args.out,
                            data_root=args.data_root, rerun=args.rerun, progress=not args.no_progress)
    except (SuiteError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{outcome.ran} job(s) run, {outcome.cached} cached, {len(outcome.failed)} failed -> "
          f"{outcome.out_dir / 'index.html'}")
    for failure in outcome.failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
