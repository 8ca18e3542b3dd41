"""The run's per-sample records, for report figures drawn from them rather than from the stored numbers.

Numbers in the report come from the results store only; the qualitative overlays of the segmentation
report need the pictures the evaluators keep in the records (``<out>/samples/<job key>.jsonl.gz``). Rendering
a report of a run folder sets where they are (``write_report`` does) and a figure module asks for one job's
records with ``job_records``; without a folder (a frame rendered on its own) or without the file (a run with
``--no-log-samples``) it gets None and says so in place of the figure. Records that do not verify (see
``harness.evaluation.state.load_records``) are never drawn: ``job_records`` raises their one-line
``RecordsError``, which the report prints in place of the figures.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator

from harness.evaluation.state import EvalState, load_records, records_present

_SAMPLES_DIR: ContextVar[Path | None] = ContextVar("report_samples_dir", default=None)


@contextlib.contextmanager
def samples_from(directory: Path | None) -> Iterator[None]:
    """Within the block, ``job_records`` reads from ``directory`` (a run's ``samples/`` folder)."""
    token = _SAMPLES_DIR.set(Path(directory) if directory is not None else None)
    try:
        yield
    finally:
        _SAMPLES_DIR.reset(token)


def job_records(job_key: str) -> tuple[EvalState, dict[str, Any]] | None:
    """(records, evaluator meta) of one job, or None when the run kept none (or none is being rendered);
    ``RecordsError`` when its file does not verify."""
    directory = _SAMPLES_DIR.get()
    path = directory / f"{job_key}.jsonl.gz" if directory is not None else None
    if path is None or not records_present(path):
        return None
    return load_records(path)
