"""Corruption robustness (ImageNet-C style): accuracy per corruption x severity, and CE / mCE across models.

Two modes, labelled in every row's params: ``generated`` corrupts the job's dataset on the fly at its native
resolution (imagecorruptions, seeded per sample; see harness/robustness/corruptions.py); ``canonical`` reads
the precomputed ImageNet-C folders or CIFAR-10-C arrays for the job's dataset's samples (harness/data/
corrupted_folders.py). Clean accuracy is measured on the same samples in both.

CE and mCE (Hendrycks & Dietterich 2019) are derived across jobs against a reference, either a model of the
suite (``reference_model``) or a published table (``reference: alexnet-imagenet-c``):
  CE_c = sum_s E(model, c, s) / sum_s E(ref, c, s);  mCE = mean_c CE_c
  relative CE_c = sum_s (E(model, c, s) - E(model, clean)) / sum_s (E(ref, c, s) - E(ref, clean))
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from harness.data.corrupted_folders import LAYOUTS, base_and_indices, canonical_source
from harness.metrics import Metric, proportion
from harness.robustness.corruptions import (
    REFERENCE_TABLES, SEVERITIES, Corruptor, FillOnceCache, expand_names, resize_crop,
)
from harness.registry import DETAIL_METRICS, TASKS
from harness.robustness.resume import read_json, write_json_atomic
from harness.report import corruption_figures  # noqa: F401  (registers the report section)
from harness.specs import stable_hash
from harness.tasks.base import JobContext, Task
from harness.tasks.classification import TopKAccuracy


# the full matrix goes to the heatmap; tables show clean / mean accuracy and mCE
DETAIL_METRICS.update({"corruption_acc", "corruption_error", "relative_corruption_error"})


@dataclass
class ErrorProfile:
    """Top-1 errors of one model on one dataset: clean, and per corruption per severity."""

    clean: float | None
    by_corruption: dict[str, dict[int, float]]


def corruption_errors(model: ErrorProfile, ref: ErrorProfile) -> tuple[dict[str, float], dict[str, float]]:
    """(CE_c, relative CE_c) for each corruption the reference covers at every severity the model has."""
    ce, relative = {}, {}
    for corruption, errors in model.by_corruption.items():
        ref_errors = ref.by_corruption.get(corruption, {})
        severities = sorted(errors)
        if not severities or any(s not in ref_errors for s in severities):
            continue
        denominator = sum(ref_errors[s] for s in severities)
        if denominator > 0:
            ce[corruption] = sum(errors[s] for s in severities) / denominator
        if model.clean is not None and ref.clean is not None:
            denominator = sum(ref_errors[s] - ref.clean for s in severities)
            if denominator != 0:
                relative[corruption] = sum(errors[s] - model.clean for s in severities) / denominator
    return ce, relative


def table_profile(name: str) -> ErrorProfile:
    """A published table of severity-averaged errors as a profile (the average stands for each severity,
    so the sums over all five severities equal the published ones)."""
    table = REFERENCE_TABLES[name]
    return ErrorProfile(table["clean"], {c: {s: e for s in SEVERITIES} for c, e in table.items() if c != "clean"})


@TASKS.register("corruption")
class CorruptionTask(Task):
    kind = "corruption"

    @dataclass
    class Params:
        corruptions: list[str] = field(default_factory=lambda: ["common"])  # names or groups (common, noise, ...)
        severities: list[int] = field(default_factory=lambda: list(SEVERITIES))
        mode: Literal["generated", "canonical"] = "generated"
        layout: Literal["imagenet-c", "cifar10-c"] | None = None  # canonical: how ``root`` is laid out
        root: str | None = None  # canonical: the ImageNet-C / CIFAR-10-C directory; may use {data_root}
        reference_model: str | None = None  # a model of this suite: CE/mCE relative to it
        reference: Literal["alexnet-imagenet-c"] | None = None  # or a published reference table
        precrop: list[int] | None = None  # [resize, crop] before corrupting, e.g. ImageNet-C's [256, 224]
        n: int | None = None  # evaluate only the first n samples
        cache_mb: int = 512  # corrupted images kept in memory for the next models (generated mode)

        def validate(self, where) -> None:
            try:
                self.corruptions = expand_names(self.corruptions)
            except ValueError as exc:
                raise where.error(f"corruptions: {exc}") from None
            if not self.corruptions:
                raise where.error("corruptions: list at least one corruption")
            if not self.severities or any(s not in SEVERITIES for s in self.severities):
                raise where.error(f"severities: must be among 1..5, got {self.severities}")
            self.severities = sorted(set(self.severities))
            if self.mode == "canonical" and (self.root is None or self.layout is None):
                raise where.error(f"canonical mode needs 'root' and 'layout' ({' or '.join(LAYOUTS)})")
            if self.mode == "generated" and (self.root is not None or self.layout is not None):
                raise where.error("'root' and 'layout' are for canonical mode (mode: canonical)")
            if self.reference_model and self.reference:
                raise where.error("give 'reference_model' or 'reference', not both")
            if self.reference:
                uncovered = [c for c in self.corruptions if c not in REFERENCE_TABLES[self.reference]]
                if uncovered:
                    raise where.error(f"reference {self.reference} has no error for {uncovered[0]!r} "
                                      f"(it covers the 15 common corruptions)")
                if self.severities != list(SEVERITIES):
                    raise where.error(f"reference {self.reference} averages severities 1-5; use all five")
            if self.precrop is not None and (len(self.precrop) != 2 or not 0 < self.precrop[1] <= self.precrop[0]):
                raise where.error(f"precrop: expected [resize, crop] with 0 < crop <= resize, got {self.precrop}")
            if self.cache_mb < 0:
                raise where.error("cache_mb: must be >= 0")

    def __init__(self, params: Any, label: str | None = None) -> None:
        super().__init__(params, label)
        self.cache = FillOnceCache(params.cache_mb * 2**20)  # shared by this run's jobs, i.e. across models

    def check_suite(self, suite: Any, where: Any) -> None:
        from harness.suite import expand_data_root

        names = [m.name for m in suite.models]
        if self.params.reference_model is not None and self.params.reference_model not in names:
            raise where.error(f"reference_model: {self.params.reference_model!r} is not a model of this suite "
                              f"(models: {', '.join(names)})")
        if self.params.root is not None:
            self.params.root = expand_data_root(self.params.root, suite.defaults.data_root, Path.cwd())
            if not Path(self.params.root).is_dir():
                raise where.error(f"root: no such directory {self.params.root}")

    def fingerprint(self) -> dict[str, Any]:
        fingerprint = super().fingerprint()
        fingerprint["params"].pop("cache_mb")  # memory budget, not a result
        return fingerprint

    # --- one job -------------------------------------------------------------------------------------------
    def run(self, ctx: JobContext) -> list[Metric]:
        p = self.params
        ctx = ctx.first(p.n)
        cells_file = ctx.state_dir / "cells.json"  # finished (corruption, severity) cells, for resuming
        cells = read_json(cells_file) or {}
        if "clean" not in cells:
            precrop = (lambda image, _: resize_crop(image, *p.precrop)) if p.precrop else None
            cells["clean"] = self._evaluate(ctx, ctx, precrop, "clean")
            write_json_atomic(cells_file, cells)
        clean_labels = cells["clean"]["labels"]
        for corruption in p.corruptions:
            for severity in p.severities:
                key = f"{corruption}/{severity}"
                if key in cells:
                    continue
                view, pixel_op = self._corrupted_view(ctx, corruption, severity)
                result = self._evaluate(ctx, view, pixel_op, f"{corruption} s{severity}")
                if result.pop("labels") != clean_labels:
                    raise ValueError(f"{corruption} severity {severity}: the corrupted images' labels differ from "
                                     f"the clean dataset's (wrong order or split in {view.source.describe()})")
                cells[key] = result
                write_json_atomic(cells_file, cells)
        return self._metrics(cells)

    def _corrupted_view(self, ctx: JobContext, corruption: str, severity: int) -> tuple[JobContext, Any]:
        """The context whose batches are the corrupted images, and the pixel op that makes them (if any)."""
        p = self.params
        if p.mode == "canonical":
            return replace(ctx, source=canonical_source(p.layout, Path(p.root), corruption, severity, ctx.source)), None
        base, sample_ids = base_and_indices(ctx.source)
        corruptor = Corruptor(corruption, severity, ctx.seed, sample_ids, self.cache,
                              dataset_key=stable_hash(base.describe()),
                              precrop=tuple(p.precrop) if p.precrop else None)
        return ctx, corruptor

    def _evaluate(self, ctx: JobContext, view: JobContext, pixel_op: Any, what: str) -> dict[str, Any]:
        accuracy = TopKAccuracy((1,))
        labels: list[int] = []
        with torch.inference_mode():
            for batch in view.batches(pixel_op=pixel_op, desc=f"{ctx.model.name} {what}"):
                accuracy.process(ctx.logits(batch.images), batch.labels)
                labels.extend(batch.labels.tolist())
        return {**accuracy.state(), "labels": labels}

    def _metrics(self, cells: dict[str, dict[str, Any]]) -> list[Metric]:
        p = self.params
        metrics = [proportion("clean_acc", cells["clean"]["k1"], cells["clean"]["n"], mode=p.mode)]
        for corruption in p.corruptions:
            for severity in p.severities:
                cell = cells[f"{corruption}/{severity}"]
                metrics.append(proportion("corruption_acc", cell["k1"], cell["n"], corruption=corruption,
                                          severity=severity, mode=p.mode))
        matrix = [m.value for m in metrics[1:]]
        metrics.append(Metric("mean_corruption_acc", sum(matrix) / len(matrix), metrics[0].n, {"mode": p.mode}))
        return metrics


    # --- across jobs ---------------------------------------------------------------------------------------
    def derive(self, frame: pd.DataFrame) -> list[tuple[pd.Series, Metric]]:
        p = self.params
        if frame.empty or not (p.reference_model or p.reference):
            return []
        reference = p.reference_model or p.reference
        pairs = []
        for dataset, rows in frame.groupby("dataset", sort=False):
            profiles = {model: self._profile(part) for model, part in rows.groupby("model", sort=False)}
            if p.reference:
                ref = table_profile(p.reference)
            elif p.reference_model in profiles:
                ref = profiles[p.reference_model]
            else:
                continue  # the reference model's job failed or was not selected: no CE for this dataset
            for model, profile in profiles.items():
                anchor = rows[(rows["model"] == model) & (rows["metric"] == "clean_acc")]
                if anchor.empty:
                    continue
                base = anchor.iloc[0]
                params = {"mode": p.mode, "reference": reference}
                ce, relative = corruption_errors(profile, ref)
                for name, per_corruption in (("corruption_error", ce), ("relative_corruption_error", relative)):
                    for corruption, value in per_corruption.items():
                        pairs.append((base, Metric(name, value, base["n"], {**params, "corruption": corruption})))
                for name, per_corruption in (("mce", ce), ("relative_mce", relative)):
                    if all(c in per_corruption for c in p.corruptions):
                        value = sum(per_corruption[c] for c in p.corruptions) / len(p.corruptions)
                        pairs.append((base, Metric(name, value, base["n"], params)))
        return pairs

    @staticmethod
    def _profile(rows: pd.DataFrame) -> ErrorProfile:
        clean = rows[rows["metric"] == "clean_acc"]["value"]
        by_corruption: dict[str, dict[int, float]] = {}
        for row in rows[rows["metric"] == "corruption_acc"].itertuples():
            if row.value is not None and not math.isnan(row.value):
                by_corruption.setdefault(row.params["corruption"], {})[int(row.params["severity"])] = 1 - row.value
        return ErrorProfile(1 - float(clean.iloc[0]) if len(clean) else None, by_corruption)

