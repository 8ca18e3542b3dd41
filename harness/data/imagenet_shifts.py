"""ImageNet's natural-shift test sets as dataset kinds, each with its protocol declared (docs/shift.md).

- ``imagenet-r`` (Hendrycks et al., 2021, "The Many Faces of Robustness") and ``imagenet-a`` (Hendrycks et
  al., 2021, "Natural Adversarial Examples"): 200 WordNet-id folders each. Labels are ImageNet-1k indices
  from the synset and index lists timm ships (``timm/data/_info/imagenet_{r,a}_{synsets,indices}.txt``);
  ``protocol: masked`` (the default, the standard protocol) restricts the argmax to the 200 classes, as
  timm's ``validate.py --valid-labels`` does; ``protocol: 1000-way`` scores over all 1000.
  ``split: clean`` reads an ImageNet-1k val folder instead and keeps the set's 200 classes (same masking):
  the in-distribution counterpart its effective robustness is measured against (timm's "clean" results).
- ``imagenetv2`` (Recht et al., 2019): folders ``0`` ... ``999`` are the class indices; 1000-way.
- ``imagenet-sketch`` (Wang et al., 2019): 1000 WordNet-id folders, labelled by timm's ImageNet-1k synset
  list; 1000-way.
- ``objectnet`` (Barbu et al., 2019): the 113 of its 313 object folders that overlap ImageNet-1k, labelled
  through the mapping files its release ships; each class is one or more ImageNet classes, and a model's
  logits are pooled by their maximum over each class's ImageNet classes (113-way); the release's 1-pixel red
  border is cropped away. ``split: clean`` reads an ImageNet val folder instead, keeping the images of the
  mapped ImageNet classes, pooled the same way (the in-distribution counterpart).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.data.folder import ImageFolderSource
from harness.evaluation.samples import Sample
from harness.registry import DATASETS


def timm_info(name: str) -> Path:
    import timm.data

    return Path(timm.data.__file__).resolve().parent / "_info" / name


class ImageNet1kFolder(ImageFolderSource):
    """A folder whose labels are ImageNet-1k indices by the kind's own rule, its protocol declared."""

    protocol_text = "1000-way"
    default_split = "val"
    num_labels = 1000  # the label space: ImageNet-1k (ObjectNet: its own 113 classes)

    def __init__(self, root: Path, split: str | None = None, name: str | None = None, **settings: Any) -> None:
        settings.pop("num_classes", None)
        super().__init__(root, split or self.default_split, name or self.kind, num_classes=self.num_labels, **settings)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "protocol": self.protocol_text}


class TimmSubsetSource(ImageNet1kFolder):
    """A 200-class ImageNet subset whose folders are WordNet ids, labelled through timm's shipped lists."""

    subset = ""  # imagenet_r | imagenet_a

    def __init__(self, root: Path, split: str | None = None, name: str | None = None, protocol: str | None = None,
                 **settings: Any) -> None:
        self.masked = (protocol or "masked") == "masked"
        self.protocol_text = "200-class masked" if self.masked else "1000-way (unmasked)"
        self.mapped_folders_only = split == "clean"  # ImageNet val: its other 800 classes are not this set's
        super().__init__(root, split, name, **settings)

    def map_files(self) -> list[Path]:
        return [timm_info(f"{self.subset}_synsets.txt"), timm_info(f"{self.subset}_indices.txt")]

    def folder_classes(self) -> tuple[dict[str, int], object]:
        synsets_file, indices_file = self.map_files()
        synsets = synsets_file.read_text().split()
        indices = [int(i) for i in indices_file.read_text().split()]
        if len(synsets) != len(indices):
            raise ValueError(f"{indices_file}: {len(indices)} indices for {len(synsets)} synsets")
        return dict(zip(synsets, indices)), f"{self.kind} ({synsets_file.name})"


@DATASETS.register("imagenet-r")
class ImageNetRSource(TimmSubsetSource):
    kind = "imagenet-r"
    subset = "imagenet_r"


@DATASETS.register("imagenet-a")
class ImageNetASource(TimmSubsetSource):
    kind = "imagenet-a"
    subset = "imagenet_a"


@DATASETS.register("imagenetv2")
class ImageNetV2Source(ImageNet1kFolder):
    """ImageNetV2 (matched-frequency, threshold-0.7 or top-images): class-index folders."""

    kind = "imagenetv2"
    default_split = "matched-frequency"

    def folder_classes(self) -> tuple[dict[str, int], object]:
        return {str(i): i for i in range(1000)}, f"{self.kind} (folders are class indices 0-999)"


@DATASETS.register("imagenet-sketch")
class ImageNetSketchSource(ImageNet1kFolder):
    kind = "imagenet-sketch"

    def map_files(self) -> list[Path]:
        return [timm_info("imagenet_synsets.txt")]

    def folder_classes(self) -> tuple[dict[str, int], object]:
        synsets = self.map_files()[0].read_text().split()
        return {synset: i for i, synset in enumerate(synsets)}, f"{self.kind} ({self.map_files()[0].name})"


OBJECTNET_MAPPINGS = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json",
                      "pytorch_to_imagenet_2012_id.json", "imagenet_to_label_2012_v2")


def read_objectnet_groups(mappings: Path) -> dict[str, list[int]]:
    """ObjectNet folder -> the ImageNet-1k (PyTorch order) indices of its class, from the release's files.

    ``objectnet_to_imagenet_1k.json`` names each class's ImageNet classes ("analog clock; digital clock");
    line i of ``imagenet_to_label_2012_v2`` is the name of ImageNet 2012 id i, and
    ``pytorch_to_imagenet_2012_id.json`` maps PyTorch indices to those ids, as the authors' own code reads them.
    """
    paths = [Path(mappings) / name for name in OBJECTNET_MAPPINGS]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (ObjectNet's release ships it in mappings/)")
    try:
        folder_label = json.loads(paths[0].read_text(encoding="utf-8"))
        label_names = json.loads(paths[1].read_text(encoding="utf-8"))
        pytorch_ids = json.loads(paths[2].read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{mappings}: an ObjectNet mapping file is not valid JSON ({exc})") from None
    index_of_id = {int(imagenet_id): int(index) for index, imagenet_id in pytorch_ids.items()}
    index_of_name = {name.strip(): index_of_id[i]
                     for i, name in enumerate(paths[3].read_text(encoding="utf-8").splitlines()) if i in index_of_id}
    folder_of = {label: folder for folder, label in folder_label.items()}
    groups: dict[str, list[int]] = {}
    for label, names in label_names.items():
        if label not in folder_of:
            raise ValueError(f"{paths[1]}: class {label!r} has no folder in {paths[0].name}")
        unknown = [n for n in names.split("; ") if n not in index_of_name]
        if unknown:
            raise ValueError(f"{paths[1]}: class {label!r} names {unknown[0]!r}, not in {paths[3].name}")
        groups[folder_of[label]] = sorted(index_of_name[n] for n in names.split("; "))
    claimed: dict[int, str] = {}
    for folder, indices in groups.items():
        for index in indices:
            if index in claimed:
                raise ValueError(f"{paths[1]}: ImageNet class {index} belongs to both {claimed[index]!r} and {folder!r}")
            claimed[index] = folder
    return groups


@DATASETS.register("objectnet")
class ObjectNetSource(ImageNet1kFolder):
    """ObjectNet's overlap with ImageNet-1k, 113-way by max-pooling each class's ImageNet logits.

    ``root``: the release's ``images/`` folder; ``annotations``: its ``mappings/`` folder (default
    ``<root>/../mappings``; needed with ``split: clean``, whose root is an ImageNet val folder)."""

    kind = "objectnet"
    default_split = "test"
    border = 2  # pixels cropped from each side: the release's 1-pixel red border, as the authors' loaders do
    protocol_text = "113-class pooled (max over each class's ImageNet classes)"
    mapped_folders_only = True  # ObjectNet's other 200 folders (and ImageNet's other classes) are not scored

    def __init__(self, root: Path, split: str | None = None, name: str | None = None,
                 annotations: str | None = None, **settings: Any) -> None:
        self.clean = split == "clean"
        if annotations is None and self.clean:
            raise ValueError(f"dataset {name or self.kind!r}: split clean reads an ImageNet val folder; give "
                             "annotations: the ObjectNet release's mappings folder")
        self.mappings = Path(root) / annotations if annotations is not None else Path(root).parent / "mappings"
        self.groups = read_objectnet_groups(self.mappings)
        self.folders = sorted(self.groups)
        self.num_labels = len(self.folders)
        super().__init__(root, split, name, **settings)
        self.class_names = list(self.folders)

    def folder_classes(self) -> tuple[dict[str, int], object]:
        if not self.clean:
            return {folder: i for i, folder in enumerate(self.folders)}, self.mappings
        synsets = timm_info("imagenet_synsets.txt").read_text().split()
        position = {index: i for i, folder in enumerate(self.folders) for index in self.groups[folder]}
        return ({synset: position[index] for index, synset in enumerate(synsets) if index in position},
                f"{self.kind} clean ({self.mappings} and timm's imagenet_synsets.txt)")

    def map_files(self) -> list[Path]:
        return [self.mappings / name for name in OBJECTNET_MAPPINGS]

    def valid_classes(self) -> list[list[int]]:
        return [self.groups[folder] for folder in self.folders]

    def load(self, index: int) -> Sample:
        sample = super().load(index)
        if self.clean:
            return sample
        width, height = sample.image.size
        cropped = sample.image.crop((self.border, self.border, width - self.border, height - self.border))
        return Sample(sample.id, cropped, sample.target)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "valid_classes": self.valid_classes(), "border": 0 if self.clean else self.border}
