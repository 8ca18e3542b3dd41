"""The gate's statistics against scipy/statsmodels and tabulated values, and its false-alarm rate."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep

from harness.gate import GatePolicy, compare
from harness.gate.baseline import JobEntry, MetricEntry, Snapshot
from harness.gate.stats import (compare_timings, mcnemar_exact, newcombe_interval, newcombe_paired_interval,
                                paired_bootstrap, paired_proportions, unpaired_proportions)

# (both right, only baseline right, only new right, both wrong)
TABLES = [(59, 6, 16, 80), (1, 1, 7, 12), (430, 3, 0, 17), (400, 12, 11, 27), (5, 0, 0, 5), (0, 9, 2, 0),
          (900, 40, 18, 42)]


@pytest.mark.parametrize("a,b,c,d", TABLES)
def test_mcnemar_p_value_equals_statsmodels_and_scipy(a, b, c, d):
    ours = mcnemar_exact(b, c)
    reference = mcnemar([[a, b], [c, d]], exact=True).pvalue
    assert ours == pytest.approx(reference, rel=1e-12, abs=1e-15)
    if b + c:
        assert ours == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-12)


def test_paired_interval_matches_tabulated_example():
    # Cavo et al. (2012), Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables",
    # chapter 8: Newcombe square-and-add estimate -0.0621, 95% CI -0.1186 to -0.0046
    low, high = newcombe_paired_interval(59, 6, 16, 80)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


def test_paired_proportions_orients_new_minus_baseline():
    baseline = [True] * 80 + [False] * 20
    new = [True] * 70 + [False] * 30  # 10 samples lost, none gained
    result = paired_proportions(baseline, new)
    assert result.diff == pytest.approx(-0.10)
    assert result.ci_high < 0 < -result.ci_low
    assert result.p_value == pytest.approx(mcnemar([[70, 10], [0, 20]], exact=True).pvalue)
    assert result.detail["only_baseline"] == 10 and result.detail["only_new"] == 0


def test_paired_interval_coverage_by_simulation():
    """The paired interval covers the true difference in about 95% of simulated tables."""
    rng = np.random.default_rng(7)
    probabilities = np.array([0.86, 0.04, 0.02, 0.08])  # true difference new - baseline = 0.02 - 0.04
    covered = 0
    trials = 400
    for _ in range(trials):
        a, b, c, d = rng.multinomial(300, probabilities)
        low, high = newcombe_paired_interval(a, c, b, d)  # new plays p1
        covered += low <= -0.02 <= high
    assert covered / trials >= 0.93


@pytest.mark.parametrize("x1,n1,x2,n2", [(30, 50, 20, 45), (0, 50, 20, 45), (450, 450, 440, 450),
                                         (437, 450, 420, 450), (3, 10, 9, 11)])
def test_newcombe_equals_statsmodels(x1, n1, x2, n2):
    ours = newcombe_interval(x1, n1, x2, n2)
    reference = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
    assert ours == pytest.approx(tuple(float(r) for r in reference), abs=1e-12)
    comparison = unpaired_proportions(x2, n2, x1, n1)  # new = (x1, n1)
    assert (comparison.ci_low, comparison.ci_high) == pytest.approx(ours, abs=1e-15)


def test_bootstrap_is_reproducible_by_seed_and_paired():
    rng = np.random.default_rng(0)
    base_scores = rng.normal(0.6, 0.1, 200)
    new_scores = base_scores + rng.normal(-0.02, 0.02, 200)

    def mean_of(values):
        return lambda idx: float(values[idx].mean())

    one = paired_bootstrap(200, mean_of(base_scores), mean_of(new_scores), resamples=500, seed=3)
    two = paired_bootstrap(200, mean_of(base_scores), mean_of(new_scores), resamples=500, seed=3)
    other = paired_bootstrap(200, mean_of(base_scores), mean_of(new_scores), resamples=500, seed=4)
    assert (one.ci_low, one.ci_high, one.p_value) == (two.ci_low, two.ci_high, two.p_value)
    assert (one.ci_low, one.ci_high) != (other.ci_low, other.ci_high)
    assert one.diff == pytest.approx(new_scores.mean() - base_scores.mean())
    # paired: the interval is about as wide as the per-image differences' spread allows, far narrower
    # than the spread of the scores themselves
    assert one.ci_high < 0 and one.ci_high - one.ci_low < 0.02
    assert one.p_value < 0.01


def test_timings_ratio_and_rank_test():
    rng = np.random.default_rng(1)
    base = rng.lognormal(np.log(10), 0.05, 60)
    slow = rng.lognormal(np.log(13), 0.05, 60)
    result = compare_timings(base, slow)
    assert result.diff == pytest.approx(np.median(slow) / np.median(base))
    assert result.p_value == pytest.approx(scipy_stats.mannwhitneyu(slow, base).pvalue)
    assert result.p_value < 1e-6


# --- false alarms --------------------------------------------------------------------------------------------
POPULATION = 20_000
SUBSET = 450
TRIALS = 400


def _difficulties(seed: int) -> np.ndarray:
    """Per-sample probability of being classified right: mean 0.95, most samples easy, some hard — the
    shape that makes two equivalent models agree on most samples (realistic paired correlation)."""
    return np.random.default_rng(seed).beta(1.9, 0.1, POPULATION)


def _snapshot(correct: np.ndarray, ids: list[str]) -> Snapshot:
    outcomes = dict(zip(ids, correct.tolist()))
    metric = MetricEntry("top1", {}, float(correct.mean()), len(ids), None, None, "", "higher", "proportion", True,
                         outcomes=outcomes)
    job = JobEntry("m", "digits-test", "classification", "classification", "ok", {}, {}, {},
                   metrics={metric.key: metric}, sample_ids=ids)
    return Snapshot({job.key: job}, {})


def _alarm_counts(shift: float) -> dict[str, int]:
    """Over TRIALS seeded random subsets: the baseline model and a model whose per-sample probability of
    being right is lowered by ``shift`` are each evaluated once; count the verdicts."""
    probability = _difficulties(0)
    counts: dict[str, int] = {}
    policy = GatePolicy()
    for trial in range(TRIALS):
        rng = np.random.default_rng(1000 + trial)
        chosen = rng.choice(POPULATION, SUBSET, replace=False)
        ids = [f"s{i}" for i in chosen]
        p = probability[chosen]
        baseline = rng.random(SUBSET) < p
        new = rng.random(SUBSET) < np.clip(p - shift, 0, 1)
        verdict = compare(_snapshot(baseline, ids), _snapshot(new, ids), policy).gated[0]
        counts[verdict.status] = counts.get(verdict.status, 0) + 1
    return counts


def test_false_alarm_rate_of_an_equivalent_model_is_below_alpha():
    """Measured: 11 regressions in 400 trials (2.75%); the two-sided test at 0.05 spends 0.025 per side."""
    counts = _alarm_counts(0.0)
    regressions = counts.get("regression", 0)
    print(f"equivalent model, {TRIALS} trials of {SUBSET} samples at alpha 0.05: {counts}")
    assert regressions <= 0.05 * TRIALS
    assert counts.get("not comparable", 0) == 0


def test_a_real_drop_of_six_points_is_caught():
    """Power on 450 samples: a model 6 points worse is flagged in at least 90% of the trials (measured:
    379/400; 4 points worse: 277/400)."""
    counts = _alarm_counts(0.06)
    print(f"model 6 points worse, {TRIALS} trials: {counts}")
    assert counts.get("regression", 0) >= 0.9 * TRIALS
    assert counts.get("pass", 0) + counts.get("improvement", 0) == 0


@pytest.mark.parametrize("differences", [[0.3, -0.1, 0.2, 0.25, 0.05, -0.02, 0.4], [0.1, 0.2], [0.5] * 6,
                                         [0.01, -0.03, 0.02, 0.0, 0.04]])
def test_sign_flip_p_equals_scipys_exact_permutation_test(differences):
    from scipy.stats import permutation_test

    from harness.gate.stats import sign_flip_p

    reference = permutation_test((np.asarray(differences),), np.mean, permutation_type="samples",
                                 n_resamples=np.inf, alternative="two-sided")
    assert sign_flip_p(differences) == pytest.approx(reference.pvalue, abs=1e-12)
    assert sign_flip_p([0.5] * 6) == pytest.approx(2 / 64)  # the floor at n = 6


def test_a_stratified_bootstrap_keeps_every_strata_size_in_every_draw():
    sizes = [30, 50, 20]
    starts = np.cumsum([0, *sizes[:-1]])
    seen = []

    def counts(idx):
        per_block = [int(np.sum((idx >= s) & (idx < s + n))) for s, n in zip(starts, sizes)]
        seen.append(per_block)
        return float(np.mean(idx))

    result = paired_bootstrap(100, counts, lambda idx: counts(idx) + 0.0, resamples=50, seed=1, strata=sizes)
    assert len(seen) == 2 + 2 * 50 and all(block == sizes for block in seen)
    assert result.detail["strata"] == sizes and result.n == 100
    with pytest.raises(ValueError, match="do not add up"):
        paired_bootstrap(99, counts, counts, strata=sizes)
    # one stratum is the plain bootstrap: the same draws as without strata
    plain = paired_bootstrap(100, lambda i: float(i.mean()), lambda i: float(np.median(i)), resamples=50, seed=2)
    one = paired_bootstrap(100, lambda i: float(i.mean()), lambda i: float(np.median(i)), resamples=50, seed=2,
                           strata=[100])
    assert (plain.ci_low, plain.ci_high, plain.p_value) == (one.ci_low, one.ci_high, one.p_value)
