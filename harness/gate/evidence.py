"""A result row's per-sample evidence, asked of the evaluator that computed it: the gate keeps no table of
tasks or record layouts (an evaluator's ``evidence`` says, per metric, where its evidence lives).

- a proportion row -> {sample id: success} (the input of the paired McNemar test);
- a dataset statistic row -> the per-image records of its pass and how to re-accumulate it over a resample
  of them (the input of the paired bootstrap);
- a timing row -> its repeated measurements (the input of the rank test).

A row whose evaluator names no evidence is still gated, with the test that needs no per-sample evidence.
"""
from __future__ import annotations

import json
from typing import Any

from harness.evaluation.evaluator import Evaluator, Outcomes, Resampled
from harness.evaluation.state import EvalState

Params = dict[str, Any]


def stored_evaluator(fingerprint: dict[str, Any] | None, meta: dict[str, Any]) -> Evaluator | None:
    """The evaluator(s) of a stored job, rebuilt from its task fingerprint and its records' meta (None for a
    measured, unscored job)."""
    from harness.registry import UnknownNameError
    from harness.rescore import rebuild_task

    if not fingerprint:
        return None
    try:
        task = rebuild_task(fingerprint)
        return None if task.performance else task.evaluators(meta)
    except UnknownNameError as exc:
        raise ValueError(f"{exc} (is the plugin that provides it installed?)") from None
    except (KeyError, TypeError) as exc:
        raise ValueError(f"the records' meta cannot rebuild task {fingerprint.get('kind')!r}'s evaluator "
                         f"(missing {exc})") from None


def outcome_vector(evaluator: Evaluator | None, metric: str, params: Params,
                   state: EvalState) -> dict[str, bool] | None:
    """{sample id: success} for a proportion row, or None when its evaluator keeps no per-sample outcome."""
    found = evaluator.evidence(metric, params) if evaluator is not None else None
    if not isinstance(found, Outcomes):
        return None
    try:
        return found.vector(state)
    except ValueError as exc:
        raise ValueError(f"{metric} {params}: {exc}") from None


def resampled(evaluator: Evaluator | None, metric: str, params: Params) -> Resampled | None:
    """How a dataset statistic row re-accumulates over resampled records, or None."""
    found = evaluator.evidence(metric, params) if evaluator is not None else None
    return found if isinstance(found, Resampled) else None


# --- timings -----------------------------------------------------------------------------------------------
TIMING_PASS = "timing"


def series_id(params: Params) -> str:
    """Sample id under which a timing job records one measured series: its settings, canonical JSON."""
    return json.dumps({k: v for k, v in params.items()}, sort_keys=True, separators=(",", ":"))


def timing_series(params: Params, state: EvalState) -> list[float] | None:
    """The repeated measurements behind a timing row (record ``{"values": [...]}`` of pass "timing")."""
    record = state.records.get(series_id(params), {}).get(TIMING_PASS)
    return None if record is None else [float(v) for v in record["values"]]
