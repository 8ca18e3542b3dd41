"""Per-batch evaluator states saved while a job runs, so an interrupted job resumes where it stopped.

One JSON file per (pass, batch) under ``partial/<job key>/``, written atomically (temp file +
os.replace). Finished batches are written out at most every ``flush_seconds`` (default ``FLUSH_SECONDS``):
an interruption loses at most that much work, and fast jobs pay nothing for being resumable. A saved batch
is reused only if it holds exactly the same sample ids; an unreadable file is named, dropped and
recomputed. The folder belongs to one cache key; ``--rerun`` discards it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
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


FLUSH_SECONDS = 2.0


class PartialStore:
    def __init__(self, job_dir: Path, flush_seconds: float | None = None) -> None:
        self.dir = Path(job_dir)
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self.pending: list[tuple[int, str, int, list[str], EvalState]] = []
        self.last_flush = time.monotonic()

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
        """Keep a finished batch; write the kept ones when ``flush_seconds`` have passed since the last write."""
        self.pending.append((pass_index, pass_name, batch_index, ids, state))
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        for pass_index, pass_name, batch_index, ids, state in self.pending:
            write_json_atomic(self._path(pass_index, pass_name, batch_index), {"ids": ids, "state": state.to_json()})
        self.pending.clear()
        self.last_flush = time.monotonic()

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
