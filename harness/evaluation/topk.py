"""Top-k accuracy from per-sample records: label, the top-k predicted classes, top-1 correctness."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outcomes, Outputs, role_of, role_pass
from harness.evaluation.state import EvalState
from harness.metrics import Metric, declare, proportion
from harness.registry import EVALUATORS

for _k in range(1, 11):
    declare(f"top{_k}", "higher", kind="proportion", description=f"top-{_k} accuracy")


def restrict_to(logits: torch.Tensor, valid_classes: Sequence[int] | Sequence[Sequence[int]] | None) -> torch.Tensor:
    """The logits over the dataset's label space. A list of class indices masks every other class to -inf
    (ImageNet-A/R: 200 of the 1k classes, as timm's validate.py --valid-labels does), so argmax and top-k choose
    among the dataset's classes; a list of index *groups* pools each group by its maximum into one logit
    (ObjectNet: 113 classes, each one or more ImageNet classes), the labels being group positions."""
    if valid_classes is None:
        return logits
    if valid_classes and not isinstance(valid_classes[0], int):
        return torch.stack([logits[:, list(group)].amax(dim=-1) for group in valid_classes], dim=-1)
    masked = torch.full_like(logits, float("-inf"))
    index = torch.as_tensor(list(valid_classes), device=logits.device)
    masked[:, index] = logits[:, index]
    return masked


def topk_records(logits: torch.Tensor, labels: torch.Tensor, kmax: int) -> list[dict[str, Any]]:
    """Per sample: label, the top-``kmax`` classes (best first) and top-1 correctness."""
    top = logits.topk(min(kmax, logits.shape[-1]), dim=-1).indices.tolist()
    return [{"label": label, "topk": classes, "correct": classes[0] == label}
            for label, classes in zip(labels.tolist(), top)]


@EVALUATORS.register("topk")
class TopKEvaluator(Evaluator):
    """Top-k accuracy; attachable to any task whose passes give logits (e.g. ``evaluators: [{kind: topk,
    ks: [3]}]``)."""

    @dataclass
    class Params:
        ks: list[int] = field(default_factory=lambda: [1, 5])

        def validate(self, where: Any) -> None:
            if not self.ks or any(k < 1 or k > 10 for k in self.ks):
                raise where.error("ks must list integers from 1 to 10")

    @classmethod
    def attach(cls, params: "TopKEvaluator.Params", meta: dict[str, Any]) -> "TopKEvaluator":
        return cls(tuple(params.ks), meta.get("valid_classes"), role_classes=meta.get("role_classes"))

    def __init__(self, ks: Sequence[int] = (1, 5), valid_classes: Sequence[int] | None = None,
                 pass_name: str = MAIN_PASS, role_classes: dict[str, Sequence[int] | None] | None = None) -> None:
        """``role_classes``: the passes over role datasets (``shifted:<name>``), each with its valid classes."""
        self.ks, self.valid_classes, self.pass_name = tuple(ks), valid_classes, pass_name
        self.role_classes = dict(role_classes or {})

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        state = EvalState()
        if outputs.pass_name != self.pass_name and outputs.pass_name not in self.role_classes:
            return state  # a pass another evaluator of the job scores (e.g. an OOD set)
        valid = self.role_classes.get(outputs.pass_name, self.valid_classes)
        logits = restrict_to(outputs["logits"], valid)
        for sample_id, record in zip(batch.ids, topk_records(logits, batch.labels, max(self.ks))):
            state.add_record(sample_id, outputs.pass_name, record)
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        metrics = []
        for pass_name in [self.pass_name, *self.role_classes]:
            records = [record for _, record in state.pass_records(pass_name)]
            metrics += [proportion(f"top{k}", sum(r["label"] in r["topk"][:k] for r in records), len(records),
                                   **role_of(pass_name)) for k in self.ks]
        return metrics

    def evidence(self, metric: str, params: dict[str, Any]) -> Outcomes | None:
        if not metric.startswith("top") or not metric[3:].isdigit():
            return None
        k = int(metric[3:])
        pass_name = role_pass(params["role"], params["dataset"]) if "role" in params else self.pass_name
        return Outcomes(pass_name, lambda r: r["label"] in r["topk"][:k])
