"""OpenOOD's image lists as a dataset kind: the layout of its v1.5 ImageNet-1k benchmark (and of its CIFAR ones).

OpenOOD ships ``benchmark_imglist/<benchmark>/<split>_<set>.txt`` beside ``images_largescale/`` (ImageNet) or
``images_classic/`` (CIFAR): one line per image, ``<path relative to the images folder> <label>``, the label an
ImageNet-1k index for in-distribution lists (``test_imagenet.txt``) and ``-1`` for OOD ones (``test_ssb_hard.txt``,
``test_ninco.txt``, ``test_inaturalist.txt``, ``test_textures.txt``, ``test_openimage_o.txt``)::

    - {name: ninco, kind: openood-imglist, root: "{data_root}/images_largescale",
       annotations: ../benchmark_imglist/imagenet/test_ninco.txt}     # relative to root

Sample ids are the listed paths, so an ID-list subset names them as the list does. An OOD sample's label
is -1: no classification metric scores it (the OOD evaluator reads scores, never labels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data.base import ImageSource, file_manifest_digest
from harness.data.folder import open_rgb
from harness.evaluation.samples import Sample
from harness.registry import DATASETS

OOD_LABEL = -1


def read_imglist(path: Path) -> list[tuple[str, int]]:
    """(relative path, label) per line of an OpenOOD image list; errors name the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such image list") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError
            entries.append((fields[0], int(fields[1])))
        except ValueError:
            raise ValueError(f"{path}: line {number}: expected '<relative image path> <integer label>', "
                             f"got {line.strip()[:80]!r}") from None
    if not entries:
        raise ValueError(f"{path}: the image list names no image")
    return entries


@DATASETS.register("openood-imglist")
class ImglistSource(ImageSource):
    """The images an OpenOOD list names under ``root``, with its labels (``-1``: out-of-distribution)."""

    kind = "openood-imglist"

    def __init__(self, root: Path, split: str | None = None, name: str = "openood-imglist",
                 annotations: str | None = None, num_classes: int | None = None, **_: Any) -> None:
        if annotations is None:
            raise ValueError(f"dataset {name!r}: give annotations: the OpenOOD image list (relative to root, e.g. "
                             "../benchmark_imglist/imagenet/test_ninco.txt)")
        self.root, self.name = Path(root), name
        self.imglist = self.root / annotations
        self.split = split or self.imglist.stem
        self.entries = read_imglist(self.imglist)
        missing = next((rel for rel, _ in self.entries if not (self.root / rel).is_file()), None)
        if missing is not None:
            raise ValueError(f"{self.imglist}: lists {missing!r}, which is not a file under {self.root}")
        labels = [label for _, label in self.entries if label != OOD_LABEL]
        bad = next((label for label in labels if label < 0), None)
        if bad is not None:
            raise ValueError(f"{self.imglist}: label {bad} (labels are class indices, or -1 for OOD)")
        size = num_classes or (max(labels) + 1 if labels else 1000)  # OOD lists: ImageNet-1k's label space
        self.class_names = [str(i) for i in range(size)]

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> Sample:
        relative, label = self.entries[index]
        return Sample(relative, open_rgb(self.root / relative), label)

    def sample_id(self, index: int) -> str:
        return self.entries[index][0]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root), "imglist": str(self.imglist),
                "out_of_distribution": all(label == OOD_LABEL for _, label in self.entries)}

    def fingerprint(self) -> dict[str, Any]:
        return {**self.describe(), "content": file_manifest_digest(
            self.root, [self.root / relative for relative, _ in self.entries], [self.imglist])}
