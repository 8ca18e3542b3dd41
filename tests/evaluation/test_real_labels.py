"""ImageNet-ReaL accuracy equals timm's own RealLabelsImagenet on the same images and logits: file-name keyed
label sets, a hit when any of the top k is in the set, images with an empty set left out."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import timm.data
import torch
import yaml
from safetensors.torch import save_file
from timm.data.real_labels import RealLabelsImagenet

from harness.run import run_suite
from harness.suite import SUITES_DIR
from tests.conftest import photo

# val image numbers (0-based) with an empty set (0, 21, 36), two labels (1, 2, 4) and one (3, 5)
IMAGES = [0, 1, 2, 3, 4, 5, 21, 36]
PHOTOS = ["chelsea", "astronaut", "camera", "coffee", "rocket", "coins", "hubble_deep_field", "page"]
FAVOURED = {970: 9.0, 230: 8.0, 516: 7.0, 809: 6.0}  # classifier biases: top-5 reaches some label sets


def write_val(root: Path) -> list[str]:
    names = []
    for i, name in zip(IMAGES, PHOTOS):
        folder = root / ("n01440764" if i % 2 else "n01443537")
        folder.mkdir(parents=True, exist_ok=True)
        file = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        photo(name, max_side=180).save(folder / file, quality=90)
        names.append(file)
    return names


def run_real(tmp_path: Path, root: Path, weights: Path, ks: tuple[int, ...] = (1, 5)):
    suite = {"name": "real", "version": 1, "defaults": {"batch_size": 3, "device": "cpu"},
             "models": [{"name": "net", "source": "checkpoint", "arch": "test_resnet", "checkpoint": str(weights)}],
             "datasets": [{"name": "val", "kind": "imagefolder", "root": str(root), "num_classes": 1000,
                           "class_map": str(SUITES_DIR / "maps" / "imagenet1k_wnids.txt")}],
             "tasks": [{"kind": "classification", "params": {"topk": [1, 5]},
                        "evaluators": [{"kind": "real_labels", "ks": list(ks)}]}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return run_suite(path, out=tmp_path / "out", progress=False, report=False)


def test_real_top1_and_top5_equal_timms_real_labels_evaluator(tmp_path, one_thread):
    root = tmp_path / "val"
    write_val(root)
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", num_classes=1000).eval()
    with torch.no_grad():
        for index, bias in FAVOURED.items():
            net.get_classifier().bias[index] += bias
    weights = tmp_path / "net.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))

    dataset = timm.data.create_dataset("", root=str(root))
    dataset.transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))
    files = [Path(dataset.filename(i)).name for i in range(len(dataset))]
    reference = RealLabelsImagenet(files + [""] * (50000 - len(files)), topk=(1, 5))  # it expects all 50,000
    with torch.inference_mode():
        for i in range(len(dataset)):
            reference.add_result(net(dataset[i][0][None]))

    outcome = run_real(tmp_path, root, weights)
    assert outcome.failed == []
    rows = outcome.frame.set_index("metric")
    for k in (1, 5):
        row = rows.loc[f"real_top{k}"]
        assert row["n"] == len(reference.is_correct[k]) == 5  # three images have an empty set
        assert row["value"] == pytest.approx(reference.get_accuracy(k) / 100, abs=1e-12)
    assert 0 < rows.loc["real_top1", "value"] < rows.loc["real_top5", "value"] < 1  # the case is not trivial
    assert rows.loc["top1", "n"] == len(IMAGES)


def test_a_file_name_real_labels_do_not_key_is_a_one_line_error(tmp_path, one_thread):
    root = tmp_path / "val"
    write_val(root)
    (root / "n01440764" / f"ILSVRC2012_val_{2:08d}.JPEG").rename(root / "n01440764" / "holiday.JPEG")
    weights = tmp_path / "net.safetensors"
    torch.manual_seed(0)
    save_file(dict(timm.create_model("test_resnet", num_classes=1000).state_dict()), str(weights))
    (failure,) = run_real(tmp_path, root, weights, ks=(1,)).failed
    assert "holiday.JPEG" in str(failure) and "ILSVRC2012_val_" in str(failure) and "\n" not in str(failure)
