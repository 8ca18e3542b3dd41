"""Run a suite and write its report: the runner's jobs, then results.csv, results.json and index.html in the
run's folder (rank 0 only). The command line and ``harness.run_suite`` both come here."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.runner import RunOutcome, execute_suite
from harness.suite import Suite


def run_suite(suite: str | Path | Suite, report: bool = True, **overrides: Any) -> RunOutcome:
    """Run ``suite`` (a name, a path or a loaded Suite) with the command line's overrides (``limit``, ``models``,
    ``device``, ``out``, ...); ``report=False`` leaves the report to the caller."""
    outcome = execute_suite(suite, **overrides)
    if report and outcome.is_main:
        from harness.report.render import write_report

        write_report(outcome.frame, outcome.out_dir, outcome.suite)
    return outcome
