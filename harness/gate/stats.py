"""The gate's statistics: each function compares a baseline with a new run and returns a ``Comparison``.

Differences are always ``new - baseline`` in the metric's own units; the verdict (compare.py) turns them into
gains using the metric's declared direction.

- ``paired_proportions``: the same samples scored twice (top-1, robust or corruption accuracy). Exact
  McNemar test (two-sided binomial test on the discordant pairs) and Newcombe's square-and-add interval for
  paired data (Newcombe 1998, method 10: two Wilson intervals combined with the estimated correlation phi,
  phi corrected towards 0 by N/2 as in the paper). It stays inside [-1, 1], is well behaved when the
  discordant counts are small or zero, and is the interval Fagerland, Lydersen & Laake recommend for paired
  differences; the tabulated Cavo et al. (2012) example of their book is a test case.
- ``unpaired_proportions``: only counts are known (e.g. a baseline without per-sample records). Newcombe's
  hybrid score interval (1998, method 10 for independent proportions), the same as
  ``statsmodels ... confint_proportions_2indep(method="newcomb")``; p-value from the pooled z-test.
  On the same samples it is conservative (it ignores the positive correlation of the two runs).
- ``paired_bootstrap``: dataset-level statistics (mAP, mIoU, PQ, ECE, OOD AUROC). Images are resampled with
  replacement, the SAME draw for both runs (within each stratum, e.g. in-distribution and OOD samples); percentile interval of the difference; p-value from the bootstrap
  distribution's mass on the far side of zero (two-sided, a resampling approximation).
- ``compare_timings``: repeated timings; ratio of medians and a two-sided Mann-Whitney U test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats as scipy_stats

from harness.metrics import wilson_interval


@dataclass(frozen=True)
class Comparison:
    """One statistical comparison. ``diff`` and its interval are new - baseline (ratio for timings)."""

    test: str
    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def z_value(alpha: float) -> float:
    """Two-sided normal quantile for a (1 - alpha) interval."""
    return float(scipy_stats.norm.ppf(1 - alpha / 2))


# --- paired proportions ------------------------------------------------------------------------------------
def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (binomial test of b vs c at 1/2)."""
    if b + c == 0:
        return 1.0
    return float(scipy_stats.binomtest(int(c), int(b + c), 0.5, alternative="two-sided").pvalue)


def newcombe_paired_interval(a: int, b: int, c: int, d: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's (1998) method-10 interval for p1 - p2 of a paired 2x2 table.

    ``a`` both succeed, ``b`` only the first, ``c`` only the second, ``d`` neither;
    p1 = (a + b) / N, p2 = (a + c) / N.
    """
    n = a + b + c + d
    if n == 0:
        return (math.nan, math.nan)
    z = z_value(alpha)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    estimate = p1 - p2
    low = estimate - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = estimate + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (max(-1.0, low), min(1.0, high))


def paired_table(baseline: Sequence[bool], new: Sequence[bool]) -> tuple[int, int, int, int]:
    """(both right, only baseline right, only new right, both wrong) over aligned outcome vectors."""
    base = np.asarray(baseline, dtype=bool)
    cand = np.asarray(new, dtype=bool)
    if base.shape != cand.shape:
        raise ValueError(f"paired outcomes differ in length: {base.shape[0]} vs {cand.shape[0]}")
    return (int((base & cand).sum()), int((base & ~cand).sum()), int((~base & cand).sum()),
            int((~base & ~cand).sum()))


def paired_proportions(baseline: Sequence[bool], new: Sequence[bool], alpha: float = 0.05) -> Comparison:
    """Exact McNemar + Newcombe paired interval for new - baseline accuracy on the same samples."""
    a, b, c, d = paired_table(baseline, new)
    n = a + b + c + d
    if n == 0:
        return Comparison("mcnemar-exact", math.nan, None, None, None, 0)
    # the new run plays p1 so that the interval is for new - baseline
    low, high = newcombe_paired_interval(a, c, b, d, alpha)
    return Comparison("mcnemar-exact", (c - b) / n, low, high, mcnemar_exact(b, c), n,
                      {"both": a, "only_baseline": b, "only_new": c, "neither": d,
                       "interval": "newcombe-paired-10"})


# --- unpaired proportions ----------------------------------------------------------------------------------
def newcombe_interval(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 of two independent binomials (from two Wilson intervals)."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan)
    z = z_value(alpha)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    comparison = mover_difference(p2, l2, u2, p1, l1, u1)  # square-and-add of the two Wilson limits
    return (comparison.ci_low, comparison.ci_high)


def unpaired_proportions(x_base: int, n_base: int, x_new: int, n_new: int, alpha: float = 0.05) -> Comparison:
    """Newcombe interval and pooled two-proportion z-test for new - baseline, counts only."""
    if n_base <= 0 or n_new <= 0:
        return Comparison("newcombe-unpaired", math.nan, None, None, None, min(n_base, n_new))
    low, high = newcombe_interval(x_new, n_new, x_base, n_base, alpha)
    diff = x_new / n_new - x_base / n_base
    pooled = (x_new + x_base) / (n_new + n_base)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_new + 1 / n_base))
    p_value = 1.0 if se == 0 else float(2 * scipy_stats.norm.sf(abs(diff) / se))
    return Comparison("newcombe-unpaired", diff, low, high, p_value, min(n_base, n_new),
                      {"test": "pooled z", "interval": "newcombe-hybrid-score"})


# --- paired bootstrap --------------------------------------------------------------------------------------
Statistic = Callable[[np.ndarray], float]  # resampled image positions -> value


def paired_bootstrap(n: int, baseline: Statistic, new: Statistic, resamples: int = 1000, seed: int = 0,
                     alpha: float = 0.05, strata: Sequence[int] | None = None) -> Comparison:
    """Percentile interval of new - baseline over ``resamples`` image-level draws shared by both runs.

    ``baseline(idx)`` / ``new(idx)`` compute the statistic on the images at positions ``idx`` (with
    repeats: a statistic must count a repeated image as a distinct image). ``strata``: the sizes of
    consecutive blocks of the n positions (e.g. in-distribution then OOD samples), each resampled within
    itself, so every draw keeps the blocks' sizes.
    """
    blocks = [int(size) for size in strata] if strata is not None else [n]
    if sum(blocks) != n:
        raise ValueError(f"strata sizes {blocks} do not add up to n = {n}")
    if n <= 0 or min(blocks) <= 0:
        return Comparison("bootstrap-paired", math.nan, None, None, None, 0)
    everything = np.arange(n)
    observed = new(everything) - baseline(everything)
    rng = np.random.default_rng(seed)
    starts = np.cumsum([0, *blocks[:-1]])
    diffs = np.empty(resamples)
    for i in range(resamples):
        if len(blocks) == 1:
            idx = rng.integers(0, n, size=n)
        else:
            idx = np.concatenate([start + rng.integers(0, size, size=size) for start, size in zip(starts, blocks)])
        diffs[i] = new(idx) - baseline(idx)
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    p_value = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    if np.all(diffs == 0):
        p_value = 1.0
    detail = {"resamples": resamples, "seed": seed, "interval": "percentile"}
    if len(blocks) > 1:
        detail["strata"] = blocks
    return Comparison("bootstrap-paired", float(observed), float(low), float(high), p_value, n, detail)


# --- timings -----------------------------------------------------------------------------------------------
def compare_timings(baseline: Sequence[float], new: Sequence[float]) -> Comparison:
    """Ratio of medians (new / baseline) and a two-sided Mann-Whitney U test on the repeats."""
    base, cand = np.asarray(baseline, dtype=float), np.asarray(new, dtype=float)
    if len(base) == 0 or len(cand) == 0:
        return Comparison("mann-whitney", math.nan, None, None, None, 0)
    ratio = float(np.median(cand) / np.median(base))
    p_value = None
    if len(base) > 1 and len(cand) > 1:
        p_value = float(scipy_stats.mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    return Comparison("mann-whitney", ratio, None, None, p_value, min(len(base), len(cand)),
                      {"ratio": "median new / median baseline"})


# --- independent estimates with their own intervals --------------------------------------------------------
def mover_difference(base: float, base_low: float, base_high: float, new: float, new_low: float,
                     new_high: float) -> Comparison:
    """Interval for new - baseline from each estimate's own interval (MOVER, Zou & Donner 2008: the
    square-and-add rule Newcombe's interval applies to Wilson limits). No p-value: judged by the interval."""
    diff = new - base
    low = diff - math.sqrt((new - new_low) ** 2 + (base_high - base) ** 2)
    high = diff + math.sqrt((new_high - new) ** 2 + (base - base_low) ** 2)
    return Comparison("mover-unpaired", diff, low, high, None, None, {"interval": "square-and-add of the rows' CIs"})


def sign_flip_p(differences: Sequence[float], exact_up_to: int = 16, resamples: int = 100_000, seed: int = 0) -> float:
    """Two-sided p of a paired sign-flip (permutation) test that the mean difference is 0: exact over all
    2^n sign patterns up to ``exact_up_to`` differences, else a seeded Monte Carlo estimate. With n
    differences the smallest p it can give is 2 / 2^n (so n < 6 can never reach 0.05)."""
    values = np.asarray(differences, dtype=float)
    if not len(values):
        raise ValueError("sign_flip_p needs at least one difference")
    observed = abs(values.mean())
    if len(values) <= exact_up_to:
        signs = 1 - 2 * ((np.arange(2 ** len(values))[:, None] >> np.arange(len(values))) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(resamples, len(values)))
    means = np.abs((signs * values).mean(axis=1))
    return float(np.mean(means >= observed - 1e-12))
