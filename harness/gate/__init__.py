"""The CI regression gate: baselines, comparability, statistical tests and CI-native outputs.

``save_baseline(run_dir, path, policy)`` on main; ``gate(run_dir, baseline_path, policy, junit)`` on a PR.
See docs/gate.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, TextIO

from harness.gate.baseline import GateInputError, Snapshot, load_baseline, snapshot_run
from harness.gate.baseline import save_baseline as _save
from harness.gate.compare import GateResult, JobReport, Verdict, compare
from harness.gate.output import emit, html_fragment, write_junit
from harness.gate.policy import GatePolicy, GatePolicyError, MetricPolicy

__all__ = ["GateInputError", "GatePolicy", "GatePolicyError", "GateResult", "JobReport", "MetricPolicy",
           "Verdict", "check_same_suite", "gate", "html_fragment", "save_baseline"]


def save_baseline(run_dir: Path | str, path: Path | str, policy: GatePolicy | None = None) -> Path:
    """Write ``run_dir``'s baseline to ``path`` (JSON; per-image records kept for the metrics ``policy`` gates)."""
    return _save(Path(run_dir), Path(path), policy)


def gate(run_dir: Path | str, baseline_path: Path | str, policy: GatePolicy | None = None,
         junit: Path | str | None = None, stream: TextIO | None = None,
         env: Mapping[str, str] | None = None, quiet: bool = False) -> GateResult:
    """Compare ``run_dir`` with a baseline; print the table and annotations (unless ``quiet``), write JUnit
    if asked and append the step summary when ``$GITHUB_STEP_SUMMARY`` is set. ``.exit_code``: 0/1/2."""
    policy = policy or GatePolicy()
    baseline, run = load_baseline(Path(baseline_path)), snapshot_run(Path(run_dir), policy)
    check_same_suite(baseline, run, Path(baseline_path), Path(run_dir))
    result = compare(baseline, run, policy)
    result.baseline, result.run = str(baseline_path), str(run_dir)
    if junit is not None:
        write_junit(result, Path(junit))
    if not quiet:
        emit(result, stream, env)
    return result


def check_same_suite(baseline: Snapshot, run: Snapshot, baseline_path: Path, run_dir: Path) -> None:
    """A baseline of another suite is refused as a whole (GateInputError), even when job names coincide."""
    expected, got = baseline.source.get("suite"), run.source.get("suite")
    if expected and got and expected != got:
        raise GateInputError(f"{baseline_path}: source.suite: a baseline of suite {expected!r}, but {run_dir} "
                             f"is a run of suite {got!r}")
