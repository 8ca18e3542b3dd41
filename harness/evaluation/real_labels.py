"""ImageNet-ReaL accuracy (Beyer et al., 2020, "Are we done with ImageNet?") as an evaluator on the same
logits as top-k:

    tasks:
      - kind: classification
        datasets: [imagenet-val]
        evaluators: [{kind: real_labels}]

A prediction is right when it is in the image's reassessed label set; images whose set is empty are left
out (their n is the rest). The sets are keyed by ImageNet val file name (``ILSVRC2012_val_<8 digits>``), as
timm's ``RealLabelsImagenet`` keys them; by default they come from the file timm ships
(``timm/data/_info/imagenet_real_labels.json``). The shifted accuracy of timm's ``imagenet-real`` testbed
shift is ``real_top1``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from harness.evaluation.evaluator import MAIN_PASS, Evaluator, Outputs
from harness.evaluation.state import EvalState
from harness.evaluation.topk import restrict_to
from harness.metrics import Metric, declare, proportion
from harness.registry import EVALUATORS

PROTOCOL = ("ReaL labels (Beyer et al., 2020): right when in the image's reassessed label set; images with an "
            "empty set excluded")
for _k in range(1, 11):
    declare(f"real_top{_k}", "higher", kind="proportion", description=f"ImageNet-ReaL top-{_k} accuracy",
            protocol=PROTOCOL, record_fields=("real", "topk"))
VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")


def timm_real_labels() -> Path:
    import timm.data

    return Path(timm.data.__file__).resolve().parent / "_info" / "imagenet_real_labels.json"


@lru_cache(maxsize=2)
def real_label_sets(path: Path) -> list[list[int]]:
    """The i-th list is the label set of ILSVRC2012_val_<i + 1>."""
    try:
        sets = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot be read as ReaL labels ({exc})") from None
    if not isinstance(sets, list) or not all(isinstance(s, list) for s in sets):
        raise ValueError(f"{path}: expected a JSON list of label lists, one per ImageNet val image")
    return sets


def real_label_set(sample_id: str, sets: list[list[int]]) -> list[int]:
    """The reassessed label set of the val image ``sample_id`` names (empty: the image is left out)."""
    found = VAL_NAME.search(Path(sample_id).name)
    if found is None or not 1 <= int(found.group(1)) <= len(sets):
        raise ValueError(f"sample {sample_id!r}: ReaL labels are keyed by ImageNet val file names "
                         f"(ILSVRC2012_val_00000001 ... {len(sets):08d})")
    return sets[int(found.group(1)) - 1]


@EVALUATORS.register("real_labels")
class RealLabelsEvaluator(Evaluator):
    @dataclass
    class Params:
        ks: list[int] = field(default_factory=lambda: [1, 5])
        labels: Path | None = None  # a ReaL labels JSON; default: the one timm ships

        def validate(self, where: Any) -> None:
            if not self.ks or any(k < 1 or k > 10 for k in self.ks):
                raise where.error("ks must list integers from 1 to 10")
            if self.labels is not None and not Path(self.labels).is_file():
                raise where.at("labels").error(f"no such file {self.labels}")

    @classmethod
    def attach(cls, params: "RealLabelsEvaluator.Params", meta: dict[str, Any]) -> "RealLabelsEvaluator":
        return cls(params.ks, params.labels, meta.get("valid_classes"))

    def __init__(self, ks: Sequence[int] = (1, 5), labels: Path | None = None,
                 valid_classes: Sequence[int] | None = None) -> None:
        self.ks, self.valid_classes = tuple(ks), valid_classes
        self.labels = Path(labels) if labels is not None else timm_real_labels()

    def process(self, batch: Any, outputs: Outputs) -> EvalState:
        state = EvalState()
        if outputs.pass_name != MAIN_PASS:
            return state
        sets = real_label_sets(self.labels)
        top = restrict_to(outputs["logits"], self.valid_classes).topk(max(self.ks), dim=-1).indices.tolist()
        for sample_id, classes in zip(batch.ids, top):
            state.add_record(sample_id, MAIN_PASS, {"real": real_label_set(sample_id, sets), "topk": classes})
        return state

    def compute(self, state: EvalState) -> list[Metric]:
        scored = [r for _, r in state.pass_records(MAIN_PASS) if r["real"]]
        return [proportion(f"real_top{k}", sum(any(p in r["real"] for p in r["topk"][:k]) for r in scored), len(scored))
                for k in self.ks]
