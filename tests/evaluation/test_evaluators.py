"""Evaluators attached to a task (suite ``evaluators:``): one forward pass feeds them all, their rows carry
their name, rescore and the gate find them, and the suite validator refuses what cannot work."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from harness import run_suite
from harness.data.base import take_sample
from harness.data.digits import DigitsSource
from harness.data.preprocess import Preprocess
from harness.evaluation.evaluator import Evaluator, Outputs
from harness.evaluation.state import EvalState
from harness.evaluation.topk import TopKEvaluator
from harness.loop import run_task
from harness.models.wrapper import LoadedModel, PixelModel
from harness.registry import EVALUATORS
from harness.rescore import rescore
from harness.schema import SuiteError
from harness.suite import load_suite
from harness.tasks.base import JobContext
from harness.tasks.classification import ClassificationTask
from tests.conftest import zoo_suite


def _counted_context(model) -> tuple[JobContext, list[int], torch.utils.hooks.RemovableHandle]:
    calls: list[int] = []
    module = model.module
    handle = module.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    source = take_sample(DigitsSource("test"), 50, 0, "test")
    return JobContext(model, source, torch.device("cpu"), 16, 0, show_progress=False), calls, handle


def test_an_attached_evaluator_costs_no_forward_pass(resnet_digits, one_thread):
    plain = ClassificationTask(ClassificationTask.Params(topk=[1, 5]))
    both = ClassificationTask(ClassificationTask.Params(topk=[1, 5]))
    both.attach("topk", TopKEvaluator.Params(ks=[2, 3]), "second")
    results = {}
    for name, task in (("plain", plain), ("both", both)):
        ctx, calls, handle = _counted_context(resnet_digits)
        try:
            results[name] = (run_task(task, ctx), list(calls))
        finally:
            handle.remove()
    (plain_metrics, plain_calls), (metrics, calls) = results["plain"], results["both"]
    assert calls == plain_calls == [16, 16, 16, 2]  # one forward per batch, attached evaluator or not
    own = [m for m in metrics if "evaluator" not in m.params]
    assert [(m.name, m.value, m.n) for m in own] == [(m.name, m.value, m.n) for m in plain_metrics]
    attached = {m.name: m for m in metrics if m.params.get("evaluator") == "second"}
    assert sorted(attached) == ["top2", "top3"] and attached["top2"].n == 50
    assert plain_metrics[0].value <= attached["top2"].value <= attached["top3"].value <= plain_metrics[1].value


def test_a_suite_attaches_evaluators_and_rescore_recomputes_them(tmp_path, write_suite, one_thread):
    suite = zoo_suite(["resnet_digits"])
    suite["tasks"][0]["evaluators"] = [{"kind": "topk", "name": "top3", "ks": [3]}]
    out = tmp_path / "out"
    frame = run_suite(write_suite(suite), out=out, limit=40, progress=False)
    rows = frame[frame["metric"] == "top3"]
    assert len(rows) == 1 and rows.iloc[0]["params"] == {"evaluator": "top3"} and rows.iloc[0]["n"] == 40
    checked, problems = rescore(out)
    assert not problems and checked and all(row.equal for row in checked)
    assert {row.metric for row in checked} >= {"top1", "top5", "top3"}


@pytest.mark.parametrize("entry, task, message", [
    ({"kind": "calibrate"}, "classification", r"suite.yaml:\d+: tasks\[0\].evaluators\[0\].kind: unknown evaluator "
                                              r"'calibrate' \(known: .*topk"),
    ({"kind": "topk", "ks": [0]}, "classification", r"suite.yaml:\d+: .*ks must list integers from 1 to 10"),
    ({"kind": "topk", "name": "a|b"}, "classification", r"name 'a\|b': give each evaluator"),
    ({"kind": "topk"}, "pgd", r"evaluators\[0\].kind: evaluator topk reads logits outputs; task pgd gives "
                              r"attack_outcomes"),
])
def test_the_validator_refuses_an_evaluator_that_cannot_work(write_suite, entry, task, message):
    suite = zoo_suite(["resnet_digits"])
    suite["tasks"] = [{"kind": task, "params": {"eps": [0.1]} if task == "pgd" else {"topk": [1]},
                       "evaluators": [entry]}]
    with pytest.raises(SuiteError, match=message):
        load_suite(str(write_suite(suite)))



@EVALUATORS.register("test_feature_echo")
class FeatureEchoEvaluator(Evaluator):
    """Keeps each batch's pixels, penultimate features and logits, so the test can hold them against timm."""

    needs = ("features",)
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    @dataclass
    class Params:
        def validate(self, where) -> None:
            pass

    @classmethod
    def attach(cls, params, meta) -> "FeatureEchoEvaluator":
        return cls()

    def process(self, batch, outputs: Outputs) -> EvalState:
        self.seen.append((batch.images.clone(), outputs["features"].clone(), outputs["logits"].clone()))
        return EvalState()

    def compute(self, state: EvalState) -> list:
        return []


def test_features_come_from_the_same_forward_as_the_logits_and_equal_timms(resnet_digits, one_thread, monkeypatch):
    net, trunk_calls = resnet_digits.module.net, []
    forward_features = net.forward_features
    monkeypatch.setattr(net, "forward_features", lambda x: trunk_calls.append(x.shape[0]) or forward_features(x))
    plain = ClassificationTask(ClassificationTask.Params(topk=[1, 5]))
    echoed = ClassificationTask(ClassificationTask.Params(topk=[1, 5]))
    echoed.attach("test_feature_echo", FeatureEchoEvaluator.Params(), "echo")
    FeatureEchoEvaluator.seen.clear()
    ctx, calls, handle = _counted_context(resnet_digits)
    try:
        plain_metrics = run_task(plain, ctx)
        assert calls == trunk_calls == [16, 16, 16, 2]  # timm's forward is forward_head(forward_features(x))
        calls.clear(), trunk_calls.clear()
        metrics = run_task(echoed, ctx)
    finally:
        handle.remove()
    assert trunk_calls == [16, 16, 16, 2] and calls == []  # one trunk pass per batch feeds both evaluators
    assert [(m.name, m.value, m.n) for m in metrics] == [(m.name, m.value, m.n) for m in plain_metrics]
    assert [len(images) for images, _, _ in FeatureEchoEvaluator.seen] == [16, 16, 16, 2]
    for images, features, logits in FeatureEchoEvaluator.seen:
        with torch.inference_mode():
            normalised = resnet_digits.module.normalise(images)
            expected_features = net.forward_head(forward_features(normalised), pre_logits=True)
            expected_logits = net(normalised)
        assert features.shape == (len(images), net.num_features) and features.abs().sum() > 0
        torch.testing.assert_close(features, expected_features, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-6)


def test_a_model_without_a_trunk_head_split_says_it_has_no_features(one_thread):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    model = LoadedModel("flat", "torchvision", "flat", "cnn", PixelModel(net, (0.5,) * 3, (0.5,) * 3),
                        Preprocess(input_size=(3, 8, 8)), 10, "random-init")
    task = ClassificationTask(ClassificationTask.Params(topk=[1]))
    task.attach("test_feature_echo", FeatureEchoEvaluator.Params(), "echo")
    ctx, _, handle = _counted_context(model)
    handle.remove()
    with pytest.raises(ValueError, match=r"^model flat gives no penultimate features \(its network has no "
                                         r"timm-style forward_features/forward_head\)"):
        run_task(task, ctx)
