"""Adversarial tasks: parity with a plain PGD loop, counting, threat-model errors, resume, suites, report."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from harness.data.base import SubsetSource
from harness.data.digits import DigitsSource
from harness.registry import REPORT_SECTIONS
from harness.robustness import attacks
from harness.robustness.attacks import ThreatModel, ThreatModelViolation
from harness.run import run_suite
from harness.schema import SuiteError
from harness.suite import SUITES_DIR, load_suite
from harness.tasks.adversarial import AutoAttackTask, PGDTask
from harness.loop import run_task
from harness.tasks.base import JobContext

EPS = 8 / 255


pytestmark = pytest.mark.usefixtures("one_thread")


def digits(n: int) -> SubsetSource:
    return SubsetSource(DigitsSource("test"), list(range(n)), f"first {n}")


def context(model, tmp_path: Path, n: int = 24, batch_size: int = 8, seed: int = 0) -> JobContext:
    return JobContext(model=model, source=digits(n), device=torch.device("cpu"), batch_size=batch_size, seed=seed,
                      show_progress=False)


def pgd_task(**params) -> PGDTask:
    defaults = {"eps": [EPS], "steps": 5, "random_start": False, "flags": False}
    return PGDTask(PGDTask.Params(**{**defaults, **params}))


def values(metrics, name: str) -> dict:
    """(value, n) by params, leaving out the attack resolution every row records."""
    return {tuple(sorted((k, v) for k, v in m.params.items() if k != "attack_size")): (m.value, m.n)
            for m in metrics if m.name == name}


def tensors(model, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch = next(iter(context(model, Path("/nonexistent"), n=n, batch_size=n).batches()))
    return batch.images, batch.labels


def plain_pgd(model, images, labels, eps, alpha, steps):
    """Reference L-inf PGD without random start: sign-gradient ascent on CE, project to the ball and [0, 1]."""
    adv = images.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(adv), labels)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, images - eps), images + eps).clamp(0, 1)
    return adv


def test_pgd_equals_a_plain_pgd_loop(resnet_digits, tmp_path):
    steps, n = 5, 24
    metrics = run_task(pgd_task(eps=[4 / 255, EPS], steps=steps), context(resnet_digits, tmp_path, n=n))
    images, labels = tensors(resnet_digits, n)
    model = resnet_digits.module
    with torch.no_grad():
        clean = model(images).argmax(-1) == labels
    for eps in (4 / 255, EPS):
        alpha = attacks.step_size(eps, steps)  # 2.5 * eps / steps
        reference = plain_pgd(model, images, labels, eps, alpha, steps)
        harness_adv = attacks.pgd(model, ThreatModel("Linf", eps), steps, alpha, random_start=False)(images, labels)
        # Same algorithm, float32: the images agree to rounding (a few ulps of [0, 1] values).
        assert (harness_adv - reference).abs().max() <= 1e-6
        with torch.no_grad():
            robust = int((clean & (model(reference).argmax(-1) == labels)).sum())
        value, count = values(metrics, "robust_acc")[(("eps", eps), ("norm", "Linf"))]
        assert count == n and value == robust / n
    assert values(metrics, "clean_acc")[()] == (int(clean.sum()) / n, n)


def test_misclassified_samples_count_as_not_robust_and_counts_add_up_across_batch_sizes(resnet_digits, tmp_path):
    # A model that is always wrong on class 0: those samples are never robust, and never attacked.
    wrong_on_zero = dataclasses.replace(resnet_digits, module=_ShiftClassZero(resnet_digits.module).eval())
    small = run_task(pgd_task(eps=[2 / 255]), context(wrong_on_zero, tmp_path / "a", n=24, batch_size=5))
    large = run_task(pgd_task(eps=[2 / 255]), context(wrong_on_zero, tmp_path / "b", n=24, batch_size=24))
    labels = torch.tensor([digits(24).load(i).target for i in range(24)])
    for metrics in (small, large):
        clean, n = values(metrics, "clean_acc")[()]
        robust, robust_n = values(metrics, "robust_acc")[(("eps", 2 / 255), ("norm", "Linf"))]
        assert n == robust_n == 24 and 0 < robust <= clean <= 1 - float((labels == 0).float().mean())
    assert values(small, "clean_acc") == values(large, "clean_acc")
    # torchattacks averages the loss over the attacked batch, so float rounding (and rarely a near-zero
    # gradient sign) can differ with batch composition: allow one sample of 24, no more.
    robust_small = values(small, "robust_acc")[(("eps", 2 / 255), ("norm", "Linf"))][0]
    robust_large = values(large, "robust_acc")[(("eps", 2 / 255), ("norm", "Linf"))][0]
    assert abs(robust_small - robust_large) <= 1 / 24


class _ShiftClassZero(torch.nn.Module):
    """Predicts class 1 whenever the model would predict 0."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)
        return torch.cat([logits[:, :1] - 1e3, logits[:, 1:]], dim=1)


class _BrokenPGD(PGDTask):
    """An attack that steps twice the budget: the threat-model check must refuse it."""

    def attack_for(self, model, num_classes, threat, seed):
        return attacks.pgd(model, ThreatModel(threat.norm, 2 * threat.eps), 2, threat.eps, False)


def test_an_attack_leaving_the_eps_ball_is_an_error(resnet_digits, tmp_path):
    task = _BrokenPGD(PGDTask.Params(eps=[EPS], steps=2, random_start=False, flags=False))
    with pytest.raises(ThreatModelViolation, match="eps-ball"):
        run_task(task, context(resnet_digits, tmp_path, n=8))
    images = torch.rand(2, 3, 4, 4)
    with pytest.raises(ThreatModelViolation, match=r"outside \[0, 1\]"):
        attacks.check_threat_model(images + 1.5, images, ThreatModel("L2", 10.0))
    attacks.check_threat_model((images + EPS).clamp(0, 1), images, ThreatModel("Linf", EPS))  # on the boundary: fine


class _Interrupted(Exception):
    pass


class _CountingPGD(PGDTask):
    """Records which batches it attacks, optionally failing on one (an interrupted run)."""

    fail_on_batch: int | None = None

    def __init__(self, params) -> None:
        super().__init__(params)
        self.batches_attacked: list[int] = []

    def infer(self, ctx, pass_, index, batch):
        self.batches_attacked.append(index)
        if index == self.fail_on_batch:
            raise _Interrupted(f"stopped at batch {index}")
        return super().infer(ctx, pass_, index, batch)


def test_an_interrupted_run_resumes_without_redoing_batches_and_gives_the_same_numbers(resnet_digits, tmp_path):
    params = PGDTask.Params(eps=[4 / 255, EPS], steps=3, random_start=True, restarts=2, flags=True, blackbox_n=4,
                            blackbox_queries=5)
    interrupted = _CountingPGD(params)
    interrupted.fail_on_batch = 2
    ctx = context(resnet_digits, tmp_path, n=32, batch_size=8)
    state_dir = tmp_path / "resumed"
    with pytest.raises(_Interrupted):
        run_task(interrupted, ctx, state_dir)
    assert len(list(state_dir.glob("*/batch_*.json"))) == 2
    resumed = _CountingPGD(params)
    resumed_metrics = run_task(resumed, ctx, state_dir)
    assert resumed.batches_attacked == [2, 3]  # batches 0 and 1 came from the state dir

    fresh = _CountingPGD(params)
    fresh_metrics = run_task(fresh, context(resnet_digits, tmp_path / "fresh", n=32, batch_size=8))
    assert fresh.batches_attacked == [0, 1, 2, 3]
    as_rows = lambda ms: [(m.name, m.params, m.value, m.n) for m in ms]  # noqa: E731
    assert as_rows(resumed_metrics) == as_rows(fresh_metrics)


def test_autoattack_tiers_set_target_classes_and_are_seeded(resnet_digits, tmp_path):
    model = resnet_digits.module
    standard = attacks.autoattack(model, ThreatModel("Linf", EPS), "standard", num_classes=1000, seed=0)
    targeted = [a for a in standard._autoattack.attacks if hasattr(a, "n_target_classes")]
    assert {type(a).__name__ for a in targeted} == {"APGDT", "FAB"}
    assert all(a.n_target_classes == 9 and a.steps == 100 for a in targeted)
    cheap = attacks.autoattack(model, ThreatModel("L2", 0.5), "cheap", num_classes=4, seed=0, steps=5)
    assert [type(a).__name__ for a in cheap.attacks] == ["APGD", "APGDT"] and cheap.attacks[1].n_target_classes == 3

    task = AutoAttackTask(AutoAttackTask.Params(eps=[4 / 255], tier="cheap", steps=5, flags=False))
    first = run_task(task, context(resnet_digits, tmp_path / "1", n=16))
    again = run_task(task, context(resnet_digits, tmp_path / "2", n=16))
    assert [m.value for m in first] == [m.value for m in again]
    pgd = run_task(pgd_task(eps=[4 / 255], steps=5), context(resnet_digits, tmp_path / "3", n=16))
    aa_robust, pgd_robust = first[0].value, pgd[0].value
    assert first[0].name == "robust_acc" and aa_robust <= values(first, "clean_acc")[()][0]
    assert aa_robust <= pgd_robust + 2 / 16  # APGD-CE + APGD-T is not (much) weaker than PGD with as many steps


@pytest.mark.parametrize("params, message", [
    ({"eps": [8]}, "pixel units"),
    ({"eps": ["8/255"], "alpha": 0.01, "alpha_factor": 2.0}, "not both"),
    ({"eps": ["8/255"], "restarts": 3, "random_start": False}, "restarts"),
    ({"eps": ["8/255"], "n": 0}, "n must be positive"),
])
def test_bad_params_are_one_line_errors(write_suite, params, message):
    suite = {"name": "t", "version": 1, "models": [{"name": "resnet_digits", "source": "zoo"}],
             "datasets": [{"name": "d", "kind": "digits"}], "tasks": [{"kind": "pgd", "params": params}]}
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(str(write_suite(suite)))
    assert "\n" not in str(error.value) and "tasks[0].params" in str(error.value)


def test_eps_fractions_parse(write_suite):
    suite = {"name": "t", "version": 1, "models": [{"name": "resnet_digits", "source": "zoo"}],
             "datasets": [{"name": "d", "kind": "digits"}],
             "tasks": [{"kind": "pgd", "params": {"eps": ["1/255", "8/255"]}}]}
    assert load_suite(str(write_suite(suite))).tasks[0].params.eps == [1 / 255, 8 / 255]


def _suite_copy(name: str, tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((SUITES_DIR / f"{name}.yaml").read_text())
    suite = copy.deepcopy(raw)
    suite.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def _assert_all_ok(outcome, models, tasks, n):
    assert not outcome.failed
    rows = outcome.frame[outcome.frame["metric"] == "robust_acc"]
    assert set(rows["model"]) == set(models) and set(rows["task"]) == set(tasks)
    assert (rows["n"] == n).all()
    assert (outcome.out_dir / "index.html").exists()


def test_imagenet_suite_runs_on_a_miniature_val_folder(mini_imagenet, tmp_path):
    """The shipped suite's datasets and tasks, verbatim but for a tiny ID list and random-init timm test models."""
    ids = tmp_path / "ids.txt"
    ids.write_text("# tiny list in the same layout\nn03773504/ILSVRC2012_val_00000003.JPEG\n"
                   "n02123045/ILSVRC2012_val_00000001.JPEG\nn07920052/ILSVRC2012_val_00000004.JPEG\n")
    raw = yaml.safe_load((SUITES_DIR / "robustness-imagenet.yaml").read_text())
    datasets = raw["datasets"]
    datasets[0]["subset"] = {"ids": str(ids)}
    datasets[0]["class_map"] = str(SUITES_DIR / datasets[0]["class_map"])
    models = [{"name": "test_resnet", "source": "timm"}, {"name": "test_vit", "source": "timm"}]
    path = _suite_copy("robustness-imagenet", tmp_path, models=models, datasets=datasets,
                       defaults={**raw["defaults"], "workers": 0})
    outcome = run_suite(path, out=tmp_path / "out", data_root=str(mini_imagenet), limit=2, progress=False)
    _assert_all_ok(outcome, ["test_resnet", "test_vit"], [t["name"] for t in raw["tasks"]], 2)
    # both test models take 160 px: the attack perturbs the 224 crop (ImageNet's threat model) and each model
    # resizes it inside the differentiable wrapper; the rows say which space eps was measured in
    robust = outcome.frame[outcome.frame["metric"] == "robust_acc"]
    assert {p["attack_size"] for p in robust["params"]} == {"224x224"}


def test_cifar10_suite_tasks_run_on_digits_with_zoo_models(tmp_path):
    """CIFAR-10 has no honest miniature (torchvision checks its files' md5), so the suite's tasks run verbatim
    on the digits kind (also 32x32 RGB, 10 classes) with zoo models that the attacks break quickly."""
    raw = yaml.safe_load((SUITES_DIR / "robustness-cifar10.yaml").read_text())
    models = [{"name": "convnext_digits", "source": "zoo"}, {"name": "vit_digits", "source": "zoo"}]
    # the black-box sanity check's query budget (5000 by default: a cost knob, not the threat model) cut to
    # what a test affords: at 5000 it was 94% of this test's 3 minutes; the tasks are otherwise verbatim
    tasks = [{**t, "params": {**t["params"], "blackbox_queries": 100}} for t in raw["tasks"]]
    path = _suite_copy("robustness-cifar10", tmp_path, models=models, tasks=tasks,
                       datasets=[{"name": "digits-test", "kind": "digits", "split": "test"}])
    outcome = run_suite(path, out=tmp_path / "out", limit=2, progress=False)
    _assert_all_ok(outcome, ["convnext_digits", "vit_digits"], [t["name"] for t in raw["tasks"]], 2)
    robust = outcome.frame[outcome.frame["metric"] == "robust_acc"]
    assert {p["attack_size"] for p in robust["params"]} == {"32x32"}  # CIFAR's threat model: native 32x32


def test_report_draws_robust_accuracy_curves_per_model_and_per_family():
    import pandas as pd

    import harness.report.robustness_figures  # noqa: F401  (registers the pgd sections)

    rows = []
    for model, family, accs in (("cnn_a", "cnn", (0.9, 0.5)), ("vit<b>", "transformer", (0.8, 0.1))):
        rows.append({"model": model, "family": family, "metric": "clean_acc", "params": {}, "value": 0.99})
        for eps, acc in zip((2 / 255, 8 / 255), accs):
            rows.append({"model": model, "family": family, "metric": "robust_acc",
                         "params": {"norm": "Linf", "eps": eps}, "value": acc})
    frame = pd.DataFrame(rows).assign(task="pgd", task_kind="pgd")
    sections = REPORT_SECTIONS.get("pgd")(frame, frame)
    (title, per_model), (_, per_family) = sections
    # one hoverable line per model / per family, each listing its points (eps 0 = clean accuracy)
    assert "Linf" in title and per_model.count('<g id="hover-') == 2 and per_family.count('<g id="hover-') == 2
    assert "<title>cnn_a (cnn) — 0: 0.9900, 2/255: 0.9000, 8/255: 0.5000</title>" in per_model
    assert "vit&lt;b&gt;" in per_model and "<b>" not in per_model  # names are escaped
    assert ">8/255<" in per_model  # eps ticks as fractions of 255
    assert "<title>transformer mean (1 models) (transformer) — 0: 0.9900, 2/255: 0.8000, 8/255: 0.1000</title>" \
        in per_family and 'stroke="#d62728"' in per_family  # the transformer line in the family colour
    assert "cnn mean (1 models)" in per_family
