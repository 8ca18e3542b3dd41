"""Datasets by role (a task's ``roles:``): one job sweeps the evaluated dataset and its role datasets, each
role row names its role and dataset, the numbers equal a job on that dataset alone, and the validator refuses
roles a task does not take."""
from __future__ import annotations

import json

import pytest

from harness import run_suite
from harness.rescore import rescore
from harness.schema import SuiteError
from harness.suite import load_suite

DATASETS = [{"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 40, "seed": 3}},
            {"name": "digits-other", "kind": "digits", "split": "train", "subset": {"n": 30, "seed": 1}}]


def _suite(task: dict) -> dict:
    return {"name": "roles", "version": 1, "models": [{"name": "resnet_digits", "source": "zoo"}],
            "datasets": DATASETS, "tasks": [task]}


def _values(frame, **where) -> dict:
    rows = frame[frame["status"] == "ok"]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return {(r.metric, json.dumps(r.params, sort_keys=True)): (r.value, r.n) for r in rows.itertuples()}


def test_a_role_dataset_is_swept_in_the_same_job_and_scores_as_on_its_own(tmp_path, write_suite, one_thread):
    with_role = run_suite(write_suite(_suite({"kind": "classification", "params": {"topk": [1, 5]},
                                              "roles": {"shifted": ["digits-other"]}})),
                          out=tmp_path / "roles", progress=False)
    alone = run_suite(write_suite(_suite({"kind": "classification", "params": {"topk": [1, 5]}}), "alone.yaml"),
                      out=tmp_path / "alone", progress=False)
    assert set(with_role["dataset"]) == {"digits-test"}  # the role dataset is no job of its own
    assert with_role["job_key"].nunique() == 1
    got = _values(with_role)
    role = json.dumps({"dataset": "digits-other", "role": "shifted"}, sort_keys=True)
    assert got[("top1", role)] == _values(alone, dataset="digits-other")[("top1", "{}")]
    assert got[("top5", role)][1] == 30
    assert got[("top1", "{}")] == _values(alone, dataset="digits-test")[("top1", "{}")]
    provenance = json.loads(with_role.iloc[0]["provenance"])
    assert provenance["task"]["roles"] == {"shifted": ["digits-other"]}
    assert provenance["roles"]["shifted"][0]["dataset"]["dataset"] == "digits-other"
    checked, problems = rescore(tmp_path / "roles")
    assert not problems and len(checked) == 4 and all(row.equal for row in checked)


@pytest.mark.parametrize("task, message", [
    ({"kind": "pgd", "params": {"eps": [0.1]}, "roles": {"shifted": ["digits-other"]}},
     r"suite.yaml:\d+: tasks\[0\].roles.shifted: task pgd takes no dataset role 'shifted' \(roles it takes here: none\)"),
    ({"kind": "classification", "roles": {"ood": ["digits-other"]}},
     r"tasks\[0\].roles.ood: task classification takes no dataset role 'ood' \(roles it takes here: shifted\)"),
    ({"kind": "classification", "roles": {"shifted": ["imagenet-r"]}},
     r"tasks\[0\].roles.shifted: 'imagenet-r' is not a dataset of this suite"),
    ({"kind": "classification", "roles": {"shifted": []}}, r"expected a dataset name or a list of them"),
])
def test_the_validator_refuses_roles_a_task_does_not_take(write_suite, task, message):
    with pytest.raises(SuiteError, match=message):
        load_suite(str(write_suite(_suite(task))))
