"""A third-party plugin (tests/plugins/visionbench-flip: a task with its own evaluator, metrics and figure,
nothing of it in harness/) gets everything a built-in task gets: suite validation with line-numbered errors,
a run with per-sample records, rescore identical to the run, torchrun parity, shards + merge, the paired gate
and its figure on the run's report and on the published site.

The package is made an installed one the way pip leaves it: its folder on the path and a ``.dist-info`` beside
it holding the entry points its pyproject.toml declares (the harness finds it through ``importlib.metadata``)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "tests" / "plugins" / "visionbench-flip"
FIGURE_TITLE = "Flip consistency vs mirrored top-1"

SUITE = {
    "name": "flip", "version": 1, "defaults": {"batch_size": 16, "seed": 0},
    "models": [{"name": "resnet_digits", "source": "zoo"}, {"name": "vit_digits", "source": "zoo"}],
    "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 40, "seed": 2}}],
    "tasks": [{"kind": "flip_consistency", "params": {"n": 36},
               "evaluators": [{"kind": "topk", "name": "top1", "ks": [1]}]}],
}


def install_plugin(site: Path) -> dict[str, str]:
    """The environment of a process that has the plugin installed (its entry points from its pyproject)."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items()) for group, entries in groups.items()))
    path = os.pathsep.join([str(PLUGIN), str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return install_plugin(tmp_path_factory.mktemp("site"))


def bench(env: dict[str, str], *args: str, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = [*(launcher or (sys.executable,)), str(REPO / "run_bench.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)


def write(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == text)


def numbers(out: Path) -> dict:
    rows = json.loads((out / "results.json").read_text())
    return {(r["model"], r["task"], r["metric"], json.dumps(r["params"], sort_keys=True)): (r["value"], r["n"])
            for r in rows if r["status"] == "ok"}


@pytest.fixture(scope="module")
def run(env, tmp_path_factory) -> tuple[Path, Path]:
    """The suite run once in one process: (suite file, output folder)."""
    folder = tmp_path_factory.mktemp("flip")
    suite = write(folder / "flip.yaml", SUITE)
    done = bench(env, "--suite", str(suite), "--no-progress", "--out", str(folder / "one"))
    assert done.returncode == 0, done.stderr[-3000:]
    return suite, folder / "one"


def test_the_suite_validator_knows_the_plugin_task(env, tmp_path):
    bad = {**SUITE, "tasks": [{"kind": "flip_consistency", "params": {"n": 0}}]}
    done = bench(env, "--suite", str(write(tmp_path / "bad.yaml", bad)), "--no-progress", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'bad.yaml'}:{line_of(tmp_path / 'bad.yaml', 'n: 0')}: tasks[0].params.n: "
                     "must be positive, got 0"], lines

    wrong = {**SUITE, "tasks": [{"kind": "flip_consistency", "evaluators": [{"kind": "topk", "ks": [11]}]}]}
    done = bench(env, "--suite", str(write(tmp_path / "wrong.yaml", wrong)), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "wrong.yaml:" in done.stderr and "ks must list integers" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_the_plugin_the_task_is_unknown_and_a_suite_can_name_the_module(env, tmp_path):
    plain = {**os.environ, "OMP_NUM_THREADS": "1"}
    suite = write(tmp_path / "flip.yaml", SUITE)
    done = bench(plain, "--suite", str(suite), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "unknown task 'flip_consistency'" in done.stderr

    # not installed, but importable: the suite's plugins: list loads it
    listed = write(tmp_path / "listed.yaml", {**SUITE, "plugins": ["vb_flip"]})
    done = bench({**plain, "PYTHONPATH": str(PLUGIN)}, "--suite", str(listed), "--no-progress", "--out",
                 str(tmp_path / "listed"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert {key[2] for key in numbers(tmp_path / "listed")} >= {"flip_consistency", "flip_top1", "top1"}

    missing = write(tmp_path / "missing.yaml", {**SUITE, "plugins": ["vb_flip", "vb_no_such_plugin"]})
    done = bench(plain, "--suite", str(missing), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {missing}:{line_of(missing, '- vb_flip')}: plugins[0]: plugin module 'vb_flip' failed to import: ModuleNotFoundError: "
        "No module named 'vb_flip'"]


def test_the_plugin_task_runs_with_records_and_rescores_identically(env, run):
    suite, out = run
    rows = [r for r in json.loads((out / "results.json").read_text()) if r["status"] == "ok"]
    by_metric = {(r["model"], r["metric"]): r for r in rows}
    for model in ("resnet_digits", "vit_digits"):
        assert by_metric[(model, "flip_consistency")]["n"] == 36
        assert 0 < by_metric[(model, "flip_consistency")]["value"] <= 1
        assert by_metric[(model, "top1")]["params"] == {"evaluator": "top1"}  # attached, same pass
    provenance = json.loads(rows[0]["provenance"]) if isinstance(rows[0].get("provenance"), str) else None
    assert provenance is None or any(p["module"] == "vb_flip" for p in provenance["env"]["plugins"])
    assert len(list((out / "samples").glob("*.jsonl.gz"))) == 2
    done = bench(env, "rescore", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "differ" not in done.stdout and "not rescored" not in done.stderr


def test_the_paired_gate_judges_the_plugin_metric(env, run, tmp_path):
    suite, out = run
    baseline = tmp_path / "baseline"
    done = bench(env, "--suite", str(suite), "--no-progress", "--out", str(out), "--save-baseline", str(baseline))
    assert done.returncode == 0, done.stderr[-2000:]
    done = bench(env, "gate", str(out), str(baseline))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(("resnet_digits ", "vit_digits "))]
    tests = {(row[0], row[3]): row[-3] for row in rows if len(row) > 6 and row[3] == "flip_consistency"}
    # paired on the samples (McNemar), not the fallback on counts: the evaluator's evidence reached the gate
    assert tests == {(model, "flip_consistency"): "mcnemar-exact" for model in ("resnet_digits", "vit_digits")}, done.stdout


def test_the_plugin_figure_and_protocol_are_on_the_report_and_the_site(env, run, tmp_path):
    suite, out = run
    assert FIGURE_TITLE in (out / "index.html").read_text()
    done = bench(env, "publish", str(out), "--to", str(tmp_path / "site"))
    assert done.returncode == 0, done.stderr[-2000:]
    pages = [p for p in (tmp_path / "site").rglob("*.html") if FIGURE_TITLE in p.read_text()]
    assert pages, "the site shows no plugin figure"
    # the table's protocol box: the task's own facts and its metrics' declared protocol text
    text = "\n".join(p.read_text() for p in (tmp_path / "site").rglob("*.html"))
    assert "horizontal, on the width axis of the pixel-space image" in text
    assert "flip_consistency: share of images whose top-1 class is the same for the image and its horizontal" in text


def test_shards_merge_into_the_run(env, run, tmp_path):
    suite, out = run
    for index in (0, 1):
        done = bench(env, "--suite", str(suite), "--no-progress", "--shard", f"{index}/2", "--out",
                     str(tmp_path / f"shard{index}"))
        assert done.returncode == 0, done.stderr[-2000:]
    done = bench(env, "merge", str(tmp_path / "merged"), str(tmp_path / "shard0"), str(tmp_path / "shard1"),
                 "--suite", str(suite))
    assert done.returncode == 0, done.stderr[-2000:]
    assert numbers(tmp_path / "merged") == numbers(out)
    assert bench(env, "rescore", str(tmp_path / "merged")).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_two_ranks_equal_one_process(env, run, tmp_path):
    suite, out = run
    done = bench(env, "--suite", str(suite), "--no-progress", "--out", str(tmp_path / "two"),
                 launcher=("torchrun", "--standalone", "--nproc_per_node=2"))
    assert done.returncode == 0, done.stderr[:3000]
    assert numbers(tmp_path / "two") == numbers(out)
