"""Adversarial robustness tasks: a PGD eps sweep and AutoAttack (standard or cheap tier).

Counting: robust accuracy is over ALL evaluated samples; a sample misclassified when clean counts as
non-robust (and is not attacked). It is reported beside clean accuracy on the same samples, with n,
one ``robust_acc`` row per eps (params norm, eps) so the rows form a curve.

Resumable: after each batch its per-sample results go to ``ctx.state_dir``; a rerun reuses them.
Every random start is seeded from (seed, batch index, norm, eps, restart), so a resumed run gives the
same numbers as an uninterrupted one. With ``random_start`` the numbers depend on the batch size (it
sets which samples share a random stream); without it they do not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torchattacks

from harness.data.loader import Batch
from harness.metrics import Metric, proportion
from harness.models.wrapper import LoadedModel
from harness.registry import TASKS
from harness.report import robustness_figures  # noqa: F401  (registers the report sections)
from harness.robustness import attacks, flags
from harness.robustness.attacks import ThreatModel
from harness.robustness.resume import BatchStore
from harness.tasks.base import JobContext, Task

Record = dict[str, Any]  # one batch's per-sample results, JSON-serialisable


def _key(threat: ThreatModel) -> str:
    return f"{threat.norm}:{threat.eps!r}"


@dataclass
class AttackParams:
    """What every attack task takes: the threat model, the subset and the sanity-check budget."""

    eps: list[float]
    norm: Literal["Linf", "L2"] = "Linf"
    n: int | None = None  # evaluate only the first n samples
    flags: bool = True
    blackbox_n: int = 16  # samples for the Square-vs-white-box check (at the largest eps)
    blackbox_queries: int = 50

    def validate(self, where: Any) -> None:
        if not self.eps or any(not 0 < e for e in self.eps):
            raise where.error("eps must list positive numbers (pixel units, e.g. 8/255)")
        if self.norm == "Linf" and any(e > 1 for e in self.eps):
            raise where.error("Linf eps is in pixel units [0, 1]; write 8/255, not 8")
        if self.n is not None and self.n <= 0:
            raise where.error("n must be positive")
        if self.blackbox_n < 0 or self.blackbox_queries <= 0:
            raise where.error("blackbox_n must be >= 0 and blackbox_queries > 0")


class AdversarialTask(Task):
    """The shared loop: per batch, clean predictions, sanity checks, then every eps (and restart)."""

    batch_size_matters = True

    def attack_for(self, model: LoadedModel, threat: ThreatModel, seed: int) -> torchattacks.Attack:
        raise NotImplementedError

    def threats(self) -> list[ThreatModel]:
        return [ThreatModel(self.params.norm, eps) for eps in self.params.eps]

    def run(self, ctx: JobContext) -> list[Metric]:
        ctx = ctx.first(self.params.n)
        store = BatchStore(ctx.state_dir)
        records = []
        for index, batch in enumerate(ctx.batches(desc=f"{ctx.model.name} {self.label}")):
            record = store.load(index, batch.indices.tolist())
            if record is None:
                record = self.attack_batch(ctx, index, batch)
                store.save(index, record)
            records.append(record)
        return summarise(records, self.threats(), self.params.flags)

    def attack_batch(self, ctx: JobContext, index: int, batch: Batch) -> Record:
        images, labels = batch.images, batch.labels
        with torch.no_grad():
            clean_logits = ctx.logits(images)
        clean = clean_logits.argmax(-1) == labels
        record: Record = {"indices": batch.indices.tolist(), "clean": clean.tolist(), "robust": {}}
        if self.params.flags:
            record["flags"] = self.observe_flags(ctx, index, batch, clean_logits)
        for threat in self.threats():
            robust = clean.clone()
            for restart in range(getattr(self.params, "restarts", 1)):
                todo = robust.nonzero().squeeze(1)
                if not len(todo):
                    break
                seed = attacks.derive_seed(ctx.seed, index, threat.norm, threat.eps, restart)
                robust[todo] = self._still_correct(ctx, self.attack_for(ctx.model, threat, seed), seed,
                                                   images[todo], labels[todo], threat)
            record["robust"][_key(threat)] = robust.tolist()
            if self.params.flags and threat == max(self.threats(), key=lambda t: t.eps):
                record["flags"]["square"][_key(threat)] = self._square_check(ctx, index, batch, clean, threat)
        return record

    @staticmethod
    def _still_correct(ctx: JobContext, attack: torchattacks.Attack, seed: int, images: torch.Tensor,
                       labels: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
        torch.manual_seed(seed)  # torchattacks draws random starts from the global generator
        adv = attacks.run_attack(attack, images, labels, threat)
        with torch.no_grad():
            return ctx.logits(adv).argmax(-1) == labels

    def observe_flags(self, ctx: JobContext, index: int, batch: Batch, clean_logits: torch.Tensor) -> Record:
        """Output checks on the first batch (one extra forward); the gradient check on every sample."""
        observed: Record = {"masked": flags.masked_gradient_count(ctx.model.module, batch.images, batch.labels),
                            "checked": len(batch), "square": {}}
        if index == 0:
            with torch.no_grad():
                again = ctx.model.module(batch.images)
            observed["nondeterministic"] = flags.outputs_differ(clean_logits, again)
            observed["probabilities"] = flags.looks_like_probabilities(clean_logits)
        return observed

    def _square_check(self, ctx: JobContext, index: int, batch: Batch, clean: torch.Tensor,
                      threat: ThreatModel) -> list[bool]:
        """Square's per-sample survival on this batch's samples among the first ``blackbox_n`` (largest eps only:
        where gradient masking shows most and Square is strongest; cost ~ blackbox_n x blackbox_queries forwards)."""
        chosen = (batch.indices < self.params.blackbox_n).nonzero().squeeze(1).to(clean.device)
        attacked = clean[chosen]  # misclassified samples count as broken, unattacked
        survived = attacked.clone()
        if attacked.any():
            todo = chosen[attacked]
            seed = attacks.derive_seed(ctx.seed, index, threat.norm, threat.eps, "square")
            attack = attacks.square(ctx.model.module, threat, self.params.blackbox_queries, seed)
            survived[attacked] = self._still_correct(ctx, attack, seed, batch.images[todo], batch.labels[todo], threat)
        return survived.tolist()


def summarise(records: list[Record], threats: list[ThreatModel], with_flags: bool) -> list[Metric]:
    """Dataset-level metrics from the per-batch records (a pure function: batch size cannot change a count)."""
    n = sum(len(r["clean"]) for r in records)
    metrics = [proportion("robust_acc", sum(sum(r["robust"][_key(t)]) for r in records), n, norm=t.norm, eps=t.eps)
               for t in threats]
    metrics.append(proportion("clean_acc", sum(sum(r["clean"]) for r in records), n))
    if with_flags:
        metrics += _flag_state(records).metrics()
    return metrics


def _flag_state(records: list[Record]) -> flags.FlagState:
    state = flags.FlagState()
    for record in records:
        seen = record["flags"]
        state.masked_gradients += seen["masked"]
        state.gradients_checked += seen["checked"]
        if "nondeterministic" in seen:
            state.nondeterministic |= seen["nondeterministic"]
            state.probabilities |= seen["probabilities"]
            state.outputs_checked += seen["checked"]
    for key in records[0]["flags"]["square"] if records else []:
        square_alive = whitebox_alive = checked = 0
        for record in records:
            alive = record["flags"]["square"][key]
            square_alive += sum(alive)
            whitebox_alive += sum(record["robust"][key][: len(alive)])
            checked += len(alive)
        state.blackbox_stronger |= flags.blackbox_stronger(square_alive, whitebox_alive, checked)
        state.blackbox_checked = max(state.blackbox_checked, checked)
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

    def attack_for(self, model: LoadedModel, threat: ThreatModel, seed: int) -> torchattacks.Attack:
        p = self.params
        alpha = attacks.step_size(threat.eps, p.steps, p.alpha, p.alpha_factor)
        return attacks.pgd(model.module, threat, p.steps, alpha, p.random_start)


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

    def attack_for(self, model: LoadedModel, threat: ThreatModel, seed: int) -> torchattacks.Attack:
        if model.num_classes < 4:
            raise ValueError(f"AutoAttack's targeted DLR loss needs >= 4 classes; {model.name} has {model.num_classes}")
        return attacks.autoattack(model.module, threat, self.params.tier, model.num_classes, seed, self.params.steps)
