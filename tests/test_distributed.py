"""Data-parallel evaluation under torchrun (gloo, CPU): numbers identical to one process, every sample once."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import torch

from harness.distributed import World, rank_device
from harness.evaluation.state import read_records

REPO = Path(__file__).resolve().parents[1]

SUITE = {
    "name": "ddp", "version": 1, "defaults": {"batch_size": 8, "seed": 0},
    "models": [{"name": "resnet_digits", "source": "zoo"}, {"name": "vit_digits", "source": "zoo"}],
    "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 60, "seed": 3}},
                 {"name": "digits-other", "kind": "digits", "split": "train", "subset": {"n": 20, "seed": 1}}],
    "tasks": [  # classification also sweeps a dataset by role: its batches are dealt to the ranks too
        {"kind": "classification", "params": {"topk": [1, 5]}, "roles": {"shifted": ["digits-other"]}},
        {"kind": "pgd", "params": {"eps": ["4/255", "8/255"], "steps": 3, "random_start": False, "n": 36,
                                   "blackbox_n": 10, "blackbox_queries": 20}, "datasets": ["digits-test"]},
        {"kind": "corruption", "params": {"corruptions": ["gaussian_noise", "contrast"], "severities": [2],
                                          "n": 28, "reference_model": "resnet_digits"}, "datasets": ["digits-test"]},
    ],
}


def test_batches_are_dealt_round_robin_without_overlap():
    shards = [World(rank, 3).my_batches(10) for rank in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(b for shard in shards for b in shard) == list(range(10))


def test_ranks_take_their_own_gpu_and_share_round_robin_when_they_outnumber_the_gpus():
    cuda = torch.device("cuda")
    assert [rank_device(cuda, World(r, 4, r), device_count=4) for r in range(4)] == \
        [torch.device("cuda", r) for r in range(4)]
    # torchrun --nproc-per-node 2 on a one-GPU machine: both ranks on cuda:0 (gloo carries the states)
    assert [rank_device(cuda, World(r, 2, r), device_count=1) for r in range(2)] == [torch.device("cuda", 0)] * 2
    assert rank_device(cuda, World(3, 4, 3), device_count=2) == torch.device("cuda", 1)
    assert rank_device(torch.device("cpu"), World(1, 2, 1), device_count=0) == torch.device("cpu")
    assert rank_device(cuda, World(), device_count=0) == cuda  # one process: the device as given
    with pytest.raises(RuntimeError, match="no CUDA device"):
        rank_device(cuda, World(1, 2, 1), device_count=0)


def _numbers(out: Path) -> dict:
    rows = json.loads((out / "results.json").read_text())
    return {(r["model"], r["task"], r["metric"], json.dumps(r["params"], sort_keys=True)): (r["value"], r["n"],
                                                                                          r["ci_low"], r["ci_high"])
            for r in rows if r["status"] == "ok"}


# dense tasks: COCO mAP, mIoU, PQ and AP under corruption, whose dataset-level scores need every rank's records
DENSE_SUITE = {
    "name": "ddp-dense", "version": 1, "defaults": {"batch_size": 6, "seed": 0},
    "models": [{"name": "centernet_resnet_scenes", "source": "zoo"},
               {"name": "lraspp", "source": "torchvision", "arch": "lraspp_mobilenet_v3_large", "num_classes": 8,
                "preprocess": {"input_size": 64}}],
    "datasets": [{"name": "boxes", "kind": "scenes", "split": "test", "target": "detection", "subset": {"n": 30}},
                 {"name": "masks", "kind": "scenes", "split": "test", "target": "semantic", "subset": {"n": 20}},
                 {"name": "segments", "kind": "scenes", "split": "test", "target": "panoptic", "subset": {"n": 20}}],
    "tasks": [
        {"kind": "detection", "models": ["centernet*"], "datasets": ["boxes"]},
        {"kind": "segmentation", "models": ["lraspp"], "datasets": ["masks"]},
        {"kind": "panoptic", "models": ["lraspp"], "datasets": ["segments"], "params": {"min_area": 4}},
        {"kind": "corruption", "models": ["centernet*"], "datasets": ["boxes"],
         "params": {"corruptions": ["gaussian_noise"], "severities": [3], "n": 18}},
    ],
}


def _run_one_and_two_processes(tmp_path: Path, content: dict) -> tuple[Path, Path]:
    """The suite run by one process and by torchrun with two (gloo); returns both output dirs."""
    suite = tmp_path / "ddp.yaml"
    suite.write_text(yaml.safe_dump(content, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--suite", str(suite), "--no-progress"]
    one = subprocess.run([sys.executable, str(REPO / "run_bench.py"), *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=900)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(["torchrun", "--standalone", "--nproc_per_node=2", str(REPO / "run_bench.py"), *common,
                          "--out", str(tmp_path / "two")], capture_output=True, text=True, env=env, timeout=900)
    assert two.returncode == 0, two.stderr[:3000] + "\n...\n" + two.stderr[-1500:]  # a rank's own error comes first
    assert two.stdout.count("job(s) run") == 1  # only rank 0 prints the summary
    return tmp_path / "one", tmp_path / "two"


def _assert_same_records(one: Path, two: Path) -> None:
    for path in (two / "samples").glob("*.jsonl.gz"):
        parallel_state, single_state = read_records(path), read_records(one / "samples" / path.name)
        assert list(parallel_state.records) == list(single_state.records)  # every sample once, in order
        assert parallel_state.records == single_state.records


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_two_processes_equal_one_process(tmp_path):
    one, two = _run_one_and_two_processes(tmp_path, SUITE)
    single, parallel = _numbers(one), _numbers(two)
    assert parallel == single and len(single) > 30
    rows = json.loads((two / "results.json").read_text())
    assert {r["world_size"] for r in rows if r["status"] == "ok" and not r["derived"]} == {2}
    assert any(r["metric"] == "corruption_error" and r["derived"] for r in rows)  # across models, after gathering
    _assert_same_records(one, two)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_dense_tasks_equal_one_process(tmp_path):
    one, two = _run_one_and_two_processes(tmp_path, DENSE_SUITE)
    single, parallel = _numbers(one), _numbers(two)
    assert parallel == single
    metrics = {key[2] for key in single}
    assert {"map", "map_50", "ap_class", "miou", "iou_class", "corruption_score", "mpc", "rpc"} <= metrics
    assert {"pq", "pq_things", "pq_stuff", "pq_class"} <= metrics
    _assert_same_records(one, two)


def test_shards_merge_into_the_same_numbers_as_one_run(tmp_path, capsys):
    from harness.cli import main

    suite = tmp_path / "ddp.yaml"
    small = {**SUITE, "tasks": [SUITE["tasks"][0], {**SUITE["tasks"][2], "params": {**SUITE["tasks"][2]["params"],
                                                                                  "n": 12}}]}
    suite.write_text(yaml.safe_dump(small, sort_keys=False))
    common = ["--suite", str(suite), "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    for index in (0, 1):
        assert main([*common, "--shard", f"{index}/2", "--out", str(tmp_path / f"shard{index}")]) == 0
    shard_jobs = [len(json.loads((tmp_path / f"shard{i}" / "results.json").read_text())) for i in (0, 1)]
    assert all(shard_jobs)  # each shard ran some of the jobs
    assert main(["merge", str(tmp_path / "merged"), str(tmp_path / "shard0"), str(tmp_path / "shard1"),
                 "--suite", str(suite)]) == 0
    assert _numbers(tmp_path / "merged") == _numbers(tmp_path / "one")
    assert main(["rescore", str(tmp_path / "merged")]) == 0  # the shards' records came along
    assert main(["merge", str(tmp_path / "merged"), str(tmp_path / "shard0")]) == 0  # merging twice adds nothing
    assert _numbers(tmp_path / "merged") == _numbers(tmp_path / "one")


# Two ranks running harness.cli.main in-process (env:// rendezvous, gloo), reporting after main what is left of
# the process group. A rank must leave it (destroy_process_group: gloo's threads joined) before interpreter
# exit on every path: otherwise a gloo worker still releasing the last collective's tensors takes the GIL
# during finalization and the rank aborts ("terminate called without an active exception"), now and then.
_RANK_PROGRAM = r"""
import json, os, sys
import torch.distributed as dist
import harness.runner
from harness.schema import SuiteError

fault = sys.argv[1]
if fault == "suite-error":  # on every rank, after the group was joined
    def refuse(*args, **kwargs):
        raise SuiteError("datasets: digits-test: unreadable (test)")
    harness.runner.build_sources = refuse
elif fault == "rank0-raises" and os.environ["RANK"] == "0":  # after the run, while writing the report
    def boom(*args, **kwargs):
        raise RuntimeError("boom (test)")
    harness.runner.with_derived_metrics = boom
from harness.cli import main
code = 1
try:
    code = main(sys.argv[2:])
finally:
    threads = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    print("LEFT " + json.dumps({"initialized": dist.is_initialized(), "threads": sorted(threads)}), flush=True)
sys.exit(code)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_ranks_in_process(tmp_path: Path, fault: str) -> list[tuple[int, dict, str]]:
    """(exit code, what main left behind, stderr) of each rank."""
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "ddp-tiny", "version": 1, "defaults": {"batch_size": 4, "seed": 0},
        "models": [{"name": "resnet_digits", "source": "zoo"}],
        "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 16, "seed": 3}}],
        "tasks": [{"kind": "classification", "params": {"topk": [1]}}]}, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": "2"}
    argv = ["--suite", str(suite), "--no-progress", "--out", str(tmp_path / "out")]
    ranks = [subprocess.Popen([sys.executable, "-c", _RANK_PROGRAM, fault, *argv], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}) for rank in (0, 1)]
    results = []
    try:
        for proc in ranks:
            stdout, stderr = proc.communicate(timeout=300)  # a rank waiting for a peer that left would hang
            left = [line for line in stdout.splitlines() if line.startswith("LEFT ")]
            assert left, f"rank exited {proc.returncode} before main returned: {stderr[-2000:]}"
            results.append((proc.returncode, json.loads(left[-1][5:]), stderr))
    finally:
        for proc in ranks:
            proc.kill()
    return results


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads from /proc")
@pytest.mark.parametrize("fault", ["none", "suite-error", "rank0-raises"])
def test_every_rank_leaves_the_process_group_before_exit(tmp_path, fault):
    (code0, left0, err0), (code1, left1, err1) = _two_ranks_in_process(tmp_path, fault)
    for left, err in ((left0, err0), (left1, err1)):
        assert left["initialized"] is False, err[-2000:]
        assert not [name for name in left["threads"] if "gloo" in name], left["threads"]  # joined, not leaked
        assert "terminate called" not in err
    if fault == "none":
        assert (code0, code1) == (0, 0), err0[-2000:] + err1[-2000:]
    elif fault == "suite-error":
        assert (code0, code1) == (2, 2) and "unreadable (test)" in err0 and "unreadable (test)" in err1
    else:  # rank 0's own error; rank 1, done with its share, is told and does not wait for the 12 h timeout
        assert code0 == 1 and "boom (test)" in err0
        assert code1 == 1 and "another rank" in err1 and "Traceback" not in err1, err1[-2000:]
