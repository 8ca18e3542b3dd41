"""Top-k accuracy from per-sample records: label, the top-k predicted classes, top-1 correctness."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from harness.evaluation.evaluator import Evaluator
from harness.evaluation.state import EvalState
from harness.metrics import Metric, declare, proportion

for _k in range(1, 11):
    declare(f"top{_k}", "higher", kind="proportion", description=f"top-{_k} accuracy")


def restrict_to(logits: torch.Tensor, valid_classes: Sequence[int] | None) -> torch.Tensor:
    """Logits with every class outside ``valid_classes`` set to -inf (ImageNet-A/R: 200 of the 1k classes,
    as timm's validate.py --valid-labels does), so argmax and top-k choose among the dataset's classes."""
    if valid_classes is None:
        return logits
    masked = torch.full_like(logits, float("-inf"))
    index = torch.as_tensor(list(valid_classes), device=logits.device)
    masked[:, index] = logits[:, index]
    return masked


def topk_records(logits: torch.Tensor, labels: torch.Tensor, kmax: int) -> list[dict[str, Any]]:
    """Per sample: label, the top-``kmax`` classes (best first) and top-1 correctness."""
    top = logits.topk(min(kmax, logits.shape[-1]), dim=-1).indices.tolist()
    return [{"label": label, "topk": classes, "correct": classes[0] == label}
            for label, classes in zip(labels.tolist(), top)]


class TopKEvaluator(Evaluator):
    def __init__(self, ks: Sequence[int] = (1, 5), valid_classes: Sequence[int] | None = None,
                 pass_name: str = "main") -> None:
        self.ks, self.valid_classes, self.pass_name = tuple(ks), valid_classes, pass_name

    def process(self, pass_name: str, batch: Any, outputs: torch.Tensor) -> EvalState:
        state = EvalState()
        logits = restrict_to(outputs, self.valid_classes)
        for sample_id, record in zip(batch.ids, topk_records(logits, batch.labels, max(self.ks))):
            state.add_record(sample_id, pass_name, record)
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        records = [record for _, record in state.pass_records(self.pass_name)]
        return [proportion(f"top{k}", sum(r["label"] in r["topk"][:k] for r in records), len(records))
                for k in self.ks]
