"""Per-batch evaluator states saved while a job runs, so an interrupted job resumes where it stopped.

One JSON file per (pass, batch) under ``partial/<job key>/``, written atomically (temp file +
os.replace). A saved batch is reused only if it holds exactly the same sample ids; an unreadable file is
named, dropped and recomputed. The folder belongs to one cache key; ``--rerun`` discards it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

from harness.evaluation.state import EvalState


def write_json_atomic(path: Path, value: Any) -> None:
    """Write compact JSON via a temp file + os.replace: a crash mid-write leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one writer per file: each rank owns its batches
    try:
        temp.write_text(json.dumps(value, separators=(",", ":")), encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class PartialStore:
    def __init__(self, job_dir: Path) -> None:
        self.dir = Path(job_dir)

    def _path(self, pass_index: int, pass_name: str, batch_index: int) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", pass_name)
        return self.dir / f"p{pass_index:03d}_{safe}" / f"batch_{batch_index:06d}.json"

    def load(self, pass_index: int, pass_name: str, batch_index: int, ids: list[str]) -> EvalState | None:
        path = self._path(pass_index, pass_name, batch_index)
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            state = EvalState.from_json(saved["state"])
            if saved["ids"] != ids:
                return None  # other samples (subset or batch size changed): recompute
            return state
        except (ValueError, KeyError, TypeError, OSError) as exc:
            warnings.warn(f"{path}: unreadable saved batch ({type(exc).__name__}: {exc}); dropped and recomputed",
                          stacklevel=2)
            path.unlink(missing_ok=True)
            return None

    def save(self, pass_index: int, pass_name: str, batch_index: int, ids: list[str], state: EvalState) -> None:
        write_json_atomic(self._path(pass_index, pass_name, batch_index), {"ids": ids, "state": state.to_json()})

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
