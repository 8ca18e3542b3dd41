"""Per-batch evaluator states saved while a job runs, so an interrupted job resumes where it stopped.

One JSON file per (pass, batch) under ``partial/<job key>/``, written atomically (temp file +
os.replace). Finished batches are written out at most every ``flush_seconds`` (default ``FLUSH_SECONDS``):
an interruption loses at most that much work, and fast jobs pay nothing for being resumable. A saved batch
is reused only if it verifies: each file carries the sha256 of its content (the job key, the pass and batch
it is, the sample ids and the state), and one that is unreadable, fails its checksum, belongs to another
job, pass or batch, or was written before checksums is named in a warning, dropped and recomputed, never
reused; one that holds other sample ids (the subset or batch size changed) is recomputed. The folder
belongs to one cache key; ``--rerun`` discards it.
"""
from __future__ import annotations

import hashlib
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
    write_text_atomic(path, json.dumps(value, separators=(",", ":")))


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one writer per file: each rank owns its batches
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


FLUSH_SECONDS = 2.0
BATCH_FORMAT = 2  # 2: checksummed


class BatchError(ValueError):
    """A saved batch that does not verify (the message says how)."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def batch_checksum(content: dict[str, Any]) -> str:
    """sha256 of a saved batch's content (every field but ``sha256``) as compact JSON in its own key order:
    what ``json`` writes, read back and written again, is the same text."""
    return _sha256(json.dumps(content, separators=(",", ":")))


def batch_text(content: dict[str, Any]) -> str:
    """The file: ``content`` with its checksum as the last field (the content is serialised once)."""
    text = json.dumps(content, separators=(",", ":"))
    return f'{text[:-1]},"sha256":"{_sha256(text)}"}}'


def batch_content(job: str, pass_index: int, pass_name: str, batch_index: int, ids: list[str],
                  state: EvalState) -> dict[str, Any]:
    return {"format": BATCH_FORMAT, "job": job, "pass_index": pass_index, "pass": pass_name, "batch": batch_index,
            "ids": ids, "state": state.to_json()}


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
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
            self._verify(saved, pass_index, pass_name, batch_index)
            state = EvalState.from_json(saved["state"])
            if saved["ids"] != ids:
                return None  # other samples (subset or batch size changed): recompute
            return state
        except BatchError as exc:
            warnings.warn(f"{path}: saved batch {exc}; dropped and recomputed", stacklevel=2)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            warnings.warn(f"{path}: unreadable saved batch ({type(exc).__name__}: {exc}); dropped and recomputed",
                          stacklevel=2)
        path.unlink(missing_ok=True)
        return None

    def _verify(self, saved: dict[str, Any], pass_index: int, pass_name: str, batch_index: int) -> None:
        if saved.get("format") != BATCH_FORMAT or "sha256" not in saved:
            raise BatchError("has no checksum (written before checksums)")
        content = {k: v for k, v in saved.items() if k != "sha256"}
        if batch_checksum(content) != saved["sha256"]:
            raise BatchError("fails its checksum (changed after it was saved)")
        where = (saved.get("job"), saved.get("pass_index"), saved.get("pass"), saved.get("batch"))
        if where != (self.dir.name, pass_index, pass_name, batch_index):
            raise BatchError(f"belongs to job {where[0]}, pass {where[2]!r}, batch {where[3]} (moved here from "
                             "elsewhere)")

    def save(self, pass_index: int, pass_name: str, batch_index: int, ids: list[str], state: EvalState) -> None:
        """Keep a finished batch; write the kept ones when ``flush_seconds`` have passed since the last write."""
        self.pending.append((pass_index, pass_name, batch_index, ids, state))
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        for pass_index, pass_name, batch_index, ids, state in self.pending:
            content = batch_content(self.dir.name, pass_index, pass_name, batch_index, ids, state)
            write_text_atomic(self._path(pass_index, pass_name, batch_index), batch_text(content))
        self.pending.clear()
        self.last_flush = time.monotonic()

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
