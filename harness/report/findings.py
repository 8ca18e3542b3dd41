"""A suite's "findings" paragraph, generated from the matched-pair statistics and saying nothing more.

A difference is stated only when its 95% paired interval excludes 0 and the Holm-adjusted McNemar p-value is
below 0.05 (``PairResult.significant``); everything else is reported as no significant difference.
"""
from __future__ import annotations

from typing import Sequence

from harness.report.pairs import DEFAULT_BAND, Pair, PairResult, format_p, points


def _difference(result: PairResult) -> str:
    """'a (cnn) beats b (transformer) on top1 by 2.1 points (95% CI 0.4–3.8, McNemar p = 0.01, ...)'."""
    c = result.comparison
    a, b = (result.pair.first, result.pair.second)
    fam_a, fam_b = result.families
    diff, low, high = c.diff, c.ci_low, c.ci_high
    if diff < 0:
        a, b, fam_a, fam_b, diff, low, high = b, a, fam_b, fam_a, -diff, -high, -low
    text = (f"On {result.dataset}, {a} ({fam_a}) beats {b} ({fam_b}) on {result.column} ({result.task}) by "
            f"{points(diff)} points (95% CI {points(low)}–{points(high)}, McNemar p = {format_p(c.p_value)}, "
            f"Holm-adjusted p = {format_p(result.p_holm)}, n = {c.n})")
    return text + (f" — caveat: {result.caveat}" if result.caveat else "") + "."


def findings_text(pairs: Sequence[Pair], results: Sequence[PairResult], cost_name: str, declared: bool,
                  records: bool, band: float = DEFAULT_BAND) -> str:
    """The paragraph, in plain text (the caller escapes it)."""
    if not pairs:
        return (f"No two models of different families are within ±{band:.0%} of each other's {cost_name}, so no "
                "matched comparison is made; declare `pairs:` in the suite to compare chosen models.")
    matched = "declared in the suite" if declared else f"matched on {cost_name} within ±{band:.0%}"
    if not results:
        reason = "no per-sample records were found" if not records else \
            "none of their metrics keeps per-sample outcomes"
        return f"{len(pairs)} pair(s) {matched}, but {reason}, so no paired test was run."
    significant = sorted((r for r in results if r.significant()), key=lambda r: -abs(r.comparison.diff))
    sentences = [_difference(r) for r in significant]
    rest = len(results) - len(significant)
    if not significant:
        largest = max(results, key=lambda r: abs(r.comparison.diff))
        c = largest.comparison
        sentences.append(
            f"None of the {len(results)} comparisons of {len(pairs)} pair(s) {matched} shows a significant "
            f"difference (each 95% paired interval includes 0 or the Holm-adjusted McNemar p is ≥ 0.05); the largest, "
            f"{largest.pair.first} − {largest.pair.second} on {largest.column} ({largest.dataset}), is "
            f"{points(c.diff)} points (95% CI {points(c.ci_low)} to {points(c.ci_high)}, McNemar p = "
            f"{format_p(c.p_value)}, Holm-adjusted p = {format_p(largest.p_holm)}, n = {c.n}).")
    elif rest:
        sentences.append(f"No other of the {len(results)} comparisons ({len(pairs)} pair(s) {matched}) differs "
                         "significantly.")
    else:
        sentences.append(f"All {len(results)} comparisons ({len(pairs)} pair(s) {matched}) differ significantly.")
    return " ".join(sentences)
