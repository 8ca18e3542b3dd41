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


class BatchStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)

    def _path(self, batch_index: int) -> Path:
        return self.dir / f"batch_{batch_index:06d}.json"

    def load(self, batch_index: int, indices: list[int]) -> dict[str, Any] | None:
        """The saved record of this batch if it exists and covers exactly ``indices``."""
        path = self._path(batch_index)
        if not path.exists():
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
        return record if record.get("indices") == list(indices) else None

    def save(self, batch_index: int, record: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=self.dir, prefix=".batch_", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(record, out)
            os.replace(temp, self._path(batch_index))
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
