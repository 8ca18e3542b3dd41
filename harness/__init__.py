"""visionbench harness: suites -> runner -> results store -> HTML leaderboards."""
from __future__ import annotations

from harness.version import __version__


def run_suite(suite, **overrides):
    """Run a suite (name or path) and return its results as a pandas DataFrame.

    Keyword overrides match the CLI: ``limit``, ``models``, ``device``, ``batch_size``, ``seed``,
    ``out``, ``data_root``, ``rerun``.
    """
    from harness.run import run_suite as _run

    return _run(suite, **overrides).frame


__all__ = ["run_suite", "__version__"]
