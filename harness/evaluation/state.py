"""Evaluator state with a defined merge: per-sample records concatenate by sample id, sums add.

One state per batch is what resume saves, what ranks gather and what shards merge; merging the batch
states in batch order gives the same state as one uninterrupted process, so every number is identical.
A (sample id, pass) seen twice is an error: a sample must be counted exactly once.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

Record = dict[str, Any]  # JSON-serialisable per-sample outcome


class DuplicateSampleError(ValueError):
    """The same sample was evaluated twice in one pass (overlapping shards or batches)."""


@dataclass
class EvalState:
    """``records[sample_id][pass_name]`` -> record; ``sums[name]`` -> number or (nested) list of numbers."""

    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    sums: dict[str, Any] = field(default_factory=dict)

    def add_record(self, sample_id: str, pass_name: str, record: Record) -> None:
        passes = self.records.setdefault(sample_id, {})
        if pass_name in passes:
            raise DuplicateSampleError(f"sample {sample_id!r} evaluated twice in pass {pass_name!r}")
        passes[pass_name] = record

    def add_sum(self, name: str, value: Any) -> None:
        self.sums[name] = _add(self.sums[name], value) if name in self.sums else _plain(value)

    def merge(self, other: "EvalState") -> "EvalState":
        """In place: ``other``'s records appended after ours, sums added. Returns self."""
        for sample_id, passes in other.records.items():
            for pass_name, record in passes.items():
                self.add_record(sample_id, pass_name, record)
        for name, value in other.sums.items():
            self.add_sum(name, value)
        return self

    def pass_records(self, pass_name: str) -> Iterator[tuple[str, Record]]:
        """(sample id, record) of one pass, in evaluation order."""
        for sample_id, passes in self.records.items():
            if pass_name in passes:
                yield sample_id, passes[pass_name]

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "sums": self.sums}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "EvalState":
        if not isinstance(value, dict) or not isinstance(value.get("records"), dict) \
                or not isinstance(value.get("sums"), dict):
            raise ValueError("not an evaluator state (expected 'records' and 'sums')")
        return cls(records=value["records"], sums=value["sums"])


def merge_all(states: Iterable[EvalState]) -> EvalState:
    merged = EvalState()
    for state in states:
        merged.merge(state)
    return merged


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, bool):
        return int(value)
    return value


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, (list, np.ndarray)) or isinstance(b, (list, np.ndarray)):
        left, right = np.asarray(a), np.asarray(b)
        if left.shape != right.shape:
            raise ValueError(f"cannot merge sums of shapes {left.shape} and {right.shape}")
        return (left + right).tolist()
    return _plain(a) + _plain(b)


# --- per-sample records on disk: gzip JSON lines, one line per (sample, pass) ---------------------------
def write_records(path: Path, state: EvalState, meta: dict[str, Any] | None = None, **columns: Any) -> None:
    """Write ``state``'s records as gzip JSON lines: a first line with constant ``columns`` (such as the job
    key) and the evaluator's ``meta`` (what rescoring needs), one line per (sample, pass), a last line with
    the sums. Fast compression: the files are written on every job, read rarely."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    encode = json.JSONEncoder(separators=(",", ":")).encode
    with gzip.open(temp, "wt", encoding="utf-8", compresslevel=1) as out:
        out.write(encode({**columns, "meta": meta or {}}) + "\n")
        out.writelines(encode({"sample_id": sample_id, "pass": pass_name, "record": record}) + "\n"
                       for sample_id, passes in state.records.items() for pass_name, record in passes.items())
        out.write(encode({"sums": state.sums}) + "\n")
    temp.replace(path)


def read_records(path: Path) -> EvalState:
    """The state a ``write_records`` file holds (records in their written order, and the sums)."""
    state = EvalState()
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: unreadable record ({exc.msg})") from None
            if "sums" in row:
                state.sums = row["sums"]
            elif "meta" not in row:
                state.add_record(row["sample_id"], row["pass"], row["record"])
    return state


def read_meta(path: Path) -> dict[str, Any]:
    """The evaluator meta written with the records (the first line)."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        first = json.loads(next(lines, "{}"))
    return first.get("meta", {})
