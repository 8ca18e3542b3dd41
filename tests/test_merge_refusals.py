"""Bad input to ``visionbench merge``: each case is refused with one line naming the file and the field, and
the output folder keeps what it held (or is not created). Shards come from one real sharded run of the
embedded zoo on digits; the other inputs are copies of them with one fact changed in their store."""
from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from harness.cli import main

SUITE = {
    "name": "mergetest", "version": 1,
    "defaults": {"batch_size": 64, "seed": 0, "device": "cpu", "workers": 0},
    "models": [{"name": "resnet_digits", "source": "zoo"}, {"name": "vit_digits", "source": "zoo"}],
    # two datasets: each model has a job in both shards (jobs are dealt model by model)
    "datasets": [{"name": "digits-a", "kind": "digits", "split": "test", "subset": {"n": 40, "seed": 0}},
                 {"name": "digits-b", "kind": "digits", "split": "test", "subset": {"n": 40, "seed": 1}}],
    "tasks": [{"kind": "classification", "params": {"topk": [1, 5]}}],
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory, one_thread_module) -> Path:
    """``s0`` and ``s1``: the suite run as ``--shard 0/2`` and ``--shard 1/2`` (2 jobs each). Read-only."""
    root = tmp_path_factory.mktemp("shards")
    suite = root / "mergetest.yaml"
    suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
    for index in (0, 1):
        assert main(["--suite", str(suite), "--shard", f"{index}/2", "--out", str(root / f"s{index}"),
                     "--no-progress"]) == 0
    return root


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under ``folder`` with its bytes (None when the folder does not exist)."""
    if not folder.exists():
        return None
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def variant(shards: Path, tmp_path: Path, name: str, *sql: str, base: str = "s1") -> Path:
    """A copy of shard ``base`` with ``sql`` applied to its store."""
    folder = tmp_path / name
    shutil.copytree(shards / base, folder)
    with closing(sqlite3.connect(folder / "results.sqlite")) as conn:
        for statement in sql:
            conn.execute(statement)
        conn.commit()
    return folder


def merge(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["merge", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, *fragments: str) -> str:
    """Exit 2 and exactly one line on stderr, an error (no traceback) holding every fragment."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in line, line
    assert line.endswith("nothing merged"), line
    return line


@pytest.fixture
def partial_out(shards, tmp_path, capsys) -> tuple[Path, dict[str, bytes]]:
    """An output folder already holding shard 0 (merged with --allow-partial), and its files."""
    out = tmp_path / "out"
    code, _, _ = merge(capsys, out, shards / "s0", "--allow-partial")
    assert code == 0
    return out, snapshot(out)


# --- an incomplete set -----------------------------------------------------------------------------------------
def test_a_missing_shard_is_refused_unless_allowed_and_the_partial_merge_says_so(shards, tmp_path, capsys):
    out = tmp_path / "out"
    before = snapshot(shards / "s0")
    code, _, err = merge(capsys, out, shards / "s0")
    line = assert_refused(code, err, "shard 1/2 missing", f"0/2 from {shards / 's0' / 'results.sqlite'}",
                          "--allow-partial")
    print(line)
    assert not out.exists()  # a refused merge creates nothing
    code, stdout, err = merge(capsys, out, shards / "s0", "--allow-partial")
    assert code == 0
    assert f"{out / 'results.sqlite'}: shards 0/2 (PARTIAL: shard 1/2 missing)" in stdout
    assert "warning: partial merge (--allow-partial): shard 1/2 missing" in err
    code, stdout, _ = merge(capsys, out, shards / "s1")  # the missing shard completes the set
    assert code == 0
    assert "(shard 1/2): 2 job(s) merged" in stdout and "shards 0/2, 1/2 (complete)" in stdout
    assert snapshot(shards / "s0") == before  # inputs are only read


def test_a_shard_that_has_not_finished_is_refused(shards, tmp_path, capsys, partial_out):
    running = variant(shards, tmp_path, "s1-running", "UPDATE runs SET finished_at = NULL")
    out, before = partial_out
    code, _, err = merge(capsys, out, running)
    print(assert_refused(code, err, f"{running / 'results.sqlite'}: runs.finished_at: shard 1/2 has not finished "
                                    "(still running, or killed)", "--allow-partial"))
    assert snapshot(out) == before


def test_a_partial_merge_with_a_report_is_flagged_in_the_report(shards, tmp_path, capsys):
    suite = tmp_path / "mergetest.yaml"
    suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
    code, _, _ = merge(capsys, tmp_path / "out", shards / "s1", "--allow-partial", "--suite", suite)
    assert code == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Partial merge" in page and "PARTIAL: shard 0/2 missing" in page


# --- inputs that do not belong together -----------------------------------------------------------------------
@pytest.mark.parametrize("name, sql, fragments", [
    ("suite", ["UPDATE jobs SET suite = 'other'", "UPDATE runs SET suite = 'other'"],
     ["suite: 'other' differs from 'mergetest' in", "(shards of different suites)"]),
    ("suite_hash", ["UPDATE jobs SET suite_hash = '0123456789abcdef'",
                    "UPDATE runs SET suite_hash = '0123456789abcdef'"],
     ["suite_hash: '0123456789abcdef' differs from", "the suite's configuration differs"]),
    ("harness_version", ["UPDATE jobs SET harness_version = '9.9.9'", "UPDATE runs SET harness_version = '9.9.9'"],
     ["harness_version: '9.9.9' differs from", "(different harness versions)"]),
    ("git_commit", ["UPDATE jobs SET git_commit = '" + "f" * 40 + "'",
                    "UPDATE runs SET git_commit = '" + "f" * 40 + "'"],
     ["git_commit: ffffffffffff… differs from", "(different harness code)"]),
    ("weights", ["UPDATE jobs SET weights_sha256 = '" + "e" * 64 + "' WHERE model = 'resnet_digits'"],
     ["weights_sha256 of model resnet_digits: eeeeeeeeeeee… differs from",
      "(different weights under one model name)"]),
])
def test_inputs_of_another_suite_harness_or_weights_are_refused(shards, tmp_path, capsys, partial_out, name, sql,
                                                                 fragments):
    other = variant(shards, tmp_path, f"s1-{name}", *sql)
    for out, before in ((tmp_path / "fresh", None), partial_out):  # into a new folder, and into one with shard 0
        code, _, err = merge(capsys, out, shards / "s0", other) if before is None else merge(capsys, out, other)
        line = assert_refused(code, err, f"{other / 'results.sqlite'}: ", *fragments)
        print(line)
        assert snapshot(out) == before  # nothing finished is lost, nothing half-merged is added


# --- overlapping inputs ---------------------------------------------------------------------------------------
def test_the_same_job_with_other_numbers_is_refused(shards, tmp_path, capsys, partial_out):
    changed = variant(shards, tmp_path, "s1-changed",
                      "UPDATE results SET value = 0.5 WHERE metric = 'top1' AND job_id = (SELECT min(id) FROM jobs)")
    out, before = partial_out
    code, _, err = merge(capsys, out, shards / "s1", changed)
    line = assert_refused(code, err, f"{changed / 'results.sqlite'}: job ",
                          "(resnet_digits | digits-b | classification): top1 = 0.5 (n 40), but 1 (n 40) in "
                          f"{shards / 's1' / 'results.sqlite'} (overlapping inputs disagree)")
    print(line)
    assert snapshot(out) == before


def test_the_same_shard_from_another_run_is_refused(shards, tmp_path, capsys, partial_out):
    rerun = variant(shards, tmp_path, "s0-rerun", "UPDATE runs SET run_id = 'another-run'",
                    "UPDATE jobs SET run_id = 'another-run'", base="s0")
    out, before = partial_out
    code, _, err = merge(capsys, out, rerun, shards / "s1")
    line = assert_refused(code, err, f"{rerun / 'results.sqlite'}: shard: 0/2 is also in {out / 'results.sqlite'}",
                          "from another run", "the same shard twice")
    print(line)
    assert snapshot(out) == before


def test_shards_of_different_fan_outs_are_refused(shards, tmp_path, capsys):
    third = variant(shards, tmp_path, "s1-of-3", "UPDATE runs SET shard = '1/3'")
    code, _, err = merge(capsys, tmp_path / "out", shards / "s0", third)
    line = assert_refused(code, err, f"{third / 'results.sqlite'}: shard: 1/3 does not match 0/2 in",
                          "(shards of different fan-outs)")
    print(line)
    assert not (tmp_path / "out").exists()


def test_the_same_input_twice_is_refused(shards, tmp_path, capsys):
    code, _, err = merge(capsys, tmp_path / "out", shards / "s0", shards / "s1", shards / "s1" / "results.sqlite")
    print(assert_refused(code, err, f"{shards / 's1' / 'results.sqlite'}: given twice"))
    assert not (tmp_path / "out").exists()


def test_a_shard_merged_twice_adds_nothing_and_says_so(shards, tmp_path, capsys):
    out = tmp_path / "out"
    assert merge(capsys, out, shards / "s0", shards / "s1")[0] == 0
    before = snapshot(out)
    code, stdout, err = merge(capsys, out, shards / "s0")
    assert code == 0 and err == ""
    assert (f"{shards / 's0' / 'results.sqlite'} (shard 0/2): already merged: its 2 job row(s) are in "
            f"{out / 'results.sqlite'}, nothing added") in stdout
    assert f"0 job(s) merged into {out / 'results.sqlite'}: shards 0/2, 1/2 (complete)" in stdout
    assert snapshot(out) == before  # not a byte written


# --- inputs that are not stores of this harness ---------------------------------------------------------------
def test_a_file_that_is_not_a_store_and_a_store_of_another_schema_are_refused(shards, tmp_path, capsys, partial_out):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "results.sqlite").write_bytes(b"this is not a database\n" * 100)
    old = variant(shards, tmp_path, "s1-old", "PRAGMA user_version = 1")
    cut = variant(shards, tmp_path, "s1-cut")
    with open(cut / "results.sqlite", "r+b") as handle:  # a copy cut short
        handle.truncate((cut / "results.sqlite").stat().st_size // 2)
    out, before = partial_out
    code, _, err = merge(capsys, out, junk)
    print(assert_refused(code, err, f"{junk / 'results.sqlite'}: not a results store (file is not a database)"))
    code, _, err = merge(capsys, out, cut)
    print(assert_refused(code, err, f"{cut / 'results.sqlite'}: ", "malformed"))
    code, _, err = merge(capsys, out, old)
    print(assert_refused(code, err, f"{old / 'results.sqlite'}: user_version: schema 1, this harness reads schema 2"))
    assert snapshot(out) == before
    assert (old / "results.sqlite").is_file()  # not moved aside: the input is only read


def test_a_report_suite_other_than_the_inputs_is_refused(shards, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**SUITE, "name": "other"}, sort_keys=False))
    code, _, err = merge(capsys, tmp_path / "out", shards / "s0", shards / "s1", "--suite", other)
    print(assert_refused(code, err, f"{shards / 's0' / 'results.sqlite'}: suite: 'mergetest', but --suite is 'other'"))
    assert not (tmp_path / "out").exists()
