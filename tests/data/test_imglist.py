"""OpenOOD image lists (kind openood-imglist), and suites/uncertainty-imagenet.yaml and ood-imagenet.yaml as shipped
on a miniature OpenOOD layout of real photos (scikit-image), their hub models replaced by tiny random-init timm
stand-ins with a CNN's and a transformer's name."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness import run_suite
from harness.data.imglist import ImglistSource
from harness.suite import load_suite
from tests.conftest import photo, timm_stand_ins

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "suites"
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel", "moon", "page"]
# list file -> (images folder, number of images, label of the i-th image or None for OOD)
LISTS = {"test_imagenet.txt": ("imagenet_1k/val", 6, lambda i: (7 * i) % 1000),
         "val_imagenet.txt": ("imagenet_1k/val", 4, lambda i: (3 * i + 1) % 1000),
         "train_imagenet.txt": ("imagenet_1k/train", 6, lambda i: i % 3),
         "test_ssb_hard.txt": ("ssb_hard", 3, None), "test_ninco.txt": ("ninco", 3, None),
         "test_inaturalist.txt": ("inaturalist", 2, None), "test_textures.txt": ("textures", 2, None),
         "test_openimage_o.txt": ("openimage_o", 2, None)}


def write_openood(root: Path) -> Path:
    """OpenOOD's layout: images_largescale/<set>/... and benchmark_imglist/imagenet/<list>.txt."""
    lists = root / "benchmark_imglist" / "imagenet"
    lists.mkdir(parents=True)
    number = 0
    for name, (folder, count, label) in LISTS.items():
        lines = []
        for i in range(count):
            relative = f"{folder}/{name[:-4]}_{i:03d}.JPEG"
            path = root / "images_largescale" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            photo(PHOTOS[number % len(PHOTOS)], max_side=64 + 8 * (number % 5)).save(path, quality=90)
            number += 1
            lines.append(f"{relative} {label(i) if label else -1}")
        (lists / name).write_text("\n".join(lines) + "\n")
    return root


def test_an_image_list_reads_paths_and_labels_and_names_the_line_it_cannot_read(tmp_path):
    root = write_openood(tmp_path)
    images = root / "images_largescale"
    ood = ImglistSource(images, name="ninco", annotations="../benchmark_imglist/imagenet/test_ninco.txt")
    assert len(ood) == 3 and ood.sample_id(0) == "ninco/test_ninco_000.JPEG" and ood.num_classes == 1000
    sample = ood.load(1)
    assert sample.target == -1 and sample.image.mode == "RGB" and ood.describe()["out_of_distribution"]
    inside = ImglistSource(images, annotations="../benchmark_imglist/imagenet/test_imagenet.txt", num_classes=1000)
    assert [inside.load(i).target for i in range(len(inside))] == [0, 7, 14, 21, 28, 35]
    assert not inside.describe()["out_of_distribution"]
    bad = root / "benchmark_imglist" / "imagenet" / "bad.txt"
    bad.write_text("ninco/test_ninco_000.JPEG -1\nninco/test_ninco_001.JPEG\n")
    with pytest.raises(ValueError, match=r"bad\.txt: line 2: expected '<relative image path> <integer label>'"):
        ImglistSource(images, annotations="../benchmark_imglist/imagenet/bad.txt")
    bad.write_text("ninco/nowhere.JPEG -1\n")
    with pytest.raises(ValueError, match=r"bad\.txt: lists 'ninco/nowhere\.JPEG', which is not a file"):
        ImglistSource(images, annotations="../benchmark_imglist/imagenet/bad.txt")
    with pytest.raises(ValueError, match="give annotations: the OpenOOD image list"):
        ImglistSource(images, name="ninco")


def test_the_ood_suite_is_the_uncertainty_suite_without_calibration():
    ood, full = (yaml.safe_load((SUITES / f"{name}.yaml").read_text()) for name in ("ood-imagenet", "uncertainty-imagenet"))
    assert ood["models"] == full["models"]
    assert ood["datasets"] == [d for d in full["datasets"] if d["name"] != "imagenet-calib"]
    (ood_task,), (task,) = ood["tasks"], full["tasks"]
    assert ood_task["evaluators"] == [e for e in task["evaluators"] if e["kind"] != "calibration"]
    assert ood_task["roles"] == {k: v for k, v in task["roles"].items() if k != "calibration"}


def test_the_imagenet_uncertainty_suite_runs_on_a_miniature_openood_layout(tmp_path, one_thread):
    data = write_openood(tmp_path / "openood")
    suite = yaml.safe_load((SUITES / "uncertainty-imagenet.yaml").read_text())
    models = timm_stand_ins(tmp_path)
    suite.update(models=models, defaults={**suite["defaults"], "workers": 0, "batch_size": 4,
                                          "data_root": str(data)})
    for evaluator in suite["tasks"][0]["evaluators"]:
        if evaluator["kind"] == "ood":
            evaluator["k"] = 2  # the miniature's fit split has 6 images
    path = tmp_path / "uncertainty-imagenet.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    load_suite(str(SUITES / "ood-imagenet.yaml"), data_root=str(data))  # the OOD-only suite finds the same files
    frame = run_suite(path, out=tmp_path / "out", progress=False)
    assert set(frame["status"]) == {"ok"} and sorted(set(frame["model"])) == ["resnet50", "vit_base_patch16_224"]
    auroc = frame[frame["metric"] == "ood_auroc"]
    sets = {"ssb-hard": 3, "ninco": 3, "inaturalist": 2, "textures": 2, "openimage-o": 2}
    for model in ("resnet50", "vit_base_patch16_224"):
        mine = auroc[auroc["model"] == model]
        for detector in ("msp", "maxlogit", "energy", "mahalanobis", "knn"):
            rows = mine[mine["params"].apply(lambda p: p["detector"] == detector)]
            assert {p["dataset"]: n for p, n in zip(rows["params"], rows["n"])} == {**sets, "mean": 6}  # near 3 + 3, far 2 + 2 + 2
        ece = frame[(frame["model"] == model) & (frame["metric"] == "ece")]
        assert sorted(ece["n"]) == [6, 6]  # the test list, before and after T
        temperature = frame[(frame["model"] == model) & (frame["metric"] == "temperature")]
        assert temperature["params"].item()["fit_on"] == "imagenet-calib"
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert any(r["metric"] == "ood_fpr95" for r in results)
