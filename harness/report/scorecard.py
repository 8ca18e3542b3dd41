"""The CNN-vs-transformer scorecard: one row per axis the suite measured, each answered with paired statistics.

Axes (``AXES``; a suite shows those it ran): clean top-1, adversarial (PGD robust-accuracy AUC over eps;
AutoAttack robust accuracy at its largest eps), corruption (mean accuracy under corruption, mCE beside it;
mPC for dense tasks), natural shift (effective robustness per shifted set), occlusion (AUC, aligned and offset
grids), calibration (ECE after temperature scaling, else before), OOD detection (mean AUROC near and far, MSP
unless only other detectors ran) and throughput on the run's device.

Per axis: the best CNN and the best transformer; the matched pairs (the suite's ``pairs:``, else every
CNN-transformer couple within ±1 point of clean top-1 and ×1.5 of each other's parameters; with none, the
best CNN against the best transformer, said so); and the transformers' mean advantage over their CNN partners
(transformer minus CNN, sign-flipped for lower-is-better metrics, so > 0 always favours transformers). Each
model's statistic is re-accumulated from its per-sample records through its evaluator's evidence (as the gate
does) on the samples every compared model scored, all pairs resampled together: one pair on a proportion gets
the exact McNemar test and Newcombe's interval, anything else a paired percentile bootstrap (1,000 draws
as the gate, stratified by pass). Timings compare the repeats (Mann-Whitney; with several pairs the largest p, a verdict
only when every pair agrees). p-values are Holm-adjusted across the axes; a verdict needs the interval to
exclude 0 and the adjusted p below 0.05.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from harness.evaluation.evaluator import Outcomes, Resampled
from harness.formatting import format_param
from harness.gate.evidence import outcome_vector, timing_series
from harness.gate.stats import Comparison, compare_timings, paired_bootstrap, paired_proportions
from harness.report.pairs import JobRecords, Pair, declared_pairs, format_p, holm, model_costs, records_folder
from harness.report.sections import figure_anchor, task_anchor
from harness.report.tables import caveated_cells, unreliable_jobs

FAMILIES = ("cnn", "transformer")
ACCURACY_BAND = 0.01  # matched pairs: clean top-1 within one point...
PARAMETER_BAND = 1.5  # ...and parameters within x1.5
RESAMPLES = 1000
ALPHA = 0.05


@dataclass(frozen=True)
class Axis:
    key: str
    label: str  # formatted with the row's params
    metric: str
    better: str  # the verdict's words: "transformers <better>"
    task_kinds: tuple[str, ...] = ()
    where: Callable[[dict], bool] = lambda params: True
    pick: str | None = None  # of several matching rows, those with the largest value of this param
    each: str | None = None  # one scorecard row per value of this param (e.g. each shifted dataset)
    figure: Callable[[dict], str | None] = lambda params: None  # title of the figure behind the row
    beside: str | None = None  # a metric shown next to the best models' values (mCE beside mean accuracy)
    scored_by: str | None = None  # per-sample evidence: the mean of the job's rows of this proportion metric


def _no_role(params: dict) -> bool:
    return "role" not in params


AXES: tuple[Axis, ...] = (
    Axis("clean", "clean accuracy (top-1)", "top1", "more accurate", ("classification",), _no_role),
    Axis("pgd", "adversarial: PGD {norm} robust accuracy, AUC over eps", "robust_auc", "more robust", ("pgd",),
         figure=lambda p: f"Robust accuracy vs {p.get('norm')} eps"),
    Axis("autoattack", "adversarial: AutoAttack {norm} robust accuracy at eps {eps}", "robust_acc", "more robust",
         ("autoattack",), pick="eps", figure=lambda p: f"Robust accuracy vs {p.get('norm')} eps"),
    Axis("corruption", "corruption: mean accuracy under corruption", "mean_corruption_acc", "more robust",
         ("corruption",), beside="mce", scored_by="corruption_acc"),
    Axis("corruption-dense", "corruption: mPC", "mpc", "more robust", ("corruption",)),
    Axis("shift", "natural shift: effective robustness on {dataset}", "effective_robustness", "more robust",
         where=lambda p: p.get("role") == "shifted", each="dataset",
         figure=lambda p: "CNN vs transformer: above or below the trend"),
    Axis("occlusion-random", "occlusion: AUC, random patch drop (aligned grid)", "occlusion_auc", "more robust",
         ("occlusion",), lambda p: p.get("variant") == "random",
         figure=lambda p: "Occlusion: random patch drop (aligned grid)"),
    Axis("occlusion-offset", "occlusion: AUC, random patch drop (offset grid)", "occlusion_auc", "more robust",
         ("occlusion",), lambda p: p.get("variant") == "offset",
         figure=lambda p: "Occlusion: random patch drop (grid offset by half a patch)"),
    Axis("calibration", "calibration: ECE ({scaling} scaling)", "ece", "better calibrated",
         figure=lambda p: "Uncertainty: CNN vs transformer ECE"),
    Axis("ood-near", "OOD detection: mean AUROC, near ({detector})", "ood_auroc", "better OOD detectors",
         where=lambda p: p.get("role") == "ood_near" and p.get("dataset") == "mean",
         figure=lambda p: "Uncertainty: CNN vs transformer OOD detection (mean AUROC near and far)"),
    Axis("ood-far", "OOD detection: mean AUROC, far ({detector})", "ood_auroc", "better OOD detectors",
         where=lambda p: p.get("role") == "ood_far" and p.get("dataset") == "mean",
         figure=lambda p: "Uncertainty: CNN vs transformer OOD detection (mean AUROC near and far)"),
    Axis("throughput", "throughput at batch {batch_size} ({mode})", "throughput_img_s", "faster", ("latency",),
         lambda p: p.get("mode", "model_only") == "model_only", pick="batch_size",
         figure=lambda p: "Throughput vs batch size (model only)"),
)
# of several variants of one axis (calibration before / after T, OOD detectors), the one the scorecard shows
PREFERRED = {"scaling": ("temperature", "none"), "detector": ("msp", "energy", "maxlogit", "knn", "mahalanobis")}


@dataclass
class ScoreRow:
    axis: str
    key: str
    metric: str
    direction: str
    task: str
    dataset: str
    params: dict
    better: str
    best: dict  # family -> {"model", "value"} (unreliable models left out)
    values: dict  # model -> value
    pairs: list  # [[cnn, transformer], ...]
    pairing: str  # declared | matched | unmatched
    test: str = ""
    effect: float | None = None  # the transformers' mean advantage (ratio for timings)
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    n: int | None = None
    verdict: str = ""
    notes: list = field(default_factory=list)
    link: str = ""  # the figure behind the row
    table: str = ""  # its task's table (the link where the page drew no such figure)
    beside: dict = field(default_factory=dict)  # model -> value of the axis' ``beside`` metric

    @property
    def significant(self) -> bool:
        if self.p_holm is None or self.p_holm >= ALPHA or self.effect is None:
            return False
        if self.test == "mann-whitney":
            return True  # every pair agreed in direction (see _timing)
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)


# --- which rows and models ------------------------------------------------------------------------------------
def _axis_groups(rows: pd.DataFrame, axis: Axis) -> list[pd.DataFrame]:
    """The rows of each scorecard row of ``axis``: one task on one dataset, one params combination."""
    part = rows[rows["metric"] == axis.metric]
    if axis.task_kinds:
        part = part[part["task_kind"].isin(axis.task_kinds)]
    part = _keep(part, [axis.where(p) for p in part["params"]])
    for name, preferred in PREFERRED.items():
        present = {p.get(name) for p in part["params"]}
        choice = next((v for v in preferred if v in present), None)
        if choice is not None:
            part = _keep(part, [p.get(name) == choice for p in part["params"]])
    if part.empty:
        return []
    first_task = part["task"].iloc[0], part["dataset"].iloc[0]
    part = part[(part["task"] == first_task[0]) & (part["dataset"] == first_task[1])]
    if axis.pick:
        numeric = [p.get(axis.pick) if isinstance(p.get(axis.pick), (int, float)) else None for p in part["params"]]
        if any(v is not None for v in numeric):
            largest = max(v for v in numeric if v is not None)
            part = _keep(part, [v == largest for v in numeric])
    keys = [json.dumps(p, sort_keys=True, default=str) for p in part["params"]]
    groups = []
    for key in dict.fromkeys(keys):
        group = _keep(part, [k == key for k in keys]).drop_duplicates("model", keep="last")
        groups.append(group)
    return groups if axis.each else groups[:1]


def _keep(part: pd.DataFrame, mask: list[bool]) -> pd.DataFrame:
    return part.loc[np.asarray(mask, dtype=bool)] if len(part) else part


def scorecard_pairs(rows: pd.DataFrame, declared: Sequence[Sequence[str]] = ()) -> tuple[list[Pair], str]:
    """(pairs as (CNN, transformer), how they were chosen)."""
    families = dict(zip(rows["model"].astype(str), rows["family"].astype(str)))
    if declared:
        pairs = []
        for pair in declared_pairs(declared):
            first, second = pair.first, pair.second
            if families.get(first) == "transformer" and families.get(second) == "cnn":
                first, second = second, first
            pairs.append(Pair(first, second, pair.why))
        return pairs, "declared"
    clean = _axis_groups(rows, AXES[0])
    accuracy = dict(zip(clean[0]["model"].astype(str), clean[0]["value"].astype(float))) if clean else {}
    _, params = model_costs(rows)
    pairs = []
    for cnn in sorted(m for m, f in families.items() if f == "cnn"):
        for vit in sorted(m for m, f in families.items() if f == "transformer"):
            if cnn in accuracy and vit in accuracy and cnn in params and vit in params and \
                    abs(accuracy[cnn] - accuracy[vit]) <= ACCURACY_BAND + 1e-12 and \
                    max(params[cnn], params[vit]) <= PARAMETER_BAND * min(params[cnn], params[vit]):
                pairs.append(Pair(cnn, vit, f"top-1 {accuracy[cnn]:.3f} vs {accuracy[vit]:.3f}, "
                                            f"{params[cnn] / 1e6:.3g}M vs {params[vit] / 1e6:.3g}M params"))
    return pairs, "matched"


# --- the paired comparison of one row ---------------------------------------------------------------------------
class _Evidence:
    """One model's evidence for a row, aligned later on the samples every compared model scored: an evaluator's
    outcomes or resampled records, or per-sample scores (a mean of several outcome rows, e.g. corruption cells)."""

    def __init__(self, found: Outcomes | Resampled | None, state: Any = None,
                 scores: dict[str, dict[str, float]] | None = None) -> None:
        self.found = found
        if scores is not None:
            self.passes, self.by_pass = tuple(scores), scores
        elif isinstance(found, Outcomes):
            self.passes, self.by_pass = (found.pass_name,), {found.pass_name: found.vector(state)}
        else:
            self.passes = found.passes
            self.by_pass = {name: dict(state.pass_records(name)) for name in (*found.passes, *found.given)}

    def statistic(self, ids: dict[str, list[str]]):
        if not isinstance(self.found, Resampled):
            (name,) = self.passes
            outcomes = np.array([self.by_pass[name][i] for i in ids[name]], dtype=float)
            return lambda positions: float(outcomes[positions].mean())
        records = {name: [self.by_pass[name][i] for i in ids[name]] for name in self.found.passes}
        records.update({name: list(self.by_pass[name].values()) for name in self.found.given})
        return self.found.statistic(records)


def _mean_outcomes(rows: pd.DataFrame, row: Any, metric: str, state: Any, evaluator: Any) -> _Evidence | None:
    """Per sample, the mean of its outcomes over every ``metric`` row of ``row``'s job (e.g. a corruption job's
    cells: the per-sample terms of its mean corruption accuracy)."""
    job = rows[(rows["job_key"] == row.job_key) & (rows["metric"] == metric)]
    vectors = [outcome_vector(evaluator, metric, params, state) for params in job["params"]]
    if not vectors or any(v is None for v in vectors):
        return None
    ids = [i for i in vectors[0] if all(i in v for v in vectors)]
    return _Evidence(None, scores={"cells": {i: float(np.mean([v[i] for v in vectors])) for i in ids}})


def _compare(axis: Axis, row: ScoreRow, group: pd.DataFrame, all_rows: pd.DataFrame,
             records: JobRecords | None) -> None:
    """Fill the row's test, effect, interval, p and n from the pairs' per-sample records."""
    by_model = {str(r.model): r for r in group.itertuples()}
    models = list(dict.fromkeys(m for pair in row.pairs for m in pair))
    loaded = {m: records(by_model[m]) if records is not None else None for m in models}
    if group["metric_kind"].iloc[0] == "timing":
        _timing(row, {m: timing_series(row.params, loaded[m][0]) if loaded[m] else None for m in models})
        return
    missing = [m for m, found in loaded.items() if found is None]
    if missing:
        row.notes.append(f"no per-sample records for {', '.join(missing)}: no paired test")
        return
    sign = -1.0 if row.direction == "lower" else 1.0
    evidence = {}
    for model in models:
        state, evaluator = loaded[model]
        if axis.scored_by is not None:  # the mean of the job's ``scored_by`` outcomes, sample by sample
            found = _mean_outcomes(all_rows, by_model[model], axis.scored_by, state, evaluator)
        else:
            found = evaluator.evidence(row.metric, by_model[model].params) if evaluator is not None else None
            found = _Evidence(found, state) if found is not None else None
        if found is None:
            row.notes.append(f"{row.metric} keeps no per-sample evidence: no paired test")
            return
        evidence[model] = found
    first = evidence[models[0]]
    ids = {name: [i for i in first.by_pass[name] if all(i in e.by_pass[name] for e in evidence.values())]
           for name in first.passes}
    sizes = [len(v) for v in ids.values()]
    if not all(sizes):
        row.notes.append("the compared models share no scored sample: no paired test")
        return
    if isinstance(first.found, Outcomes) and len(row.pairs) == 1:
        (name,) = first.passes
        cnn, vit = row.pairs[0]
        comparison = paired_proportions([evidence[cnn].by_pass[name][i] for i in ids[name]],
                                        [evidence[vit].by_pass[name][i] for i in ids[name]], ALPHA)
    else:
        cnn_stats = [evidence[c].statistic(ids) for c, _ in row.pairs]
        vit_stats = [evidence[v].statistic(ids) for _, v in row.pairs]
        comparison = paired_bootstrap(sum(sizes), lambda idx: float(np.mean([s(idx) for s in cnn_stats])),
                                      lambda idx: float(np.mean([s(idx) for s in vit_stats])), RESAMPLES, 0, ALPHA,
                                      strata=sizes if len(sizes) > 1 else None)
    _set(row, comparison, sign)


def _set(row: ScoreRow, comparison: Comparison, sign: float) -> None:
    row.test, row.n, row.p_value = comparison.test, comparison.n, comparison.p_value
    row.effect = sign * comparison.diff if comparison.diff == comparison.diff else None
    if comparison.ci_low is not None:
        low, high = sign * comparison.ci_low, sign * comparison.ci_high
        row.ci_low, row.ci_high = min(low, high), max(low, high)


def _timing(row: ScoreRow, series: dict[str, list[float] | None]) -> None:
    """Transformer / CNN throughput (median ratio per pair; several pairs: geometric mean, largest p). Without
    the repeats, the ratio of the stored values, untested."""
    if any(not s for s in series.values()):
        ratios = [row.values[v] / row.values[c] for c, v in row.pairs]
        row.effect = float(np.exp(np.mean(np.log(ratios)))) ** (-1 if row.direction == "lower" else 1)
        row.test = "ratio"
        row.notes.append("one stored timing per model, no repeats: no test")
        return
    tests = [compare_timings(series[c], series[v]) for c, v in row.pairs]
    ratios = [t.diff for t in tests]
    row.test, row.n = "mann-whitney", min(t.n or 0 for t in tests)
    if row.direction == "lower":
        ratios = [1 / r for r in ratios]
    row.effect = float(np.exp(np.mean(np.log(ratios))))
    agree = all(r > 1 for r in ratios) or all(r < 1 for r in ratios)
    ps = [t.p_value for t in tests]
    row.p_value = max(ps) if None not in ps and agree else (None if None in ps else 1.0)


# --- the scorecard ----------------------------------------------------------------------------------------------
def scorecard(rows: pd.DataFrame, records_dir: Path | None, declared: Sequence[Sequence[str]] = ()) -> list[ScoreRow]:
    """The scorecard of one suite's latest finished rows (``analysis.latest_rows``)."""
    if rows.empty or not set(FAMILIES) <= set(rows["family"].astype(str)):
        return []
    pairs, pairing = scorecard_pairs(rows, declared)
    folder = records_folder(records_dir)
    records = JobRecords(folder) if folder is not None and folder.is_dir() else None
    unreliable = unreliable_jobs(rows)
    out = []
    for axis in AXES:
        for group in _axis_groups(rows, axis):
            out.append(_row(axis, group, rows, pairs, pairing, unreliable, records))
    adjusted = holm([r.p_value for r in out if r.p_value is not None])
    for row, p in zip([r for r in out if r.p_value is not None], adjusted):
        row.p_holm = p
    for row in out:
        row.verdict = _verdict(row)
    return out


def _row(axis: Axis, group: pd.DataFrame, rows: pd.DataFrame, pairs: list[Pair], pairing: str,
         unreliable: dict, records: JobRecords | None) -> ScoreRow:
    first = group.iloc[0]
    params = dict(first["params"])
    labels = {k: format_param(v) for k, v in params.items()}
    task, dataset = str(first["task"]), str(first["dataset"])
    values = {str(m): float(v) for m, v in zip(group["model"], group["value"])}
    families = dict(zip(group["model"].astype(str), group["family"].astype(str)))
    flagged = {m for (m, d, t) in unreliable if d == dataset and t == task}
    higher = first["direction"] != "lower"
    best = {}
    for family in FAMILIES:
        members = [m for m in values if families[m] == family and m not in flagged and values[m] == values[m]]
        if members:
            model = (max if higher else min)(members, key=lambda m: values[m])
            best[family] = {"model": model, "value": values[model]}
    present = [(p.first, p.second) for p in pairs if p.first in values and p.second in values]
    how = pairing
    if not present and len(best) == 2:
        present, how = [(best["cnn"]["model"], best["transformer"]["model"])], "unmatched"
    title = axis.figure(params)
    row = ScoreRow(axis=axis.label.format_map(_Defaulting(labels)), key=axis.key, metric=axis.metric,
                   direction=str(first["direction"]), task=task, dataset=dataset, params=params, better=axis.better,
                   best=best, values=values, pairs=[list(p) for p in present], pairing=how,
                   link=figure_anchor(task, dataset, title) if title else task_anchor(task, dataset),
                   table=task_anchor(task, dataset))
    if axis.beside:
        beside = rows[(rows["metric"] == axis.beside) & (rows["task"] == task) & (rows["dataset"] == dataset)]
        row.beside = {str(m): float(v) for m, v in zip(beside["model"], beside["value"])}
    caveats = caveated_cells(rows[(rows["task"] == task) & (rows["dataset"] == dataset)])
    for model in values:
        why = caveats.get((model, first["column"]))
        if why and any(model in pair for pair in present):
            row.notes.append(f"{model}: {why}")
    for model in flagged & {m for pair in present for m in pair}:
        row.notes.append(f"{model}: robust accuracy unreliable (a sanity check failed)")
    if present:
        _compare(axis, row, group, rows, records)
    return row


class _Defaulting(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _verdict(row: ScoreRow) -> str:
    if not row.pairs:
        return "not compared: the suite has no CNN-transformer pair on this axis"
    if row.test == "ratio" and row.effect is not None:
        faster = "transformers" if row.effect > 1 else "CNNs"
        return f"not tested (one timing per model): {faster} {row.better} by ×{max(row.effect, 1 / row.effect):.2f}"
    if row.effect is None or row.p_value is None:
        return "no test: " + ("; ".join(row.notes) or "no evidence")
    single = " (from a single pair)" if len(row.pairs) == 1 else f" (over {len(row.pairs)} pairs)"
    if row.pairing == "unmatched":
        single = " (from a single unmatched pair: the best CNN vs the best transformer)"
    if row.significant:
        winner = "transformers" if (row.effect > 1 if row.test == "mann-whitney" else row.effect > 0) else "CNNs"
        return f"{winner} {row.better}{single}"
    return f"no significant difference at n = {row.n}{single}"


# --- outputs ----------------------------------------------------------------------------------------------------
def _effect_text(row: ScoreRow) -> str:
    if row.effect is None:
        return "–"
    if row.test in ("mann-whitney", "ratio"):
        return f"×{row.effect:.3g} (transformer / CNN)"
    interval = f" [{row.ci_low:+.4f}, {row.ci_high:+.4f}]" if row.ci_low is not None else ""
    return f"{row.effect:+.4f}{interval}"


def _best_text(row: ScoreRow, family: str) -> str:
    best = row.best.get(family)
    if not best:
        return "–"
    beside = row.beside.get(best["model"])
    return f"{best['model']} {best['value']:.4f}" + (f" (mCE {beside:.3f})" if beside is not None else "")


def records_of(card: list[ScoreRow]) -> list[dict[str, Any]]:
    """Plain rows for CSV / JSON."""
    out = []
    for row in card:
        record = asdict(row)
        record.update({"best_cnn": _best_text(row, "cnn"), "best_transformer": _best_text(row, "transformer"),
                       "pairs": "; ".join(" vs ".join(p) for p in row.pairs), "notes": "; ".join(row.notes)})
        out.append(record)
    return out


CSV_FIELDS = ("axis", "metric", "direction", "task", "dataset", "best_cnn", "best_transformer", "pairs", "pairing",
              "test", "effect", "ci_low", "ci_high", "p_value", "p_holm", "n", "verdict", "notes")


def to_csv(card: list[ScoreRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records_of(card))
    return buffer.getvalue()


def to_json(card: list[ScoreRow]) -> str:
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records_of(card)]
    return json.dumps(clean, indent=1, default=str)


def to_markdown(card: list[ScoreRow]) -> str:
    lines = ["| axis | best CNN | best transformer | transformer advantage [95% CI] | n | Holm p | verdict |",
             "|---|---|---|---|---|---|---|"]
    for row in card:
        cells = [row.axis, _best_text(row, "cnn"), _best_text(row, "transformer"), _effect_text(row),
                 "–" if row.n is None else str(row.n), format_p(row.p_holm),
                 row.verdict + (f" — {'; '.join(row.notes)}" if row.notes else "")]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + FOOTNOTE + "\n"


FOOTNOTE = ("Transformer advantage: the transformers' mean paired difference over their CNN partners on the same "
            "samples (transformer minus CNN; sign-flipped where lower is better, so > 0 favours transformers; a "
            "ratio for throughput). Exact McNemar for one pair on a proportion, else a paired bootstrap (1,000 "
            "draws, as the gate); p-values Holm-adjusted across the axes. A verdict needs the interval to exclude 0 and the "
            "adjusted p < 0.05.")


def scorecard_html(card: list[ScoreRow], anchors: set[str] | None = None) -> str:
    """The table; ``anchors``: the ids of the figures the page drew (a row links to its task's table where its
    figure is not among them)."""
    body = []
    for row in card:
        link = row.link if anchors is None or row.link in anchors else row.table
        pairs = "; ".join(" vs ".join(p) for p in row.pairs) or "–"
        how = {"declared": "declared in the suite", "matched": "±1 point top-1, ×1.5 params",
               "unmatched": "no matched pair: best vs best"}[row.pairing] if row.pairs else ""
        cells = [Markup('<td class="text"><a href="#{}">{}</a></td>').format(link, row.axis)]
        cells += [Markup('<td class="text"><a href="#{}">{}</a></td>').format(link, _best_text(row, f))
                  for f in FAMILIES]
        cells.append(Markup('<td class="text" title="{}">{}</td>').format(how, pairs))
        cells.append(Markup('<td data-value="{}">{}</td>').format(row.effect if row.effect is not None else "",
                                                                  _effect_text(row)))
        cells.append(Markup("<td>{}</td><td>{}</td><td>{}</td>").format(
            "–" if row.n is None else row.n, format_p(row.p_holm), row.test or "–"))
        cells.append(Markup('<td class="text verdict">{}{}</td>').format(
            row.verdict, Markup("<br><small>{}</small>").format("; ".join(row.notes)) if row.notes else ""))
        body.append(Markup('<tr data-axis="{}" class="{}">').format(row.key, "significant" if row.significant else
                                                                   "tied") + Markup("").join(cells) + Markup("</tr>"))
    return (f'<p class="sub">{escape(FOOTNOTE)} Every axis links to the figure or table behind it.</p>'
            '<div class="scroll"><table class="sortable" id="scorecard"><thead><tr><th class="text">axis</th>'
            '<th class="text">best CNN</th><th class="text">best transformer</th><th class="text">pairs</th>'
            '<th>transformer advantage [95% CI]</th><th>n</th><th>Holm p</th><th>test</th>'
            '<th class="text">verdict</th></tr></thead><tbody>' + "".join(body) + "</tbody></table></div>")


def write_exports(card: list[ScoreRow], out_dir: Path) -> list[Path]:
    """scorecard.csv, scorecard.json and scorecard.md beside the report (none when there is no scorecard)."""
    if not card:
        return []
    written = []
    for name, text in (("scorecard.csv", to_csv(card)), ("scorecard.json", to_json(card)),
                       ("scorecard.md", to_markdown(card))):
        (out_dir / name).write_text(text, encoding="utf-8")
        written.append(out_dir / name)
    return written
