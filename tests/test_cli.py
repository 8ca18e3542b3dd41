"""Command-line mistakes are one line naming the flag, exit code 2, and nothing runs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from harness.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["--suite", "classification", "--limit", "4", "--no-progress", *args])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("flag,words", [
    ("tpu", "error: --device tpu: unknown device 'tpu' (use auto, cpu, cuda or cuda:N)"),
    ("cuda:x", "error: --device cuda:x: unknown device 'cuda:x'"),
])
def test_unknown_device_flag_is_blamed_on_the_flag(capsys, tmp_path, flag, words):
    code, err = run_cli(capsys, "--device", flag, "--out", str(tmp_path / "out"))
    assert code == 2 and err.strip().startswith(words) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_flag_without_cuda_blames_the_flag_not_the_suite(capsys, tmp_path):
    code, err = run_cli(capsys, "--device", "cuda", "--out", str(tmp_path / "out"))
    assert code == 2 and err.strip() == "error: --device cuda: device 'cuda' requested but CUDA is not available here"
    assert "suites/" not in err and ".yaml" not in err


def test_out_naming_a_file_or_a_place_under_a_file_is_one_line(capsys, tmp_path):
    afile = tmp_path / "results.txt"
    afile.write_text("keep me")
    code, err = run_cli(capsys, "--out", str(afile))
    assert code == 2 and err.strip() == f"error: --out {afile}: exists and is not a folder"
    code, err = run_cli(capsys, "--out", str(afile / "sub"))
    assert code == 2 and err.strip() == f"error: --out {afile / 'sub'}: {afile} is not a folder"
    assert afile.read_text() == "keep me"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_out_in_an_unwritable_place_is_one_line(capsys):
    code, err = run_cli(capsys, "--out", "/proc/visionbench/out")
    assert code == 2 and err.startswith("error: --out /proc/visionbench/out: cannot write in /proc")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_device_tpu_in_a_suite_is_a_suite_error(capsys, tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nversion: 1\ndefaults:\n  device: tpu\nmodels: [{name: resnet_digits, source: zoo}]\n"
                     "datasets: [{name: d, kind: digits}]\ntasks: [{kind: classification}]\n")
    code = main(["--suite", str(suite), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"error: {suite}:4: defaults.device: unknown device 'tpu' (use auto, cpu, cuda or cuda:N)"
    assert not (tmp_path / "out").exists()


def test_out_that_does_not_exist_yet_is_fine_and_created_by_the_run(capsys, tmp_path):
    code, err = run_cli(capsys, "--out", str(tmp_path / "a" / "b"))
    assert code == 0, err
    assert (Path(tmp_path / "a" / "b") / "index.html").is_file()
