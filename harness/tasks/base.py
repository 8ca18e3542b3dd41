"""What a task is, and what it gets to work with for one model x dataset job."""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.data.base import ImageSource, take_first
from harness.data.loader import Batch, PixelOp, make_loader
from harness.metrics import Metric
from harness.models.wrapper import LoadedModel


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
    state_dir: Path  # scratch space for resumable partial results; removed when the job finishes
    workers: int = 0
    skip_corrupt: bool = False
    show_progress: bool = True
    skipped: set[int] = field(default_factory=set)  # undecodable images left out (skip policy)

    def batches(self, pixel_op: PixelOp | None = None, desc: str = "") -> Iterator[Batch]:
        """In-order batches on the job's device, with a progress bar."""
        loader = make_loader(self.source, self.model.preprocess, self.batch_size, self.workers, pixel_op,
                             self.skip_corrupt, pin_memory=self.device.type == "cuda")
        for batch in tqdm(loader, desc=desc or self.model.name, leave=False, disable=not self.show_progress,
                          unit="batch"):
            self.skipped.update(batch.skipped)
            if len(batch):
                yield batch.to(self.device, non_blocking=True)

    def first(self, n: int | None) -> "JobContext":
        """This job restricted to the first ``n`` samples (a task's ``n`` param, e.g. attacks on a subset)."""
        return dataclasses.replace(self, source=take_first(self.source, n))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Forward pass that refuses NaN/inf outputs."""
        out = self.model.module(images)
        if not torch.isfinite(out).all():
            raise NonFiniteOutputError(f"model {self.model.name} produced NaN/inf logits")
        return out


class Task(ABC):
    """A kind of evaluation. Subclasses set ``kind``, a ``Params`` dataclass and ``run``."""

    kind: ClassVar[str]
    Params: ClassVar[type]
    performance: ClassVar[bool] = False  # timing tasks run in a separate pass, after accuracy tasks
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
        return {"kind": self.kind, "label": self.label, "params": asdict(self.params)}

    @abstractmethod
    def run(self, ctx: JobContext) -> list[Metric]: ...

    def derive(self, frame: pd.DataFrame) -> list[tuple[pd.Series, Metric]]:
        """Metrics that need several jobs' results (e.g. mCE against a reference model).

        ``frame`` holds this run's rows; return (row of the job the metric belongs to, metric) pairs.
        Derived numbers are recomputed after every run, never cached, and exported like the others.
        """
        return []


def derived_rows(pairs: list[tuple[pd.Series, Metric]]) -> pd.DataFrame:
    """Rows for derived metrics, carrying the provenance of the job each belongs to."""
    rows = []
    for base, metric in pairs:
        row = base.to_dict()
        row.update({"metric": metric.name, "params": dict(metric.params), "value": metric.value, "n": metric.n,
                    "ci_low": metric.ci_low, "ci_high": metric.ci_high, "unit": metric.unit, "derived": True})
        rows.append(row)
    return pd.DataFrame(rows)
