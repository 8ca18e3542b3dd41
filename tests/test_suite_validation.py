"""Bad suites fail before anything runs, with one line naming file, line and field, and exit code 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.schema import SuiteError
from harness.suite import load_suite

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
name: t
version: 1
models:
  - {name: resnet_digits, source: zoo}
datasets:
  - {name: d, kind: digits, split: test}
tasks:
  - kind: classification
    params: {topk: [1, 5]}
"""


@pytest.mark.parametrize("old,new,line,field,words", [
    ("version: 1\n", "version: 1\nmodles: []\n", 3, "modles", "unknown key"),
    ("params: {topk: [1, 5]}", "params: {topk: [1, 5], top: 3}", 9, "tasks[0].params.top", "unknown key"),
    ("params: {topk: [1, 5]}", "params: {topk: five}", 9, "tasks[0].params.topk[0]", "expected an integer"),
    ("{name: resnet_digits, source: zoo}", "{name: resnet_digits, source: zoo, family: cnnn}", 4,
     "models[0].family", "must be one of"),
    ("{name: resnet_digits, source: zoo}", "{name: resnot_digits, source: zoo}", 4, "models[0].name",
     "unknown zoo model"),
    ("{name: resnet_digits, source: zoo}", "{name: resnet5O, source: timm}", 4, "models[0].name",
     "unknown timm architecture"),
    ("kind: digits", "kind: digitz", 6, "datasets[0].kind", "unknown dataset kind"),
    ("kind: classification", "kind: clasification", 8, "tasks[0].kind", "unknown task"),
    ("{name: resnet_digits, source: zoo}", "{name: r, source: checkpoint, arch: resnet18, checkpoint: nope.pt}",
     4, "models[0].checkpoint", "no such file"),
    ("split: test}", "split: test, root: /no/such/dir}", 6, "datasets[0].root", "no such directory"),
    ("name: t\n", "", 1, "<suite>", "missing required key 'name'"),
    ("  - {name: d, kind: digits, split: test}\n", "  - {name: d, kind: digits, subset: {n: 5, ids: x.txt}}\n", 6,
     "datasets[0].subset", "exactly one of"),
])
def test_bad_suite_names_file_line_and_field(write_suite, old, new, line, field, words):
    assert old in GOOD
    path = write_suite(GOOD.replace(old, new, 1))
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {field}: "), message
    assert words in message and "\n" not in message


def test_invalid_yaml_reports_its_line(write_suite):
    path = write_suite(GOOD.replace("tasks:", "tasks: [", 1))
    with pytest.raises(SuiteError, match=rf"^{path}:\d+: invalid YAML"):
        load_suite(str(path))


def test_unknown_suite_name_lists_known_suites():
    with pytest.raises(SuiteError, match="no such suite.*classification"):
        load_suite("no-such-suite")


def test_fractions_are_accepted_for_numbers():
    from harness.schema import Where, parse_number

    where = Where(Path("s.yaml"), 3, "eps")
    assert parse_number("8/255", where) == 8 / 255
    assert parse_number(0.5, where) == 0.5
    with pytest.raises(SuiteError, match="s.yaml:3: eps: expected a number"):
        parse_number("eight", where)


def test_cli_bad_suite_exits_2_with_one_line_and_no_traceback(write_suite, tmp_path):
    path = write_suite(GOOD.replace("kind: digits", "kind: digitz"))
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--suite", str(path), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"{path}:6: datasets[0].kind: unknown dataset kind 'digitz'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


def test_every_shipped_suite_validates():
    for path in sorted((REPO / "suites").glob("*.yaml")):
        suite = load_suite(str(path), check_files=False)
        assert suite.spec.models and suite.spec.tasks, path
