"""Matched pairs: models of comparable cost from different families, compared on the same samples.

Which models form a pair: the suite's declared ``pairs:``, else every couple from different families (a CNN and
a transformer, say) whose cost is within ``band`` of each other, |a - b| <= band x max(a, b). The cost is GFLOPs
per image where the suite measured it for every model, else the parameter count.

Each pair is compared on every headline accuracy (top-1, clean and robust accuracy...) that keeps per-sample
outcomes (their evaluators' evidence, harness/gate/evidence.py), on the samples both models were scored on: the difference of accuracies,
Newcombe's paired interval and the exact McNemar p-value (harness/gate/stats.py), the p-values Holm-adjusted
over all the suite's comparisons so that testing many pairs does not manufacture a finding.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from harness.evaluation.evaluator import Evaluator
from harness.evaluation.state import EvalState, RecordsError, load_records, records_present
from harness.gate.evidence import outcome_vector, stored_evaluator
from harness.gate.stats import Comparison, paired_proportions
from harness.report.tables import headline, unreliable_jobs

DEFAULT_BAND = 0.25


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    why: str  # "declared in the suite" or the two costs


@dataclass(frozen=True)
class PairResult:
    """``first`` minus ``second`` on one metric: ``comparison.diff`` and its interval, McNemar p, n."""

    pair: Pair
    task: str
    dataset: str
    column: str
    families: tuple[str, str]
    accuracies: tuple[float, float]
    comparison: Comparison
    p_holm: float
    caveat: str = ""

    def significant(self, alpha: float = 0.05) -> bool:
        """Only when the interval excludes 0 and the adjusted test agrees."""
        c = self.comparison
        return c.ci_low is not None and (c.ci_low > 0 or c.ci_high < 0) and self.p_holm < alpha


def model_costs(rows: pd.DataFrame) -> tuple[str, dict[str, float]]:
    """(cost name, model -> cost): GFLOPs when every model has them, else parameters."""
    models = set(rows["model"])
    flops = rows[rows["metric"] == "gflops"].groupby("model")["value"].first().dropna()
    if len(flops) and set(flops.index) >= models:
        return "GFLOPs", {m: float(v) for m, v in flops.items()}
    params: dict[str, float] = {}
    counted = rows[rows["metric"] == "params_m"].groupby("model")["value"].first().dropna()
    params.update({m: float(v) * 1e6 for m, v in counted.items()})
    for model, provenance in zip(rows["model"], rows.get("provenance", pd.Series([None] * len(rows)))):
        if model not in params and provenance:
            record = json.loads(provenance) if isinstance(provenance, str) else provenance  # store / JSON export
            count = record.get("model", {}).get("num_params") if isinstance(record, dict) else None
            if count:
                params[model] = float(count)
    return "parameters", params


def format_cost(name: str, value: float) -> str:
    if name == "GFLOPs":
        return f"{value:.3g} GFLOPs"
    return f"{value / 1e6:.3g}M params" if value >= 1e6 else f"{value / 1e3:.3g}k params"


def matched_pairs(families: dict[str, str], cost_name: str, costs: dict[str, float],
                  band: float = DEFAULT_BAND) -> list[Pair]:
    """Couples of models from different families whose costs are within ``band`` of each other."""
    pairs = []
    models = sorted(m for m in families if m in costs)
    for i, first in enumerate(models):
        for second in models[i + 1:]:
            if families[first] == families[second]:
                continue
            a, b = costs[first], costs[second]
            if abs(a - b) <= band * max(a, b):
                pairs.append(Pair(first, second, f"{format_cost(cost_name, a)} vs {format_cost(cost_name, b)}"))
    return pairs


def declared_pairs(pairs: Iterable[Sequence[str]]) -> list[Pair]:
    return [Pair(str(a), str(b), "declared in the suite") for a, b in pairs]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (as statsmodels ``multipletests(method="holm")``)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def records_folder(records_dir: Path | None) -> Path | None:
    """The folder of ``<job key>.jsonl.gz`` files: ``records_dir`` itself or its ``samples/``."""
    if records_dir is None:
        return None
    records_dir = Path(records_dir)
    return records_dir / "samples" if (records_dir / "samples").is_dir() else records_dir


class JobRecords:
    """The per-sample records of finished jobs, loaded once each, with the evaluator that wrote them (it says
    where each row's evidence is). Records that do not verify are left out (no test is computed from them) and
    their one-line reason is appended to ``refused``."""

    def __init__(self, folder: Path, refused: list[str] | None = None) -> None:
        self.folder, self.refused = folder, refused
        self.loaded: dict[str, tuple[EvalState, Evaluator | None] | None] = {}

    def __call__(self, row: Any) -> tuple[EvalState, Evaluator | None] | None:
        if row.job_key not in self.loaded:
            path = self.folder / f"{row.job_key}.jsonl.gz"
            try:
                if records_present(path):
                    state, meta = load_records(path)
                    provenance = json.loads(row.provenance) if isinstance(row.provenance, str) else row.provenance
                    self.loaded[row.job_key] = (state, stored_evaluator((provenance or {}).get("task"), meta))
                else:
                    self.loaded[row.job_key] = None
            except (RecordsError, ValueError) as exc:
                self.loaded[row.job_key] = None
                if self.refused is not None:
                    self.refused.append(str(exc) if isinstance(exc, RecordsError) else f"{path}: {exc}")
        return self.loaded[row.job_key]


def compare_pairs(rows: pd.DataFrame, pairs: Sequence[Pair], records_dir: Path | None,
                  refused: list[str] | None = None) -> list[PairResult]:
    """Every pair on every headline proportion metric both models have per-sample records for.

    ``rows``: finished metric rows with a ``column`` label (tables.ok_rows). Records that do not verify are
    left out and their one-line reason is appended to ``refused``."""
    folder = records_folder(records_dir)
    if folder is None or not pairs:
        return []
    unreliable = unreliable_jobs(rows)
    records = JobRecords(folder, refused)

    found: list[dict] = []
    table = headline(rows)
    table = table[table["metric_kind"] == "proportion"]
    for (task, dataset, column), part in table.groupby(["task", "dataset", "column"], sort=False):
        by_model = {row.model: row for row in part.itertuples()}
        for pair in pairs:
            if pair.first not in by_model or pair.second not in by_model:
                continue
            one, two = by_model[pair.first], by_model[pair.second]
            first_records, second_records = records(one), records(two)
            if first_records is None or second_records is None:
                continue
            first = outcome_vector(first_records[1], one.metric, one.params, first_records[0]) or {}
            second = outcome_vector(second_records[1], two.metric, two.params, second_records[0]) or {}
            common = [i for i in first if i in second]
            if not common:
                continue
            comparison = paired_proportions([second[i] for i in common], [first[i] for i in common])
            flagged = [m for m in (pair.first, pair.second) if (m, dataset, task) in unreliable]
            caveat = f"robust accuracy of {', '.join(flagged)} unreliable" if flagged and \
                column.startswith("robust_acc") else ""
            found.append(dict(pair=pair, task=task, dataset=dataset, column=column,
                              families=(one.family, two.family), comparison=comparison, caveat=caveat,
                              accuracies=(sum(first[i] for i in common) / len(common),
                                          sum(second[i] for i in common) / len(common))))
    adjusted = holm([entry["comparison"].p_value for entry in found])
    return [PairResult(**fields, p_holm=p) for fields, p in zip(found, adjusted)]


def points(value: float) -> str:
    """An accuracy difference in percentage points."""
    return f"{100 * value:.1f}"


def format_p(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.2g}" if p >= 0.001 else "< 0.001"
