"""Corruption robustness (ImageNet-C style): accuracy per corruption x severity, and CE / mCE across models.

On detection, segmentation and panoptic data the images are corrupted and the targets kept; each cell is scored
by that task's own evaluator, and mPC / rPC summarise them (harness/robustness/mpc.py). Otherwise (class targets):

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from harness.data.base import base_and_indices
from harness.data.corrupted_folders import LAYOUTS, canonical_source
from harness.data.loader import Batch
from harness.data.preprocess import Preprocess
from harness.formatting import listing
from harness.evaluation.evaluator import Evaluator, Outcomes, Outputs
from harness.evaluation.state import EvalState
from harness.evaluation.topk import restrict_to
from harness.metrics import Metric, declare, proportion
from harness.models.wrapper import ResizeInput
from harness.registry import TASKS, UnknownNameError
from harness.robustness.mpc import HEADLINE_METRIC, PerformanceUnderCorruption
from harness.schema import SuiteError, Where, build
from harness.robustness.corruptions import (
    REFERENCE_TABLES, SEVERITIES, Corruptor, FillOnceCache, expand_names, resize_crop,
)
from harness.specs import expand_data_root, stable_hash
from harness.tasks.base import JobContext, Pass, Task

# the full matrix goes to the heatmap (detail); tables show clean / mean accuracy and mCE
declare("corruption_acc", "higher", headline=False, kind="proportion", description="top-1 on one corruption x severity")
declare("mean_corruption_acc", "higher", description="mean top-1 over corruptions x severities")
declare("corruption_error", "lower", headline=False, description="CE_c: errors relative to the reference model")
declare("relative_corruption_error", "lower", headline=False, description="relative CE_c (Hendrycks & Dietterich)")
declare("mce", "lower", description="mean corruption error relative to the reference (ImageNet-C's mCE)")
declare("relative_mce", "lower", description="relative mCE")
# target kind -> the task that scores one pass over such data
SCORING_TASK = {"detection": "detection", "semantic": "segmentation", "panoptic": "panoptic"}


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
        # dense data: params of the task that scores each cell, e.g. {iou_types: [bbox, segm]} for detection
        scoring: dict[str, Any] = field(default_factory=dict)

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


    @classmethod
    def protocol_facts(cls, params: dict[str, Any], job_metas: list[dict[str, Any]]) -> list[tuple[str, str]]:
        corruptions = params.get("corruptions") or []
        reference = params.get("reference_model") or params.get("reference")
        return [("corruptions", f"{len(corruptions)} ({', '.join(corruptions)})" if corruptions else "–"),
                ("severities", listing(params.get("severities", []))),
                ("corruption mode", f"{params.get('mode', '?')}" + (f", CE relative to {reference}" if reference else ""))]
    def __init__(self, params: Any, label: str | None = None) -> None:
        super().__init__(params, label)
        self.cache = FillOnceCache(params.cache_mb * 2**20)  # shared by this run's jobs, i.e. across models
        self._scorers: dict[str, Task] = {}

    def check_suite(self, suite: Any, where: Any) -> None:
        if self.params.scoring:
            self._check_scoring(where)
        names = [m.name for m in suite.models]
        if self.params.reference_model is not None and self.params.reference_model not in names:
            raise where.error(f"reference_model: {self.params.reference_model!r} is not a model of this suite "
                              f"(models: {', '.join(names)})")
        if self.params.root is not None:
            self.params.root = expand_data_root(self.params.root, suite.defaults.data_root,
                                               Path(where.file).resolve().parent)
            if not Path(self.params.root).is_dir():
                raise where.error(f"root: no such directory {self.params.root}")

    def _check_scoring(self, where: Any) -> None:
        """``scoring`` must suit the scoring task of at least one dense target kind (which one a job uses
        depends on its dataset, known only then)."""
        errors = []
        for target_kind in SCORING_TASK:
            try:
                self.scorer(target_kind, where.child("scoring", self.params.scoring))
                return
            except SuiteError as exc:
                errors.append(exc)
            except UnknownNameError:
                continue
        raise errors[0]

    def scorer(self, target_kind: str, where: Any = None) -> Task:
        """The task that scores this dataset's targets on each pass (detection, segmentation, panoptic)."""
        if target_kind not in SCORING_TASK:
            raise ValueError(f"the corruption task scores class, {', '.join(SCORING_TASK)} targets, "
                             f"not {target_kind}")
        if target_kind not in self._scorers:
            task_cls = TASKS.get(SCORING_TASK[target_kind])
            where = where or Where(Path("<suite>"), 0, "corruption.scoring")
            self._scorers[target_kind] = task_cls(build(task_cls.Params, dict(self.params.scoring), where))
        return self._scorers[target_kind]

    def fingerprint(self) -> dict[str, Any]:
        fingerprint = super().fingerprint()
        fingerprint["params"].pop("cache_mb")  # memory budget, not a result
        return fingerprint

    # --- one job: a clean pass, then one pass per corruption x severity ------------------------------------
    version = 2  # 2: per-sample records; ImageNet-C crops evaluated with identity geometry

    def crop_space(self) -> Preprocess | None:
        """Identity geometry at the crop size when the images are crops already (ImageNet-C files, or
        ``precrop``): the model's own resize then happens inside the model wrapper, never twice."""
        p = self.params
        if p.precrop:
            return Preprocess((3, p.precrop[1], p.precrop[1]), crop_mode="none")
        if p.mode == "canonical" and p.layout == "imagenet-c":
            return Preprocess((3, 224, 224), crop_mode="none")
        return None

    def prepare(self, ctx: JobContext) -> JobContext:
        target_kind = ctx.source.target_kind
        if target_kind == "class" or ctx.model.predictions is not None:
            return super().prepare(ctx)  # (which refuses saved predictions: corrupting needs a forward pass)
        if self.params.mode != "generated" or self.params.precrop:
            raise ValueError(f"dataset {ctx.source.name!r}: canonical corruption folders and precrop are for "
                             f"classification; {target_kind} data is corrupted on the fly (mode: generated)")
        return self.scorer(target_kind).prepare(ctx).sample(self.params.n)

    def passes(self, ctx: JobContext) -> list[Pass]:
        p = self.params
        space = self.crop_space()
        precrop = tuple(p.precrop) if p.precrop else ((256, 224) if space is not None else None)
        clean_op = (lambda image, _: resize_crop(image, *precrop)) if precrop else None
        passes = [Pass("clean", pixel_op=clean_op, preprocess=space)]
        for corruption in p.corruptions:
            for severity in p.severities:
                name = f"{corruption}/{severity}"
                if p.mode == "canonical":
                    source = canonical_source(p.layout, Path(p.root), corruption, severity, ctx.source)
                    passes.append(Pass(name, source=source, preprocess=space))
                else:
                    base, sample_ids = base_and_indices(ctx.source)
                    corruptor = Corruptor(corruption, severity, ctx.seed, sample_ids, self.cache,
                                          dataset_key=stable_hash(base.describe()), precrop=precrop)
                    passes.append(Pass(name, pixel_op=corruptor, preprocess=space))
        return passes

    def infer(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Batch) -> Any:
        if ctx.source.target_kind != "class":
            return self.scorer(ctx.source.target_kind).infer(ctx, pass_, batch_index, batch)
        space = self.crop_space()
        module = ctx.model.module
        if space is not None and tuple(space.input_size) != tuple(ctx.model.preprocess.input_size):
            module = ResizeInput(module, tuple(ctx.model.preprocess.input_size[1:]))
        return ctx.logits(batch.images, module)

    def infer_kind(self, ctx: JobContext) -> str:
        target_kind = ctx.source.target_kind
        return "logits" if target_kind == "class" else self.scorer(target_kind).infer_kind(ctx)

    def job_meta(self, ctx: JobContext) -> dict[str, Any]:
        target_kind = ctx.source.target_kind
        if target_kind == "class":
            return super().job_meta(ctx)
        return {**self.scorer(target_kind).job_meta(ctx), "target_kind": target_kind}

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        target_kind = meta.get("target_kind", "class")
        if target_kind == "class":
            return CorruptionEvaluator(self.params, meta.get("valid_classes"))
        cells = [f"{c}/{s}" for c in self.params.corruptions for s in self.params.severities]
        return PerformanceUnderCorruption(self.scorer(target_kind).evaluator(meta), HEADLINE_METRIC[target_kind],
                                          cells, self.params.mode)


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
        # plain arrays, not filtered copies of the (wide) frame: publishing derives this for every model
        clean: float | None = None
        by_corruption: dict[str, dict[int, float]] = {}
        for metric, value, params in zip(rows["metric"].to_numpy(), rows["value"].to_numpy(dtype=float),
                                         rows["params"].to_numpy()):
            if metric == "clean_acc" and clean is None:
                clean = 1 - float(value)
            elif metric == "corruption_acc" and not math.isnan(value):
                by_corruption.setdefault(params["corruption"], {})[int(params["severity"])] = 1 - value
        return ErrorProfile(clean, by_corruption)



class CorruptionEvaluator(Evaluator):
    """Records per sample and pass (clean, or corruption/severity): label and top-1 correctness."""

    def __init__(self, params: Any, valid_classes: list[int] | None) -> None:
        self.params, self.valid_classes = params, valid_classes

    def process(self, batch: Batch, outputs: Outputs) -> EvalState:
        state = EvalState()
        predicted = restrict_to(outputs["logits"], self.valid_classes).argmax(-1).tolist()
        for sample_id, label, guess in zip(batch.ids, batch.labels.tolist(), predicted):
            state.add_record(sample_id, outputs.pass_name, {"label": label, "correct": guess == label})
        return state

    def evidence(self, metric: str, params: dict[str, Any]) -> Outcomes | None:
        if metric == "clean_acc":
            return Outcomes("clean", lambda r: r["correct"])
        if metric == "corruption_acc":
            return Outcomes(f"{params['corruption']}/{int(params['severity'])}", lambda r: r["correct"])
        return None

    def compute(self, state: EvalState) -> list[Metric]:
        p = self.params
        clean = dict(state.pass_records("clean"))
        metrics = [proportion("clean_acc", sum(r["correct"] for r in clean.values()), len(clean), mode=p.mode)]
        for corruption in p.corruptions:
            for severity in p.severities:
                cell = dict(state.pass_records(f"{corruption}/{severity}"))
                wrong = next((i for i, r in cell.items() if i not in clean or clean[i]["label"] != r["label"]), None)
                if wrong is not None or len(cell) != len(clean):
                    raise ValueError(f"{corruption} severity {severity}: the corrupted images' samples or labels "
                                     f"differ from the clean dataset's (first: {wrong!r}; wrong order or split?)")
                metrics.append(proportion("corruption_acc", sum(r["correct"] for r in cell.values()), len(cell),
                                          corruption=corruption, severity=severity, mode=p.mode))
        matrix = [m.value for m in metrics[1:]]
        metrics.append(Metric("mean_corruption_acc", sum(matrix) / len(matrix), metrics[0].n, {"mode": p.mode}))
        return metrics
