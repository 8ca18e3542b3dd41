"""Command line: argument parsing only; the work happens in harness.runner and friends.

``visionbench [--suite ...]`` (also ``python run_bench.py``) runs a suite; subcommands work on finished
runs: ``rescore DIR``, ``merge OUT IN...``, ``gate DIR BASELINE``, ``publish DIR``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.schema import SuiteError, UsageError

LISTABLE = ("suites", "models", "datasets", "tasks")
SUBCOMMANDS = ("rescore", "merge", "gate", "publish", "effective-robustness")


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/N such as 0/4, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= i < N")
    return index, count


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="Benchmark and robustness evaluation of vision models (CNNs vs transformers). "
                    "Subcommands on finished runs: rescore DIR, merge OUT IN...",
    )
    parser.add_argument("--suite", help="suite name (see --list suites) or path to a suite YAML file")
    parser.add_argument("--list", choices=LISTABLE, help="list what is available and exit")
    parser.add_argument("--models", nargs="+", metavar="PATTERN", help="only models matching these fnmatch patterns")
    parser.add_argument("--limit", type=int, help="evaluate N samples of each dataset (a seeded random draw)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the suite's, else auto)")
    parser.add_argument("--batch-size", type=int, help="evaluation batch size")
    parser.add_argument("--seed", type=int, help="seed for everything random")
    parser.add_argument("--workers", type=int, help="data-loading worker processes")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<suite>)")
    parser.add_argument("--data-root", help="root folder substituted for {data_root} in dataset paths")
    parser.add_argument("--rerun", action="store_true", help="ignore cached results and saved partial state")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--log-samples", action=argparse.BooleanOptionalAction, default=True,
                        help="keep per-sample records in OUT/samples (default: on)")
    parser.add_argument("--save-baseline", type=Path, metavar="FILE",
                        help="after the run, save its numbers as the regression baseline FILE (JSON, commit it)")
    parser.add_argument("--gate", type=Path, metavar="BASELINE",
                        help="after the run, gate it against BASELINE: exit 1 on a regression, 2 if not comparable")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="with --gate: write JUnit XML, one case per metric")
    parser.add_argument("--shard", type=_shard, metavar="I/N",
                        help="run only every N-th job starting at I (fan out over a scheduler; combine with merge)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = run_parser()
    args = parser.parse_args(argv)
    if not args.suite and not args.list:
        parser.error("give --suite NAME|PATH or --list suites|models|datasets|tasks")
    for name in ("limit", "batch_size", "workers"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "workers" else 1):
            parser.error(f"--{name.replace('_', '-')} must be {'non-negative' if name == 'workers' else 'positive'}")
    return args


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
        from harness.zoo.detectors import DETECTORS
        from harness.zoo.segmenters import SEGMENTERS

        zoo = [f"{name:28s} zoo  {entry.family:12s} (embedded, offline)" for name, entry in ZOO_MODELS.items()]
        zoo += [f"{name:28s} zoo  {entry.family:12s} (embedded detector, offline)" for name, entry in DETECTORS.items()]
        zoo += [f"{name:28s} zoo  {entry.family:12s} (embedded segmenter, offline)" for name, entry in SEGMENTERS.items()]
        return zoo + ["timm:<arch>[.<tag>]           any timm architecture (timm.list_models)",
                      "torchvision:<arch>            any torchvision classification model",
                      "checkpoint                    a timm architecture with local safetensors / .pt weights",
                      "hf:<hub name or folder>       transformers SegFormer / UperNet / Mask2Former / OneFormer "
                      "(output: semantic_logits | panoptic; the [hf] extra)"]
    registry = DATASETS if what == "datasets" else TASKS
    return [f"{name:28s} {(entry.__doc__ or '').strip().splitlines()[0] if entry.__doc__ else ''}"
            for name, entry in registry.items()]


def rescore_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="visionbench rescore",
                                     description="Recompute every metric of a run from its per-sample records.")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    if not (args.run_dir / "results.sqlite").is_file():
        print(f"error: {args.run_dir}: no results.sqlite (not a run folder)", file=sys.stderr)
        return 2
    from harness.rescore import rescore

    rows, problems = rescore(args.run_dir)
    for problem in problems:
        print(f"not rescored: {problem}", file=sys.stderr)
    different = [r for r in rows if not r.equal]
    for row in different:
        print(f"DIFFERENT {row.title} {row.metric} {row.params}: stored {row.stored!r}, rescored {row.rescored!r}")
    print(f"{len(rows) - len(different)} of {len(rows)} metric(s) identical when rescored from the records")
    return 1 if different or problems else 0


def merge_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="visionbench merge",
                                     description="Combine the stores of sharded runs (--shard i/N) into OUT. "
                                                 "Refused (exit 2, OUT left as it was) when the inputs do not "
                                                 "belong together or a shard is missing.")
    parser.add_argument("out", type=Path, help="output folder (created)")
    parser.add_argument("inputs", type=Path, nargs="+", help="run folders or results.sqlite files")
    parser.add_argument("--suite", help="suite to title the report and derive cross-model metrics")
    parser.add_argument("--allow-partial", action="store_true",
                        help="merge even when shards of the fan-out are missing (the summary says which)")
    args = parser.parse_args(argv)
    from harness.merge import MergeError, merge_runs

    check_output_dir(args.out, "OUT")
    suite = None
    if args.suite:
        from harness.suite import load_suite

        suite = load_suite(args.suite, check_files=False)  # before merging: a bad suite changes nothing
    try:
        summary = merge_runs(args.out, args.inputs, allow_partial=args.allow_partial,
                             suite_name=suite.name if suite else None)
    except MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for outcome in summary.inputs:
        print(outcome.line)
    print(summary.line)
    if summary.partial:
        print(f"warning: partial merge (--allow-partial): {summary.missing_text}; its jobs are not in "
              f"{args.out}", file=sys.stderr)
    if suite is not None:
        from harness.report.render import write_report
        from harness.runner import with_derived_metrics
        from harness.store import ResultStore

        store = ResultStore(args.out / "results.sqlite")
        frame = with_derived_metrics(store.frame(), suite.tasks)
        store.close()
        report = write_report(frame, args.out, suite)
        if summary.partial:
            import html

            from harness.report.render import add_report_section

            add_report_section(args.out, "Partial merge",
                               f'<p class="partial-merge">{html.escape(summary.line)}: the jobs of the missing '
                               "shards are not in this report.</p>")
        print(f"report: {report}")
    return 0


def gate_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="visionbench gate",
                                     description="Gate a finished run against a baseline (docs/gate.md).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("--suite", help="take the gate policy from this suite's gate: section")
    parser.add_argument("--junit", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    policy = None
    if args.suite:
        from harness.suite import load_suite

        policy = load_suite(args.suite, check_files=False).gate_policy
    return run_gate(args.run_dir, args.baseline, policy, args.junit)


def run_gate(run_dir: Path, baseline: Path, policy, junit: Path | None) -> int:
    """Gate ``run_dir``; add the verdicts to its report; returns the gate's exit code (0, 1 or 2)."""
    from harness.gate import GateInputError, GatePolicyError, gate, html_fragment

    try:
        result = gate(run_dir, baseline, policy, junit=junit)
    except GateInputError as exc:  # the gate cannot vouch for the run: say why, in one line
        print(f"error: not comparable: {exc}", file=sys.stderr)
        if junit is not None:  # and never leave an earlier, passing JUnit file for the CI to read
            from harness.gate.output import write_junit_refusal

            write_junit_refusal(Path(junit), f"not comparable: {exc}")
        return 2
    except (GatePolicyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if (Path(run_dir) / "index.html").is_file():  # a run folder without its report is gated all the same
        from harness.report.render import add_report_section

        add_report_section(run_dir, "Regression check", html_fragment(result))
    if result.exit_code == 2:  # the table says it per metric; one line says it to whoever reads the log
        stuck = [v for v in result.gated if v.status == "not comparable"]
        first = stuck[0]
        print(f"error: not comparable: {baseline}: {len(stuck)} gated metric(s) cannot be compared, first "
              f"{first.where} {first.label}: {'; '.join(first.reasons)}", file=sys.stderr)
    return result.exit_code


def save_baseline_file(run_dir: Path, path: Path, policy) -> int:
    from harness.gate import GateInputError, save_baseline

    try:
        print(f"baseline saved: {save_baseline(run_dir, path, policy)}")
    except GateInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def publish_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="visionbench publish",
                                     description="Publish finished runs: a static site, or tables as text (docs/publishing.md).")
    parser.add_argument("reports", type=Path, help="a run folder, or a folder holding run folders (e.g. reports/)")
    parser.add_argument("--to", type=Path, metavar="PATH", help="the site folder (--format site), else a file (default: stdout)")
    parser.add_argument("--format", choices=("site", "md", "latex", "csv", "json"), default="site")
    parser.add_argument("--table", metavar="PATTERN", help="text formats: only tables whose id matches (fnmatch)")
    args = parser.parse_args(argv)
    if args.format == "site":
        if args.to is None:
            parser.error("--to SITE_DIR is needed to publish a site (or give --format md|latex|csv|json)")
        check_output_dir(args.to, "--to")
        from harness.report.site import publish_site

        summary = publish_site(args.reports, args.to)
        print(f"{len(summary.pages)} pages, {summary.tables} tables -> {args.to / 'index.html'} ({summary.seconds:.1f} s)")
        return 0
    from harness.report.site import publish_text

    text = publish_text(args.reports, args.format, args.table)
    if args.to is None:
        sys.stdout.write(text)
    else:
        check_output_dir(args.to.parent, "--to")
        args.to.write_text(text, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        from harness.effective_command import effective_robustness_main

        try:
            return {"rescore": rescore_main, "merge": merge_main, "gate": gate_main, "publish": publish_main,
                    "effective-robustness": effective_robustness_main}[argv[0]](argv[1:])
        except (SuiteError, UsageError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    args = parse_args(argv)
    from harness.distributed import leave_world

    try:
        return _run_main(args, argv)
    finally:  # every exit path, errors included: never leave gloo's threads to interpreter shutdown
        leave_world()


def _run_main(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.distributed import leave_world, world_from_env

    try:
        if args.list:
            print("\n".join(list_available(args.list)))
            return 0
        check_device_flag(args.device)
        check_output_dir(args.out)
        from harness.run import run_suite

        outcome = run_suite(args.suite, models=args.models, limit=args.limit, device=args.device,
                            batch_size=args.batch_size, seed=args.seed, workers=args.workers, out=args.out,
                            data_root=args.data_root, rerun=args.rerun, progress=not args.no_progress,
                            log_samples=args.log_samples, shard=args.shard, argv=argv)
    except (SuiteError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # every rank finished the suite together (rank 0's report included) and nothing is exchanged from here
    # on: all leave the process group in step, before rank 0 alone prints and gates
    try:
        leave_world(orderly=not outcome.interrupted)
    except RuntimeError as exc:  # gloo/nccl errors: a peer failed after its share, e.g. rank 0 writing the report
        print(f"error: rank {world_from_env().rank}: another rank left the process group before the end of the "
              f"run; its own error says why ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})",
              file=sys.stderr)
        return 1
    if not world_from_env().is_main:
        return 0
    from harness.report.terminal import results_table

    table = results_table(outcome.frame) if not outcome.frame.empty else ""
    if table:
        print(table + "\n")
    print(f"{outcome.ran} job(s) run, {outcome.cached} cached, {len(outcome.failed)} failed -> "
          f"{outcome.out_dir / 'index.html'}")
    if outcome.interrupted:
        print("interrupted: finished jobs are stored and in the report; rerun to continue", file=sys.stderr)
        return 130
    code = 1 if outcome.failed else 0
    if args.save_baseline and not outcome.failed:
        code = max(code, save_baseline_file(outcome.out_dir, args.save_baseline, outcome.gate_policy))
    if args.gate:
        verdict = run_gate(outcome.out_dir, args.gate, outcome.gate_policy, args.junit)
        code = 2 if 2 in (code, verdict) else max(code, verdict)
    return code


if __name__ == "__main__":
    sys.exit(main())
