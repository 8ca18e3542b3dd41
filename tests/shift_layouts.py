"""Shift-set layouts in miniature, shared by the dataset-kind tests and the shift-imagenet suite test."""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import photo

OBJECTNET_GROUPS = {"alarm_clock": [409, 530], "banana": [954], "bench": [703]}  # PyTorch ImageNet-1k indices
OBJECTNET_LABELS = {"alarm_clock": "Alarm clock", "banana": "Banana", "bench": "Bench", "air_freshener": "Air freshener"}
PHOTOS = ["chelsea", "astronaut", "camera", "coffee", "rocket", "coins"]


def write_objectnet(root: Path, groups: dict[str, list[int]] = OBJECTNET_GROUPS) -> Path:
    """An ObjectNet release in miniature: images/<folder>/ (one folder outside ImageNet) with the 1-pixel red
    border, and mappings/ in the release's four formats, the ImageNet 2012 ids a permutation of PyTorch's
    order (as they are)."""
    pytorch_to_id = {p: (7 * p + 3) % 1000 for p in range(1000)}
    names = [f"imagenet class {i}" for i in range(1000)]
    for indices in groups.values():
        for p in indices:
            names[pytorch_to_id[p]] = f"name of class {p}"
    mappings = root / "mappings"
    mappings.mkdir(parents=True)
    (mappings / "folder_to_objectnet_label.json").write_text(json.dumps(OBJECTNET_LABELS))
    (mappings / "objectnet_to_imagenet_1k.json").write_text(json.dumps(
        {OBJECTNET_LABELS[folder]: "; ".join(f"name of class {p}" for p in indices) for folder, indices in groups.items()}))
    (mappings / "pytorch_to_imagenet_2012_id.json").write_text(json.dumps({str(p): i for p, i in pytorch_to_id.items()}))
    (mappings / "imagenet_to_label_2012_v2").write_text("\n".join(names) + "\n")
    for i, name in enumerate(PHOTOS):
        folder = root / "images" / list(OBJECTNET_LABELS)[i % 4]
        folder.mkdir(parents=True, exist_ok=True)
        image = photo(name, max_side=200)
        pixels = image.load()
        for x in range(image.width):
            pixels[x, 0] = pixels[x, image.height - 1] = (255, 0, 0)
        for y in range(image.height):
            pixels[0, y] = pixels[image.width - 1, y] = (255, 0, 0)
        image.save(folder / f"{name}.png")
    return root
