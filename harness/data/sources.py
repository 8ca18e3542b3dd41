"""Building a suite's dataset entry: the registered kind, then a reproducible subset, then --limit."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from harness.data.base import EmptyDatasetError, ImageSource, SubsetSource, take_sample
from harness.registry import DATASETS
from harness.specs import DatasetSpec, SubsetSpec


SOURCE_AGNOSTIC = ("kind", "subset", "on_corrupt")  # handled here, not by the dataset kind
ALWAYS_PASSED = ("root", "split", "name")  # every kind gets these; other unset (None) fields keep its defaults


def build_source(spec: DatasetSpec, limit: int | None = None, seed: int = 0) -> ImageSource:
    """The dataset a suite entry names, then its subset, then ``--limit`` (a seeded draw; see take_sample)."""
    settings = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in SOURCE_AGNOSTIC}
    source: ImageSource = DATASETS.get(spec.kind)(
        **{key: value for key, value in settings.items() if value is not None or key in ALWAYS_PASSED})
    if len(source) == 0:
        raise EmptyDatasetError(f"dataset {spec.name!r} ({spec.kind}{', ' + str(spec.root) if spec.root else ''}) "
                                "has no samples")
    if spec.subset is not None:
        source = SubsetSource(source, subset_indices(source, spec.subset), _describe_subset(spec.subset))
    return take_sample(source, limit, seed, "limit")


def subset_indices(source: ImageSource, subset: SubsetSpec) -> list[int]:
    if subset.ids is not None:
        return read_id_list(source, Path(subset.ids))
    n = min(int(subset.n or 0), len(source))
    # kept in draw order, so "the first k" of this subset is itself a random draw
    return np.random.default_rng(subset.seed).permutation(len(source))[:n].tolist()


def read_id_list(source: ImageSource, path: Path) -> list[int]:
    """An ID list names one sample a line: a relative file path for image folders, else an index."""
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]
    sample_id = getattr(source, "sample_id", None)
    if sample_id is not None:
        position = {sample_id(i): i for i in range(len(source))}
        missing = [i for i in ids if i not in position]
        if missing:
            raise ValueError(f"{path}: {len(missing)} id(s) not in the dataset, first {missing[0]!r}")
        return [position[i] for i in ids]
    try:
        indices = [int(i) for i in ids]
    except ValueError as exc:
        raise ValueError(f"{path}: ids must be integer indices for this dataset ({exc})") from None
    bad = [i for i in indices if not 0 <= i < len(source)]
    if bad:
        raise ValueError(f"{path}: index {bad[0]} out of range for {len(source)} samples")
    return indices


def _describe_subset(subset: SubsetSpec) -> str:
    return f"ids from {Path(subset.ids).name}" if subset.ids is not None else f"random {subset.n} (seed {subset.seed})"
