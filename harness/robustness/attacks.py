"""Adversarial attacks through torchattacks, in pixel space, with a threat-model check on every output.

Attacks always run on the PixelModel (``LoadedModel.module``): images in [0, 1] go in, normalisation
happens inside the model, so eps means the same for every model. torchattacks'
``set_normalization_used`` is never used.

Step size: unless given, PGD's alpha is ``alpha_factor * eps / steps`` with ``alpha_factor = 2.5``
(Madry et al. / RobustBench convention), so the total path length is 2.5 eps whatever the step count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torchattacks
from torch import nn

from harness.seeding import derive_seed  # noqa: F401  (attacks.derive_seed: how the tasks seed an attack)

Norm = Literal["Linf", "L2"]
DEFAULT_ALPHA_FACTOR = 2.5
AUTOATTACK_STEPS = 100  # the reference AutoAttack's iterations for APGD-CE, APGD-T and FAB-T
MAX_TARGET_CLASSES = 9  # the reference AutoAttack's target classes for APGD-T and FAB-T
LINF_SLACK = 1e-6  # float32 rounding of clamp(x + delta) may overshoot eps by a few ulps
L2_REL_SLACK = 1e-5


class ThreatModelViolation(RuntimeError):
    """An attack returned an image outside its eps-ball or outside [0, 1]: the attack is broken."""


@dataclass(frozen=True)
class ThreatModel:
    norm: Norm
    eps: float


def step_size(eps: float, steps: int, alpha: float | None = None, alpha_factor: float | None = None) -> float:
    """Absolute alpha if given, else ``alpha_factor * eps / steps`` (default factor 2.5)."""
    if alpha is not None:
        return alpha
    return (alpha_factor if alpha_factor is not None else DEFAULT_ALPHA_FACTOR) * eps / steps


def pgd(model: nn.Module, threat: ThreatModel, steps: int, alpha: float, random_start: bool) -> torchattacks.Attack:
    """L-inf (torchattacks.PGD) or L2 (torchattacks.PGDL2) projected gradient descent on cross-entropy."""
    cls = torchattacks.PGD if threat.norm == "Linf" else torchattacks.PGDL2
    return cls(model, eps=threat.eps, alpha=alpha, steps=steps, random_start=random_start)


def target_classes(num_classes: int) -> int:
    return min(MAX_TARGET_CLASSES, num_classes - 1)


def autoattack(model: nn.Module, threat: ThreatModel, tier: Literal["standard", "cheap"], num_classes: int,
               seed: int, steps: int = AUTOATTACK_STEPS) -> torchattacks.Attack:
    """AutoAttack in two tiers.

    ``standard``: torchattacks.AutoAttack version 'standard' (APGD-CE, APGD-T, FAB-T, Square 5000 queries).
    torchattacks gives APGD-T and FAB-T ``num_classes - 1`` targets and 10 iterations; we set the
    reference's ``min(9, num_classes - 1)`` targets and ``steps`` iterations (reference: 100).
    ``cheap``: APGD-CE then APGD-T on the points it did not break (torchattacks.MultiAttack).
    """
    if tier == "standard":
        attack = torchattacks.AutoAttack(model, norm=threat.norm, eps=threat.eps, version="standard",
                                         n_classes=num_classes, seed=seed)
        parts = attack._autoattack.attacks
    else:
        parts = [torchattacks.APGD(model, norm=threat.norm, eps=threat.eps, steps=steps, seed=seed, loss="ce"),
                 torchattacks.APGDT(model, norm=threat.norm, eps=threat.eps, steps=steps, seed=seed,
                                    n_classes=num_classes)]
        attack = torchattacks.MultiAttack(parts)
    for part in parts:
        if hasattr(part, "n_target_classes"):
            part.n_target_classes = target_classes(num_classes)
        if isinstance(part, (torchattacks.APGD, torchattacks.APGDT, torchattacks.FAB)):
            part.steps = steps
    return attack


def square(model: nn.Module, threat: ThreatModel, queries: int, seed: int) -> torchattacks.Attack:
    """The black-box Square attack (margin loss), used as a gradient-masking check."""
    return torchattacks.Square(model, norm=threat.norm, eps=threat.eps, n_queries=queries, seed=seed)


def check_threat_model(adv: torch.Tensor, clean: torch.Tensor, threat: ThreatModel) -> None:
    """Raise ThreatModelViolation unless every adversarial image is in [0, 1] and within eps of its clean image."""
    if not torch.isfinite(adv).all():
        raise ThreatModelViolation("attack returned non-finite pixels")
    low, high = float(adv.min()), float(adv.max())
    if low < 0.0 or high > 1.0:
        raise ThreatModelViolation(f"attack returned pixels outside [0, 1] (min {low:.6g}, max {high:.6g})")
    delta = (adv - clean).flatten(1)
    if threat.norm == "Linf":
        size, limit = float(delta.abs().amax()), threat.eps + LINF_SLACK
    else:
        size, limit = float(delta.norm(dim=1).max()), threat.eps * (1 + L2_REL_SLACK) + LINF_SLACK
    if size > limit:
        raise ThreatModelViolation(f"attack left the {threat.norm} eps-ball: perturbation {size:.6g} > eps "
                                   f"{threat.eps:.6g}")


def run_attack(attack: torchattacks.Attack, images: torch.Tensor, labels: torch.Tensor,
               threat: ThreatModel) -> torch.Tensor:
    """Adversarial images for ``images``, refused (raised) if any is outside the threat model."""
    adv = attack(images, labels).detach()
    check_threat_model(adv, images, threat)
    return adv
