"""Adversarial robustness tasks: a PGD eps sweep and AutoAttack (standard or cheap tier).

Counting: robust accuracy is over ALL evaluated samples; a sample misclassified when clean counts as
non-robust (and is not attacked). It is reported beside clean accuracy on the same samples, with n,
one ``robust_acc`` row per eps (params norm, eps) so the rows form a curve.

Image space: attacks perturb images in ONE declared space per dataset, the same for every model, so eps
means the same thing for a 224 and a 384 model: ``image_space: dataset`` (default) attacks the dataset's
native images when they share a size (digits, CIFAR's 32x32) or the standard ``image_size`` crop (ImageNet:
resize 256, centre crop 224); the model's own resize then happens inside the differentiable pixel-space
wrapper. ``image_space: model`` attacks each model's own preprocessed input (eps then depends on the model's
resolution). The attack resolution is recorded in every row's params.

Every random start is seeded from (seed, batch index, norm, eps, restart), so a resumed or sharded run gives
the same numbers as an uninterrupted one. With ``random_start`` the numbers depend on the batch size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torchattacks

from harness.data.loader import Batch
from harness.data.preprocess import Preprocess
from harness.formatting import listing
from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outcomes, Outputs, Resampled, Statistic
from harness.evaluation.state import EvalState
from harness.metrics import Metric, declare, proportion, trapezoid_weights
from harness.models.wrapper import ResizeInput
from harness.registry import TASKS
from harness.robustness import attacks, flags
from harness.robustness.attacks import ThreatModel
from harness.tasks.base import JobContext, Pass, Task

Record = dict[str, Any]  # JSON-serialisable
declare("robust_acc", "higher", kind="proportion", description="accuracy under attack (all evaluated samples)")
declare("clean_acc", "higher", kind="proportion", description="accuracy on the same samples, unattacked")
declare("robust_auc", "higher", kind="dataset", range=(0.0, 1.0), record_fields=("clean", "robust"),
        description="area under robust accuracy vs eps, normalised to [0, 1]",
        protocol="trapezoids through (0, clean accuracy) and each eps of the sweep, divided by the largest eps")
IMAGENET_CROP_PCT = 0.875  # the 224 crop of a 256 resize: the space ImageNet attacks are defined in


def _key(threat: ThreatModel) -> str:
    return f"{threat.norm}:{threat.eps!r}"

EPS_UNITS = "pixel scale: images in [0, 1], eps shown as k/255"


@dataclass
class AttackParams:
    """What every attack task takes: the threat model, the subset and the sanity-check budget."""

    eps: list[float]
    norm: Literal["Linf", "L2"] = "Linf"
    n: int | None = None  # evaluate n samples: the first n of the dataset's subset, else a seeded draw
    image_space: Literal["dataset", "model"] = "dataset"
    image_size: int | None = None  # dataset space for datasets of mixed sizes: resize, centre crop to this
    flags: bool = True
    # Square-vs-white-box check at the largest eps on the first blackbox_n samples: AutoAttack's Square budget
    blackbox_n: int = 100
    blackbox_queries: int = 5000

    def validate(self, where: Any) -> None:
        if not self.eps or any(not 0 < e for e in self.eps):
            raise where.error("eps must list positive numbers (pixel units, e.g. 8/255)")
        if self.norm == "Linf" and any(e > 1 for e in self.eps):
            raise where.error("Linf eps is in pixel units [0, 1]; write 8/255, not 8")
        if self.n is not None and self.n <= 0:
            raise where.error("n must be positive")
        if self.blackbox_n < 0 or self.blackbox_queries <= 0:
            raise where.error("blackbox_n must be >= 0 and blackbox_queries > 0")
        if self.image_size is not None and (self.image_size < 1 or self.image_space != "dataset"):
            raise where.error("image_size must be positive and needs image_space: dataset")


class AdversarialTask(Task):
    """The shared attack: per batch, clean predictions, sanity checks, then every eps (and restart)."""

    batch_size_matters = True
    produces = "attack_outcomes"  # per sample: clean and robust correctness (``infer``)
    version = 3  # 2: one image space per dataset; Square budget 100 x 5000; per-sample records; 3: robust_auc


    @classmethod
    def protocol_facts(cls, params: dict[str, Any], job_metas: list[dict[str, Any]]) -> list[tuple[str, str]]:
        blackbox = (f"black-box check on {params.get('blackbox_n')} samples x {params.get('blackbox_queries')} "
                    f"queries" if params.get("blackbox_n") else "no black-box check")
        attack = [f"{params.get('tier')} tier" if params.get("tier") else "", f"norm {params.get('norm', '?')}",
                  f"steps {params.get('steps', '?')}",
                  f"restarts {params['restarts']}" if "restarts" in params else "",
                  f"random start {'yes' if params.get('random_start') else 'no'}" if "random_start" in params else "",
                  blackbox]
        units = EPS_UNITS if params.get("norm") == "Linf" else "pixel scale: images in [0, 1]"
        facts = [("attack", ", ".join(x for x in attack if x)), ("eps", f"{listing(params.get('eps', []))} ({units})")]
        sizes = list(dict.fromkeys(str(m["attack_size"]) for m in job_metas if m.get("attack_size")))
        return facts + ([("attack resolution", ", ".join(sizes))] if sizes else [])
    def attack_for(self, model: torch.nn.Module, num_classes: int, threat: ThreatModel, seed: int) -> torchattacks.Attack:
        raise NotImplementedError

    def threats(self) -> list[ThreatModel]:
        return [ThreatModel(self.params.norm, eps) for eps in self.params.eps]

    def attack_space(self, ctx: JobContext) -> Preprocess | None:
        """The preprocessing that gives the attacked images (None: each model's own)."""
        p = self.params
        if p.image_space == "model":
            return None
        if p.image_size is not None:
            return Preprocess((3, p.image_size, p.image_size), "bilinear", IMAGENET_CROP_PCT, "center")
        native = ctx.source.native_size()
        if native is None:
            raise ValueError(f"dataset {ctx.source.name!r} has images of several sizes: give the attack's "
                             "image_size (e.g. 224) or image_space: model")
        return Preprocess((3, *native), crop_mode="none")

    def passes(self, ctx: JobContext) -> list[Pass]:
        return [Pass("main", preprocess=self.attack_space(ctx), needs_grad=True)]

    def job_meta(self, ctx: JobContext) -> dict[str, Any]:
        space = self.attack_space(ctx)
        size = space.input_size[1:] if space is not None else ctx.model.preprocess.input_size[1:]
        return {"attack_size": f"{size[0]}x{size[1]}", "image_space": self.params.image_space}

    def attacked_module(self, ctx: JobContext) -> torch.nn.Module:
        """The pixel-space model, resizing (differentiably) from the attack space to the model's input."""
        space = self.attack_space(ctx)
        if space is None or tuple(space.input_size) == tuple(ctx.model.preprocess.input_size):
            return ctx.model.module
        return ResizeInput(ctx.model.module, tuple(ctx.model.preprocess.input_size[1:]))

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        return AttackEvaluator(self.threats(), self.params.flags, meta.get("attack_size", ""),
                               self.params.blackbox_queries)

    def infer(self, ctx: JobContext, pass_: Pass, index: int, batch: Batch) -> Record:
        """Per-sample clean and robust correctness (and the sanity observations) for one batch."""
        module = self.attacked_module(ctx)
        images, labels = batch.images, batch.labels
        with torch.no_grad():
            clean_logits = ctx.logits(images, module)
        clean = clean_logits.argmax(-1) == labels
        out: Record = {"clean": clean.tolist(), "robust": {}, "square": {}, "sums": {}}
        if self.params.flags:
            out["sums"] = self.observe_flags(ctx, module, index, batch, clean_logits)
        for threat in self.threats():
            robust = clean.clone()
            for restart in range(getattr(self.params, "restarts", 1)):
                todo = robust.nonzero().squeeze(1)
                if not len(todo):
                    break
                seed = attacks.derive_seed(ctx.seed, index, threat.norm, threat.eps, restart)
                attack = self.attack_for(module, ctx.model.num_classes, threat, seed)
                robust[todo] = self._still_correct(ctx, module, attack, seed, images[todo], labels[todo], threat)
            out["robust"][_key(threat)] = robust.tolist()
        if self.params.flags:
            largest = max(self.threats(), key=lambda t: t.eps)
            out["square"][_key(largest)] = self._square_check(ctx, module, index, batch, clean, largest)
        return out

    @staticmethod
    def _still_correct(ctx: JobContext, module: torch.nn.Module, attack: torchattacks.Attack, seed: int,
                       images: torch.Tensor, labels: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
        torch.manual_seed(seed)  # torchattacks draws random starts from the global generator
        adv = attacks.run_attack(attack, images, labels, threat)
        with torch.no_grad():
            return ctx.logits(adv, module).argmax(-1) == labels

    def observe_flags(self, ctx: JobContext, module: torch.nn.Module, index: int, batch: Batch,
                      clean_logits: torch.Tensor) -> Record:
        """Output checks on the first batch (one extra forward); the gradient check on every sample."""
        observed: Record = {"masked": flags.masked_gradient_count(module, batch.images, batch.labels),
                            "gradients_checked": len(batch)}
        if index == 0:
            with torch.no_grad():
                again = module(batch.images)
            observed.update({"nondeterministic": int(flags.outputs_differ(clean_logits, again)),
                             "probabilities": int(flags.looks_like_probabilities(clean_logits)),
                             "outputs_checked": len(batch)})
        return observed

    def _square_check(self, ctx: JobContext, module: torch.nn.Module, index: int, batch: Batch,
                      clean: torch.Tensor, threat: ThreatModel) -> list[bool | None]:
        """Square's per-sample survival on this batch's samples among the first ``blackbox_n`` (largest eps only:
        where gradient masking shows most and Square is strongest; cost ~ blackbox_n x blackbox_queries forwards)."""
        chosen = (batch.indices < self.params.blackbox_n).nonzero().squeeze(1).to(clean.device)
        attacked = clean[chosen]  # misclassified samples count as broken, unattacked
        survived = attacked.clone()
        if attacked.any():
            todo = chosen[attacked]
            seed = attacks.derive_seed(ctx.seed, index, threat.norm, threat.eps, "square")
            attack = attacks.square(module, threat, self.params.blackbox_queries, seed)
            survived[attacked] = self._still_correct(ctx, module, attack, seed, batch.images[todo],
                                                     batch.labels[todo], threat)
        by_position: list[bool | None] = [None] * len(batch)
        for position, alive in zip(chosen.tolist(), survived.tolist()):
            by_position[position] = bool(alive)
        return by_position


class AttackEvaluator(Evaluator):
    """Records per sample: clean and robust correctness per threat, Square survival where checked."""

    def __init__(self, threats: list[ThreatModel], with_flags: bool, attack_size: str, square_queries: int = 0) -> None:
        self.threats, self.with_flags, self.attack_size = threats, with_flags, attack_size
        self.square_queries = square_queries

    needs = ("attack_outcomes",)

    def process(self, batch: Batch, outputs: Outputs) -> EvalState:
        pass_name, outputs = outputs.pass_name, outputs["attack_outcomes"]
        state = EvalState()
        for position, (sample_id, label) in enumerate(zip(batch.ids, batch.labels.tolist())):
            record: Record = {"label": label, "clean": outputs["clean"][position],
                              "robust": {key: alive[position] for key, alive in outputs["robust"].items()}}
            square = {key: alive[position] for key, alive in outputs["square"].items() if alive[position] is not None}
            if square:
                record["square"] = square
            state.add_record(sample_id, pass_name, record)
        for name, value in outputs["sums"].items():
            state.add_sum(name, value)
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        return summarise([r for _, r in state.pass_records(MAIN_PASS)], state.sums, self.threats, self.with_flags,
                         self.attack_size, self.square_queries)

    def evidence(self, metric: str, params: dict[str, Any]) -> Outcomes | None:
        if metric == "robust_acc":
            key = f"{params['norm']}:{float(params['eps'])!r}"
            return Outcomes(MAIN_PASS, lambda r: r["robust"][key])
        if metric == "clean_acc":
            return Outcomes(MAIN_PASS, lambda r: r["clean"])
        if metric == "robust_auc":
            def prepare(records: list[Record]) -> Statistic:
                areas = robust_areas(records, self.threats)
                return lambda positions: float(areas[positions].mean())

            return Resampled((MAIN_PASS,), prepare)
        return None


def robust_areas(records: list[Record], threats: list[ThreatModel]) -> np.ndarray:
    """Per sample, the normalised area under its correctness vs eps (clean at eps 0, then every eps)."""
    ordered = sorted(threats, key=lambda t: t.eps)
    weights = np.array(trapezoid_weights([0.0, *(t.eps for t in ordered)]))
    curves = np.array([[r["clean"], *(r["robust"][_key(t)] for t in ordered)] for r in records], dtype=float)
    return curves.reshape(len(records), len(ordered) + 1) @ weights


def summarise(records: list[Record], sums: dict[str, Any], threats: list[ThreatModel], with_flags: bool,
              attack_size: str = "", square_queries: int = 0) -> list[Metric]:
    """Dataset-level metrics from the per-sample records (a pure function: batch size cannot change a count)."""
    n = len(records)
    where = {"attack_size": attack_size} if attack_size else {}
    metrics = [proportion("robust_acc", sum(r["robust"][_key(t)] for r in records), n, norm=t.norm, eps=t.eps,
                          **where) for t in threats]
    metrics.append(proportion("clean_acc", sum(r["clean"] for r in records), n, **where))
    if len(threats) > 1:  # a sweep: its area, one number per norm for comparing models across every eps
        metrics.append(Metric("robust_auc", float(robust_areas(records, threats).mean()) if n else float("nan"), n,
                              {"norm": threats[0].norm, **where}))
    if with_flags:
        flag_state = _flag_state(records, sums)
        flag_state.blackbox_queries = square_queries if flag_state.blackbox_checked else 0
        metrics += flag_state.metrics()
    return metrics


def _flag_state(records: list[Record], sums: dict[str, Any]) -> flags.FlagState:
    state = flags.FlagState(nondeterministic=sums.get("nondeterministic", 0) > 0,
                            probabilities=sums.get("probabilities", 0) > 0,
                            outputs_checked=sums.get("outputs_checked", 0),
                            masked_gradients=sums.get("masked", 0),
                            gradients_checked=sums.get("gradients_checked", 0))
    checked = [r for r in records if "square" in r]
    for key in checked[0]["square"] if checked else []:
        square_alive = sum(r["square"][key] for r in checked)
        whitebox_alive = sum(r["robust"][key] for r in checked)
        state.blackbox_stronger |= flags.blackbox_stronger(square_alive, whitebox_alive, len(checked))
        state.blackbox_checked = max(state.blackbox_checked, len(checked))
    return state


@TASKS.register("pgd")
class PGDTask(AdversarialTask):
    """PGD (torchattacks.PGD / PGDL2) over an eps sweep; worst case per sample over restarts."""

    kind = "pgd"

    @dataclass
    class Params(AttackParams):
        steps: int = 10
        alpha: float | None = None  # absolute step size; default alpha_factor * eps / steps
        alpha_factor: float | None = None  # default 2.5 (Madry / RobustBench)
        random_start: bool = True
        restarts: int = 1

        def validate(self, where: Any) -> None:
            super().validate(where)
            if self.steps < 1 or self.restarts < 1:
                raise where.error("steps and restarts must be >= 1")
            if self.alpha is not None and self.alpha_factor is not None:
                raise where.error("give 'alpha' (absolute) or 'alpha_factor' (times eps/steps), not both")
            if self.restarts > 1 and not self.random_start:
                raise where.error("restarts > 1 need random_start: true (otherwise every restart is the same)")

    def attack_for(self, model: torch.nn.Module, num_classes: int, threat: ThreatModel, seed: int) -> torchattacks.Attack:
        p = self.params
        alpha = attacks.step_size(threat.eps, p.steps, p.alpha, p.alpha_factor)
        return attacks.pgd(model, threat, p.steps, alpha, p.random_start)


@TASKS.register("autoattack")
class AutoAttackTask(AdversarialTask):
    """AutoAttack through torchattacks: tier 'standard' (APGD-CE, APGD-T, FAB-T, Square) or 'cheap' (APGD-CE, APGD-T)."""

    kind = "autoattack"

    @dataclass
    class Params(AttackParams):
        tier: Literal["standard", "cheap"] = "cheap"
        steps: int = attacks.AUTOATTACK_STEPS

        def validate(self, where: Any) -> None:
            super().validate(where)
            if self.steps < 1:
                raise where.error("steps must be >= 1")

    def attack_for(self, model: torch.nn.Module, num_classes: int, threat: ThreatModel, seed: int) -> torchattacks.Attack:
        if num_classes < 4:
            raise ValueError(f"AutoAttack's targeted DLR loss needs >= 4 classes; the model has {num_classes}")
        return attacks.autoattack(model, threat, self.params.tier, num_classes, seed, self.params.steps)
