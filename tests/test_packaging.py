"""A non-editable install works from anywhere: the wheel ships suites/ (with maps and ID lists) as
harness.suites, and an installed harness lists and runs suites, isolates measurements and records no
git commit of some other repository."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging  # tools/gpu_check.sh deselects these on machines without a package index

REPO = Path(__file__).resolve().parent.parent


def _source_copy(source: Path) -> Path:
    """What a clone holds that packaging reads (a copy: pip builds in-tree, writing build/ and *.egg-info)."""
    for name in ("harness", "suites"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    return source


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = _source_copy(tmp_path_factory.mktemp("wheel-source") / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_every_suite_file_map_and_id_list(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"harness/suites/{p.relative_to(REPO / 'suites').as_posix()}" for p in (REPO / "suites").rglob("*")
               if p.is_file()}
    assert shipped and shipped <= names, sorted(shipped - names)
    assert {"harness/suites/maps/imagenet1k_wnids.txt", "harness/suites/ids/imagenet_val_5000.txt"} <= names
    assert {"harness/zoo/resnet_digits.safetensors", "harness/zoo/zoo.json",
            "harness/report/templates/leaderboard.html.j2", "harness/perf/compiled.py"} <= names
    for path in shipped:  # the same bytes as the source of truth
        assert zipfile.ZipFile(wheel).read(path) == (REPO / "suites" / path.removeprefix("harness/suites/")).read_bytes()


def venv_seeing_this_environment(venv: Path) -> str:
    """A fresh venv (no system site packages) whose interpreter also sees the packages of the environment
    running the tests, after its own: whatever venv the tests run in, torch and friends are there, and a
    harness installed into the new venv shadows the checkout's. A ``.pth`` line adds a folder to the path
    without running that folder's own ``.pth`` files, so the checkout's editable install stays out."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # pip and setuptools: ours
    python = venv / "bin" / "python"
    site_dir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              check=True, capture_output=True, text=True).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (Path(site_dir) / "tests-environment.pth").write_text("".join(f"{path}\n" for path in ours))
    return str(python)


@pytest.mark.slow  # a venv, an install and four interpreters (~30-60 s on a loaded 2-core machine)
def test_pip_install_then_the_main_job_runs_from_any_directory(tmp_path):
    """``pip install .`` of a copy of the checkout, then the README's main job from another folder."""
    venv = tmp_path / "venv"
    python = venv_seeing_this_environment(venv)
    source = _source_copy(tmp_path / "source")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
                                "--no-build-isolation", str(source)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, *args], capture_output=True, text=True, cwd=elsewhere,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    facts = run("-c", "import harness, harness.suite as s, harness.env as e; print(harness.__file__, s.SUITES_DIR, "
                      "e.git_commit()); d = s.load_suite('robustness-imagenet', check_files=False).spec.datasets[0]; "
                      "print(d.class_map, d.subset.ids)")
    assert facts.returncode == 0, facts.stderr
    harness_file, suites_dir, commit, class_map, ids = facts.stdout.split()
    assert harness_file.startswith(str(venv)) and suites_dir.startswith(str(venv)), facts.stdout
    assert commit == "None"  # an installed copy has no commit of ours
    assert class_map.startswith(suites_dir) and Path(class_map).is_file() and Path(ids).is_file()

    listed = run("-m", "harness.cli", "--list", "suites")
    assert listed.returncode == 0, listed.stderr
    assert {line.split()[0] for line in listed.stdout.splitlines()} == {p.stem for p in (REPO / "suites").glob("*.yaml")}

    suite = elsewhere / "tiny.yaml"
    suite.write_text(
        "name: tiny\nversion: 1\ndefaults: {device: cpu, batch_size: 10}\n"
        "models: [{name: resnet_digits, source: zoo}]\n"
        "datasets: [{name: digits, kind: digits, subset: {n: 20, seed: 0}}]\n"
        "tasks:\n  - kind: classification\n  - kind: latency\n    params: {isolate: true, warmup_iters: 1, "
        "warmup_seconds: 0, min_iters: 3, min_seconds: 0, throughput_iters: 1, throughput_batch_sizes: [2]}\n")
    # one model (the corruption task's reference): this checks the installed copy runs, not the numbers
    main_job = subprocess.run([str(venv / "bin" / "visionbench"), "--suite", "robustness", "--limit", "12",
                               "--models", "convnext_digits", "--out", "x", "--no-progress"],
                              capture_output=True, text=True, cwd=elsewhere, env={"PATH": "/usr/bin:/bin",
                                                                                   "HOME": str(tmp_path)})
    assert main_job.returncode == 0, main_job.stderr[-2000:]
    records = json.loads((elsewhere / "x" / "results.json").read_text())
    assert {r["metric"] for r in records} >= {"top1", "top5", "robust_acc", "corruption_error"}, {r["metric"] for r in records}
    assert {r["status"] for r in records} == {"ok"} and records[0]["git_commit"] is None
    assert (elsewhere / "x" / "index.html").is_file()
    isolated = run("-m", "harness.cli", "--suite", str(suite), "--out", "iso", "--no-progress")
    assert isolated.returncode == 0, isolated.stderr + isolated.stdout
    rows = json.loads((elsewhere / "iso" / "results.json").read_text())
    assert any(r["metric"] == "latency_ms_p50" and r["params"].get("isolated") for r in rows)


def test_git_commit_is_recorded_only_from_the_projects_own_checkout(tmp_path):
    from harness.env import project_commit

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert project_commit(REPO / "harness" / "__init__.py") == head
    # an installed copy inside some other repository (a project's .venv): that repository's HEAD is not ours
    other = tmp_path / "project"
    package = other / ".venv" / "lib" / "site-packages" / "harness"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (other / "pyproject.toml").write_text("[project]\nname = 'someone-else'\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=other, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=other, check=True)
    assert project_commit(package / "__init__.py") is None
    (other / "harness").mkdir()  # even a harness/ at the top of someone's repo without our pyproject beside it...
    (other / "harness" / "__init__.py").write_text("")
    (other / "pyproject.toml").unlink()
    assert project_commit(other / "harness" / "__init__.py") is None
