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
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data.folder import ImageFolderSource
from harness.registry import DATASETS


def timm_info(name: str) -> Path:
    import timm.data

    return Path(timm.data.__file__).resolve().parent / "_info" / name


class ImageNet1kFolder(ImageFolderSource):
    """A folder whose labels are ImageNet-1k indices by the kind's own rule, its protocol declared."""

    protocol_text = "1000-way"
    default_split = "val"

    def __init__(self, root: Path, split: str | None = None, name: str | None = None, **settings: Any) -> None:
        settings.pop("num_classes", None)  # the label space is ImageNet-1k
        super().__init__(root, split or self.default_split, name or self.kind, num_classes=1000, **settings)

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
