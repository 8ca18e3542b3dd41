"""Sanity flags that mark a robust-accuracy number as unreliable, in the spirit of AutoAttack's checks.

Each check looks at plain tensors so it can be tested on models built to trip it:
- a forward pass that is not deterministic (randomised defences, dropout left in train mode);
- outputs that are probabilities rather than logits (saturated softmax hides gradients);
- inputs whose loss gradient is all zero or non-finite at the start point (gradient masking);
- a black-box attack (Square) that beats the white-box attacks on the same samples.
An adversarial image outside the threat model is not a flag but an error (attacks.check_threat_model).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.metrics import Metric, declare

OUTPUT_TOLERANCE = 1e-4  # on L2-normalised output rows, as AutoAttack's randomness check
PROBABILITY_TOLERANCE = 1e-5
ACCURACY_TOLERANCE = 0.002  # Square may match white-box accuracy to this much before it counts as stronger


def outputs_differ(first: torch.Tensor, second: torch.Tensor, tol: float = OUTPUT_TOLERANCE) -> bool:
    """Two forwards of the same input disagree (in prediction, or in direction beyond ``tol``)."""
    if not torch.equal(first.argmax(-1), second.argmax(-1)):
        return True
    unit = lambda t: t / (t.norm(dim=-1, keepdim=True) + 1e-10)  # noqa: E731
    return float((unit(first) - unit(second)).norm(dim=-1).max()) > tol


def looks_like_probabilities(outputs: torch.Tensor, tol: float = PROBABILITY_TOLERANCE) -> bool:
    """Every row lies in [0, 1] and sums to 1: the model returns softmax output, not logits."""
    in_range = float(outputs.min()) > -tol and float(outputs.max()) < 1 + tol
    return in_range and bool(((outputs.sum(-1) - 1).abs() < tol).all())


def masked_gradient_count(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> int:
    """How many samples have an all-zero or non-finite cross-entropy gradient w.r.t. the input pixels."""
    pixels = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = nn.functional.cross_entropy(model(pixels), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, pixels)
    flat = grad.flatten(1)
    masked = (flat == 0).all(dim=1) | ~torch.isfinite(flat).all(dim=1)
    return int(masked.sum())


def blackbox_stronger(square_correct: int, whitebox_correct: int, n: int, tol: float = ACCURACY_TOLERANCE) -> bool:
    """Square leaves fewer samples correct than the white-box attack on the same samples."""
    return n > 0 and square_correct / n < whitebox_correct / n - tol


for _flag in ("flag_nondeterministic", "flag_probability_outputs", "flag_masked_gradients", "flag_blackbox_stronger"):
    declare(_flag, "lower", headline=False, description="1 when this sanity check failed")
declare("masked_gradient_share", "lower", headline=False, description="share of samples with a zero input gradient")
declare("robust_reliable", "higher", headline=False,
        description="1 when no sanity check failed; 0 marks robust accuracy as unreliable")


@dataclass
class FlagState:
    """Dataset-level sums of the per-batch observations (plain numbers: saved and merged across resumes)."""

    nondeterministic: bool = False
    probabilities: bool = False
    outputs_checked: int = 0
    masked_gradients: int = 0
    gradients_checked: int = 0
    blackbox_stronger: bool = False
    blackbox_checked: int = 0
    blackbox_queries: int = 0

    def metrics(self) -> list[Metric]:
        flags = {
            "flag_nondeterministic": self.nondeterministic,
            "flag_probability_outputs": self.probabilities,
            "flag_masked_gradients": self.masked_gradients > 0,
            "flag_blackbox_stronger": self.blackbox_stronger,
        }
        checked = {"flag_nondeterministic": self.outputs_checked, "flag_probability_outputs": self.outputs_checked,
                   "flag_masked_gradients": self.gradients_checked, "flag_blackbox_stronger": self.blackbox_checked}
        out = [Metric(name, float(raised), checked[name]) for name, raised in flags.items()]
        out[3].params = {"square_queries": self.blackbox_queries}  # the check's budget, stated with it
        share = self.masked_gradients / self.gradients_checked if self.gradients_checked else float("nan")
        out.append(Metric("masked_gradient_share", share, self.gradients_checked))
        out.append(Metric("robust_reliable", float(not any(flags.values())), max(checked.values())))
        return out
