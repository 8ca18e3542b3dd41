"""ImageNet-R / -A / V2 dataset kinds against timm's own pipeline, as timm's validate.py runs them: timm's
dataset (its class map: the set's synset list), timm's eval transform, the network called directly, and for
the 200-class sets the logits restricted with ``--valid-labels`` (timm's shipped index file). Folders laid out
like the real sets hold scikit-image photos; the harness must give the same per-sample predictions and top-1."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import timm
import timm.data
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from harness.data.imagenet_shifts import timm_info
from harness.run import run_suite
from tests.conftest import photo
from tests.shift_layouts import OBJECTNET_GROUPS, write_objectnet

PHOTOS = ["chelsea", "astronaut", "camera", "coffee", "rocket", "coins"]


def write_subset(root: Path, folders: list[str]) -> Path:
    for i, name in enumerate(PHOTOS):
        folder = root / folders[i % len(folders)]
        folder.mkdir(parents=True, exist_ok=True)
        photo(name, max_side=200).save(folder / f"{name}.jpg", quality=90)
    return root


def timm_validate(net, root: Path, class_map: str, valid_labels: list[int] | None) -> dict[str, int]:
    """file name -> predicted ImageNet-1k index, through timm's dataset, transform and --valid-labels."""
    dataset = timm.data.create_dataset("", root=str(root), class_map=class_map)
    dataset.transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))
    predictions = {}
    with torch.inference_mode():
        for index in range(len(dataset)):
            image, _ = dataset[index]
            output = net(image[None])
            if valid_labels is not None:
                output = output[:, valid_labels]
            top = int(output.argmax(1))
            name = Path(dataset.filename(index)).stem
            predictions[name] = valid_labels[top] if valid_labels is not None else top
    return predictions


def harness_predictions(tmp_path: Path, weights: Path, dataset: dict) -> tuple[dict[str, int], float]:
    suite = {"name": "shift-parity", "version": 1, "defaults": {"batch_size": 4, "device": "cpu"},
             "models": [{"name": "net", "source": "checkpoint", "arch": "test_resnet", "checkpoint": str(weights)}],
             "datasets": [{"name": "shifted", **dataset}],
             "tasks": [{"kind": "classification", "params": {"topk": [1]}}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / f"out-{dataset.get('protocol', 'default')}"
    outcome = run_suite(path, out=out, progress=False, report=False)
    assert outcome.failed == []
    predictions = {}
    for file in (out / "samples").glob("*.jsonl.gz"):
        with gzip.open(file, "rt") as lines:
            for line in lines:
                entry = json.loads(line)
                if entry.get("pass") == "main":
                    predictions[Path(entry["sample_id"]).stem] = entry["record"]["topk"][0]
    top1 = outcome.frame.set_index("metric").loc["top1"]
    return predictions, float(top1["value"])


@pytest.fixture(scope="module")
def net_weights(tmp_path_factory):
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", num_classes=1000).eval()
    weights = tmp_path_factory.mktemp("weights") / "net.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    return net, weights


@pytest.mark.parametrize("kind, protocol", [("imagenet-r", "masked"), ("imagenet-a", "masked"),
                                            ("imagenet-r", "1000-way")])
def test_imagenet_r_and_a_predict_as_timms_validate_with_valid_labels(tmp_path, net_weights, one_thread, kind,
                                                                     protocol):
    net, weights = net_weights
    subset = kind.replace("-", "_")
    synsets = timm_info(f"{subset}_synsets.txt").read_text().split()
    indices = [int(i) for i in timm_info(f"{subset}_indices.txt").read_text().split()]
    root = write_subset(tmp_path / kind, synsets[5:8])
    reference = timm_validate(net, root, str(timm_info(f"{subset}_synsets.txt")),
                              indices if protocol == "masked" else None)
    ours, top1 = harness_predictions(tmp_path, weights, {"kind": kind, "root": str(root), "protocol": protocol})
    assert ours == reference and len(ours) == len(PHOTOS)
    labels = {name: indices[5 + i % 3] for i, name in enumerate(PHOTOS)}
    assert top1 == pytest.approx(sum(reference[n] == labels[n] for n in PHOTOS) / len(PHOTOS), abs=1e-12)
    if protocol == "masked":
        assert set(ours.values()) <= set(indices)


def test_imagenetv2_folders_are_class_indices(tmp_path, net_weights, one_thread):
    net, weights = net_weights
    root = write_subset(tmp_path / "v2", ["3", "281", "999"])
    class_map = tmp_path / "v2-classes.txt"
    class_map.write_text("\n".join(str(i) for i in range(1000)))  # timm: line i names class i
    reference = timm_validate(net, root, str(class_map), None)
    ours, top1 = harness_predictions(tmp_path, weights, {"kind": "imagenetv2", "root": str(root)})
    assert ours == reference
    labels = {name: [3, 281, 999][i % 3] for i, name in enumerate(PHOTOS)}
    assert top1 == pytest.approx(sum(reference[n] == labels[n] for n in PHOTOS) / len(PHOTOS), abs=1e-12)


def test_imagenet_sketch_folders_are_the_1k_synsets(tmp_path, net_weights, one_thread):
    net, weights = net_weights
    synsets = timm_info("imagenet_synsets.txt").read_text().split()
    root = write_subset(tmp_path / "sketch", [synsets[1], synsets[500], synsets[998]])
    reference = timm_validate(net, root, str(timm_info("imagenet_synsets.txt")), None)
    ours, _ = harness_predictions(tmp_path, weights, {"kind": "imagenet-sketch", "root": str(root)})
    assert ours == reference


def test_the_clean_split_keeps_the_sets_200_classes_of_imagenet_val(tmp_path, net_weights, one_thread):
    """ImageNet-R's in-distribution counterpart: val folders outside its 200 classes are left out, and the
    rest is scored with the same masking (timm's results-imagenet-r-clean.csv)."""
    net, weights = net_weights
    r_synsets = timm_info("imagenet_r_synsets.txt").read_text().split()
    indices = [int(i) for i in timm_info("imagenet_r_indices.txt").read_text().split()]
    all_synsets = timm_info("imagenet_synsets.txt").read_text().split()
    outside = next(s for s in all_synsets if s not in r_synsets)
    root = write_subset(tmp_path / "val", [r_synsets[0], r_synsets[1], outside])
    ours, _ = harness_predictions(tmp_path, weights, {"kind": "imagenet-r", "split": "clean", "root": str(root)})
    kept = {name for i, name in enumerate(PHOTOS) if i % 3 != 2}
    assert set(ours) == kept and set(ours.values()) <= set(indices)
    with pytest.raises(ValueError, match="no class index for folder"):
        from harness.data.imagenet_shifts import ImageNetRSource
        ImageNetRSource(root)  # the shifted set itself: a folder outside the 200 is a mistake, not skipped


def test_objectnet_pools_each_class_over_its_imagenet_classes_and_crops_the_border(tmp_path, net_weights, one_thread):
    """Reference: timm's transform on the border-cropped image, the network called directly, the 1000 logits
    max-pooled over each ObjectNet class's ImageNet classes (the authors' protocol), argmax over the 113."""
    net, weights = net_weights
    root = write_objectnet(tmp_path / "objectnet-1.0")
    from harness.data.imagenet_shifts import ObjectNetSource

    source = ObjectNetSource(root / "images")
    assert source.valid_classes() == [OBJECTNET_GROUPS[f] for f in sorted(OBJECTNET_GROUPS)]
    assert sorted(Path(source.sample_id(i)).parts[0] for i in range(len(source))) == sorted(
        ["alarm_clock", "banana", "bench", "alarm_clock", "banana"])  # air_freshener is not an ImageNet class
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))
    reference, labels = {}, {}
    folders = sorted(OBJECTNET_GROUPS)
    for path in sorted((root / "images").glob("*/*.png")):
        if path.parent.name not in OBJECTNET_GROUPS:
            continue
        image = Image.open(path).convert("RGB")
        cropped = image.crop((2, 2, image.width - 2, image.height - 2))
        assert (255, 0, 0) not in {cropped.getpixel((x, 0)) for x in range(cropped.width)}
        with torch.inference_mode():
            logits = net(transform(cropped)[None])[0]
        pooled = [float(logits[OBJECTNET_GROUPS[f]].max()) for f in folders]
        reference[path.stem] = max(range(len(folders)), key=pooled.__getitem__)
        labels[path.stem] = folders.index(path.parent.name)
    ours, top1 = harness_predictions(tmp_path, weights, {"kind": "objectnet", "root": str(root / "images")})
    assert ours == reference and len(ours) == 5
    assert top1 == pytest.approx(sum(reference[n] == labels[n] for n in reference) / 5, abs=1e-12)


def test_objectnet_clean_split_keeps_the_mapped_imagenet_classes(tmp_path, net_weights, one_thread):
    net, weights = net_weights
    write_objectnet(tmp_path / "objectnet-1.0")
    synsets = timm_info("imagenet_synsets.txt").read_text().split()
    root = write_subset(tmp_path / "val", [synsets[530], synsets[954], synsets[0]])  # clock, banana, unmapped
    dataset = {"kind": "objectnet", "split": "clean", "root": str(root),
               "annotations": str(tmp_path / "objectnet-1.0" / "mappings")}
    ours, _ = harness_predictions(tmp_path, weights, dataset)
    assert set(ours) == {name for i, name in enumerate(PHOTOS) if i % 3 != 2}
    assert set(ours.values()) <= {0, 1, 2}
    from harness.data.imagenet_shifts import ObjectNetSource

    source = ObjectNetSource(root, split="clean", annotations=dataset["annotations"])
    assert {source.load(i).target for i in range(len(source))} == {0, 1}  # alarm_clock (digital clock), banana
    with pytest.raises(ValueError, match="split clean reads an ImageNet val folder"):
        ObjectNetSource(root, split="clean")
    (tmp_path / "objectnet-1.0" / "mappings" / "imagenet_to_label_2012_v2").unlink()
    with pytest.raises(FileNotFoundError, match="imagenet_to_label_2012_v2: missing"):
        ObjectNetSource(tmp_path / "objectnet-1.0" / "images")
