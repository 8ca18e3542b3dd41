"""Per-batch results persisted to a job's state_dir, so an interrupted attack run skips finished batches.

One JSON file per batch, written atomically (temp file + os.replace): a crash mid-write leaves either
the old file or none, never half a record. A record is reused only if it covers the same samples, so a
changed batch size or subset recomputes instead of mixing results.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON via a temp file + os.replace: a crash mid-write leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(value, out)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class BatchStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)

    def _path(self, batch_index: int) -> Path:
        return self.dir / f"batch_{batch_index:06d}.json"

    def load(self, batch_index: int, indices: list[int]) -> dict[str, Any] | None:
        """The saved record of this batch if it exists and covers exactly ``indices``."""
        record = read_json(self._path(batch_index))
        return record if record is not None and record.get("indices") == list(indices) else None

    def save(self, batch_index: int, record: dict[str, Any]) -> None:
        write_json_atomic(self._path(batch_index), record)
