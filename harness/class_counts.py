"""Checking, before anything runs, that each model's outputs fit the labels of each dataset it is scored on.

Both sides are counted without loading weights, data or touching the network: a model's count from its
entry (``num_classes``, the zoo entry, timm's pretrained config), a dataset's from its kind (digits,
CIFAR), its ``num_classes`` field, its class map or its class folders. Where a side is unknown, the pair
is not checked (the runner still fails the job if the labels do not fit).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.schema import SuiteError, Where
from harness.specs import DatasetSpec

# Dataset kinds whose class count is fixed by the kind itself.
FIXED_CLASS_COUNTS = {"digits": 10, "cifar10": 10, "cifar100": 100}


@dataclass(frozen=True)
class DatasetClasses:
    """``count`` classes; ``exact`` False when only the largest label is known (a class map without
    ``num_classes``: the labels are indices into a bigger label space, so the model needs at least ``count``)."""

    count: int
    exact: bool
    how: str


def dataset_classes(spec: DatasetSpec) -> DatasetClasses | None:
    """The dataset's class count as the harness will label it, or None when it cannot be known cheaply."""
    if spec.num_classes is not None:
        return DatasetClasses(spec.num_classes, True, "its num_classes")
    if spec.kind in FIXED_CLASS_COUNTS:
        return DatasetClasses(FIXED_CLASS_COUNTS[spec.kind], True, f"kind {spec.kind}")
    if spec.kind != "imagefolder":
        return None
    if spec.class_map is not None and Path(spec.class_map).is_file():
        from harness.data.folder import read_class_map

        try:
            mapping = read_class_map(Path(spec.class_map))
        except ValueError as exc:
            raise SuiteError(str(exc)) from None
        if not mapping:
            return None
        return DatasetClasses(max(mapping.values()) + 1, False, f"class map {Path(spec.class_map).name}")
    if spec.root is not None and Path(spec.root).is_dir():
        folders = sum(1 for p in Path(spec.root).iterdir() if p.is_dir())
        return DatasetClasses(folders, True, f"{folders} class folders") if folders else None
    return None


def check_class_counts(suite: Any) -> None:
    """Raise a one-line SuiteError for the first (model, dataset) pair a labelled task scores whose class
    counts disagree. Tasks without labels (``performance`` tasks such as latency) are not checked."""
    from harness.models.loaders import declared_num_classes

    spec = suite.spec
    models = {m.name: (i, declared_num_classes(m)) for i, m in enumerate(spec.models)}
    datasets = {d.name: dataset_classes(d) for d in spec.datasets}
    for task_spec, task in zip(spec.tasks, suite.tasks):
        if getattr(task, "performance", False):
            continue
        model_names = matching([m.name for m in spec.models], task_spec.models)
        data_names = matching([d.name for d in spec.datasets], task_spec.datasets)
        for model_name in model_names:
            index, model_count = models[model_name]
            for data_name in data_names:
                data = datasets[data_name]
                if model_count is None or data is None:
                    continue
                fits = model_count == data.count if data.exact else model_count >= data.count
                if not fits:
                    need = f"{data.count}" if data.exact else f"at least {data.count}"
                    raise _model_where(suite, index).error(
                        f"model {model_name!r} has {model_count} classes but dataset {data_name!r} needs {need} "
                        f"({data.how}; task {task_spec.label}); set num_classes, pretrained_cfg or a class_map")


def matching(names: list[str], patterns: list[str] | None) -> list[str]:
    if not patterns:
        return names
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _model_where(suite: Any, index: int) -> Where:
    raw = suite.raw if isinstance(getattr(suite, "raw", None), dict) else {}
    top = Where(Path(suite.path), getattr(raw, "line", 0), "")
    if "models" not in raw:
        return top.child("models", raw)
    entry = top.child("models", raw).child(index, raw["models"])
    key = "num_classes" if "num_classes" in raw["models"][index] else "name"
    return entry.child(key, raw["models"][index])
