"""Occlusion robustness: top-1 as patches (or pixels) of the input are dropped, and the area under the
accuracy-fraction curve (harness/robustness/occlusion.py says how the drops are drawn).

One pass over the data: for each batch the clean images and every (variant, fraction) of them go through the
model, so a sample's record holds its whole curve (``clean`` and ``correct[variant][i]`` for ``fractions[i]``)
and the paired tests of the gate and the report see one set of samples. At fraction 0 the images are the
classification task's own, so ``clean_acc`` equals its top-1 on the same samples.

  AUC = (1 / f_max) * integral of accuracy over [0, f_max] (trapezoids through (0, clean accuracy) and every
  fraction), in [0, 1]; relative AUC = AUC / clean accuracy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch

from harness.data.loader import Batch
from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outcomes, Outputs, Resampled, Statistic
from harness.evaluation.previews import image_png, preview_positions
from harness.evaluation.state import EvalState, Record
from harness.evaluation.topk import restrict_to
from harness.formatting import listing
from harness.metrics import Metric, declare, proportion, trapezoid_weights
from harness.models.wrapper import LoadedModel
from harness.registry import TASKS
from harness.robustness import occlusion
from harness.specs import stable_hash
from harness.tasks.base import JobContext, Pass, Task

declare("occlusion_acc", "higher", headline=False, kind="proportion", range=(0.0, 1.0),
        description="top-1 with a fraction of the input's patches (or pixels) dropped")
declare("occlusion_auc", "higher", kind="dataset", range=(0.0, 1.0), record_fields=("clean", "correct"),
        description="area under the accuracy-fraction curve, normalised to [0, 1]",
        protocol="trapezoids through (0, clean accuracy) and each drop fraction, divided by the largest fraction")
declare("occlusion_relative_auc", "higher", headline=False, kind="dataset", record_fields=("clean", "correct"),
        description="occlusion AUC divided by clean accuracy")
PREVIEW_SAMPLES = 2  # samples of the evaluated subset whose occluded images the report shows
PREVIEW_SIDE = 96


def preview_fractions(fractions: list[float]) -> list[float]:
    """The three fractions the report shows (a quarter, half and three quarters along the list)."""
    last = len(fractions) - 1
    return [fractions[i] for i in dict.fromkeys(round(q * last) for q in (0.25, 0.5, 0.75))]


def curve_weights(fractions: list[float]) -> np.ndarray:
    """Trapezoid weights of the points (0, *fractions): AUC = weights @ accuracies."""
    return np.array(trapezoid_weights([0.0, *fractions]))


@TASKS.register("occlusion")
class OcclusionTask(Task):
    kind = "occlusion"
    produces = "occlusion_outcomes"  # per sample: clean correctness and the curve of every variant (``infer``)

    @dataclass
    class Params:
        variants: list[str] = field(default_factory=lambda: ["random", "offset", "pixels"])
        fractions: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(1, 10)])
        patch_size: int = 16  # the paper's patch at ``reference_size``: a grid of reference_size / patch_size
        reference_size: int = 224
        fill: Literal["zero", "mean", "noise"] = "zero"
        reference_model: str | None = None  # a model of the suite: the saliency map of salient / nonsalient
        saliency: Literal["gradient_x_input"] = "gradient_x_input"
        n: int | None = None

        def validate(self, where: Any) -> None:
            unknown = [v for v in self.variants if v not in occlusion.VARIANTS]
            if not self.variants or unknown:
                raise where.error(f"variants: {unknown[0] if unknown else 'none given'!r} is not one of "
                                  f"{', '.join(occlusion.VARIANTS)}")
            self.variants = list(dict.fromkeys(self.variants))
            if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
                raise where.error(f"fractions: list drop fractions in (0, 1] (0 is the clean images), got "
                                  f"{self.fractions}")
            self.fractions = sorted(set(float(f) for f in self.fractions))
            if self.patch_size < 1 or self.reference_size % self.patch_size:
                raise where.error(f"patch_size: {self.patch_size} must divide reference_size {self.reference_size}")
            if self.n is not None and self.n <= 0:
                raise where.error("n: must be positive")
            salient = [v for v in self.variants if v in occlusion.SALIENCY_VARIANTS]
            if salient and self.reference_model is None:
                raise where.error(f"variants: {salient[0]} ranks patches by a reference model's saliency; "
                                  f"name it in reference_model")

        @property
        def grid(self) -> int:
            return self.reference_size // self.patch_size

    def __init__(self, params: Any, label: str | None = None) -> None:
        super().__init__(params, label)
        self.reference_spec: Any = None  # the saliency model's suite entry (check_suite)
        self._reference: LoadedModel | None = None
        self._orders: dict[tuple[str, str], np.ndarray] = {}  # (dataset, sample id) -> cells, most salient first

    @classmethod
    def protocol_facts(cls, params: dict[str, Any], job_metas: list[dict[str, Any]]) -> list[tuple[str, str]]:
        grid = params.get("reference_size", 224) // params.get("patch_size", 16)
        facts = [("occlusion", f"{', '.join(params.get('variants', []))}; fill {params.get('fill', 'zero')}"),
                 ("drop fractions", listing(params.get("fractions", []))),
                 ("patch grid", f"{grid} x {grid} cells ({params.get('patch_size')} px at "
                                f"{params.get('reference_size')} px; offset: shifted by half a cell)")]
        if params.get("reference_model"):
            facts.append(("saliency", f"{params.get('saliency')} of {params['reference_model']}, the same map "
                                      f"for every model"))
        return facts

    def check_suite(self, suite: Any, where: Any) -> None:
        reference = self.params.reference_model
        if reference is None:
            return
        specs = {m.name: m for m in suite.models}
        if reference not in specs:
            raise where.error(f"reference_model: {reference!r} is not a model of this suite "
                              f"(models: {', '.join(specs)})")
        self.reference_spec = specs[reference]

    def fingerprint(self) -> dict[str, Any]:
        fingerprint = super().fingerprint()
        if self.reference_spec is not None:  # its saliency decides which patches every model loses
            fingerprint["reference"] = stable_hash(asdict(self.reference_spec))
        return fingerprint

    def passes(self, ctx: JobContext) -> list[Pass]:
        salient = any(v in occlusion.SALIENCY_VARIANTS for v in self.params.variants)
        return [Pass(MAIN_PASS, needs_grad=salient)]

    def job_meta(self, ctx: JobContext) -> dict[str, Any]:
        height, width = ctx.model.preprocess.input_size[1:]
        return {**super().job_meta(ctx), "input_size": f"{height}x{width}"}

    def evaluator(self, meta: dict[str, Any]) -> Evaluator:
        return OcclusionEvaluator(self.params.variants, self.params.fractions)

    # --- one batch: the clean images, then every variant x fraction -------------------------------------------
    def infer(self, ctx: JobContext, pass_: Pass, batch_index: int, batch: Batch) -> list[Record]:
        p = self.params
        images, labels = batch.images, batch.labels
        valid = ctx.source.valid_classes()

        def correct(x: torch.Tensor) -> list[bool]:
            with torch.no_grad():
                return (restrict_to(ctx.logits(x), valid).argmax(-1) == labels).tolist()

        ids = [str(i) for i in batch.ids]
        height, width = images.shape[-2:]
        fillers = torch.stack([occlusion.fill_image(p.fill, image, ctx.model.preprocess.mean, ctx.seed, sample_id)
                               for image, sample_id in zip(images, ids)])
        records: list[Record] = [{"label": label, "clean": hit, "correct": {}}
                                 for label, hit in zip(labels.tolist(), correct(images))]
        shown = preview_positions(MAIN_PASS, batch, PREVIEW_SAMPLES)
        previewed = preview_fractions(p.fractions)
        for variant in p.variants:
            masks = self._masks(ctx, variant, batch_index, batch, ids, height, width)
            for record in records:
                record["correct"][variant] = []
            for fraction in p.fractions:
                dropped = masks(fraction)
                occluded = torch.where(dropped[:, None].to(images.device), fillers, images)
                for record, hit in zip(records, correct(occluded)):
                    record["correct"][variant].append(hit)
                if fraction in previewed:
                    for position in shown:
                        record = records[position].setdefault("preview", {"clean": _png(images[position])})
                        record.setdefault(variant, {})[str(fraction)] = _png(occluded[position])
        return records

    def _masks(self, ctx: JobContext, variant: str, batch_index: int, batch: Batch, ids: list[str],
               height: int, width: int):
        """fraction -> (N, H, W) bool: the pixels each sample of the batch loses at that fraction."""
        if variant == "pixels":
            ranks = torch.stack([occlusion.pixel_order(ctx.seed, i, height, width) for i in ids])
            return lambda f: ranks < occlusion.dropped_count(f, height * width)
        cells = _cell_masks(height, width, self.params.grid, variant == "offset")
        if variant in occlusion.SALIENCY_VARIANTS:
            orders = self._salient_orders(ctx, batch_index, batch, ids)
            if variant == "nonsalient":
                orders = [order[::-1].copy() for order in orders]
        else:
            orders = [occlusion.drop_order(ctx.seed, i, len(cells)) for i in ids]
        return lambda f: torch.stack([cells[order[:occlusion.dropped_count(f, len(cells))]].any(0) for order in orders])

    def _salient_orders(self, ctx: JobContext, batch_index: int, batch: Batch, ids: list[str]) -> list[np.ndarray]:
        """Each sample's cells from most to least salient for the reference model (computed once per sample)."""
        keys = [(ctx.source.name, i) for i in ids]
        if any(key not in self._orders for key in keys):
            reference = self._reference_model(ctx)
            if reference.preprocess == ctx.model.preprocess:
                images = batch.images
            else:  # the same samples as the reference model sees them
                images = next(ctx.batches(preprocess=reference.preprocess, batch_indices=[batch_index],
                                          desc=f"{reference.name} saliency")).images
            saliency = occlusion.gradient_x_input(reference.module, images)
            cells = _cell_masks(*images.shape[-2:], self.params.grid, False)
            for key, sample_map in zip(keys, saliency):
                self._orders[key] = occlusion.saliency_order(sample_map, cells)
        return [self._orders[key] for key in keys]

    def _reference_model(self, ctx: JobContext) -> LoadedModel:
        if ctx.model.name == self.params.reference_model:
            return ctx.model
        if self._reference is None:
            if self.reference_spec is None:
                raise ValueError(f"task {self.label}: reference_model {self.params.reference_model!r} was not "
                                 f"resolved against the suite's models")
            from harness.models.loaders import load_model

            self._reference = load_model(self.reference_spec)
        return self._reference.to_device(ctx.device)


@lru_cache(maxsize=8)
def _cell_masks(height: int, width: int, grid: int, offset: bool) -> torch.Tensor:
    return occlusion.cell_masks(height, width, grid, offset)


def _png(image: torch.Tensor) -> str:
    return image_png(image, tuple(image.shape[-2:]), PREVIEW_SIDE, sharp=True)


class OcclusionEvaluator(Evaluator):
    """Records per sample: label, clean correctness and ``correct[variant]`` per fraction."""

    needs = ("occlusion_outcomes",)

    def __init__(self, variants: list[str], fractions: list[float]) -> None:
        self.variants, self.fractions = list(variants), [float(f) for f in fractions]
        self.weights = curve_weights(self.fractions)

    def process(self, batch: Batch, outputs: Outputs) -> EvalState:
        state = EvalState()
        for sample_id, record in zip(batch.ids, outputs["occlusion_outcomes"]):
            state.add_record(sample_id, outputs.pass_name, record)
        return state

    def curves(self, records: list[Record], variant: str) -> np.ndarray:
        """(samples, 1 + fractions) correctness: the clean outcome, then one per fraction."""
        return np.array([[r["clean"], *r["correct"][variant]] for r in records], dtype=float).reshape(
            len(records), len(self.fractions) + 1)

    def compute(self, state: EvalState) -> list[Metric]:
        records = [r for _, r in state.pass_records(MAIN_PASS)]
        n = len(records)
        metrics = [proportion("clean_acc", sum(bool(r["clean"]) for r in records), n)]
        for variant in self.variants:
            curves = self.curves(records, variant)
            for i, fraction in enumerate(self.fractions):
                metrics.append(proportion("occlusion_acc", int(curves[:, i + 1].sum()), n, variant=variant,
                                          fraction=fraction))
            auc = float((curves @ self.weights).mean()) if n else float("nan")
            clean = float(curves[:, 0].mean()) if n else float("nan")
            metrics.append(Metric("occlusion_auc", auc, n, {"variant": variant}))
            metrics.append(Metric("occlusion_relative_auc", auc / clean if clean else float("nan"), n,
                                  {"variant": variant}))
        return metrics

    def evidence(self, metric: str, params: dict[str, Any]) -> Outcomes | Resampled | None:
        if metric == "clean_acc":
            return Outcomes(MAIN_PASS, lambda r: r["clean"])
        variant = params.get("variant")
        if metric == "occlusion_acc":
            index = self.fractions.index(float(params["fraction"]))
            return Outcomes(MAIN_PASS, lambda r: r["correct"][variant][index])
        if metric in ("occlusion_auc", "occlusion_relative_auc"):
            relative = metric == "occlusion_relative_auc"

            def prepare(records: list[Record]) -> Statistic:
                curves = self.curves(records, variant)
                areas, clean = curves @ self.weights, curves[:, 0]
                if relative:
                    return lambda positions: float(areas[positions].mean() / max(clean[positions].mean(), 1e-12))
                return lambda positions: float(areas[positions].mean())

            return Resampled((MAIN_PASS,), prepare)
        return None
