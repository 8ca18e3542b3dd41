"""Each sanity flag fires on a model built to trip it and stays quiet on a zoo model."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from harness.data.base import SubsetSource
from harness.data.digits import DigitsSource
from harness.models.wrapper import PixelModel
from harness.robustness import flags
from harness.tasks.adversarial import PGDTask
from harness.loop import run_task
from harness.tasks.base import JobContext

N = 16


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def batch(resnet_digits):
    source = SubsetSource(DigitsSource("test"), list(range(N)), f"first {N}")
    ctx = JobContext(resnet_digits, source, torch.device("cpu"), N, 0, show_progress=False)
    return next(iter(ctx.batches()))


def variant(resnet_digits, net: nn.Module):
    """The resnet_digits model with its network replaced (normalisation kept, as for any loaded model)."""
    module = PixelModel(net, resnet_digits.preprocess.mean, resnet_digits.preprocess.std).eval()
    return dataclasses.replace(resnet_digits, module=module)


class Dropout(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.drop = net, nn.Dropout(0.5)

    def forward(self, x):
        return self.net(self.drop(x))


class Softmax(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).softmax(-1)


class Quantised(nn.Module):
    """Rounds its input to a coarse grid: the gradient through torch.round is zero (gradient masking)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 2) / 2)


def run_flags(model, tmp_path, eps: float = 8 / 255) -> dict[str, float]:
    task = PGDTask(PGDTask.Params(eps=[eps], steps=3, random_start=False, blackbox_n=N, blackbox_queries=60))
    source = SubsetSource(DigitsSource("test"), list(range(N)), f"first {N}")
    ctx = JobContext(model, source, torch.device("cpu"), 8, 0, show_progress=False)
    return {m.name: m.value for m in run_task(task, ctx)}


def test_a_zoo_model_raises_no_flag(resnet_digits, tmp_path):
    values = run_flags(resnet_digits, tmp_path)
    assert {k: v for k, v in values.items() if k.startswith("flag_")} == {
        "flag_nondeterministic": 0.0, "flag_probability_outputs": 0.0, "flag_masked_gradients": 0.0,
        "flag_blackbox_stronger": 0.0}
    assert values["robust_reliable"] == 1.0 and values["masked_gradient_share"] == 0.0


def test_dropout_left_in_train_mode_is_nondeterministic(resnet_digits, batch, tmp_path):
    model = variant(resnet_digits, Dropout(resnet_digits.module.net))
    model.module.net.drop.train()
    with torch.no_grad():
        first, second = model.module(batch.images), model.module(batch.images)
    assert flags.outputs_differ(first, second)
    with torch.no_grad():
        assert not flags.outputs_differ(resnet_digits.module(batch.images), resnet_digits.module(batch.images))
    values = run_flags(model, tmp_path)
    assert values["flag_nondeterministic"] == 1.0 and values["robust_reliable"] == 0.0


def test_softmax_outputs_look_like_probabilities(resnet_digits, batch, tmp_path):
    model = variant(resnet_digits, Softmax(resnet_digits.module.net))
    with torch.no_grad():
        assert flags.looks_like_probabilities(model.module(batch.images))
        assert not flags.looks_like_probabilities(resnet_digits.module(batch.images))
    values = run_flags(model, tmp_path)
    assert values["flag_probability_outputs"] == 1.0 and values["robust_reliable"] == 0.0


def test_quantised_input_masks_gradients_and_square_beats_pgd(resnet_digits, batch, tmp_path):
    model = variant(resnet_digits, Quantised(resnet_digits.module.net))
    assert flags.masked_gradient_count(model.module, batch.images, batch.labels) == N
    assert flags.masked_gradient_count(resnet_digits.module, batch.images, batch.labels) == 0
    values = run_flags(model, tmp_path, eps=0.3)
    assert values["flag_masked_gradients"] == 1.0 and values["masked_gradient_share"] == 1.0
    # PGD cannot move (zero gradient), Square needs no gradient and breaks some samples.
    assert values["flag_blackbox_stronger"] == 1.0 and values["robust_reliable"] == 0.0


def test_blackbox_comparison_allows_ties():
    assert not flags.blackbox_stronger(square_correct=10, whitebox_correct=10, n=16)
    assert flags.blackbox_stronger(square_correct=9, whitebox_correct=10, n=16)
