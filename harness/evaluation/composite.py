"""Several evaluators over one sweep: a task's own evaluator and the extra ones a suite attaches to it
(``evaluators:`` on a task), all fed the same outputs of every pass, so the model runs once.

The own evaluator's records and sums keep their names, so attaching others changes none of its numbers or
records. An extra evaluator's records go under the pass ``<pass>|<name>`` and its sums under
``<name>|<sum>``; each evaluator computes on its own view of the merged state, and an extra one's rows carry
``evaluator: <name>`` in their params (the gate finds their evidence by it).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.evaluation.evaluator import Evaluator, Evidence, Outputs, Resampled
from harness.evaluation.state import EvalState
from harness.metrics import Metric

SEPARATOR = "|"


class EvaluatorSet(Evaluator):
    def __init__(self, own: Evaluator, extras: dict[str, Evaluator]) -> None:
        self.own, self.extras = own, dict(extras)

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys(kind for e in (self.own, *self.extras.values()) for kind in e.needs))

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        state = self.own.process(batch, outputs)
        for name, evaluator in self.extras.items():
            extra = evaluator.process(batch, outputs)
            state.merge(EvalState(
                {sid: {f"{p}{SEPARATOR}{name}": r for p, r in passes.items()} for sid, passes in extra.records.items()},
                {f"{name}{SEPARATOR}{key}": value for key, value in extra.sums.items()}))
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        metrics = self.own.compute(own_view(state))
        for name, evaluator in self.extras.items():
            metrics += [replace(m, params={**m.params, "evaluator": name})
                        for m in evaluator.compute(extra_view(state, name))]
        return metrics

    def evidence(self, metric: str, params: dict[str, Any]) -> Evidence | None:
        name = params.get("evaluator")
        if name not in self.extras:
            return self.own.evidence(metric, params)
        found = self.extras[name].evidence(metric, {k: v for k, v in params.items() if k != "evaluator"})

        def renamed(pass_name: str) -> str:  # the pass as the merged state names it
            return f"{pass_name}{SEPARATOR}{name}"

        if isinstance(found, Resampled):
            return replace(found, passes=tuple(map(renamed, found.passes)), given=tuple(map(renamed, found.given)))
        return replace(found, pass_name=renamed(found.pass_name)) if found is not None else None


def own_view(state: EvalState) -> EvalState:
    """The state as the task's own evaluator wrote it (the extra evaluators' records and sums left out)."""
    records = {sid: kept for sid, passes in state.records.items()
               if (kept := {p: r for p, r in passes.items() if SEPARATOR not in p})}
    return EvalState(records, {key: value for key, value in state.sums.items() if SEPARATOR not in key})


def extra_view(state: EvalState, name: str) -> EvalState:
    """The state as the extra evaluator ``name`` wrote it, under its own pass and sum names."""
    suffix, prefix = f"{SEPARATOR}{name}", f"{name}{SEPARATOR}"
    records = {sid: kept for sid, passes in state.records.items()
               if (kept := {p[:-len(suffix)]: r for p, r in passes.items() if p.endswith(suffix)})}
    return EvalState(records, {key[len(prefix):]: value for key, value in state.sums.items() if key.startswith(prefix)})
