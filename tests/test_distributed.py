"""Data-parallel evaluation under torchrun (gloo, CPU): numbers identical to one process, every sample once."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.distributed import World
from harness.evaluation.state import read_records

REPO = Path(__file__).resolve().parents[1]

SUITE = {
    "name": "ddp", "version": 1, "defaults": {"batch_size": 8, "seed": 0},
    "models": [{"name": "resnet_digits", "source": "zoo"}, {"name": "vit_digits", "source": "zoo"}],
    "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 60, "seed": 3}}],
    "tasks": [
        {"kind": "classification", "params": {"topk": [1, 5]}},
        {"kind": "pgd", "params": {"eps": ["4/255", "8/255"], "steps": 3, "random_start": False, "n": 36,
                                   "blackbox_n": 10, "blackbox_queries": 20}},
        {"kind": "corruption", "params": {"corruptions": ["gaussian_noise", "contrast"], "severities": [2],
                                          "n": 28, "reference_model": "resnet_digits"}},
    ],
}


def test_batches_are_dealt_round_robin_without_overlap():
    shards = [World(rank, 3).my_batches(10) for rank in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(b for shard in shards for b in shard) == list(range(10))


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
