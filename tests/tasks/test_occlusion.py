"""The occlusion task: parity with classification at fraction 0, the same cells for every model whatever its
resolution, and the curve a model that reads a single patch must give (exact hypergeometric expectations)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data.base import ImageSource, SubsetSource
from harness.data.digits import DigitsSource
from harness.data.preprocess import Preprocess
from harness.evaluation.samples import Sample
from harness.loop import run_task
from harness.models.wrapper import LoadedModel, PixelModel
from harness.robustness import occlusion
from harness.schema import Where, build
from harness.tasks.base import JobContext
from harness.tasks.classification import ClassificationTask
from harness.tasks.occlusion import OcclusionEvaluator, OcclusionTask, curve_weights

FRACTIONS = [0.1, 0.25, 0.5, 0.75, 0.9]


def task(**params) -> OcclusionTask:
    return OcclusionTask(build(OcclusionTask.Params, params, Where("<test>", 0, "occlusion")))


def loaded(name: str, net: torch.nn.Module, size: int = 32) -> LoadedModel:
    return LoadedModel(name=name, source="test", arch=name, family="cnn", module=PixelModel(net, (0.0,) * 3, (1.0,) * 3),
                       preprocess=Preprocess((3, size, size), "nearest", crop_pct=1.0), num_classes=10, weights="none")


def metric(metrics, name, **params):
    return next(m for m in metrics if m.name == name and all(m.params.get(k) == v for k, v in params.items()))


# --- fraction 0 is the classification task ---------------------------------------------------------------------
def test_clean_accuracy_equals_the_classification_jobs_top1_on_the_same_samples(one_thread):
    import timm

    torch.manual_seed(0)  # a random-init network: about one in ten right, so the parity is not 1.0 == 1.0
    net = timm.create_model("test_resnet", num_classes=10).eval()
    model = loaded("random_resnet", net)
    source = SubsetSource(DigitsSource("test"), list(range(0, 450, 3)), "every third")
    ctx = JobContext(model, source, torch.device("cpu"), 32, 0, show_progress=False)
    top1 = metric(run_task(ClassificationTask(build(ClassificationTask.Params, {"topk": [1]},
                                                    Where("<test>", 0, "c"))), ctx), "top1")
    occluded = run_task(task(variants=["random"], fractions=[0.5], patch_size=4, reference_size=32), ctx)
    clean = metric(occluded, "clean_acc")
    assert clean.n == top1.n == 150
    assert 0.02 < top1.value < 0.5
    assert clean.value == top1.value


# --- pairing: cells mean the same region at every resolution --------------------------------------------------
class Recorder(torch.nn.Module):
    """Logs every input it is given (a model stand-in whose predictions do not matter here)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return torch.zeros(len(x), 10)


@pytest.mark.parametrize("variant", ["random", "offset"])
def test_every_model_loses_the_same_cells_at_a_sample_fraction_and_seed_whatever_its_input_size(variant):
    source = SubsetSource(DigitsSource("test"), [5, 17, 40, 41], "four")
    inputs = {}
    for size in (32, 64):
        recorder = Recorder()
        ctx = JobContext(loaded(f"m{size}", recorder, size), source, torch.device("cpu"), 4, 7, show_progress=False)
        run_task(task(variants=[variant], fractions=[0.3, 0.6], patch_size=4, reference_size=32, fill="noise"), ctx)
        clean, *occluded = recorder.seen
        inputs[size] = [(x != clean).any(1) for x in occluded]  # where each fraction changed the image
    for small, large in zip(inputs[32], inputs[64]):
        upsampled = torch.nn.functional.interpolate(small[:, None].float(), scale_factor=2, mode="nearest")[:, 0] > 0
        # noise can equal a pixel by chance only with probability ~0; a dropped cell differs almost everywhere
        assert (upsampled ^ large).float().mean() < 0.01
    dropped = [m.float().mean().item() for m in inputs[32]]
    assert dropped[0] == pytest.approx(occlusion.dropped_count(0.3, 64) / 64, abs=0.01)
    assert dropped[1] == pytest.approx(occlusion.dropped_count(0.6, 64) / 64, abs=0.01)
    # a second run with another seed drops other cells
    recorder = Recorder()
    ctx = JobContext(loaded("m", recorder), source, torch.device("cpu"), 4, 8, show_progress=False)
    run_task(task(variants=[variant], fractions=[0.3, 0.6], patch_size=4, reference_size=32, fill="noise"), ctx)
    assert not torch.equal((recorder.seen[1] != recorder.seen[0]).any(1), inputs[32][0])


def test_the_offset_grid_is_the_aligned_one_shifted_by_half_a_cell_and_every_cell_keeps_its_area():
    aligned, offset = occlusion.cell_masks(32, 32, 8), occlusion.cell_masks(32, 32, 8, offset=True)
    assert aligned.sum((1, 2)).tolist() == offset.sum((1, 2)).tolist() == [16] * 64
    assert (aligned.sum(0) == 1).all() and (offset.sum(0) == 1).all()  # each a partition of the image
    assert torch.equal(offset[9], aligned[9].roll((2, 2), (0, 1)))
    # an interior aligned cell overlaps exactly four offset cells, a quarter each
    overlaps = (offset & aligned[27]).sum((1, 2))
    assert sorted(overlaps[overlaps > 0].tolist()) == [4, 4, 4, 4]


# --- a model that reads one patch -------------------------------------------------------------------------------
class GreyLevels(ImageSource):
    """Uniform grey images whose level says the class (1..9): every patch carries the label."""

    kind = "grey-levels"

    def __init__(self, n: int) -> None:
        self.name, self.split, self.class_names = "grey", "test", [str(c) for c in range(10)]
        self.labels = [1 + i % 9 for i in range(n)]

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> Sample:
        level = round(255 * (self.labels[index] + 1) / 11)
        return Sample(self.sample_id(index), Image.new("RGB", (32, 32), (level,) * 3), self.labels[index])


class OnePatch(torch.nn.Module):
    """Reads aligned cell (row 3, col 4) of an 8 x 8 grid only: the class from its grey level when every pixel
    is there, class 0 (never a label) when any pixel of it was dropped to 0."""

    def forward(self, x):
        patch = x[:, 0, 12:16, 16:20]
        level = (patch.mean((1, 2)) * 11 - 1).round().long().clamp(0, 9)
        level[patch.amin((1, 2)) < 1 / 22] = 0
        return torch.nn.functional.one_hot(level, 10).float()


def keep_probability(total: int, dropped: int, covering: int) -> float:
    """P(none of ``covering`` given cells is among ``dropped`` drawn without replacement from ``total``)."""
    return math.comb(total - covering, dropped) / math.comb(total, dropped)


def test_a_model_that_reads_one_patch_gives_the_hypergeometric_curve(one_thread):
    n = 600
    ctx = JobContext(loaded("one_patch", OnePatch()), GreyLevels(n), torch.device("cpu"), 100, 0, show_progress=False)
    metrics = run_task(task(variants=["random", "offset", "pixels"], fractions=FRACTIONS, patch_size=4,
                            reference_size=32), ctx)
    assert metric(metrics, "clean_acc").value == 1.0
    # the patch survives aligned drops with P = 1 - m/64; an offset grid cuts it into 4 quarters of 4 offset cells,
    # all of which must survive; pixel masking keeps all its 16 pixels with P = C(1024-16, m) / C(1024, m)
    expected = {"random": [keep_probability(64, occlusion.dropped_count(f, 64), 1) for f in FRACTIONS],
                "offset": [keep_probability(64, occlusion.dropped_count(f, 64), 4) for f in FRACTIONS],
                "pixels": [keep_probability(1024, occlusion.dropped_count(f, 1024), 16) for f in FRACTIONS]}
    for variant, probabilities in expected.items():
        for fraction, p in zip(FRACTIONS, probabilities):
            measured = metric(metrics, "occlusion_acc", variant=variant, fraction=fraction).value
            assert abs(measured - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-9, (variant, fraction, measured, p)
        auc = float(curve_weights(FRACTIONS) @ np.array([1.0, *probabilities]))
        assert metric(metrics, "occlusion_auc", variant=variant).value == pytest.approx(auc, abs=0.04)
    assert metric(metrics, "occlusion_auc", variant="offset").value < metric(metrics, "occlusion_auc",
                                                                              variant="random").value


def test_auc_is_the_trapezoid_through_clean_accuracy_and_the_gate_statistic_reproduces_it():
    evaluator = OcclusionEvaluator(["random"], [0.5, 1.0])
    records = [{"label": 1, "clean": True, "correct": {"random": [True, False]}},
               {"label": 2, "clean": True, "correct": {"random": [False, False]}},
               {"label": 3, "clean": False, "correct": {"random": [False, False]}}]
    from harness.evaluation.state import EvalState

    state = EvalState()
    for i, record in enumerate(records):
        state.add_record(str(i), "main", record)
    metrics = evaluator.compute(state)
    # sample 0: 0.5 * (1 + 1) / 2 + 0.5 * (1 + 0) / 2 = 0.75; sample 1: 0.25; sample 2: 0 -> mean 1/3
    auc = metric(metrics, "occlusion_auc")
    assert auc.value == pytest.approx(1 / 3)
    assert metric(metrics, "occlusion_relative_auc").value == pytest.approx((1 / 3) / (2 / 3))
    for name in ("occlusion_auc", "occlusion_relative_auc"):
        evidence = evaluator.evidence(name, {"variant": "random"})
        statistic = evidence.statistic({"main": records})
        assert statistic(np.arange(3)) == pytest.approx(metric(metrics, name).value)
    hits = evaluator.evidence("occlusion_acc", {"variant": "random", "fraction": 0.5}).vector(state)
    assert hits == {"0": True, "1": False, "2": False}


def test_salient_drops_hurt_more_than_nonsalient_ones_and_need_a_reference_model(resnet_digits, one_thread):
    from harness.schema import SuiteError

    with pytest.raises(SuiteError, match="reference_model"):
        task(variants=["salient"])
    source = SubsetSource(DigitsSource("test"), list(range(0, 450, 5)), "every fifth")
    ctx = JobContext(resnet_digits, source, torch.device("cpu"), 45, 0, show_progress=False)
    metrics = run_task(task(variants=["salient", "nonsalient"], fractions=[0.25, 0.5], patch_size=4,
                            reference_size=32, reference_model="resnet_digits"), ctx)
    salient = metric(metrics, "occlusion_auc", variant="salient").value
    nonsalient = metric(metrics, "occlusion_auc", variant="nonsalient").value
    assert salient < nonsalient - 0.2, (salient, nonsalient)
