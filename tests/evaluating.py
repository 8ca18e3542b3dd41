"""Feeding an evaluator by hand, as the loop does: one canonical output, under a pass name."""
from __future__ import annotations

from typing import Any

from harness.evaluation.evaluator import Evaluator, Outputs


def outputs_for(evaluator: Evaluator, value: Any, pass_name: str = "main") -> Outputs:
    """``value`` as the output kind the evaluator reads first."""
    return Outputs(pass_name, {evaluator.needs[0]: value})


def batch_and_outputs(evaluator: Evaluator, batch_and_value: tuple[Any, Any], pass_name: str = "main") -> tuple:
    batch, value = batch_and_value
    return batch, outputs_for(evaluator, value, pass_name)
