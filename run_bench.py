#!/usr/bin/env python
"""Run a benchmark suite: ``python run_bench.py --suite robustness`` (see --help)."""
import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
