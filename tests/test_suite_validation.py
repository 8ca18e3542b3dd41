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
    assert_one_line_error(write_suite, old, new, line, field, words)


def assert_one_line_error(write_suite, old: str, new: str, line: int, field: str, words: str) -> None:
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


@pytest.mark.parametrize("old,new,line,field,words", [
    ("version: 1\n", "version: 1\ndefaults: {batch_size: 0}\n", 3, "defaults.batch_size", "must be positive"),
    ("version: 1\n", "version: 1\ndefaults:\n  seed: 1\n  batch_size: -4\n", 5, "defaults.batch_size",
     "must be positive"),
    ("version: 1\n", "version: 1\ndefaults: {workers: -1}\n", 3, "defaults.workers", "non-negative"),
    ("version: 1\n", "version: 1\ndefaults: {device: tpu}\n", 3, "defaults.device", "unknown device 'tpu'"),
    ("name: t\n", "name: ../../x\n", 1, "name", "not a valid suite name"),
    ("name: t\n", "name: a/b\n", 1, "name", "no path separators"),
    ("{name: resnet_digits, source: zoo}", "{name: resnet_digits, source: timm, source: zoo}", 4, "source",
     "duplicate key"),
    ("    params: {topk: [1, 5]}\n", "    params: {topk: [1, 5]}\n    kind: pgd\n", 10, "kind", "duplicate key"),
])
def test_bad_defaults_names_and_duplicate_keys(write_suite, old, new, line, field, words):
    assert_one_line_error(write_suite, old, new, line, field, words)


def test_cli_zero_batch_size_in_suite_exits_2_before_anything_runs(write_suite, tmp_path):
    path = write_suite(GOOD.replace("version: 1\n", "version: 1\ndefaults: {batch_size: 0}\n"))
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--suite", str(path), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: {path}:3: defaults.batch_size: must be positive, got 0"
    assert not (tmp_path / "out").exists()


def test_suite_that_is_not_utf8_is_one_line_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("name: t", "name: t\ndescription: caf\xe9").encode("latin-1"))
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    assert str(info.value).startswith(f"{path}: not a UTF-8 text file") and "\n" not in str(info.value)


def test_output_dir_for_stays_inside_reports():
    from harness.suite import REPORTS_DIR, output_dir_for

    assert output_dir_for("robustness-cifar10") == REPORTS_DIR / "robustness-cifar10"
    for bad in ("../../x", "a/b", "..", ".", "", "/abs", "a\\b"):
        with pytest.raises(SuiteError, match="cannot name an output folder"):
            output_dir_for(bad)


def test_relative_paths_are_relative_to_the_suite_file_whatever_the_cwd(tmp_path, monkeypatch, mini_imagenet):
    """One rule: paths written in a suite are relative to its folder; --data-root is relative to the cwd."""
    import shutil

    folder = tmp_path / "project" / "suites"
    (folder / "maps").mkdir(parents=True)
    shutil.copytree(mini_imagenet / "val", tmp_path / "project" / "data" / "val")
    (folder / "maps" / "m.txt").write_text("".join(f"{wnid} {i}\n" for i, wnid in enumerate(sorted(
        p.name for p in (mini_imagenet / "val").iterdir()))))
    text = GOOD.replace("version: 1\n", "version: 1\ndefaults: {data_root: ../data}\n").replace(
        "{name: d, kind: digits, split: test}",
        "{name: d, kind: imagefolder, root: '{data_root}/val', class_map: maps/m.txt, num_classes: 10}")
    (folder / "s.yaml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (elsewhere, folder, tmp_path):
        monkeypatch.chdir(cwd)
        data = load_suite(str(folder / "s.yaml")).spec.datasets[0]
        assert Path(data.root) == (tmp_path / "project" / "data" / "val").resolve()
        assert Path(data.class_map) == (folder / "maps" / "m.txt").resolve()
    monkeypatch.chdir(tmp_path / "project")
    data = load_suite(str(folder / "s.yaml"), data_root="data").spec.datasets[0]  # a command-line path
    assert Path(data.root) == (tmp_path / "project" / "data" / "val").resolve()


CLASSES = """\
name: t
version: 1
models:
  - {name: resnet_digits, source: zoo}
  - {name: r18, source: timm, arch: resnet18}
datasets:
  - {name: digits, kind: digits}
  - {name: folder, kind: imagefolder, root: ROOT}
tasks:
  - kind: classification
    models: [MODEL]
    datasets: [DATA]
"""


@pytest.mark.parametrize("model,data,problem", [
    ("resnet_digits", "digits", None),
    ("r18", "digits", "models[1].name: model 'r18' has 1000 classes but dataset 'digits' needs 10 (kind digits"),
    ("resnet_digits", "folder", "models[0].name: model 'resnet_digits' has 10 classes but dataset 'folder' needs 4 "
                                "(4 class folders"),
])
def test_class_count_mismatch_is_a_suite_error(write_suite, mini_imagenet, model, data, problem):
    path = write_suite(CLASSES.replace("ROOT", str(mini_imagenet / "val")).replace("MODEL", model)
                       .replace("DATA", data))
    if problem is None:
        load_suite(str(path))
        return
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    assert str(info.value).startswith(f"{path}:") and problem in str(info.value), info.value


def test_class_counts_come_from_num_classes_class_maps_and_pretrained_cfg(write_suite, mini_imagenet, tmp_path):
    from harness.class_counts import check_class_counts

    base = CLASSES.replace("ROOT", str(mini_imagenet / "val")).replace("MODEL", "r18").replace("DATA", "folder")
    with_map = base.replace("root: " + str(mini_imagenet / "val"), "root: " + str(mini_imagenet / "val")
                            + ", class_map: " + str(REPO / "suites/maps/imagenet1k_wnids.txt"))
    load_suite(str(write_suite(with_map)))  # labels are ImageNet-1k indices: a 1000-class model fits
    path = write_suite(base.replace("{name: r18, source: timm, arch: resnet18}",
                                    "{name: r18, source: timm, arch: resnet18, num_classes: 4}"))
    load_suite(str(path))
    in21k = write_suite(with_map.replace("arch: resnet18}", "arch: vit_tiny_patch16_224, pretrained_cfg: augreg_in21k}")
                        .replace("imagenet1k_wnids.txt", "imagenet1k_wnids.txt, num_classes: 1000"))
    with pytest.raises(SuiteError, match="has 21843 classes but dataset 'folder' needs 1000"):
        load_suite(str(in21k))
    unchecked = load_suite(str(in21k), check_files=False)  # no file checks: the runner calls it itself
    with pytest.raises(SuiteError, match="21843 classes"):
        check_class_counts(unchecked)


def test_latency_tasks_need_no_matching_class_counts():
    load_suite("latency")  # 1000-class timm models timed on digits: no labels involved


def test_unknown_pretrained_cfg_is_a_suite_error(write_suite):
    path = write_suite(GOOD.replace("{name: resnet_digits, source: zoo}",
                                    "{name: r, source: timm, arch: resnet18, pretrained_cfg: no_such_tag}"))
    with pytest.raises(SuiteError, match=r":4: models\[0\]\.pretrained_cfg: timm has no pretrained config "
                                         r"'resnet18\.no_such_tag'"):
        load_suite(str(path))


def test_suites_resembling_robustbench_say_so_and_list_the_differences():
    from harness.suite import list_suites

    for path in sorted((REPO / "suites").glob("*.yaml")):
        description = " ".join(load_suite(str(path), check_files=False).spec.description.split())
        if "RobustBench" not in description:
            continue
        assert "RobustBench-like" in description and "not RobustBench's protocol" in description, path
        assert "Differences from RobustBench" in description and "(1)" in description and "(2)" in description, path
        assert "RobustBench's CIFAR-10 protocol" not in description and "RobustBench's ImageNet protocol" not in description
    listed = dict(list_suites())
    assert listed["robustness-cifar10"].startswith("RobustBench-like CIFAR-10 evaluation")
    assert all("\n" not in line and len(line) < 400 for line in listed.values())
