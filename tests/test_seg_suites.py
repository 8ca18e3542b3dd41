"""The shipped real-data segmentation suites (segmentation-ade20k, segmentation-cityscapes, panoptic-coco) run
end to end on miniature fixtures in the same layouts, through --data-root: each test suite is the shipped file
with only its model entries replaced by tiny random-init Hugging Face models of the same kinds."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import transformers  # noqa: F401  (the dev install brings it: a missing one is an error, not a skip)

from hf_tiny import LOOSE, SMALL_INPUT, SQUARE_INPUT, mask2former, save_oneformer, segformer, upernet  # noqa: E402
from harness.cli import main  # noqa: E402
from harness.data.scenes import STUFF, THINGS  # noqa: E402
from harness.data.segfolder import CITYSCAPES_CLASSES, read_class_names  # noqa: E402
from seg_fixtures import write_ade20k, write_cityscapes, write_scenes_coco_panoptic  # noqa: E402

SUITES = Path(__file__).resolve().parents[1] / "suites"


def derived_suite(name: str, models: list[dict], folder: Path) -> Path:
    """The shipped suite with its models replaced; beside a copy of the shipped maps/ (relative paths hold)."""
    shipped = yaml.safe_load((SUITES / f"{name}.yaml").read_text())
    assert {m["source"] for m in shipped["models"]} == {"hf"}
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SUITES / "maps", folder / "maps")
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**shipped, "models": models}, sort_keys=False))
    return path


def hf(name: str, output: str, config: dict, processor: dict, **kwargs) -> dict:
    return {"name": name, "source": "hf", "arch": name, "output": output,
            "config": config, "processor": processor, "kwargs": kwargs}


def run(path: Path, data_root: Path, out: Path, capsys) -> list[dict]:
    assert main(["--suite", str(path), "--data-root", str(data_root), "--out", str(out), "--no-progress"]) == 0
    assert main(["rescore", str(out)]) == 0
    assert "identical" in capsys.readouterr().out
    return [r for r in json.loads((out / "results.json").read_text()) if r["status"] == "ok"]


def test_ade20k_suite_on_a_miniature_ade20k(tmp_path, capsys, one_thread):
    classes = read_class_names(SUITES / "maps" / "ade20k_classes.txt")
    models = [hf("upernet-convnext", "semantic_logits", upernet(classes), SQUARE_INPUT),
              hf("segformer", "semantic_logits", segformer(classes), SQUARE_INPUT)]
    rows = run(derived_suite("segmentation-ade20k", models, tmp_path / "suite"), write_ade20k(tmp_path / "ADE"),
               tmp_path / "out", capsys)
    miou = {r["model"]: r for r in rows if r["metric"] == "miou"}
    assert set(miou) == {"upernet-convnext", "segformer"} and all(r["n"] == 3 for r in miou.values())
    assert {r["family"] for r in miou.values()} == {"cnn", "transformer"}
    assert {r["params"]["class"] for r in rows if r["metric"] == "iou_class"} <= set(classes)


def test_cityscapes_suite_on_a_miniature_cityscapes(tmp_path, capsys, one_thread):
    models = [hf("segformer", "semantic_logits", segformer(CITYSCAPES_CLASSES), SQUARE_INPUT),
              hf("mask2former", "semantic_logits", mask2former(CITYSCAPES_CLASSES), SMALL_INPUT)]
    rows = run(derived_suite("segmentation-cityscapes", models, tmp_path / "suite"),
               write_cityscapes(tmp_path / "cityscapes"), tmp_path / "out", capsys)
    miou = {r["model"]: r for r in rows if r["metric"] == "miou"}
    assert set(miou) == {"segformer", "mask2former"} and all(r["n"] == 3 for r in miou.values())


def test_panoptic_coco_suite_on_exported_scenes(tmp_path, capsys, one_thread):
    names = [*THINGS.values(), *STUFF.values()]  # label names = the json's category names
    oneformer = save_oneformer(tmp_path / "oneformer", names)
    models = [hf("mask2former", "panoptic", mask2former(names), SMALL_INPUT, post_process=LOOSE),
              {"name": "oneformer", "source": "hf", "arch": str(oneformer), "pretrained": True, "output": "panoptic",
               "kwargs": {"post_process": LOOSE}}]
    rows = run(derived_suite("panoptic-coco", models, tmp_path / "suite"),
               write_scenes_coco_panoptic(tmp_path / "coco", size=6), tmp_path / "out", capsys)
    for model in ("mask2former", "oneformer"):
        metrics = {r["metric"]: r for r in rows if r["model"] == model}
        assert {"pq", "sq", "rq", "pq_things", "pq_stuff", "rq_things", "sq_stuff"} <= set(metrics)
        assert metrics["pq"]["n"] == 6 and 0 <= metrics["pq"]["value"] <= 1
