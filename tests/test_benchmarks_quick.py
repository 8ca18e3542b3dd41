"""benchmarks/: every bench_*.py has the shared command line and a quick mode, and run_all.py reports crashes.

Cheap: the benchmarks themselves are read, not run (CI runs ``benchmarks/run_all.py --quick`` after the
tests); run_all.py runs here on stand-in benchmarks that import nothing heavy.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from figures import Figure  # noqa: E402
import run_all  # noqa: E402

BENCH_FILES = sorted(BENCHMARKS.glob("bench_*.py"))


def test_run_all_finds_every_benchmark():
    assert len(BENCH_FILES) >= 12
    assert run_all.discover() == BENCH_FILES
    assert [p.stem for p in run_all.select(BENCH_FILES, ["pgd"])] == ["bench_pgd"]
    assert [p.stem for p in run_all.select(BENCH_FILES, ["bench_seg*"])] == ["bench_seg_eval"]


def _benchmark_call(tree: ast.Module) -> ast.Call | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["BENCHMARK"]:
            return node.value if isinstance(node.value, ast.Call) else None
    return None


@pytest.mark.parametrize("path", BENCH_FILES, ids=lambda p: p.stem)
def test_benchmark_has_the_shared_command_line_and_a_quick_mode(path):
    """``BENCHMARK = Benchmark(__doc__, configure, measure, quick={...})``, ``run``, a main guard, and every
    quick default names one of the script's own options (a typo would leave the full size in quick mode)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    call = _benchmark_call(tree)
    assert call is not None and getattr(call.func, "id", None) == "Benchmark", "no BENCHMARK = Benchmark(...)"
    quick = next((k.value for k in call.keywords if k.arg == "quick"), None)
    assert isinstance(quick, ast.Dict) and quick.keys, "no quick-mode defaults"
    options = {node.args[0].value for node in ast.walk(tree)
               if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"
               and node.args and isinstance(node.args[0], ast.Constant)}
    for key in quick.keys:
        assert "--" + key.value.replace("_", "-") in options, f"quick sets {key.value!r}, which is no option"
    assert "run = BENCHMARK.run" in source
    assert "sys.exit(BENCHMARK.main())" in source
    assert "--quick" in ast.get_docstring(tree), "the docstring's usage line should show --quick"


def test_figure_verdicts():
    assert Figure("r", 0.99, at_least=0.98).verdict() == "meets"
    assert Figure("r", 0.97, at_least=0.98).verdict() == "misses"
    assert Figure("r", 0.97, at_least=0.98).verdict(quick=True) == "quick (not judged)"
    assert Figure("r", 1.06, at_least=0.95, at_most=1.05).verdict() == "misses"
    assert Figure("r", float("nan"), at_most=1.02).verdict() == "misses"
    assert Figure("s", 3.0, unit="x").verdict() == "informational"
    assert Figure("s", 3.0, unit="x").goal() == "no goal (informational)"
    assert Figure("t", 7.991, unit="s", at_most=10.0, digits=2).measured_text() == "7.99 s"
    assert Figure("t", 7.991, unit="s", at_most=10.0).goal() == "<= 10 s"
    assert Figure.from_json(Figure("r", 1.0, at_least=0.95, detail="d").to_json()) == \
        Figure("r", 1.0, at_least=0.95, detail="d")


STAND_IN = """
import sys
sys.path.insert(0, {benchmarks!r})
from figures import Benchmark, Figure

def configure(parser):
    parser.add_argument("--n", type=int, default=1000)

def measure(args):
    {body}
    return [Figure(f"ratio at n={{args.n}}", {value}, at_least=0.95)]

BENCHMARK = Benchmark(__doc__, configure, measure, quick={{"n": 2}})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
"""


def _stand_in(folder: Path, name: str, value: float = 0.9, body: str = "pass") -> None:
    (folder / f"bench_{name}.py").write_text(
        textwrap.dedent(STAND_IN).format(benchmarks=str(BENCHMARKS), body=body, value=value))


def _run_all(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), *args], capture_output=True, text=True,
                          timeout=120)


def test_run_all_reports_a_crash_and_runs_the_rest(tmp_path):
    _stand_in(tmp_path, "a_crash", body="raise RuntimeError('JobContext changed')")
    _stand_in(tmp_path, "b_slow")  # 0.9 against a goal of >= 0.95: not judged in quick mode
    (tmp_path / "bench_c_silent.py").write_text("print('forgot to report')\n")
    (tmp_path / "bench_d_hang.py").write_text("import time\ntime.sleep(60)\n")
    done = _run_all("--quick", "--dir", str(tmp_path), "--timeout", "5")
    assert done.returncode == 1, done.stdout + done.stderr
    table = done.stdout.split("load average")[-1]
    assert "bench_a_crash" in table and "crashed (exit 1)" in table
    assert "JobContext changed" in done.stderr  # the benchmark's own traceback streams through
    assert "ratio at n=2" in table and "quick (not judged)" in table and "misses" not in table
    assert "reported no figures" in table
    assert "timed out after 5 s" in table
    assert "FAILED: bench_a_crash, bench_c_silent, bench_d_hang" in done.stderr


def test_run_all_quick_passes_on_a_slow_ratio_and_judges_a_full_run(tmp_path):
    _stand_in(tmp_path, "slow", value=0.5)
    _stand_in(tmp_path, "fine", value=1.0)
    assert _run_all("--quick", "--dir", str(tmp_path)).returncode == 0
    docs = tmp_path / "doc.md"
    docs.write_text(f"intro\n{run_all.BEGIN}\nold table\n{run_all.END}\noutro\n")
    done = _run_all("--dir", str(tmp_path), "--only", "slow", "--only", "fin*", "--markdown", str(docs))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio at n=1000" in done.stdout and "misses" in done.stdout and "meets" in done.stdout
    text = docs.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "| `bench_slow` | ratio at n=1000 | >= 0.95 | 0.500 | misses |" in text
    assert _run_all("--dir", str(tmp_path), "--fail-on-miss", "--only", "slow").returncode == 1
    assert _run_all("--dir", str(tmp_path), "--only", "nothing").returncode == 2
