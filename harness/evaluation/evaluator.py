"""The evaluator contract (after mmengine's BaseMetric): ``process`` turns one batch and the model's
outputs into that batch's state (plain per-sample records and sums); ``compute`` is a pure function of
the merged state. Resume, ranks, shards and ``visionbench rescore`` all rely on that split.

Every evaluator also says, per metric it computes, where the metric's per-sample evidence lives
(``evidence``): the paired tests of the gate and of the report read it, and never a task's record layout.
See docs/extending.md.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from harness.evaluation.state import EvalState, Record
from harness.metrics import Metric

MAIN_PASS = "main"  # the pass of a task that sweeps its data once
Statistic = Callable[[np.ndarray], float]  # resampled positions into the records -> the metric


def role_pass(role: str, dataset: str) -> str:
    """The name of the pass over a job's role dataset (suite ``roles:``), e.g. ``shifted:digits-printed``."""
    return f"{role}:{dataset}"


def role_of(pass_name: str) -> dict[str, str]:
    """The role and dataset a pass sweeps, as params of its metrics (``{}``: the evaluated dataset)."""
    role, sep, dataset = pass_name.partition(":")
    return {"role": role, "dataset": dataset} if sep else {}


def of_roles(by_pass: dict[str, Any] | None, roles: Any) -> dict[str, Any]:
    """The entries of a pass-keyed mapping (e.g. job meta ``role_classes``) whose pass sweeps one of ``roles``."""
    return {name: value for name, value in (by_pass or {}).items() if role_of(name).get("role") in roles}


@dataclass
class Outputs:
    """The model's outputs for one batch of one pass, by canonical output kind (evaluation/outputs.py)."""

    pass_name: str
    kinds: dict[str, Any]

    def __getitem__(self, kind: str) -> Any:
        return self.first(kind)

    def first(self, *kinds: str) -> Any:
        """The output of the first of ``kinds`` the batch has (e.g. semantic logits, else saved labels)."""
        for kind in kinds:
            if kind in self.kinds:
                return self.kinds[kind]
        raise KeyError(f"pass {self.pass_name!r}: no {' or '.join(kinds)} output (the batch has "
                       f"{', '.join(self.kinds) or 'none'})")


@dataclass(frozen=True)
class Outcomes:
    """A proportion's evidence: per sample of one pass, success or not (McNemar / Newcombe in the gate)."""

    pass_name: str
    success: Callable[[Record], bool]

    def vector(self, state: EvalState) -> dict[str, bool]:
        try:
            return {sample_id: bool(self.success(r)) for sample_id, r in state.pass_records(self.pass_name)}
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"records of pass {self.pass_name!r} do not hold the outcome: missing {exc}") from None


@dataclass(frozen=True)
class Resampled:
    """A dataset statistic's evidence: the per-sample records of its passes and how to re-accumulate the
    metric over any resample of them (a paired bootstrap is then an accumulation, not a re-evaluation).

    ``prepare`` gets one list of records per pass of ``passes`` then of ``given``, and returns the statistic
    of positions into the concatenation of the ``passes`` lists. The bootstrap resamples within each pass
    (stratified: an OOD AUROC keeps its in-distribution and OOD counts); ``given`` passes are held fixed
    (e.g. the training split a feature detector fits on).
    """

    passes: tuple[str, ...]
    prepare: Callable[..., Statistic]
    given: tuple[str, ...] = ()

    def statistic(self, records: dict[str, list[Record]]) -> Statistic:
        try:
            return self.prepare(*(records[name] for name in (*self.passes, *self.given)))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"per-sample records do not hold what the metric needs: missing {exc}") from None


Evidence = Outcomes | Resampled


class Evaluator(ABC):
    # the canonical outputs it reads (an extra evaluator attached to a task must get them from the pass)
    needs: ClassVar[tuple[str, ...]] = ("logits",)
    # dataset roles the evaluator brings to the task it attaches to (role -> "one" | "many"), e.g. OOD sets
    dataset_roles: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        """The state of one batch (records keyed by the batch's sample ids, under ``outputs.pass_name``)."""

    @abstractmethod
    def compute(self, state: EvalState) -> list[Metric]:
        """Dataset-level metrics from the merged state; must not depend on batch boundaries."""

    @classmethod
    def check_roles(cls, params: Any, roles: dict[str, list[str]], where: Any) -> None:
        """Suite-time cross-checks of an attached evaluator's parameters against its task's dataset roles
        (so a mistake stops the run before any forward pass); raise where.error(...)."""

    def evidence(self, metric: str, params: dict[str, Any]) -> Evidence | None:
        """Where the per-sample evidence of one computed row lives; None: the gate tests the row's counts."""
        return None
