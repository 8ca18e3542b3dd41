"""Run the shell steps of an example CI file here, as plain shell: no GitHub, no GitLab.

    python tools/ci_steps.py docs/ci/github-actions.yml            # print the commands
    python tools/ci_steps.py docs/ci/github-actions.yml --run --skip-install

GitHub Actions: every ``run:`` of every job's steps (``uses:`` steps are the hosting service's and are
listed as skipped); GitLab CI: every job's ``script:`` lines. ``--run`` executes them in order with bash
(stopping at the first failure, like the CI), with ``$GITHUB_STEP_SUMMARY`` pointing at a local file, and
exits with the failing step's code.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

INSTALL_MARKERS = ("pip install",)


def steps(path: Path) -> list[tuple[str, str | None]]:
    """(name, shell command or None for a hosted action) in the order the CI runs them."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: list[tuple[str, str | None]] = []
    if isinstance(config.get("jobs"), dict):  # GitHub Actions
        for job_name, job in config["jobs"].items():
            for number, step in enumerate(job.get("steps", []), start=1):
                name = f"{job_name}/{step.get('name') or step.get('uses') or number}"
                out.append((name, step.get("run")))
        return out
    for job_name, job in config.items():  # GitLab CI: top-level jobs with a script
        if isinstance(job, dict) and "script" in job:
            out += [(f"{job_name}/{i}", line) for i, line in enumerate(job["script"], start=1)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow", type=Path)
    parser.add_argument("--run", action="store_true", help="execute the shell steps")
    parser.add_argument("--skip-install", action="store_true", help="skip steps that pip install")
    parser.add_argument("--summary", type=Path, default=Path("step-summary.md"),
                        help="file standing for $GITHUB_STEP_SUMMARY (default: step-summary.md)")
    args = parser.parse_args(argv)
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(args.summary.resolve()))
    for name, command in steps(args.workflow):
        if command is None:
            print(f"# {name}: hosted action, skipped")
            continue
        if args.skip_install and any(marker in command for marker in INSTALL_MARKERS):
            print(f"# {name}: install step, skipped")
            continue
        print(f"# {name}\n{command.rstrip()}")
        if args.run:
            code = subprocess.run(["bash", "-e", "-c", command], env=env).returncode
            if code:
                print(f"# {name}: exit {code}", file=sys.stderr)
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
