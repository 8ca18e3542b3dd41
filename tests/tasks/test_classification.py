"""Classification: parity with a plain loop, batch-size invariance, Wilson intervals."""
from __future__ import annotations

import math

import pytest
import torch

from harness.data.digits import DigitsSource
from harness.metrics import wilson_interval
from harness.models.loaders import load_model
from harness import run_suite
from harness.specs import ModelSpec
from harness.evaluation.state import DuplicateSampleError
from harness.evaluation.topk import TopKEvaluator
from tests.conftest import zoo_suite
from tests.evaluating import outputs_for


def plain_topk(model_name: str) -> tuple[int, int, int]:
    """An independent loop: digits test images -> [0,1] tensors -> normalise by hand -> raw timm net."""
    from harness.zoo import DIGITS_MEAN, DIGITS_STD

    loaded = load_model(ModelSpec(name=model_name, source="zoo"))
    source = DigitsSource("test")
    images = torch.from_numpy(source.images).permute(0, 3, 1, 2).float() / 255
    labels = torch.from_numpy(source.labels)
    mean = torch.tensor(DIGITS_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(DIGITS_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = loaded.module.net((images - mean) / std)
    top5 = logits.topk(5, dim=1).indices
    top1 = int((top5[:, 0] == labels).sum())
    in_top5 = int((top5 == labels[:, None]).any(dim=1).sum())
    return top1, in_top5, len(labels)


@pytest.mark.parametrize("model_name", ["resnet_digits", "vit_digits"])
def test_harness_top1_top5_equal_a_plain_loop(tmp_path, write_suite, model_name):
    frame = run_suite(write_suite(zoo_suite([model_name])), out=tmp_path / "out", progress=False)
    values = frame.set_index("metric")
    top1, top5, n = plain_topk(model_name)
    assert values.loc["top1", "n"] == n == 450
    assert values.loc["top1", "value"] == top1 / n  # exact: both are counts over the same 450 images
    assert values.loc["top5", "value"] == top5 / n


def test_batch_size_does_not_change_a_number(tmp_path, write_suite):
    suite = write_suite(zoo_suite(["convnext_digits"]))
    numbers = []
    for batch_size in (1, 7, 450):
        frame = run_suite(suite, out=tmp_path / f"b{batch_size}", batch_size=batch_size, limit=60, progress=False)
        numbers.append(frame.sort_values("metric")[["metric", "value", "n"]].to_dict("records"))
    assert numbers[0] == numbers[1] == numbers[2]


def _batch(ids, labels):
    from types import SimpleNamespace

    return SimpleNamespace(ids=ids, labels=torch.tensor(labels))


def test_topk_evaluator_keeps_per_sample_records_and_merges():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.4, 0.35, 0.25]])
    ids, labels = ["a", "b", "c", "d"], [1, 1, 0, 2]
    evaluator = TopKEvaluator((1, 2))
    whole = evaluator.process(_batch(ids, labels), outputs_for(evaluator, logits, "main"))
    halves = evaluator.process(_batch(ids[:2], labels[:2]), outputs_for(evaluator, logits[:2], "main"))
    halves.merge(evaluator.process(_batch(ids[2:], labels[2:]), outputs_for(evaluator, logits[2:], "main")))
    assert whole.records == halves.records
    assert whole.records["b"]["main"] == {"label": 1, "topk": [0, 1], "correct": False}
    top1, top2 = evaluator.compute(halves)
    assert (top1.name, top1.value, top1.n) == ("top1", 0.25, 4)
    assert top2.value == 0.5
    with pytest.raises(DuplicateSampleError):
        halves.merge(evaluator.process(_batch(["a"], [1]), outputs_for(evaluator, logits[:1], "main")))  # a sample counted twice


def test_topk_larger_than_class_count_is_clamped():
    evaluator = TopKEvaluator((1, 5))
    state = evaluator.process(_batch(["x"], [0]), outputs_for(evaluator, torch.tensor([[0.0, 1.0, 2.0]]), "main"))
    top1, top5 = evaluator.compute(state)
    assert (top1.value, top5.value) == (0.0, 1.0)


def test_label_space_subset_restricts_predictions_to_the_datasets_classes():
    """ImageNet-A/R protocol (timm's --valid-labels): argmax over the dataset's classes only."""
    logits = torch.tensor([[5.0, 1.0, 2.0, 0.0], [0.0, 3.0, 9.0, 1.0]])
    evaluator = TopKEvaluator((1,), valid_classes=[1, 3])
    state = evaluator.process(_batch(["p", "q"], [1, 1]), outputs_for(evaluator, logits, "main"))
    assert [state.records[i]["main"]["topk"][0] for i in ("p", "q")] == [1, 1]
    assert evaluator.compute(state)[0].value == 1.0
    assert TopKEvaluator((1,)).compute(TopKEvaluator((1,)).process(_batch(["p", "q"], [1, 1]), outputs_for(TopKEvaluator((1,)), logits, "main")))[0].value == 0.0


@pytest.mark.parametrize("successes,n", [(81, 263), (449, 450), (3, 7), (1, 1000)])
def test_wilson_interval_matches_scipy(successes, n):
    from scipy.stats import binomtest

    reference = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(reference.low, abs=1e-9) and high == pytest.approx(reference.high, abs=1e-9)


def test_wilson_interval_edges():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(30, 30)[1] == 1.0
    for n in range(1, 200):  # the interval always contains the estimate
        for k in (0, 1, n // 2, n - 1, n):
            low, high = wilson_interval(k, n)
            assert low <= k / n <= high
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
