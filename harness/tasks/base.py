"""What a task is, and what it gets to work with for one model x dataset job.

An accuracy task declares its passes over the data (one, or clean + one per corruption cell), how to get
outputs for a batch (a forward pass, or an attack), and its evaluator; the runner owns the loop
(harness/loop.py). A performance task (latency) measures instead, in its own pass.
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
from harness.data.preprocess import Preprocess
from harness.evaluation.composite import EvaluatorSet
from harness.evaluation.evaluator import Evaluator, role_pass
from harness.evaluation.outputs import check_logits
from harness.metrics import Metric
from harness.models.wrapper import LoadedModel
from harness.progress import progress
from harness.registry import EVALUATORS


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
    roles: dict[str, list[ImageSource]] = dataclasses.field(default_factory=dict)  # datasets by role

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
        return self._finite(check_logits((module or self.model.module)(images), self.model.name))

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features and logits of a classifier from one forward pass, refusing NaN/inf in either."""
        module = self.model.module
        if module is None or not module.has_features:
            how = "saved predictions hold no features" if module is None else \
                "its network has no timm-style forward_features/forward_head"
            raise ValueError(f"model {self.model.name} gives no penultimate features ({how}); an evaluator that reads "
                             f"features needs a timm or zoo classifier")
        features, logits = module.features_and_logits(images)
        if not torch.isfinite(features).all():
            raise NonFiniteOutputError(f"model {self.model.name} produced NaN/inf features")
        return features, self._finite(check_logits(logits, self.model.name))

    def _finite(self, logits: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(logits).all():
            raise NonFiniteOutputError(f"model {self.model.name} produced NaN/inf logits")
        return logits


@dataclass
class Pass:
    """One sweep over a job's samples (or over a role dataset's, with ``source``). The passes over one
    source cover the same sample ids (records join on them)."""

    name: str
    source: ImageSource | None = None  # default: the job's source
    pixel_op: PixelOp | None = None  # e.g. a corruption, applied at native resolution
    preprocess: Preprocess | None = None  # default: the model's own eval transform
    needs_grad: bool = False  # attacks: no inference_mode around ``infer``


@dataclass(frozen=True)
class Attached:
    """An extra evaluator on a task: its name in results, registered kind and parameters."""

    name: str
    kind: str
    params: Any


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
    output_kinds: ClassVar[tuple[str, ...]] = ()  # when set, every output it accepts (it converts the others)
    produces: ClassVar[str | None] = None  # the output kind ``infer`` returns, when not ``output_kind``
    # the dataset roles a job of this task may name beside ``eval``: role -> "one" or "many" datasets
    dataset_roles: ClassVar[dict[str, str]] = {}
    # attacks average their loss over the batch, so float rounding can flip a near-zero gradient sign:
    # for such tasks the batch size is part of the cache key
    batch_size_matters: ClassVar[bool] = False

    def __init__(self, params: Any, label: str | None = None) -> None:
        self.params = params
        self.label = label or self.kind
        self.attached: list[Attached] = []  # extra evaluators fed the same passes (suite ``evaluators:``)
        self.roles: dict[str, list[str]] = {}  # role -> suite dataset names (suite ``roles:``)

    def attach(self, kind: str, params: Any, name: str | None = None) -> None:
        """Feed every pass of this task to the registered evaluator ``kind`` too (no second forward pass)."""
        self.attached.append(Attached(name or kind, kind, params))

    @classmethod
    def offers(cls) -> tuple[str, ...]:
        """The output kinds a pass of this task can hand its evaluators."""
        return (cls.produces or cls.output_kind,)

    @classmethod
    def protocol_facts(cls, params: dict[str, Any], job_metas: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(label, value) facts of this task's protocol for a report table, from the stored task params and the
        jobs' ``job_meta`` (e.g. an attack's norm, steps and eps units); the report lists them as given."""
        return []

    def check_suite(self, suite: Any, where: Any) -> None:
        """Cross-checks against the whole suite (e.g. a reference model exists); raise where.error(...)."""

    def fingerprint(self) -> dict[str, Any]:
        """What determines this task's numbers; part of each job's cache key."""
        fingerprint = {"kind": self.kind, "version": self.version, "label": self.label, "params": asdict(self.params)}
        if self.roles:
            fingerprint["roles"] = {role: list(names) for role, names in self.roles.items()}
        if self.attached:
            fingerprint["evaluators"] = [{"name": a.name, "kind": a.kind, "params": asdict(a.params)}
                                         for a in self.attached]
        return fingerprint

    # --- accuracy tasks: the runner's loop calls these ------------------------------------------------------
    def prepare(self, ctx: JobContext) -> JobContext:
        """The job's context as this task evaluates it (restricted to the task's ``n`` samples), after checking
        that the data and the model are of the kinds the task scores."""
        if ctx.source.target_kind != self.target_kind:
            raise ValueError(f"dataset {ctx.source.name!r} has {ctx.source.target_kind} targets, not "
                             f"{self.target_kind} (task {self.label})")
        if ctx.model.predictions is not None:  # saved outputs: the kind of predictions the task scores
            if self.prediction_kind is None:
                raise ValueError(forward_pass_needed(ctx.model.name, self.label))
            accepted = (self.prediction_kind,)
        else:
            accepted = self.output_kinds or (self.output_kind,)
        if ctx.model.output_kind not in accepted:
            raise ValueError(f"model {ctx.model.name} returns {ctx.model.output_kind}, not {' or '.join(accepted)} "
                             f"(task {self.label})")
        return ctx.sample(getattr(self.params, "n", None))

    def passes(self, ctx: JobContext) -> list[Pass]:
        return [Pass("main")] + self.role_passes(ctx)

    def role_passes(self, ctx: JobContext) -> list[Pass]:
        """One pass per role dataset of the job, named ``<role>:<dataset>`` (see ``role_of``)."""
        return [Pass(role_pass(role, source.name), source=source) for role, sources in ctx.roles.items()
                for source in sources]

    def infer(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Batch) -> Any:
        """The outputs the evaluator scores for one batch (default: the model's canonical forward)."""
        return ctx.logits(batch.images)

    def infer_kind(self, ctx: JobContext) -> str:
        """The output kind ``infer`` returns for this job."""
        return self.produces or self.output_kind

    def outputs(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Batch,
                needs: tuple[str, ...]) -> dict[str, Any]:
        """Every output kind the job's evaluators read (``needs``), from one forward pass (default: the task's own
        output; ClassificationTask adds ``features``)."""
        return {self.infer_kind(ctx): self.infer(ctx, pass_, batch_index, batch)}

    def job_meta(self, ctx: JobContext) -> dict[str, Any]:
        """JSON facts about the job that the evaluator needs (saved with the records, for rescoring)."""
        meta: dict[str, Any] = {"valid_classes": ctx.source.valid_classes()}
        if ctx.roles:
            meta["role_classes"] = {role_pass(role, source.name): source.valid_classes()
                                    for role, sources in ctx.roles.items() for source in sources}
        return meta

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        """The task's own evaluator."""
        raise NotImplementedError(f"task {self.kind} has no evaluator")

    def evaluators(self, meta: dict[str, Any]) -> Evaluator:
        """What scores the job: the task's own evaluator, with the attached ones beside it."""
        own = self.evaluator(meta)
        if not self.attached:
            return own
        return EvaluatorSet(own, {a.name: EVALUATORS.get(a.kind).attach(a.params, meta) for a in self.attached})

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
