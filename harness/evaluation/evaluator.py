"""The evaluator contract (after mmengine's BaseMetric): ``process`` turns one batch and the model's
outputs into that batch's state (plain per-sample records and sums); ``compute`` is a pure function of
the merged state. Resume, ranks, shards and ``visionbench rescore`` all rely on that split.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from harness.evaluation.state import EvalState
from harness.metrics import Metric


class Evaluator(ABC):
    @abstractmethod
    def process(self, pass_name: str, batch: Any, outputs: Any) -> EvalState:
        """The state of one batch (records keyed by the batch's sample ids)."""

    @abstractmethod
    def compute(self, state: EvalState) -> list[Metric]:
        """Dataset-level metrics from the merged state; must not depend on batch boundaries."""
