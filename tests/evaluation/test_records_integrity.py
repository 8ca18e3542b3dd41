"""Per-sample records and saved partial batches carry checksums: an edited, truncated, deleted, swapped,
regenerated or pre-checksum records file is refused by rescore, the report and the gate (one line naming the
file) and recomputed by a rerun; a tampered partial batch is named, dropped and recomputed, never reused."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import yaml

from harness.evaluation.state import EvalState, RecordsError, read_records, verify_records, write_records
from harness.run import run_suite
from harness.store import ResultStore
from tests.conftest import InferSpy, zoo_suite

REPO = Path(__file__).resolve().parents[2]
LIMIT = 20
RESNET, VIT = "resnet_digits x digits-test x classification", "vit_digits x digits-test x classification"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, one_thread_module) -> tuple[Path, Path, dict[str, str]]:
    """(suite file, a finished run folder of two zoo models with records, model -> job key). Tests copy it."""
    root = tmp_path_factory.mktemp("records")
    suite = root / "suite.yaml"
    suite.write_text(yaml.safe_dump(zoo_suite(["resnet_digits", "vit_digits"]), sort_keys=False))
    outcome = run_suite(suite, out=root / "run", limit=LIMIT, progress=False)
    assert outcome.ran == 2 and not outcome.failed
    keys = dict(outcome.frame.drop_duplicates("model")[["model", "job_key"]].itertuples(index=False, name=None))
    return suite, root / "run", keys


@pytest.fixture
def run_copy(finished_run, tmp_path):
    suite, run, keys = finished_run
    shutil.copytree(run, tmp_path / "run")
    return suite, tmp_path / "run", keys


def _records(run: Path, key: str) -> Path:
    return run / "samples" / f"{key}.jsonl.gz"


def _lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)


def _rescore(run: Path, capsys) -> tuple[int, str, str]:
    from harness.cli import main

    capsys.readouterr()
    code = main(["rescore", str(run)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_refused_then_recomputed(suite: Path, run: Path, path: Path, reason: str, title: str, capsys) -> None:
    """The gate and rescore name the file (rescore exits 1 with no number from it); a rerun recomputes that
    job (and only it), after which the records verify and rescore agrees again."""
    from harness.gate.baseline import GateInputError, snapshot_run

    with pytest.raises(GateInputError) as gate_refused:  # never gated on counts instead
        snapshot_run(run)
    assert str(gate_refused.value) == f"{path}: {reason}"
    code, out, err = _rescore(run, capsys)
    assert code == 1
    assert err == f"not rescored: {title}: {path}: {reason}\n"
    assert "DIFFERENT" not in out and out.endswith("2 of 2 metric(s) identical when rescored from the records\n")
    rerun = run_suite(suite, out=run, limit=LIMIT, progress=False, report=False)
    assert f"not reused: {path}: {reason}; recomputing {title}\n" in capsys.readouterr().err
    assert (rerun.ran, rerun.cached) == (1, 1) and not rerun.failed
    verify_records(path)  # written anew, and its digest is the one the store now holds
    assert _rescore(run, capsys)[:2] == (0, "4 of 4 metric(s) identical when rescored from the records\n")


def test_an_edited_record_value_is_refused_by_rescore_report_and_gate_and_recomputed(run_copy, capsys):
    from harness.report.analysis import suite_analysis

    suite, run, keys = run_copy
    path = _records(run, keys["resnet_digits"])
    lines = _lines(path)
    row = json.loads(lines[1])
    row["record"]["label"] = (row["record"]["label"] + 1) % 10  # one number changed; still valid JSON and gzip
    lines[1] = json.dumps(row, separators=(",", ":")) + "\n"
    path.write_bytes(gzip.compress("".join(lines).encode()))
    reason = "checksum mismatch: the records were changed after they were written"
    with pytest.raises(RecordsError) as refused:
        read_records(path)
    assert str(refused.value) == f"{path}: {reason}"
    # the report: no paired test from those records, and the refusal said where the test would be
    store = ResultStore(run / "results.sqlite")
    frame = store.frame()
    store.close()
    sections = dict(suite_analysis(frame, run, pairs=[["resnet_digits", "vit_digits"]]))
    assert "Matched pairs" not in sections and f"<li>{path}: {reason}</li>" in sections["Per-sample records refused"]
    assert "do not verify" in sections["Findings"]
    _assert_refused_then_recomputed(suite, run, path, reason, RESNET, capsys)


def test_a_truncated_gzip_is_refused_and_recomputed(run_copy, capsys):
    suite, run, keys = run_copy
    path = _records(run, keys["vit_digits"])
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    reason = ("truncated or corrupt gzip (Compressed file ended before the end-of-stream marker was reached); "
              "the records are incomplete")
    _assert_refused_then_recomputed(suite, run, path, reason, VIT, capsys)


def test_records_cut_short_and_recompressed_are_refused_and_recomputed(run_copy, capsys):
    suite, run, keys = run_copy
    path = _records(run, keys["resnet_digits"])
    lines = _lines(path)
    path.write_bytes(gzip.compress("".join(lines[:-3]).encode()))  # last records, sums and checksum dropped
    reason = f"truncated: no checksum line at the end (the records stop at line {len(lines) - 3})"
    _assert_refused_then_recomputed(suite, run, path, reason, RESNET, capsys)


def test_a_deleted_records_file_is_reported_missing_and_recomputed(run_copy, capsys):
    suite, run, keys = run_copy
    path = _records(run, keys["vit_digits"])
    path.unlink()
    reason = "missing (results.sqlite says the run wrote per-sample records for this job)"
    _assert_refused_then_recomputed(suite, run, path, reason, VIT, capsys)


def test_a_file_swapped_in_from_another_job_is_refused_and_recomputed(run_copy, capsys):
    suite, run, keys = run_copy
    path = _records(run, keys["resnet_digits"])
    shutil.copyfile(_records(run, keys["vit_digits"]), path)  # a valid file, of the other model
    reason = (f"holds the records of job {keys['vit_digits']}, not of job {keys['resnet_digits']} "
              "(a file swapped in from another job)")
    _assert_refused_then_recomputed(suite, run, path, reason, RESNET, capsys)


def test_a_regenerated_file_with_its_own_valid_checksum_is_caught_by_the_stored_digest(run_copy, capsys):
    suite, run, keys = run_copy
    key = keys["vit_digits"]
    path = _records(run, key)
    state = read_records(path)
    forged = EvalState({sid: {p: {**r, "correct": False} for p, r in passes.items()}
                        for sid, passes in state.records.items()}, state.sums)
    write_records(path, forged, job_key=key)  # the right job key and a checksum that matches its content
    reason = "sha256 differs from the one results.sqlite holds for this job (the file was replaced or regenerated)"
    _assert_refused_then_recomputed(suite, run, path, reason, VIT, capsys)


def test_records_written_before_checksums_are_unverified_and_regenerated(run_copy, capsys):
    suite, run, keys = run_copy
    path = _records(run, keys["resnet_digits"])
    lines = [json.loads(line) for line in _lines(path)]
    header = {k: v for k, v in lines[0].items() if k != "records_format"}
    old = [header, *lines[1:-1]]  # the previous format: no marker, no checksum line
    path.write_bytes(gzip.compress("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in old).encode()))
    reason = "unverified (written before checksums); rerun the suite to regenerate it"
    _assert_refused_then_recomputed(suite, run, path, reason, RESNET, capsys)


# --- partial state --------------------------------------------------------------------------------------------
def _edit_a_number(path: Path) -> None:
    """Change one label in a saved batch; the file stays valid JSON with the same sample ids."""
    saved = json.loads(path.read_text())
    sample_id = saved["ids"][0]
    record = saved["state"]["records"][sample_id]["main"]
    record["label"] = (record["label"] + 1) % 10
    path.write_text(json.dumps(saved, separators=(",", ":")))


def test_a_tampered_partial_batch_is_named_dropped_and_recomputed(tmp_path, write_suite, monkeypatch, one_thread):
    suite = write_suite(zoo_suite(["resnet_digits"]))
    spy = InferSpy(monkeypatch, stop_at=2)
    calls = spy.calls
    assert run_suite(suite, out=tmp_path / "out", batch_size=10, limit=30, progress=False, report=False).interrupted
    saved = sorted((tmp_path / "out" / "partial").rglob("batch_*.json"))
    assert [p.name for p in saved] == ["batch_000000.json", "batch_000001.json"]
    _edit_a_number(saved[1])
    calls.clear()
    spy.stop_at = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = run_suite(suite, out=tmp_path / "out", batch_size=10, limit=30, progress=False, report=False)
    assert sorted(calls) == [1, 2]  # batch 0 reused, the tampered batch 1 recomputed
    assert [str(w.message) for w in caught if "saved batch" in str(w.message)] == [
        f"{saved[1]}: saved batch fails its checksum (changed after it was saved); dropped and recomputed"]
    clean = run_suite(suite, out=tmp_path / "clean", batch_size=10, limit=30, progress=False, report=False)
    top1 = lambda outcome: outcome.frame.set_index("metric").loc["top1", "value"]  # noqa: E731
    assert not resumed.failed and top1(resumed) == top1(clean)


# --- end to end: torchrun, one rank killed, one saved batch tampered, a one-process rerun ----------------------
KILL_SUITE = {
    "name": "kill", "version": 1, "defaults": {"batch_size": 2, "seed": 0},
    "models": [{"name": "resnet_digits", "source": "zoo"}],
    "datasets": [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 24, "seed": 1}}],
    "tasks": [{"kind": "pgd", "params": {"eps": ["8/255"], "steps": 10, "random_start": False, "flags": False}}],
}
BATCHES = 12
# run_bench.py, except that every finished batch is saved at once (no 2-second flush interval) and rank 1 stops
# in its batch 7, so it is killed mid-run at a known point however fast the machine is
STALLING_BENCH = """
import os, sys, time
sys.path.insert(0, {repo!r})
import harness.evaluation.partial as partial
from harness.tasks.adversarial import AdversarialTask
partial.FLUSH_SECONDS = 0
infer = AdversarialTask.infer
def stalling(self, ctx, pass_, index, batch):
    if os.environ["RANK"] == "1" and index >= 7:
        time.sleep(600)
    return infer(self, ctx, pass_, index, batch)
AdversarialTask.infer = stalling
from harness.cli import main
sys.exit(main())
"""


def _rank_pids(launcher: int) -> dict[int, int]:
    """RANK -> pid of the worker processes torchrun (``launcher``) started."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    ranks, todo = {}, [launcher]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
                           if "=" in item)
            except OSError:
                continue
            if "RANK" in env and "LOCAL_RANK" in env:
                ranks[int(env["RANK"])] = pid
    return ranks


def _batch_index(path: Path) -> int:
    return int(path.stem.split("_")[1])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_rank_killed_then_a_rerun_reuses_only_batches_that_verify(tmp_path, monkeypatch, one_thread):
    from harness.tasks.adversarial import AdversarialTask

    suite = tmp_path / "kill.yaml"
    suite.write_text(yaml.safe_dump(KILL_SUITE, sort_keys=False))
    bench = tmp_path / "stalling_bench.py"
    bench.write_text(STALLING_BENCH.format(repo=str(REPO)))
    out = tmp_path / "out"
    launcher = subprocess.Popen(["torchrun", "--standalone", "--nproc_per_node=2", str(bench), "--suite", str(suite),
                                 "--out", str(out), "--no-progress"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while not {0, 5} <= {_batch_index(p) for p in (out / "partial").rglob("batch_*.json")}:
            assert launcher.poll() is None, launcher.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "rank 1 saved no batch"
            time.sleep(0.05)
        os.kill(_rank_pids(launcher.pid)[1], signal.SIGKILL)  # rank 1, in the middle of its batch 7
        launcher.wait(timeout=120)  # torchrun sees the dead rank and tears the other one down
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode != 0
    saved = sorted((out / "partial").rglob("batch_*.json"))
    intact = {_batch_index(p) for p in saved}
    assert {1, 3, 5} <= intact and not intact & {7, 9, 11}  # each rank saved its own batches; rank 1 stopped at 7
    tampered = saved[1]  # batch 1: saved by the killed rank
    _edit_a_number(tampered)
    intact.discard(_batch_index(tampered))

    calls: list[int] = []
    original = AdversarialTask.infer
    monkeypatch.setattr(AdversarialTask, "infer", lambda self, ctx, p, index, batch:
                        calls.append(index) or original(self, ctx, p, index, batch))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = run_suite(suite, out=out, progress=False, report=False)  # one process
    assert [str(w.message) for w in caught if "saved batch" in str(w.message)] == [
        f"{tampered}: saved batch fails its checksum (changed after it was saved); dropped and recomputed"]
    assert sorted(calls) == sorted(set(range(BATCHES)) - intact)  # the intact batches reused, the tampered one not
    assert _batch_index(tampered) in calls
    clean = run_suite(suite, out=tmp_path / "clean", progress=False, report=False)
    numbers = lambda outcome: {(r.metric, json.dumps(r.params, sort_keys=True)): (r.value, r.n)  # noqa: E731
                               for r in outcome.frame.itertuples()}
    assert not resumed.failed and numbers(resumed) == numbers(clean) and len(numbers(clean)) == 2
    assert read_records(out / "samples" / f"{resumed.frame['job_key'].iloc[0]}.jsonl.gz").records == \
        read_records(tmp_path / "clean" / "samples" / f"{clean.frame['job_key'].iloc[0]}.jsonl.gz").records
