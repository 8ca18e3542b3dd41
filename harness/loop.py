"""The evaluation loop every accuracy task shares; the runner calls it, tasks only say what a batch means.

For each pass of a task over the job's samples: load the batches this rank owns, skip those saved by an
interrupted run, get the outputs every evaluator of the job needs (one forward pass), let the evaluators turn
them into that batch's state and save it. The (pass, batch, state) pieces of all ranks are merged in order
into the job's state. The evaluators' work runs one batch behind the forward passes on a thread of its own
and, on CUDA, loading one batch ahead on another (harness/pipeline.py), so the main thread runs the model.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import torch

from harness.data.loader import batch_count
from harness.distributed import World
from harness.evaluation.evaluator import Evaluator, Outputs
from harness.evaluation.partial import PartialStore
from harness.evaluation.state import EvalState
from harness.metrics import Metric
from harness.pipeline import overlaps_forward, run_overlapped
from harness.tasks.base import JobContext, Pass, Task

Piece = tuple[int, int, dict[str, Any]]  # (pass index, batch index, state as JSON)


def evaluate_shard(task: Task, ctx: JobContext, partial: PartialStore, world: World,
                   evaluator: Evaluator | None = None) -> list[Piece]:
    """This rank's batch states for every pass of ``task`` (``ctx`` as prepared by ``task.prepare``).

    Pass the ``evaluator`` that will compute the job's metrics, so what it works out while processing (the
    detection evaluator's per-image COCO evaluations) is there when it computes."""
    evaluator = task.evaluators(task.job_meta(ctx)) if evaluator is None else evaluator
    pieces: list[Piece] = []
    try:
        for pass_index, pass_ in enumerate(task.passes(ctx)):
            states = _evaluate_pass(task, ctx, evaluator, pass_index, pass_, partial, world)
            pieces += [(pass_index, b, state.to_json()) for b, state in states.items()]
    except BaseException:
        partial.flush()  # finished batches survive an interruption (Ctrl-C, a failing batch)
        raise
    return pieces


def _evaluate_pass(task: Task, ctx: JobContext, evaluator: Evaluator, pass_index: int, pass_: Pass,
                   partial: PartialStore, world: World) -> dict[int, EvalState]:
    """batch index -> state, for this rank's batches of one pass (saved ones reused)."""
    source, size = pass_.source or ctx.source, ctx.batch_size
    ids = [source.sample_id(i) for i in range(len(source))]
    mine = world.my_batches(batch_count(source, size))
    done = {b: s for b in mine if (s := partial.load(pass_index, pass_.name, b, ids[b * size:(b + 1) * size]))
            is not None}
    todo = [b for b in mine if b not in done]
    grad_mode = contextlib.nullcontext if pass_.needs_grad else torch.inference_mode

    def forward(item: tuple[int, Any]) -> dict[str, Any] | None:
        """The outputs every evaluator needs (on the caller's thread: the model runs there alone)."""
        b, batch = item
        if not len(batch):
            return None
        with grad_mode():
            if ctx.model.predictions is not None:  # saved outputs, looked up by sample: no forward pass
                return {ctx.model.output_kind: ctx.model.predictions.outputs(batch, source)}
            return task.outputs(ctx, pass_, b, batch, evaluator.needs)

    def digest(item: tuple[int, Any], outputs: dict[str, Any] | None) -> None:
        """The batch's state from the model's outputs, saved (on the background thread)."""
        b, batch = item
        with grad_mode():
            state = EvalState() if outputs is None else evaluator.process(batch, Outputs(pass_.name, outputs))
        if batch.skipped:
            state.count_skipped(pass_.name, len(batch.skipped))
        partial.save(pass_index, pass_.name, b, ids[b * size:(b + 1) * size], state)
        done[b] = state

    batches = ctx.batches(pass_.pixel_op, f"{ctx.model.name} {task.label} {pass_.name}", source, pass_.preprocess,
                          todo) if todo else iter(())
    run_overlapped(zip(todo, batches), forward, digest, prefetch=overlaps_forward(ctx.device))
    return {b: done[b] for b in mine}


def merge_pieces(per_rank: list[list[Piece]]) -> EvalState:
    """One state from every rank's pieces, merged in (pass, batch) order: the order of one process."""
    ordered = sorted((piece for pieces in per_rank for piece in pieces), key=lambda p: (p[0], p[1]))
    merged = EvalState()
    for _, _, state in ordered:
        merged.merge(EvalState.from_json(state))
    return merged


def run_task(task: Task, ctx: JobContext, state_dir: Path | None = None) -> list[Metric]:
    """One task on one job in this process, outside a suite (tests, benchmarks, notebooks).

    With ``state_dir`` finished batches are saved there and reused, as the runner does under ``partial/``."""
    if task.performance:
        return task.measure(ctx)
    ctx = task.prepare(ctx)
    evaluator = task.evaluators(task.job_meta(ctx))
    with tempfile.TemporaryDirectory() as scratch:  # with a state_dir, every finished batch is saved at once
        partial = PartialStore(Path(state_dir), flush_seconds=0) if state_dir is not None else PartialStore(Path(scratch))
        state = merge_pieces([evaluate_shard(task, ctx, partial, World(), evaluator)])
    return evaluator.compute(state)
