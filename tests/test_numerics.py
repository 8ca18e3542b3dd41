"""Accuracy passes run in strict fp32 by default (TF32 off for matmul and cuDNN, cuDNN deterministic), TF32 only
when the suite says so; the flags in force are recorded with every job and restored afterwards. On a CPU the
flags change no number, but they are set and recorded the same way (what a CUDA machine relies on)."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import zoo_suite
from harness.run import run_suite
from harness.schema import SuiteError


@pytest.fixture
def flags_during_the_pass(monkeypatch):
    from harness.tasks.classification import ClassificationTask

    seen = []
    original = ClassificationTask.infer

    def infer(task, ctx, pass_, index, batch):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                     torch.backends.cudnn.deterministic))
        return original(task, ctx, pass_, index, batch)

    monkeypatch.setattr(ClassificationTask, "infer", infer)
    # torch's CUDA defaults are not ours: cuDNN allows TF32; pretend matmul does too, and cuDNN is not deterministic
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, True
    torch.backends.cudnn.deterministic = False
    yield seen
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic = before


@pytest.mark.parametrize("precision, during", [("fp32", (False, False, True)), ("tf32", (True, True, False))])
def test_accuracy_passes_run_with_the_suites_precision_recorded_and_restored(tmp_path, write_suite, one_thread,
                                                                             flags_during_the_pass, precision, during):
    suite = zoo_suite(["resnet_digits"], topk=[1])
    if precision != "fp32":
        suite["defaults"] = {"precision": precision}
    run_suite(write_suite(suite), out=tmp_path / "out", limit=20, progress=False)
    assert flags_during_the_pass and set(flags_during_the_pass) == {during}
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.deterministic) == (True, True, False)  # as they were before the run
    (row,) = [r for r in json.loads((tmp_path / "out" / "results.json").read_text()) if r["metric"] == "top1"]
    assert row["precision"] == precision
    assert row["provenance"]["numerics"] == {"precision": precision, "tf32_matmul": during[0], "tf32_cudnn": during[1],
                                             "cudnn_deterministic": during[2], "cudnn_benchmark": False}


def test_tf32_results_are_not_the_fp32_cache_and_a_bad_precision_is_refused(tmp_path, write_suite, one_thread):
    suite = zoo_suite(["resnet_digits"], topk=[1])
    first = run_suite(write_suite(suite), out=tmp_path / "out", limit=20, progress=False)
    suite["defaults"] = {"precision": "tf32"}
    second = run_suite(write_suite(suite), out=tmp_path / "out", limit=20, progress=False)
    assert first.ran == 1 and second.ran == 1 and second.cached == 0
    suite["defaults"] = {"precision": "fp16"}
    with pytest.raises(SuiteError, match=r"defaults\.precision: must be fp32 or tf32"):
        run_suite(write_suite(suite), out=tmp_path / "bad", progress=False)
