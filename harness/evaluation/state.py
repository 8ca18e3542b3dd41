"""Evaluator state with a defined merge: per-sample records concatenate by sample id, sums add.

One state per batch is what resume saves, what ranks gather and what shards merge; merging the batch
states in batch order gives the same state as one uninterrupted process, so every number is identical.
A (sample id, pass) seen twice is an error: a sample must be counted exactly once.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import sqlite3
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

Record = dict[str, Any]  # JSON-serialisable per-sample outcome
SKIPPED = "skipped_corrupt:"  # sums named SKIPPED + pass: the loop's count of unreadable samples


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

    def passes(self) -> list[str]:
        """The pass names the records hold, in first-seen order."""
        return list(dict.fromkeys(name for passes in self.records.values() for name in passes))

    def only_pass(self) -> str:
        """The one pass the records hold (an evaluator scoring one sweep); an error when there are others."""
        passes = self.passes()
        if len(passes) != 1:
            raise ValueError(f"the state holds passes {passes or 'none'}; expected exactly one")
        return passes[0]

    def restricted(self, pass_name: str) -> "EvalState":
        """The records of one pass and its own sums (those named ``<pass>/...``): what scoring it needs."""
        prefix = f"{pass_name}/"
        return EvalState({sample_id: {pass_name: passes[pass_name]} for sample_id, passes in self.records.items()
                          if pass_name in passes},
                         {name: value for name, value in self.sums.items() if name.startswith(prefix)})

    def count_skipped(self, pass_name: str, count: int) -> None:
        """Unreadable samples skipped in a pass (``on_corrupt: skip``), kept beside the evaluator's sums."""
        self.add_sum(f"{SKIPPED}{pass_name}", count)

    def skipped(self) -> dict[str, int]:
        """pass name -> samples skipped as unreadable."""
        return {name[len(SKIPPED):]: int(value) for name, value in self.sums.items() if name.startswith(SKIPPED)}

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "sums": self.sums}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "EvalState":
        if not isinstance(value, dict) or not isinstance(value.get("records"), dict) \
                or not isinstance(value.get("sums"), dict):
            raise ValueError("not an evaluator state (expected 'records' and 'sums')")
        return cls(records=value["records"], sums=value["sums"])


def float32_list(values: Any) -> list[float]:
    """A row of numbers (logits, features) as JSON floats that read back to the same float32 values."""
    return [float(f"{v:.9g}") for v in np.asarray(values, dtype=np.float32).tolist()]


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


# --- per-sample records on disk: gzip JSON lines, one line per (sample, pass), a checksum line last -------
# The first line carries ``records_format`` (2: checksummed); the last line is ``{"sha256": ..., "lines": N}``,
# the sha256 of the N lines above it exactly as written (compact JSON, ASCII, "\n"-terminated). The same
# digest is stored with the job in results.sqlite (provenance ``records_sha256``): an edited, truncated,
# swapped or regenerated file is refused by every reader (``read_records``), never scored or drawn.
RECORDS_FORMAT = 2
_CHUNK = 2048  # lines encoded and hashed per write: the per-line overhead stays out of the hot path


class RecordsError(ValueError):
    """A records file that does not verify; the message is one line naming the file and what is wrong."""


def records_path(samples_dir: Path, job_key: str) -> Path:
    return Path(samples_dir) / f"{job_key}.jsonl.gz"


def write_records(path: Path, state: EvalState, meta: dict[str, Any] | None = None, **columns: Any) -> str:
    """Write ``state``'s records as gzip JSON lines: a first line with constant ``columns`` (such as the job
    key) and the evaluator's ``meta`` (what rescoring needs), one line per (sample, pass), a line with the
    sums and the checksum line. Returns the sha256 (for the results store). Fast compression: the files are
    written on every job, read rarely."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    encode = json.JSONEncoder(separators=(",", ":")).encode
    digest, count = hashlib.sha256(), 0

    def put(out: Any, lines: list[str]) -> None:
        nonlocal count
        data = "".join(lines).encode("ascii")
        digest.update(data)
        out.write(data)
        count += len(lines)

    try:
        with gzip.open(temp, "wb", compresslevel=1) as out:
            put(out, [encode({**columns, "meta": meta or {}, "records_format": RECORDS_FORMAT}) + "\n"])
            chunk: list[str] = []
            for sample_id, passes in state.records.items():
                for pass_name, record in passes.items():
                    chunk.append(encode({"sample_id": sample_id, "pass": pass_name, "record": record}) + "\n")
                    if len(chunk) >= _CHUNK:
                        put(out, chunk)
                        chunk = []
            put(out, [*chunk, encode({"sums": state.sums}) + "\n"])
            sha256 = digest.hexdigest()
            out.write((encode({"sha256": sha256, "lines": count}) + "\n").encode("ascii"))
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return sha256


def _decompressed(path: Path) -> bytes:
    """The file's content; a missing file or a broken gzip stream is a ``RecordsError``."""
    try:
        with gzip.open(path, "rb") as data:
            return data.read()
    except FileNotFoundError:
        raise RecordsError(f"{path}: missing") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RecordsError(f"{path}: truncated or corrupt gzip ({reason}); the records are incomplete") from None
    except OSError as exc:
        raise RecordsError(f"{path}: unreadable ({exc.strerror or exc})") from None


def _row(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordsError(f"{path}:{number}: unreadable record ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(row, dict):
        raise RecordsError(f"{path}:{number}: unreadable record (not a JSON object)")
    return row


def _scan(path: Path, stored: str | None | bool) -> tuple[dict[str, Any], str, bytes]:
    """Read and verify ``path``: (the header row, the sha256, the record and sums lines). ``stored``: the
    sha256 the results store holds for this job (None: it holds none, so the file is not vouched for), True
    to look it up in the run folder's results.sqlite, False to skip that check."""
    data = _decompressed(path)
    first_end = data.find(b"\n") + 1
    if not data:
        raise RecordsError(f"{path}: truncated: empty")
    header = _row(path, 1, data[:first_end] if first_end else data)
    if header.get("records_format") != RECORDS_FORMAT:
        raise RecordsError(f"{path}: unverified (written before checksums); rerun the suite to regenerate it")
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    last_start = data.rfind(b"\n", 0, len(data) - 1) + 1  # where the checksum line should start
    try:
        last = json.loads(data[last_start:]) if data.endswith(b"\n") and last_start >= first_end > 0 else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        last = None
    if not isinstance(last, dict) or "sha256" not in last:
        raise RecordsError(f"{path}: truncated: no checksum line at the end (the records stop at line {lines})")
    sha256 = hashlib.sha256(memoryview(data)[:last_start]).hexdigest()
    if last["sha256"] != sha256 or last.get("lines") != lines - 1:
        raise RecordsError(f"{path}: checksum mismatch: the records were changed after they were written")
    job_key, where = header.get("job_key"), path.as_posix()
    if isinstance(job_key, str) and where.endswith(".jsonl.gz") and not (
            where == f"{job_key}.jsonl.gz" or where.endswith(f"/{job_key}.jsonl.gz")):  # (a key may hold a "/")
        raise RecordsError(f"{path}: holds the records of job {job_key}, not of job {path.name[:-len('.jsonl.gz')]} "
                           "(a file swapped in from another job)")
    if stored is True:
        stored = stored_sha256(path)
    if stored is None:
        raise RecordsError(f"{path}: results.sqlite holds no checksum for this job's records (not the records of "
                           "the stored result)")
    if stored is not False and stored != sha256:
        raise RecordsError(f"{path}: sha256 differs from the one results.sqlite holds for this job (the file was "
                           "replaced or regenerated)")
    return header, sha256, data[first_end:last_start]


def stored_sha256(path: Path) -> str | None | bool:
    """The records sha256 the run's store (``<run>/results.sqlite`` beside ``<run>/samples/``) holds for the
    job whose records ``path`` is: its latest finished row's ``records_sha256`` (None when that row has none),
    or False when there is no such store or row."""
    store = path.parent.parent / "results.sqlite"
    if path.parent.name != "samples" or not store.is_file() or not path.name.endswith(".jsonl.gz"):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=60)) as conn:
            row = conn.execute("SELECT provenance FROM jobs WHERE job_key = ? AND status = 'ok' ORDER BY id DESC "
                               "LIMIT 1", (path.name[:-len(".jsonl.gz")],)).fetchone()
    except sqlite3.Error:
        return False  # not a results store this harness can read: the file's own checks stand
    if row is None:
        return False
    try:
        provenance = json.loads(row[0] or "{}")
    except json.JSONDecodeError:
        return False
    return provenance.get("records_sha256") if isinstance(provenance, dict) else False


def records_present(path: Path) -> bool:
    """Whether ``path`` exists; ``RecordsError`` when it does not but the run's results.sqlite says the job's
    records were written (a deleted file is reported, not taken for a run without ``--log-samples``)."""
    path = Path(path)
    if path.is_file():
        return True
    if isinstance(stored_sha256(path), str):
        raise RecordsError(f"{path}: missing (results.sqlite says the run wrote per-sample records for this job)")
    return False


def verify_records(path: Path, stored: str | None | bool = True) -> str:
    """The sha256 of a records file that verifies (see ``load_records``); raises ``RecordsError`` otherwise.
    Reads and hashes the file without decoding its records."""
    return _scan(Path(path), stored)[1]


def load_records(path: Path, stored: str | None | bool = True) -> tuple[EvalState, dict[str, Any]]:
    """(state, evaluator meta) of a ``write_records`` file, after checking it: the checksum line, the job key
    in the first line against the file name, and the sha256 the run's results.sqlite holds for the job
    (``stored``; True: looked up when the file sits in a run folder's ``samples/``). A file that does not
    verify raises ``RecordsError`` (one line naming the file), never half a state."""
    path = Path(path)
    header, _, body = _scan(path, stored)
    state = EvalState()
    loads, add = json.loads, state.add_record
    for number, line in enumerate(body.splitlines(), start=2):
        try:
            row = loads(line)
            if "sums" in row:
                state.sums = row["sums"]
            else:
                add(row["sample_id"], row["pass"], row["record"])
        except (ValueError, KeyError, TypeError) as exc:  # verified, so written so: an incompatible writer
            raise RecordsError(f"{path}:{number}: unreadable record ({type(exc).__name__}: {exc})") from None
    meta = header.get("meta", {})
    return state, meta if isinstance(meta, dict) else {}


def read_records(path: Path, stored: str | None | bool = True) -> EvalState:
    """The state a ``write_records`` file holds (records in their written order, and the sums), verified as
    ``load_records`` does."""
    return load_records(path, stored)[0]


def read_meta(path: Path) -> dict[str, Any]:
    """The evaluator meta written with the records (the first line; ``read_records`` verifies the file)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            first = json.loads(next(lines, "{}"))
    except (OSError, EOFError, zlib.error, json.JSONDecodeError) as exc:
        raise RecordsError(f"{path}: unreadable first line ({exc})") from None
    return first.get("meta", {}) if isinstance(first, dict) else {}
