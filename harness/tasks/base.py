"""What a task is, and what it gets to work with for one model x dataset job.

An accuracy task declares its passes over the data (one, or clean + one per corruption cell), how to get
outputs for a batch (a forward pass, or an attack), and its evaluator; the runner owns the loop
(harness/evaluation/loop.py). A performance task (latency) measures instead, in its own pass.
"""
from __future__ import annotations

import dataclasses
from abc import ABC
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Iterator

import pandas as pd
import torch

from harness.data.base import ImageSource, take_sample
from harness.data.loader import Batch, PixelOp, make_loader
from harness.evaluation.evaluator import Evaluator
from harness.evaluation.outputs import check_logits
from harness.metrics import Metric
from harness.models.wrapper import LoadedModel, Preprocess
from harness.progress import progress


class NonFiniteOutputError(RuntimeError):
    """The model produced NaN or inf; the job fails rather than reporting a meaningless number."""


@dataclass
class JobContext:
    """Everything a task needs for one model x dataset job."""

    model: LoadedModel
    source: ImageSource
    device: torch.device
    batch_size: int
    seed: int
    workers: int = 0
    skip_corrupt: bool = False
    show_progress: bool = True

    def batches(self, pixel_op: PixelOp | None = None, desc: str = "", source: ImageSource | None = None,
                preprocess: Preprocess | None = None, batch_indices: list[int] | None = None) -> Iterator[Batch]:
        """In-order batches on the job's device (pinned host memory and asynchronous copies on CUDA)."""
        loader = make_loader(source or self.source, preprocess or self.model.preprocess, self.batch_size,
                             self.workers, pixel_op, self.skip_corrupt, pin_memory=self.device.type == "cuda",
                             batch_indices=batch_indices)
        for batch in progress(loader, desc=desc or self.model.name, enabled=self.show_progress, unit="batch"):
            yield batch.to(self.device, non_blocking=True)

    def sample(self, n: int | None, why: str = "task n") -> "JobContext":
        """This job restricted to ``n`` samples: the first n of the dataset's subset, else a seeded draw."""
        return dataclasses.replace(self, source=take_sample(self.source, n, self.seed, why))

    def logits(self, images: torch.Tensor, module: torch.nn.Module | None = None) -> torch.Tensor:
        """Forward pass of a classifier: (N, C) logits, refusing NaN/inf outputs."""
        out = check_logits((module or self.model.module)(images), self.model.name)
        if not torch.isfinite(out).all():
            raise NonFiniteOutputError(f"model {self.model.name} produced NaN/inf logits")
        return out


@dataclass
class Pass:
    """One sweep over a job's samples. Every pass covers the same sample ids (records join on them)."""

    name: str
    source: ImageSource | None = None  # default: the job's source
    pixel_op: PixelOp | None = None  # e.g. a corruption, applied at native resolution
    preprocess: Preprocess | None = None  # default: the model's own eval transform
    needs_grad: bool = False  # attacks: no inference_mode around ``infer``


class Task(ABC):
    """A kind of evaluation. Subclasses set ``kind``, a ``Params`` dataclass, and the pass/infer/evaluator trio."""

    kind: ClassVar[str]
    Params: ClassVar[type]
    version: ClassVar[int] = 1  # bump when a change alters this task's numbers: it is part of cache keys
    performance: ClassVar[bool] = False  # timing tasks run in a separate pass, after accuracy tasks
    target_kind: ClassVar[str] = "class"  # the dataset targets an accuracy task scores (evaluation/samples.py)
    output_kind: ClassVar[str] = "logits"  # the canonical model output it needs (evaluation/outputs.py)
    # the output kind of saved predictions (source: predictions) it scores; None: it needs a forward pass
    prediction_kind: ClassVar[str | None] = None
    # attacks average their loss over the batch, so float rounding can flip a near-zero gradient sign:
    # for such tasks the batch size is part of the cache key
    batch_size_matters: ClassVar[bool] = False

    def __init__(self, params: Any, label: str | None = None) -> None:
        self.params = params
        self.label = label or self.kind

    def check_suite(self, suite: Any, where: Any) -> None:
        """Cross-checks against the whole suite (e.g. a reference model exists); raise where.error(...)."""

    def fingerprint(self) -> dict[str, Any]:
        """What determines this task's numbers; part of each job's cache key."""
        return {"kind": self.kind, "version": self.version, "label": self.label, "params": asdict(self.params)}

    # --- accuracy tasks: the runner's loop calls these ------------------------------------------------------
    def prepare(self, ctx: JobContext) -> JobContext:
        """The job's context as this task evaluates it (restricted to the task's ``n`` samples), after checking
        that the data and the model are of the kinds the task scores."""
        if ctx.source.target_kind != self.target_kind:
            raise ValueError(f"dataset {ctx.source.name!r} has {ctx.source.target_kind} targets, not "
                             f"{self.target_kind} (task {self.label})")
        wanted = self.output_kind if ctx.model.predictions is None else self.prediction_kind
        if wanted is None:
            raise ValueError(forward_pass_needed(ctx.model.name, self.label))
        if ctx.model.output_kind != wanted:
            raise ValueError(f"model {ctx.model.name} returns {ctx.model.output_kind}, not {wanted} "
                             f"(task {self.label})")
        return ctx.sample(getattr(self.params, "n", None))

    def passes(self, ctx: JobContext) -> list[Pass]:
        return [Pass("main")]

    def infer(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Batch) -> Any:
        """The outputs the evaluator scores for one batch (default: the model's canonical forward)."""
        return ctx.logits(batch.images)

    def job_meta(self, ctx: JobContext) -> dict[str, Any]:
        """JSON facts about the job that the evaluator needs (saved with the records, for rescoring)."""
        return {"valid_classes": ctx.source.valid_classes()}

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        raise NotImplementedError(f"task {self.kind} has no evaluator")

    # --- performance tasks ----------------------------------------------------------------------------------
    def measure(self, ctx: JobContext) -> list[Metric]:
        raise NotImplementedError(f"task {self.kind} is not a performance task")

    def derive(self, frame: pd.DataFrame) -> list[tuple[pd.Series, Metric]]:
        """Metrics that need several jobs' results (e.g. mCE against a reference model).

        ``frame`` holds this run's rows; return (row of the job the metric belongs to, metric) pairs.
        Derived numbers are recomputed after every run, never cached, and exported like the others.
        """
        return []


def forward_pass_needed(model: str, task: str) -> str:
    return f"model {model} is precomputed predictions; task {task} needs a forward pass"


def derived_rows(pairs: list[tuple[pd.Series, Metric]]) -> pd.DataFrame:
    """Rows for derived metrics, carrying the provenance of the job each belongs to."""
    from harness.metrics import metric_info

    rows = []
    for base, metric in pairs:
        info = metric_info(metric.name)
        row = base.to_dict()
        row.update({"metric": metric.name, "params": dict(metric.params), "value": metric.value, "n": metric.n,
                    "ci_low": metric.ci_low, "ci_high": metric.ci_high, "unit": metric.unit or info.unit,
                    "direction": info.direction, "headline": info.headline, "metric_kind": info.kind,
                    "derived": True})
        rows.append(row)
    return pd.DataFrame(rows)
