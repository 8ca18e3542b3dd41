"""``visionbench merge OUT IN...``: combine the stores (and per-sample records) of runs that were fanned
out with ``--shard i/N`` (SLURM arrays, CI matrices) into one output folder, then render its report."""
from __future__ import annotations

import shutil
from pathlib import Path

from harness.store import ResultStore


def store_path(location: Path) -> Path:
    location = Path(location)
    path = location / "results.sqlite" if location.is_dir() else location
    if not path.is_file():
        raise FileNotFoundError(f"{location}: no results.sqlite here")
    return path


def merge_runs(out_dir: Path, inputs: list[Path]) -> int:
    """Copy every input's jobs into ``out_dir``'s store and its records into ``out_dir/samples``."""
    paths = [store_path(i) for i in inputs]
    target = ResultStore(Path(out_dir) / "results.sqlite")
    copied = 0
    try:
        for path in paths:
            source = ResultStore(path)
            try:
                copied += target.copy_from(source)
            finally:
                source.close()
            samples = path.parent / "samples"
            if samples.is_dir() and samples.resolve() != (Path(out_dir) / "samples").resolve():
                shutil.copytree(samples, Path(out_dir) / "samples", dirs_exist_ok=True)
    finally:
        target.close()
    return copied
