"""The prepared GPU check (tools/gpu_check.sh, tools/gpu_check.py) on a machine without a GPU: the script
refuses plainly, and its comparison, tables and test summary work on real runs."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import zoo_suite

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_script_refuses_without_a_gpu_and_says_why(tmp_path):
    done = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from harness.run import run_suite

    folder = tmp_path_factory.mktemp("two-runs")
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump({**zoo_suite(), "defaults": {"device": "cpu", "batch_size": 32}}))
    return [run_suite(path, out=folder / name, progress=False, report=False, limit=64).frame for name in "ab"]


def test_two_runs_of_one_suite_compare_identical_and_a_moved_number_is_flagged(two_runs):
    first, second = two_runs
    compared = gpu_check.device_comparison(first, second)
    assert len(compared) == first["metric"].notna().sum() > 0
    assert compared["within"].all() and (compared["abs_delta"] == 0).all()

    moved = second.copy()
    row = moved.index[moved["metric"] == "top1"][0]
    moved.loc[row, "value"] += 0.02  # beyond 0.01 absolute for a rate near 1
    flagged = gpu_check.device_comparison(first, moved)
    outside = flagged[~flagged["within"]]
    assert outside["metric"].tolist() == ["top1"] and outside["abs_delta"].iloc[0] == pytest.approx(0.02)
    missing = gpu_check.device_comparison(first, second.drop(index=row))  # a number only one run has
    assert (~missing["within"]).sum() == 1

    text = gpu_check.markdown("cpu", {"ran": False}, gpu_check.pd.DataFrame(), None, flagged,
                              {"cuda": 1.0, "cpu": 2.0})
    assert f"{len(flagged)} numbers;" in text and "1 outside the tolerance" in text and "| top1 |" in text


def test_the_latency_table_has_a_row_per_model_precision_and_graph_setting(tmp_path):
    from harness.run import run_suite

    suite = gpu_check.latency_suite(["resnet_digits"], quick=True)
    suite["models"] = [{"name": "resnet_digits", "source": "zoo"}]
    suite["defaults"]["device"] = "cpu"  # on CPU: fp32 without graphs, as one task
    suite["tasks"] = [{**suite["tasks"][0], "name": "latency-fp32",
                       "params": {**suite["tasks"][0]["params"], "precision": "fp32", "cuda_graphs": False,
                                  "peak_tflops": 1.0}}]
    path = tmp_path / "latency.yaml"
    path.write_text(yaml.safe_dump(suite))
    frame = run_suite(path, out=tmp_path / "out", progress=False, report=False).frame
    table = gpu_check.latency_table(frame[frame["status"] == "ok"])
    assert table[["model", "precision", "cuda_graphs"]].values.tolist() == [["resnet_digits", "fp32", False]]
    assert {"img_s_b1", "img_s_b8", "mfu_b8"} <= set(table.columns)
    assert (table[["img_s_b1", "img_s_b8"]].to_numpy() > 0).all()
    assert "p50_ms_b1" not in table  # CPU latency comes from perf_counter; the table shows CUDA events only
    assert "| resnet_digits | fp32 | False |" in gpu_check.frame_markdown(table)


def test_the_tests_summary_reads_pytests_junit(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n")
    junit = tmp_path / "tests.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_x.py"),
                    f"--junitxml={junit}"], capture_output=True, cwd=tmp_path)
    summary = gpu_check.tests_summary(junit)
    assert summary["tests"] == 2 and summary["failures"] == 1 and summary["failing"] == ["test_x::test_bad"]
    assert gpu_check.tests_summary(tmp_path / "absent.xml") == {"ran": False}
