"""Runner: caching/resume, failure isolation, provenance, exports; the CLI end to end."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import timm
import torch
from safetensors.torch import save_file

from harness.run import run_suite
from harness.tasks.classification import ClassificationTask
from tests.conftest import zoo_suite

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def count_runs(monkeypatch):
    """Count classification jobs started per model; optionally interrupt (Ctrl-C) on one model."""
    calls: list[str] = []
    interrupt_on: set[str] = set()
    original = ClassificationTask.prepare

    def spy(self, ctx):
        calls.append(ctx.model.name)
        if ctx.model.name in interrupt_on:
            raise KeyboardInterrupt
        return original(self, ctx)

    monkeypatch.setattr(ClassificationTask, "prepare", spy)
    return calls, interrupt_on


def test_rerun_skips_finished_jobs_and_an_interrupted_run_resumes(tmp_path, write_suite, count_runs):
    calls, interrupt_on = count_runs
    suite = write_suite(zoo_suite(["resnet_digits", "vit_digits"]))
    out = tmp_path / "out"
    interrupt_on.add("vit_digits")
    interrupted = run_suite(suite, out=out, limit=40, progress=False)
    assert interrupted.interrupted and calls == ["resnet_digits", "vit_digits"]
    assert (out / "index.html").is_file()  # the report of what finished is written
    with sqlite3.connect(out / "results.sqlite") as db:  # the finished job was committed before the kill
        assert db.execute("SELECT model, status FROM jobs").fetchall() == [("resnet_digits", "ok")]
    interrupt_on.clear()
    outcome = run_suite(suite, out=out, limit=40, progress=False)
    assert calls == ["resnet_digits", "vit_digits", "vit_digits"]  # resnet was not recomputed
    assert (outcome.ran, outcome.cached) == (1, 1)
    again = run_suite(suite, out=out, limit=40, progress=False)
    assert (again.ran, again.cached) == (0, 2) and len(calls) == 3
    assert set(again.frame["model"]) == {"resnet_digits", "vit_digits"}
    changed = run_suite(suite, out=out, limit=41, progress=False)  # a different config is a different job
    assert changed.ran == 2


def _nan_checkpoint(path: Path) -> Path:
    net = timm.create_model("resnet18", num_classes=10)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["fc.weight"].fill_(float("nan"))
    save_file(state, str(path))
    return path


def test_failing_models_become_failed_rows_and_others_go_on(tmp_path, write_suite):
    suite = zoo_suite(["resnet_digits"])
    suite["models"] += [
        {"name": "nan_model", "source": "checkpoint", "arch": "resnet18", "num_classes": 10,
         "checkpoint": str(_nan_checkpoint(tmp_path / "nan.safetensors"))},
        {"name": "misfit", "source": "checkpoint", "arch": "resnet34", "num_classes": 10,
         "checkpoint": str(tmp_path / "nan.safetensors")},
    ]
    outcome = run_suite(write_suite(suite), out=tmp_path / "out", limit=20, progress=False)
    status = outcome.frame.drop_duplicates("model").set_index("model")
    assert status.loc["resnet_digits", "status"] == "ok"
    assert status.loc["nan_model", "status"] == "failed"
    assert "NonFiniteOutputError" in status.loc["nan_model", "error"]
    assert "weights do not fit the architecture" in status.loc["misfit", "error"]
    assert len(outcome.failed) == 2
    html = (tmp_path / "out" / "index.html").read_text()
    assert "Failed jobs" in html and "nan_model" in html
    rerun = run_suite(write_suite(suite), out=tmp_path / "out", limit=20, progress=False)
    assert (rerun.ran, rerun.cached) == (2, 1)  # failed jobs are retried, finished ones are not


def test_every_number_carries_provenance_and_exports_agree(tmp_path, write_suite):
    outcome = run_suite(write_suite(zoo_suite(["swin_digits"])), out=tmp_path / "out", limit=30, progress=False)
    row = outcome.frame.set_index("metric").loc["top1"]
    for column in ("suite", "suite_version", "suite_hash", "model", "family", "weights_sha256", "dataset",
                   "split", "n", "seed", "device", "torch_version", "timm_version", "harness_version", "finished_at"):
        assert pd.notna(row[column]), column
    assert row["family"] == "transformer" and row["n"] == 30
    provenance = json.loads(row["provenance"])
    assert provenance["model"]["preprocess"]["input_size"] == [3, 32, 32]
    assert provenance["dataset"]["subset"] == "limit 30 (random, seed 0)"
    assert provenance["n_samples"] == 30 and len(provenance["sample_ids_sha256"]) == 64
    exported = json.loads((tmp_path / "out" / "results.json").read_text())
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    top1 = [r for r in exported if r["metric"] == "top1"][0]
    assert top1["value"] == row["value"] == csv.set_index("metric").loc["top1", "value"]
    assert top1["ci_low"] < top1["value"] <= top1["ci_high"]


class TouchOnLoad:
    """A pickle payload that would create a file if it were ever unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_untrusted_pickle_is_refused_with_a_clear_error(tmp_path, write_suite):
    net = timm.create_model("resnet18", num_classes=10)
    path, marker = tmp_path / "model.pt", tmp_path / "payload-ran"
    torch.save({"state_dict": net.state_dict(), "extra": TouchOnLoad(marker)}, path)
    suite = zoo_suite([])
    suite["models"] = [{"name": "pickled", "source": "checkpoint", "arch": "resnet18", "num_classes": 10,
                        "checkpoint": str(path)}]
    outcome = run_suite(write_suite(suite), out=tmp_path / "out", limit=5, progress=False)
    error = outcome.frame["error"].iloc[0]
    assert f"{path}: refusing to load an untrusted pickle" in error and "trust_pickle" in error
    assert not marker.exists()  # the payload never ran
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": net.state_dict()}, plain)  # tensors only: weights_only loading accepts it
    suite["models"][0]["checkpoint"] = str(plain)
    assert run_suite(write_suite(suite), out=tmp_path / "out2", limit=5, progress=False).failed == []


def test_cli_runs_the_classification_suite_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--suite", "classification", "--out",
                             str(tmp_path), "--limit", "50", "--no-progress"], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "4 job(s) run, 0 cached, 0 failed" in result.stdout
    frame = pd.read_csv(tmp_path / "results.csv")
    assert sorted(frame["model"].unique()) == ["convnext_digits", "resnet_digits", "swin_digits", "vit_digits"]
    assert set(frame["family"]) == {"cnn", "transformer"}
    assert (frame["n"] == 50).all()
    html = (tmp_path / "index.html").read_text()
    assert "CNN vs transformer" in html and "Provenance" in html


def test_cli_lists_suites_from_the_command_line():
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--list", "suites"], capture_output=True,
                            text=True, cwd=REPO)
    assert result.returncode == 0 and "classification" in result.stdout


@pytest.mark.parametrize("what,expected", [("models", "vit_digits"), ("datasets", "imagefolder"),
                                           ("tasks", "classification")])
def test_cli_lists(what, expected, capsys):  # in this process: each interpreter start costs ~7 s of imports
    from harness.cli import main

    assert main(["--list", what]) in (0, None)
    assert expected in capsys.readouterr().out


def test_models_filter_with_wildcards(tmp_path, write_suite):
    suite = write_suite(zoo_suite(["resnet_digits", "convnext_digits", "vit_digits"]))
    outcome = run_suite(suite, out=tmp_path, models=["res*", "conv*"], limit=10, progress=False)
    assert sorted(outcome.frame["model"].unique()) == ["convnext_digits", "resnet_digits"]


def test_the_readme_main_job_runs_the_robustness_suite(tmp_path):
    """`python run_bench.py --suite robustness`, on fewer images: every task of the headline suite runs."""
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--suite", "robustness", "--out",
                             str(tmp_path), "--limit", "24", "--no-progress"], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "results.csv")
    assert set(frame["task"]) == {"classification", "pgd-linf", "autoattack-cheap", "corruptions"}
    assert (frame["status"] == "ok").all()
    robust = frame[(frame["metric"] == "robust_acc") & (frame["task"] == "pgd-linf")]
    assert len(robust) == 4 * 4 and (robust["n"] == 24).all()  # 4 models x 4 eps
    html = (tmp_path / "index.html").read_text()
    assert "Robust accuracy vs Linf eps" in html and "corruption" in html
