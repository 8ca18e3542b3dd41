"""The segmentation task through the runner: a torchvision segmenter (random init) on an ADE20K-layout folder."""
from __future__ import annotations

import yaml

from harness.cli import main
from harness.run import run_suite
from seg_fixtures import write_ade20k


def test_segmentation_suite_scores_miou_keeps_records_and_rescores(tmp_path, capsys):
    root = write_ade20k(tmp_path / "ade")
    suite = {"name": "seg", "version": 1, "defaults": {"batch_size": 2, "seed": 0},
             "models": [{"name": "lraspp", "source": "torchvision", "arch": "lraspp_mobilenet_v3_large",
                         "num_classes": 4, "preprocess": {"input_size": 96}}],
             "datasets": [{"name": "ade", "kind": "segfolder", "preset": "ade20k", "root": str(root), "split": "val",
                           "num_classes": 4}],
             "tasks": [{"kind": "segmentation"},
                       {"kind": "segmentation", "name": "slide", "params": {"mode": "slide", "crop_size": [64, 64],
                                                                            "stride": [48, 48]}}]}
    path = tmp_path / "seg.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    outcome = run_suite(path, out=tmp_path / "out", progress=False)
    assert not outcome.failed, outcome.failed
    rows = outcome.frame.set_index(["task", "metric"])
    for task in ("segmentation", "slide"):
        assert 0.0 <= rows.loc[(task, "miou"), "value"] <= 1.0 and rows.loc[(task, "miou"), "n"] == 3
    assert rows.loc[("segmentation", "miou"), "direction"] == "higher"
    assert main(["rescore", str(tmp_path / "out")]) == 0
    assert "identical" in capsys.readouterr().out
