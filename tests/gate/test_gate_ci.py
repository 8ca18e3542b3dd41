"""The example CI files: their shell steps, run here as plain shell (tools/ci_steps.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import ci_steps  # noqa: E402

GATE_FLAGS = "--gate baselines/classification.json --junit junit.xml"


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_example_ci_files_gate_the_embedded_suite(name):
    commands = [" ".join(c.split()) for _, c in ci_steps.steps(ROOT / "docs" / "ci" / name) if c]
    assert any('pip install' in c and '-e ".[dev]"' in c for c in commands)
    (gate_step,) = [c for c in commands if "--gate" in c]
    assert gate_step.startswith("python run_bench.py --suite classification") and GATE_FLAGS in gate_step


def test_steps_run_in_order_with_a_local_step_summary(tmp_path):
    workflow = tmp_path / "wf.yml"
    workflow.write_text("jobs:\n  j:\n    steps:\n      - uses: actions/checkout@v4\n"
                        "      - run: echo one >> \"$GITHUB_STEP_SUMMARY\"\n"
                        "      - run: exit 3\n      - run: echo never >> \"$GITHUB_STEP_SUMMARY\"\n")
    summary = tmp_path / "summary.md"
    code = ci_steps.main([str(workflow), "--run", "--summary", str(summary)])
    assert code == 3 and summary.read_text() == "one\n"


def _cli_has_gate() -> bool:
    help_text = subprocess.run([sys.executable, "run_bench.py", "--help"], cwd=ROOT, capture_output=True,
                               text=True).stdout
    return "--gate" in help_text and (ROOT / "baselines" / "classification.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not _cli_has_gate(), reason="run_bench.py --gate and baselines/classification.json not wired yet")
def test_github_workflow_steps_run_as_plain_shell(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the steps run from the repository root, as on the CI
    code = ci_steps.main([str(ROOT / "docs" / "ci" / "github-actions.yml"), "--run", "--skip-install",
                          "--summary", str(tmp_path / "summary.md")])
    assert code == 0
    assert "Regression gate passed" in (tmp_path / "summary.md").read_text()
